//! Linear (fully connected) layer that never hands candle a transposed batched left operand.

use candle_core::{bail, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `y = x @ w^T (+ b)` for `x (..., in)`, `w (out, in)`, `b (out)` -> `(..., out)`.
///
/// `x` is made contiguous and flattened to 2-D before the matmul, so a transposed view (e.g.
/// `(B, C, L).transpose(1, 2)`) cannot hit candle's wrong batch folding on CPU.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (out_dim, in_dim) = match w.dims() {
        &[o, i] => (o, i),
        d => bail!("linear: weight must be (out, in), got {d:?}"),
    };
    let dims = x.dims();
    let Some((&last, lead)) = dims.split_last() else {
        bail!("linear: input must have at least one dimension")
    };
    if last != in_dim {
        bail!("linear: input last dim {last} does not match weight in-features {in_dim}")
    }
    if x.dtype() != w.dtype() {
        bail!(
            "linear: dtype mismatch: x {:?}, w {:?}",
            x.dtype(),
            w.dtype()
        )
    }
    let rows: usize = lead.iter().product();
    let y = x.contiguous()?.reshape((rows, in_dim))?.matmul(&w.t()?)?;
    let mut out_shape = lead.to_vec();
    out_shape.push(out_dim);
    let y = y.reshape(out_shape)?;
    match b {
        None => Ok(y),
        Some(b) => {
            if b.dims() != [out_dim] {
                bail!(
                    "linear: bias must have shape ({out_dim},), got {:?}",
                    b.dims()
                )
            }
            let last = y.rank() - 1;
            super::channel_add(&y, b, last)
        }
    }
}

/// A linear layer with a `(out, in)` `weight` and optional `(out)` `bias`, backed by [`linear`].
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Wrap an existing `(out, in)` weight and optional `(out)` bias.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// Fetch (or create) `weight` and `bias` from `vb`, initialised like `candle_nn::linear`.
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let weight = vb.get_with_hints(
            (out_dim, in_dim),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = if bias {
            let bound = 1.0 / (in_dim.max(1) as f64).sqrt();
            let init = candle_nn::Init::Uniform {
                lo: -bound,
                up: bound,
            };
            Some(vb.get_with_hints(out_dim, "bias", init)?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// The `(out, in)` weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The `(out)` bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        linear(x, &self.weight, self.bias.as_ref())
    }
}
