//! Block-sparse attention (BigBird / GENA-LM style) composed from differentiable candle ops.
//!
//! The sequence is cut into blocks of `block` tokens (the length is padded with zeros to a
//! multiple of `block`; padding keys are masked out and padding queries dropped). A
//! [`BlockPattern`] says, for every query block, which key blocks it attends to:
//!
//! * the sliding window `i - w ..= i + w` (causal: `i - w ..= i`), out-of-range slots masked;
//! * the first `global_blocks` blocks (global keys, seen by every query);
//! * `random_blocks` random blocks per query block, drawn from a ChaCha RNG seeded with
//!   `(seed, layer, number of blocks)`, never repeating a window or global block (causal: only
//!   blocks to the left of the window).
//!
//! The global blocks' queries attend to *all* keys (dense rows, BigBird's ITC construction), so
//! global tokens see the whole sequence. A slot that repeats a block already in the row (window
//! overlapping the global blocks, or a window slot out of range) is masked, so every key is
//! counted at most once.
//!
//! Computation: keys and values are viewed as `(B, H, blocks, block, dh)` and the key blocks of
//! every query block are gathered with `index_select`; scores are a batched matmul
//! `(block, dh) x (dh, slots * block)` per query block, masked by adding a large negative value
//! ([`MASK_VALUE`]) and normalised with [`crate::ops::softmax()`]. There is never an `L x L` score
//! matrix except in the dense rows of the global blocks (`global * block x L`), so time and
//! memory are linear in `L` for fixed settings. When the window covers every block (`dense`, or
//! `window >= blocks - 1`), every query block is a dense row: the same code computes ordinary
//! (optionally causal) full attention.

use candle_core::{bail, DType, Device, Result, Tensor, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Additive bias of a masked score (large and negative; `exp` of it underflows to exactly 0).
pub const MASK_VALUE: f64 = -1e9;

/// Settings of the block-sparse attention pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseAttentionConfig {
    /// Tokens per block (> 0).
    pub block: usize,
    /// Window half-width in blocks (`usize::MAX`: every block).
    pub window: usize,
    /// Number of leading global blocks (dense rows and keys seen by every query).
    pub global_blocks: usize,
    /// Random key blocks per query block.
    pub random_blocks: usize,
    /// Mask keys after the query (the window then only reaches to the left).
    pub causal: bool,
    /// Attend to every key (ordinary full attention through the same code).
    pub dense: bool,
}

impl Default for SparseAttentionConfig {
    fn default() -> Self {
        SparseAttentionConfig {
            block: 16,
            window: 1,
            global_blocks: 1,
            random_blocks: 1,
            causal: false,
            dense: false,
        }
    }
}

/// A block-sparse attention pattern for one sequence length (and one layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPattern {
    len: usize,
    block: usize,
    n_blocks: usize,
    n_global: usize,
    slots: usize,
    /// Row `i` (query block `n_global + i`): `slots` key blocks, `None` = masked slot.
    slot_blocks: Vec<Option<usize>>,
    causal: bool,
}

/// SplitMix64 finaliser, to mix the seed, the layer and the block count.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl BlockPattern {
    /// The pattern for sequences of `len` tokens in layer `layer`, random blocks drawn from
    /// `seed` (the same `(seed, layer, number of blocks)` always gives the same pattern).
    pub fn new(cfg: &SparseAttentionConfig, len: usize, seed: u64, layer: usize) -> Result<Self> {
        if cfg.block == 0 {
            bail!("block-sparse attention: block size must be > 0")
        }
        if len == 0 {
            bail!("block-sparse attention: sequence length must be > 0")
        }
        let bs = cfg.block;
        let nb = len.div_ceil(bs);
        if cfg.dense || cfg.window >= nb - 1 {
            // The window covers every block: all query blocks are dense rows.
            return Ok(BlockPattern {
                len,
                block: bs,
                n_blocks: nb,
                n_global: nb,
                slots: 0,
                slot_blocks: Vec::new(),
                causal: cfg.causal,
            });
        }
        let g = cfg.global_blocks.min(nb);
        let w = cfg.window;
        let win_slots = if cfg.causal { w + 1 } else { 2 * w + 1 };
        let slots = g + win_slots + cfg.random_blocks;
        let mut rng = ChaCha8Rng::seed_from_u64(mix(mix(mix(seed) ^ layer as u64) ^ nb as u64));
        let mut slot_blocks = Vec::with_capacity((nb - g) * slots);
        let mut seen: Vec<usize> = Vec::with_capacity(slots);
        for i in g..nb {
            seen.clear();
            let row_start = slot_blocks.len();
            for j in 0..g {
                slot_blocks.push(Some(j));
                seen.push(j);
            }
            let hi_off = if cfg.causal { 0 } else { w };
            for d in 0..win_slots {
                // Block i - w + d, masked when out of range or already in the row.
                let j = (i + d)
                    .checked_sub(w)
                    .filter(|&j| j < nb && j <= i + hi_off);
                match j {
                    Some(j) if !seen.contains(&j) => {
                        slot_blocks.push(Some(j));
                        seen.push(j);
                    }
                    _ => slot_blocks.push(None),
                }
            }
            // Random blocks among 0..hi not yet in the row.
            let hi = if cfg.causal { i } else { nb };
            let taken = seen.iter().filter(|&&j| j < hi).count();
            let count = hi - taken;
            let want = cfg.random_blocks.min(count);
            if want > 0 {
                if 2 * count >= hi {
                    // Rejection sampling: at most 2 draws per block expected.
                    let mut got = 0;
                    while got < want {
                        let j = rng.random_range(0..hi);
                        if !seen.contains(&j) {
                            slot_blocks.push(Some(j));
                            seen.push(j);
                            got += 1;
                        }
                    }
                } else {
                    // Few candidates (hi < 2 * slots): partial Fisher-Yates over the list.
                    let mut cand: Vec<usize> = (0..hi).filter(|j| !seen.contains(j)).collect();
                    for t in 0..want {
                        let u = rng.random_range(t..cand.len());
                        cand.swap(t, u);
                        slot_blocks.push(Some(cand[t]));
                    }
                }
            }
            while slot_blocks.len() < row_start + slots {
                slot_blocks.push(None);
            }
        }
        Ok(BlockPattern {
            len,
            block: bs,
            n_blocks: nb,
            n_global: g,
            slots,
            slot_blocks,
            causal: cfg.causal,
        })
    }

    /// Sequence length in tokens.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false (patterns cover at least one token).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tokens per block.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Number of blocks, `ceil(len / block)`.
    pub fn n_blocks(&self) -> usize {
        self.n_blocks
    }

    /// Length padded to a multiple of the block size.
    pub fn padded_len(&self) -> usize {
        self.n_blocks * self.block
    }

    /// Number of leading query blocks that attend to every key (dense rows).
    pub fn dense_query_blocks(&self) -> usize {
        self.n_global
    }

    /// Key-block slots per sparse query block (0 when every row is dense).
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Whether keys after the query are masked.
    pub fn causal(&self) -> bool {
        self.causal
    }

    /// The key-block slots of query block `qb` (`None` = masked slot), or `None` for a dense
    /// row (or `qb` out of range).
    pub fn key_blocks(&self, qb: usize) -> Option<&[Option<usize>]> {
        if qb < self.n_global || qb >= self.n_blocks {
            return None;
        }
        let r = qb - self.n_global;
        Some(&self.slot_blocks[r * self.slots..(r + 1) * self.slots])
    }

    /// Whether query token `q` attends to key token `k`.
    pub fn allows(&self, q: usize, k: usize) -> bool {
        if q >= self.len || k >= self.len || (self.causal && k > q) {
            return false;
        }
        match self.key_blocks(q / self.block) {
            None => true,
            Some(row) => row.contains(&Some(k / self.block)),
        }
    }

    /// The equivalent dense additive mask `(len, len)`: 0 where allowed, [`MASK_VALUE`] elsewhere
    /// (a reference for [`dense_attention`]; quadratic in `len`).
    pub fn dense_mask(&self, dtype: DType, dev: &Device) -> Result<Tensor> {
        let l = self.len;
        let mut m = vec![MASK_VALUE; l * l];
        for q in 0..l {
            for k in 0..l {
                if self.allows(q, k) {
                    m[q * l + k] = 0.0;
                }
            }
        }
        Tensor::from_vec(m, (l, l), dev)?.to_dtype(dtype)
    }

    /// Additive bias `(rows, block, slots * block)` of the sparse query blocks.
    fn sparse_bias(&self, dtype: DType, dev: &Device) -> Result<Tensor> {
        let (bs, s) = (self.block, self.slots);
        let rows = self.n_blocks - self.n_global;
        let mut m = vec![MASK_VALUE; rows * bs * s * bs];
        for r in 0..rows {
            let row = &self.slot_blocks[r * s..(r + 1) * s];
            for a in 0..bs {
                let q = (self.n_global + r) * bs + a;
                let out = &mut m[(r * bs + a) * s * bs..(r * bs + a + 1) * s * bs];
                for (si, slot) in row.iter().enumerate() {
                    let Some(j) = *slot else { continue };
                    for c in 0..bs {
                        let k = j * bs + c;
                        if k < self.len && !(self.causal && k > q) {
                            out[si * bs + c] = 0.0;
                        }
                    }
                }
            }
        }
        Tensor::from_vec(m, (rows, bs, s * bs), dev)?.to_dtype(dtype)
    }

    /// Additive bias `(n_global * block, padded_len)` of the dense rows.
    fn dense_bias(&self, dtype: DType, dev: &Device) -> Result<Tensor> {
        let rows = self.n_global * self.block;
        let lp = self.padded_len();
        let mut m = vec![MASK_VALUE; rows * lp];
        for q in 0..rows {
            let end = if self.causal {
                (q + 1).min(self.len)
            } else {
                self.len
            };
            m[q * lp..q * lp + end].fill(0.0);
        }
        Tensor::from_vec(m, (rows, lp), dev)?.to_dtype(dtype)
    }
}

/// `(B, H, L, dh)` dims of an attention input.
fn dims4(t: &Tensor, name: &str) -> Result<(usize, usize, usize, usize)> {
    match t.dims() {
        &[b, h, l, d] => Ok((b, h, l, d)),
        d => bail!("attention: {name} must be (B, H, L, dh), got {d:?}"),
    }
}

/// Check `q`, `k`, `v` shapes and dtypes; returns `(B, H, L, dh, dv)`.
fn check_qkv(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<(usize, usize, usize, usize, usize)> {
    let (b, h, l, dh) = dims4(q, "q")?;
    let (kb, kh, kl, kd) = dims4(k, "k")?;
    let (vb, vh, vl, dv) = dims4(v, "v")?;
    if (kb, kh, kd) != (b, h, dh) || (vb, vh, vl) != (b, h, kl) {
        bail!(
            "attention: incompatible shapes q {:?}, k {:?}, v {:?}",
            q.dims(),
            k.dims(),
            v.dims()
        )
    }
    if kl != l {
        bail!("attention: q has {l} positions but k has {kl}")
    }
    if k.dtype() != q.dtype() || v.dtype() != q.dtype() {
        bail!(
            "attention: dtype mismatch q {:?}, k {:?}, v {:?}",
            q.dtype(),
            k.dtype(),
            v.dtype()
        )
    }
    if dh == 0 {
        bail!("attention: head dimension must be > 0")
    }
    Ok((b, h, l, dh, dv))
}

/// Plain dense attention `softmax(q k^T / sqrt(dh) + mask) v` for `q, k, v (B, H, L, dh)`.
///
/// `mask` is an additive bias broadcastable to `(B, H, L, L)` (e.g. `(L, L)` from
/// [`BlockPattern::dense_mask`]); `None` = no mask. A reference composition, quadratic in `L`.
pub fn dense_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, h, l, dh, dv) = check_qkv(q, k, v)?;
    let scale = 1.0 / (dh as f64).sqrt();
    let q3 = q.contiguous()?.reshape((b * h, l, dh))?;
    let kt = k
        .contiguous()?
        .reshape((b * h, l, dh))?
        .transpose(1, 2)?
        .contiguous()?;
    let v3 = v.contiguous()?.reshape((b * h, l, dv))?;
    let s = (q3.matmul(&kt)? * scale)?.reshape((b, h, l, l))?;
    let s = match mask {
        None => s,
        Some(m) => s.broadcast_add(m)?,
    };
    let p = super::softmax(&s, D::Minus1)?.reshape((b * h, l, l))?;
    p.matmul(&v3)?.reshape((b, h, l, dv))
}

/// Block-sparse attention of `q, k, v (B, H, L, dh)` under `pattern` -> `(B, H, L, dv)`.
///
/// Scores are scaled by `1 / sqrt(dh)`; see the module docs for the pattern and the cost.
pub fn block_sparse_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    pattern: &BlockPattern,
) -> Result<Tensor> {
    let (b, h, l, dh, dv) = check_qkv(q, k, v)?;
    if l != pattern.len {
        bail!(
            "block-sparse attention: inputs have {l} positions, the pattern was built for {}",
            pattern.len
        )
    }
    let (dtype, dev) = (q.dtype(), q.device());
    let scale = 1.0 / (dh as f64).sqrt();
    let (bs, nb, g, s) = (
        pattern.block,
        pattern.n_blocks,
        pattern.n_global,
        pattern.slots,
    );
    let lp = pattern.padded_len();
    let bh = b * h;
    let pad = |t: &Tensor| -> Result<Tensor> { t.pad_with_zeros(2, 0, lp - l)?.contiguous() };
    let (q, k, v) = (pad(q)?, pad(k)?, pad(v)?);
    let mut parts = Vec::with_capacity(2);
    if g > 0 {
        // Dense rows: the first g query blocks attend to every key.
        let rows = g * bs;
        let qg = q
            .narrow(2, 0, rows)?
            .contiguous()?
            .reshape((bh, rows, dh))?;
        let kt = k.reshape((bh, lp, dh))?.transpose(1, 2)?.contiguous()?;
        let sc = (qg.matmul(&kt)? * scale)?.broadcast_add(&pattern.dense_bias(dtype, dev)?)?;
        let p = super::softmax(&sc, D::Minus1)?;
        let out = p.matmul(&v.reshape((bh, lp, dv))?)?;
        parts.push(out.reshape((b, h, rows, dv))?);
    }
    let nq = nb - g;
    if nq > 0 {
        // Sparse rows: gather each query block's key/value blocks.
        let idx: Vec<u32> = pattern
            .slot_blocks
            .iter()
            .map(|j| j.unwrap_or(0) as u32)
            .collect();
        let idx = Tensor::from_vec(idx, nq * s, dev)?;
        let kg = k.reshape((b, h, nb, bs, dh))?.index_select(&idx, 2)?;
        let kgt = kg
            .reshape((bh * nq, s * bs, dh))?
            .transpose(1, 2)?
            .contiguous()?;
        let vg = v
            .reshape((b, h, nb, bs, dv))?
            .index_select(&idx, 2)?
            .reshape((bh * nq, s * bs, dv))?;
        let qs = q
            .narrow(2, g * bs, nq * bs)?
            .contiguous()?
            .reshape((bh * nq, bs, dh))?;
        let sc = (qs.matmul(&kgt)? * scale)?
            .reshape((bh, nq, bs, s * bs))?
            .broadcast_add(&pattern.sparse_bias(dtype, dev)?)?;
        let p = super::softmax(&sc, D::Minus1)?.reshape((bh * nq, bs, s * bs))?;
        let out = p.matmul(&vg)?;
        parts.push(out.reshape((b, h, nq * bs, dv))?);
    }
    let out = if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Tensor::cat(&parts, 2)?
    };
    if lp == l {
        Ok(out)
    } else {
        out.narrow(2, 0, l)?.contiguous()
    }
}
