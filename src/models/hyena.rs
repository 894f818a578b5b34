//! Hyena (HyenaDNA): pre-norm blocks of [LayerNorm → Hyena operator] + [LayerNorm → MLP], with
//! an implicit long filter applied by FFT convolution ([`crate::ops::fft_conv`]). The MLP is
//! `fc1` (d → 4d) → GELU (tanh approximation, as HyenaDNA's `approximate="tanh"`) → `fc2`.
//!
//! The operator is HyenaDNA's `HyenaOperator` of order 2 (`standalone_hyenadna.py`):
//! `in_proj` (d → 3d) → short depthwise conv → split `x0, x1, v` → `v = v x1` →
//! `v = fft_conv(v, k) + v bias` → `y = v x0` → `out_proj`. The long filter `k` comes from
//! `HyenaFilter`: positional features → Linear → Sin → (Linear → Sin) × 2 → Linear (no bias) →
//! exponential decay. It is computed for the actual sequence length on every call.
//!
//! Causal mode (`bidirectional = false`) is HyenaDNA exactly (left-padded short conv, kernel of
//! `L` taps over lags `0..L`). Bidirectional mode centres the short conv and evaluates the filter
//! at the signed lags `-(L-1)..=(L-1)` (a two-sided kernel of `2L - 1` taps): the features of lag
//! `τ` are `[τ/(L-1), cos(f·2πτ/L), -sin(f·2πτ/L)]` — for `τ ≥ 0` exactly HyenaDNA's — and the
//! decay uses `|τ|/(L-1)`, so the two sides can differ (the sine features are odd in `τ`).
//!
//! Differences from HyenaDNA kept on purpose: the three `Sin` activations have their own `freq`
//! (HyenaDNA shares one module, so its three state-dict entries are always equal; such a
//! checkpoint loads unchanged); the positional features are recomputed, not a parameter; the
//! implicit-filter MLP starts from PyTorch's `nn.Linear` default init (HyenaDNA's 0.02-std
//! re-init of every Linear makes the long filter ~1e-4 at the start). The block Linears use
//! HyenaDNA's GPT-2 init: N(0, 0.02), zero bias, `out_proj`/`fc2` scaled by `1/sqrt(2 n_layer)`.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use super::{Backbone, Ctx, Embedding};
use crate::error::{Error, Result};
use crate::ops::{self, Conv1d, Conv1dConfig, LayerNorm, Linear};

/// LayerNorm epsilon (HyenaDNA's `layer_norm_epsilon`).
pub const LN_EPS: f64 = 1e-5;
/// Fastest decay (`ExponentialModulation`, HyenaDNA defaults), as a fraction of the sequence.
pub const FAST_DECAY_PCT: f64 = 0.3;
/// Slowest decay, as a fraction of the sequence, at which a channel falls to [`DECAY_TARGET`].
pub const SLOW_DECAY_PCT: f64 = 1.5;
/// Value the modulation window reaches at the decay length.
pub const DECAY_TARGET: f64 = 1e-2;
/// Constant added to the decay window.
pub const DECAY_SHIFT: f64 = 0.0;
/// Std of the GPT-2-style init of the block Linears.
const INIT_STD: f64 = 0.02;

/// Settings of the Hyena backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Width of the implicit-filter MLP.
    pub filter_order: usize,
    /// Positional features fed to the filter MLP (odd, >= 3: time + sin/cos bands).
    pub emb_dim: usize,
    /// Kernel size of the short depthwise convolution (odd when bidirectional).
    pub short_filter: usize,
    /// Two-sided long filter and centred short conv; `false` = causal (HyenaDNA).
    pub bidirectional: bool,
    /// Dropout on the embedding and on each residual branch (training only).
    pub dropout: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            d_model: 64,
            n_layer: 4,
            filter_order: 64,
            emb_dim: 5,
            short_filter: 3,
            bidirectional: true,
            dropout: 0.0,
        }
    }
}

impl Config {
    /// Check the settings; one clear line for the first problem found.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::input(format!("hyena config: {msg}")));
        if self.d_model == 0 || self.n_layer == 0 || self.filter_order == 0 {
            return bad(format!(
                "d_model, n_layer and filter_order must be positive (got {}, {}, {})",
                self.d_model, self.n_layer, self.filter_order
            ));
        }
        if self.emb_dim < 3 || self.emb_dim % 2 == 0 {
            return bad(format!(
                "emb_dim must be odd and >= 3 (got {})",
                self.emb_dim
            ));
        }
        if self.short_filter == 0 || (self.bidirectional && self.short_filter % 2 == 0) {
            return bad(format!(
                "short_filter must be positive, and odd when bidirectional (got {})",
                self.short_filter
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1) (got {})", self.dropout));
        }
        Ok(())
    }
}

/// `torch.linspace(start, end, steps)` in f64 (same halfway-symmetric formula).
fn linspace(start: f64, end: f64, steps: usize) -> Vec<f64> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f64;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                start + step * i as f64
            } else {
                end - step * (steps - 1 - i) as f64
            }
        })
        .collect()
}

/// Signed lags of a kernel for length `len`: `0..len`, or `-(len-1)..=len-1` when bidirectional.
fn lags(len: usize, bidirectional: bool) -> Vec<i64> {
    if bidirectional {
        (-(len as i64 - 1)..len as i64).collect()
    } else {
        (0..len as i64).collect()
    }
}

/// Row-major `z (K, emb_dim)` and `t (K)` in f64; see [`positional_features`].
fn features_f64(len: usize, emb_dim: usize, bidirectional: bool) -> (Vec<f64>, Vec<f64>) {
    let bands = (emb_dim - 1) / 2;
    let f = linspace(1e-4, (bands - 1) as f64, bands);
    let tn = linspace(0.0, 1.0, len);
    let lags = lags(len, bidirectional);
    let mut z = Vec::with_capacity(lags.len() * emb_dim);
    let mut t = Vec::with_capacity(lags.len());
    for &lag in &lags {
        let a = tn[lag.unsigned_abs() as usize];
        let w = 2.0 * std::f64::consts::PI * lag as f64 / len as f64;
        z.push(if lag < 0 { -a } else { a });
        z.extend(f.iter().map(|fi| (fi * w).cos()));
        z.extend(f.iter().map(|fi| -(fi * w).sin()));
        t.push(a);
    }
    (z, t)
}

/// Filter inputs for sequence length `len`: features `z (K, emb_dim)` and decay times `t (K, 1)`.
///
/// Causal: `K = len`, lags `0..len`. Bidirectional: `K = 2 len - 1`, lags `-(len-1)..=len-1`
/// (index `j` is lag `j - (len - 1)`). Lag `τ` gets `[s, cos(f_i w), .., -sin(f_i w), ..]` with
/// `s = sign(τ) linspace(0, 1, len)[|τ|]`, `w = 2π τ / len`, `f = linspace(1e-4, bands - 1,
/// bands)`, `bands = (emb_dim - 1) / 2` (HyenaDNA's `PositionalEmbedding`), and `t = |s|`.
pub fn positional_features(
    len: usize,
    emb_dim: usize,
    bidirectional: bool,
    dtype: DType,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    if len == 0 || emb_dim < 3 || emb_dim % 2 == 0 {
        return Err(Error::input(format!(
            "hyena positional features: need len >= 1 and odd emb_dim >= 3 (got {len}, {emb_dim})"
        )));
    }
    let (z, t) = features_f64(len, emb_dim, bidirectional);
    let k = t.len();
    let z = Tensor::from_vec(z, (k, emb_dim), dev)?.to_dtype(dtype)?;
    let t = Tensor::from_vec(t, (k, 1), dev)?.to_dtype(dtype)?;
    Ok((z, t))
}

/// HyenaDNA's `ExponentialModulation` rates `|deltas|` for `d_model` channels.
pub fn modulation_rates(d_model: usize) -> Vec<f64> {
    let max_decay = DECAY_TARGET.ln() / FAST_DECAY_PCT;
    let min_decay = DECAY_TARGET.ln() / SLOW_DECAY_PCT;
    linspace(min_decay, max_decay, d_model)
        .into_iter()
        .map(f64::abs)
        .collect()
}

/// PyTorch's `nn.Linear` default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), weight and bias.
fn torch_linear(vb: VarBuilder, i: usize, o: usize, bias: bool) -> Result<Linear> {
    let bound = 1.0 / (i.max(1) as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let w = vb.get_with_hints((o, i), "weight", init)?;
    let b = if bias {
        Some(vb.get_with_hints(o, "bias", init)?)
    } else {
        None
    };
    Ok(Linear::new(w, b))
}

/// GPT-2 init as in HyenaDNA's `_init_weights`: weight N(0, std), bias 0.
fn gpt2_linear(vb: VarBuilder, i: usize, o: usize, std: f64) -> Result<Linear> {
    let w = vb.get_with_hints(
        (o, i),
        "weight",
        Init::Randn {
            mean: 0.0,
            stdev: std,
        },
    )?;
    let b = vb.get_with_hints(o, "bias", Init::Const(0.0))?;
    Ok(Linear::new(w, Some(b)))
}

/// HyenaDNA's implicit long filter (`HyenaFilter`) for `d_model` channels.
///
/// Weights: `bias (d_model)`, `implicit_filter.{0,2,4}.{weight,bias}`,
/// `implicit_filter.{1,3,5}.freq (1, filter_order)`, `implicit_filter.6.weight`.
pub struct HyenaFilter {
    bias: Tensor,
    linears: Vec<Linear>,
    freqs: Vec<Tensor>,
    rates: Vec<f64>,
    emb_dim: usize,
}

impl HyenaFilter {
    /// Build from `vb`; `freq` starts at 1, `bias` at N(0, 1) as in HyenaDNA.
    pub fn new(
        vb: VarBuilder,
        d_model: usize,
        filter_order: usize,
        emb_dim: usize,
    ) -> Result<Self> {
        if d_model == 0 || filter_order == 0 || emb_dim < 3 || emb_dim % 2 == 0 {
            return Err(Error::input(format!(
                "hyena filter: need d_model, filter_order >= 1 and odd emb_dim >= 3 \
                 (got {d_model}, {filter_order}, {emb_dim})"
            )));
        }
        let bias = vb.get_with_hints(
            d_model,
            "bias",
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let mlp = vb.pp("implicit_filter");
        let linears = vec![
            torch_linear(mlp.pp("0"), emb_dim, filter_order, true)?,
            torch_linear(mlp.pp("2"), filter_order, filter_order, true)?,
            torch_linear(mlp.pp("4"), filter_order, filter_order, true)?,
            torch_linear(mlp.pp("6"), filter_order, d_model, false)?,
        ];
        let freqs = ["1", "3", "5"]
            .iter()
            .map(|i| {
                mlp.pp(*i)
                    .get_with_hints((1, filter_order), "freq", Init::Const(1.0))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(HyenaFilter {
            bias,
            linears,
            freqs,
            rates: modulation_rates(d_model),
            emb_dim,
        })
    }

    /// The `(d_model)` pass-through coefficient `D` of `y = k * v + D v`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The long kernel `(d_model, K)` for sequence length `len` (`K = len`, or `2 len - 1`
    /// when `bidirectional`, index `j` ↔ lag `j - (len - 1)`).
    pub fn kernel(&self, len: usize, bidirectional: bool) -> Result<Tensor> {
        if len == 0 {
            return Err(Error::input("hyena filter: length must be positive"));
        }
        let (dtype, dev) = (self.bias.dtype(), self.bias.device());
        let (z, t) = features_f64(len, self.emb_dim, bidirectional);
        let k = t.len();
        let d = self.rates.len();
        // ExponentialModulation window exp(-t |delta|) + shift, (K, d_model), a constant.
        let window: Vec<f64> = t
            .iter()
            .flat_map(|&ti| {
                self.rates
                    .iter()
                    .map(move |r| (-ti * r).exp() + DECAY_SHIFT)
            })
            .collect();
        let window = Tensor::from_vec(window, (k, d), dev)?.to_dtype(dtype)?;
        let mut h = Tensor::from_vec(z, (k, self.emb_dim), dev)?.to_dtype(dtype)?;
        for (lin, freq) in self.linears.iter().zip(&self.freqs) {
            h = lin.forward(&h)?.broadcast_mul(freq)?.sin()?;
        }
        let h = self.linears[3].forward(&h)?; // (K, d_model)
        Ok((h * window)?.t()?.contiguous()?)
    }
}

/// HyenaDNA's `HyenaOperator` (order 2) on `(B, L, d_model)` inputs.
///
/// Weights: `in_proj`, `short_filter`, `out_proj`, `filter_fn.*` (see [`HyenaFilter`]).
pub struct HyenaOperator {
    in_proj: Linear,
    short_filter: Conv1d,
    out_proj: Linear,
    filter_fn: HyenaFilter,
    d_model: usize,
    short_k: usize,
    bidirectional: bool,
}

impl HyenaOperator {
    /// Build from `vb` with the sizes of `cfg` (`cfg.n_layer` scales the `out_proj` init).
    pub fn new(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        cfg.validate()?;
        let d = cfg.d_model;
        let inner = 3 * d;
        let padding = if cfg.bidirectional {
            (cfg.short_filter - 1) / 2
        } else {
            0
        };
        let short_filter = Conv1d::load(
            vb.pp("short_filter"),
            inner,
            inner,
            cfg.short_filter,
            Conv1dConfig {
                padding,
                groups: inner,
                ..Default::default()
            },
            true,
        )?;
        Ok(HyenaOperator {
            in_proj: gpt2_linear(vb.pp("in_proj"), d, inner, INIT_STD)?,
            short_filter,
            out_proj: gpt2_linear(
                vb.pp("out_proj"),
                d,
                d,
                INIT_STD / (2.0 * cfg.n_layer as f64).sqrt(),
            )?,
            filter_fn: HyenaFilter::new(vb.pp("filter_fn"), d, cfg.filter_order, cfg.emb_dim)?,
            d_model: d,
            short_k: cfg.short_filter,
            bidirectional: cfg.bidirectional,
        })
    }

    /// The implicit long filter.
    pub fn filter(&self) -> &HyenaFilter {
        &self.filter_fn
    }

    /// `(B, L, d_model)` → `(B, L, d_model)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, l, d) = x.dims3()?;
        if d != self.d_model || l == 0 {
            return Err(Error::input(format!(
                "hyena operator: input must be (batch, length >= 1, {}), got {:?}",
                self.d_model,
                x.dims()
            )));
        }
        let u = self.in_proj.forward(x)?.transpose(1, 2)?.contiguous()?; // (B, 3d, L)
        let u = if self.bidirectional {
            u
        } else {
            u.pad_with_zeros(2, self.short_k - 1, 0)?
        };
        let uc = self.short_filter.forward(&u)?;
        let x0 = uc.narrow(1, 0, d)?;
        let x1 = uc.narrow(1, d, d)?;
        let v = uc.narrow(1, 2 * d, d)?;
        let v = (v * x1)?;
        let k = self.filter_fn.kernel(l, self.bidirectional)?;
        let offset = if self.bidirectional { l - 1 } else { 0 };
        let skip = ops::channel_mul(&v, &self.filter_fn.bias, 1)?;
        let v = (ops::fft_conv(&v, &k, offset)? + skip)?;
        let y = (v * x0)?.transpose(1, 2)?.contiguous()?;
        Ok(self.out_proj.forward(&y)?)
    }
}

/// One pre-norm block: `x + mixer(norm1(x))`, then `x + mlp(norm2(x))`.
struct Block {
    norm1: LayerNorm,
    mixer: HyenaOperator,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// Dropout in training mode with `p > 0`, identity otherwise.
fn maybe_dropout(x: Tensor, p: f64, ctx: &mut Ctx) -> Result<Tensor> {
    if ctx.train && p > 0.0 {
        Ok(ops::dropout(&x, p, &mut *ctx.rng)?)
    } else {
        Ok(x)
    }
}

impl Block {
    fn new(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let d = cfg.d_model;
        Ok(Block {
            norm1: LayerNorm::load(vb.pp("norm1"), d, LN_EPS, true)?,
            mixer: HyenaOperator::new(vb.pp("mixer"), cfg)?,
            norm2: LayerNorm::load(vb.pp("norm2"), d, LN_EPS, true)?,
            fc1: gpt2_linear(vb.pp("mlp.fc1"), d, 4 * d, INIT_STD)?,
            fc2: gpt2_linear(
                vb.pp("mlp.fc2"),
                4 * d,
                d,
                INIT_STD / (2.0 * cfg.n_layer as f64).sqrt(),
            )?,
        })
    }

    fn forward(&self, x: &Tensor, p: f64, ctx: &mut Ctx) -> Result<Tensor> {
        let h = self.mixer.forward(&self.norm1.forward(x)?)?;
        let x = (x + maybe_dropout(h, p, ctx)?)?;
        let h = self.fc1.forward(&self.norm2.forward(&x)?)?;
        let h = self.fc2.forward(&ops::gelu_fused(&h)?)?;
        Ok((x + maybe_dropout(h, p, ctx)?)?)
    }
}

/// The Hyena backbone: embedding → `n_layer` blocks → final LayerNorm, `(B, d_model, L)` out.
///
/// Weights: `embed.weight`, `layers.{i}.{norm1,norm2}.{weight,bias}`, `layers.{i}.mixer.*`
/// (see [`HyenaOperator`]), `layers.{i}.mlp.{fc1,fc2}.{weight,bias}`, `norm_f.{weight,bias}`.
pub struct Hyena {
    embed: Embedding,
    layers: Vec<Block>,
    norm_f: LayerNorm,
    cfg: Config,
}

impl Hyena {
    /// Build from `params` (no buffers are used).
    pub fn new(
        cfg: &Config,
        vocab: usize,
        params: VarBuilder,
        _buffers: VarBuilder,
    ) -> Result<Self> {
        cfg.validate()?;
        if vocab == 0 {
            return Err(Error::input("hyena: vocabulary size must be positive"));
        }
        let embed = Embedding::new(params.pp("embed"), vocab, cfg.d_model)?;
        let layers = (0..cfg.n_layer)
            .map(|i| Block::new(params.pp(format!("layers.{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        let norm_f = LayerNorm::load(params.pp("norm_f"), cfg.d_model, LN_EPS, true)?;
        Ok(Hyena {
            embed,
            layers,
            norm_f,
            cfg: cfg.clone(),
        })
    }

    /// The operator of block `i`, if there is one.
    pub fn mixer(&self, i: usize) -> Option<&HyenaOperator> {
        self.layers.get(i).map(|b| &b.mixer)
    }
}

impl Backbone for Hyena {
    fn forward(&self, ids: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let (_, l) = ids.dims2()?;
        if l == 0 {
            return Err(Error::input("hyena: empty sequences"));
        }
        let mut x = maybe_dropout(self.embed.forward(ids)?, self.cfg.dropout, ctx)?;
        for b in &self.layers {
            x = b.forward(&x, self.cfg.dropout, ctx)?;
        }
        let x = self.norm_f.forward(&x)?;
        Ok(x.transpose(1, 2)?.contiguous()?)
    }

    fn out_channels(&self) -> usize {
        self.cfg.d_model
    }

    fn out_len(&self, len: usize) -> usize {
        len
    }
}
