//! Per-base segmentation: a U-Net head (Borzoi style) on any backbone, and the segmentation
//! model (backbone + U-Net head) that predicts a class per base for both strands.
//!
//! The head takes the backbone's features `(B, C, L')` at its own resolution (`L' = L / factor`)
//! and the token ids `(B, L)`:
//!
//! 1. project to `width` channels (1×1 conv, GELU) → level 0;
//! 2. down path: `levels` × [max-pool 2 → conv → GELU], keeping each level as a skip;
//! 3. up path: per level, nearest upsampling ×2 → conv → GELU, plus the skip of that level;
//! 4. to base resolution: with `shuffle` (`--unet-config`, off by default), a conv at the backbone's
//!    resolution to `width × factor` channels whose channel `c · factor + r` becomes channel `c`
//!    at offset `r` of each block of `factor` bases (sub-pixel upsampling, so every offset has
//!    its own weights and the codon position of each base can be told apart); without it,
//!    nearest upsampling × `factor` → conv. Then a base-resolution skip computed from the ids
//!    (embedding → conv) is added → GELU → residual conv block → 1×1 output conv.
//!
//! No `conv_transpose1d` (candle's has no backward): the up path is nearest-neighbour repetition
//! followed by a convolution, and the sub-pixel step a reshape and transpose; odd lengths are
//! fixed by repeating the last position or cropping. Every op is from [`crate::ops`], so gradients are exact (checked in f64 in
//! `tests/segment.rs`).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::{Backbone, BackboneConfig, Ctx, Embedding};
use crate::error::{Error, Result};
use crate::ops::{self, Conv1d, Conv1dConfig};

/// Settings of the U-Net head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UNetConfig {
    /// Channels of every head layer.
    pub width: usize,
    /// Down-sampling levels (each halves the length) below the backbone's resolution.
    pub levels: usize,
    /// Kernel size of the head convolutions (odd).
    pub kernel_size: usize,
    /// Embedding dimension of the base-resolution skip.
    pub embedding_dim: usize,
    /// Kernel size of the base-resolution skip convolution (odd).
    pub skip_kernel: usize,
    /// Sub-pixel upsampling to base resolution (default false: nearest).
    #[serde(default)]
    pub shuffle: bool,
}

impl Default for UNetConfig {
    fn default() -> Self {
        UNetConfig {
            width: 32,
            levels: 2,
            kernel_size: 5,
            embedding_dim: 8,
            skip_kernel: 11,
            shuffle: false,
        }
    }
}

/// Repeat the last position or crop so that `x (B, C, l)` has length `len`.
pub fn fit_len(x: &Tensor, len: usize) -> Result<Tensor> {
    let (b, c, l) = x.dims3()?;
    if l == 0 {
        return Err(Error::input("segment head: empty feature map"));
    }
    Ok(if l < len {
        let last = x
            .narrow(2, l - 1, 1)?
            .broadcast_as((b, c, len - l))?
            .contiguous()?;
        Tensor::cat(&[x, &last], 2)?
    } else if l > len {
        x.narrow(2, 0, len)?
    } else {
        x.clone()
    })
}

fn same_conv(vb: VarBuilder, cin: usize, cout: usize, k: usize) -> Result<Conv1d> {
    Ok(Conv1d::load(
        vb,
        cin,
        cout,
        k,
        Conv1dConfig {
            padding: (k - 1) / 2,
            ..Default::default()
        },
        true,
    )?)
}

/// The U-Net segmentation head.
pub struct UNetHead {
    cfg: UNetConfig,
    factor: usize,
    proj: Conv1d,
    down: Vec<Conv1d>,
    up: Vec<Conv1d>,
    lift: Conv1d,
    embed: Embedding,
    skip: Conv1d,
    refine: Conv1d,
    out: Conv1d,
}

impl UNetHead {
    /// Build for `channels` backbone channels at `1 / factor` of base resolution, `vocab` token
    /// ids and `outputs` logits per base.
    pub fn new(
        cfg: &UNetConfig,
        channels: usize,
        factor: usize,
        vocab: usize,
        outputs: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        if cfg.kernel_size % 2 == 0 || cfg.skip_kernel % 2 == 0 || cfg.width == 0 {
            return Err(Error::input(format!(
                "unet config: kernel sizes must be odd and width > 0 (got kernel {}, skip {}, width {})",
                cfg.kernel_size, cfg.skip_kernel, cfg.width
            )));
        }
        if factor == 0 || outputs == 0 || cfg.embedding_dim == 0 {
            return Err(Error::input(
                "unet head: factor, outputs and embedding_dim must be at least 1",
            ));
        }
        let (w, k) = (cfg.width, cfg.kernel_size);
        let proj = same_conv(vb.pp("proj"), channels, w, 1)?;
        let down = (0..cfg.levels)
            .map(|i| same_conv(vb.pp(format!("down{i}")), w, w, k))
            .collect::<Result<Vec<_>>>()?;
        let up = (0..cfg.levels)
            .map(|i| same_conv(vb.pp(format!("up{i}")), w, w, k))
            .collect::<Result<Vec<_>>>()?;
        Ok(UNetHead {
            proj,
            down,
            up,
            lift: same_conv(
                vb.pp("lift"),
                w,
                if cfg.shuffle { w * factor } else { w },
                k,
            )?,
            embed: Embedding::new(vb.pp("embed"), vocab, cfg.embedding_dim)?,
            skip: same_conv(vb.pp("skip"), cfg.embedding_dim, w, cfg.skip_kernel)?,
            refine: same_conv(vb.pp("refine"), w, w, k)?,
            out: same_conv(vb.pp("out"), w, outputs, 1)?,
            cfg: cfg.clone(),
            factor,
        })
    }

    /// Shortest backbone feature length the down path can take.
    pub fn min_feature_len(&self) -> usize {
        1 << self.cfg.levels
    }

    /// Logits `(B, L, outputs)` for backbone features `(B, C, L')` and token ids `(B, L)`.
    pub fn forward(&self, features: &Tensor, ids: &Tensor) -> Result<Tensor> {
        let (_, len) = ids.dims2()?;
        let mut h = ops::gelu_fused(&self.proj.forward(features)?)?;
        if h.dim(2)? < self.min_feature_len() {
            return Err(Error::input(format!(
                "unet head: {} feature positions are too few for {} levels (need {})",
                h.dim(2)?,
                self.cfg.levels,
                self.min_feature_len()
            )));
        }
        let mut skips = Vec::with_capacity(self.down.len());
        for d in &self.down {
            skips.push(h.clone());
            h = ops::gelu_fused(&d.forward(&ops::max_pool1d(&h, 2)?)?)?;
        }
        for (u, s) in self.up.iter().zip(skips.iter().rev()) {
            let x = fit_len(&ops::upsample_nearest1d(&h, 2)?, s.dim(2)?)?;
            h = (ops::gelu_fused(&u.forward(&x)?)? + s)?;
        }
        let x = if self.cfg.shuffle {
            fit_len(&sub_pixel(&self.lift.forward(&h)?, self.factor)?, len)?
        } else {
            self.lift
                .forward(&fit_len(&ops::upsample_nearest1d(&h, self.factor)?, len)?)?
        };
        let bias = self.skip.bias().expect("skip conv has a bias");
        let e = ops::embed_conv1d(
            ids,
            self.embed.weight(),
            self.skip.weight(),
            bias,
            (self.cfg.skip_kernel - 1) / 2,
            1,
        )?;
        let h = ops::gelu_fused(&(x + e)?)?;
        let h = (ops::gelu_fused(&self.refine.forward(&h)?)? + h)?;
        let y = self.out.forward(&h)?; // (B, outputs, L)
        Ok(y.transpose(1, 2)?.contiguous()?)
    }
}

/// Sub-pixel upsampling: `(B, C · f, L)` → `(B, C, L · f)`, channel `c · f + r` at position `j`
/// going to channel `c` at position `j · f + r` (a reshape and a transpose, both with exact
/// gradients).
pub fn sub_pixel(x: &Tensor, f: usize) -> Result<Tensor> {
    let (b, cf, l) = x.dims3()?;
    if f == 0 || cf % f != 0 {
        return Err(Error::input(format!(
            "sub-pixel upsampling: {cf} channels do not split into groups of {f}"
        )));
    }
    if f == 1 {
        return Ok(x.clone());
    }
    Ok(x.reshape((b, cf / f, f, l))?
        .transpose(2, 3)?
        .contiguous()?
        .reshape((b, cf / f, l * f))?)
}

/// Config of a segmentation model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentModelConfig {
    /// Tokenizer vocabulary size (one token per base).
    pub vocab_size: usize,
    /// Classes per strand.
    pub num_classes: usize,
    /// The backbone.
    pub backbone: BackboneConfig,
    /// The U-Net head.
    pub unet: UNetConfig,
}

/// A backbone with a U-Net head: per-base logits for both strands.
pub struct SegmentModel {
    /// The feature extractor.
    pub backbone: Box<dyn Backbone>,
    /// The U-Net head.
    pub head: UNetHead,
    /// The config it was built from.
    pub config: SegmentModelConfig,
    factor: usize,
}

impl SegmentModel {
    /// The same model over `weights` with no autograd graph: the model to predict with.
    pub fn frozen(&self, weights: &super::Weights) -> Result<Self> {
        let (p, b) = weights.frozen_builders(&crate::device::current());
        Self::new(&self.config, p, b)
    }

    /// Build from `cfg`; parameters come from `params`, batch-norm statistics from `buffers`.
    ///
    /// The backbone's downsampling factor is measured on a probe length (`L / out_len(L)`).
    pub fn new(cfg: &SegmentModelConfig, params: VarBuilder, buffers: VarBuilder) -> Result<Self> {
        if cfg.num_classes < 2 || cfg.vocab_size == 0 {
            return Err(Error::input(format!(
                "impossible segment model config: num_classes {}, vocab_size {}",
                cfg.num_classes, cfg.vocab_size
            )));
        }
        let backbone = super::build_backbone(
            &cfg.backbone,
            cfg.vocab_size,
            params.pp("backbone"),
            buffers.pp("backbone"),
        )?;
        let probe = 1 << 16;
        let out = backbone.out_len(probe);
        // An output length that does not grow with the input (kmer-lr's spectrum) is one feature
        // vector per sequence: there is nothing per base to segment.
        if backbone.out_len(2 * probe) == out {
            return Err(Error::input(format!(
                "model {} has one feature vector per sequence, no per-base features; it serves \
                 classification only",
                cfg.backbone.name()
            )));
        }
        if out == 0 || probe % out != 0 {
            return Err(Error::input(format!(
                "model {} does not downsample by an integer factor ({probe} -> {out} positions)",
                cfg.backbone.name()
            )));
        }
        let factor = probe / out;
        let head = UNetHead::new(
            &cfg.unet,
            backbone.out_channels(),
            factor,
            cfg.vocab_size,
            2 * cfg.num_classes,
            params.pp("head"),
        )?;
        Ok(SegmentModel {
            backbone,
            head,
            config: cfg.clone(),
            factor,
        })
    }

    /// Shortest input length (in tokens) the model takes.
    pub fn min_len(&self) -> usize {
        self.factor * self.head.min_feature_len()
    }

    /// Logits `(B, L, 2, num_classes)` for token ids `(B, L)`: strand 0 is the plus-strand
    /// track, strand 1 the minus-strand track, both in the input's forward coordinates.
    pub fn forward(&self, ids: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        self.forward_with(ids, ctx, false)
    }

    /// Logits as [`forward`](Self::forward); with `freeze_backbone`, gradients stop at the
    /// backbone's output, so a backward pass reaches only the U-Net head.
    pub fn forward_with(
        &self,
        ids: &Tensor,
        ctx: &mut Ctx,
        freeze_backbone: bool,
    ) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        if l < self.min_len() {
            return Err(Error::input(format!(
                "segment model takes at least {} bases, got {l}",
                self.min_len()
            )));
        }
        let f = self.backbone.forward(ids, ctx)?;
        let f = if freeze_backbone { f.detach() } else { f };
        let y = self.head.forward(&f, ids)?;
        Ok(y.reshape((b, l, 2, self.config.num_classes))?)
    }
}
