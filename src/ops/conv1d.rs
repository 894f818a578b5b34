//! 1-D convolution with a correct forward and backward on every batch size.
//!
//! CPU, f32/f64: our own [`CustomOp2`]. Forward, per batch element (rayon, one task each):
//! im2col into a `(Cin * K, Lout)` column matrix and one gemm per group. Backward, in one pass
//! (a [`CustomOp3`] returning both gradients): the kernel gradient `gy * colT` (with a row-major
//! `(Lout, Cin_g * K)` column matrix built from a zero-padded copy of the input) accumulates per
//! batch chunk; the input gradient is, for stride 1, a correlation of `gy` with the flipped
//! kernel (one gemm over `Cout_g * K`, no scatter), otherwise `w^T * gy` scattered back with
//! col2im. Grouped convolutions with one input channel per group (depthwise, any channel
//! multiplier) use direct per-channel loops instead of gemms. gemm runs single-threaded inside
//! each rayon task; the work buffers are kept per rayon thread between calls.
//!
//! Any other device or dtype (CUDA, Metal, f16; bf16 fails on CPU because candle's CPU matmul
//! has no bf16): [`conv1d_composed`], an im2col built from `pad_with_zeros` + `index_select`
//! followed by one batched matmul on contiguous tensors. Every piece has a correct candle
//! backward, so no CUDA kernel is needed; it is slower than a fused kernel and materialises the
//! `(Cin * K, B * Lout)` column matrix. It is tested on CPU against the native op.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use std::cell::RefCell;

use super::{contiguous_slice, Elem};

/// Upper bound on the batch chunks (and so on the partial weight-gradient buffers) per backward.
const MAX_CHUNKS: usize = 16;
/// Upper bound on the elements held in partial weight-gradient buffers per backward.
const MAX_PARTIAL_ELEMS: usize = 1 << 25;

/// Shapes and hyper-parameters of one conv1d call, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geom {
    b: usize,
    cin: usize,
    l: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
    lout: usize,
}

impl Geom {
    fn new(
        x: &Tensor,
        w: &Tensor,
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Result<Self> {
        let (b, cin, l) = match x.dims() {
            &[b, c, l] => (b, c, l),
            d => bail!("conv1d: input must be (batch, channels, length), got {d:?}"),
        };
        let (cout, cin_g, k) = match w.dims() {
            &[o, i, k] => (o, i, k),
            d => bail!("conv1d: weight must be (out, in / groups, kernel), got {d:?}"),
        };
        if stride == 0 || dilation == 0 || groups == 0 {
            bail!("conv1d: stride ({stride}), dilation ({dilation}) and groups ({groups}) must be positive")
        }
        if cin == 0 || cout == 0 || k == 0 || l == 0 {
            bail!(
                "conv1d: empty channel, kernel or length dimension: x {:?}, w {:?}",
                x.dims(),
                w.dims()
            )
        }
        if cin % groups != 0 || cout % groups != 0 || cin_g * groups != cin {
            bail!(
                "conv1d: groups = {groups} does not fit input channels {cin}, output channels {cout} \
                 and weight in-channels {cin_g}"
            )
        }
        if x.dtype() != w.dtype() {
            bail!(
                "conv1d: dtype mismatch: x {:?}, w {:?}",
                x.dtype(),
                w.dtype()
            )
        }
        if !x.device().same_device(w.device()) {
            bail!("conv1d: input and weight are on different devices")
        }
        let span = dilation
            .checked_mul(k - 1)
            .and_then(|v| v.checked_add(1))
            .ok_or_else(|| candle_core::Error::Msg("conv1d: kernel span overflows".into()))?;
        let padded = l + 2 * padding;
        if span > padded {
            bail!("conv1d: kernel span {span} exceeds padded length {padded}")
        }
        let lout = (padded - span) / stride + 1;
        Ok(Self {
            b,
            cin,
            l,
            cout,
            k,
            stride,
            padding,
            dilation,
            groups,
            lout,
        })
    }

    fn cin_g(&self) -> usize {
        self.cin / self.groups
    }

    fn cout_g(&self) -> usize {
        self.cout / self.groups
    }

    /// Rows of one group's column matrix: in-channels per group times kernel taps.
    fn ckg(&self) -> usize {
        self.cin_g() * self.k
    }

    /// One input channel per group: the direct loop beats tiny gemms.
    fn direct(&self) -> bool {
        self.cin_g() == 1
    }

    /// Kernel 1, stride 1, no padding: the column matrix is the input itself.
    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.padding == 0
    }

    /// Offset into the input row of output position 0 for tap `kk`.
    fn tap_offset(&self, kk: usize) -> isize {
        (kk * self.dilation) as isize - self.padding as isize
    }

    /// Output positions `t` in `[lo, hi)` whose input index `t * stride + off` is in bounds.
    fn valid(&self, off: isize) -> (usize, usize) {
        let s = self.stride as isize;
        let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
        let last = self.l as isize - 1 - off;
        if last < 0 {
            return (0, 0);
        }
        let hi = ((last / s) + 1).min(self.lout as isize);
        if lo >= hi {
            // No position reads inside the input (e.g. a dilation wider than the sequence).
            // Callers skip empty ranges before forming an index from `lo + off`.
            return (0, 0);
        }
        (lo as usize, hi as usize)
    }

    /// Batch elements per chunk in the backward; depends on shapes only (determinism).
    fn batches_per_chunk(&self) -> usize {
        let nw = self.cout * self.ckg();
        let chunks = self
            .b
            .min(MAX_CHUNKS)
            .min((MAX_PARTIAL_ELEMS / nw.max(1)).max(1))
            .max(1);
        self.b.div_ceil(chunks).max(1)
    }
}

/// A strided matrix view for [`gemm_into`] (`rs`: row stride, `cs`: column stride).
#[derive(Clone, Copy)]
struct Mat<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

/// `dst (m x n, row-major) = [dst +] lhs (m x k) * rhs (k x n)`: single-threaded gemm with
/// bounds checks. gemm is fastest with a column-major lhs or small m, and a row-major rhs.
#[allow(clippy::too_many_arguments)]
fn gemm_into<T: Elem>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
) {
    if m == 0 || n == 0 || k == 0 {
        // k == 0 cannot happen here (K >= 1 and channels >= 1 are validated).
        return;
    }
    let need =
        |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs + 1;
    assert!(
        dst.len() >= need(m, n, dst_rs, 1),
        "gemm_into: dst too small"
    );
    assert!(
        lhs.data.len() >= need(m, k, lhs.rs, lhs.cs),
        "gemm_into: lhs too small"
    );
    assert!(
        rhs.data.len() >= need(k, n, rhs.rs, rhs.cs),
        "gemm_into: rhs too small"
    );
    // SAFETY: the asserts above keep every strided access of the three matrices in bounds, the
    // destination is exclusively borrowed and T is f32 or f64 (Elem is only implemented there).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Fixed-order dot product with eight accumulators (vectorises, deterministic).
fn dot<T: Elem>(a: &[T], b: &[T]) -> T {
    let n = a.len().min(b.len());
    let n8 = n / 8 * 8;
    let mut acc = [T::ZERO; 8];
    for (ca, cb) in a[..n8].chunks_exact(8).zip(b[..n8].chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for i in n8..n {
        s += a[i] * b[i];
    }
    s
}

/// Per-thread work buffers, kept between calls so the im2col matrices are not re-allocated
/// (and re-faulted) on every call; each rayon worker holds its largest buffers so far.
struct Scratch<T> {
    col: Vec<T>,
    xpad: Vec<T>,
    gcol: Vec<T>,
    misc: Vec<T>,
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        Self {
            col: Vec::new(),
            xpad: Vec::new(),
            gcol: Vec::new(),
            misc: Vec::new(),
        }
    }
}

/// The first `n` elements of `v`, growing it if needed (contents are stale: overwrite them).
fn buf<T: Elem>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::ZERO);
    }
    &mut v[..n]
}

thread_local! {
    static SCRATCH_F32: RefCell<Scratch<f32>> = RefCell::new(Scratch::default());
    static SCRATCH_F64: RefCell<Scratch<f64>> = RefCell::new(Scratch::default());
}

/// Element types with a per-thread [`Scratch`].
trait ConvElem: Elem {
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<Self>) -> R) -> R;
}

fn with_local<T, R>(
    key: &'static std::thread::LocalKey<RefCell<Scratch<T>>>,
    f: impl FnOnce(&mut Scratch<T>) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        // Re-entrant use on one thread (not expected): fall back to fresh buffers.
        Err(_) => f(&mut Scratch::default()),
    })
}

impl ConvElem for f32 {
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<Self>) -> R) -> R {
        with_local(&SCRATCH_F32, f)
    }
}

impl ConvElem for f64 {
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<Self>) -> R) -> R {
        with_local(&SCRATCH_F64, f)
    }
}

/// Columns of one batch element, `(Cin * K, Lout)` row-major:
/// `col[(ci * K + kk) * Lout + t] = x[ci, t * s + kk * d - p]` (zero outside).
fn im2col<T: Elem>(xb: &[T], g: &Geom, col: &mut [T]) {
    for ci in 0..g.cin {
        let xr = &xb[ci * g.l..(ci + 1) * g.l];
        for kk in 0..g.k {
            let row = &mut col[(ci * g.k + kk) * g.lout..][..g.lout];
            let off = g.tap_offset(kk);
            let (lo, hi) = g.valid(off);
            row[..lo].fill(T::ZERO);
            row[hi..].fill(T::ZERO);
            if hi == lo {
                continue;
            }
            if g.stride == 1 {
                let start = (lo as isize + off) as usize;
                row[lo..hi].copy_from_slice(&xr[start..start + (hi - lo)]);
            } else {
                for (t, r) in row.iter_mut().enumerate().take(hi).skip(lo) {
                    *r = xr[(t as isize * g.stride as isize + off) as usize];
                }
            }
        }
    }
}

/// Zero-padded copy of one batch element, `(Cin, L + 2 p)`.
fn pad_input<T: Elem>(xb: &[T], g: &Geom, xpad: &mut [T]) {
    let lp = g.l + 2 * g.padding;
    for ci in 0..g.cin {
        let row = &mut xpad[ci * lp..(ci + 1) * lp];
        row[..g.padding].fill(T::ZERO);
        row[g.padding + g.l..].fill(T::ZERO);
        row[g.padding..g.padding + g.l].copy_from_slice(&xb[ci * g.l..(ci + 1) * g.l]);
    }
}

/// [`im2col_t`] with the kernel size known at compile time (inline copies of `K` taps).
fn im2col_t_k<T: Elem, const K: usize>(xpad: &[T], g: &Geom, group: usize, colt: &mut [T]) {
    let lp = g.l + 2 * g.padding;
    let (cin_g, ckg) = (g.cin_g(), g.ckg());
    let xg = &xpad[group * cin_g * lp..(group + 1) * cin_g * lp];
    for (t, row) in colt.chunks_exact_mut(ckg).take(g.lout).enumerate() {
        let base = t * g.stride;
        for (dst, xr) in row.chunks_exact_mut(K).zip(xg.chunks_exact(lp)) {
            let dst: &mut [T; K] = dst.try_into().expect("K taps");
            let src: &[T; K] = xr[base..base + K].try_into().expect("K taps");
            *dst = *src;
        }
    }
}

/// Transposed columns of one group, `(Lout, Cin_g * K)` row-major, from the padded input:
/// `colt[t * ckg + cl * K + kk] = xpad[group * cin_g + cl, t * s + kk * d]`. Written row by
/// row (sequential stores); the `K` taps of a channel are one small copy when dilation is 1.
fn im2col_t<T: Elem>(xpad: &[T], g: &Geom, group: usize, colt: &mut [T]) {
    if g.dilation == 1 {
        match g.k {
            1 => return im2col_t_k::<T, 1>(xpad, g, group, colt),
            2 => return im2col_t_k::<T, 2>(xpad, g, group, colt),
            3 => return im2col_t_k::<T, 3>(xpad, g, group, colt),
            4 => return im2col_t_k::<T, 4>(xpad, g, group, colt),
            5 => return im2col_t_k::<T, 5>(xpad, g, group, colt),
            6 => return im2col_t_k::<T, 6>(xpad, g, group, colt),
            7 => return im2col_t_k::<T, 7>(xpad, g, group, colt),
            8 => return im2col_t_k::<T, 8>(xpad, g, group, colt),
            9 => return im2col_t_k::<T, 9>(xpad, g, group, colt),
            10 => return im2col_t_k::<T, 10>(xpad, g, group, colt),
            11 => return im2col_t_k::<T, 11>(xpad, g, group, colt),
            12 => return im2col_t_k::<T, 12>(xpad, g, group, colt),
            15 => return im2col_t_k::<T, 15>(xpad, g, group, colt),
            16 => return im2col_t_k::<T, 16>(xpad, g, group, colt),
            _ => {}
        }
    }
    let lp = g.l + 2 * g.padding;
    let (cin_g, ckg) = (g.cin_g(), g.ckg());
    let xg = &xpad[group * cin_g * lp..(group + 1) * cin_g * lp];
    for (t, row) in colt.chunks_exact_mut(ckg).take(g.lout).enumerate() {
        let base = t * g.stride;
        for (dst, xr) in row.chunks_exact_mut(g.k).zip(xg.chunks_exact(lp)) {
            for (kk, d) in dst.iter_mut().enumerate() {
                *d = xr[base + kk * g.dilation];
            }
        }
    }
}

/// Output-gradient columns of one group for a stride-1 input gradient, `(Cout_g * K, L)`:
/// `gycol[(co * K + kk) * L + j] = gy[co, j + p - kk * d]` (zero outside).
fn gy_cols<T: Elem>(gy_g: &[T], g: &Geom, buf: &mut [T]) {
    for co in 0..g.cout_g() {
        let gr = &gy_g[co * g.lout..(co + 1) * g.lout];
        for kk in 0..g.k {
            let row = &mut buf[(co * g.k + kk) * g.l..][..g.l];
            let off = g.padding as isize - (kk * g.dilation) as isize;
            let lo = (-off).clamp(0, g.l as isize) as usize;
            let hi = (g.lout as isize - off).clamp(lo as isize, g.l as isize) as usize;
            row[..lo].fill(T::ZERO);
            row[hi..].fill(T::ZERO);
            if hi == lo {
                continue;
            }
            let start = (lo as isize + off) as usize;
            row[lo..hi].copy_from_slice(&gr[start..start + (hi - lo)]);
        }
    }
}

/// The kernel regrouped per group as `(Cin_g, Cout_g * K)`:
/// `wr[(g * cin_g + ci) * cout_g * K + co * K + kk] = w[g * cout_g + co, ci, kk]`.
fn regroup_kernel<T: Elem>(w: &[T], g: &Geom) -> Vec<T> {
    let (cin_g, cout_g, k) = (g.cin_g(), g.cout_g(), g.k);
    let mut wr = vec![T::ZERO; w.len()];
    for grp in 0..g.groups {
        for co in 0..cout_g {
            for ci in 0..cin_g {
                for kk in 0..k {
                    wr[((grp * cin_g + ci) * cout_g + co) * k + kk] =
                        w[((grp * cout_g + co) * cin_g + ci) * k + kk];
                }
            }
        }
    }
    wr
}

/// Scatter-add one group's column gradient `(Cin_g * K, Lout)` onto a batch element's input
/// gradient.
fn col2im_group<T: Elem>(gcol: &[T], g: &Geom, group: usize, gxb: &mut [T]) {
    let cin_g = g.cin_g();
    for cl in 0..cin_g {
        let ci = group * cin_g + cl;
        let gr = &mut gxb[ci * g.l..(ci + 1) * g.l];
        for kk in 0..g.k {
            let row = &gcol[(cl * g.k + kk) * g.lout..][..g.lout];
            let off = g.tap_offset(kk);
            let (lo, hi) = g.valid(off);
            if hi == lo {
                continue;
            }
            if g.stride == 1 {
                let start = (lo as isize + off) as usize;
                for (d, &v) in gr[start..start + (hi - lo)].iter_mut().zip(&row[lo..hi]) {
                    *d += v;
                }
            } else {
                for (t, &v) in row.iter().enumerate().take(hi).skip(lo) {
                    gr[(t as isize * g.stride as isize + off) as usize] += v;
                }
            }
        }
    }
}

/// Direct forward for one input channel per group (depthwise, any channel multiplier).
fn direct_fwd_batch<T: Elem>(xb: &[T], w: &[T], ob: &mut [T], g: &Geom) {
    let mult = g.cout_g();
    for co in 0..g.cout {
        let ci = co / mult;
        let xr = &xb[ci * g.l..(ci + 1) * g.l];
        let orow = &mut ob[co * g.lout..(co + 1) * g.lout];
        orow.fill(T::ZERO);
        for kk in 0..g.k {
            let wv = w[co * g.k + kk];
            let off = g.tap_offset(kk);
            let (lo, hi) = g.valid(off);
            if hi == lo {
                continue;
            }
            if g.stride == 1 {
                let start = (lo as isize + off) as usize;
                for (o, &xv) in orow[lo..hi].iter_mut().zip(&xr[start..start + (hi - lo)]) {
                    *o += wv * xv;
                }
            } else {
                for (t, o) in orow.iter_mut().enumerate().take(hi).skip(lo) {
                    *o += wv * xr[(t as isize * g.stride as isize + off) as usize];
                }
            }
        }
    }
}

/// Direct backward for one input channel per group; accumulates into `gxb` and `gw`.
fn direct_bwd_batch<T: Elem>(
    xb: &[T],
    w: &[T],
    gyb: &[T],
    gxb: &mut [T],
    gw: &mut [T],
    g: &Geom,
    scratch: &mut Vec<T>,
) {
    let mult = g.cout_g();
    for co in 0..g.cout {
        let ci = co / mult;
        let xr = &xb[ci * g.l..(ci + 1) * g.l];
        let gr = &mut gxb[ci * g.l..(ci + 1) * g.l];
        let gyr = &gyb[co * g.lout..(co + 1) * g.lout];
        for kk in 0..g.k {
            let wv = w[co * g.k + kk];
            let off = g.tap_offset(kk);
            let (lo, hi) = g.valid(off);
            if hi == lo {
                continue;
            }
            if g.stride == 1 {
                let start = (lo as isize + off) as usize;
                let xs = &xr[start..start + (hi - lo)];
                gw[co * g.k + kk] += dot(&gyr[lo..hi], xs);
                for (d, &v) in gr[start..start + (hi - lo)].iter_mut().zip(&gyr[lo..hi]) {
                    *d += wv * v;
                }
            } else {
                scratch.clear();
                for (t, &gv) in gyr.iter().enumerate().take(hi).skip(lo) {
                    let pos = (t as isize * g.stride as isize + off) as usize;
                    scratch.push(xr[pos]);
                    gr[pos] += wv * gv;
                }
                gw[co * g.k + kk] += dot(&gyr[lo..hi], scratch);
            }
        }
    }
}

/// Forward on contiguous slices: returns the (B, Cout, Lout) output.
fn conv_fwd<T: ConvElem>(x: &[T], w: &[T], g: &Geom) -> Vec<T> {
    let per_out = g.cout * g.lout;
    let per_in = g.cin * g.l;
    let mut out = vec![T::ZERO; g.b * per_out];
    let (cout_g, ckg) = (g.cout_g(), g.ckg());
    out.par_chunks_mut(per_out)
        .enumerate()
        .for_each(|(bi, ob)| {
            let xb = &x[bi * per_in..(bi + 1) * per_in];
            if g.direct() {
                direct_fwd_batch(xb, w, ob, g);
                return;
            }
            T::with_scratch(|s| {
                let cols: &[T] = if g.pointwise() {
                    xb
                } else {
                    let col = buf(&mut s.col, g.cin * g.k * g.lout);
                    im2col(xb, g, col);
                    col
                };
                for grp in 0..g.groups {
                    // y_g (cout_g x Lout) = w_g (cout_g x ckg) * cols_g (ckg x Lout)
                    gemm_into(
                        cout_g,
                        g.lout,
                        ckg,
                        &mut ob[grp * cout_g * g.lout..(grp + 1) * cout_g * g.lout],
                        g.lout,
                        false,
                        Mat {
                            data: &w[grp * cout_g * ckg..(grp + 1) * cout_g * ckg],
                            rs: ckg,
                            cs: 1,
                        },
                        Mat {
                            data: &cols[grp * ckg * g.lout..(grp + 1) * ckg * g.lout],
                            rs: g.lout,
                            cs: 1,
                        },
                    );
                }
            });
        });
    out
}

/// Backward of one batch element for the gemm (non-direct) path; accumulates the kernel
/// gradient into `gw` and writes the input gradient `gxb` (which starts zeroed).
#[allow(clippy::too_many_arguments)]
fn gemm_bwd_batch<T: Elem>(
    xb: &[T],
    w: &[T],
    wr: &[T],
    gyb: &[T],
    gxb: &mut [T],
    gw: &mut [T],
    g: &Geom,
    s: &mut Scratch<T>,
) {
    let (cin_g, cout_g, ckg) = (g.cin_g(), g.cout_g(), g.ckg());
    let xpad: &[T] = if g.padding == 0 {
        xb
    } else {
        let xp = buf(&mut s.xpad, g.cin * (g.l + 2 * g.padding));
        pad_input(xb, g, xp);
        xp
    };
    for grp in 0..g.groups {
        let gy_g = &gyb[grp * cout_g * g.lout..(grp + 1) * cout_g * g.lout];
        // grad_w[g] (cout_g x ckg) += gy_g (cout_g x Lout) * colT_g (Lout x ckg); gemm is about
        // twice as fast with this row-major colT as with the transposed (ckg x Lout) columns.
        let colt = buf(&mut s.col, g.lout * ckg);
        im2col_t(xpad, g, grp, colt);
        gemm_into(
            cout_g,
            ckg,
            g.lout,
            &mut gw[grp * cout_g * ckg..(grp + 1) * cout_g * ckg],
            ckg,
            true,
            Mat {
                data: gy_g,
                rs: g.lout,
                cs: 1,
            },
            Mat {
                data: colt,
                rs: ckg,
                cs: 1,
            },
        );
        if !wr.is_empty() {
            // Stride 1: grad_x[g] (cin_g x L) = wr_g (cin_g x cout_g K) * gycol_g (cout_g K x L),
            // a correlation of grad_y with the flipped kernel (no scatter).
            let kw = cout_g * g.k;
            let gycol = buf(&mut s.gcol, kw * g.l);
            gy_cols(gy_g, g, gycol);
            gemm_into(
                cin_g,
                g.l,
                kw,
                &mut gxb[grp * cin_g * g.l..(grp + 1) * cin_g * g.l],
                g.l,
                false,
                Mat {
                    data: &wr[grp * cin_g * kw..(grp + 1) * cin_g * kw],
                    rs: kw,
                    cs: 1,
                },
                Mat {
                    data: gycol,
                    rs: g.l,
                    cs: 1,
                },
            );
        } else {
            // grad_cols[g] (ckg x Lout) = w_g^T (ckg x cout_g) * gy_g (cout_g x Lout), scattered.
            let w_g = &w[grp * cout_g * ckg..(grp + 1) * cout_g * ckg];
            let gcol = buf(&mut s.gcol, ckg * g.lout);
            gemm_into(
                ckg,
                g.lout,
                cout_g,
                gcol,
                g.lout,
                false,
                Mat {
                    data: w_g,
                    rs: 1,
                    cs: ckg,
                },
                Mat {
                    data: gy_g,
                    rs: g.lout,
                    cs: 1,
                },
            );
            col2im_group(gcol, g, grp, gxb);
        }
    }
}

/// Backward on contiguous slices: returns `[grad_x (B*Cin*L) ++ grad_w (Cout*Cin_g*K)]`.
///
/// Batch elements are split into chunks whose size depends only on the shapes; each chunk
/// accumulates its own partial kernel gradient, and the partials are summed in chunk order,
/// so the result does not depend on the number of threads.
fn conv_bwd<T: ConvElem>(x: &[T], w: &[T], gy: &[T], g: &Geom) -> Vec<T> {
    let per_in = g.cin * g.l;
    let per_out = g.cout * g.lout;
    let nx = g.b * per_in;
    let nw = g.cout * g.ckg();
    let mut out = vec![T::ZERO; nx + nw];
    if g.b == 0 {
        return out;
    }
    let per_chunk = g.batches_per_chunk();
    let nchunks = g.b.div_ceil(per_chunk);
    let mut partials = vec![T::ZERO; nchunks * nw];
    let (gx, gw) = out.split_at_mut(nx);
    // The gy-column input gradient needs stride 1 and pays off unless Cout_g >> Cin_g.
    let use_gycol = !g.direct() && g.stride == 1 && g.cout_g() <= 2 * g.cin_g();
    let wr = if use_gycol {
        regroup_kernel(w, g)
    } else {
        Vec::new()
    };
    gx.par_chunks_mut(per_chunk * per_in)
        .zip(partials.par_chunks_mut(nw))
        .enumerate()
        .for_each(|(c, (gxc, gwp))| {
            T::with_scratch(|s| {
                for (i, gxb) in gxc.chunks_mut(per_in).enumerate() {
                    let bi = c * per_chunk + i;
                    let xb = &x[bi * per_in..(bi + 1) * per_in];
                    let gyb = &gy[bi * per_out..(bi + 1) * per_out];
                    if g.direct() {
                        direct_bwd_batch(xb, w, gyb, gxb, gwp, g, &mut s.misc);
                    } else {
                        gemm_bwd_batch(xb, w, &wr, gyb, gxb, gwp, g, s);
                    }
                }
            })
        });
    for p in partials.chunks_exact(nw) {
        for (a, &v) in gw.iter_mut().zip(p) {
            *a += v;
        }
    }
    out
}

/// The forward custom op: (x, w) -> y without bias.
struct Conv1dOp(Geom);

impl CustomOp2 for Conv1dOp {
    fn name(&self) -> &'static str {
        "genolm-conv1d"
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
            (CpuStorage::F32(x), CpuStorage::F32(w)) => CpuStorage::F32(conv_fwd(
                contiguous_slice(x, l1, name)?,
                contiguous_slice(w, l2, name)?,
                g,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(w)) => CpuStorage::F64(conv_fwd(
                contiguous_slice(x, l1, name)?,
                contiguous_slice(w, l2, name)?,
                g,
            )),
            (a, b) => bail!(
                "{name}: unsupported dtypes {:?}, {:?}",
                a.dtype(),
                b.dtype()
            ),
        };
        Ok((out, Shape::from((g.b, g.cout, g.lout))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let both = x.apply_op3_no_bwd(w, &grad, &Conv1dBwdOp(self.0))?;
        let (nx, nw) = (x.elem_count(), w.elem_count());
        let gx = both.narrow(0, 0, nx)?.reshape(x.shape())?;
        let gw = both.narrow(0, nx, nw)?.reshape(w.shape())?;
        Ok((Some(gx), Some(gw)))
    }
}

/// The backward custom op: (x, w, grad_y) -> flat [grad_x ++ grad_w].
struct Conv1dBwdOp(Geom);

impl CustomOp3 for Conv1dBwdOp {
    fn name(&self) -> &'static str {
        "genolm-conv1d-bwd"
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
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(gy)) => {
                CpuStorage::F32(conv_bwd(
                    contiguous_slice(x, l1, name)?,
                    contiguous_slice(w, l2, name)?,
                    contiguous_slice(gy, l3, name)?,
                    g,
                ))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(gy)) => {
                CpuStorage::F64(conv_bwd(
                    contiguous_slice(x, l1, name)?,
                    contiguous_slice(w, l2, name)?,
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
        let n = g.b * g.cin * g.l + g.cout * g.ckg();
        Ok((out, Shape::from(n)))
    }
}

fn add_bias(y: Tensor, bias: Option<&Tensor>, cout: usize) -> Result<Tensor> {
    match bias {
        None => Ok(y),
        Some(b) => {
            if b.dims() != [cout] {
                bail!("conv1d: bias must have shape ({cout},), got {:?}", b.dims())
            }
            super::channel_add(&y, b, 1)
        }
    }
}

/// 1-D convolution `x (B, Cin, L)` * `w (Cout, Cin/groups, K)` (+ `bias (Cout)`) -> `(B, Cout, Lout)`.
///
/// Cross-correlation like PyTorch's `conv1d`, with zero padding on both sides and
/// `Lout = (L + 2 padding - dilation (K - 1) - 1) / stride + 1`. Differentiable in `x`, `w` and
/// `bias` on every batch size. Bad shapes or hyper-parameters return an error.
#[allow(clippy::too_many_arguments)]
pub fn conv1d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
) -> Result<Tensor> {
    let g = Geom::new(x, w, stride, padding, dilation, groups)?;
    if !super::has_cpu_kernels(x) {
        return conv1d_composed(x, w, bias, stride, padding, dilation, groups);
    }
    let y = x.contiguous()?.apply_op2(&w.contiguous()?, Conv1dOp(g))?;
    add_bias(y, bias, g.cout)
}

/// Device-agnostic conv1d composed from candle ops with correct backward passes.
///
/// Pads with zeros, gathers the (B, Cin, K * Lout) im2col columns with `index_select`, and runs
/// one batched matmul over groups on contiguous tensors. Used for non-CPU devices (CUDA, Metal)
/// and non-f32/f64 dtypes; exposed so it can be tested against the native op on CPU.
#[allow(clippy::too_many_arguments)]
pub fn conv1d_composed(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
) -> Result<Tensor> {
    let g = Geom::new(x, w, stride, padding, dilation, groups)?;
    let (cout_g, ckg) = (g.cout_g(), g.ckg());
    let xp = if g.padding > 0 {
        x.pad_with_zeros(2, g.padding, g.padding)?
    } else {
        x.clone()
    };
    let last = (g.lout - 1) * g.stride + (g.k - 1) * g.dilation;
    if u32::try_from(last).is_err() {
        bail!("conv1d: sequence too long for u32 gather indices")
    }
    let idx: Vec<u32> = (0..g.k)
        .flat_map(|kk| (0..g.lout).map(move |t| (t * g.stride + kk * g.dilation) as u32))
        .collect();
    let idx = Tensor::from_vec(idx, g.k * g.lout, x.device())?;
    // (B, Cin, K * Lout) -> (B, G, ckg, Lout) -> (G, ckg, B, Lout) -> (G, ckg, B * Lout)
    let cols = xp
        .contiguous()?
        .index_select(&idx, 2)?
        .reshape((g.b, g.groups, ckg, g.lout))?
        .permute((1, 2, 0, 3))?
        .contiguous()?
        .reshape((g.groups, ckg, g.b * g.lout))?;
    let wm = w.contiguous()?.reshape((g.groups, cout_g, ckg))?;
    let y = wm
        .matmul(&cols)?
        .reshape((g.groups, cout_g, g.b, g.lout))?
        .permute((2, 0, 1, 3))?
        .contiguous()?
        .reshape((g.b, g.cout, g.lout))?;
    add_bias(y, bias, g.cout)
}

/// Hyper-parameters of a [`Conv1d`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv1dConfig {
    /// Step between output positions.
    pub stride: usize,
    /// Zeros added on each side of the length dimension.
    pub padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Channel groups (`groups == in_channels` is depthwise).
    pub groups: usize,
}

impl Default for Conv1dConfig {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

/// A 1-D convolution layer backed by [`conv1d`].
#[derive(Debug, Clone)]
pub struct Conv1d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: Conv1dConfig,
}

impl Conv1d {
    /// Wrap an existing `(Cout, Cin/groups, K)` weight and optional `(Cout)` bias.
    pub fn new(weight: Tensor, bias: Option<Tensor>, config: Conv1dConfig) -> Self {
        Self {
            weight,
            bias,
            config,
        }
    }

    /// Fetch (or create) `weight` and `bias` from `vb`; init is PyTorch's U(-1/sqrt(fan_in), +).
    pub fn load(
        vb: VarBuilder,
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        config: Conv1dConfig,
        bias: bool,
    ) -> Result<Self> {
        if config.groups == 0 || in_channels % config.groups != 0 {
            bail!(
                "conv1d: {in_channels} input channels not divisible by {} groups",
                config.groups
            )
        }
        let fan_in = (in_channels / config.groups * kernel_size).max(1);
        let bound = 1.0 / (fan_in as f64).sqrt();
        let init = candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb.get_with_hints(
            (out_channels, in_channels / config.groups, kernel_size),
            "weight",
            init,
        )?;
        let bias = if bias {
            Some(vb.get_with_hints(out_channels, "bias", init)?)
        } else {
            None
        };
        Ok(Self::new(weight, bias, config))
    }

    /// The `(Cout, Cin/groups, K)` weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The `(Cout)` bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The layer's hyper-parameters.
    pub fn config(&self) -> &Conv1dConfig {
        &self.config
    }
}

impl Module for Conv1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        conv1d(
            x,
            &self.weight,
            self.bias.as_ref(),
            c.stride,
            c.padding,
            c.dilation,
            c.groups,
        )
    }
}
