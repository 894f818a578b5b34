//! Rotary position embeddings (RoPE, rotate-half / GPT-NeoX / Llama layout) composed from
//! differentiable candle ops (`narrow`, `cat`, `neg`, broadcast `mul` / `add`), never candle-nn's
//! `rotary_emb` fast paths (they have no backward).
//!
//! For a head vector `x` of even size `dh`, split into halves `x1 = x[..dh/2]`, `x2 = x[dh/2..]`,
//! and position `t`: `out = x * cos(t w) + cat(-x2, x1) * sin(t w)`, where the angle table has
//! `w_i = theta^(-2i/dh)` repeated for both halves (`i < dh/2`).

use candle_core::{bail, DType, Device, Result, Tensor};

/// Precomputed `cos` / `sin` tables `(len, dh)` for rotary embeddings.
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
    head_dim: usize,
    len: usize,
}

impl Rope {
    /// Tables for positions `0..len` and even head size `head_dim`, base `theta`, in `dtype`.
    ///
    /// Angles are computed in f64 and converted once, so f32 tables are correctly rounded.
    pub fn new(
        head_dim: usize,
        len: usize,
        theta: f64,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        if head_dim == 0 || head_dim % 2 != 0 {
            bail!("rope: head dimension must be even and > 0, got {head_dim}")
        }
        if !(theta.is_finite() && theta > 0.0) {
            bail!("rope: theta must be finite and > 0, got {theta}")
        }
        let half = head_dim / 2;
        let inv_freq: Vec<f64> = (0..half)
            .map(|i| theta.powf(-((2 * i) as f64) / head_dim as f64))
            .collect();
        let mut cos = Vec::with_capacity(len * head_dim);
        let mut sin = Vec::with_capacity(len * head_dim);
        for t in 0..len {
            for _rep in 0..2 {
                for &w in &inv_freq {
                    let a = t as f64 * w;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        let cos = Tensor::from_vec(cos, (len, head_dim), dev)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (len, head_dim), dev)?.to_dtype(dtype)?;
        Ok(Rope {
            cos,
            sin,
            head_dim,
            len,
        })
    }

    /// Number of positions the tables cover.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the tables cover no position.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The head size the tables were built for.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Rotate `x (B, H, L, dh)` at positions `offset..offset + L` (tables must cover them).
    pub fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let (_, _, l, dh) = match x.dims() {
            &[b, h, l, d] => (b, h, l, d),
            d => bail!("rope: input must be (B, H, L, dh), got {d:?}"),
        };
        if dh != self.head_dim {
            bail!(
                "rope: input head dimension {dh} does not match the tables' {}",
                self.head_dim
            )
        }
        if offset + l > self.len {
            bail!(
                "rope: positions {offset}..{} exceed the tables' length {}",
                offset + l,
                self.len
            )
        }
        if x.dtype() != self.cos.dtype() {
            bail!(
                "rope: dtype mismatch: x {:?}, tables {:?}",
                x.dtype(),
                self.cos.dtype()
            )
        }
        let cos = self.cos.narrow(0, offset, l)?;
        let sin = self.sin.narrow(0, offset, l)?;
        let half = dh / 2;
        let x1 = x.narrow(3, 0, half)?;
        let x2 = x.narrow(3, half, half)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], 3)?;
        x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
    }
}

/// Rotary embedding of `x (B, H, L, dh)` at positions `offset..offset + L` with base `theta`
/// (builds the tables on the fly; keep a [`Rope`] to reuse them).
pub fn rope(x: &Tensor, offset: usize, theta: f64) -> Result<Tensor> {
    let (l, dh) = match x.dims() {
        &[_, _, l, d] => (l, d),
        d => bail!("rope: input must be (B, H, L, dh), got {d:?}"),
    };
    Rope::new(dh, offset + l, theta, x.dtype(), x.device())?.apply(x, offset)
}
