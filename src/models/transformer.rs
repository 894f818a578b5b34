//! A pre-norm transformer encoder with block-sparse attention (GENA-LM / BigBird style) or
//! dense attention: embedding → `n_layer` blocks of [x + attn(RMSNorm(x)); x + mlp(RMSNorm(x))]
//! with rotary position embeddings on queries and keys and a SwiGLU MLP
//! (`down(silu(gate(x)) * up(x))`) → final RMSNorm → `(B, d_model, L)` channels-first features.
//!
//! Weight names (Llama style, no biases): `embed.weight`, `layers.{i}.attn_norm.weight`,
//! `layers.{i}.attn.{q_proj,k_proj,v_proj,o_proj}.weight`, `layers.{i}.mlp_norm.weight`,
//! `layers.{i}.mlp.{gate_proj,up_proj,down_proj}.weight`, `norm_f.weight`.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::{Backbone, Ctx, Embedding};
use crate::error::{Error, Result};
use crate::ops::{self, BlockPattern, Linear, RmsNorm, Rope, SparseAttentionConfig};

/// Epsilon of every RMSNorm.
pub const RMS_EPS: f64 = 1e-6;

/// Settings of the transformer backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Model width.
    pub d_model: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention heads (must divide `d_model`; the head size must be even for RoPE).
    pub n_heads: usize,
    /// SwiGLU hidden size; 0 = 8/3 · d_model rounded up to a multiple of 8.
    pub mlp_hidden: usize,
    /// Tokens per attention block.
    pub block: usize,
    /// Sliding-window half-width in blocks.
    pub window: usize,
    /// Leading global blocks (attend to and are attended by every token).
    pub global_blocks: usize,
    /// Random key blocks per query block.
    pub random_blocks: usize,
    /// Full attention instead of the block-sparse pattern.
    pub dense: bool,
    /// Causal (left-to-right) attention.
    pub causal: bool,
    /// RoPE base.
    pub rope_theta: f64,
    /// Dropout on each block's attention and MLP outputs (training only).
    pub dropout: f64,
    /// Seed of the random-block pattern.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            d_model: 64,
            n_layer: 4,
            n_heads: 4,
            mlp_hidden: 0,
            block: 16,
            window: 1,
            global_blocks: 1,
            random_blocks: 1,
            dense: false,
            causal: false,
            rope_theta: 10000.0,
            dropout: 0.0,
            seed: 0,
        }
    }
}

impl Config {
    /// The SwiGLU hidden size actually used.
    pub fn mlp_hidden_size(&self) -> usize {
        if self.mlp_hidden > 0 {
            self.mlp_hidden
        } else {
            (8 * self.d_model).div_ceil(3).div_ceil(8) * 8
        }
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads.max(1)
    }

    /// The attention pattern settings.
    pub fn attention(&self) -> SparseAttentionConfig {
        SparseAttentionConfig {
            block: self.block,
            window: self.window,
            global_blocks: self.global_blocks,
            random_blocks: self.random_blocks,
            causal: self.causal,
            dense: self.dense,
        }
    }

    /// Check the settings; one-line error for an impossible config.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::input(format!("transformer config: {msg}")));
        if self.d_model == 0 || self.n_heads == 0 {
            return bad(format!(
                "d_model and n_heads must be > 0 (got {} and {})",
                self.d_model, self.n_heads
            ));
        }
        if self.d_model % self.n_heads != 0 {
            return bad(format!(
                "d_model {} is not divisible by n_heads {}",
                self.d_model, self.n_heads
            ));
        }
        if self.head_dim() % 2 != 0 {
            return bad(format!(
                "head size d_model / n_heads = {} must be even for RoPE",
                self.head_dim()
            ));
        }
        if self.block == 0 {
            return bad("block must be > 0".to_string());
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return bad(format!("rope_theta must be > 0, got {}", self.rope_theta));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }

    /// The attention pattern of layer `layer` for sequences of `len` tokens.
    pub fn pattern(&self, len: usize, layer: usize) -> Result<BlockPattern> {
        Ok(BlockPattern::new(&self.attention(), len, self.seed, layer)?)
    }
}

/// Multi-head self-attention with RoPE and block-sparse (or dense) attention.
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_heads: usize,
    head_dim: usize,
}

impl Attention {
    /// `q_proj`, `k_proj`, `v_proj`, `o_proj` (`(d_model, d_model)`, no bias) from `vb`.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d_model;
        Ok(Attention {
            q_proj: Linear::load(vb.pp("q_proj"), d, d, false)?,
            k_proj: Linear::load(vb.pp("k_proj"), d, d, false)?,
            v_proj: Linear::load(vb.pp("v_proj"), d, d, false)?,
            o_proj: Linear::load(vb.pp("o_proj"), d, d, false)?,
            n_heads: cfg.n_heads,
            head_dim: cfg.head_dim(),
        })
    }

    /// `(B, L, D)` → `(B, L, D)`; `rope` must cover `L` positions, `pattern` be built for `L`.
    pub fn forward(&self, x: &Tensor, rope: &Rope, pattern: &BlockPattern) -> Result<Tensor> {
        let (b, l, d) = x.dims3()?;
        let heads = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, l, self.n_heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = rope.apply(&heads(self.q_proj.forward(x)?)?, 0)?;
        let k = rope.apply(&heads(self.k_proj.forward(x)?)?, 0)?;
        let v = heads(self.v_proj.forward(x)?)?;
        let o = ops::block_sparse_attention(&q, &k, &v, pattern)?;
        let o = o.transpose(1, 2)?.contiguous()?.reshape((b, l, d))?;
        Ok(self.o_proj.forward(&o)?)
    }
}

/// SwiGLU MLP: `down(silu(gate(x)) * up(x))`.
pub struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    /// `gate_proj`, `up_proj` (`(hidden, d_model)`) and `down_proj` (`(d_model, hidden)`) from `vb`.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (d, hdn) = (cfg.d_model, cfg.mlp_hidden_size());
        Ok(Mlp {
            gate_proj: Linear::load(vb.pp("gate_proj"), d, hdn, false)?,
            up_proj: Linear::load(vb.pp("up_proj"), d, hdn, false)?,
            down_proj: Linear::load(vb.pp("down_proj"), hdn, d, false)?,
        })
    }

    /// `(..., D)` → `(..., D)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = ops::silu_fused(&self.gate_proj.forward(x)?)?;
        let u = self.up_proj.forward(x)?;
        Ok(self.down_proj.forward(&(g * u)?)?)
    }
}

/// One pre-norm transformer block.
pub struct Block {
    attn_norm: RmsNorm,
    attn: Attention,
    mlp_norm: RmsNorm,
    mlp: Mlp,
    dropout: f64,
}

impl Block {
    /// `attn_norm`, `attn.*`, `mlp_norm`, `mlp.*` from `vb` (e.g. `layers.{i}`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        Ok(Block {
            attn_norm: RmsNorm::load(vb.pp("attn_norm"), cfg.d_model, RMS_EPS)?,
            attn: Attention::new(cfg, vb.pp("attn"))?,
            mlp_norm: RmsNorm::load(vb.pp("mlp_norm"), cfg.d_model, RMS_EPS)?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
            dropout: cfg.dropout,
        })
    }

    /// `(B, L, D)` → `(B, L, D)`: `x + attn(norm(x))`, then `x + mlp(norm(x))`.
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &Rope,
        pattern: &BlockPattern,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        let drop = |t: Tensor, ctx: &mut Ctx| -> Result<Tensor> {
            if ctx.train && self.dropout > 0.0 {
                Ok(ops::dropout(&t, self.dropout, ctx.rng)?)
            } else {
                Ok(t)
            }
        };
        let h = self
            .attn
            .forward(&self.attn_norm.forward(x)?, rope, pattern)?;
        let x = (x + drop(h, ctx)?)?;
        let h = self.mlp.forward(&self.mlp_norm.forward(&x)?)?;
        Ok((&x + drop(h, ctx)?)?)
    }
}

/// The transformer backbone.
pub struct Transformer {
    embed: Embedding,
    layers: Vec<Block>,
    norm_f: RmsNorm,
    cfg: Config,
}

impl Transformer {
    /// Build from `params` (the model has no buffers; `buffers` is unused).
    pub fn new(
        cfg: &Config,
        vocab: usize,
        params: VarBuilder,
        _buffers: VarBuilder,
    ) -> Result<Self> {
        cfg.validate()?;
        if vocab == 0 {
            return Err(Error::input("transformer: vocabulary size must be > 0"));
        }
        let embed = Embedding::new(params.pp("embed"), vocab, cfg.d_model)?;
        let layers = (0..cfg.n_layer)
            .map(|i| Block::new(cfg, params.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let norm_f = RmsNorm::load(params.pp("norm_f"), cfg.d_model, RMS_EPS)?;
        Ok(Transformer {
            embed,
            layers,
            norm_f,
            cfg: cfg.clone(),
        })
    }

    /// The config it was built from.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Hidden states `(B, L, D)` after the final norm, for ids `(B, L)`.
    pub fn forward_hidden(&self, ids: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let (_, l) = ids.dims2()?;
        if l == 0 {
            return Err(Error::input("transformer: empty sequences"));
        }
        let mut x = self.embed.forward(ids)?;
        let rope = Rope::new(
            self.cfg.head_dim(),
            l,
            self.cfg.rope_theta,
            x.dtype(),
            x.device(),
        )?;
        for (i, layer) in self.layers.iter().enumerate() {
            let pattern = self.cfg.pattern(l, i)?;
            x = layer.forward(&x, &rope, &pattern, ctx)?;
        }
        Ok(self.norm_f.forward(&x)?)
    }
}

impl Backbone for Transformer {
    fn forward(&self, ids: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let h = self.forward_hidden(ids, ctx)?;
        Ok(h.transpose(1, 2)?.contiguous()?)
    }

    fn out_channels(&self) -> usize {
        self.cfg.d_model
    }

    fn out_len(&self, len: usize) -> usize {
        len
    }
}
