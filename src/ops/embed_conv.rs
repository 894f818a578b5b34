//! Embedding followed by a 1-D convolution, fused into a table lookup.
//!
//! `conv1d(embed(ids))` with embedding `E (V, D)` and kernel `W (O, D, K)` equals
//! `y[b, o, t] = bias[o] + Σ_k M[k, o, ids[b, t − p + k·d]]` with `M[k] = W[:, :, k] · Eᵀ`
//! (`K × O × V`): the convolution of one-hot-like inputs collapses to adding `K` table columns.
//! Exact (no approximation): the gradients of `W` and `E` flow through the small matmul that
//! builds `M`, and the op itself returns the gradients of `M` and `bias` by scatter-adding the
//! output gradient. For a 100-dim embedding and 8-tap kernel this removes the largest
//! convolution of the genomic-benchmarks CNN.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous_slice, Elem};

#[derive(Debug, Clone, Copy)]
struct Geom {
    b: usize,
    l: usize,
    k: usize,
    o: usize,
    v: usize,
    pad: usize,
    dil: usize,
    lout: usize,
}

impl Geom {
    /// Input position of tap `k` for output `t`, if inside the sequence.
    #[inline]
    fn src(&self, t: usize, k: usize) -> Option<usize> {
        let p = t + k * self.dil;
        (p >= self.pad && p - self.pad < self.l).then(|| p - self.pad)
    }
}

struct EmbedConvOp(Geom);

fn fwd<T: Elem>(ids: &[u32], m: &[T], bias: &[T], g: &Geom) -> Result<Vec<T>> {
    if let Some(&bad) = ids.iter().find(|&&i| i as usize >= g.v) {
        bail!(
            "embed_conv1d: token id {bad} out of range for vocabulary {}",
            g.v
        )
    }
    let mut out = vec![T::ZERO; g.b * g.o * g.lout];
    out.par_chunks_mut(g.o * g.lout)
        .enumerate()
        .for_each(|(bi, ob)| {
            let row = &ids[bi * g.l..(bi + 1) * g.l];
            for (o, yo) in ob.chunks_mut(g.lout).enumerate() {
                for (t, y) in yo.iter_mut().enumerate() {
                    let mut acc = bias[o];
                    for k in 0..g.k {
                        if let Some(p) = g.src(t, k) {
                            acc += m[(k * g.o + o) * g.v + row[p] as usize];
                        }
                    }
                    *y = acc;
                }
            }
        });
    Ok(out)
}

/// Gradients of `M` (`K × O × V`) and `bias` (`O`) from the output gradient.
fn bwd<T: Elem>(ids: &[u32], gy: &[T], g: &Geom) -> (Vec<T>, Vec<T>) {
    // Each (k, o) row of dM is owned by one task: deterministic for any thread count.
    let mut dm = vec![T::ZERO; g.k * g.o * g.v];
    dm.par_chunks_mut(g.v).enumerate().for_each(|(ko, row)| {
        let (k, o) = (ko / g.o, ko % g.o);
        for bi in 0..g.b {
            let ids_b = &ids[bi * g.l..(bi + 1) * g.l];
            let gy_bo = &gy[(bi * g.o + o) * g.lout..(bi * g.o + o + 1) * g.lout];
            for (t, &d) in gy_bo.iter().enumerate() {
                if let Some(p) = g.src(t, k) {
                    row[ids_b[p] as usize] += d;
                }
            }
        }
    });
    let db = (0..g.o)
        .map(|o| {
            let mut acc = T::ZERO;
            for bi in 0..g.b {
                for &d in &gy[(bi * g.o + o) * g.lout..(bi * g.o + o + 1) * g.lout] {
                    acc += d;
                }
            }
            acc
        })
        .collect();
    (dm, db)
}

impl CustomOp3 for EmbedConvOp {
    fn name(&self) -> &'static str {
        "genolm-embed-conv1d"
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
        let CpuStorage::U32(ids) = s1 else {
            bail!("{name}: token ids must be u32, got {:?}", s1.dtype())
        };
        let ids = contiguous_slice(ids, l1, name)?;
        let out = match (s2, s3) {
            (CpuStorage::F32(m), CpuStorage::F32(b)) => CpuStorage::F32(fwd(
                ids,
                contiguous_slice(m, l2, name)?,
                contiguous_slice(b, l3, name)?,
                g,
            )?),
            (CpuStorage::F64(m), CpuStorage::F64(b)) => CpuStorage::F64(fwd(
                ids,
                contiguous_slice(m, l2, name)?,
                contiguous_slice(b, l3, name)?,
                g,
            )?),
            (a, b) => bail!(
                "{name}: unsupported dtypes {:?}, {:?}",
                a.dtype(),
                b.dtype()
            ),
        };
        Ok((out, Shape::from((g.b, g.o, g.lout))))
    }

    fn bwd(
        &self,
        ids: &Tensor,
        m: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = &self.0;
        let ids_v: Vec<u32> = ids.flatten_all()?.to_vec1()?;
        let gy = grad_res.contiguous()?.flatten_all()?;
        let dev = m.device();
        let (dm, db) = match m.dtype() {
            DType::F32 => {
                let (dm, db) = bwd(&ids_v, &gy.to_vec1::<f32>()?, g);
                (
                    Tensor::from_vec(dm, (g.k, g.o, g.v), dev)?,
                    Tensor::from_vec(db, g.o, dev)?,
                )
            }
            DType::F64 => {
                let (dm, db) = bwd(&ids_v, &gy.to_vec1::<f64>()?, g);
                (
                    Tensor::from_vec(dm, (g.k, g.o, g.v), dev)?,
                    Tensor::from_vec(db, g.o, dev)?,
                )
            }
            other => bail!("embed_conv1d: unsupported dtype {other:?}"),
        };
        Ok((None, Some(dm), Some(db)))
    }
}

/// `conv1d(embedding(ids))` as one op: `ids (B, L)` u32, embedding `(V, D)`, kernel `(O, D, K)`,
/// bias `(O)`, zero padding `padding` on both sides, dilation `dilation`, stride 1.
/// Returns `(B, O, L + 2·padding − dilation·(K−1))`.
pub fn embed_conv1d(
    ids: &Tensor,
    embedding: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    padding: usize,
    dilation: usize,
) -> Result<Tensor> {
    let (b, l) = ids.dims2()?;
    let (v, d) = embedding.dims2()?;
    let (o, d2, k) = weight.dims3()?;
    if d != d2 || bias.dims() != [o] || dilation == 0 || k == 0 {
        bail!(
            "embed_conv1d: embedding {:?}, weight {:?}, bias {:?} do not fit (dilation {dilation})",
            embedding.dims(),
            weight.dims(),
            bias.dims()
        )
    }
    let span = dilation * (k - 1) + 1;
    if l + 2 * padding < span {
        bail!("embed_conv1d: sequence of {l} is shorter than the kernel span {span}")
    }
    let lout = l + 2 * padding - span + 1;
    if !ids.device().is_cpu() {
        // Devices without our kernel: the plain composition (same numbers).
        let (b, l) = ids.dims2()?;
        let emb = embedding
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, d))?
            .transpose(1, 2)?
            .contiguous()?;
        return super::conv1d(&emb, weight, Some(bias), 1, padding, dilation, 1);
    }
    // M[k] = W[:, :, k] · Eᵀ, built with contiguous operands only.
    let wk = weight.permute((2, 0, 1))?.contiguous()?; // (K, O, D)
    let et = embedding.t()?.contiguous()?; // (D, V)
    let m = wk.broadcast_matmul(&et)?.contiguous()?; // (K, O, V)
    let geom = Geom {
        b,
        l,
        k,
        o,
        v,
        pad: padding,
        dil: dilation,
        lout,
    };
    ids.contiguous()?
        .apply_op3(&m, &bias.contiguous()?, EmbedConvOp(geom))
}
