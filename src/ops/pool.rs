//! Pooling and upsampling over the length axis of `(B, C, L)` tensors.
//!
//! candle 0.11.1 has no 1-D max pooling, its max-reduction backward sends the full gradient to
//! every tied maximum, and `conv_transpose1d` has no backward. Here max pooling is our own op
//! (CPU f32/f64; the first maximum of each window gets the gradient, as in PyTorch) with a
//! gather + max composition elsewhere, and upsampling is a differentiable broadcast.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous_slice, Elem};

#[derive(Debug, Clone, Copy)]
struct PoolGeom {
    rows: usize,
    l: usize,
    k: usize,
    s: usize,
    lout: usize,
}

/// Index (within the row) of the first maximum of window `t`; NaN wins (propagates).
fn window_argmax<T: Elem>(row: &[T], t: usize, g: &PoolGeom) -> usize {
    let start = t * g.s;
    let mut best = start;
    let mut bv = row[start];
    if bv.is_nan() {
        return best;
    }
    for (j, &v) in row.iter().enumerate().take(start + g.k).skip(start + 1) {
        if v.is_nan() {
            return j;
        }
        if v > bv {
            bv = v;
            best = j;
        }
    }
    best
}

fn pool_fwd<T: Elem>(x: &[T], g: &PoolGeom) -> Vec<T> {
    let mut out = vec![T::ZERO; g.rows * g.lout];
    out.par_chunks_mut(g.lout)
        .zip(x.par_chunks(g.l))
        .for_each(|(o, row)| {
            for (t, ov) in o.iter_mut().enumerate() {
                *ov = row[window_argmax(row, t, g)];
            }
        });
    out
}

fn pool_bwd<T: Elem>(x: &[T], gy: &[T], g: &PoolGeom) -> Vec<T> {
    let mut gx = vec![T::ZERO; g.rows * g.l];
    gx.par_chunks_mut(g.l)
        .zip(x.par_chunks(g.l).zip(gy.par_chunks(g.lout)))
        .for_each(|(gr, (row, gyr))| {
            for (t, &gv) in gyr.iter().enumerate() {
                gr[window_argmax(row, t, g)] += gv;
            }
        });
    gx
}

struct MaxPoolOp(PoolGeom, Vec<usize>);

impl CustomOp1 for MaxPoolOp {
    fn name(&self) -> &'static str {
        "genolm-max-pool1d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let out = match s {
            CpuStorage::F32(x) => {
                CpuStorage::F32(pool_fwd(contiguous_slice(x, l, self.name())?, g))
            }
            CpuStorage::F64(x) => {
                CpuStorage::F64(pool_fwd(contiguous_slice(x, l, self.name())?, g))
            }
            other => bail!("{}: unsupported dtype {:?}", self.name(), other.dtype()),
        };
        Ok((out, Shape::from(self.1.clone())))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(x.apply_op2_no_bwd(&grad, &MaxPoolBwdOp(self.0))?))
    }
}

struct MaxPoolBwdOp(PoolGeom);

impl CustomOp2 for MaxPoolBwdOp {
    fn name(&self) -> &'static str {
        "genolm-max-pool1d-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let name = self.name();
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(gy)) => CpuStorage::F32(pool_bwd(
                contiguous_slice(x, l1, name)?,
                contiguous_slice(gy, l2, name)?,
                g,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(gy)) => CpuStorage::F64(pool_bwd(
                contiguous_slice(x, l1, name)?,
                contiguous_slice(gy, l2, name)?,
                g,
            )),
            (a, b) => bail!(
                "{name}: unsupported dtypes {:?}, {:?}",
                a.dtype(),
                b.dtype()
            ),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// Max pooling over the length of `x (B, C, L)` with window `kernel` and step `stride`.
///
/// Windows that do not fit are dropped (floor mode): `Lout = (L - kernel) / stride + 1`. The
/// gradient of each window goes to its first maximum.
pub fn max_pool1d_strided(x: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    let (b, c, l) = match x.dims() {
        &[b, c, l] => (b, c, l),
        d => bail!("max_pool1d: input must be (batch, channels, length), got {d:?}"),
    };
    if kernel == 0 || stride == 0 {
        bail!("max_pool1d: kernel ({kernel}) and stride ({stride}) must be positive")
    }
    if kernel > l {
        bail!("max_pool1d: kernel {kernel} longer than the sequence ({l})")
    }
    let lout = (l - kernel) / stride + 1;
    if b * c == 0 {
        return Tensor::zeros((b, c, lout), x.dtype(), x.device());
    }
    if super::has_cpu_kernels(x) {
        let g = PoolGeom {
            rows: b * c,
            l,
            k: kernel,
            s: stride,
            lout,
        };
        return x.contiguous()?.apply_op1(MaxPoolOp(g, vec![b, c, lout]));
    }
    // Other devices / dtypes: gather the windows, then reduce (ties share the gradient there).
    let idx: Vec<u32> = (0..lout)
        .flat_map(|t| (0..kernel).map(move |j| (t * stride + j) as u32))
        .collect();
    let idx = Tensor::from_vec(idx, lout * kernel, x.device())?;
    x.contiguous()?
        .index_select(&idx, 2)?
        .reshape((b, c, lout, kernel))?
        .max(3)
}

/// Non-overlapping max pooling (`stride == kernel`), like PyTorch's `max_pool1d(x, k)`.
pub fn max_pool1d(x: &Tensor, kernel: usize) -> Result<Tensor> {
    max_pool1d_strided(x, kernel, kernel)
}

/// Mean over the length axis: `(B, C, L) -> (B, C)`.
pub fn global_avg_pool1d(x: &Tensor) -> Result<Tensor> {
    if x.rank() != 3 {
        bail!(
            "global_avg_pool1d: input must be (batch, channels, length), got {:?}",
            x.dims()
        )
    }
    x.mean(2)
}

/// Max over the length axis: `(B, C, L) -> (B, C)`; the gradient goes to the first maximum.
pub fn global_max_pool1d(x: &Tensor) -> Result<Tensor> {
    let l = match x.dims() {
        &[_, _, l] => l,
        d => bail!("global_max_pool1d: input must be (batch, channels, length), got {d:?}"),
    };
    max_pool1d_strided(x, l, l)?.squeeze(2)
}

/// Nearest-neighbour upsampling of `x (B, C, L)` by an integer `factor` -> `(B, C, L * factor)`.
///
/// Built from broadcast + reshape, so its backward (sum over each group of copies) is exact.
pub fn upsample_nearest1d(x: &Tensor, factor: usize) -> Result<Tensor> {
    let (b, c, l) = match x.dims() {
        &[b, c, l] => (b, c, l),
        d => bail!("upsample_nearest1d: input must be (batch, channels, length), got {d:?}"),
    };
    if factor == 0 {
        bail!("upsample_nearest1d: factor must be positive")
    }
    if factor == 1 {
        return Ok(x.clone());
    }
    x.unsqueeze(3)?
        .broadcast_as((b, c, l, factor))?
        .contiguous()?
        .reshape((b, c, l * factor))
}
