//! Mamba-1 (selective state-space) backbone, optionally bidirectional (Caduceus BiMamba) and
//! reverse-complement equivariant (Caduceus RCPS).
//!
//! Embedding → `n_layer` pre-norm residual blocks `x + mixer(RMSNorm(x))` → final RMSNorm →
//! `(B, C, L)` channels-first features. The mixer is mamba_ssm's `Mamba` (slow path):
//! `in_proj` → split `x`, `z` → causal depthwise conv1d → SiLU → `x_proj` → `dt`, `B`, `C` →
//! `delta = softplus(dt_proj(dt))`, `A = -exp(A_log)` → selective scan + `x·D` → `· SiLU(z)` →
//! `out_proj`.
//!
//! Bidirectional (Caduceus `BiMambaWrapper`, strategy "add"): `mixer(x) + flip_L(mixer_rev(flip_L(x)))`;
//! with `weight_tie` the reverse mixer shares `in_proj` and `out_proj` with the forward one (then
//! both projections are applied once, which is the same function because they act per position).
//!
//! RC equivariance (Caduceus RCPS, character vocabulary only): the embedding has `2·d_model`
//! channels `[E(ids), flip_{L,C}(E(RC(ids)))]` and every block and the final norm act on the first
//! half and, with shared weights, on `flip_{L,C}` of the second half (re-flipped). Written in the
//! flipped coordinates of the second half this is the plain backbone `f` run on `ids` and on
//! `RC(ids)`, so the output is `[f(ids), flip_{L,C}(f(RC(ids)))]` and
//! `backbone(RC(ids)) = flip_{L,C}(backbone(ids))`; that is how it is computed (one batch of 2B).
//!
//! Weight names (under the backbone's builder): `embed.weight`, `layers.{i}.norm.weight`,
//! `layers.{i}.mixer.{in_proj,x_proj,out_proj}.weight`, `layers.{i}.mixer.conv1d.{weight,bias}`,
//! `layers.{i}.mixer.dt_proj.{weight,bias}`, `layers.{i}.mixer.A_log`, `layers.{i}.mixer.D`,
//! `layers.{i}.mixer_rev.*` (bidirectional; without `in_proj`/`out_proj` when tied),
//! `norm_f.weight`.

use candle_core::{DType, Module, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use super::{Backbone, Ctx, Embedding};
use crate::error::{Error, Result};
use crate::ops::{self, Conv1d, Conv1dConfig, Linear, RmsNorm};

/// RMSNorm epsilon (mamba_ssm's default).
pub const NORM_EPS: f64 = 1e-5;
/// Vocabulary size the RC-equivariant model requires (genolm's character tokenizer).
pub const RC_VOCAB_SIZE: usize = 10;
/// Complement of each character-vocabulary id: A↔T, C↔G, special tokens and N fixed.
pub const COMPLEMENT: [u32; RC_VOCAB_SIZE] = [0, 1, 2, 3, 4, 8, 7, 6, 5, 9];
/// Range of the initial `delta` (mamba_ssm's `dt_min`, `dt_max`, `dt_init_floor`).
const DT_MIN: f64 = 1e-3;
const DT_MAX: f64 = 0.1;
const DT_FLOOR: f64 = 1e-4;

/// Settings of the Mamba backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Residual stream width (per strand when `rc_equivariant`).
    pub d_model: usize,
    /// Number of residual blocks.
    pub n_layer: usize,
    /// SSM state size `N` per channel.
    pub d_state: usize,
    /// Kernel size of the causal depthwise convolution.
    pub d_conv: usize,
    /// Inner width factor: `d_inner = expand · d_model`.
    pub expand: usize,
    /// Rank of the `delta` projection; 0 means `ceil(d_model / 16)`.
    pub dt_rank: usize,
    /// Add a reverse-direction mixer (Caduceus BiMamba, "add"); false gives a causal model.
    pub bidirectional: bool,
    /// Share `in_proj` / `out_proj` between the two directions.
    pub weight_tie: bool,
    /// Reverse-complement equivariant (RCPS) model; needs the 10-token character vocabulary.
    pub rc_equivariant: bool,
    /// Dropout on each mixer output in training.
    pub dropout: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            d_model: 64,
            n_layer: 4,
            d_state: 16,
            d_conv: 4,
            expand: 2,
            dt_rank: 0,
            bidirectional: true,
            weight_tie: true,
            rc_equivariant: false,
            dropout: 0.0,
        }
    }
}

impl Config {
    /// Inner width `expand · d_model`.
    pub fn d_inner(&self) -> usize {
        self.expand * self.d_model
    }

    /// The `delta` projection rank actually used (`dt_rank`, or `ceil(d_model / 16)` when 0).
    pub fn resolved_dt_rank(&self) -> usize {
        if self.dt_rank == 0 {
            self.d_model.div_ceil(16)
        } else {
            self.dt_rank
        }
    }

    /// Check the settings for a vocabulary of `vocab` tokens.
    pub fn validate(&self, vocab: usize) -> Result<()> {
        let bad = |msg: String| Err(Error::input(format!("mamba config: {msg}")));
        if self.d_model == 0 || self.n_layer == 0 || self.d_state == 0 {
            return bad(format!(
                "d_model ({}), n_layer ({}) and d_state ({}) must be positive",
                self.d_model, self.n_layer, self.d_state
            ));
        }
        if self.d_conv == 0 || self.expand == 0 {
            return bad(format!(
                "d_conv ({}) and expand ({}) must be positive",
                self.d_conv, self.expand
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if vocab == 0 {
            return bad("vocabulary is empty".into());
        }
        if self.rc_equivariant && vocab != RC_VOCAB_SIZE {
            return bad(format!(
                "rc_equivariant needs the character vocabulary ({RC_VOCAB_SIZE} tokens: \
                 [PAD] [UNK] [CLS] [SEP] [MASK] A C G T N), got a vocabulary of {vocab}"
            ));
        }
        Ok(())
    }
}

/// Reverse `x` along dimension `dim` (an `index_select`, whose backward is an index-add).
pub fn flip(x: &Tensor, dim: usize) -> Result<Tensor> {
    let n = x.dim(dim)?;
    let idx: Vec<u32> = (0..n as u32).rev().collect();
    let idx = Tensor::from_vec(idx, n, x.device())?;
    Ok(x.index_select(&idx, dim)?)
}

/// Fetch `name`; when the builder creates it fresh, replace its value by `make(draw)` where
/// `draw` is the builder's initial value from `hint` (the variable is updated in place).
fn get_custom<S: Into<Shape>>(
    vb: &VarBuilder,
    shape: S,
    name: &str,
    hint: Init,
    make: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let fresh = !vb.contains_tensor(name);
    let t = vb.get_with_hints(shape, name, hint)?;
    if !fresh {
        return Ok(t);
    }
    let v = make(&t)?.to_dtype(t.dtype())?;
    if t.is_variable() {
        Var::from_tensor(&t)?.set(&v)?;
        Ok(t)
    } else {
        Ok(v)
    }
}

/// The selective-SSM core of a mixer: everything between `in_proj` and `out_proj`.
pub struct Ssm {
    conv1d: Conv1d,
    x_proj: Linear,
    dt_proj: Linear,
    a_log: Tensor,
    d: Tensor,
    d_inner: usize,
    d_state: usize,
    dt_rank: usize,
}

impl Ssm {
    /// Load `conv1d.{weight,bias}`, `x_proj.weight`, `dt_proj.{weight,bias}`, `A_log`, `D` from
    /// `vb`, initialised as in mamba_ssm when created.
    pub fn load(vb: &VarBuilder, cfg: &Config) -> Result<Self> {
        let (di, n, r, k) = (
            cfg.d_inner(),
            cfg.d_state,
            cfg.resolved_dt_rank(),
            cfg.d_conv,
        );
        let conv1d = Conv1d::load(
            vb.pp("conv1d"),
            di,
            di,
            k,
            Conv1dConfig {
                padding: k - 1,
                groups: di,
                ..Default::default()
            },
            true,
        )?;
        let x_proj = Linear::load(vb.pp("x_proj"), di, r + 2 * n, false)?;
        let std = 1.0 / (r as f64).sqrt();
        let dtp = vb.pp("dt_proj");
        let w = dtp.get_with_hints((di, r), "weight", Init::Uniform { lo: -std, up: std })?;
        // Bias = softplus^-1(dt) with dt log-uniform in [DT_MIN, DT_MAX] (mamba_ssm).
        let bias = get_custom(&dtp, di, "bias", Init::Uniform { lo: 0.0, up: 1.0 }, |u| {
            let (lo, hi) = (DT_MIN.ln(), DT_MAX.ln());
            let vals: Vec<f64> = u
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?
                .into_iter()
                .map(|u| {
                    let dt = (u * (hi - lo) + lo).exp().max(DT_FLOOR);
                    dt + (-(-dt).exp_m1()).ln()
                })
                .collect();
            Ok(Tensor::from_vec(vals, di, u.device())?)
        })?;
        let dt_proj = Linear::new(w, Some(bias));
        let a_log = get_custom(vb, (di, n), "A_log", Init::Const(0.0), |t| {
            let vals: Vec<f64> = (0..di)
                .flat_map(|_| (1..=n).map(|j| (j as f64).ln()))
                .collect();
            Ok(Tensor::from_vec(vals, (di, n), t.device())?)
        })?;
        let d = vb.get_with_hints(di, "D", Init::Const(1.0))?;
        Ok(Ssm {
            conv1d,
            x_proj,
            dt_proj,
            a_log,
            d,
            d_inner: di,
            d_state: n,
            dt_rank: r,
        })
    }

    /// `in_proj` output `xz (B, L, 2·d_inner)` → gated SSM output `(B, L, d_inner)`.
    pub fn forward(&self, xz: &Tensor) -> Result<Tensor> {
        let (_, l, _) = xz.dims3()?;
        let (di, n, r) = (self.d_inner, self.d_state, self.dt_rank);
        let x = xz.narrow(2, 0, di)?.transpose(1, 2)?.contiguous()?;
        let z = xz.narrow(2, di, di)?;
        // Causal depthwise convolution: pad K-1 on both sides, keep the first L outputs.
        let x = self.conv1d.forward(&x)?.narrow(2, 0, l)?;
        let x = ops::silu_fused(&x)?; // (B, Di, L)
        let dbl = self.x_proj.forward(&x.transpose(1, 2)?)?; // (B, L, R + 2N)
        let dt = dbl.narrow(2, 0, r)?;
        let bm = dbl.narrow(2, r, n)?.transpose(1, 2)?.contiguous()?;
        let cm = dbl.narrow(2, r + n, n)?.transpose(1, 2)?.contiguous()?;
        let delta = ops::softplus_fused(&self.dt_proj.forward(&dt)?)?
            .transpose(1, 2)?
            .contiguous()?;
        let a = self.a_log.exp()?.neg()?;
        let y = ops::selective_scan(&x, &delta, &a, &bm, &cm)?;
        let y = (y + ops::channel_mul(&x, &self.d, 1)?)?;
        Ok((y.transpose(1, 2)? * ops::silu_fused(&z)?)?)
    }
}

/// `in_proj` / `out_proj` of a mixer direction.
struct Proj {
    in_proj: Linear,
    out_proj: Linear,
}

impl Proj {
    fn load(vb: &VarBuilder, cfg: &Config) -> Result<Self> {
        let (dm, di) = (cfg.d_model, cfg.d_inner());
        let in_proj = Linear::load(vb.pp("in_proj"), dm, 2 * di, false)?;
        // PyTorch's default Linear init, rescaled by 1/sqrt(n_layer) as mamba_ssm does for
        // the projections that feed the residual stream.
        let bound = 1.0 / ((di * cfg.n_layer.max(1)) as f64).sqrt();
        let w = vb.pp("out_proj").get_with_hints(
            (dm, di),
            "weight",
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        Ok(Proj {
            in_proj,
            out_proj: Linear::new(w, None),
        })
    }
}

/// A Mamba mixer `(B, L, d_model) → (B, L, d_model)`, optionally bidirectional.
pub struct Mixer {
    proj: Proj,
    ssm: Ssm,
    /// Reverse direction: its own projections unless tied, and its SSM core.
    rev: Option<(Option<Proj>, Ssm)>,
}

impl Mixer {
    /// Load from a layer's builder: `mixer.*` and, when bidirectional, `mixer_rev.*`.
    pub fn load(layer: &VarBuilder, cfg: &Config) -> Result<Self> {
        let fwd = layer.pp("mixer");
        let proj = Proj::load(&fwd, cfg)?;
        let ssm = Ssm::load(&fwd, cfg)?;
        let rev = if cfg.bidirectional {
            let rv = layer.pp("mixer_rev");
            let p = if cfg.weight_tie {
                None
            } else {
                Some(Proj::load(&rv, cfg)?)
            };
            Some((p, Ssm::load(&rv, cfg)?))
        } else {
            None
        };
        Ok(Mixer { proj, ssm, rev })
    }

    /// Mix `x (B, L, d_model)` along the sequence.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let xz = self.proj.in_proj.forward(x)?;
        let y = self.ssm.forward(&xz)?;
        match &self.rev {
            None => Ok(self.proj.out_proj.forward(&y)?),
            // Tied projections act per position, so they commute with the flips.
            Some((None, ssm)) => {
                let yr = flip(&ssm.forward(&flip(&xz, 1)?)?, 1)?;
                Ok(self.proj.out_proj.forward(&(y + yr)?)?)
            }
            Some((Some(p), ssm)) => {
                let xzr = p.in_proj.forward(&flip(x, 1)?)?;
                let yr = p.out_proj.forward(&ssm.forward(&xzr)?)?;
                Ok((self.proj.out_proj.forward(&y)? + flip(&yr, 1)?)?)
            }
        }
    }
}

/// A pre-norm residual block `x + mixer(RMSNorm(x))`.
pub struct Block {
    norm: RmsNorm,
    mixer: Mixer,
}

impl Block {
    /// Load `norm.weight` and the mixer from a layer's builder.
    pub fn load(layer: &VarBuilder, cfg: &Config) -> Result<Self> {
        Ok(Block {
            norm: RmsNorm::load(layer.pp("norm"), cfg.d_model, NORM_EPS)?,
            mixer: Mixer::load(layer, cfg)?,
        })
    }

    /// `x (B, L, d_model)` → `(B, L, d_model)`; dropout `p` on the mixer output in training.
    pub fn forward(&self, x: &Tensor, p: f64, ctx: &mut Ctx) -> Result<Tensor> {
        let mut h = self.mixer.forward(&self.norm.forward(x)?)?;
        if ctx.train && p > 0.0 {
            h = ops::dropout(&h, p, ctx.rng)?;
        }
        Ok((x + h)?)
    }
}

/// The Mamba backbone (see the module docs).
pub struct Mamba {
    embed: Embedding,
    layers: Vec<Block>,
    norm_f: RmsNorm,
    /// Complement table for RC equivariance.
    complement: Option<Tensor>,
    cfg: Config,
}

impl Mamba {
    /// Build from `params`; `buffers` is unused (no running statistics).
    pub fn new(
        cfg: &Config,
        vocab: usize,
        params: VarBuilder,
        _buffers: VarBuilder,
    ) -> Result<Self> {
        cfg.validate(vocab)?;
        let embed = Embedding::new(params.pp("embed"), vocab, cfg.d_model)?;
        let layers = (0..cfg.n_layer)
            .map(|i| Block::load(&params.pp(format!("layers.{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        let norm_f = RmsNorm::load(params.pp("norm_f"), cfg.d_model, NORM_EPS)?;
        let complement = if cfg.rc_equivariant {
            Some(Tensor::new(&COMPLEMENT, params.device())?)
        } else {
            None
        };
        Ok(Mamba {
            embed,
            layers,
            norm_f,
            complement,
            cfg: cfg.clone(),
        })
    }

    /// The settings it was built from.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The plain (single-strand) stack on `ids (B, L)` → `(B, L, d_model)`.
    fn stack(&self, ids: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let mut x = self.embed.forward(ids)?;
        for layer in &self.layers {
            x = layer.forward(&x, self.cfg.dropout, ctx)?;
        }
        Ok(self.norm_f.forward(&x)?)
    }
}

/// Reverse complement of `ids (B, L)` under `table` (complement per id).
fn reverse_complement(ids: &Tensor, table: &Tensor) -> Result<Tensor> {
    let (b, l) = ids.dims2()?;
    let comp = table
        .index_select(&ids.flatten_all()?, 0)?
        .reshape((b, l))?;
    flip(&comp, 1)
}

impl Backbone for Mamba {
    fn forward(&self, ids: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let (b, _) = ids.dims2()?;
        let ids = ids.to_dtype(DType::U32)?;
        let out = match &self.complement {
            None => self.stack(&ids, ctx)?,
            Some(table) => {
                let both = Tensor::cat(&[&ids, &reverse_complement(&ids, table)?], 0)?;
                let h = self.stack(&both, ctx)?;
                let fwd = h.narrow(0, 0, b)?;
                let rc = flip(&flip(&h.narrow(0, b, b)?, 1)?, 2)?;
                Tensor::cat(&[&fwd, &rc], 2)?
            }
        };
        Ok(out.transpose(1, 2)?.contiguous()?)
    }

    fn out_channels(&self) -> usize {
        if self.cfg.rc_equivariant {
            2 * self.cfg.d_model
        } else {
            self.cfg.d_model
        }
    }

    fn out_len(&self, len: usize) -> usize {
        len
    }
}
