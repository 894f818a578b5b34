//! Training-mode batch normalisation over `(B, C, L)` as one op with a hand-written backward.
//!
//! candle's reductions over the batch and length axes (and the broadcast gradients they imply)
//! dominated the GB CNN's step time; here each channel is one task that computes its statistics,
//! normalises, and in the backward pass applies the closed-form gradient
//! `dx = γ·σ⁻¹/N · (N·dy − Σdy − x̂·Σ(dy·x̂))`, `dγ = Σ dy·x̂`, `dβ = Σ dy`.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::contiguous_slice;

#[derive(Debug, Clone, Copy)]
struct Geom {
    b: usize,
    c: usize,
    l: usize,
    eps: f64,
}

/// Per-channel mean and biased variance of `x (B, C, L)`, accumulated in f64.
fn stats<T: Copy + Into<f64> + Sync>(x: &[T], g: &Geom) -> Vec<(f64, f64)> {
    (0..g.c)
        .into_par_iter()
        .map(|c| {
            let n = (g.b * g.l) as f64;
            let mut s = 0f64;
            for bi in 0..g.b {
                for &v in &x[(bi * g.c + c) * g.l..(bi * g.c + c + 1) * g.l] {
                    s += v.into();
                }
            }
            let mean = s / n;
            let mut ss = 0f64;
            for bi in 0..g.b {
                for &v in &x[(bi * g.c + c) * g.l..(bi * g.c + c + 1) * g.l] {
                    let d = v.into() - mean;
                    ss += d * d;
                }
            }
            (mean, ss / n)
        })
        .collect()
}

trait Float: Copy + Send + Sync + Into<f64> + 'static {
    fn of(v: f64) -> Self;
}
impl Float for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
}
impl Float for f64 {
    fn of(v: f64) -> Self {
        v
    }
}

fn fwd<T: Float>(x: &[T], gamma: &[T], beta: &[T], g: &Geom) -> Vec<T> {
    let st = stats(x, g);
    let mut y = vec![T::of(0.0); x.len()];
    // Parallel over batch rows; each (b, c) row is written by one task.
    y.par_chunks_mut(g.c * g.l)
        .enumerate()
        .for_each(|(bi, yb)| {
            for c in 0..g.c {
                let (mean, var) = st[c];
                let inv = 1.0 / (var + g.eps).sqrt();
                let (ga, be) = (gamma[c].into(), beta[c].into());
                let xs = &x[(bi * g.c + c) * g.l..(bi * g.c + c + 1) * g.l];
                for (o, &v) in yb[c * g.l..(c + 1) * g.l].iter_mut().zip(xs) {
                    *o = T::of(ga * (v.into() - mean) * inv + be);
                }
            }
        });
    y
}

fn bwd<T: Float>(x: &[T], gamma: &[T], dy: &[T], g: &Geom) -> (Vec<T>, Vec<T>, Vec<T>) {
    let st = stats(x, g);
    let n = (g.b * g.l) as f64;
    // Per channel: Σdy and Σdy·x̂.
    let sums: Vec<(f64, f64)> = (0..g.c)
        .into_par_iter()
        .map(|c| {
            let (mean, var) = st[c];
            let inv = 1.0 / (var + g.eps).sqrt();
            let (mut sd, mut sdx) = (0f64, 0f64);
            for bi in 0..g.b {
                let r = (bi * g.c + c) * g.l..(bi * g.c + c + 1) * g.l;
                for (&d, &v) in dy[r.clone()].iter().zip(&x[r]) {
                    let d = d.into();
                    sd += d;
                    sdx += d * (v.into() - mean) * inv;
                }
            }
            (sd, sdx)
        })
        .collect();
    let mut dx = vec![T::of(0.0); x.len()];
    dx.par_chunks_mut(g.c * g.l)
        .enumerate()
        .for_each(|(bi, db)| {
            for c in 0..g.c {
                let (mean, var) = st[c];
                let inv = 1.0 / (var + g.eps).sqrt();
                let (sd, sdx) = sums[c];
                let k = gamma[c].into() * inv / n;
                let r = (bi * g.c + c) * g.l..(bi * g.c + c + 1) * g.l;
                for ((o, &d), &v) in db[c * g.l..(c + 1) * g.l]
                    .iter_mut()
                    .zip(&dy[r.clone()])
                    .zip(&x[r])
                {
                    let xh = (v.into() - mean) * inv;
                    *o = T::of(k * (n * d.into() - sd - xh * sdx));
                }
            }
        });
    let dgamma = sums.iter().map(|s| T::of(s.1)).collect();
    let dbeta = sums.iter().map(|s| T::of(s.0)).collect();
    (dx, dgamma, dbeta)
}

struct BnOp(Geom);

impl CustomOp3 for BnOp {
    fn name(&self) -> &'static str {
        "genolm-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let name = self.name();
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => CpuStorage::F32(fwd(
                contiguous_slice(x, l1, name)?,
                contiguous_slice(w, l2, name)?,
                contiguous_slice(b, l3, name)?,
                g,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => CpuStorage::F64(fwd(
                contiguous_slice(x, l1, name)?,
                contiguous_slice(w, l2, name)?,
                contiguous_slice(b, l3, name)?,
                g,
            )),
            (a, _, _) => bail!("{name}: unsupported dtype {:?}", a.dtype()),
        };
        Ok((out, Shape::from((g.b, g.c, g.l))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = &self.0;
        let dev = x.device();
        let dy = grad_res.contiguous()?.flatten_all()?;
        let xs = x.flatten_all()?;
        macro_rules! go {
            ($t:ty) => {{
                let (dx, dg, db) = bwd(
                    &xs.to_vec1::<$t>()?,
                    &gamma.to_vec1::<$t>()?,
                    &dy.to_vec1::<$t>()?,
                    g,
                );
                (
                    Tensor::from_vec(dx, (g.b, g.c, g.l), dev)?,
                    Tensor::from_vec(dg, g.c, dev)?,
                    Tensor::from_vec(db, g.c, dev)?,
                )
            }};
        }
        let (dx, dg, db) = match x.dtype() {
            DType::F32 => go!(f32),
            DType::F64 => go!(f64),
            other => bail!("batch_norm_train: unsupported dtype {other:?}"),
        };
        Ok((Some(dx), Some(dg), Some(db)))
    }
}

/// Training-mode batch norm of `x (B, C, L)` with affine `gamma`, `beta` (`C`), one fused op.
///
/// Returns the output and the batch's per-channel mean and biased variance (detached), for the
/// running statistics.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Vec<f64>, Vec<f64>)> {
    let (b, c, l) = x.dims3()?;
    if gamma.dims() != [c] || beta.dims() != [c] {
        bail!(
            "batch_norm_train: gamma/beta must be ({c}), got {:?} {:?}",
            gamma.dims(),
            beta.dims()
        )
    }
    let g = Geom { b, c, l, eps };
    let x = x.contiguous()?;
    let st = match x.dtype() {
        DType::F32 => stats(&x.flatten_all()?.to_vec1::<f32>()?, &g),
        DType::F64 => stats(&x.flatten_all()?.to_vec1::<f64>()?, &g),
        other => bail!("batch_norm_train: unsupported dtype {other:?}"),
    };
    let y = x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, BnOp(g))?;
    Ok((
        y,
        st.iter().map(|s| s.0).collect(),
        st.iter().map(|s| s.1).collect(),
    ))
}
