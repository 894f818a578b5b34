//! Per-channel bias and scale: `x + b` and `x · w` with a vector `b`, `w` broadcast along one
//! dimension of `x` (linear biases, norm gains, Mamba's `D`, batch-norm affine).
//!
//! candle's `broadcast_add` / `broadcast_mul` sum the parameter's gradient with its generic
//! strided reduction, which pays two integer divisions per element and runs on one thread
//! (11 % of a Mamba training step). Here the sum runs one channel (or block of channels) per
//! task, in the same order candle uses — memory order, from zero, in the tensor's dtype — so
//! values and gradients are bit-identical to the broadcast ops (tested).

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::contiguous_slice;

/// `x + b` or `x · w`.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Add,
    Mul,
}

/// `x` viewed as `(outer, channels, inner)` around dimension `dim`.
#[derive(Clone, Copy, Debug)]
struct Split {
    outer: usize,
    channels: usize,
    inner: usize,
}

impl Split {
    fn of(shape: &Shape, dim: usize) -> Self {
        let d = shape.dims();
        Split {
            outer: d[..dim].iter().product(),
            channels: d[dim],
            inner: d[dim + 1..].iter().product(),
        }
    }
}

/// The broadcast op `x (kind) p` along `dim`.
struct Channel {
    kind: Kind,
    dim: usize,
}

fn apply<T: Copy + Send + Sync + std::ops::Add<Output = T> + std::ops::Mul<Output = T>>(
    x: &[T],
    p: &[T],
    s: Split,
    kind: Kind,
) -> Vec<T> {
    let mut out = x.to_vec();
    let block = s.channels * s.inner;
    if block == 0 {
        return out;
    }
    out.par_chunks_mut(block).for_each(|row| {
        for (c, run) in row.chunks_mut(s.inner).enumerate() {
            let v = p[c];
            match kind {
                Kind::Add => run.iter_mut().for_each(|e| *e = *e + v),
                Kind::Mul => run.iter_mut().for_each(|e| *e = *e * v),
            }
        }
    });
    out
}

impl CustomOp2 for Channel {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Add => "genolm-channel-add",
            Kind::Mul => "genolm-channel-mul",
        }
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let s = Split::of(xl.shape(), self.dim);
        let name = self.name();
        let out = match (xs, ps) {
            (CpuStorage::F32(x), CpuStorage::F32(p)) => CpuStorage::F32(apply(
                contiguous_slice(x, xl, name)?,
                contiguous_slice(p, pl, name)?,
                s,
                self.kind,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(p)) => CpuStorage::F64(apply(
                contiguous_slice(x, xl, name)?,
                contiguous_slice(p, pl, name)?,
                s,
                self.kind,
            )),
            (x, p) => bail!(
                "{name}: unsupported dtypes {:?}, {:?}",
                x.dtype(),
                p.dtype()
            ),
        };
        Ok((out, xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        p: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let sum = ChannelSum { dim: self.dim };
        match self.kind {
            Kind::Add => {
                let gp = g.apply_op1_no_bwd(&sum)?;
                Ok((Some(g), Some(gp)))
            }
            Kind::Mul => {
                let gx = g.apply_op2_no_bwd(p, self)?;
                let gp = (&g * x)?.apply_op1_no_bwd(&sum)?;
                Ok((Some(gx), Some(gp)))
            }
        }
    }
}

/// Sum of every element of each channel along `dim`, in memory order from zero: `(channels,)`.
struct ChannelSum {
    dim: usize,
}

fn channel_sum<T: Copy + Send + Sync + Default + std::ops::Add<Output = T>>(
    g: &[T],
    s: Split,
) -> Vec<T> {
    if s.inner == 1 {
        // Channels are the last axis: blocks of channels per task, rows in order, so each
        // channel's sum keeps memory order while the inner loop runs across channels.
        let mut out = vec![T::default(); s.channels];
        let block = s
            .channels
            .div_ceil(rayon::current_num_threads().max(1))
            .max(64);
        out.par_chunks_mut(block).enumerate().for_each(|(bi, acc)| {
            let (c0, n) = (bi * block, acc.len());
            for row in g.chunks_exact(s.channels) {
                for (a, &v) in acc.iter_mut().zip(&row[c0..c0 + n]) {
                    *a = *a + v;
                }
            }
        });
        out
    } else {
        (0..s.channels)
            .into_par_iter()
            .map(|c| {
                let mut acc = T::default();
                for o in 0..s.outer {
                    let start = (o * s.channels + c) * s.inner;
                    for &v in &g[start..start + s.inner] {
                        acc = acc + v;
                    }
                }
                acc
            })
            .collect()
    }
}

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "genolm-channel-sum"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout) -> Result<(CpuStorage, Shape)> {
        let s = Split::of(gl.shape(), self.dim);
        let out = match gs {
            CpuStorage::F32(g) => {
                CpuStorage::F32(channel_sum(contiguous_slice(g, gl, self.name())?, s))
            }
            CpuStorage::F64(g) => {
                CpuStorage::F64(channel_sum(contiguous_slice(g, gl, self.name())?, s))
            }
            other => bail!("{}: unsupported dtype {:?}", self.name(), other.dtype()),
        };
        Ok((out, Shape::from(s.channels)))
    }
}

fn channel_op(x: &Tensor, p: &Tensor, dim: usize, kind: Kind, what: &str) -> Result<Tensor> {
    if dim >= x.rank() || p.dims() != [x.dim(dim)?] {
        bail!(
            "{what}: parameter of shape {:?} does not match dimension {dim} of {:?}",
            p.dims(),
            x.dims()
        )
    }
    if !super::has_cpu_kernels(x) || p.dtype() != x.dtype() {
        // Other devices and half precision: candle's broadcast ops (same values).
        let mut view = vec![1; x.rank()];
        view[dim] = x.dim(dim)?;
        let p = p.reshape(view)?;
        return match kind {
            Kind::Add => x.broadcast_add(&p),
            Kind::Mul => x.broadcast_mul(&p),
        };
    }
    x.contiguous()?
        .apply_op2(&p.contiguous()?, Channel { kind, dim })
}

/// `x + b` with the vector `b` broadcast along dimension `dim` of `x`.
pub fn channel_add(x: &Tensor, b: &Tensor, dim: usize) -> Result<Tensor> {
    channel_op(x, b, dim, Kind::Add, "channel_add")
}

/// `x · w` with the vector `w` broadcast along dimension `dim` of `x`.
pub fn channel_mul(x: &Tensor, w: &Tensor, dim: usize) -> Result<Tensor> {
    channel_op(x, w, dim, Kind::Mul, "channel_mul")
}
