//! Sequence-classification head: pool `(B, C, L)` features (mean, max, attention or flatten), an
//! optional hidden layer, then class logits.

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::error::Result;
use crate::ops::{self, Linear};

/// How features are pooled over the length axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// Mean over positions.
    Mean,
    /// Max over positions.
    Max,
    /// Learned softmax attention weights over positions.
    Attention,
    /// Concatenate all positions (needs a fixed length).
    Flatten,
}

/// Head settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Pooling over the length axis.
    pub pooling: Pooling,
    /// Hidden layer width (0 = none).
    pub hidden: usize,
    /// GELU after the hidden layer (the genomic-benchmarks CNN has none).
    pub hidden_activation: bool,
    /// Dropout before the output layer.
    pub dropout: f64,
}

/// The classification head.
pub struct ClassifyHead {
    cfg: HeadConfig,
    attn: Option<Linear>,
    hidden: Option<Linear>,
    out: Linear,
}

impl ClassifyHead {
    /// Build for `channels × len` features and `classes` outputs.
    pub fn new(
        cfg: &HeadConfig,
        channels: usize,
        len: usize,
        classes: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let pooled = match cfg.pooling {
            Pooling::Flatten => channels * len,
            _ => channels,
        };
        let attn = match cfg.pooling {
            Pooling::Attention => Some(Linear::load(vb.pp("attn"), channels, 1, true)?),
            _ => None,
        };
        let (hidden, out_in) = if cfg.hidden > 0 {
            (
                Some(Linear::load(vb.pp("hidden"), pooled, cfg.hidden, true)?),
                cfg.hidden,
            )
        } else {
            (None, pooled)
        };
        let out = Linear::load(vb.pp("out"), out_in, classes, true)?;
        Ok(ClassifyHead {
            cfg: cfg.clone(),
            attn,
            hidden,
            out,
        })
    }

    /// Pool `(B, C, L)` features to `(B, C')`.
    pub fn pool(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.cfg.pooling {
            Pooling::Mean => ops::global_avg_pool1d(x)?,
            Pooling::Max => ops::global_max_pool1d(x)?,
            Pooling::Flatten => x.flatten_from(1)?,
            Pooling::Attention => {
                let attn = self.attn.as_ref().expect("attention pooling has weights");
                let xt = x.transpose(1, 2)?.contiguous()?; // (B, L, C)
                let scores = ops::linear(&xt, attn.weight(), attn.bias())?.squeeze(D::Minus1)?;
                let w = ops::softmax(&scores, D::Minus1)?; // (B, L)
                x.broadcast_mul(&w.unsqueeze(1)?)?.sum(D::Minus1)?
            }
        })
    }

    /// Class logits for `(B, C, L)` features.
    pub fn forward(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let mut h = self.pool(x)?;
        if let Some(hidden) = &self.hidden {
            h = ops::linear(&h, hidden.weight(), hidden.bias())?;
            if self.cfg.hidden_activation {
                h = ops::gelu_fused(&h)?;
            }
        }
        if ctx.train && self.cfg.dropout > 0.0 {
            h = ops::dropout(&h, self.cfg.dropout, ctx.rng)?;
        }
        Ok(ops::linear(&h, self.out.weight(), self.out.bias())?)
    }
}

/// Per-base (segmentation) head: `(B, C, L')` backbone features → `(B, L, classes)` logits.
///
/// When the backbone pooled (`L' < L`), features are upsampled by nearest-neighbour repetition
/// (differentiable; candle's `conv_transpose1d` has no backward), the last position is repeated
/// to cover any remainder, then a per-position hidden layer (GELU) and output layer follow.
pub struct SegmentHead {
    hidden: Option<Linear>,
    out: Linear,
    factor: usize,
}

impl SegmentHead {
    /// Build for `channels` features, `classes` outputs and an upsampling `factor` (≥ 1).
    pub fn new(
        channels: usize,
        hidden: usize,
        classes: usize,
        factor: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        if factor == 0 || classes == 0 {
            return Err(crate::Error::input(
                "segment head: upsampling factor and classes must be at least 1",
            ));
        }
        let (hidden, out_in) = if hidden > 0 {
            (
                Some(Linear::load(vb.pp("hidden"), channels, hidden, true)?),
                hidden,
            )
        } else {
            (None, channels)
        };
        let out = Linear::load(vb.pp("out"), out_in, classes, true)?;
        Ok(SegmentHead {
            hidden,
            out,
            factor,
        })
    }

    /// Logits `(B, len, classes)` for features `(B, C, L')`.
    pub fn forward(&self, x: &Tensor, len: usize) -> Result<Tensor> {
        let mut x = if self.factor > 1 {
            ops::upsample_nearest1d(x, self.factor)?
        } else {
            x.clone()
        };
        let (b, c, l) = x.dims3()?;
        if l == 0 {
            return Err(crate::Error::input("segment head: empty feature map"));
        }
        if l < len {
            let last = x
                .narrow(2, l - 1, 1)?
                .broadcast_as((b, c, len - l))?
                .contiguous()?;
            x = Tensor::cat(&[&x, &last], 2)?;
        } else if l > len {
            x = x.narrow(2, 0, len)?;
        }
        let mut h = x.transpose(1, 2)?.contiguous()?; // (B, L, C)
        if let Some(hidden) = &self.hidden {
            h = ops::gelu_fused(&ops::linear(&h, hidden.weight(), hidden.bias())?)?;
        }
        Ok(ops::linear(&h, self.out.weight(), self.out.bias())?)
    }
}
