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
//! nothing but `y`. The backward sweeps each row forward again, checkpointing the state every
//! `chunk` steps (default [`SCAN_CHUNK`] = 64), then walks the chunks in reverse: it recomputes
//! the chunk's states from its checkpoint and sweeps time backwards, accumulating the state
//! gradient. Memory is O(B·D·L + B·N·L) plus `(L / chunk + chunk) · N` per task: no per-step graph
//! nodes and no `(B, D, L, N)` tensor.
//!
//! Determinism: every output element is written by one task and every sum runs in a fixed
//! order. The backward splits each batch element's channels into groups whose count depends on
//! the shapes only; the partial `dBm`/`dCm` of the groups are added in group order and `dA` is
//! summed over the batch in batch order, so results are bit-identical for any thread count.
//!
//! Other devices: inputs are moved to the CPU and the result back (`to_device` is
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
    fn exp(self) -> Self;
}

impl ScanElem for f32 {
    fn exp(self) -> Self {
        f32::exp(self)
    }
}

impl ScanElem for f64 {
    fn exp(self) -> Self {
        f64::exp(self)
    }
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

/// One state update `h = exp(dt A) h + dt x Bm`, returning `<Cm, h>`.
#[inline]
fn step<T: ScanElem>(h: &mut [T], a: &[T], bt: &[T], ct: &[T], dt: T, x: T) -> T {
    let bx = dt * x;
    let mut acc = T::ZERO;
    for k in 0..h.len() {
        let hk = (dt * a[k]).exp() * h[k] + bx * bt[k];
        h[k] = hk;
        acc += ct[k] * hk;
    }
    acc
}

/// Forward: `ud (B, 2D, L)`, `bct (B, L, 2N)` time-major, `a (D, N)` → `y (B, D, L)`.
fn scan_fwd<T: ScanElem>(ud: &[T], bct: &[T], a: &[T], g: &Geom) -> Vec<T> {
    let (d, n, l) = (g.d, g.n, g.l);
    let mut y = vec![T::ZERO; g.b * d * l];
    y.par_chunks_mut(l).enumerate().for_each(|(r, yr)| {
        let (bi, di) = (r / d, r % d);
        let u = &ud[(bi * 2 * d + di) * l..][..l];
        let dl = &ud[(bi * 2 * d + d + di) * l..][..l];
        let ar = &a[di * n..][..n];
        let bcb = &bct[bi * l * 2 * n..][..l * 2 * n];
        let mut h = vec![T::ZERO; n];
        for (t, yv) in yr.iter_mut().enumerate() {
            let (bt, ct) = bcb[t * 2 * n..][..2 * n].split_at(n);
            *yv = step(&mut h, ar, bt, ct, dl[t], u[t]);
        }
    });
    y
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

/// Backward of one task; `udg (B, 3D, L)` holds `[u, delta, dy]`.
#[allow(clippy::too_many_arguments)]
fn scan_bwd_task<T: ScanElem>(
    udg: &[T],
    bct: &[T],
    a: &[T],
    g: &Geom,
    bi: usize,
    d0: usize,
    rows: usize,
) -> TaskGrads<T> {
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
    // Checkpoints: the state before the first step of each chunk.
    let mut ckpt = vec![T::ZERO; nchunks * n];
    // States h_{t0-1} .. h_{t1-1} of the current chunk, and exp(dt A) of its steps.
    let mut hs = vec![T::ZERO; (chunk + 1) * n];
    let mut decay = vec![T::ZERO; chunk * n];
    let mut dh = vec![T::ZERO; n];
    for r in 0..rows {
        let di = d0 + r;
        let u = &udg[(bi * 3 * d + di) * l..][..l];
        let dl = &udg[(bi * 3 * d + d + di) * l..][..l];
        let gy = &udg[(bi * 3 * d + 2 * d + di) * l..][..l];
        let ar = &a[di * n..][..n];
        // Forward sweep, saving checkpoints.
        let h = &mut hs[..n];
        h.fill(T::ZERO);
        for t in 0..l {
            if t % chunk == 0 {
                ckpt[(t / chunk) * n..][..n].copy_from_slice(h);
            }
            let (bt, ct) = bcb[t * n2..][..n2].split_at(n);
            step(h, ar, bt, ct, dl[t], u[t]);
        }
        // Reverse sweep, chunk by chunk.
        dh.fill(T::ZERO);
        let (du, ddelta) = (&mut out.du[r * l..][..l], &mut out.ddelta[r * l..][..l]);
        let da = &mut out.da[r * n..][..n];
        for c in (0..nchunks).rev() {
            let (t0, t1) = (c * chunk, ((c + 1) * chunk).min(l));
            hs[..n].copy_from_slice(&ckpt[c * n..][..n]);
            for t in t0..t1 {
                let j = t - t0;
                let (prev, next) = hs[j * n..][..2 * n].split_at_mut(n);
                let bt = &bcb[t * n2..][..n];
                let (dt, x) = (dl[t], u[t]);
                let bx = dt * x;
                let dec = &mut decay[j * n..][..n];
                for k in 0..n {
                    let e = (dt * ar[k]).exp();
                    dec[k] = e;
                    next[k] = e * prev[k] + bx * bt[k];
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
                let mut du_t = T::ZERO;
                let mut dd_t = T::ZERO;
                for k in 0..n {
                    // Total gradient of h_t: from y_t and from h_{t+1}.
                    let gk = dh[k] + gyt * ct[k];
                    dct[k] += gyt * hcur[k];
                    let gdec = gk * dec[k] * hprev[k];
                    du_t += gk * dt * bt[k];
                    dd_t += gk * bt[k] * x + gdec * ar[k];
                    da[k] += gdec * dt;
                    dbt[k] += gk * dt * x;
                    dh[k] = gk * dec[k];
                }
                du[t] = du_t;
                ddelta[t] = dd_t;
            }
        }
    }
    out
}

/// Backward: returns `[d(u, delta) (B, 2D, L) | d(Bm, Cm) (B, 2N, L) | dA (D, N)]` flattened.
fn scan_bwd<T: ScanElem>(udg: &[T], bc: &[T], a: &[T], g: &Geom) -> Vec<T> {
    let (b, d, n, l) = (g.b, g.d, g.n, g.l);
    let n2 = 2 * n;
    let bct = bc_time_major(bc, g);
    let (rows, groups) = g.groups();
    let tasks: Vec<TaskGrads<T>> = (0..b * groups)
        .into_par_iter()
        .map(|task| {
            let (bi, gi) = (task / groups, task % groups);
            let d0 = gi * rows;
            scan_bwd_task(udg, &bct, a, g, bi, d0, rows.min(d - d0))
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
struct ScanOp(Geom);

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
        let g = &self.0;
        let name = self.name();
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(ud), CpuStorage::F32(bc), CpuStorage::F32(a)) => {
                let bct = bc_time_major(contiguous_slice(bc, l2, name)?, g);
                CpuStorage::F32(scan_fwd(
                    contiguous_slice(ud, l1, name)?,
                    &bct,
                    contiguous_slice(a, l3, name)?,
                    g,
                ))
            }
            (CpuStorage::F64(ud), CpuStorage::F64(bc), CpuStorage::F64(a)) => {
                let bct = bc_time_major(contiguous_slice(bc, l2, name)?, g);
                CpuStorage::F64(scan_fwd(
                    contiguous_slice(ud, l1, name)?,
                    &bct,
                    contiguous_slice(a, l3, name)?,
                    g,
                ))
            }
            (x, _, _) => bail!("{name}: unsupported dtype {:?}", x.dtype()),
        };
        Ok((out, Shape::from((g.b, g.d, g.l))))
    }

    fn bwd(
        &self,
        ud: &Tensor,
        bc: &Tensor,
        a: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = &self.0;
        let udg = Tensor::cat(&[&ud.detach(), &grad.detach().contiguous()?], 1)?;
        let flat = udg.apply_op3_no_bwd(&bc.detach(), &a.detach(), &ScanBwdOp(*g))?;
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
struct ScanBwdOp(Geom);

impl CustomOp3 for ScanBwdOp {
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
        let g = &self.0;
        let name = self.name();
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(udg), CpuStorage::F32(bc), CpuStorage::F32(a)) => {
                CpuStorage::F32(scan_bwd(
                    contiguous_slice(udg, l1, name)?,
                    contiguous_slice(bc, l2, name)?,
                    contiguous_slice(a, l3, name)?,
                    g,
                ))
            }
            (CpuStorage::F64(udg), CpuStorage::F64(bc), CpuStorage::F64(a)) => {
                CpuStorage::F64(scan_bwd(
                    contiguous_slice(udg, l1, name)?,
                    contiguous_slice(bc, l2, name)?,
                    contiguous_slice(a, l3, name)?,
                    g,
                ))
            }
            (x, _, _) => bail!("{name}: unsupported dtype {:?}", x.dtype()),
        };
        let len = g.b * 2 * g.d * g.l + g.b * 2 * g.n * g.l + g.d * g.n;
        Ok((out, Shape::from(len)))
    }
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
    if !u.device().is_cpu() {
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
    let g = Geom { b, d, n, l, chunk };
    let ud = Tensor::cat(&[u, delta], 1)?.contiguous()?;
    let bc = Tensor::cat(&[bm, cm], 1)?.contiguous()?;
    ud.apply_op3(&bc, &a.contiguous()?, ScanOp(g))
}
