//! Homology between sequences: canonical k-mer sketches, candidate pairs from an inverted index,
//! alignment identity in the cd-hit-est sense, single-linkage clusters and train/test leakage.
//!
//! # Method
//!
//! 1. **Sketch.** Every sequence is reduced to the set of its canonical k-mers (the smaller of a
//!    k-mer and its reverse complement, 2 bits a base; windows with a non-ACGT base are skipped),
//!    each with the strand on which it was read. A sequence and its reverse complement have the
//!    same sketch. The sketch keeps *every* k-mer (density 1): two 300 bp sequences at 80 %
//!    identity share only about 16 of their 288 13-mers, so a sub-sampled sketch (bottom-s
//!    MinHash, sparse minimizers) would miss many of the pairs that matter here.
//! 2. **Candidates.** An inverted index maps each k-mer to the sequences holding it. A pair is a
//!    candidate, on a relative strand, when it shares at least `min_shared` k-mers read on that
//!    relative strand (the *candidate bar*). k-mers held by more than `max_occ` sequences
//!    (low-complexity and repeat k-mers) are not used to find candidates.
//! 3. **Bound.** For each candidate the longest common subsequence of the two sequences (on the
//!    candidate's strand, bit-parallel, Hyyrö 2004) bounds from above the number of identical
//!    aligned bases of *any* alignment, so `LCS / shorter length` is an upper bound on identity.
//!    Candidates whose bound is below what is asked are not aligned.
//! 4. **Identity.** The remaining candidates are aligned with `bio`'s semi-global aligner
//!    (the shorter sequence end to end, free end gaps on the longer one; scores as cd-hit-est:
//!    match 2, mismatch −2, gap open −6, gap extend −1; N matches nothing) on the candidate's
//!    strand. Identity = identical aligned A/C/G/T bases / length of the shorter sequence, the
//!    cd-hit-est definition (`-G 1`). Two linear-memory Gotoh passes first give the fewest and
//!    the most identities over all best-scoring alignments; `bio`'s traceback runs only when
//!    they differ (see [`identity`]), so the identity is `bio`'s either way.
//! 5. **Clusters.** Pairs with identity ≥ the threshold are linked; connected components of a
//!    union-find are the clusters (single linkage). A pair already in one component is not
//!    aligned, so big families cost about one alignment per member.
//!
//! Sequences longer than [`MAX_ALIGN_LEN`] are refused: the aligner keeps an m×n traceback.

use std::collections::HashMap;

use bio::alignment::pairwise::Aligner;
use bio::alignment::AlignmentOperation;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::seq::BASE_CODE;

mod striped;

/// Longest sequence accepted for alignment (bp).
pub const MAX_ALIGN_LEN: usize = 20_000;

/// Parameters of the homology search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Identity threshold in (0, 1] for linking two sequences.
    pub identity: f64,
    /// k-mer length of the sketch (8..=16).
    pub k: usize,
    /// Candidate bar: shared k-mers (on one relative strand) needed to align a pair.
    pub min_shared: u32,
    /// k-mers held by more sequences than this are not used to find candidates.
    pub max_occ: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            identity: 0.8,
            k: 13,
            min_shared: 2,
            max_occ: 10_000,
        }
    }
}

impl Params {
    /// Check the parameters; errors name the offending option.
    pub fn validate(&self) -> Result<()> {
        if !(self.identity > 0.0 && self.identity <= 1.0) {
            return Err(Error::input(format!(
                "--identity must be in (0, 1], got {}",
                self.identity
            )));
        }
        if !(8..=16).contains(&self.k) {
            return Err(Error::input(format!(
                "--kmer must be in 8..=16, got {}",
                self.k
            )));
        }
        if self.min_shared == 0 {
            return Err(Error::input("--min-shared must be at least 1"));
        }
        if self.max_occ < 2 {
            return Err(Error::input("--max-occ must be at least 2"));
        }
        Ok(())
    }
}

/// Error unless every sequence is non-empty and at most [`MAX_ALIGN_LEN`] long.
pub fn check_lengths(names: &[String], seqs: &[&[u8]], what: &str) -> Result<()> {
    for (n, s) in names.iter().zip(seqs) {
        if s.len() > MAX_ALIGN_LEN {
            return Err(Error::input(format!(
                "{what}: record '{n}' is {} bp; homology search aligns sequences of at most {MAX_ALIGN_LEN} bp (split whole chromosomes with --method chromosome)",
                s.len()
            )));
        }
    }
    Ok(())
}

/// The sketch of a sequence: its distinct canonical k-mers as `code << 1 | strand`, sorted.
///
/// `strand` is 1 when the canonical k-mer is the reverse complement of the one read.
pub fn sketch(seq: &[u8], k: usize) -> Vec<u64> {
    sketch_with_positions(seq, k)
        .into_iter()
        .map(|(e, _)| e)
        .collect()
}

/// Sketch entries with the position of their first occurrence, sorted by entry.
fn sketch_with_positions(seq: &[u8], k: usize) -> Vec<(u64, u16)> {
    let mask: u64 = (1u64 << (2 * k)) - 1;
    let shift = 2 * (k - 1);
    let (mut fwd, mut rev, mut valid) = (0u64, 0u64, 0usize);
    let mut out: Vec<(u64, u16)> = Vec::with_capacity(seq.len().saturating_sub(k - 1));
    for (i, &b) in seq.iter().enumerate() {
        let c = BASE_CODE[b as usize] as u64;
        if c > 3 {
            valid = 0;
            fwd = 0;
            rev = 0;
            continue;
        }
        fwd = ((fwd << 2) | c) & mask;
        rev = (rev >> 2) | ((3 - c) << shift);
        valid += 1;
        if valid >= k {
            let pos = (i + 1 - k).min(u16::MAX as usize) as u16;
            out.push((if fwd <= rev { fwd << 1 } else { (rev << 1) | 1 }, pos));
        }
    }
    // Distinct canonical codes, first occurrence kept.
    out.sort_unstable();
    out.dedup_by_key(|e| e.0 >> 1);
    out
}

/// Sorts entries `(code << 32 | low, position)` of `code_bits`-bit codes in which the entries of
/// one code already come in increasing, distinct `low` order (index entries are made target by
/// target, one per code and target): a stable LSD radix sort by code then gives the order of a
/// full sort, in a few linear passes instead of `n log n` comparisons.
fn sort_by_code(entries: &mut Vec<(u64, u16)>, code_bits: u32) {
    let passes = code_bits.div_ceil(13).max(1);
    let width = code_bits.div_ceil(passes);
    let mask = (1u64 << width) - 1;
    let mut out = vec![(0u64, 0u16); entries.len()];
    let mut starts = vec![0usize; 1 << width];
    for p in 0..passes {
        let shift = 32 + p * width;
        starts.fill(0);
        for e in entries.iter() {
            starts[((e.0 >> shift) & mask) as usize] += 1;
        }
        let mut sum = 0;
        for c in starts.iter_mut() {
            (*c, sum) = (sum, sum + *c);
        }
        for &e in entries.iter() {
            let d = ((e.0 >> shift) & mask) as usize;
            out[starts[d]] = e;
            starts[d] += 1;
        }
        std::mem::swap(entries, &mut out);
    }
    debug_assert!(entries.is_sorted());
}

/// Width of the diagonal window in which shared k-mers are counted (allows indels).
pub const DIAGONAL_WINDOW: i32 = 32;

/// An inverted index from canonical k-mers to the sequences (and strands) holding them.
pub struct KmerIndex {
    k: usize,
    /// Distinct canonical codes, sorted.
    codes: Vec<u32>,
    /// `postings[offsets[i]..offsets[i + 1]]` hold `target << 1 | strand` for `codes[i]`.
    offsets: Vec<u32>,
    postings: Vec<u32>,
    /// Position of the k-mer in the target, parallel to `postings`.
    positions: Vec<u16>,
    /// Length of each target.
    lens: Vec<u32>,
}

impl KmerIndex {
    /// Index the sketches of `seqs` (rayon-parallel); sequences must be under 65,536 bp.
    pub fn build(seqs: &[&[u8]], k: usize) -> Result<Self> {
        Self::build_min(seqs, k, 1)
    }

    /// As [`Self::build`], keeping only k-mers with at least `min_postings` postings.
    ///
    /// For an all-against-all search (`min_postings` 2) a k-mer held by one sequence links
    /// nothing; dropping those (most of them) shrinks the index, and the join of
    /// [`Self::lookup_all`], several-fold.
    pub fn build_min(seqs: &[&[u8]], k: usize, min_postings: usize) -> Result<Self> {
        if seqs.len() >= 1 << 31 {
            return Err(Error::input(
                "too many sequences for the k-mer index (2^31)",
            ));
        }
        if let Some(s) = seqs.iter().find(|s| s.len() > u16::MAX as usize) {
            return Err(Error::input(format!(
                "a {} bp sequence is too long for the k-mer index (at most {})",
                s.len(),
                u16::MAX
            )));
        }
        // Sketch entries packed as (code << 1 | strand) << 16 | position.
        let sketches: Vec<Vec<u64>> = seqs
            .par_iter()
            .map(|s| {
                sketch_with_positions(s, k)
                    .into_iter()
                    .map(|(e, pos)| (e << 16) | pos as u64)
                    .collect()
            })
            .collect();
        let total: usize = sketches.iter().map(Vec::len).sum();
        if total >= u32::MAX as usize {
            return Err(Error::input(
                "too many k-mers for the index (over 2^32); split the input",
            ));
        }
        // Index entries: (code << 32 | target << 1 | strand, position), sorted.
        let mut entries: Vec<(u64, u16)> = Vec::with_capacity(total);
        for (t, sk) in sketches.into_iter().enumerate() {
            let t = (t as u64) << 1;
            entries.extend(
                sk.into_iter()
                    .map(|x| (((x >> 17) << 32) | t | ((x >> 16) & 1), x as u16)),
            );
        }
        sort_by_code(&mut entries, 2 * k as u32);
        let mut codes = Vec::new();
        let mut offsets = Vec::new();
        let mut postings = Vec::new();
        let mut positions = Vec::new();
        for group in entries.chunk_by(|a, b| a.0 >> 32 == b.0 >> 32) {
            if group.len() < min_postings {
                continue;
            }
            codes.push((group[0].0 >> 32) as u32);
            offsets.push(postings.len() as u32);
            postings.extend(group.iter().map(|&(e, _)| e as u32));
            positions.extend(group.iter().map(|&(_, pos)| pos));
        }
        drop(entries);
        offsets.push(postings.len() as u32);
        Ok(KmerIndex {
            k,
            codes,
            offsets,
            postings,
            positions,
            lens: seqs.iter().map(|s| s.len() as u32).collect(),
        })
    }

    /// Number of indexed sequences.
    pub fn targets(&self) -> usize {
        self.lens.len()
    }

    /// Candidates of one query: targets `>= first_target` sharing at least `min_shared` k-mers
    /// on one relative strand within one diagonal window of [`DIAGONAL_WINDOW`], as
    /// (target, relative strand 0/1, shared k-mers in the best window), in target order.
    pub fn candidates(
        &self,
        query: &[u8],
        first_target: usize,
        params: &Params,
        scratch: &mut Scratch,
    ) -> Vec<(u32, u8, u32)> {
        let lookups = self.lookup_all(&[query]).pop().unwrap_or_default();
        self.candidates_of(&lookups, first_target, params, scratch)
    }

    /// The posting ranges of every k-mer of every query, as [`Lookup`]s per query (k-mers not in
    /// the index are left out): one sort-merge join of the queries' sorted k-mers with the
    /// index's sorted codes, so the index is read in order instead of one random lookup (and
    /// cache miss) per k-mer.
    pub fn lookup_all(&self, queries: &[&[u8]]) -> Vec<Vec<Lookup>> {
        // (code << 32 | query << 1 | strand, position), sorted by code.
        let mut entries: Vec<(u64, u16)> = queries
            .par_iter()
            .enumerate()
            .flat_map_iter(|(q, s)| {
                sketch_with_positions(s, self.k)
                    .into_iter()
                    .map(move |(e, pos)| (((e >> 1) << 32) | (q as u64) << 1 | (e & 1), pos))
            })
            .collect();
        sort_by_code(&mut entries, 2 * self.k as u32);
        let found: Vec<(u32, Lookup)> = entries
            .par_chunks(1 << 16)
            .flat_map_iter(|chunk| {
                let mut at = self
                    .codes
                    .partition_point(|&c| (c as u64) < chunk[0].0 >> 32);
                chunk.iter().filter_map(move |&(key, pos)| {
                    let code = (key >> 32) as u32;
                    // Gallop forward to the first code >= this one.
                    let mut step = 1;
                    while at + step < self.codes.len() && self.codes[at + step] < code {
                        at += step;
                        step *= 2;
                    }
                    at += self.codes[at..(at + step + 1).min(self.codes.len())]
                        .partition_point(|&c| c < code);
                    (self.codes.get(at) == Some(&code)).then(|| {
                        let q = (key as u32) >> 1;
                        let range = (self.offsets[at], self.offsets[at + 1]);
                        (q, (range.0, range.1, pos, (key & 1) as u32))
                    })
                })
            })
            .collect();
        drop(entries);
        let mut lists: Vec<Vec<Lookup>> = vec![Vec::new(); queries.len()];
        for (q, l) in found {
            lists[q as usize].push(l);
        }
        lists
    }

    /// Candidates of many queries (query `i` against targets `>= first_target(i)`), each handed
    /// to `f` with per-thread state from `init`, rayon-parallel; the index is looked up with
    /// [`Self::lookup_all`] in blocks of about a million k-mers, so memory stays bounded.
    pub fn map_candidates<S, T: Send>(
        &self,
        queries: &[&[u8]],
        first_target: impl Fn(usize) -> usize + Sync,
        params: &Params,
        init: impl Fn() -> S + Sync,
        f: impl Fn(&mut Scratch, &mut S, usize, Vec<(u32, u8, u32)>) -> T + Sync,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(queries.len());
        let mut start = 0;
        while start < queries.len() {
            let mut end = start;
            let mut kmers = 0;
            while end < queries.len() && (end == start || kmers < 1 << 20) {
                kmers += queries[end].len();
                end += 1;
            }
            let lists = self.lookup_all(&queries[start..end]);
            out.par_extend((start..end).into_par_iter().map_init(
                || (Scratch::default(), init()),
                |(scratch, state), i| {
                    let c = self.candidates_of(&lists[i - start], first_target(i), params, scratch);
                    f(scratch, state, i, c)
                },
            ));
            start = end;
        }
        out
    }

    /// [`Self::candidates`] from the query's looked-up posting ranges.
    fn candidates_of(
        &self,
        lookups: &[Lookup],
        first_target: usize,
        params: &Params,
        scratch: &mut Scratch,
    ) -> Vec<(u32, u8, u32)> {
        let k = self.k as i32;
        // Pass 1: shared k-mers per (target, relative strand), over all diagonals.
        scratch.counts.resize(2 * self.lens.len(), 0);
        let mut lists = std::mem::take(&mut scratch.lists);
        lists.clear();
        for (at, &(start, end, qpos, qs)) in lookups.iter().enumerate() {
            // Posting lists lie far apart: fetch a later one while this one is read.
            if let Some(&(ahead, ..)) = lookups.get(at + PREFETCH_AHEAD) {
                prefetch(&self.postings, ahead as usize);
            }
            let range = start as usize..end as usize;
            if range.len() > params.max_occ {
                continue;
            }
            // Postings of a code are sorted by target: skip those before `first_target`.
            let skip = if first_target == 0 {
                0
            } else {
                self.postings[range.clone()]
                    .partition_point(|&p| ((p >> 1) as usize) < first_target)
            };
            let range = range.start + skip..range.end;
            for at in range.clone() {
                let p = self.postings[at];
                let slot = ((p & !1) | ((p & 1) ^ qs)) as usize;
                if scratch.counts[slot] == 0 {
                    scratch.touched.push(slot as u32);
                }
                scratch.counts[slot] += 1;
            }
            lists.push((range.start as u32, range.end as u32, qpos, qs));
        }
        // Pairs that reached the bar over all diagonals, in key order; each gets a segment of
        // `hits` as long as its count, and `counts` holds its next free place (flagged).
        const PLACE: u32 = 1 << 31;
        let mut qual = std::mem::take(&mut scratch.qual);
        qual.clear();
        qual.extend(
            scratch
                .touched
                .iter()
                .filter(|&&slot| scratch.counts[slot as usize] >= params.min_shared),
        );
        qual.sort_unstable();
        let mut total = 0u32;
        for &slot in &qual {
            let c = scratch.counts[slot as usize];
            scratch.counts[slot as usize] = total | PLACE;
            total += c;
        }
        // Pass 2: the diagonals of those pairs' hits, each pair's in its own segment.
        let hits = &mut scratch.hits;
        hits.clear();
        hits.resize(total as usize, 0);
        for (ahead, &(start, end, qpos, qs)) in lists.iter().enumerate() {
            if let Some(&(next, ..)) = lists.get(ahead + PREFETCH_AHEAD) {
                prefetch(&self.positions, next as usize);
            }
            for at in start as usize..end as usize {
                let p = self.postings[at];
                let target = p >> 1;
                let rel = (p & 1) ^ qs;
                let key = ((p & !1) | rel) as usize;
                let place = scratch.counts[key];
                if place & PLACE == 0 {
                    continue;
                }
                scratch.counts[key] = place + 1;
                let tpos = self.positions[at] as i32;
                hits[(place & !PLACE) as usize] = if rel == 0 {
                    tpos - qpos as i32
                } else {
                    self.lens[target as usize] as i32 - k - tpos - qpos as i32
                };
            }
        }
        // Each pair's most hits within one diagonal window.
        let mut out = Vec::with_capacity(qual.len());
        let mut seg_start = 0usize;
        for &slot in &qual {
            let seg_end = (scratch.counts[slot as usize] & !PLACE) as usize;
            let seg = &mut hits[seg_start..seg_end];
            seg_start = seg_end;
            seg.sort_unstable();
            let (mut left, mut best) = (0usize, 0usize);
            for j in 0..seg.len() {
                while seg[j] - seg[left] > DIAGONAL_WINDOW {
                    left += 1;
                }
                best = best.max(j + 1 - left);
            }
            if best as u32 >= params.min_shared {
                out.push((slot >> 1, (slot & 1) as u8, best as u32));
            }
        }
        for &slot in &scratch.touched {
            scratch.counts[slot as usize] = 0;
        }
        scratch.touched.clear();
        scratch.lists = lists;
        scratch.qual = qual;
        out
    }
}

/// Posting lists fetched ahead of the one being read in [`KmerIndex::candidates_of`].
const PREFETCH_AHEAD: usize = 8;

/// Asks the CPU to bring `data[at]` into cache (a hint: no effect on results, nothing on other
/// targets, nothing when `at` is out of range).
#[inline(always)]
fn prefetch<T>(data: &[T], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = data.get(at) {
        // SAFETY: a prefetch never faults and reads nothing into the program; the address
        // comes from a reference.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (x as *const T).cast::<i8>(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, at);
}

/// One query k-mer found in a [`KmerIndex`]: its posting range (start, end), its position in the
/// query and its strand (1 when the canonical k-mer is the reverse complement of the one read).
pub type Lookup = (u32, u32, u16, u32);

/// Per-thread buffers for [`KmerIndex::candidates`] and alignment.
pub struct Scratch {
    counts: Vec<u32>,
    touched: Vec<u32>,
    lists: Vec<(u32, u32, u16, u32)>,
    qual: Vec<u32>,
    hits: Vec<i32>,
    aligner: Aligner<fn(u8, u8) -> i32>,
    rc: Vec<u8>,
    rows: Vec<[i64; 1]>,
    rows2: Vec<[i64; 2]>,
    striped: striped::Buffers,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            counts: Vec::new(),
            touched: Vec::new(),
            lists: Vec::new(),
            qual: Vec::new(),
            hits: Vec::new(),
            aligner: Aligner::with_capacity(
                512,
                512,
                GAP_OPEN,
                GAP_EXTEND,
                score as fn(u8, u8) -> i32,
            ),
            rc: Vec::new(),
            rows: Vec::new(),
            rows2: Vec::new(),
            striped: striped::Buffers::default(),
        }
    }
}

const GAP_OPEN: i32 = -6;
const GAP_EXTEND: i32 = -1;

/// Substitution score as in cd-hit-est (match 2, mismatch −2); N and other codes match nothing.
fn score(a: u8, b: u8) -> i32 {
    if a == b && BASE_CODE[a as usize] < 4 {
        2
    } else {
        -2
    }
}

/// Bit-parallel longest-common-subsequence length against a fixed pattern.
pub struct LcsPattern {
    len: usize,
    /// Match masks per base code (A, C, G, T), `words` u64 each.
    masks: [Vec<u64>; 4],
}

impl LcsPattern {
    /// Prepare `x` (N and other codes match nothing).
    pub fn new(x: &[u8]) -> Self {
        let words = x.len().div_ceil(64).max(1);
        let mut masks = [
            vec![0u64; words],
            vec![0u64; words],
            vec![0u64; words],
            vec![0u64; words],
        ];
        for (i, &b) in x.iter().enumerate() {
            let c = BASE_CODE[b as usize] as usize;
            if c < 4 {
                masks[c][i / 64] |= 1 << (i % 64);
            }
        }
        LcsPattern {
            len: x.len(),
            masks,
        }
    }

    /// LCS length of the pattern and `y` (reverse-complemented when `rc`).
    pub fn lcs(&self, y: &[u8], rc: bool, v: &mut Vec<u64>) -> usize {
        self.lcs_reaching(y, rc, 0, v).unwrap_or(0)
    }

    /// `None` as soon as no common subsequence of `need` bases can exist, otherwise an upper
    /// bound on every common subsequence of at least `need` bases: the LCS over the matches of
    /// the words of the diagonal band such a subsequence can use (see `band_words`; the exact
    /// LCS when `need` is 0).
    pub fn lcs_reaching(&self, y: &[u8], rc: bool, need: usize, v: &mut Vec<u64>) -> Option<usize> {
        let codes: &[u8; 256] = if rc { &RC_CODE } else { &BASE_CODE };
        macro_rules! fixed {
            ($($w:literal)*) => {
                match self.masks[0].len() {
                    $($w => return self.lcs_fixed::<$w>(y, rc, codes, need),)*
                    _ => {}
                }
            };
        }
        fixed!(1 2 3 4 5 6 7 8);
        let words = self.masks[0].len();
        v.clear();
        v.resize(words, u64::MAX);
        let zero = vec![0u64; words];
        let n = y.len();
        let mut done = 0usize;
        while done < n {
            let end = (done + CHECK_EVERY).min(n);
            let band = self.band_words(done, end, n, need);
            for j in done..end {
                let b = if rc { y[n - 1 - j] } else { y[j] };
                let c = codes[b as usize] as usize;
                let m = if c < 4 { &self.masks[c] } else { &zero };
                let mut carry = 0u64;
                for w in band.clone() {
                    (v[w], carry) = lcs_word(v[w], m[w], carry);
                }
            }
            done = end;
            if done < n && self.bound(v, n - done) < need {
                return None;
            }
        }
        let l = self.zeros(v);
        (l >= need).then_some(l)
    }

    /// Words of the pattern worth updating for text columns `j0..j1` when only common
    /// subsequences of at least `need` bases matter (all of them when `need` is 0).
    ///
    /// The `t`-th match `(i, j)` of a common subsequence of length `K` has at least `t − 1`
    /// matches before it and `K − t` after it in both sequences, so `j − i` lies in
    /// `[K − len, n − K]`: a subsequence of length `≥ need` only uses matches with
    /// `j + need − n ≤ i ≤ j + len − need`. Matches outside those rows are treated as absent:
    /// a word below the band then never changes again (no match, no carry in) and a word above
    /// it is still all ones (a carry passes through it unchanged), so neither is touched. The
    /// result is the LCS over the matches of the words updated: at least that of the band, at
    /// most the full LCS, and the same whichever path computes it (the band is fixed per block
    /// of [`CHECK_EVERY`] columns).
    fn band_words(&self, j0: usize, j1: usize, n: usize, need: usize) -> std::ops::Range<usize> {
        let words = self.masks[0].len();
        if need == 0 {
            return 0..words;
        }
        let lo = (j0 + need).saturating_sub(n) / 64;
        let hi = ((j1 - 1 + self.len).saturating_sub(need) / 64 + 1).min(words);
        lo.min(hi)..hi
    }

    /// Zero bits of `v` within the pattern length (the LCS so far).
    fn zeros(&self, v: &[u64]) -> usize {
        self.zeros_prefix(v, self.len)
    }

    /// Zero bits among the first `p` bits of `v`: the LCS of the pattern's first `p` bases
    /// with the columns read so far.
    fn zeros_prefix(&self, v: &[u64], p: usize) -> usize {
        let mut ones = 0usize;
        for (w, &x) in v.iter().enumerate() {
            if 64 * w >= p {
                break;
            }
            let bits = (p - 64 * w).min(64);
            let mask = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            ones += (x & mask).count_ones() as usize;
        }
        p - ones
    }

    /// Upper bound on the final LCS with `left` columns of `y` still to read.
    ///
    /// A common subsequence splits at the current column: its first part is a common subsequence
    /// of the columns read and some prefix `x[..p]`, its second part has at most
    /// `min(len - p, left)` bases. The sum is largest at `p = len - left` (the prefix LCS gains
    /// at most one per base, `len - p` loses exactly one), so the bound is
    /// `LCS(x[..len - left], read) + left`; it is the plain `LCS(x, read) + left` bound when
    /// `left >= len`.
    fn bound(&self, v: &[u64], left: usize) -> usize {
        if left >= self.len {
            self.len
        } else {
            self.zeros_prefix(v, self.len - left) + left
        }
    }

    /// [`Self::lcs_reaching`] for many texts: `out[i]` is `lcs_reaching(texts[i].0, texts[i].1,
    /// need[i])`. Patterns run [`LANES`] texts side by side (AVX2 when the CPU has
    /// it), which the compiler turns into vector instructions; the results are the same.
    /// Patterns up to 1,024 bp run that way; longer ones one text at a time.
    pub fn lcs_reaching_many(
        &self,
        texts: &[(&[u8], bool)],
        need: &[usize],
        scratch: &mut LaneScratch,
        out: &mut Vec<Option<usize>>,
    ) {
        assert_eq!(texts.len(), need.len(), "one need per text");
        out.clear();
        macro_rules! fixed {
            ($($w:literal)*) => {
                match self.masks[0].len() {
                    $($w => {
                        let mut m = [[0u64; $w]; 5];
                        for (c, mc) in m.iter_mut().take(4).enumerate() {
                            mc.copy_from_slice(&self.masks[c]);
                        }
                        for (tc, nc) in texts.chunks(LANES).zip(need.chunks(LANES)) {
                            let r = self.lanes_dispatch::<$w>(&m, tc, nc, scratch);
                            out.extend_from_slice(&r[..tc.len()]);
                        }
                        return;
                    })*
                    _ => {}
                }
            };
        }
        fixed!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
        for (&(y, rc), &n) in texts.iter().zip(need) {
            out.push(self.lcs_reaching(y, rc, n, &mut scratch.v));
        }
    }

    fn lanes_dispatch<const W: usize>(
        &self,
        m: &[[u64; W]; 5],
        texts: &[(&[u8], bool)],
        need: &[usize],
        scratch: &mut LaneScratch,
    ) -> [Option<usize>; LANES] {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked just above.
                return unsafe { self.lanes_avx2::<W>(m, texts, need, scratch) };
            }
        }
        self.lanes::<W>(m, texts, need, scratch)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn lanes_avx2<const W: usize>(
        &self,
        m: &[[u64; W]; 5],
        texts: &[(&[u8], bool)],
        need: &[usize],
        scratch: &mut LaneScratch,
    ) -> [Option<usize>; LANES] {
        self.lanes::<W>(m, texts, need, scratch)
    }

    /// Up to [`LANES`] texts against the pattern in lockstep; a lane whose text has ended reads
    /// a zero mask, which leaves its bit vector unchanged. The carry out of each word is
    /// computed from the operands (`(a & b) | ((a | b) & !sum)`, bit 63), so every lane step is
    /// plain vector arithmetic.
    #[inline(always)]
    fn lanes<const W: usize>(
        &self,
        m: &[[u64; W]; 5],
        texts: &[(&[u8], bool)],
        need: &[usize],
        scratch: &mut LaneScratch,
    ) -> [Option<usize>; LANES] {
        let mut lens = [0usize; LANES];
        let mut needs = [0usize; LANES];
        for (l, (&(y, _), &n)) in texts.iter().zip(need).enumerate() {
            lens[l] = y.len();
            needs[l] = n;
        }
        let n_max = lens.iter().copied().max().unwrap_or(0);
        // Codes of the next block of columns, column-major (codes[col * LANES + lane]), 4 past
        // a text's end; filled block by block so that lanes stopped early read no further.
        let codes = &mut scratch.codes;
        let mut v = [[u64::MAX; LANES]; W];
        let mut alive = [true; LANES];
        let mut done = 0usize;
        while done < n_max {
            let end = (done + CHECK_EVERY).min(n_max);
            // Words each lane updates in this block (see `band_words`): a lane reads a zero
            // mask outside its own band, which leaves those words as they would be untouched.
            let (mut lo, mut hi) = (W, 0);
            let mut keep = [[0u64; LANES]; W];
            for l in 0..texts.len() {
                if alive[l] && done < lens[l] {
                    let band = self.band_words(done, end.min(lens[l]), lens[l], needs[l]);
                    lo = lo.min(band.start);
                    hi = hi.max(band.end);
                    for k in band {
                        keep[k][l] = u64::MAX;
                    }
                }
            }
            codes.clear();
            codes.resize((end - done) * LANES, 4);
            for (l, &(y, rc)) in texts.iter().enumerate() {
                let n = y.len();
                if !alive[l] {
                    continue;
                }
                for col in done..end.min(n) {
                    codes[(col - done) * LANES + l] = if rc {
                        RC_CODE[y[n - 1 - col] as usize]
                    } else {
                        BASE_CODE[y[col] as usize]
                    };
                }
            }
            for col in 0..end - done {
                // Each lane's match mask, selected by comparing its code with each base (no
                // per-lane gather: the pattern is the same in every lane).
                let cc: [u64; LANES] = std::array::from_fn(|l| codes[col * LANES + l] as u64);
                let eq: [[u64; LANES]; 4] = std::array::from_fn(|c| {
                    std::array::from_fn(|l| if cc[l] == c as u64 { u64::MAX } else { 0 })
                });
                let mut mc = [[0u64; LANES]; W];
                for w in 0..W {
                    for l in 0..LANES {
                        mc[w][l] = ((eq[0][l] & m[0][w])
                            | (eq[1][l] & m[1][w])
                            | (eq[2][l] & m[2][w])
                            | (eq[3][l] & m[3][w]))
                            & keep[w][l];
                    }
                }
                let mut carry = [0u64; LANES];
                // A full, unrolled loop keeps `v` in registers; words outside the band skip.
                for w in 0..W {
                    if w < lo || w >= hi {
                        continue;
                    }
                    for l in 0..LANES {
                        let vw = v[w][l];
                        let mw = mc[w][l];
                        let u = vw & mw;
                        let sum = vw.wrapping_add(u).wrapping_add(carry[l]);
                        carry[l] = ((vw & u) | ((vw | u) & !sum)) >> 63;
                        v[w][l] = sum | (vw & !mw);
                    }
                }
            }
            done = end;
            let mut running = false;
            for l in 0..LANES {
                if alive[l] && done < lens[l] {
                    let lane: [u64; W] = std::array::from_fn(|w| v[w][l]);
                    if self.bound(&lane, lens[l] - done) < needs[l] {
                        alive[l] = false;
                    } else {
                        running = true;
                    }
                }
            }
            if !running {
                break;
            }
        }
        std::array::from_fn(|l| {
            if !alive[l] || l >= texts.len() {
                return None;
            }
            let lane: [u64; W] = std::array::from_fn(|w| v[w][l]);
            let z = self.zeros(&lane);
            (z >= needs[l]).then_some(z)
        })
    }

    /// [`Self::lcs_reaching`] with the bit vector in registers (patterns up to 64·W bp).
    fn lcs_fixed<const W: usize>(
        &self,
        y: &[u8],
        rc: bool,
        codes: &[u8; 256],
        need: usize,
    ) -> Option<usize> {
        let mut m = [[0u64; W]; 5];
        for (c, mc) in m.iter_mut().take(4).enumerate() {
            mc.copy_from_slice(&self.masks[c]);
        }
        let mut v = [u64::MAX; W];
        let n = y.len();
        let mut done = 0usize;
        while done < n {
            let end = (done + CHECK_EVERY).min(n);
            let band = self.band_words(done, end, n, need);
            if rc {
                for &b in y[n - end..n - done].iter().rev() {
                    lcs_step(&mut v, &m[codes[b as usize] as usize], band.clone());
                }
            } else {
                for &b in &y[done..end] {
                    lcs_step(&mut v, &m[codes[b as usize] as usize], band.clone());
                }
            }
            done = end;
            if done < n && self.bound(&v, n - done) < need {
                return None;
            }
        }
        let l = self.zeros(&v);
        (l >= need).then_some(l)
    }
}

/// Texts compared side by side in [`LcsPattern::lcs_reaching_many`].
pub const LANES: usize = 4;

/// Reusable buffers of [`LcsPattern::lcs_reaching_many`].
#[derive(Debug, Default)]
pub struct LaneScratch {
    codes: Vec<u8>,
    v: Vec<u64>,
}

/// Columns read between two checks of the early-exit bound in [`LcsPattern::lcs_reaching`].
const CHECK_EVERY: usize = 16;

/// One column of the bit-parallel LCS (Hyyrö): V' = (V + (V & M)) | (V & !M), on the words
/// `band` (see [`LcsPattern::band_words`]).
#[inline(always)]
fn lcs_step<const W: usize>(v: &mut [u64; W], m: &[u64; W], band: std::ops::Range<usize>) {
    let mut carry = 0u64;
    for w in 0..W {
        if w < band.start || w >= band.end {
            continue;
        }
        (v[w], carry) = lcs_word(v[w], m[w], carry);
    }
}

/// One word of an LCS column: the new word and the carry into the next.
#[inline(always)]
fn lcs_word(vw: u64, mw: u64, carry: u64) -> (u64, u64) {
    let u = vw & mw;
    let (s1, c1) = vw.overflowing_add(u);
    let (s2, c2) = s1.overflowing_add(carry);
    (s2 | (vw & !mw), (c1 | c2) as u64)
}

/// Code of the complement of a base: A↔T (0↔3), C↔G (1↔2); N and other bytes 4.
static RC_CODE: [u8; 256] = build_rc_code();

const fn build_rc_code() -> [u8; 256] {
    let mut t = [4u8; 256];
    let bases = b"ACGTacgt";
    let mut i = 0;
    while i < bases.len() {
        t[bases[i] as usize] = 3 - (i % 4) as u8;
        i += 1;
    }
    t
}

/// Reverse complement into `out`.
fn revcomp_into(s: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend(s.iter().rev().map(|&b| crate::seq::complement(b)));
}

/// Alignment identity of `x` and `y` (reverse-complemented when `rc`) with `bio`'s semi-global
/// aligner: identical aligned A/C/G/T bases / length of the shorter sequence.
///
/// Symmetric: the pair is put in a canonical order (shorter first, then byte order) and the
/// second one is reverse-complemented when `rc`, so `identity(x, y, rc) == identity(y, x, rc)`.
///
/// Fast path: [`identity_range`] finds the fewest and the most identical bases over *all*
/// best-scoring alignments (two linear-memory passes, no traceback). `bio`'s alignment is one of
/// them, so when the two agree that is its identity and `bio` is not run; only pairs whose
/// optimal alignments differ in identity are traced back with `bio`.
pub fn identity(x: &[u8], y: &[u8], rc: bool, scratch: &mut Scratch) -> f64 {
    identity_above(x, y, rc, f64::NEG_INFINITY, scratch).unwrap_or(0.0)
}

/// [`identity`] when it may reach `floor`: `None` when even the most identities over all
/// best-scoring alignments fall below `floor` (so `bio`'s identity does too), without the
/// second pass or a traceback.
pub fn identity_above(
    x: &[u8],
    y: &[u8],
    rc: bool,
    floor: f64,
    scratch: &mut Scratch,
) -> Option<f64> {
    let (a, b) = shorter_first(x, y);
    if a.is_empty() {
        return (0.0 >= floor).then_some(0.0);
    }
    let mut rc_buf = std::mem::take(&mut scratch.rc);
    let b: &[u8] = if rc {
        revcomp_into(b, &mut rc_buf);
        &rc_buf
    } else {
        b
    };
    // The striped pass when the pair fits it. Otherwise, with no floor to fall below, both
    // scalar passes run side by side; with one, the second only when the first reaches it.
    let striped = striped::fits(a.len(), b.len());
    let (lo, hi) = if striped {
        (None, striped::best(a, b, 1, &mut scratch.striped).0)
    } else if floor <= 0.0 {
        let [(hi, _), (lo, _)] = gotoh_packed(a, b, [1, -1], &mut scratch.rows2);
        (Some(lo), hi)
    } else {
        let [(hi, _)] = gotoh_packed(a, b, [1], &mut scratch.rows);
        (None, hi)
    };
    let out = if (hi as f64 / a.len() as f64) < floor {
        None
    } else {
        let lo = lo.unwrap_or_else(|| {
            if striped {
                striped::best(a, b, -1, &mut scratch.striped).0
            } else {
                gotoh_packed(a, b, [-1], &mut scratch.rows)[0].0
            }
        });
        let same = if lo == hi {
            lo
        } else {
            bio_identical(a, b, &mut scratch.aligner)
        };
        Some(same as f64 / a.len() as f64)
    };
    scratch.rc = rc_buf;
    out
}

/// Identity of the pair as [`identity`] computes it, but always by `bio`'s traceback (the
/// reference the fast path is tested against).
pub fn identity_bio(x: &[u8], y: &[u8], rc: bool, scratch: &mut Scratch) -> f64 {
    let (a, b) = shorter_first(x, y);
    if a.is_empty() {
        return 0.0;
    }
    let mut rc_buf = std::mem::take(&mut scratch.rc);
    let b: &[u8] = if rc {
        revcomp_into(b, &mut rc_buf);
        &rc_buf
    } else {
        b
    };
    let same = bio_identical(a, b, &mut scratch.aligner);
    scratch.rc = rc_buf;
    same as f64 / a.len() as f64
}

/// The pair in the canonical order of [`identity`]: shorter first, then byte order.
fn shorter_first<'a>(x: &'a [u8], y: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    if (x.len(), x) <= (y.len(), y) {
        (x, y)
    } else {
        (y, x)
    }
}

/// Identical aligned A/C/G/T bases of `bio`'s semi-global alignment of `a` (end to end) in `b`.
fn bio_identical(a: &[u8], b: &[u8], aligner: &mut Aligner<fn(u8, u8) -> i32>) -> usize {
    let aln = aligner.semiglobal(a, b);
    let (mut i, mut j) = (aln.xstart, aln.ystart);
    let mut same = 0usize;
    for op in &aln.operations {
        match op {
            AlignmentOperation::Match | AlignmentOperation::Subst => {
                if a[i] == b[j] && BASE_CODE[a[i] as usize] < 4 {
                    same += 1;
                }
                i += 1;
                j += 1;
            }
            AlignmentOperation::Ins => i += 1,
            AlignmentOperation::Del => j += 1,
            AlignmentOperation::Xclip(n) => i += n,
            AlignmentOperation::Yclip(n) => j += n,
        }
    }
    same
}

/// Over all best-scoring semi-global alignments of `x` (end to end) in `y` (free end gaps),
/// with `bio`'s scores (match 2, mismatch −2, a gap of length k costs 5 + k): the fewest and
/// the most identical aligned A/C/G/T bases, and the best score.
///
/// Each DP cell holds `score · 2^16 ± identical`, so the maximum is the best score with ties
/// broken toward the most (or fewest) identities; the order is kept under addition, so the
/// Gotoh recurrences stay exact. `x` must be shorter than 65,536 bp.
pub fn identity_range(x: &[u8], y: &[u8]) -> (usize, usize, i32) {
    let mut rows = Vec::new();
    let [(hi, score), (lo, score2)] = gotoh_packed(x, y, [1, -1], &mut rows);
    debug_assert_eq!(score, score2);
    (lo, hi, score)
}

/// Gotoh passes with packed cells, one per sign in `signs` (+1: most identities, −1: fewest),
/// run side by side in one sweep (independent chains the CPU overlaps); returns (identities,
/// score) of the best cell of the last row for each.
fn gotoh_packed<const P: usize>(
    x: &[u8],
    y: &[u8],
    signs: [i64; P],
    rows: &mut Vec<[i64; P]>,
) -> [(usize, i32); P] {
    const SH: i64 = 1 << 16;
    const NEG: i64 = i64::MIN / 4;
    let (open, ext) = (GAP_OPEN as i64 * SH, GAP_EXTEND as i64 * SH);
    let m = y.len();
    rows.clear();
    rows.resize(3 * (m + 1), [0; P]);
    let (s_prev, rest) = rows.split_at_mut(m + 1);
    let (s_cur, i_gap) = rest.split_at_mut(m + 1);
    // Row 0: any prefix of y is skipped for free; no vertical gap is open yet.
    i_gap.fill([NEG; P]);
    let (mut s_prev, mut s_cur) = (s_prev, s_cur);
    debug_assert!(x.len() < 1 << 16);
    let miss = -2 * SH;
    for (i, &xb) in x.iter().enumerate() {
        let cx = BASE_CODE[xb as usize];
        let hit: [i64; P] = std::array::from_fn(|p| if cx < 4 { 2 * SH + signs[p] } else { miss });
        s_cur[0] = [open + ext * i as i64; P];
        i_gap[0] = s_cur[0];
        let mut d = [NEG; P];
        for j in 1..=m {
            let same = BASE_CODE[y[j - 1] as usize] == cx;
            for p in 0..P {
                let iv = (s_prev[j][p] + open).max(i_gap[j][p] + ext);
                d[p] = (s_cur[j - 1][p] + open).max(d[p] + ext);
                let sub = if same { hit[p] } else { miss };
                s_cur[j][p] = (s_prev[j - 1][p] + sub).max(iv).max(d[p]);
                i_gap[j][p] = iv;
            }
        }
        std::mem::swap(&mut s_prev, &mut s_cur);
    }
    // The rest of y is skipped for free too.
    std::array::from_fn(|p| {
        let best = s_prev.iter().map(|c| c[p]).max().unwrap_or(0);
        unpack(best, SH, signs[p])
    })
}

/// A packed cell `score · shift + sign · identical` (`0 ≤ identical < shift`) as
/// (identical, score).
fn unpack(cell: i64, shift: i64, sign: i64) -> (usize, i32) {
    let score = cell.div_euclid(shift);
    let rem = cell.rem_euclid(shift);
    if sign > 0 {
        (rem as usize, score as i32)
    } else {
        let same = (shift - rem) % shift;
        (
            same as usize,
            if rem != 0 { score + 1 } else { score } as i32,
        )
    }
}

/// Union-find over `0..n` with path halving and union by size.
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    /// `n` singletons.
    pub fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    /// Representative of `x`'s set.
    pub fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] as usize != x {
            let p = self.parent[x] as usize;
            self.parent[x] = self.parent[p];
            x = self.parent[x] as usize;
        }
        x
    }

    /// Merge the sets of `a` and `b`; false when they were already one set.
    pub fn union(&mut self, a: usize, b: usize) -> bool {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return false;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a as u32;
        self.size[a] += self.size[b];
        true
    }

    /// Cluster id per element: 0, 1, … in order of each cluster's first element.
    pub fn cluster_ids(&mut self) -> Vec<usize> {
        let mut id_of: HashMap<usize, usize> = HashMap::new();
        (0..self.parent.len())
            .map(|x| {
                let r = self.find(x);
                let next = id_of.len();
                *id_of.entry(r).or_insert(next)
            })
            .collect()
    }
}

/// What a clustering run did, for reports.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ClusterStats {
    /// Sequences clustered.
    pub sequences: usize,
    /// Candidate (pair, strand)s sharing at least `min_shared` k-mers.
    pub candidate_pairs: u64,
    /// Candidates whose LCS bound reached the identity threshold.
    pub bound_passed: u64,
    /// Alignments run (candidates not already in one cluster).
    pub aligned_pairs: u64,
    /// Pairs linked (identity ≥ threshold).
    pub linked_pairs: u64,
    /// Number of clusters.
    pub clusters: usize,
    /// Size of the largest cluster.
    pub largest_cluster: usize,
    /// Cluster pairs merged after the fact because a leakage check of the folds found a pair at
    /// the identity that the candidate search missed (benchmark homology folds; 0 otherwise).
    pub merged_by_check: u64,
    /// Seconds spent.
    pub seconds: f64,
}

impl ClusterStats {
    /// Set `clusters` and `largest_cluster` from cluster ids `0..` (one per sequence).
    pub fn count_clusters(&mut self, ids: &[usize]) {
        let mut sizes = vec![0usize; ids.iter().max().map_or(0, |m| m + 1)];
        for &c in ids {
            sizes[c] += 1;
        }
        self.clusters = sizes.len();
        self.largest_cluster = sizes.iter().copied().max().unwrap_or(0);
    }
}

/// Single-linkage clusters at `params.identity`: a cluster id per sequence (0, 1, … in order of
/// first member) and run statistics.
pub fn cluster(seqs: &[&[u8]], params: &Params) -> Result<(Vec<usize>, ClusterStats)> {
    params.validate()?;
    let start = std::time::Instant::now();
    let index = KmerIndex::build_min(seqs, params.k, 2)?;
    // (bound, i, j, strand): pairs i < j passing the bar and the LCS bound.
    type Pair = (f64, u32, u32, u8);
    let per_query: Vec<(u64, Vec<Pair>)> = index.map_candidates(
        seqs,
        |i| i + 1,
        params,
        || (LaneScratch::default(), Vec::new()),
        |_, (lanes, lcs), i, cands| {
            let n = cands.len() as u64;
            if cands.is_empty() {
                return (0, Vec::new());
            }
            let pat = LcsPattern::new(seqs[i]);
            let shorter = |j: u32| seqs[i].len().min(seqs[j as usize].len());
            let texts: Vec<(&[u8], bool)> = cands
                .iter()
                .map(|&(j, strand, _)| (seqs[j as usize], strand == 1))
                .collect();
            let needs: Vec<usize> = cands
                .iter()
                .map(|&(j, _, _)| {
                    (params.identity * shorter(j) as f64 - 1e-9).ceil().max(0.0) as usize
                })
                .collect();
            pat.lcs_reaching_many(&texts, &needs, lanes, lcs);
            let out = cands
                .iter()
                .zip(lcs.iter())
                .filter_map(|(&(j, strand, _), &l)| {
                    let bound = l? as f64 / shorter(j) as f64;
                    (bound >= params.identity).then_some((bound, i as u32, j, strand))
                })
                .collect();
            (n, out)
        },
    );
    let mut stats = ClusterStats {
        sequences: seqs.len(),
        ..Default::default()
    };
    let mut pairs = Vec::new();
    for (n, p) in per_query {
        stats.candidate_pairs += n;
        pairs.extend(p);
    }
    stats.bound_passed = pairs.len() as u64;
    // Most similar first, so that families are joined by their closest pairs and the rest of a
    // family's pairs are skipped as already connected.
    pairs.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    let mut uf = UnionFind::new(seqs.len());
    const CHUNK: usize = 4096;
    let mut queue: std::collections::VecDeque<(u32, u32, u8)> =
        pairs.into_iter().map(|(_, i, j, s)| (i, j, s)).collect();
    while !queue.is_empty() {
        // Take a chunk of pairs not yet connected; a pair that would be connected if every
        // earlier pair of the chunk linked waits for the next round.
        let mut tentative = uf.clone();
        let mut batch = Vec::new();
        let mut deferred = Vec::new();
        while batch.len() < CHUNK {
            let Some((i, j, s)) = queue.pop_front() else {
                break;
            };
            if uf.find(i as usize) == uf.find(j as usize) {
                continue;
            }
            if tentative.union(i as usize, j as usize) {
                batch.push((i, j, s));
            } else {
                deferred.push((i, j, s));
            }
        }
        for d in deferred.into_iter().rev() {
            queue.push_front(d);
        }
        stats.aligned_pairs += batch.len() as u64;
        let linked: Vec<bool> = batch
            .par_iter()
            .map_init(Scratch::default, |scratch, &(i, j, s)| {
                identity_above(
                    seqs[i as usize],
                    seqs[j as usize],
                    s == 1,
                    params.identity,
                    scratch,
                )
                .is_some_and(|id| id >= params.identity)
            })
            .collect();
        for (&(i, j, _), ok) in batch.iter().zip(linked) {
            if ok && uf.union(i as usize, j as usize) {
                stats.linked_pairs += 1;
            }
        }
    }
    let ids = uf.cluster_ids();
    stats.count_clusters(&ids);
    stats.seconds = start.elapsed().as_secs_f64();
    Ok((ids, stats))
}

/// One test sequence's closest training sequence.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeakRow {
    /// Test record name.
    pub id: String,
    /// Highest alignment identity to any training sequence; 0 when no training sequence
    /// passed the candidate bar (`method` = `none`).
    pub best_identity: f64,
    /// Name of that training sequence (null when none).
    pub best_train: Option<String>,
    /// Strand of the training sequence in the best alignment (`+`, `-`; null when none).
    pub strand: Option<char>,
    /// `alignment` when `best_identity` was measured by alignment, `none` when no training
    /// sequence shared `min_shared` k-mers with this one (identity reported as 0).
    pub method: &'static str,
    /// True when `best_identity` is the maximum over all candidates; false when the search
    /// stopped because no remaining candidate's LCS bound reached the next reported level
    /// (50, 80, 95 % or the identity threshold), so the level counts are still exact.
    pub exact: bool,
    /// Training sequences passing the candidate bar.
    pub candidates: u32,
    /// Position of `best_train` among the training sequences (not written to JSON).
    #[serde(skip)]
    pub best_train_index: Option<usize>,
}

/// Counts of test sequences at or above an identity level.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Level {
    /// The identity level.
    pub identity: f64,
    /// Test sequences whose best training identity is at least `identity`.
    pub count: usize,
    /// `count` / test sequences.
    pub fraction: f64,
}

/// Leakage of a test set into a training set: the `leakage.json` document.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Leakage {
    /// How identity is defined and measured.
    pub identity_definition: &'static str,
    /// Rows whose identity is not measured.
    pub below_candidate_bar: &'static str,
    /// Sketch k-mer length.
    pub kmer: usize,
    /// Candidate bar: shared canonical k-mers (one relative strand) needed for an alignment.
    pub min_shared: u32,
    /// k-mers held by more training sequences than this were not used to find candidates.
    pub max_occ: usize,
    /// Training sequences.
    pub train: usize,
    /// Test sequences.
    pub test: usize,
    /// Test sequences with at least one candidate (so an aligned best identity).
    pub test_with_candidates: usize,
    /// Candidate (test, train, strand) triples.
    pub candidate_pairs: u64,
    /// Alignments run (branch and bound on the LCS bound).
    pub aligned_pairs: u64,
    /// Rows whose best identity is the exact maximum over their candidates.
    pub exact_rows: usize,
    /// Mean best identity over test sequences with a candidate (0 when none).
    pub mean_best_identity: f64,
    /// Counts of test sequences with a train neighbour ≥ 50 %, ≥ 80 %, ≥ 95 %.
    pub levels: Vec<Level>,
    /// Seconds spent.
    pub seconds: f64,
    /// One row per test sequence, in input order.
    pub rows: Vec<LeakRow>,
}

/// The identity levels summarised in [`Leakage::levels`].
pub const LEVELS: [f64; 3] = [0.5, 0.8, 0.95];

/// For each test sequence, its highest alignment identity to any training sequence.
///
/// The candidate (≥ `min_shared` shared canonical k-mers on one relative strand) sharing the
/// most k-mers is aligned first; its identity is a floor. Every other candidate is bounded by its
/// LCS (stopped as soon as it cannot beat the floor); those are aligned in decreasing bound order
/// until the bound cannot beat the best identity found (the maximum over candidates is then
/// exact) or, after the highest bound, cannot reach the next level above it among 50, 80, 95 %
/// and the identity threshold (the row is then marked `exact: false`; its level, and so every
/// count, is still exact).
pub fn leakage(
    train_names: &[String],
    train: &[&[u8]],
    test_names: &[String],
    test: &[&[u8]],
    params: &Params,
) -> Result<Leakage> {
    params.validate()?;
    check_lengths(train_names, train, "training set")?;
    check_lengths(test_names, test, "test set")?;
    let start = std::time::Instant::now();
    let index = KmerIndex::build(train, params.k)?;
    let mut levels: Vec<f64> = LEVELS.to_vec();
    if !levels.iter().any(|&l| (l - params.identity).abs() < 1e-12) {
        levels.push(params.identity);
        levels.sort_by(f64::total_cmp);
    }
    // (best identity, best train and strand, exact, candidates, aligned)
    type Best = (f64, Option<(u32, u8)>, bool, u32, u64);
    let results: Vec<Best> = index.map_candidates(
        test,
        |_| 0,
        params,
        || (LaneScratch::default(), Vec::new()),
        |scratch, (lanes, lcs), i, cands| {
            let q = test[i];
            if cands.is_empty() {
                return (0.0, None, true, 0, 0);
            }
            // First the candidate sharing the most k-mers (the first such target on ties): its
            // identity is a floor that the others' LCS bounds must beat, which lets those
            // bounds stop early and stay in a band.
            let first = (0..cands.len())
                .max_by_key(|&c| (cands[c].2, std::cmp::Reverse(c)))
                .expect("candidates");
            let (j0, s0, _) = cands[first];
            let mut best = identity(q, train[j0 as usize], s0 == 1, scratch);
            let mut best_at = Some((j0, s0));
            let mut aligned = 1u64;
            let pat = LcsPattern::new(q);
            let others: Vec<(u32, u8)> = (0..cands.len())
                .filter(|&c| c != first)
                .map(|c| (cands[c].0, cands[c].1))
                .collect();
            let texts: Vec<(&[u8], bool)> = others
                .iter()
                .map(|&(j, s)| (train[j as usize], s == 1))
                .collect();
            // Smallest LCS that beats `best`: identity > best needs more than best × shorter.
            let needs: Vec<usize> = texts
                .iter()
                .map(|&(y, _)| (best * q.len().min(y.len()) as f64 + 1e-9).floor() as usize + 1)
                .collect();
            pat.lcs_reaching_many(&texts, &needs, lanes, lcs);
            let mut bounded: Vec<(f64, u32, u8)> = others
                .iter()
                .zip(lcs.iter())
                .filter_map(|(&(j, s), &l)| {
                    let y = train[j as usize];
                    Some((l? as f64 / q.len().min(y.len()) as f64, j, s))
                })
                .collect();
            bounded.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let mut exact = true;
            for (rank, &(bound, j, s)) in bounded.iter().enumerate() {
                if bound <= best {
                    break; // no remaining candidate can beat the best: exact
                }
                // The highest bound is always aligned; after it, only a candidate that could
                // reach the next level changes the counts.
                match levels.iter().find(|&&l| l > best) {
                    _ if rank == 0 => {}
                    Some(&next) if bound >= next => {}
                    _ => {
                        exact = false;
                        break;
                    }
                }
                aligned += 1;
                // Only an identity above the best so far matters.
                match identity_above(q, train[j as usize], s == 1, best, scratch) {
                    Some(id) if id > best => {
                        best = id;
                        best_at = Some((j, s));
                    }
                    _ => {}
                }
            }
            (best.max(0.0), best_at, exact, cands.len() as u32, aligned)
        },
    );
    let mut rows = Vec::with_capacity(test.len());
    let (mut cand_total, mut aligned_total, mut with, mut sum) = (0u64, 0u64, 0usize, 0.0f64);
    for (name, (best, at, exact, cands, aligned)) in test_names.iter().zip(results) {
        cand_total += cands as u64;
        aligned_total += aligned;
        if at.is_some() {
            with += 1;
            sum += best;
        }
        rows.push(LeakRow {
            id: name.clone(),
            best_identity: best,
            best_train: at.map(|(j, _)| train_names[j as usize].clone()),
            strand: at.map(|(_, s)| if s == 1 { '-' } else { '+' }),
            method: if at.is_some() { "alignment" } else { "none" },
            exact,
            candidates: cands,
            best_train_index: at.map(|(j, _)| j as usize),
        });
    }
    let n = test.len();
    let levels = LEVELS
        .iter()
        .map(|&l| {
            let count = rows.iter().filter(|r| r.best_identity >= l).count();
            Level {
                identity: l,
                count,
                fraction: if n == 0 { 0.0 } else { count as f64 / n as f64 },
            }
        })
        .collect();
    Ok(Leakage {
        identity_definition: "identical aligned A/C/G/T bases / length of the shorter sequence (cd-hit-est -G 1); bio semi-global alignment, shorter sequence end to end, match 2 mismatch -2 gap open -6 extend -1, both strands",
        below_candidate_bar: "best_identity 0 with method 'none': no training sequence shares min_shared canonical k-mers on one strand (not aligned)",
        kmer: params.k,
        min_shared: params.min_shared,
        max_occ: params.max_occ,
        train: train.len(),
        test: n,
        test_with_candidates: with,
        candidate_pairs: cand_total,
        aligned_pairs: aligned_total,
        exact_rows: rows.iter().filter(|r| r.exact).count(),
        mean_best_identity: if with == 0 { 0.0 } else { sum / with as f64 },
        levels,
        seconds: start.elapsed().as_secs_f64(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_lcs(a: &[u8], b: &[u8]) -> usize {
        let mut dp = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                dp[i][j] = if a[i - 1] == b[j - 1] && a[i - 1] != b'N' {
                    dp[i - 1][j - 1] + 1
                } else {
                    dp[i - 1][j].max(dp[i][j - 1])
                };
            }
        }
        dp[a.len()][b.len()]
    }

    /// LCS using only matches `(i, j)` with `j + need − n ≤ i ≤ j + len(a) − need`.
    fn naive_band_lcs(a: &[u8], b: &[u8], need: usize) -> usize {
        let (m, n, need) = (a.len() as i64, b.len() as i64, need as i64);
        let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for i in 0..a.len() {
            for j in 0..b.len() {
                let (ii, jj) = (i as i64, j as i64);
                let in_band = jj + need - n <= ii && ii <= jj + m - need;
                d[i + 1][j + 1] = if a[i] == b[j] && in_band {
                    d[i][j] + 1
                } else {
                    d[i][j + 1].max(d[i + 1][j])
                };
            }
        }
        d[a.len()][b.len()]
    }

    #[test]
    fn lcs_matches_dynamic_programming() {
        let mut state = 7u64;
        let mut rnd = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    b"ACGTN"[((state >> 33) % 5) as usize]
                })
                .collect()
        };
        let mut v = Vec::new();
        for (m, n) in [(1, 1), (5, 9), (63, 64), (64, 65), (130, 70), (200, 300)] {
            let (a, b) = (rnd(m), rnd(n));
            let pat = LcsPattern::new(&a);
            assert_eq!(pat.lcs(&b, false, &mut v), naive_lcs(&a, &b), "{m} {n}");
            let rc: Vec<u8> = b.iter().rev().map(|&c| crate::seq::complement(c)).collect();
            assert_eq!(pat.lcs(&b, true, &mut v), naive_lcs(&a, &rc), "{m} {n} rc");
        }
    }

    /// A random sequence and a mutated copy (substitutions, indels, N) of it.
    fn family(state: &mut u64, n: usize, rate: f64) -> (Vec<u8>, Vec<u8>) {
        let mut next = || {
            *state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (*state >> 11) as f64 / (1u64 << 53) as f64
        };
        let a: Vec<u8> = (0..n).map(|_| b"ACGT"[(next() * 4.0) as usize]).collect();
        let mut b = Vec::new();
        let flank = (next() * 20.0) as usize;
        for _ in 0..flank {
            b.push(b"ACGT"[(next() * 4.0) as usize]);
        }
        for &c in &a {
            let r = next();
            if r < rate * 0.6 {
                b.push(b"ACGTN"[(next() * 5.0) as usize]);
            } else if r < rate * 0.8 {
                // deletion
            } else if r < rate {
                b.push(c);
                b.push(b"ACGT"[(next() * 4.0) as usize]);
            } else {
                b.push(c);
            }
        }
        (a, b)
    }

    #[test]
    fn fast_identity_brackets_bio_and_equals_it() {
        let mut state = 11u64;
        let mut sc = Scratch::default();
        let (mut ties, mut pairs) = (0, 0);
        for round in 0..300 {
            let n = 20 + (round * 7) % 280;
            let rate = [0.02, 0.1, 0.2, 0.35, 0.6][round % 5];
            let (a, b) = family(&mut state, n, rate);
            for rc in [false, true] {
                let b2: Vec<u8> = if rc {
                    b.iter().rev().map(|&c| crate::seq::complement(c)).collect()
                } else {
                    b.clone()
                };
                let (x, y) = if (a.len(), &a[..]) <= (b2.len(), &b2[..]) {
                    (&a[..], &b2[..])
                } else {
                    (&b2[..], &a[..])
                };
                let aln = sc.aligner.semiglobal(x, y);
                let bio_same = bio_identical(x, y, &mut sc.aligner);
                let (lo, hi, score) = identity_range(x, y);
                assert_eq!(
                    score, aln.score,
                    "round {round}: best score differs from bio's"
                );
                assert!(
                    lo <= bio_same && bio_same <= hi,
                    "round {round}: bio {bio_same} outside [{lo}, {hi}]"
                );
                ties += usize::from(lo != hi);
                pairs += 1;
                // The public identity is bio's, fast path or not.
                assert_eq!(
                    identity(&a, &b, rc, &mut sc),
                    identity_bio(&a, &b, rc, &mut sc),
                    "round {round} rc {rc}"
                );
            }
        }
        assert!(
            ties < pairs / 2,
            "{ties} of {pairs} pairs needed a traceback"
        );
    }

    #[test]
    fn radix_sort_by_code_equals_a_full_sort() {
        // Entries made target by target (one per code and target), as the index makes them,
        // for 13-mers (two passes) and 16-mers (three passes, codes using all 32 bits).
        let mut state = 5u64;
        for k in [13u32, 16] {
            let mut entries = Vec::new();
            for t in 0..300u64 {
                let mut codes: Vec<u64> = (0..40)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        // Few distinct codes, so that many targets share each.
                        (state >> 33) % 500 * ((1u64 << (2 * k)) / 500)
                    })
                    .collect();
                codes.sort_unstable();
                codes.dedup();
                entries.extend(
                    codes
                        .iter()
                        .map(|&c| ((c << 32) | (t << 1) | (c & 1), (c % 997) as u16)),
                );
            }
            let mut want = entries.clone();
            want.sort_unstable();
            sort_by_code(&mut entries, 2 * k);
            assert_eq!(entries, want, "k {k}");
            assert!(
                want.last().unwrap().0 >> 32 > 1 << (2 * k - 2),
                "k {k}: high codes used"
            );
        }
    }

    #[test]
    fn striped_pass_equals_the_scalar_pass() {
        // Lengths around the 8-lane segments (1 to 700 bp, shorter and longer text), related
        // and unrelated pairs, N bases, both tie-breaking signs, the dispatched (AVX2 where the
        // CPU has it) and the portable kernel.
        let mut state = 23u64;
        let mut buf = striped::Buffers::default();
        let mut rows = Vec::new();
        for round in 0..240 {
            let n = [1, 2, 7, 8, 9, 15, 17, 63, 64, 65, 120, 300, 301, 700][round % 14];
            let rate = [0.0, 0.05, 0.2, 0.4, 1.0][round % 5];
            let (mut a, mut b) = family(&mut state, n, rate);
            if round % 3 == 0 && !b.is_empty() {
                let i = round % a.len();
                a[i] = b'N';
                let j = (round * 7) % b.len();
                b[j] = b'N';
            }
            if round % 4 == 1 {
                b.truncate(b.len().div_ceil(2));
            }
            for (x, y) in [(&a, &b), (&b, &a)] {
                if !striped::fits(x.len(), y.len()) {
                    continue;
                }
                for sign in [1, -1] {
                    let want = gotoh_packed(x, y, [sign as i64], &mut rows)[0];
                    let got = striped::best(x, y, sign, &mut buf);
                    assert_eq!(got, want, "round {round} sign {sign}");
                    let portable = striped::best_portable(x, y, sign, &mut buf);
                    assert_eq!(portable, want, "round {round} sign {sign}, portable");
                }
            }
        }
        assert!(!striped::fits(0, 10) && !striped::fits(2048, 10) && !striped::fits(100, 11_950));
    }

    #[test]
    fn lcs_reaching_exits_only_below_need() {
        // The early exit must never drop a pair that reaches `need`, for patterns shorter and
        // longer than the text, one word or several, and related or unrelated pairs.
        let mut state = 5u64;
        let mut v = Vec::new();
        for round in 0..200 {
            let n = 10 + (round * 37) % 400;
            let (a, mut b) = family(&mut state, n, [0.05, 0.2, 0.5, 1.0][round % 4]);
            if round % 3 == 0 {
                b.truncate(b.len() / 2 + 1);
            }
            let pat = LcsPattern::new(&a);
            let want = naive_lcs(&a, &b);
            assert_eq!(pat.lcs_reaching(&b, false, 0, &mut v), Some(want));
            for need in [want.saturating_sub(3), want, want + 1, want + 7] {
                let got = pat.lcs_reaching(&b, false, need, &mut v);
                let band = naive_band_lcs(&a, &b, need);
                match got {
                    None => assert!(band < need, "round {round} need {need}: dropped"),
                    Some(l) => assert!(
                        l >= need && l >= band && l <= want,
                        "round {round} need {need}: {l} outside [{band}, {want}]"
                    ),
                }
            }
        }
    }

    #[test]
    fn lcs_many_equals_one_at_a_time() {
        // Every pattern width (1 to 8 words and the general path), partial lane chunks, texts
        // of different lengths on both strands, needs below, at and above the true LCS.
        let mut state = 17u64;
        let mut sc = LaneScratch::default();
        let mut v = Vec::new();
        let mut out = Vec::new();
        for (round, plen) in [
            1usize, 40, 64, 65, 130, 200, 300, 420, 512, 513, 700, 1000, 1100,
        ]
        .into_iter()
        .enumerate()
        {
            let (x, _) = family(&mut state, plen, 0.1);
            let pat = LcsPattern::new(&x);
            let mut texts: Vec<(Vec<u8>, bool)> = Vec::new();
            for t in 0..(3 + round % 6) {
                let (_, mut y) = family(&mut state, plen, [0.05, 0.3, 1.0][t % 3]);
                y.truncate(1 + (y.len() * (t + 1)) / 7 + t * 13);
                texts.push((y, t % 2 == 1));
            }
            let refs: Vec<(&[u8], bool)> = texts.iter().map(|(y, rc)| (&y[..], *rc)).collect();
            for shift in [0i64, -5, 1, 9] {
                let need: Vec<usize> = refs
                    .iter()
                    .map(|&(y, rc)| (pat.lcs(y, rc, &mut v) as i64 + shift).max(0) as usize)
                    .collect();
                pat.lcs_reaching_many(&refs, &need, &mut sc, &mut out);
                let want: Vec<Option<usize>> = refs
                    .iter()
                    .zip(&need)
                    .map(|(&(y, rc), &n)| pat.lcs_reaching(y, rc, n, &mut v))
                    .collect();
                assert_eq!(out, want, "pattern {plen} shift {shift}");
            }
        }
    }

    #[test]
    fn sketch_is_strand_symmetric() {
        let s = b"ACGTTGCAAGGCTTANNACGGATCCGATTACA";
        let rc: Vec<u8> = s.iter().rev().map(|&c| crate::seq::complement(c)).collect();
        let strip = |v: Vec<u64>| v.into_iter().map(|e| e >> 1).collect::<Vec<_>>();
        assert_eq!(strip(sketch(s, 9)), strip(sketch(&rc, 9)));
        assert!(sketch(b"ACGTNACGT", 9).is_empty());
    }

    #[test]
    fn identity_counts_identical_bases_over_the_shorter() {
        let mut sc = Scratch::default();
        let x = b"ACGTACGGTTCAGGCATTACGATCGATCGGCTAGCTAGGATC";
        assert_eq!(identity(x, x, false, &mut sc), 1.0);
        let rc: Vec<u8> = x.iter().rev().map(|&c| crate::seq::complement(c)).collect();
        assert_eq!(identity(x, &rc, true, &mut sc), 1.0);
        // A prefix is fully contained: identity 1 over the shorter sequence.
        assert_eq!(identity(&x[..20], x, false, &mut sc), 1.0);
        let mut y = x.to_vec();
        y[10] = b'A';
        y[30] = b'N';
        let want = (x.len() - 2) as f64 / x.len() as f64;
        assert!((identity(x, &y, false, &mut sc) - want).abs() < 1e-12);
        // Symmetric in its arguments, on both strands.
        let z = b"ACGTTCGGTTCAGGCTTTACGATCAATCGGCTAGCTAGCATCAAT";
        for rc in [false, true] {
            assert_eq!(
                identity(x, z, rc, &mut sc),
                identity(z, x, rc, &mut sc),
                "rc {rc}"
            );
        }
    }

    #[test]
    fn candidates_need_shared_kmers_on_one_diagonal() {
        let x: Vec<u8> = b"ACGGTCATTGCAGGCTTAACGATCGGATCCGTATTGACCATGCATGCAAGTTCAGG".to_vec();
        let rc: Vec<u8> = x.iter().rev().map(|&c| crate::seq::complement(c)).collect();
        // Two halves of x swapped: k-mers shared, but on two diagonals far apart.
        let swapped: Vec<u8> = [
            &x[28..],
            &b"TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT"[..],
            &x[..28],
        ]
        .concat();
        let seqs: Vec<&[u8]> = vec![&x, &rc, &swapped];
        let index = KmerIndex::build(&seqs, 11).unwrap();
        let p = Params {
            k: 11,
            min_shared: 20,
            ..Params::default()
        };
        let mut sc = Scratch::default();
        let c = index.candidates(&x, 1, &p, &mut sc);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!((c[0].0, c[0].1), (1, 1));
        assert_eq!(c[0].2 as usize, x.len() - 10);
    }

    #[test]
    fn union_find_clusters() {
        let mut uf = UnionFind::new(5);
        assert!(uf.union(3, 1));
        assert!(uf.union(1, 4));
        assert!(!uf.union(4, 3));
        assert_eq!(uf.cluster_ids(), vec![0, 1, 2, 1, 1]);
    }
}
