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
//! CUDA (the `cuda` feature), f32/f64: the same ops run the kernels of `src/ops/cuda/kernels.cu`
//! (radix-2 Stockham FFTs in f64 over a power-of-two length, every sum in a fixed order). Other
//! devices: the inputs are moved to the CPU and the result back (`to_device` is differentiable
//! in candle 0.11.1); other float dtypes (f16, bf16) go through f32.

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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let g = &self.0;
        let s = [(s1, l1), (s2, l2)];
        let y = match s1.dtype() {
            DType::F32 => gpu::fwd::<f32>(s, g)?,
            DType::F64 => gpu::fwd::<f64>(s, g)?,
            other => bail!("{}: unsupported dtype {other:?}", self.name()),
        };
        Ok((y, Shape::from((g.b, g.d, g.l))))
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let g = &self.0;
        let s = [(s1, l1), (s2, l2), (s3, l3)];
        let out = match s1.dtype() {
            DType::F32 => gpu::bwd::<f32>(s, g)?,
            DType::F64 => gpu::bwd::<f64>(s, g)?,
            other => bail!("{}: unsupported dtype {other:?}", self.name()),
        };
        Ok((out, Shape::from(g.b * g.d * g.l + g.d * g.k)))
    }
}

/// Host side of the CUDA kernels (`src/ops/cuda/kernels.cu`): radix-2 Stockham FFTs in f64 over
/// a power-of-two length `>= L + K - 1`, one launch per stage and one thread per butterfly.
///
/// Forward: `y = (u * k)[offset + i]`. Backward: `du = (dy * rev(k))[K - 1 - offset + s]` and
/// `dk[j] = sum_b (dy_b * rev(u_b))[L - 1 - offset + j]`, the batch summed in order.
#[cfg(feature = "cuda")]
mod gpu {
    use super::Geom;
    use crate::ops::cuda::{go, int, kernel, storage, views, zeros, GpuElem};
    use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, PushKernelArg};
    use candle_core::{CudaDevice, CudaStorage, Layout, Result};

    /// The power-of-two FFT length of a call.
    fn fft_len(g: &Geom) -> usize {
        (g.l + g.k - 1).next_power_of_two()
    }

    /// Transform `rows` rows of `x (rows, n)` complex in place (`inverse`: unscaled inverse).
    fn transform(
        dev: &CudaDevice,
        x: &mut CudaSlice<f64>,
        rows: usize,
        n: usize,
        inverse: bool,
    ) -> Result<()> {
        let mut tmp = zeros::<f64>(dev, 2 * rows * n)?;
        let (ri, ni, inv) = (int(rows)?, int(n)?, i32::from(inverse));
        let (mut ncur, mut s) = (n, 1usize);
        while ncur > 1 {
            let (ci, si) = (int(ncur)?, int(s)?);
            let f = kernel!(dev, "fft_stage");
            let mut args = f.builder();
            args.arg(&*x)
                .arg(&mut tmp)
                .arg(&ri)
                .arg(&ni)
                .arg(&ci)
                .arg(&si)
                .arg(&inv);
            go(args, rows * n / 2)?;
            std::mem::swap(x, &mut tmp);
            ncur /= 2;
            s *= 2;
        }
        Ok(())
    }

    /// The transforms of `rows` rows of `m` values of `src` (reversed when `reverse`), zero
    /// padded to `n`.
    fn packed<T: GpuElem>(
        dev: &CudaDevice,
        src: &CudaView<'_, T>,
        rows: usize,
        m: usize,
        n: usize,
        reverse: bool,
    ) -> Result<CudaSlice<f64>> {
        let mut x = zeros::<f64>(dev, 2 * rows * n)?;
        let (ri, mi, ni, rev) = (int(rows)?, int(m)?, int(n)?, i32::from(reverse));
        let f = kernel!(dev, "fft_pack", T);
        let mut args = f.builder();
        args.arg(src)
            .arg(&mut x)
            .arg(&ri)
            .arg(&mi)
            .arg(&ni)
            .arg(&rev);
        go(args, rows * n)?;
        transform(dev, &mut x, rows, n, false)?;
        Ok(x)
    }

    /// `x[r] *= y[r mod yrows]` for `rows` complex rows of `n`.
    fn mul(
        dev: &CudaDevice,
        x: &mut CudaSlice<f64>,
        y: &CudaSlice<f64>,
        rows: usize,
        yrows: usize,
        n: usize,
    ) -> Result<()> {
        let (ri, yi, ni) = (int(rows)?, int(yrows)?, int(n)?);
        let f = kernel!(dev, "fft_mul");
        let mut args = f.builder();
        args.arg(x).arg(y).arg(&ri).arg(&yi).arg(&ni);
        go(args, rows * n)
    }

    /// `out[off + r m + i] = re(x[r, (shift + i) mod n]) / n` for `i < m`.
    #[allow(clippy::too_many_arguments)]
    fn take<T: GpuElem>(
        dev: &CudaDevice,
        x: &CudaSlice<f64>,
        out: &mut CudaSlice<T>,
        off: usize,
        rows: usize,
        n: usize,
        shift: usize,
        m: usize,
    ) -> Result<()> {
        let (oi, ri, ni, si, mi) = (off as u64, int(rows)?, int(n)?, int(shift)?, int(m)?);
        let f = kernel!(dev, "fft_take", T);
        let mut args = f.builder();
        args.arg(x)
            .arg(out)
            .arg(&oi)
            .arg(&ri)
            .arg(&ni)
            .arg(&si)
            .arg(&mi);
        go(args, rows * m)
    }

    /// The forward op on CUDA: `u (B, D, L)`, `k (D, K)` → `y (B, D, L)`.
    pub(super) fn fwd<T: GpuElem>(
        s: [(&CudaStorage, &Layout); 2],
        g: &Geom,
    ) -> Result<CudaStorage> {
        let dev = &s[0].0.device;
        let [u, k] = views::<T, 2>(s)?;
        let (rows, n) = (g.b * g.d, fft_len(g));
        let mut x = packed(dev, &u, rows, g.l, n, false)?;
        let kf = packed(dev, &k, g.d, g.k, n, false)?;
        mul(dev, &mut x, &kf, rows, g.d, n)?;
        drop(kf);
        transform(dev, &mut x, rows, n, true)?;
        let mut y = zeros::<T>(dev, rows * g.l)?;
        take(dev, &x, &mut y, 0, rows, n, g.offset, g.l)?;
        Ok(storage(dev, y))
    }

    /// The backward op on CUDA: `u`, `k`, `dy` → flat `[du (B, D, L) | dk (D, K)]`.
    pub(super) fn bwd<T: GpuElem>(
        s: [(&CudaStorage, &Layout); 3],
        g: &Geom,
    ) -> Result<CudaStorage> {
        let dev = &s[0].0.device;
        let [u, k, gy] = views::<T, 3>(s)?;
        let (rows, n) = (g.b * g.d, fft_len(g));
        let mut out = zeros::<T>(dev, rows * g.l + g.d * g.k)?;
        let mut gf = packed(dev, &gy, rows, g.l, n, false)?;
        // dk: per-row correlations, then the batch sum.
        let mut ur = packed(dev, &u, rows, g.l, n, true)?;
        mul(dev, &mut ur, &gf, rows, rows, n)?;
        transform(dev, &mut ur, rows, n, true)?;
        let mut part = zeros::<T>(dev, rows * g.k)?;
        // The lag L - 1 - offset is negative when offset >= L: it wraps (n >= L + K - 1 > offset).
        take(
            dev,
            &ur,
            &mut part,
            0,
            rows,
            n,
            (n + g.l - 1 - g.offset) % n,
            g.k,
        )?;
        drop(ur);
        let (off, bi, di, ki) = ((rows * g.l) as u64, int(g.b)?, int(g.d)?, int(g.k)?);
        let f = kernel!(dev, "fft_sum_batch", T);
        let mut args = f.builder();
        args.arg(&part)
            .arg(&mut out)
            .arg(&off)
            .arg(&bi)
            .arg(&di)
            .arg(&ki);
        go(args, g.d * g.k)?;
        drop(part);
        // du.
        let kr = packed(dev, &k, g.d, g.k, n, true)?;
        mul(dev, &mut gf, &kr, rows, g.d, n)?;
        drop(kr);
        transform(dev, &mut gf, rows, n, true)?;
        take(dev, &gf, &mut out, 0, rows, n, g.k - 1 - g.offset, g.l)?;
        Ok(storage(dev, out))
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
    // CUDA with the `cuda` feature runs the op's own kernels; other devices go through the CPU.
    let own_kernels = matches!(dev, Device::Cpu) || (cfg!(feature = "cuda") && dev.is_cuda());
    let (u, k) = if own_kernels {
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
    if !own_kernels {
        y = y.to_device(&dev)?;
    }
    Ok(y)
}
