//! The genomic-benchmarks baseline CNN (their `models/torch.py`), layer for layer:
//! embedding 100 → [conv 16, k 8 → batch norm → ReLU → max-pool 2] → [conv 8, k 8 → BN → ReLU →
//! pool 2] → [conv 4, k 8 → BN → ReLU → pool 2]; the flatten → dense 512 → output part is the
//! [`crate::models::head`] with `Flatten` pooling and no hidden activation, as in the original.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::{Backbone, Ctx, Embedding};
use crate::error::Result;
use crate::ops::{self, BatchNorm1d, BatchNormConfig, Conv1d, Conv1dConfig};

/// Settings of the baseline CNN (defaults are the published ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Embedding dimension.
    pub embedding_dim: usize,
    /// Output channels of the three convolutions.
    pub channels: Vec<usize>,
    /// Kernel size of every convolution.
    pub kernel_size: usize,
    /// Dropout after each block (0 in the original).
    pub dropout: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            embedding_dim: 100,
            channels: vec![16, 8, 4],
            kernel_size: 8,
            dropout: 0.0,
        }
    }
}

struct Block {
    conv: Conv1d,
    bn: BatchNorm1d,
}

/// The baseline CNN backbone.
pub struct GbCnn {
    embed: Embedding,
    blocks: Vec<Block>,
    cfg: Config,
}

impl GbCnn {
    /// Build from `params` (weights) and `buffers` (batch-norm statistics).
    pub fn new(
        cfg: &Config,
        vocab: usize,
        params: VarBuilder,
        buffers: VarBuilder,
    ) -> Result<Self> {
        let embed = Embedding::new(params.pp("embed"), vocab, cfg.embedding_dim)?;
        let mut blocks = Vec::new();
        let mut cin = cfg.embedding_dim;
        for (i, &cout) in cfg.channels.iter().enumerate() {
            let conv = Conv1d::load(
                params.pp(format!("conv{i}")),
                cin,
                cout,
                cfg.kernel_size,
                Conv1dConfig::default(),
                true,
            )?;
            let bn = BatchNorm1d::load_with_buffers(
                params.pp(format!("bn{i}")),
                buffers.pp(format!("bn{i}")),
                cout,
                BatchNormConfig::default(),
            )?;
            blocks.push(Block { conv, bn });
            cin = cout;
        }
        Ok(GbCnn {
            embed,
            blocks,
            cfg: cfg.clone(),
        })
    }
}

impl Backbone for GbCnn {
    fn forward(&self, ids: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let mut x: Option<Tensor> = None;
        for (i, b) in self.blocks.iter().enumerate() {
            let y = match (&x, i, b.conv.bias()) {
                // Embedding + first convolution as one exact lookup op (see ops::embed_conv1d).
                (None, 0, Some(bias)) => {
                    ops::embed_conv1d(ids, self.embed.weight(), b.conv.weight(), bias, 0, 1)?
                }
                (None, _, _) => {
                    candle_core::Module::forward(&b.conv, &self.embed.forward_channels_first(ids)?)?
                }
                (Some(x), _, _) => candle_core::Module::forward(&b.conv, x)?,
            };
            let mut y = candle_core::ModuleT::forward_t(&b.bn, &y, ctx.train)?;
            y = ops::relu(&y)?;
            y = ops::max_pool1d(&y, 2)?;
            if ctx.train && self.cfg.dropout > 0.0 {
                y = ops::dropout(&y, self.cfg.dropout, ctx.rng)?;
            }
            x = Some(y);
        }
        match x {
            Some(x) => Ok(x),
            None => self.embed.forward_channels_first(ids),
        }
    }

    fn out_channels(&self) -> usize {
        *self.cfg.channels.last().unwrap_or(&self.cfg.embedding_dim)
    }

    fn out_len(&self, len: usize) -> usize {
        let mut l = len;
        for _ in &self.cfg.channels {
            l = l.saturating_sub(self.cfg.kernel_size - 1) / 2;
        }
        l
    }
}
