//! k-mer tokenizer: windows of k bases every `stride` bases (overlapping when stride < k).
//!
//! Vocabulary (`5 + 4^k + 5` ids):
//! - `[PAD]`=0 `[UNK]`=1 `[CLS]`=2 `[SEP]`=3 `[MASK]`=4;
//! - the 4^k k-mers in lexicographic order, id `5 + code` where `code` reads the k-mer as a
//!   base-4 number with A=0 C=1 G=2 T=3, first base most significant (`AAA`=5, `AAC`=6, …);
//! - five single-base tokens A C G T N at `5 + 4^k ..`, used only for the tail (see below).
//!
//! A window containing N (or any byte other than A C G T) becomes `[UNK]`.
//!
//! **The tail.** Windows start at 0, s, 2s, … and a window is emitted only when all k bases
//! exist. The bases after the last full window (at most `max(k, s) - 1` of them, or the whole
//! sequence when it is shorter than k) form the tail, handled by [`Tail`]:
//! - `bases` (default): each tail base becomes a single-base token (as in the Nucleotide
//!   Transformer), so nothing is lost and decode reconstructs the sequence exactly;
//! - `drop`: the tail is silently dropped (the behaviour that surprised GENERator users);
//! - `unk`: a non-empty tail becomes one `[UNK]`;
//! - `error`: a non-empty tail is an input error.
//!
//! Decoding places each window at its offset (`index * stride`), so overlapping k-mers
//! (stride 1) and non-overlapping ones (stride k) both reconstruct the sequence; positions
//! covered only by `[UNK]` windows, and the gaps of stride > k, decode as N.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use super::{SpecialTokens, Tokenizer, MAX_K, N_SPECIAL, SPECIAL_TOKENS, UNK};
use crate::error::{Error, Result};
use crate::seq::BASE_CODE;

/// What happens to the bases after the last full window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tail {
    /// Emit single-base tokens for the tail (lossless; the default).
    #[default]
    Bases,
    /// Drop the tail silently.
    Drop,
    /// Emit one `[UNK]` for a non-empty tail.
    Unk,
    /// Fail on a non-empty tail.
    Error,
}

impl fmt::Display for Tail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tail::Bases => "bases",
            Tail::Drop => "drop",
            Tail::Unk => "unk",
            Tail::Error => "error",
        })
    }
}

impl FromStr for Tail {
    type Err = Error;

    fn from_str(s: &str) -> Result<Tail> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bases" => Ok(Tail::Bases),
            "drop" => Ok(Tail::Drop),
            "unk" => Ok(Tail::Unk),
            "error" => Ok(Tail::Error),
            o => Err(Error::input(format!(
                "tail '{o}' is not one of bases, drop, unk, error"
            ))),
        }
    }
}

/// The k-mer tokenizer (spec `kmer:K[:STRIDE[:TAIL]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kmer {
    k: usize,
    stride: usize,
    tail: Tail,
}

impl Kmer {
    /// A k-mer tokenizer; `k` in 1..=12, `stride` ≥ 1.
    pub fn new(k: usize, stride: usize, tail: Tail) -> Result<Kmer> {
        if !(1..=MAX_K).contains(&k) {
            return Err(Error::input(format!(
                "k-mer length must be in 1..={MAX_K} (got {k})"
            )));
        }
        if stride == 0 {
            return Err(Error::input("k-mer stride must be at least 1"));
        }
        Ok(Kmer { k, stride, tail })
    }

    /// The k-mer length.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The step between window starts.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The tail policy.
    pub fn tail(&self) -> Tail {
        self.tail
    }

    /// Number of k-mers, 4^k.
    pub fn n_kmers(&self) -> u32 {
        1u32 << (2 * self.k)
    }

    /// Id of the first single-base (tail) token, `5 + 4^k`; A C G T N follow in that order.
    pub fn first_base_id(&self) -> u32 {
        N_SPECIAL + self.n_kmers()
    }

    /// Number of full windows in a sequence of `len` bases.
    pub fn n_windows(&self, len: usize) -> usize {
        if len >= self.k {
            (len - self.k) / self.stride + 1
        } else {
            0
        }
    }

    /// Where the tail of a sequence of `len` bases starts (`len` when there is none).
    fn tail_start(&self, n_windows: usize, len: usize) -> usize {
        if n_windows == 0 {
            0
        } else {
            ((n_windows - 1) * self.stride + self.k)
                .max(n_windows * self.stride)
                .min(len)
        }
    }

    /// The tail of a sequence of `len` bases (empty when the windows cover it).
    pub fn tail_range(&self, len: usize) -> Range<usize> {
        self.tail_start(self.n_windows(len), len)..len
    }

    /// Id of one k-mer (`kmer.len()` must be k); `[UNK]` if it holds a byte other than A C G T.
    pub fn kmer_id(&self, kmer: &[u8]) -> u32 {
        debug_assert_eq!(kmer.len(), self.k);
        let mut code = 0u32;
        for &b in kmer {
            let c = BASE_CODE[b as usize] as u32;
            if c == 4 {
                return UNK;
            }
            code = (code << 2) | c;
        }
        N_SPECIAL + code
    }

    /// Append the ids of `seq` to `out`: rolling 2-bit codes, no per-base allocation.
    pub fn encode_ids_into(&self, seq: &[u8], out: &mut Vec<u32>) -> Result<()> {
        let len = seq.len();
        let n = self.n_windows(len);
        let tail = self.tail_start(n, len)..len;
        if !tail.is_empty() && self.tail == Tail::Error {
            return Err(Error::input(format!(
                "sequence of {len} bases leaves a tail of {} bases after the last full \
                 {}-mer window (stride {}); use tail bases, drop or unk in the spec \
                 (kmer:{}:{}:TAIL)",
                tail.len(),
                self.k,
                self.stride,
                self.k,
                self.stride
            )));
        }
        let start = out.len();
        if n > 0 && self.stride == 1 {
            // Written by `extend`, so the output is not zero-filled first (the encoder is
            // bound by stores: 4 output bytes per input base).
            self.extend_stride1(seq, n, out);
        } else if n > 0 {
            out.resize(start + n, 0);
            let dst = &mut out[start..];
            if self.stride < self.k {
                self.windows_strided(seq, dst);
            } else {
                self.windows_disjoint(seq, dst);
            }
        }
        match self.tail {
            _ if tail.is_empty() => {}
            Tail::Bases => {
                let first = self.first_base_id();
                out.extend(
                    seq[tail]
                        .iter()
                        .map(|&b| first + BASE_CODE[b as usize] as u32),
                );
            }
            Tail::Unk => out.push(UNK),
            Tail::Drop | Tail::Error => {}
        }
        Ok(())
    }

    /// Overlapping windows (stride 1) appended to `out` in one pass: a rolling 2-bit code and a
    /// count of consecutive A/C/G/T bases, so a window holding any other base becomes `[UNK]`
    /// without a second pass.
    #[inline]
    fn extend_stride1(&self, seq: &[u8], n: usize, out: &mut Vec<u32>) {
        let k = self.k as u32;
        let mask = (self.n_kmers() - 1) as u64;
        // (code, consecutive ACGT bases ending here)
        let step = |(acc, run): (u64, u32), b: u8| {
            let c = BASE_CODE[b as usize] as u64;
            let run = if c == 4 { 0 } else { run.saturating_add(1) };
            ((acc << 2) | (c & 3), run)
        };
        let mut st = seq[..self.k - 1]
            .iter()
            .fold((0u64, 0u32), |s, &b| step(s, b));
        out.reserve(n);
        out.extend(seq[self.k - 1..self.k - 1 + n].iter().map(|&b| {
            st = step(st, b);
            let (acc, run) = st;
            if run >= k {
                (acc & mask) as u32 + N_SPECIAL
            } else {
                UNK
            }
        }));
    }

    /// Overlapping windows every `stride` bases (1 < stride < k): each base is shifted in once,
    /// then the same `[UNK]` pass as for stride 1.
    #[inline]
    fn windows_strided(&self, seq: &[u8], dst: &mut [u32]) {
        let (k, s) = (self.k, self.stride);
        let mask = (self.n_kmers() - 1) as u64;
        let mut acc = 0u64;
        let mut bad = 0u64;
        let mut pos = 0usize;
        for (j, d) in dst.iter_mut().enumerate() {
            let end = j * s + k;
            for &b in &seq[pos..end] {
                let c = BASE_CODE[b as usize] as u64;
                acc = (acc << 2) | (c & 3);
                bad |= c;
            }
            pos = end;
            *d = (acc & mask) as u32 + N_SPECIAL;
        }
        if bad & 4 != 0 {
            let last = dst.len() - 1;
            for (i, &b) in seq[..last * s + k].iter().enumerate() {
                if BASE_CODE[b as usize] == 4 {
                    // Windows j with j*s <= i < j*s + k.
                    let lo = (i + 1).saturating_sub(k).div_ceil(s);
                    let hi = (i / s).min(last);
                    if lo <= hi {
                        dst[lo..=hi].fill(UNK);
                    }
                }
            }
        }
    }

    /// Disjoint windows (stride ≥ k), each computed from its own k bases.
    #[inline]
    fn windows_disjoint(&self, seq: &[u8], dst: &mut [u32]) {
        let (k, s) = (self.k, self.stride);
        for (j, d) in dst.iter_mut().enumerate() {
            let mut code = 0u32;
            let mut bad = 0u32;
            for &b in &seq[j * s..j * s + k] {
                let c = BASE_CODE[b as usize] as u32;
                code = (code << 2) | (c & 3);
                bad |= c & 4;
            }
            *d = if bad != 0 { UNK } else { code + N_SPECIAL };
        }
    }
}

/// Write the `dst.len()` bases of 2-bit `code` into `dst`, keeping non-N bytes already there.
fn write_code(code: u32, dst: &mut [u8]) {
    let len = dst.len();
    for (t, d) in dst.iter_mut().enumerate() {
        if *d == b'N' {
            *d = b"ACGT"[((code >> (2 * (len - 1 - t))) & 3) as usize];
        }
    }
}

impl Tokenizer for Kmer {
    fn spec(&self) -> String {
        format!("kmer:{}:{}:{}", self.k, self.stride, self.tail)
    }

    fn vocab_size(&self) -> usize {
        (self.first_base_id() + 5) as usize
    }

    fn special_tokens(&self) -> SpecialTokens {
        SpecialTokens::FIXED
    }

    fn encode_into(&self, seq: &[u8], out: &mut Vec<u32>) -> Result<()> {
        self.encode_ids_into(seq, out)
    }

    /// Place window `j` at `j * stride`, then the single-base tail tokens after the last window.
    fn decode(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let (k, s) = (self.k, self.stride);
        let first_base = self.first_base_id();
        // Window codes (None for [UNK]) and the single-base tail.
        let mut windows: Vec<Option<u32>> = Vec::with_capacity(ids.len());
        let mut tail: Vec<u8> = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let window = match id {
                UNK => None,
                _ if id < N_SPECIAL => continue,
                _ if id < first_base => Some(id - N_SPECIAL),
                _ if id < first_base + 5 => {
                    tail.push(b"ACGTN"[(id - first_base) as usize]);
                    continue;
                }
                _ => {
                    return Err(Error::input(format!(
                        "k-mer id {id} at position {i} is out of range (vocabulary size {})",
                        self.vocab_size()
                    )))
                }
            };
            if !tail.is_empty() {
                return Err(Error::input(format!(
                    "k-mer token at position {i} follows a single-base tail token; \
                     tail tokens must come last"
                )));
            }
            windows.push(window);
        }
        let n = windows.len();
        let covered = if n == 0 { 0 } else { (n - 1) * s + k };
        let tail_start = if n == 0 { 0 } else { covered.max(n * s) };
        let total = if tail.is_empty() {
            covered
        } else {
            tail_start + tail.len()
        };
        let mut out = vec![b'N'; total];
        let mut prev_known = false;
        for (j, w) in windows.iter().enumerate() {
            let p = j * s;
            match *w {
                Some(code) if prev_known && s < k => {
                    // Only the last s bases are new; the rest came from the previous window.
                    let low = code & ((1u32 << (2 * s)) - 1);
                    write_code(low, &mut out[p + k - s..p + k]);
                }
                Some(code) => write_code(code, &mut out[p..p + k]),
                None => {}
            }
            prev_known = w.is_some();
        }
        out[tail_start.min(total)..].copy_from_slice(&tail);
        Ok(out)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        let first_base = self.first_base_id();
        if id < N_SPECIAL {
            Some(SPECIAL_TOKENS[id as usize].to_string())
        } else if id < first_base {
            let mut buf = vec![b'N'; self.k];
            write_code(id - N_SPECIAL, &mut buf);
            Some(String::from_utf8_lossy(&buf).into_owned())
        } else if id < first_base + 5 {
            Some((b"ACGTN"[(id - first_base) as usize] as char).to_string())
        } else {
            None
        }
    }

    /// k-mers take precedence over single-base tokens when k = 1.
    fn token_to_id(&self, token: &str) -> Option<u32> {
        if let Some(p) = SPECIAL_TOKENS.iter().position(|t| *t == token) {
            return Some(p as u32);
        }
        let b = token.as_bytes();
        if b.len() == self.k && b.iter().all(|&x| b"ACGT".contains(&x)) {
            return Some(self.kmer_id(b));
        }
        match b {
            [x] => b"ACGTN"
                .iter()
                .position(|y| y == x)
                .map(|p| self.first_base_id() + p as u32),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::{CLS, SEP};
    use proptest::prelude::*;

    fn km(k: usize, s: usize, t: Tail) -> Kmer {
        Kmer::new(k, s, t).unwrap()
    }

    #[test]
    fn ids_by_hand() {
        let t = km(3, 1, Tail::Bases);
        assert_eq!(t.vocab_size(), 5 + 64 + 5);
        // AAA=0 AAC=1 ACG=0*16+1*4+2=6, CGT=1*16+2*4+3=27
        assert_eq!(t.encode(b"AAA").unwrap(), vec![5]);
        assert_eq!(t.encode(b"ACGT").unwrap(), vec![5 + 6, 5 + 27]);
        assert_eq!(t.encode(b"acgt").unwrap(), vec![5 + 6, 5 + 27]);
        assert_eq!(t.encode(b"TTT").unwrap(), vec![5 + 63]);
        // "ACGTN": ACG, CGT, GTN -> UNK
        assert_eq!(t.encode(b"ACGTN").unwrap(), vec![11, 32, UNK]);
        // N in the middle poisons the three windows that hold it.
        assert_eq!(
            t.encode(b"ACNGTA").unwrap(),
            vec![UNK, UNK, UNK, 5 + (2 * 16 + 3 * 4)]
        );
        assert_eq!(t.id_to_token(11).as_deref(), Some("ACG"));
        assert_eq!(t.token_to_id("CGT"), Some(32));
        assert_eq!(t.token_to_id("[MASK]"), Some(4));
        assert_eq!(t.id_to_token(t.first_base_id() + 4).as_deref(), Some("N"));
        assert_eq!(t.token_to_id("N"), Some(t.first_base_id() + 4));
        assert_eq!(t.id_to_token(t.vocab_size() as u32), None);

        let one = km(1, 1, Tail::Bases);
        assert_eq!(one.encode(b"ACGTN").unwrap(), vec![5, 6, 7, 8, UNK]);
        assert_eq!(one.vocab_size(), 14);
        assert_eq!(one.token_to_id("A"), Some(5));

        let big = km(12, 12, Tail::Bases);
        assert_eq!(big.vocab_size(), 5 + (1 << 24) + 5);
        assert_eq!(
            big.encode(b"TTTTTTTTTTTT").unwrap(),
            vec![5 + (1 << 24) - 1]
        );
        assert!(Kmer::new(13, 1, Tail::Bases).is_err());
        assert!(Kmer::new(0, 1, Tail::Bases).is_err());
        assert!(Kmer::new(3, 0, Tail::Bases).is_err());
    }

    #[test]
    fn non_overlapping_and_tails() {
        // ACGTACGT, k=3 s=3: ACG TAC + tail "GT"
        let seq = b"ACGTACGT";
        let acg = 5 + 6;
        let tac = 5 + (3 * 16 + 1); // T=3, A=0, C=1
        let b = km(3, 3, Tail::Bases);
        let fb = b.first_base_id();
        assert_eq!(b.tail_range(8), 6..8);
        assert_eq!(b.encode(seq).unwrap(), vec![acg, tac, fb + 2, fb + 3]);
        assert_eq!(b.decode(&b.encode(seq).unwrap()).unwrap(), seq.to_vec());
        assert_eq!(km(3, 3, Tail::Drop).encode(seq).unwrap(), vec![acg, tac]);
        assert_eq!(
            km(3, 3, Tail::Unk).encode(seq).unwrap(),
            vec![acg, tac, UNK]
        );
        let e = km(3, 3, Tail::Error).encode(seq).unwrap_err().to_string();
        assert!(e.contains("tail of 2 bases"), "{e}");
        // No tail: every mode agrees.
        for tail in [Tail::Bases, Tail::Drop, Tail::Unk, Tail::Error] {
            assert_eq!(km(3, 3, tail).encode(b"ACGTAC").unwrap(), vec![acg, tac]);
        }
        // Shorter than k: the whole sequence is the tail.
        assert_eq!(b.encode(b"AC").unwrap(), vec![fb, fb + 1]);
        assert_eq!(
            km(3, 3, Tail::Drop).encode(b"AC").unwrap(),
            Vec::<u32>::new()
        );
        assert_eq!(km(3, 3, Tail::Unk).encode(b"").unwrap(), Vec::<u32>::new());
        assert_eq!(b.decode(&[fb, fb + 1]).unwrap(), b"AC".to_vec());
        // Tail bases keep N.
        assert_eq!(b.encode(b"ACGTN").unwrap(), vec![acg, fb + 3, fb + 4]);
        // Overlapping stride 1 never has a tail once the sequence reaches k.
        assert!(km(3, 1, Tail::Error).encode(b"ACGTACGTA").is_ok());
        // Stride 2 with k=3: windows at 0,2,4 cover 7 bases; of 8, base 7 is the tail.
        let s2 = km(3, 2, Tail::Bases);
        assert_eq!(s2.tail_range(7), 7..7);
        assert_eq!(s2.tail_range(8), 7..8);
        assert_eq!(s2.encode(b"ACGTACGT").unwrap().len(), 4);
        assert_eq!(
            s2.decode(&s2.encode(b"ACGTACGT").unwrap()).unwrap(),
            b"ACGTACGT"
        );
        // Stride > k leaves gaps that decode as N.
        let gap = km(2, 3, Tail::Bases);
        let ids = gap.encode(b"ACGTACGT").unwrap();
        assert_eq!(ids.len(), 3); // AC, TA, GT (starts 0,3,6)
        assert_eq!(gap.decode(&ids).unwrap(), b"ACNTANGT".to_vec());
        let ids = gap.encode(b"ACGTACG").unwrap(); // AC, TA, tail G at 6
        assert_eq!(gap.decode(&ids).unwrap(), b"ACNTANG".to_vec());
    }

    #[test]
    fn decode_overlapping_recovers_bases_next_to_n() {
        let t = km(3, 1, Tail::Bases);
        let seq = b"ACGNACGT";
        let ids = t.encode(seq).unwrap();
        assert_eq!(ids.len(), 6);
        assert_eq!(t.decode(&ids).unwrap(), seq.to_vec());
        // Specials are skipped.
        let mut wrapped = vec![CLS];
        wrapped.extend(&ids);
        wrapped.push(SEP);
        assert_eq!(t.decode(&wrapped).unwrap(), seq.to_vec());
        // A single-base token before a k-mer is rejected.
        let fb = t.first_base_id();
        assert!(t.decode(&[fb, 11]).is_err());
        assert!(t.decode(&[t.vocab_size() as u32]).is_err());
    }

    #[test]
    fn strided_matches_reference() {
        let seq = b"ACGTTGCANNACGGTCAGTTTACGAN";
        for k in 1..=6 {
            for s in 1..=8 {
                let t = km(k, s, Tail::Drop);
                let got = t.encode(seq).unwrap();
                let want: Vec<u32> = (0..t.n_windows(seq.len()))
                    .map(|j| t.kmer_id(&seq[j * s..j * s + k]))
                    .collect();
                assert_eq!(got, want, "k={k} s={s}");
            }
        }
    }

    proptest! {
        #[test]
        fn roundtrip_non_overlapping(s in "[ACGTN]{0,300}", k in 1usize..=8) {
            // Lossless where the sequence has no N inside a window: use ACGT only.
            let s = s.replace('N', "A");
            let t = km(k, k, Tail::Bases);
            let ids = t.encode(s.as_bytes()).unwrap();
            prop_assert_eq!(t.decode(&ids).unwrap(), s.as_bytes());
        }

        #[test]
        fn roundtrip_overlapping(s in "[ACGT]{0,300}", k in 1usize..=12) {
            let t = km(k, 1, Tail::Bases);
            let ids = t.encode(s.as_bytes()).unwrap();
            prop_assert_eq!(ids.len(), if s.len() >= k { s.len() - k + 1 } else { s.len() });
            prop_assert_eq!(t.decode(&ids).unwrap(), s.as_bytes());
        }

        #[test]
        fn roundtrip_any_stride_up_to_k(s in "[ACGT]{0,200}", k in 1usize..=6, d in 0usize..6) {
            let stride = 1 + d % k;
            let t = km(k, stride, Tail::Bases);
            let ids = t.encode(s.as_bytes()).unwrap();
            prop_assert_eq!(t.decode(&ids).unwrap(), s.as_bytes());
        }

        #[test]
        fn fast_paths_match_reference(s in "[ACGTNacgtn]{0,200}", k in 1usize..=12, st in 1usize..=14) {
            let t = km(k, st, Tail::Drop);
            let seq = s.as_bytes();
            let got = t.encode(seq).unwrap();
            let want: Vec<u32> = (0..t.n_windows(seq.len()))
                .map(|j| t.kmer_id(&seq[j * st..j * st + k]))
                .collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn n_maps_to_unk(s in "[ACGTN]{0,200}", k in 1usize..=6) {
            let t = km(k, 1, Tail::Drop);
            let ids = t.encode(s.as_bytes()).unwrap();
            for (j, id) in ids.iter().enumerate() {
                let has_n = s.as_bytes()[j..j + k].contains(&b'N');
                prop_assert_eq!(*id == UNK, has_n);
            }
        }
    }
}
