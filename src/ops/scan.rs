//! Selective scan (the state-space recurrence of Mamba-1) with its own forward and backward.
//!
//! Semantics are those of mamba_ssm's `selective_scan_ref` without `z`, `D`, delta bias or
//! softplus: for `u, delta (B, D, L)`, `A (D, N)`, `Bm, Cm (B, N, L)`,
//!
//! ```text
//! h_t[b, d, n] = exp(delta_t[b, d] * A[d, n]) * h_{t-1}[b, d, n] + delta_t[b, d] * Bm_t[b, n] * u_t[b, d]
//! y_t[b, d]    = sum_n Cm_t[b, n] * h_t[b, d, n]                     (h_{-1} = 0)
//! ```
//!
//! CPU, f32/f64: a candle [`CustomOp3`] over `(cat[u, delta], cat[Bm, Cm], A)`. The forward runs
//! one rayon task per `(batch, channel)` row, sweeping time with an `N`-element state; it keeps
//! `y` and the state at the start of every `chunk` steps (default [`SCAN_CHUNK`] = 64). The
//! backward walks each row's chunks in reverse: it recomputes the chunk's states from its
//! checkpoint and sweeps time backwards, accumulating the state gradient. Memory is
//! O(B·D·L + B·N·L + B·D·N·L / chunk) plus `chunk · N` per task: no per-step graph nodes and no
//! `(B, D, L, N)` tensor. `exp(delta · A)`, most of the arithmetic, uses a branch-free f32
//! polynomial so the state loops vectorize; on x86-64 with AVX2 the row kernels are compiled for
//! it at run time (no FMA and a fixed summation order, so the bits are the same either way).
//!
//! Determinism: every output element is written by one task and every sum runs in a fixed
//! order. The backward splits each batch element's channels into groups whose count depends on
//! the shapes only; the partial `dBm`/`dCm` of the groups are added in group order and `dA` is
//! summed over the batch in batch order, so results are bit-identical for any thread count.
//!
//! CUDA (the `cuda` feature), f32/f64: the same op runs the kernels of `src/ops/cuda/kernels.cu`
//! (one thread per row forward; the backward recomputes the checkpoints and splits into a
//! per-row, a per-(batch, state, chunk) and a per-(channel, state) kernel, every sum in a fixed
//! order). Other devices: inputs are moved to the CPU and the result back (`to_device` is
//! differentiable in candle 0.11.1); other dtypes (f16, bf16) are computed in f32.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous_slice, Elem};

/// Default checkpoint interval (time steps) of the backward pass.
pub const SCAN_CHUNK: usize = 64;

/// Aim for at least this many backward tasks (batch elements × channel groups).
const TARGET_TASKS: usize = 32;
/// At most this many channel groups per batch element (bounds the partial `dBm`/`dCm` buffers).
const MAX_GROUPS: usize = 16;

/// Float types the scan kernels run on.
trait ScanElem: Elem {
    /// `out[k] = exp(dt · a[k])`.
    fn decay(dt: Self, a: &[Self], out: &mut [Self]);
}

impl ScanElem for f32 {
    #[inline(always)]
    fn decay(dt: Self, a: &[Self], out: &mut [Self]) {
        for (o, &ak) in out.iter_mut().zip(a) {
            *o = exp_f32(dt * ak);
        }
    }
}

impl ScanElem for f64 {
    #[inline(always)]
    fn decay(dt: Self, a: &[Self], out: &mut [Self]) {
        for (o, &ak) in out.iter_mut().zip(a) {
            *o = (dt * ak).exp();
        }
    }
}

/// `exp(x)` in f32 to a relative error under `f32::EPSILON` (Cephes' `expf` polynomial; 8.2e-8
/// measured over [−87, 88]), 0 below −87.
///
/// Written without branches or library calls so that a loop over it vectorizes: the scan spends
/// most of its time on `exp(dt · A)` for every state element of every step.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let xc = x.clamp(-87.0, 88.0);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let scale = f32::from_bits(t.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(127) << 23);
    if x < -87.0 {
        0.0
    } else {
        e * scale
    }
}

/// `Σ x[k] · y[k]` in a fixed order (eight interleaved partial sums, then a fixed tree), so the
/// loop vectorizes and the result does not depend on the machine's thread count.
#[inline(always)]
fn dot<T: ScanElem>(x: &[T], y: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let mut xs = x.chunks_exact(8);
    let mut ys = y.chunks_exact(8);
    for (xc, yc) in (&mut xs).zip(&mut ys) {
        for j in 0..8 {
            acc[j] += xc[j] * yc[j];
        }
    }
    for (j, (&a, &b)) in xs.remainder().iter().zip(ys.remainder()).enumerate() {
        acc[j] += a * b;
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// Validated sizes of one scan call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geom {
    b: usize,
    d: usize,
    n: usize,
    l: usize,
    chunk: usize,
}

impl Geom {
    /// Channels per backward group and the number of groups (from the shapes only).
    fn groups(&self) -> (usize, usize) {
        let want = TARGET_TASKS
            .div_ceil(self.b.max(1))
            .clamp(1, MAX_GROUPS)
            .min(self.d);
        let rows = self.d.div_ceil(want);
        (rows, self.d.div_ceil(rows))
    }
}

/// `(B, 2N, L)` → `(B, L, 2N)` so the `Bm`, `Cm` values of one time step are contiguous.
fn bc_time_major<T: ScanElem>(bc: &[T], g: &Geom) -> Vec<T> {
    let n2 = 2 * g.n;
    let mut out = vec![T::ZERO; g.b * g.l * n2];
    out.par_chunks_mut(g.l * n2)
        .zip(bc.par_chunks(g.l * n2))
        .for_each(|(o, src)| {
            for (j, row) in src.chunks_exact(g.l).enumerate() {
                for (t, &v) in row.iter().enumerate() {
                    o[t * n2 + j] = v;
                }
            }
        });
    out
}

/// One state element after a step: `exp(dt a) · h + (dt x) · b`. The forward and the backward's
/// recomputation both use it, so the recomputed states are the forward's to the bit.
#[inline(always)]
fn next_state<T: ScanElem>(e: T, h: T, bx: T, b: T) -> T {
    e * h + bx * b
}

/// One state update `h = exp(dt A) h + dt x Bm`, returning `<Cm, h>`; `dec` receives
/// `exp(dt A)`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn step<T: ScanElem>(h: &mut [T], dec: &mut [T], a: &[T], bt: &[T], ct: &[T], dt: T, x: T) -> T {
    T::decay(dt, a, dec);
    let bx = dt * x;
    for ((hk, &e), &b) in h.iter_mut().zip(dec.iter()).zip(bt) {
        *hk = next_state(e, *hk, bx, b);
    }
    dot(ct, h)
}

/// Forward: `ud (B, 2D, L)`, `bct (B, L, 2N)` time-major, `a (D, N)` → `y (B, D, L)` and the
/// checkpoints `(B, D, ceil(L / chunk), N)`: the state before the first step of every chunk.
fn scan_fwd<T: ScanElem>(ud: &[T], bct: &[T], a: &[T], g: &Geom) -> (Vec<T>, Vec<T>) {
    let (d, n, l) = (g.d, g.n, g.l);
    let per_row = l.div_ceil(g.chunk) * n;
    let mut y = vec![T::ZERO; g.b * d * l];
    let mut ckpt = vec![T::ZERO; g.b * d * per_row];
    let avx2 = has_avx2();
    y.par_chunks_mut(l)
        .zip(ckpt.par_chunks_mut(per_row))
        .enumerate()
        .for_each(|(r, (yr, cr))| {
            let row = FwdRow::new(ud, bct, a, g, r);
            if avx2 {
                // SAFETY: the CPU has AVX2 (checked by `has_avx2`).
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    fwd_row_avx2(&row, yr, cr)
                };
            } else {
                fwd_row(&row, yr, cr);
            }
        });
    (y, ckpt)
}

/// True when the kernels can use AVX2 (same results: no FMA, fixed summation order).
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Inputs of one `(batch, channel)` row of the forward.
struct FwdRow<'a, T> {
    u: &'a [T],
    dl: &'a [T],
    a: &'a [T],
    bc: &'a [T],
    chunk: usize,
}

impl<'a, T> FwdRow<'a, T> {
    /// Row `r = batch · D + channel` of `ud (B, 2D, L)`, `bct (B, L, 2N)`, `a (D, N)`.
    fn new(ud: &'a [T], bct: &'a [T], a: &'a [T], g: &Geom, r: usize) -> Self {
        let (d, n, l) = (g.d, g.n, g.l);
        let (bi, di) = (r / d, r % d);
        FwdRow {
            u: &ud[(bi * 2 * d + di) * l..][..l],
            dl: &ud[(bi * 2 * d + d + di) * l..][..l],
            a: &a[di * n..][..n],
            bc: &bct[bi * l * 2 * n..][..l * 2 * n],
            chunk: g.chunk,
        }
    }
}

/// One row of the forward: `y` and the row's checkpoints.
#[inline(always)]
fn fwd_row<T: ScanElem>(row: &FwdRow<T>, yr: &mut [T], cr: &mut [T]) {
    let n = row.a.len();
    let mut h = vec![T::ZERO; n];
    let mut dec = vec![T::ZERO; n];
    for (t, yv) in yr.iter_mut().enumerate() {
        if t % row.chunk == 0 {
            cr[(t / row.chunk) * n..][..n].copy_from_slice(&h);
        }
        let (bt, ct) = row.bc[t * 2 * n..][..2 * n].split_at(n);
        *yv = step(&mut h, &mut dec, row.a, bt, ct, row.dl[t], row.u[t]);
    }
}

/// [`fwd_row`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fwd_row_avx2<T: ScanElem>(row: &FwdRow<T>, yr: &mut [T], cr: &mut [T]) {
    fwd_row(row, yr, cr)
}

/// Gradients of one backward task: channels `d0 .. d0 + rows` of batch element `bi`.
struct TaskGrads<T> {
    /// `(rows, L)` gradient of `u`.
    du: Vec<T>,
    /// `(rows, L)` gradient of `delta`.
    ddelta: Vec<T>,
    /// `(L, 2N)` time-major partial gradient of `[Bm, Cm]` over this task's channels.
    dbc: Vec<T>,
    /// `(rows, N)` partial gradient of `A` (this batch element only).
    da: Vec<T>,
}

/// Inputs shared by every backward task.
#[derive(Clone, Copy)]
struct BwdInputs<'a, T> {
    /// `(B, 3D, L)`: `[u, delta, dy]`.
    udg: &'a [T],
    /// `(B, L, 2N)` time-major `[Bm, Cm]`.
    bct: &'a [T],
    /// `(D, N)`.
    a: &'a [T],
    /// The forward's checkpoints `(B, D, ceil(L / chunk), N)`.
    ckpt: &'a [T],
    g: Geom,
}

/// Backward of one task: channels `d0 .. d0 + rows` of batch element `bi`.
#[inline(always)]
fn scan_bwd_task<T: ScanElem>(
    inp: &BwdInputs<T>,
    bi: usize,
    d0: usize,
    rows: usize,
) -> TaskGrads<T> {
    let BwdInputs {
        udg,
        bct,
        a,
        ckpt,
        g,
    } = *inp;
    let (d, n, l, chunk) = (g.d, g.n, g.l, g.chunk);
    let n2 = 2 * n;
    let nchunks = l.div_ceil(chunk);
    let mut out = TaskGrads {
        du: vec![T::ZERO; rows * l],
        ddelta: vec![T::ZERO; rows * l],
        dbc: vec![T::ZERO; l * n2],
        da: vec![T::ZERO; rows * n],
    };
    let bcb = &bct[bi * l * n2..][..l * n2];
    // States h_{t0-1} .. h_{t1-1} of the current chunk, and exp(dt A) of its steps.
    let mut hs = vec![T::ZERO; (chunk + 1) * n];
    let mut decay = vec![T::ZERO; chunk * n];
    let mut dh = vec![T::ZERO; n];
    let (mut gks, mut gdecs) = (vec![T::ZERO; n], vec![T::ZERO; n]);
    for r in 0..rows {
        let di = d0 + r;
        let u = &udg[(bi * 3 * d + di) * l..][..l];
        let dl = &udg[(bi * 3 * d + d + di) * l..][..l];
        let gy = &udg[(bi * 3 * d + 2 * d + di) * l..][..l];
        let ar = &a[di * n..][..n];
        let ck = &ckpt[(bi * d + di) * nchunks * n..][..nchunks * n];
        // Reverse sweep, chunk by chunk.
        dh.fill(T::ZERO);
        let (du, ddelta) = (&mut out.du[r * l..][..l], &mut out.ddelta[r * l..][..l]);
        let da = &mut out.da[r * n..][..n];
        for c in (0..nchunks).rev() {
            let (t0, t1) = (c * chunk, ((c + 1) * chunk).min(l));
            // Recompute the chunk's states from its checkpoint, with the forward's arithmetic.
            hs[..n].copy_from_slice(&ck[c * n..][..n]);
            for t in t0..t1 {
                let j = t - t0;
                let (prev, next) = hs[j * n..][..2 * n].split_at_mut(n);
                let bt = &bcb[t * n2..][..n];
                let (dt, x) = (dl[t], u[t]);
                let bx = dt * x;
                let dec = &mut decay[j * n..][..n];
                T::decay(dt, ar, dec);
                for ((hk, (&e, &p)), &b) in next.iter_mut().zip(dec.iter().zip(prev.iter())).zip(bt)
                {
                    *hk = next_state(e, p, bx, b);
                }
            }
            for t in (t0..t1).rev() {
                let j = t - t0;
                let hprev = &hs[j * n..][..n];
                let hcur = &hs[(j + 1) * n..][..n];
                let dec = &decay[j * n..][..n];
                let (dt, x, gyt) = (dl[t], u[t], gy[t]);
                let bt = &bcb[t * n2..][..n];
                let ct = &bcb[t * n2 + n..][..n];
                let dbc_t = &mut out.dbc[t * n2..][..n2];
                let (dbt, dct) = dbc_t.split_at_mut(n);
                let dtx = dt * x;
                // Every slice re-cut to `n` so the loop runs without bounds checks (vectorized).
                let (dh, gks, gdecs, da) =
                    (&mut dh[..n], &mut gks[..n], &mut gdecs[..n], &mut da[..n]);
                let (dbt, dct, hprev) = (&mut dbt[..n], &mut dct[..n], &hprev[..n]);
                for k in 0..n {
                    // Total gradient of h_t: from y_t and from h_{t+1}.
                    let gk = dh[k] + gyt * ct[k];
                    dct[k] += gyt * hcur[k];
                    let gdec = gk * dec[k] * hprev[k];
                    gks[k] = gk;
                    gdecs[k] = gdec;
                    da[k] += gdec * dt;
                    dbt[k] += gk * dtx;
                    dh[k] = gk * dec[k];
                }
                let gb = dot(gks, bt);
                du[t] = gb * dt;
                ddelta[t] = gb * x + dot(gdecs, ar);
            }
        }
    }
    out
}

/// [`scan_bwd_task`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_bwd_task_avx2<T: ScanElem>(
    inp: &BwdInputs<T>,
    bi: usize,
    d0: usize,
    rows: usize,
) -> TaskGrads<T> {
    scan_bwd_task(inp, bi, d0, rows)
}

/// Backward: returns `[d(u, delta) (B, 2D, L) | d(Bm, Cm) (B, 2N, L) | dA (D, N)]` flattened.
///
/// `ckpt` holds the forward's checkpoints; without them (`None`) the forward is run again.
fn scan_bwd<T: ScanElem>(udg: &[T], bc: &[T], a: &[T], ckpt: Option<&[T]>, g: &Geom) -> Vec<T> {
    let (b, d, n, l) = (g.b, g.d, g.n, g.l);
    let n2 = 2 * n;
    let bct = bc_time_major(bc, g);
    let again;
    let ckpt = match ckpt {
        Some(c) => c,
        None => {
            let ud: Vec<T> = udg
                .chunks_exact(3 * d * l)
                .flat_map(|r| r[..2 * d * l].iter().copied())
                .collect();
            again = scan_fwd(&ud, &bct, a, g).1;
            &again
        }
    };
    let (rows, groups) = g.groups();
    let avx2 = has_avx2();
    let inp = BwdInputs {
        udg,
        bct: &bct,
        a,
        ckpt,
        g: *g,
    };
    let tasks: Vec<TaskGrads<T>> = (0..b * groups)
        .into_par_iter()
        .map(|task| {
            let (bi, gi) = (task / groups, task % groups);
            let d0 = gi * rows;
            let rows = rows.min(d - d0);
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU has AVX2 (checked by `has_avx2`).
                return unsafe { scan_bwd_task_avx2(&inp, bi, d0, rows) };
            }
            scan_bwd_task(&inp, bi, d0, rows)
        })
        .collect();
    let (n_ud, n_bc) = (b * 2 * d * l, b * n2 * l);
    let mut out = vec![T::ZERO; n_ud + n_bc + d * n];
    let (out_ud, rest) = out.split_at_mut(n_ud);
    let (out_bc, out_a) = rest.split_at_mut(n_bc);
    out_ud
        .par_chunks_mut(2 * d * l)
        .zip(out_bc.par_chunks_mut(n2 * l))
        .enumerate()
        .for_each(|(bi, (oud, obc))| {
            let mine = &tasks[bi * groups..(bi + 1) * groups];
            for (gi, tg) in mine.iter().enumerate() {
                let d0 = gi * rows;
                let m = tg.du.len();
                oud[d0 * l..][..m].copy_from_slice(&tg.du);
                oud[(d + d0) * l..][..m].copy_from_slice(&tg.ddelta);
            }
            // Sum the groups' partials in group order, then transpose to (2N, L).
            let mut acc = mine[0].dbc.clone();
            for tg in &mine[1..] {
                for (s, &v) in acc.iter_mut().zip(&tg.dbc) {
                    *s += v;
                }
            }
            for t in 0..l {
                for j in 0..n2 {
                    obc[j * l + t] = acc[t * n2 + j];
                }
            }
        });
    for (di, oa) in out_a.chunks_exact_mut(n).enumerate() {
        let (gi, r) = (di / rows, di % rows);
        for bi in 0..b {
            let src = &tasks[bi * groups + gi].da[r * n..][..n];
            for (s, &v) in oa.iter_mut().zip(src) {
                *s += v;
            }
        }
    }
    out
}

/// The forward op: inputs `cat[u, delta] (B, 2D, L)`, `cat[Bm, Cm] (B, 2N, L)`, `A (D, N)`.
///
/// Keeps the forward's state checkpoints for its backward, which so only recomputes the states
/// inside each chunk.
struct ScanOp {
    g: Geom,
    ckpt: std::sync::Mutex<Option<CpuStorage>>,
}

impl CustomOp3 for ScanOp {
    fn name(&self) -> &'static str {
        "genolm-selective-scan"
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
        let g = &self.g;
        let name = self.name();
        let (out, ckpt) = match (s1, s2, s3) {
            (CpuStorage::F32(ud), CpuStorage::F32(bc), CpuStorage::F32(a)) => {
                let bct = bc_time_major(contiguous_slice(bc, l2, name)?, g);
                let (y, c) = scan_fwd(
                    contiguous_slice(ud, l1, name)?,
                    &bct,
                    contiguous_slice(a, l3, name)?,
                    g,
                );
                (CpuStorage::F32(y), CpuStorage::F32(c))
            }
            (CpuStorage::F64(ud), CpuStorage::F64(bc), CpuStorage::F64(a)) => {
                let bct = bc_time_major(contiguous_slice(bc, l2, name)?, g);
                let (y, c) = scan_fwd(
                    contiguous_slice(ud, l1, name)?,
                    &bct,
                    contiguous_slice(a, l3, name)?,
                    g,
                );
                (CpuStorage::F64(y), CpuStorage::F64(c))
            }
            (x, _, _) => bail!("{name}: unsupported dtype {:?}", x.dtype()),
        };
        *self.ckpt.lock().unwrap_or_else(|e| e.into_inner()) = Some(ckpt);
        Ok((out, Shape::from((g.b, g.d, g.l))))
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
        let s = [(s1, l1), (s2, l2), (s3, l3)];
        let y = match s1.dtype() {
            DType::F32 => gpu::fwd::<f32>(s, &self.g)?,
            DType::F64 => gpu::fwd::<f64>(s, &self.g)?,
            other => bail!("{}: unsupported dtype {other:?}", self.name()),
        };
        Ok((y, Shape::from((self.g.b, self.g.d, self.g.l))))
    }

    fn bwd(
        &self,
        ud: &Tensor,
        bc: &Tensor,
        a: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = &self.g;
        let udg = Tensor::cat(&[&ud.detach(), &grad.detach().contiguous()?], 1)?;
        let saved = self.ckpt.lock().unwrap_or_else(|e| e.into_inner());
        let op = ScanBwdOp {
            g: *g,
            ckpt: saved.as_ref(),
        };
        let flat = udg.apply_op3_no_bwd(&bc.detach(), &a.detach(), &op)?;
        drop(saved);
        let (n_ud, n_bc) = (g.b * 2 * g.d * g.l, g.b * 2 * g.n * g.l);
        let d_ud = flat.narrow(0, 0, n_ud)?.reshape((g.b, 2 * g.d, g.l))?;
        let d_bc = flat.narrow(0, n_ud, n_bc)?.reshape((g.b, 2 * g.n, g.l))?;
        let d_a = flat
            .narrow(0, n_ud + n_bc, g.d * g.n)?
            .reshape((g.d, g.n))?;
        Ok((Some(d_ud), Some(d_bc), Some(d_a)))
    }
}

/// The backward op: inputs `cat[u, delta, dy] (B, 3D, L)`, `cat[Bm, Cm]`, `A`; output flat.
struct ScanBwdOp<'a> {
    g: Geom,
    /// The forward's checkpoints, when it kept them.
    ckpt: Option<&'a CpuStorage>,
}

impl CustomOp3 for ScanBwdOp<'_> {
    fn name(&self) -> &'static str {
        "genolm-selective-scan-bwd"
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
        let g = &self.g;
        let name = self.name();
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(udg), CpuStorage::F32(bc), CpuStorage::F32(a)) => {
                let ckpt = match self.ckpt {
                    Some(CpuStorage::F32(c)) => Some(c.as_slice()),
                    _ => None,
                };
                CpuStorage::F32(scan_bwd(
                    contiguous_slice(udg, l1, name)?,
                    contiguous_slice(bc, l2, name)?,
                    contiguous_slice(a, l3, name)?,
                    ckpt,
                    g,
                ))
            }
            (CpuStorage::F64(udg), CpuStorage::F64(bc), CpuStorage::F64(a)) => {
                let ckpt = match self.ckpt {
                    Some(CpuStorage::F64(c)) => Some(c.as_slice()),
                    _ => None,
                };
                CpuStorage::F64(scan_bwd(
                    contiguous_slice(udg, l1, name)?,
                    contiguous_slice(bc, l2, name)?,
                    contiguous_slice(a, l3, name)?,
                    ckpt,
                    g,
                ))
            }
            (x, _, _) => bail!("{name}: unsupported dtype {:?}", x.dtype()),
        };
        let len = g.b * 2 * g.d * g.l + g.b * 2 * g.n * g.l + g.d * g.n;
        Ok((out, Shape::from(len)))
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
        let g = &self.g;
        let s = [(s1, l1), (s2, l2), (s3, l3)];
        let out = match s1.dtype() {
            DType::F32 => gpu::bwd::<f32>(s, g)?,
            DType::F64 => gpu::bwd::<f64>(s, g)?,
            other => bail!("{}: unsupported dtype {other:?}", self.name()),
        };
        let len = g.b * 2 * g.d * g.l + g.b * 2 * g.n * g.l + g.d * g.n;
        Ok((out, Shape::from(len)))
    }
}

/// True on a CUDA device when this build has the scan kernels (the `cuda` feature) and they can
/// hold the state (`N <= 64`); otherwise the op runs on the CPU and the result moves back.
fn native_gpu(dev: &Device, n: usize) -> bool {
    #[cfg(feature = "cuda")]
    if dev.is_cuda() {
        return n <= gpu::MAX_N;
    }
    let _ = (dev, n);
    false
}

/// Selective scan `y (B, D, L)` of `u, delta (B, D, L)`, `A (D, N)`, `Bm, Cm (B, N, L)` (see the
/// module docs); the backward checkpoints the state every [`SCAN_CHUNK`] = 64 steps.
///
/// `delta` is used as given (apply softplus and any bias before); the `D` skip term
/// `u * D` and the `z` gate are left to the caller.
pub fn selective_scan(
    u: &Tensor,
    delta: &Tensor,
    a: &Tensor,
    bm: &Tensor,
    cm: &Tensor,
) -> Result<Tensor> {
    selective_scan_chunked(u, delta, a, bm, cm, SCAN_CHUNK)
}

/// [`selective_scan`] with the backward's checkpoint interval `chunk` (time steps, > 0).
///
/// `chunk` only trades memory for nothing else: the backward recomputes the states with the
/// forward's exact arithmetic, so every `chunk` gives bit-identical gradients.
pub fn selective_scan_chunked(
    u: &Tensor,
    delta: &Tensor,
    a: &Tensor,
    bm: &Tensor,
    cm: &Tensor,
    chunk: usize,
) -> Result<Tensor> {
    let (b, d, l) = match u.dims() {
        &[b, d, l] => (b, d, l),
        s => bail!("selective_scan: u must be (batch, channels, length), got {s:?}"),
    };
    let n = match a.dims() {
        &[ad, n] if ad == d => n,
        s => bail!("selective_scan: A must be ({d}, state), got {s:?}"),
    };
    if delta.dims() != [b, d, l] {
        bail!(
            "selective_scan: delta must have u's shape {:?}, got {:?}",
            u.dims(),
            delta.dims()
        )
    }
    for (name, t) in [("Bm", bm), ("Cm", cm)] {
        if t.dims() != [b, n, l] {
            bail!(
                "selective_scan: {name} must be (batch, state, length) = ({b}, {n}, {l}), got {:?}",
                t.dims()
            )
        }
    }
    if b == 0 || d == 0 || n == 0 || l == 0 {
        bail!("selective_scan: empty dimension (batch {b}, channels {d}, state {n}, length {l})")
    }
    if chunk == 0 {
        bail!("selective_scan: chunk must be positive")
    }
    let dtype = u.dtype();
    for t in [delta, a, bm, cm] {
        if t.dtype() != dtype {
            bail!(
                "selective_scan: dtype mismatch: u {dtype:?}, other input {:?}",
                t.dtype()
            )
        }
        if !t.device().same_device(u.device()) {
            bail!("selective_scan: inputs are on different devices")
        }
    }
    if !u.device().is_cpu() && !native_gpu(u.device(), n) {
        // to_device is differentiable: gradients travel back to the original device.
        let cpu = Device::Cpu;
        let y = selective_scan_chunked(
            &u.to_device(&cpu)?,
            &delta.to_device(&cpu)?,
            &a.to_device(&cpu)?,
            &bm.to_device(&cpu)?,
            &cm.to_device(&cpu)?,
            chunk,
        )?;
        return y.to_device(u.device());
    }
    if !matches!(dtype, DType::F32 | DType::F64) {
        let f = |t: &Tensor| t.to_dtype(DType::F32);
        let y = selective_scan_chunked(&f(u)?, &f(delta)?, &f(a)?, &f(bm)?, &f(cm)?, chunk)?;
        return y.to_dtype(dtype);
    }
    // A chunk longer than the sequence is one chunk: cap it so no buffer is sized by it.
    let g = Geom {
        b,
        d,
        n,
        l,
        chunk: chunk.min(l),
    };
    let ud = Tensor::cat(&[u, delta], 1)?.contiguous()?;
    let bc = Tensor::cat(&[bm, cm], 1)?.contiguous()?;
    ud.apply_op3(
        &bc,
        &a.contiguous()?,
        ScanOp {
            g,
            ckpt: Default::default(),
        },
    )
}

/// Host side of the CUDA kernels (`src/ops/cuda/kernels.cu`): the forward is one thread per
/// `(batch, channel)` row; the backward recomputes the forward's checkpoints, then runs one
/// thread per row (d(u, delta), dA partials), one per `(batch, state, chunk)` (d(Bm, Cm), summed
/// over channels in order) and one per `(channel, state)` (dA summed over the batch in order).
#[cfg(feature = "cuda")]
mod gpu {
    use super::Geom;
    use crate::ops::cuda::{go, int, kernel, storage, views, zeros, GpuElem};
    use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, PushKernelArg};
    use candle_core::{CudaDevice, CudaStorage, Layout, Result};

    /// Largest state size the kernels hold per thread (`GENOLM_SCAN_MAX_N` in kernels.cu).
    pub(super) const MAX_N: usize = 64;

    /// The sizes as the kernels' `int` arguments.
    struct Dims {
        b: i32,
        d: i32,
        n: i32,
        l: i32,
        chunk: i32,
    }

    fn dims(g: &Geom) -> Result<Dims> {
        Ok(Dims {
            b: int(g.b)?,
            d: int(g.d)?,
            n: int(g.n)?,
            l: int(g.l)?,
            chunk: int(g.chunk)?,
        })
    }

    /// `y (B, D, L)` and the checkpoints `(B, D, nch, N)` from `ud` with `rows` channels per
    /// batch element (u first, delta next).
    fn forward<T: GpuElem>(
        dev: &CudaDevice,
        ud: &CudaView<'_, T>,
        rows: usize,
        bc: &CudaView<'_, T>,
        a: &CudaView<'_, T>,
        g: &Geom,
    ) -> Result<(CudaSlice<T>, CudaSlice<T>)> {
        let k = dims(g)?;
        let rows = int(rows)?;
        let nch = g.l.div_ceil(g.chunk);
        let mut y = zeros::<T>(dev, g.b * g.d * g.l)?;
        let mut ck = zeros::<T>(dev, g.b * g.d * nch * g.n)?;
        let f = kernel!(dev, "scan_fwd", T);
        let mut args = f.builder();
        args.arg(ud).arg(bc).arg(a).arg(&mut y).arg(&mut ck);
        args.arg(&k.b)
            .arg(&k.d)
            .arg(&k.n)
            .arg(&k.l)
            .arg(&k.chunk)
            .arg(&rows);
        go(args, g.b * g.d)?;
        Ok((y, ck))
    }

    /// The forward op on CUDA: `ud (B, 2D, L)`, `bc (B, 2N, L)`, `a (D, N)` → `y (B, D, L)`.
    pub(super) fn fwd<T: GpuElem>(
        s: [(&CudaStorage, &Layout); 3],
        g: &Geom,
    ) -> Result<CudaStorage> {
        let dev = &s[0].0.device;
        let [ud, bc, a] = views::<T, 3>(s)?;
        let (y, _) = forward(dev, &ud, 2 * g.d, &bc, &a, g)?;
        Ok(storage(dev, y))
    }

    /// The backward op on CUDA: `udg (B, 3D, L)`, `bc`, `a` → the flat gradients
    /// `[d(u, delta) | d(Bm, Cm) | dA]`.
    pub(super) fn bwd<T: GpuElem>(
        s: [(&CudaStorage, &Layout); 3],
        g: &Geom,
    ) -> Result<CudaStorage> {
        let dev = &s[0].0.device;
        let [udg, bc, a] = views::<T, 3>(s)?;
        let (_, ck) = forward(dev, &udg, 3 * g.d, &bc, &a, g)?;
        let k = dims(g)?;
        let nch = g.l.div_ceil(g.chunk);
        let mut hs = zeros::<T>(dev, g.b * g.d * (g.chunk + 1) * g.n)?;
        let mut dhc = zeros::<T>(dev, g.b * g.d * nch * g.n)?;
        let mut dapart = zeros::<T>(dev, g.b * g.d * g.n)?;
        let mut hs2 = zeros::<T>(dev, g.b * g.n * nch * (g.chunk + 1))?;
        let len = g.b * 2 * g.d * g.l + g.b * 2 * g.n * g.l + g.d * g.n;
        let mut out = zeros::<T>(dev, len)?;

        let f = kernel!(dev, "scan_bwd_rows", T);
        let mut args = f.builder();
        args.arg(&udg)
            .arg(&bc)
            .arg(&a)
            .arg(&ck)
            .arg(&mut hs)
            .arg(&mut dhc);
        args.arg(&mut out).arg(&mut dapart);
        args.arg(&k.b).arg(&k.d).arg(&k.n).arg(&k.l).arg(&k.chunk);
        go(args, g.b * g.d)?;

        let f = kernel!(dev, "scan_bwd_bc", T);
        let mut args = f.builder();
        args.arg(&udg)
            .arg(&bc)
            .arg(&a)
            .arg(&ck)
            .arg(&dhc)
            .arg(&mut hs2)
            .arg(&mut out);
        args.arg(&k.b).arg(&k.d).arg(&k.n).arg(&k.l).arg(&k.chunk);
        go(args, g.b * g.n * nch)?;

        let f = kernel!(dev, "scan_bwd_a", T);
        let mut args = f.builder();
        args.arg(&dapart).arg(&mut out);
        args.arg(&k.b).arg(&k.d).arg(&k.n).arg(&k.l);
        go(args, g.d * g.n)?;
        Ok(storage(dev, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_within_one_epsilon_and_flushes_below_the_range() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        println!("fast exp: worst relative error {worst:.2e}");
        assert!(worst < f32::EPSILON as f64, "relative error {worst:.2e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-90.0), 0.0);
        assert_eq!(exp_f32(-1e30), 0.0);
    }

    /// A seeded `(B, 2D, L)`, `(B, L, 2N)`, `(D, N)` input set.
    fn inputs(g: &Geom) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let mut ud: Vec<f32> = (0..g.b * 2 * g.d * g.l).map(|_| next()).collect();
        // delta in (0, 1): the second half of every batch element's channels.
        for bi in 0..g.b {
            for v in &mut ud[(bi * 2 + 1) * g.d * g.l..][..g.d * g.l] {
                *v = v.abs() + 0.01;
            }
        }
        let bc = (0..g.b * 2 * g.n * g.l).map(|_| next()).collect();
        let a = (0..g.d * g.n).map(|_| -next().abs() - 0.1).collect();
        (ud, bc, a)
    }

    #[test]
    fn avx2_kernels_and_saved_checkpoints_change_no_bit() {
        let g = Geom {
            b: 3,
            d: 5,
            n: 7,
            l: 41,
            chunk: 8,
        };
        let (ud, bc, a) = inputs(&g);
        let bct = bc_time_major(&bc, &g);
        let (y, ckpt) = scan_fwd(&ud, &bct, &a, &g);
        // The portable row kernel gives the same bits as the dispatched one.
        let per_row = g.l.div_ceil(g.chunk) * g.n;
        for r in 0..g.b * g.d {
            let row = FwdRow::new(&ud, &bct, &a, &g, r);
            let (mut yr, mut cr) = (vec![0f32; g.l], vec![0f32; per_row]);
            fwd_row(&row, &mut yr, &mut cr);
            assert_eq!(yr, y[r * g.l..][..g.l]);
            assert_eq!(cr, ckpt[r * per_row..][..per_row]);
        }
        // The backward from the saved checkpoints equals the one that recomputes them.
        let mut udg = Vec::new();
        for bi in 0..g.b {
            udg.extend_from_slice(&ud[bi * 2 * g.d * g.l..][..2 * g.d * g.l]);
            udg.extend(y[bi * g.d * g.l..][..g.d * g.l].iter().map(|v| v.sin()));
        }
        let saved = scan_bwd(&udg, &bc, &a, Some(&ckpt), &g);
        let again = scan_bwd(&udg, &bc, &a, None, &g);
        assert_eq!(saved, again);
    }
}
