//! Long depthwise convolution by FFT (the Hyena / HyenaDNA `fftconv`), with its own backward.
//!
//! `y[b, d, t] = sum_j k[d, j] * u[b, d, t + offset - j]` for `u (B, D, L)`, `k (D, K)`,
//! `0 <= offset < K`; terms that read `u` outside `0..L` are zero. Causal Hyena: `K = L`,
//! `offset = 0`. Two-sided: `K = 2L - 1`, `offset = L - 1` (kernel index `j` is lag `j - (L - 1)`).
//!
//! CPU, f32/f64 (computed in f64): a [`CustomOp2`]. Every row is zero-padded to a fast FFT size
//! `N >= L + K - 1` (a product of 2, 3 and 5), so the circular convolution equals the linear one.
//! Two batch rows of the same channel share one complex FFT (`u0 + i u1`; the kernel is real, so
//! the result is `y0 + i y1`). One rayon task per channel: it transforms the channel's kernel once
//! and runs over the batch in pairs. The backward (a [`CustomOp3`]) computes
//! `du = corr(dy, k)` per row and `dk[d] = sum_b corr(dy[b, d], u[b, d])`, accumulated in the
//! frequency domain in batch order, both from the same paired transforms. FFT plans come from one
//! `FftPlanner` per call and are shared (`Arc`) by all tasks. Every output element is written by
//! one task in a fixed order, so results are bit-identical for any rayon thread count.
//!
//! Other devices: the inputs are moved to the CPU and the result back (`to_device` is
//! differentiable in candle 0.11.1); other float dtypes (f16, bf16) go through f32.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape};
use candle_core::{Tensor, WithDType};
use rayon::prelude::*;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use super::{contiguous_slice, Elem};

type C64 = Complex<f64>;

/// Shapes of one call, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geom {
    b: usize,
    d: usize,
    l: usize,
    k: usize,
    offset: usize,
    /// FFT length.
    n: usize,
}

/// The smallest `2^a 3^b 5^c >= n` (rustfft's fastest sizes).
fn fast_len(n: usize) -> usize {
    let mut m = n.max(1);
    loop {
        let mut r = m;
        for p in [2, 3, 5] {
            while r % p == 0 {
                r /= p;
            }
        }
        if r == 1 {
            return m;
        }
        m += 1;
    }
}

impl Geom {
    fn new(u: &Tensor, k: &Tensor, offset: usize) -> Result<Self> {
        let (b, d, l) = match u.dims() {
            &[b, d, l] => (b, d, l),
            s => bail!("fft_conv: input must be (batch, channels, length), got {s:?}"),
        };
        let (dk, kl) = match k.dims() {
            &[d, k] => (d, k),
            s => bail!("fft_conv: kernel must be (channels, taps), got {s:?}"),
        };
        if dk != d {
            bail!("fft_conv: kernel has {dk} channels, input has {d}")
        }
        if kl == 0 || l == 0 {
            bail!("fft_conv: empty length ({l}) or kernel ({kl})")
        }
        if offset >= kl {
            bail!("fft_conv: offset {offset} must be smaller than the kernel length {kl}")
        }
        if u.dtype() != k.dtype() {
            bail!(
                "fft_conv: dtype mismatch: input {:?}, kernel {:?}",
                u.dtype(),
                k.dtype()
            )
        }
        if !u.device().same_device(k.device()) {
            bail!("fft_conv: input and kernel are on different devices")
        }
        let n = fast_len(l + kl - 1);
        Ok(Self {
            b,
            d,
            l,
            k: kl,
            offset,
            n,
        })
    }
}

/// f32/f64 (converted to and from f64 with candle's `WithDType`).
trait FftElem: Elem + WithDType {}

impl FftElem for f32 {}
impl FftElem for f64 {}

/// Forward and inverse plans of length `n`, shared by every task of one call.
struct Plans {
    fwd: Arc<dyn Fft<f64>>,
    inv: Arc<dyn Fft<f64>>,
    scratch_len: usize,
}

impl Plans {
    fn new(n: usize) -> Self {
        let mut planner = FftPlanner::<f64>::new();
        let fwd = planner.plan_fft_forward(n);
        let inv = planner.plan_fft_inverse(n);
        let scratch_len = fwd
            .get_inplace_scratch_len()
            .max(inv.get_inplace_scratch_len());
        Self {
            fwd,
            inv,
            scratch_len,
        }
    }
}

/// `buf = fft(r0 + i r1)` with both rows zero-padded (`r1 = None`: zero imaginary part).
fn load_pair<T: FftElem>(
    buf: &mut [C64],
    r0: &[T],
    r1: Option<&[T]>,
    plans: &Plans,
    scratch: &mut [C64],
) {
    let len = r0.len();
    match r1 {
        Some(r1) => {
            for ((c, &a), &b) in buf.iter_mut().zip(r0).zip(r1) {
                *c = C64::new(a.to_f64(), b.to_f64());
            }
        }
        None => {
            for (c, &a) in buf.iter_mut().zip(r0) {
                *c = C64::new(a.to_f64(), 0.0);
            }
        }
    }
    buf[len..].fill(C64::new(0.0, 0.0));
    plans.fwd.process_with_scratch(buf, scratch);
}

/// The kernel row's spectrum, scaled by `1 / N` (the inverse transforms are unnormalised).
fn kernel_spectrum<T: FftElem>(kr: &[T], plans: &Plans, scratch: &mut [C64], n: usize) -> Vec<C64> {
    let mut kf = vec![C64::new(0.0, 0.0); n];
    load_pair::<T>(&mut kf, kr, None, plans, scratch);
    let s = 1.0 / n as f64;
    for c in kf.iter_mut() {
        *c *= s;
    }
    kf
}

/// Index of row `(b, d)` in a `(B, D, L)` tensor.
fn row(g: &Geom, b: usize, d: usize) -> usize {
    (b * g.d + d) * g.l
}

/// Copy channel-major `(D, B, L)` rows into a `(B, D, L)` output (one row per rayon task).
fn to_batch_major<T: FftElem>(cm: &[T], g: &Geom) -> Vec<T> {
    let mut out = vec![T::ZERO; g.b * g.d * g.l];
    out.par_chunks_mut(g.l).enumerate().for_each(|(r, o)| {
        let (b, d) = (r / g.d, r % g.d);
        o.copy_from_slice(&cm[(d * g.b + b) * g.l..][..g.l]);
    });
    out
}

fn fft_conv_fwd<T: FftElem>(u: &[T], k: &[T], g: &Geom) -> Vec<T> {
    let plans = Plans::new(g.n);
    let mut cm = vec![T::ZERO; g.b * g.d * g.l];
    cm.par_chunks_mut(g.b * g.l)
        .enumerate()
        .for_each(|(d, out)| {
            let mut scratch = vec![C64::new(0.0, 0.0); plans.scratch_len];
            let kf = kernel_spectrum(&k[d * g.k..(d + 1) * g.k], &plans, &mut scratch, g.n);
            let mut buf = vec![C64::new(0.0, 0.0); g.n];
            let mut b = 0;
            while b < g.b {
                let r0 = &u[row(g, b, d)..][..g.l];
                let r1 = (b + 1 < g.b).then(|| &u[row(g, b + 1, d)..][..g.l]);
                load_pair(&mut buf, r0, r1, &plans, &mut scratch);
                for (c, kc) in buf.iter_mut().zip(&kf) {
                    *c *= kc;
                }
                plans.inv.process_with_scratch(&mut buf, &mut scratch);
                let res = &buf[g.offset..g.offset + g.l];
                for (o, c) in out[b * g.l..(b + 1) * g.l].iter_mut().zip(res) {
                    *o = T::from_f64(c.re);
                }
                if r1.is_some() {
                    for (o, c) in out[(b + 1) * g.l..(b + 2) * g.l].iter_mut().zip(res) {
                        *o = T::from_f64(c.im);
                    }
                }
                b += 2;
            }
        });
    to_batch_major(&cm, g)
}

/// Backward: flat `[du (B, D, L) ++ dk (D, K)]`.
fn fft_conv_bwd<T: FftElem>(u: &[T], k: &[T], gy: &[T], g: &Geom) -> Vec<T> {
    let plans = Plans::new(g.n);
    let n = g.n;
    let mut du_cm = vec![T::ZERO; g.b * g.d * g.l];
    let mut dk = vec![T::ZERO; g.d * g.k];
    du_cm
        .par_chunks_mut(g.b * g.l)
        .zip(dk.par_chunks_mut(g.k))
        .enumerate()
        .for_each(|(d, (du, dkr))| {
            let zero = C64::new(0.0, 0.0);
            let mut scratch = vec![zero; plans.scratch_len];
            let kf = kernel_spectrum(&k[d * g.k..(d + 1) * g.k], &plans, &mut scratch, n);
            let mut zu = vec![zero; n];
            let mut zg = vec![zero; n];
            // Sum over batch pairs of conj(G) * U; its real inverse is sum_b corr(dy_b, u_b)
            // (the cross terms of a pair land in the imaginary part).
            let mut acc = vec![zero; n];
            let mut b = 0;
            while b < g.b {
                let pair = b + 1 < g.b;
                let u0 = &u[row(g, b, d)..][..g.l];
                let u1 = pair.then(|| &u[row(g, b + 1, d)..][..g.l]);
                let g0 = &gy[row(g, b, d)..][..g.l];
                let g1 = pair.then(|| &gy[row(g, b + 1, d)..][..g.l]);
                load_pair(&mut zu, u0, u1, &plans, &mut scratch);
                load_pair(&mut zg, g0, g1, &plans, &mut scratch);
                for ((a, &cg), &cu) in acc.iter_mut().zip(&zg).zip(&zu) {
                    *a += cg.conj() * cu;
                }
                // du[s] = sum_t dy[t] k[t + offset - s] = ifft(G conj(K))[(s - offset) mod N].
                for (c, kc) in zg.iter_mut().zip(&kf) {
                    *c *= kc.conj();
                }
                plans.inv.process_with_scratch(&mut zg, &mut scratch);
                for s in 0..g.l {
                    let c = zg[(s + n - g.offset) % n];
                    du[b * g.l + s] = T::from_f64(c.re);
                    if pair {
                        du[(b + 1) * g.l + s] = T::from_f64(c.im);
                    }
                }
                b += 2;
            }
            // dk[j] = sum_b sum_t dy[t] u[t + offset - j] = ifft(acc)[(offset - j) mod N] / N.
            plans.inv.process_with_scratch(&mut acc, &mut scratch);
            let s = 1.0 / n as f64;
            for (j, o) in dkr.iter_mut().enumerate() {
                *o = T::from_f64(acc[(g.offset + n - j) % n].re * s);
            }
        });
    let mut out = to_batch_major(&du_cm, g);
    out.extend_from_slice(&dk);
    out
}

struct FftConvOp(Geom);

impl CustomOp2 for FftConvOp {
    fn name(&self) -> &'static str {
        "genolm-fft-conv"
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
            (CpuStorage::F32(u), CpuStorage::F32(k)) => CpuStorage::F32(fft_conv_fwd(
                contiguous_slice(u, l1, name)?,
                contiguous_slice(k, l2, name)?,
                g,
            )),
            (CpuStorage::F64(u), CpuStorage::F64(k)) => CpuStorage::F64(fft_conv_fwd(
                contiguous_slice(u, l1, name)?,
                contiguous_slice(k, l2, name)?,
                g,
            )),
            (a, b) => bail!(
                "{name}: unsupported dtypes {:?}, {:?}",
                a.dtype(),
                b.dtype()
            ),
        };
        Ok((out, Shape::from((g.b, g.d, g.l))))
    }

    fn bwd(
        &self,
        u: &Tensor,
        k: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let both = u.apply_op3_no_bwd(k, &grad, &FftConvBwdOp(self.0))?;
        let (nu, nk) = (u.elem_count(), k.elem_count());
        let gu = both.narrow(0, 0, nu)?.reshape(u.shape())?;
        let gk = both.narrow(0, nu, nk)?.reshape(k.shape())?;
        Ok((Some(gu), Some(gk)))
    }
}

/// The backward op: (u, k, grad_y) -> flat [grad_u ++ grad_k].
struct FftConvBwdOp(Geom);

impl CustomOp3 for FftConvBwdOp {
    fn name(&self) -> &'static str {
        "genolm-fft-conv-bwd"
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
            (CpuStorage::F32(u), CpuStorage::F32(k), CpuStorage::F32(gy)) => {
                CpuStorage::F32(fft_conv_bwd(
                    contiguous_slice(u, l1, name)?,
                    contiguous_slice(k, l2, name)?,
                    contiguous_slice(gy, l3, name)?,
                    g,
                ))
            }
            (CpuStorage::F64(u), CpuStorage::F64(k), CpuStorage::F64(gy)) => {
                CpuStorage::F64(fft_conv_bwd(
                    contiguous_slice(u, l1, name)?,
                    contiguous_slice(k, l2, name)?,
                    contiguous_slice(gy, l3, name)?,
                    g,
                ))
            }
            (a, b, c) => bail!(
                "{name}: unsupported dtypes {:?}, {:?}, {:?}",
                a.dtype(),
                b.dtype(),
                c.dtype()
            ),
        };
        Ok((out, Shape::from(g.b * g.d * g.l + g.d * g.k)))
    }
}

/// Long depthwise convolution `u (B, D, L)` by `k (D, K)` via FFT -> `(B, D, L)`.
///
/// `y[b, d, t] = sum_j k[d, j] u[b, d, t + offset - j]` (zero outside `0..L`), `offset < K`.
/// Causal Hyena filter: `K = L`, `offset = 0`; two-sided: `K = 2L - 1`, `offset = L - 1`.
/// Differentiable in `u` and `k`; O(L log L) per row.
pub fn fft_conv(u: &Tensor, k: &Tensor, offset: usize) -> Result<Tensor> {
    let g = Geom::new(u, k, offset)?;
    let dev = u.device().clone();
    let dtype = u.dtype();
    if !dtype.is_float() {
        bail!("fft_conv: unsupported dtype {dtype:?} (needs a float type)")
    }
    if g.b == 0 || g.d == 0 {
        return Tensor::zeros((g.b, g.d, g.l), dtype, &dev);
    }
    let on_cpu = matches!(dev, Device::Cpu);
    let (u, k) = if on_cpu {
        (u.clone(), k.clone())
    } else {
        (u.to_device(&Device::Cpu)?, k.to_device(&Device::Cpu)?)
    };
    let native = matches!(dtype, DType::F32 | DType::F64);
    let (u, k) = if native {
        (u, k)
    } else {
        (u.to_dtype(DType::F32)?, k.to_dtype(DType::F32)?)
    };
    let mut y = u.contiguous()?.apply_op2(&k.contiguous()?, FftConvOp(g))?;
    if !native {
        y = y.to_dtype(dtype)?;
    }
    if !on_cpu {
        y = y.to_device(&dev)?;
    }
    Ok(y)
}
