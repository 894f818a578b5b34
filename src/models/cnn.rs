//! A dilated residual 1-D CNN (Basenji / gReLU style): embedding → stem convolution → max-pool →
//! residual blocks of [BN → GELU → dilated conv → BN → GELU → 1×1 conv → dropout] + skip, with a
//! geometric dilation schedule that restarts after `max_dilation`.

use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::{Backbone, Ctx, Embedding};
use crate::error::{Error, Result};
use crate::ops::{self, BatchNorm1d, BatchNormConfig, Conv1d, Conv1dConfig};

/// Settings of the dilated residual CNN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Embedding dimension.
    pub embedding_dim: usize,
    /// Channels of every block.
    pub width: usize,
    /// Number of residual blocks.
    pub depth: usize,
    /// Stem convolution kernel size (odd).
    pub stem_kernel: usize,
    /// Kernel size of the dilated convolutions (odd).
    pub kernel_size: usize,
    /// Max-pool factor after the stem (1 = none).
    pub pool: usize,
    /// Dilation multiplier between blocks.
    pub dilation_rate: usize,
    /// Largest dilation before the schedule restarts at 1.
    pub max_dilation: usize,
    /// Dropout at the end of each block.
    pub dropout: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            embedding_dim: 16,
            width: 64,
            depth: 5,
            stem_kernel: 15,
            kernel_size: 5,
            pool: 4,
            dilation_rate: 2,
            max_dilation: 16,
            dropout: 0.1,
        }
    }
}

impl Config {
    /// Dilation of each block.
    pub fn dilations(&self) -> Vec<usize> {
        let mut d = 1;
        (0..self.depth)
            .map(|_| {
                let cur = d;
                d *= self.dilation_rate.max(1);
                if d > self.max_dilation.max(1) {
                    d = 1;
                }
                cur
            })
            .collect()
    }
}

struct Block {
    bn1: BatchNorm1d,
    conv1: Conv1d,
    bn2: BatchNorm1d,
    conv2: Conv1d,
}

/// The dilated residual CNN backbone.
pub struct DilatedCnn {
    embed: Embedding,
    stem: Conv1d,
    stem_bn: BatchNorm1d,
    blocks: Vec<Block>,
    cfg: Config,
}

fn bn(p: &VarBuilder, b: &VarBuilder, name: &str, c: usize) -> Result<BatchNorm1d> {
    Ok(BatchNorm1d::load_with_buffers(
        p.pp(name),
        b.pp(name),
        c,
        BatchNormConfig::default(),
    )?)
}

impl DilatedCnn {
    /// Build from `params` (weights) and `buffers` (batch-norm statistics).
    pub fn new(
        cfg: &Config,
        vocab: usize,
        params: VarBuilder,
        buffers: VarBuilder,
    ) -> Result<Self> {
        if cfg.kernel_size % 2 == 0 || cfg.stem_kernel % 2 == 0 || cfg.width == 0 {
            return Err(Error::input(format!(
                "cnn config: kernel sizes must be odd and width > 0 (got kernel {}, stem {}, width {})",
                cfg.kernel_size, cfg.stem_kernel, cfg.width
            )));
        }
        let embed = Embedding::new(params.pp("embed"), vocab, cfg.embedding_dim)?;
        let same = |k: usize, d: usize| Conv1dConfig {
            padding: d * (k - 1) / 2,
            dilation: d,
            ..Default::default()
        };
        let stem = Conv1d::load(
            params.pp("stem"),
            cfg.embedding_dim,
            cfg.width,
            cfg.stem_kernel,
            same(cfg.stem_kernel, 1),
            true,
        )?;
        let stem_bn = bn(&params, &buffers, "stem_bn", cfg.width)?;
        let mut blocks = Vec::new();
        for (i, d) in cfg.dilations().into_iter().enumerate() {
            let (p, b) = (
                params.pp(format!("block{i}")),
                buffers.pp(format!("block{i}")),
            );
            blocks.push(Block {
                bn1: bn(&p, &b, "bn1", cfg.width)?,
                conv1: Conv1d::load(
                    p.pp("conv1"),
                    cfg.width,
                    cfg.width,
                    cfg.kernel_size,
                    same(cfg.kernel_size, d),
                    true,
                )?,
                bn2: bn(&p, &b, "bn2", cfg.width)?,
                conv2: Conv1d::load(p.pp("conv2"), cfg.width, cfg.width, 1, same(1, 1), true)?,
            });
        }
        Ok(DilatedCnn {
            embed,
            stem,
            stem_bn,
            blocks,
            cfg: cfg.clone(),
        })
    }
}

impl Backbone for DilatedCnn {
    fn forward(&self, ids: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let x = match self.stem.bias() {
            Some(bias) => ops::embed_conv1d(
                ids,
                self.embed.weight(),
                self.stem.weight(),
                bias,
                (self.cfg.stem_kernel - 1) / 2,
                1,
            )?,
            None => self
                .stem
                .forward(&self.embed.forward_channels_first(ids)?)?,
        };
        let x = ops::gelu_fused(&self.stem_bn.forward_t(&x, ctx.train)?)?;
        let mut x = if self.cfg.pool > 1 {
            ops::max_pool1d(&x, self.cfg.pool)?
        } else {
            x
        };
        for b in &self.blocks {
            let h = ops::gelu_fused(&b.bn1.forward_t(&x, ctx.train)?)?;
            let h = b.conv1.forward(&h)?;
            let h = ops::gelu_fused(&b.bn2.forward_t(&h, ctx.train)?)?;
            let mut h = b.conv2.forward(&h)?;
            if ctx.train && self.cfg.dropout > 0.0 {
                h = ops::dropout(&h, self.cfg.dropout, ctx.rng)?;
            }
            x = (x + h)?;
        }
        Ok(x)
    }

    fn out_channels(&self) -> usize {
        self.cfg.width
    }

    fn out_len(&self, len: usize) -> usize {
        len / self.cfg.pool.max(1)
    }
}
