//! Softmax, log-softmax and cross-entropy composed from differentiable candle ops.

use candle_core::{bail, shape::Dim, DType, Result, Tensor};

/// Numerically stable softmax along `dim` (the subtracted max is detached; it cancels out).
pub fn softmax<D: Dim>(x: &Tensor, dim: D) -> Result<Tensor> {
    let dim = dim.to_index(x.shape(), "softmax")?;
    let m = x.max_keepdim(dim)?.detach();
    let e = x.broadcast_sub(&m)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(dim)?)
}

/// Numerically stable log-softmax along `dim`: `x - max - log(sum(exp(x - max)))`.
pub fn log_softmax<D: Dim>(x: &Tensor, dim: D) -> Result<Tensor> {
    let dim = dim.to_index(x.shape(), "log_softmax")?;
    let m = x.max_keepdim(dim)?.detach();
    let xm = x.broadcast_sub(&m)?;
    let lse = xm.exp()?.sum_keepdim(dim)?.log()?;
    xm.broadcast_sub(&lse)
}

/// Smallest positive denominator used to turn an all-ignored batch into a zero loss.
fn tiny(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => f64::MIN_POSITIVE,
        DType::F32 => f32::MIN_POSITIVE as f64,
        _ => 1e-4,
    }
}

/// Validated `(log_probs (N, C), targets (N))` with classes on the last axis of `logits`.
fn flat_log_probs(logits: &Tensor, targets: &Tensor, op: &str) -> Result<(Tensor, Tensor)> {
    let dims = logits.dims();
    if dims.len() < 2 {
        bail!("{op}: logits must be (..., classes) with rank >= 2, got {dims:?}")
    }
    let c = dims[dims.len() - 1];
    let lead = &dims[..dims.len() - 1];
    if targets.dims() != lead {
        bail!(
            "{op}: targets must have shape {lead:?} (logits {dims:?}), got {:?}",
            targets.dims()
        )
    }
    if !matches!(targets.dtype(), DType::U8 | DType::U32 | DType::I64) {
        bail!(
            "{op}: targets must be u8, u32 or i64 class ids, got {:?}",
            targets.dtype()
        )
    }
    let n: usize = lead.iter().product();
    let lp = log_softmax(&logits.reshape((n, c))?, 1)?;
    Ok((lp, targets.flatten_all()?))
}

/// Mean negative log-likelihood of `targets` under softmax(`logits`), classes on the last axis.
///
/// `logits (..., C)`, `targets (...)` integer class ids (u8/u32/i64). With `weights (C)`, each
/// term is scaled by its class weight and the sum divided by the summed weights (PyTorch's
/// `reduction="mean"`). Out-of-range targets return an error.
pub fn cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    let (lp, t) = flat_log_probs(logits, targets, "cross_entropy")?;
    let picked = lp.gather(&t.unsqueeze(1)?, 1)?.squeeze(1)?;
    match weights {
        None => picked.mean_all()?.neg(),
        Some(w) => {
            let c = lp.dim(1)?;
            if w.dims() != [c] {
                bail!(
                    "cross_entropy: weights must have shape ({c},), got {:?}",
                    w.dims()
                )
            }
            let wt = w.to_dtype(lp.dtype())?.index_select(&t, 0)?;
            let den = wt.sum_all()?.maximum(tiny(lp.dtype()))?;
            (picked * wt)?.sum_all()?.neg()?.div(&den)
        }
    }
}

/// Cross-entropy averaged over positions where `mask` is non-zero (mask values act as weights).
///
/// `mask` has the shape of `targets`; targets at masked-out positions may hold any value (even
/// out of range). Returns 0 when every position is masked out.
pub fn cross_entropy_masked(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if mask.dims() != targets.dims() {
        bail!(
            "cross_entropy_masked: mask shape {:?} differs from targets shape {:?}",
            mask.dims(),
            targets.dims()
        )
    }
    let keep = mask.ne(0.0)?;
    let safe_targets = keep.where_cond(targets, &targets.zeros_like()?)?;
    let (lp, t) = flat_log_probs(logits, &safe_targets, "cross_entropy_masked")?;
    let m = mask.flatten_all()?.to_dtype(lp.dtype())?.detach();
    let picked = lp.gather(&t.unsqueeze(1)?, 1)?.squeeze(1)?;
    let den = m.sum_all()?.maximum(tiny(lp.dtype()))?;
    (picked * m)?.sum_all()?.neg()?.div(&den)
}

/// Cross-entropy averaged over positions whose target is not `ignore_index`.
///
/// A negative `ignore_index` (PyTorch's `-100`) matches nothing in unsigned targets.
pub fn cross_entropy_ignore_index(
    logits: &Tensor,
    targets: &Tensor,
    ignore_index: i64,
) -> Result<Tensor> {
    let representable = match targets.dtype() {
        DType::U8 => (0..=u8::MAX as i64).contains(&ignore_index),
        DType::U32 => (0..=u32::MAX as i64).contains(&ignore_index),
        _ => true,
    };
    let mask = if representable {
        targets.ne(ignore_index as f64)?
    } else {
        targets.ones_like()?.to_dtype(DType::U8)?
    };
    cross_entropy_masked(logits, targets, &mask)
}
