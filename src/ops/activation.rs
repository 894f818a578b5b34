//! Activations with exact gradients, and a seeded dropout.
//!
//! candle's own `gelu` / `gelu_erf` backward passes use 6-digit constants (e.g. 0.398942 for
//! 1/sqrt(2 pi)), so their gradients are off by ~1e-7 relative; ours are composed from ops whose
//! backward is exact (`erf`, `tanh`, `exp`, `mul`).

use candle_core::{bail, DType, Result, Tensor};

/// `max(x, 0)`; the gradient at exactly 0 is 1 (candle's convention).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.relu()
}

/// Exact GELU: `0.5 x (1 + erf(x / sqrt 2))` (PyTorch's default `gelu`).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    let e = x.affine(std::f64::consts::FRAC_1_SQRT_2, 0.0)?.erf()?;
    ((e + 1.0)? * x)? * 0.5
}

/// Tanh-approximated GELU: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let inner = ((x.sqr()? * x)?.affine(0.044715 * c, 0.0)? + x.affine(c, 0.0)?)?;
    ((inner.tanh()? + 1.0)? * x)? * 0.5
}

/// Logistic sigmoid `1 / (1 + exp(-x))` (candle-nn's op, whose backward is exact).
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::sigmoid(x)
}

/// SiLU / swish: `x * sigmoid(x)`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    x * sigmoid(x)?
}

/// Numerically stable softplus `ln(1 + eˣ) = relu(x) + ln(1 + e^{-|x|})`, composed from
/// differentiable candle ops.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    let tail = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    x.relu()? + tail
}

/// Inverted dropout with a caller-supplied RNG: zero each element with probability `p` and
/// scale survivors by `1 / (1 - p)`.
///
/// The mask is drawn on the host, one `rng.random::<f64>()` per element in row-major order, so a
/// seeded RNG (e.g. `rand_chacha::ChaCha8Rng`) gives reproducible masks. `p` must be in [0, 1);
/// `p == 0` returns `x` unchanged and draws nothing.
pub fn dropout<R: rand::Rng + ?Sized>(x: &Tensor, p: f64, rng: &mut R) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        bail!("dropout: probability must be in [0, 1), got {p}")
    }
    if p == 0.0 {
        return Ok(x.clone());
    }
    let scale = 1.0 / (1.0 - p);
    let mask: Vec<f64> = (0..x.elem_count())
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { scale })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
    let mask = if x.dtype() == DType::F64 {
        mask
    } else {
        mask.to_dtype(x.dtype())?
    };
    x * mask
}
