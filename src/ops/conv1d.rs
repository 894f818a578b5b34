//! 1-D convolution with a correct forward and backward on every batch size.
//!
//! CPU, f32/f64: our own [`CustomOp2`] (im2col + gemm per batch element, parallel over fixed
//! batch chunks with rayon; grouped convolutions with one input channel per group, i.e.
//! depthwise, use a direct per-channel loop). The backward computes the input and weight
//! gradients in one pass.
//!
//! Any other device or dtype (CUDA, Metal, f16, bf16): [`conv1d_composed`], an im2col built from
//! `pad_with_zeros` + `index_select` followed by one batched matmul on contiguous tensors. Every
//! piece has a correct candle backward, so no CUDA kernel is needed; it is slower than a fused
//! kernel and materialises the (Cin * K, B * Lout) column matrix.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Module, Result, Shape, Tensor,
};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::{contiguous_slice, Elem};
pub static T_IM2COL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static T_GW: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static T_GCOL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static T_COL2IM: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static T_FWD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static T_BWD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
fn tick(c: &std::sync::atomic::AtomicU64, t0: std::time::Instant) {
    c.fetch_add(
        t0.elapsed().as_nanos() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
}

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
        let lo = lo.min(hi);
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

/// A row-major (or transposed) matrix view for [`gemm_into`].
#[derive(Clone, Copy)]
struct Mat<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

/// `dst (m x n) = [dst +] lhs (m x k) * rhs (k x n)` with a row-major destination.
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
    gemm_into_strided(m, n, k, dst, (dst_rs, 1), accumulate, lhs, rhs)
}

/// `dst (m x n) = [dst +] lhs (m x k) * rhs (k x n)`, single-threaded gemm, bounds-checked;
/// `dst_strides` is (row stride, column stride).
#[allow(clippy::too_many_arguments)]
fn gemm_into_strided<T: Elem>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_strides: (usize, usize),
    accumulate: bool,
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
) {
    if m == 0 || n == 0 {
        return;
    }
    let (dst_rs, dst_cs) = dst_strides;
    let need =
        |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs + 1;
    assert!(
        dst.len() >= need(m, n, dst_rs, dst_cs),
        "gemm_into: dst too small"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                for c in 0..n {
                    dst[r * dst_rs + c * dst_cs] = T::ZERO;
                }
            }
        }
        return;
    }
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
            dst_cs as isize,
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

/// Columns of one batch element: `col[(ci * K + kk) * Lout + t] = x[ci, t * s + kk * d - p]`.
fn im2col<T: Elem>(xb: &[T], g: &Geom, col: &mut [T]) {
    for ci in 0..g.cin {
        let xr = &xb[ci * g.l..(ci + 1) * g.l];
        for kk in 0..g.k {
            let row = &mut col[(ci * g.k + kk) * g.lout..][..g.lout];
            let off = g.tap_offset(kk);
            let (lo, hi) = g.valid(off);
            row[..lo].fill(T::ZERO);
            row[hi..].fill(T::ZERO);
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

/// Scatter-add one group's column gradient back onto the input gradient of a batch element.
fn col2im_group<T: Elem>(gcol: &[T], g: &Geom, group: usize, gxb: &mut [T]) {
    let cin_g = g.cin_g();
    for cl in 0..cin_g {
        let ci = group * cin_g + cl;
        let gr = &mut gxb[ci * g.l..(ci + 1) * g.l];
        for kk in 0..g.k {
            let row = &gcol[(cl * g.k + kk) * g.lout..][..g.lout];
            let off = g.tap_offset(kk);
            let (lo, hi) = g.valid(off);
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
fn conv_fwd<T: Elem>(x: &[T], w: &[T], g: &Geom) -> Vec<T> {
    let per_out = g.cout * g.lout;
    let per_in = g.cin * g.l;
    let mut out = vec![T::ZERO; g.b * per_out];
    if g.b == 0 {
        return out;
    }
    let (cout_g, ckg) = (g.cout_g(), g.ckg());
    out.par_chunks_mut(per_out)
        .enumerate()
        .for_each_init(Vec::<T>::new, |col, (bi, ob)| {
            let xb = &x[bi * per_in..(bi + 1) * per_in];
            if g.direct() {
                direct_fwd_batch(xb, w, ob, g);
                return;
            }
            let cols: &[T] = if g.pointwise() {
                xb
            } else {
                col.resize(g.cin * g.k * g.lout, T::ZERO);
                im2col(xb, g, col);
                col.as_slice()
            };
            for grp in 0..g.groups {
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
    out
}

/// Output-gradient columns for a stride-1 input gradient:
/// `gycol[(co * K + kk) * L + j] = gy[co, j + padding - kk * dilation]` (zero outside).
fn gy_cols<T: Elem>(gy_g: &[T], cout_g: usize, g: &Geom, buf: &mut [T]) {
    for co in 0..cout_g {
        let gr = &gy_g[co * g.lout..(co + 1) * g.lout];
        for kk in 0..g.k {
            let row = &mut buf[(co * g.k + kk) * g.l..][..g.l];
            let off = g.padding as isize - (kk * g.dilation) as isize;
            let lo = (-off).clamp(0, g.l as isize) as usize;
            let hi = (g.lout as isize - off).clamp(lo as isize, g.l as isize) as usize;
            row[..lo].fill(T::ZERO);
            row[hi..].fill(T::ZERO);
            let start = (lo as isize + off) as usize;
            row[lo..hi].copy_from_slice(&gr[start..start + (hi - lo)]);
        }
    }
}

/// The kernel regrouped per group as `(Cin_g, Cout_g * K)`: `wr[g][ci][co * K + kk] = w[g*cout_g + co][ci][kk]`.
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

/// Backward on contiguous slices: returns `[grad_x (B*Cin*L) ++ grad_w (Cout*Cin_g*K)]`.
fn conv_bwd<T: Elem>(x: &[T], w: &[T], gy: &[T], g: &Geom) -> Vec<T> {
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
    let (cin_g, cout_g, ckg) = (g.cin_g(), g.cout_g(), g.ckg());
    // Stride 1: the input gradient is a correlation of grad_y with the flipped kernel, one gemm
    // over (Cout_g * K) per group, with no scatter. Otherwise: column gradient + col2im.
    let use_gycol = !g.direct() && !g.pointwise() && g.stride == 1 && cout_g <= 2 * cin_g;
    let wr = if use_gycol {
        regroup_kernel(w, g)
    } else {
        Vec::new()
    };
    let gw_t = std::env::var("GW_T").is_ok();
    gx.par_chunks_mut(per_chunk * per_in)
        .zip(partials.par_chunks_mut(nw))
        .enumerate()
        .for_each(|(c, (gxc, gwp))| {
            let mut col = Vec::<T>::new();
            let mut gcol = Vec::<T>::new();
            let mut scratch = Vec::<T>::new();
            for (i, gxb) in gxc.chunks_mut(per_in).enumerate() {
                let bi = c * per_chunk + i;
                let xb = &x[bi * per_in..(bi + 1) * per_in];
                let gyb = &gy[bi * per_out..(bi + 1) * per_out];
                if g.direct() {
                    direct_bwd_batch(xb, w, gyb, gxb, gwp, g, &mut scratch);
                    continue;
                }
                let cols: &[T] = if g.pointwise() {
                    xb
                } else {
                    let t0 = std::time::Instant::now();
                    col.resize(g.cin * g.k * g.lout, T::ZERO);
                    im2col(xb, g, &mut col);
                    tick(&T_IM2COL, t0);
                    &col
                };
                for grp in 0..g.groups {
                    let gy_g = &gyb[grp * cout_g * g.lout..(grp + 1) * cout_g * g.lout];
                    let w_g = &w[grp * cout_g * ckg..(grp + 1) * cout_g * ckg];
                    let cols_g = &cols[grp * ckg * g.lout..(grp + 1) * ckg * g.lout];
                    let gw_g = &mut gwp[grp * cout_g * ckg..(grp + 1) * cout_g * ckg];
                    let t0 = std::time::Instant::now();
                    if gw_t {
                        // grad_w[g]^T (ckg x cout_g) += cols_g (ckg x Lout) * gy_g^T (Lout x cout_g)
                        gemm_into_strided(
                            ckg,
                            cout_g,
                            g.lout,
                            gw_g,
                            (1, ckg),
                            true,
                            Mat {
                                data: cols_g,
                                rs: g.lout,
                                cs: 1,
                            },
                            Mat {
                                data: gy_g,
                                rs: 1,
                                cs: g.lout,
                            },
                        );
                    } else {
                        // grad_w[g] (cout_g x ckg) += gy_g (cout_g x Lout) * cols_g^T (Lout x ckg)
                        gemm_into(
                            cout_g,
                            ckg,
                            g.lout,
                            gw_g,
                            ckg,
                            true,
                            Mat {
                                data: gy_g,
                                rs: g.lout,
                                cs: 1,
                            },
                            Mat {
                                data: cols_g,
                                rs: 1,
                                cs: g.lout,
                            },
                        );
                    }
                    tick(&T_GW, t0);
                    let gy_m = Mat {
                        data: gy_g,
                        rs: g.lout,
                        cs: 1,
                    };
                    let gx_g = &mut gxb[grp * cin_g * g.l..(grp + 1) * cin_g * g.l];
                    if g.pointwise() {
                        // grad_x[g] = w_g^T (cin_g x cout_g) * gy_g (cout_g x L)
                        let w_t = Mat {
                            data: w_g,
                            rs: 1,
                            cs: ckg,
                        };
                        gemm_into(cin_g, g.lout, cout_g, gx_g, g.lout, false, w_t, gy_m);
                    } else if use_gycol {
                        let t0 = std::time::Instant::now();
                        gcol.resize(cout_g * g.k * g.l, T::ZERO);
                        gy_cols(gy_g, cout_g, g, &mut gcol);
                        tick(&T_COL2IM, t0);
                        let t0 = std::time::Instant::now();
                        let kw = cout_g * g.k;
                        let wr_g = Mat {
                            data: &wr[grp * cin_g * kw..(grp + 1) * cin_g * kw],
                            rs: kw,
                            cs: 1,
                        };
                        let gyc = Mat {
                            data: &gcol,
                            rs: g.l,
                            cs: 1,
                        };
                        gemm_into(cin_g, g.l, kw, gx_g, g.l, false, wr_g, gyc);
                        tick(&T_GCOL, t0);
                    } else {
                        // grad_cols[g] = w_g^T (ckg x cout_g) * gy_g (cout_g x Lout), then scatter.
                        let w_t = Mat {
                            data: w_g,
                            rs: 1,
                            cs: ckg,
                        };
                        let t0 = std::time::Instant::now();
                        gcol.resize(ckg * g.lout, T::ZERO);
                        gemm_into(ckg, g.lout, cout_g, &mut gcol, g.lout, false, w_t, gy_m);
                        tick(&T_GCOL, t0);
                        let t0 = std::time::Instant::now();
                        col2im_group(&gcol, g, grp, gxb);
                        tick(&T_COL2IM, t0);
                    }
                }
            }
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
        let t0 = std::time::Instant::now();
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
        tick(&T_FWD, t0);
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
        let t0 = std::time::Instant::now();
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
        tick(&T_BWD, t0);
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
            y.broadcast_add(&b.reshape((1, cout, 1))?)
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
    let native = x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64);
    if !native {
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
