//! Normalisation layers composed from differentiable candle ops (gradients reach every input
//! and parameter, unlike candle-nn's fused `LayerNorm`/`RmsNorm` fast paths).

use candle_core::{bail, DType, Module, ModuleT, Result, Tensor, Var, D};
use candle_nn::VarBuilder;

/// Run `f` in f32 for half-precision inputs and convert back; identity for f32/f64.
fn with_float_dtype(x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    match x.dtype() {
        DType::F16 | DType::BF16 => f(&x.to_dtype(DType::F32)?)?.to_dtype(x.dtype()),
        _ => f(x),
    }
}

fn check_param(name: &str, p: &Tensor, size: usize, op: &str) -> Result<()> {
    if p.dims() != [size] {
        bail!("{op}: {name} must have shape ({size},), got {:?}", p.dims())
    }
    Ok(())
}

/// Layer normalisation over the last dimension: `(x - mean) / sqrt(var + eps) * gamma (+ beta)`.
///
/// `gamma` and `beta` have shape `(D)` where `D` is the last dimension of `x`; the variance is
/// the biased (population) one, as in PyTorch.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    check_param("gamma", gamma, d, "layer_norm")?;
    if let Some(b) = beta {
        check_param("beta", b, d, "layer_norm")?;
    }
    let xn = with_float_dtype(x, |x| {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        xc.broadcast_div(&(var + eps)?.sqrt()?)
    })?;
    let last = xn.rank() - 1;
    let y = super::channel_mul(&xn, gamma, last)?;
    match beta {
        None => Ok(y),
        Some(b) => super::channel_add(&y, b, last),
    }
}

/// RMS normalisation over the last dimension: `x / sqrt(mean(x^2) + eps) * gamma`.
pub fn rms_norm(x: &Tensor, gamma: &Tensor, eps: f64) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    check_param("gamma", gamma, d, "rms_norm")?;
    let xn = with_float_dtype(x, |x| {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(ms + eps)?.sqrt()?)
    })?;
    let last = xn.rank() - 1;
    super::channel_mul(&xn, gamma, last)
}

/// Layer normalisation layer with `weight` (gamma, init 1) and optional `bias` (beta, init 0).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
}

impl LayerNorm {
    /// Wrap existing `(D)` parameters.
    pub fn new(weight: Tensor, bias: Option<Tensor>, eps: f64) -> Self {
        Self { weight, bias, eps }
    }

    /// Fetch (or create) `weight` and, when `affine_bias`, `bias` of size `size` from `vb`.
    pub fn load(vb: VarBuilder, size: usize, eps: f64, affine_bias: bool) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?;
        let bias = if affine_bias {
            Some(vb.get_with_hints(size, "bias", candle_nn::Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self { weight, bias, eps })
    }

    /// The `(D)` scale.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The `(D)` shift, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.weight, self.bias.as_ref(), self.eps)
    }
}

/// RMS normalisation layer with a `weight` (init 1).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Wrap an existing `(D)` weight.
    pub fn new(weight: Tensor, eps: f64) -> Self {
        Self { weight, eps }
    }

    /// Fetch (or create) `weight` of size `size` from `vb`.
    pub fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?;
        Ok(Self { weight, eps })
    }

    /// The `(D)` scale.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        rms_norm(x, &self.weight, self.eps)
    }
}

/// Hyper-parameters of [`BatchNorm1d`] (PyTorch defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Weight of the new batch statistic in the running averages.
    pub momentum: f64,
    /// Learn a per-channel scale (`weight`) and shift (`bias`).
    pub affine: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: 0.1,
            affine: true,
        }
    }
}

/// Batch normalisation over `(B, C, L)` or `(B, C)` inputs, per channel `C`.
///
/// Training mode (`forward_t(x, true)`) normalises with the batch mean and biased variance
/// (gradients flow through them) and updates `running_mean` / `running_var` (unbiased variance,
/// `momentum` weighting) in place. Eval mode normalises with the running statistics.
///
/// The running statistics are *buffers*, never trainable: [`BatchNorm1d::load`] keeps them in
/// private [`Var`]s that belong to no `VarMap`, so an optimiser built from the model's `VarMap`
/// cannot touch them. To save/load them, use [`BatchNorm1d::load_with_buffers`] with a
/// `VarBuilder` over a *separate* `VarMap` (or safetensors file) that holds only buffers; they
/// get the names `running_mean` and `running_var` under that builder's prefix.
#[derive(Debug, Clone)]
pub struct BatchNorm1d {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    running_mean: Var,
    running_var: Var,
    num_features: usize,
    config: BatchNormConfig,
}

impl BatchNorm1d {
    /// Parameters from `vb` (`weight` init 1, `bias` init 0); running stats in private buffers.
    pub fn load(vb: VarBuilder, num_features: usize, config: BatchNormConfig) -> Result<Self> {
        let running_mean = Var::zeros(num_features, vb.dtype(), vb.device())?;
        let running_var = Var::ones(num_features, vb.dtype(), vb.device())?;
        Self::assemble(vb, num_features, config, running_mean, running_var)
    }

    /// Parameters from `vb`; running stats `running_mean` / `running_var` from `buffers`.
    ///
    /// When `buffers` is backed by a `VarMap`, updates made in training are visible in it (the
    /// same storage is shared), so saving that `VarMap` checkpoints the statistics.
    pub fn load_with_buffers(
        vb: VarBuilder,
        buffers: VarBuilder,
        num_features: usize,
        config: BatchNormConfig,
    ) -> Result<Self> {
        let rm =
            buffers.get_with_hints(num_features, "running_mean", candle_nn::Init::Const(0.0))?;
        let rv =
            buffers.get_with_hints(num_features, "running_var", candle_nn::Init::Const(1.0))?;
        let (rm, rv) = (Var::from_tensor(&rm)?, Var::from_tensor(&rv)?);
        Self::assemble(vb, num_features, config, rm, rv)
    }

    fn assemble(
        vb: VarBuilder,
        num_features: usize,
        config: BatchNormConfig,
        running_mean: Var,
        running_var: Var,
    ) -> Result<Self> {
        if !(config.eps >= 0.0 && (0.0..=1.0).contains(&config.momentum)) {
            bail!("batch_norm: need eps >= 0 and momentum in [0, 1], got {config:?}")
        }
        let (weight, bias) = if config.affine {
            let w = vb.get_with_hints(num_features, "weight", candle_nn::Init::Const(1.0))?;
            let b = vb.get_with_hints(num_features, "bias", candle_nn::Init::Const(0.0))?;
            (Some(w), Some(b))
        } else {
            (None, None)
        };
        Ok(Self {
            weight,
            bias,
            running_mean,
            running_var,
            num_features,
            config,
        })
    }

    /// The running per-channel mean (a buffer, not trainable).
    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }

    /// The running per-channel unbiased variance (a buffer, not trainable).
    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }

    /// Overwrite the running statistics (e.g. after loading a checkpoint).
    pub fn set_running_stats(&self, mean: &Tensor, var: &Tensor) -> Result<()> {
        self.running_mean
            .set(&mean.to_dtype(self.running_mean.dtype())?)?;
        self.running_var
            .set(&var.to_dtype(self.running_var.dtype())?)
    }

    /// The learned `(C)` scale, if affine.
    pub fn weight(&self) -> Option<&Tensor> {
        self.weight.as_ref()
    }

    /// The learned `(C)` shift, if affine.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Shape `(1, C, 1)` or `(1, C)` matching the input rank, and the reduced dims.
    fn view_shape(&self, x: &Tensor) -> Result<Vec<usize>> {
        let dims = x.dims();
        let ok = matches!(dims.len(), 2 | 3) && dims[1] == self.num_features;
        if !ok {
            bail!(
                "batch_norm: input must be (B, {c}, L) or (B, {c}), got {dims:?}",
                c = self.num_features
            )
        }
        let mut v = vec![1; dims.len()];
        v[1] = self.num_features;
        Ok(v)
    }

    fn affine(&self, xn: Tensor) -> Result<Tensor> {
        match (&self.weight, &self.bias) {
            (Some(w), Some(b)) => super::channel_add(&super::channel_mul(&xn, w, 1)?, b, 1),
            _ => Ok(xn),
        }
    }

    /// Normalise with batch statistics and update the running statistics.
    pub fn forward_train(&self, x: &Tensor) -> Result<Tensor> {
        self.view_shape(x)?; // checks the shape
        let dims = x.dims();
        let n: usize = dims
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, d)| d)
            .product();
        if n < 2 {
            bail!("batch_norm: need more than one value per channel in training, got {dims:?}")
        }
        if let (3, Some(w), Some(b), DType::F32 | DType::F64, true) = (
            dims.len(),
            &self.weight,
            &self.bias,
            x.dtype(),
            x.device().is_cpu(),
        ) {
            // Fused path (see ops::batch_norm_train): same numbers, one op, fast backward.
            let (y, mean, var) = super::batch_norm_train(x, w, b, self.config.eps)?;
            let m = self.config.momentum;
            let unbias = n as f64 / (n - 1) as f64;
            let dev = x.device();
            let sdt = self.running_mean.dtype();
            let bmean = Tensor::from_vec(mean, self.num_features, dev)?.to_dtype(sdt)?;
            let bvar = (Tensor::from_vec(var, self.num_features, dev)? * unbias)?.to_dtype(sdt)?;
            let new_mean = ((self.running_mean.as_tensor() * (1.0 - m))? + (bmean * m)?)?;
            let new_var = ((self.running_var.as_tensor() * (1.0 - m))? + (bvar * m)?)?;
            self.running_mean.set(&new_mean)?;
            self.running_var.set(&new_var)?;
            return Ok(y);
        }
        let reduce: Vec<usize> = if dims.len() == 3 { vec![0, 2] } else { vec![0] };
        let xf = if matches!(x.dtype(), DType::F16 | DType::BF16) {
            x.to_dtype(DType::F32)?
        } else {
            x.clone()
        };
        let mean = xf.mean_keepdim(reduce.as_slice())?;
        let xc = xf.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(reduce.as_slice())?;
        let xn = xc
            .broadcast_div(&(&var + self.config.eps)?.sqrt()?)?
            .to_dtype(x.dtype())?;
        // Running statistics: detached, unbiased variance, stored in the buffers' dtype.
        let m = self.config.momentum;
        let sdt = self.running_mean.dtype();
        let bmean = mean.detach().flatten_all()?.to_dtype(sdt)?;
        let bvar = (var.detach().flatten_all()? * (n as f64 / (n - 1) as f64))?.to_dtype(sdt)?;
        let new_mean = ((self.running_mean.as_tensor() * (1.0 - m))? + (bmean * m)?)?;
        let new_var = ((self.running_var.as_tensor() * (1.0 - m))? + (bvar * m)?)?;
        self.running_mean.set(&new_mean)?;
        self.running_var.set(&new_var)?;
        self.affine(xn)
    }

    /// Normalise with the running statistics (no update).
    pub fn forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let view = self.view_shape(x)?;
        let rm = self.running_mean.as_detached_tensor().to_dtype(x.dtype())?;
        let rv = self.running_var.as_detached_tensor().to_dtype(x.dtype())?;
        let inv = (rv + self.config.eps)?
            .sqrt()?
            .recip()?
            .reshape(view.as_slice())?;
        let xn = x
            .broadcast_sub(&rm.reshape(view.as_slice())?)?
            .broadcast_mul(&inv)?;
        self.affine(xn)
    }
}

impl ModuleT for BatchNorm1d {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            self.forward_train(x)
        } else {
            self.forward_eval(x)
        }
    }
}
