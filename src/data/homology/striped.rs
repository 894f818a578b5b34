//! The packed Gotoh pass of [`super::gotoh_packed`] over eight query positions at a time
//! (Farrar's striped layout, `i32` cells), with the same result.
//!
//! The query `x` is cut into `S = ⌈len / 8⌉` segments; vector `k` holds positions
//! `k, S + k, 2S + k, …` in its eight lanes, so the diagonal and the horizontal gap of a whole
//! column are plain element-wise vector steps. The vertical gap runs along the query: a first
//! sweep follows it within each lane, then the "lazy F" loop carries it across lanes until no
//! lane can still raise a cell. Every value taken in a maximum is a real path's packed score, and
//! no path is missed, so each cell equals the scalar recurrence's bit for bit (packing with a
//! smaller shift keeps the same order while `len < SHIFT`). The AVX2 pass is written with
//! intrinsics (the compiler split the portable pass's arrays into 128-bit halves); the portable
//! one runs elsewhere and in tests.

use crate::seq::BASE_CODE;

/// Query positions per vector.
const V: usize = 8;

/// Eight `i32` lanes of the portable pass ([`pass_avx2`] keeps them in AVX2 registers).
type Lanes = [i32; V];

/// Packing shift: a cell is `score · SHIFT ± identical`.
const SHIFT: i32 = 1 << 11;

/// Unreachable cell (far below any real score, far above overflow).
const NEG: i32 = i32::MIN / 4;

/// Whether the striped pass can take the pair: the identities fit below the shift and every
/// real score stays far from [`NEG`] (`|score| ≤ 8 (len x + len y) + 16`).
pub(super) fn fits(x_len: usize, y_len: usize) -> bool {
    x_len > 0 && x_len < SHIFT as usize && x_len + y_len <= 12_000
}

/// Reusable buffers of [`best`].
#[derive(Debug, Default)]
pub(super) struct Buffers {
    profile: Vec<Lanes>,
    h: Vec<Lanes>,
    e: Vec<Lanes>,
}

/// The best cell of the last query row over all columns, as (identities, score): the most
/// identities among best-scoring alignments for `sign` +1, the fewest for −1. Needs
/// [`fits`]`(x.len(), y.len())`.
pub(super) fn best(x: &[u8], y: &[u8], sign: i32, buf: &mut Buffers) -> (usize, i32) {
    debug_assert!(fits(x.len(), y.len()));
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { pass_avx2(x, y, sign, buf) };
        }
    }
    best_portable(x, y, sign, buf)
}

/// [`best`] without CPU-specific instructions (tests run it on every CPU).
pub(super) fn best_portable(x: &[u8], y: &[u8], sign: i32, buf: &mut Buffers) -> (usize, i32) {
    pass(x, y, sign, buf)
}

#[inline(always)]
fn add(a: Lanes, b: Lanes) -> Lanes {
    std::array::from_fn(|l| a[l] + b[l])
}

#[inline(always)]
fn add1(a: Lanes, b: i32) -> Lanes {
    std::array::from_fn(|l| a[l] + b)
}

#[inline(always)]
fn max(a: Lanes, b: Lanes) -> Lanes {
    std::array::from_fn(|l| a[l].max(b[l]))
}

/// Lane `l` takes lane `l − 1`; lane 0 takes `fill`.
#[inline(always)]
fn shift_up(a: Lanes, fill: i32) -> Lanes {
    std::array::from_fn(|l| if l == 0 { fill } else { a[l - 1] })
}

/// Whether any lane of `a` exceeds the same lane of `b`.
#[inline(always)]
fn any_gt(a: Lanes, b: Lanes) -> bool {
    let mut any = false;
    for l in 0..V {
        any |= a[l] > b[l];
    }
    any
}

/// Fills the profile and column 0; returns (segments, last position's vector and lane, its
/// column-0 cell).
fn prepare(x: &[u8], sign: i32, buf: &mut Buffers) -> (usize, usize, usize, i32) {
    let (open, ext) = (super::GAP_OPEN * SHIFT, super::GAP_EXTEND * SHIFT);
    let (hit, miss) = (2 * SHIFT + sign, -2 * SHIFT);
    let len = x.len();
    let segs = len.div_ceil(V);
    // Substitution scores per text base code (A, C, G, T, other), striped like the query.
    buf.profile.clear();
    buf.profile.resize(5 * segs, [miss; V]);
    for (i, &b) in x.iter().enumerate() {
        let c = BASE_CODE[b as usize] as usize;
        if c < 4 {
            buf.profile[c * segs + i % segs][i / segs] = hit;
        }
    }
    // Column 0: the query prefix is a gap; no horizontal gap is open yet.
    buf.h.clear();
    buf.h
        .extend((0..segs).map(|k| std::array::from_fn(|l| open + ext * (l * segs + k) as i32)));
    buf.e.clear();
    buf.e.resize(segs, [NEG; V]);
    let (last_k, last_l) = ((len - 1) % segs, (len - 1) / segs);
    (segs, last_k, last_l, buf.h[last_k][last_l])
}

/// Text base code's row of the profile (other codes: row 4, no match).
#[inline(always)]
fn code(b: u8) -> usize {
    (BASE_CODE[b as usize] as usize).min(4)
}

#[inline(always)]
fn pass(x: &[u8], y: &[u8], sign: i32, buf: &mut Buffers) -> (usize, i32) {
    let (open, ext) = (super::GAP_OPEN * SHIFT, super::GAP_EXTEND * SHIFT);
    let (segs, last_k, last_l, mut top) = prepare(x, sign, buf);
    let (h, e) = (&mut buf.h[..], &mut buf.e[..]);
    let mut first_f = [NEG; V];
    first_f[0] = open;
    for &b in y {
        let c = code(b);
        let prof = &buf.profile[c * segs..(c + 1) * segs];
        // Position `l·S − 1` is lane `l − 1` of the last vector; above position 0 lies the free
        // text prefix (0).
        let mut diag = shift_up(h[segs - 1], 0);
        let mut f = first_f;
        for k in 0..segs {
            let prev = h[k];
            let ek = max(add1(prev, open), add1(e[k], ext));
            e[k] = ek;
            let hk = max(add(diag, prof[k]), max(ek, f));
            h[k] = hk;
            f = max(add1(hk, open), add1(f, ext));
            diag = prev;
        }
        // Carry the vertical gap from the end of each lane into the next one.
        f = shift_up(f, NEG);
        let mut k = 0;
        let mut wraps = 0;
        loop {
            let hk = max(h[k], f);
            h[k] = hk;
            f = add1(f, ext);
            if !any_gt(f, add1(hk, open)) {
                break;
            }
            k += 1;
            if k == segs {
                k = 0;
                wraps += 1;
                if wraps == V {
                    break;
                }
                f = shift_up(f, NEG);
            }
        }
        top = top.max(h[last_k][last_l]);
    }
    super::unpack(top as i64, SHIFT as i64, sign as i64)
}

/// [`pass`] in AVX2 intrinsics (the same steps; the compiler splits [`pass`]'s arrays into
/// 128-bit halves).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pass_avx2(x: &[u8], y: &[u8], sign: i32, buf: &mut Buffers) -> (usize, i32) {
    use std::arch::x86_64::*;
    let (segs, last_k, last_l, mut top) = prepare(x, sign, buf);
    let open = _mm256_set1_epi32(super::GAP_OPEN * SHIFT);
    let ext = _mm256_set1_epi32(super::GAP_EXTEND * SHIFT);
    let neg = _mm256_set1_epi32(NEG);
    let zero = _mm256_setzero_si256();
    let up = _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6);
    let first_f = _mm256_blend_epi32::<1>(neg, open);
    let h = buf.h.as_mut_ptr() as *mut __m256i;
    let e = buf.e.as_mut_ptr() as *mut __m256i;
    let profile = buf.profile.as_ptr() as *const __m256i;
    // SAFETY: `h` and `e` hold `segs` vectors and `profile` 5 × `segs` (from `prepare`); every
    // index below is under those bounds, and unaligned loads and stores are used.
    unsafe {
        for &b in y {
            let prof = profile.add(code(b) * segs);
            let last = _mm256_loadu_si256(h.add(segs - 1));
            let mut diag = _mm256_blend_epi32::<1>(_mm256_permutevar8x32_epi32(last, up), zero);
            let mut f = first_f;
            for k in 0..segs {
                let prev = _mm256_loadu_si256(h.add(k));
                let ek = _mm256_max_epi32(
                    _mm256_add_epi32(prev, open),
                    _mm256_add_epi32(_mm256_loadu_si256(e.add(k)), ext),
                );
                _mm256_storeu_si256(e.add(k), ek);
                let sub = _mm256_loadu_si256(prof.add(k));
                let hk = _mm256_max_epi32(_mm256_add_epi32(diag, sub), _mm256_max_epi32(ek, f));
                _mm256_storeu_si256(h.add(k), hk);
                f = _mm256_max_epi32(_mm256_add_epi32(hk, open), _mm256_add_epi32(f, ext));
                diag = prev;
            }
            f = _mm256_blend_epi32::<1>(_mm256_permutevar8x32_epi32(f, up), neg);
            let mut k = 0;
            let mut wraps = 0;
            loop {
                let hk = _mm256_max_epi32(_mm256_loadu_si256(h.add(k)), f);
                _mm256_storeu_si256(h.add(k), hk);
                f = _mm256_add_epi32(f, ext);
                let gt = _mm256_cmpgt_epi32(f, _mm256_add_epi32(hk, open));
                if _mm256_testz_si256(gt, gt) != 0 {
                    break;
                }
                k += 1;
                if k == segs {
                    k = 0;
                    wraps += 1;
                    if wraps == V {
                        break;
                    }
                    f = _mm256_blend_epi32::<1>(_mm256_permutevar8x32_epi32(f, up), neg);
                }
            }
            top = top.max(*(h.add(last_k) as *const i32).add(last_l));
        }
    }
    super::unpack(top as i64, SHIFT as i64, sign as i64)
}
