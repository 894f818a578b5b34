//! A K-th order Markov chain over A/C/G/T: the baseline any DNA language model must beat.
//!
//! [`Markov::fit`] counts (K+1)-mers in a flat vector indexed 2 bits a base (A=0, C=1, G=2,
//! T=3; the last base is the lowest two bits), on both strands of every training sequence;
//! windows holding any other byte (N, IUPAC codes) are skipped. Probabilities use additive
//! smoothing: p(b | ctx) = (n(ctx b) + a) / (n(ctx) + 4a), with the pseudocount `a` fixed in
//! advance (never tuned on held-out data). [`Markov::bits_per_base`] is the cross-entropy
//! −mean log2 p(base | previous K bases) over the positions of the held-out sequences whose
//! base and K preceding bases are all A/C/G/T (scored on the strand given).

use crate::error::{Error, Result};
use crate::seq::BASE_CODE;

/// Highest supported order (4^13 counts of 4 bytes = 256 MiB at K = 12).
pub const MAX_ORDER: usize = 12;

/// A K-th order Markov model of DNA with additive smoothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Markov {
    order: usize,
    pseudocount: f64,
    /// Counts of (K+1)-mers, index = 2-bit code of the window.
    counts: Vec<u32>,
    /// Bases of the training sequences (one strand, every byte).
    train_bases: u64,
    /// (K+1)-mer windows counted (both strands).
    windows: u64,
}

/// Score of a set of held-out sequences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// −mean log2 p(base | context) over the scored positions (NaN when none).
    pub bits_per_base: f64,
    /// Positions scored (base and its K preceding bases all A/C/G/T).
    pub bases: u64,
}

impl Markov {
    /// An empty model of `order` (0..=12) with pseudocount `a` (> 0, finite).
    pub fn new(order: usize, pseudocount: f64) -> Result<Self> {
        if order > MAX_ORDER {
            return Err(Error::input(format!(
                "--order must be in 0..={MAX_ORDER}, got {order}"
            )));
        }
        if !(pseudocount > 0.0 && pseudocount.is_finite()) {
            return Err(Error::input(format!(
                "--pseudocount must be a positive number, got {pseudocount}"
            )));
        }
        Ok(Markov {
            order,
            pseudocount,
            counts: vec![0; 1usize << (2 * (order + 1))],
            train_bases: 0,
            windows: 0,
        })
    }

    /// Fit a model on `seqs` (both strands of each); see [`Markov::new`] for the arguments.
    pub fn fit<'a, I>(order: usize, pseudocount: f64, seqs: I) -> Result<Self>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut m = Markov::new(order, pseudocount)?;
        for s in seqs {
            m.add(s);
        }
        Ok(m)
    }

    /// Count one whole training sequence (both strands).
    pub fn add(&mut self, seq: &[u8]) {
        let mut st = Stream::default();
        self.add_chunk(&mut st, seq);
    }

    /// Count a chunk of a sequence streamed in pieces; `st` carries the window across chunks
    /// (use a fresh [`Stream`] per sequence).
    pub fn add_chunk(&mut self, st: &mut Stream, chunk: &[u8]) {
        let w = self.order + 1;
        let mask = (1usize << (2 * w)) - 1;
        let shift = 2 * self.order;
        self.train_bases += chunk.len() as u64;
        for &b in chunk {
            let c = BASE_CODE[b as usize] as usize;
            if c > 3 {
                st.valid = 0;
                continue;
            }
            st.fwd = ((st.fwd << 2) | c) & mask;
            // The reverse strand read 5'→3': its window ends with the complement of the
            // first base of the forward window.
            st.rev = (st.rev >> 2) | ((3 - c) << shift);
            st.valid += 1;
            if st.valid >= w {
                self.counts[st.fwd] = self.counts[st.fwd].saturating_add(1);
                self.counts[st.rev] = self.counts[st.rev].saturating_add(1);
                self.windows += 2;
            }
        }
    }

    /// Model order K.
    pub fn order(&self) -> usize {
        self.order
    }

    /// Additive-smoothing pseudocount.
    pub fn pseudocount(&self) -> f64 {
        self.pseudocount
    }

    /// Training bases seen (one strand, all bytes including N).
    pub fn train_bases(&self) -> u64 {
        self.train_bases
    }

    /// (K+1)-mer windows counted, both strands together.
    pub fn windows(&self) -> u64 {
        self.windows
    }

    /// log2 p(base | context) for a window code (context in the high bits, base lowest).
    fn log2_prob(&self, window: usize) -> f64 {
        let ctx = window & !3;
        let total: u64 = self.counts[ctx..ctx + 4].iter().map(|&c| c as u64).sum();
        let a = self.pseudocount;
        ((self.counts[window] as f64 + a) / (total as f64 + 4.0 * a)).log2()
    }

    /// Bits per base on held-out sequences (summed over all of them, see the module docs).
    pub fn bits_per_base<'a, I>(&self, seqs: I) -> Score
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let w = self.order + 1;
        let mask = (1usize << (2 * w)) - 1;
        let (mut sum, mut n) = (0.0f64, 0u64);
        for s in seqs {
            let (mut code, mut valid) = (0usize, 0usize);
            for &b in s {
                let c = BASE_CODE[b as usize] as usize;
                if c > 3 {
                    valid = 0;
                    continue;
                }
                code = ((code << 2) | c) & mask;
                valid += 1;
                if valid >= w {
                    sum -= self.log2_prob(code);
                    n += 1;
                }
            }
        }
        Score {
            bits_per_base: if n == 0 { f64::NAN } else { sum / n as f64 },
            bases: n,
        }
    }
}

/// Window state of a sequence streamed to [`Markov::add_chunk`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Stream {
    fwd: usize,
    rev: usize,
    valid: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order0_hand_computed() {
        // AAAC and its reverse complement GTTT: A3 C1 G1 T3; with a = 1, p(A) = 4/12,
        // p(C) = 2/12, so "AC" costs (log2 3 + log2 6) / 2 bits a base.
        let m = Markov::fit(0, 1.0, [&b"AAAC"[..]]).unwrap();
        let s = m.bits_per_base([&b"AC"[..]]);
        assert_eq!(s.bases, 2);
        let want = (3f64.log2() + 6f64.log2()) / 2.0;
        assert!((s.bits_per_base - want).abs() < 1e-12, "{s:?} vs {want}");
        assert_eq!(m.train_bases(), 4);
        assert_eq!(m.windows(), 8);
    }

    #[test]
    fn order1_counts_both_strands_and_skips_n() {
        // AC N GT: windows AC, GT forward; reverse strand AC N GT → AC, GT again.
        let m = Markov::fit(1, 0.5, [&b"ACNGT"[..]]).unwrap();
        assert_eq!(m.windows(), 4);
        // p(C | A) = (2 + 0.5) / (2 + 2), scored once (the N breaks the context).
        let s = m.bits_per_base([&b"ACN"[..]]);
        assert_eq!(s.bases, 1);
        assert!((s.bits_per_base + (2.5f64 / 4.0).log2()).abs() < 1e-12);
    }

    #[test]
    fn streaming_equals_whole() {
        let seq = b"ACGTTGCANNACGGTACCATGACGTAGCTAGCTAGGCTAACGT";
        let whole = Markov::fit(3, 1.0, [&seq[..]]).unwrap();
        let mut parts = Markov::new(3, 1.0).unwrap();
        let mut st = Stream::default();
        for c in seq.chunks(5) {
            parts.add_chunk(&mut st, c);
        }
        assert_eq!(whole, parts);
    }

    #[test]
    fn periodic_sequence_approaches_zero_bits() {
        let unit = b"ACGGTCAAGT";
        let train: Vec<u8> = unit.iter().cycle().take(20_000).copied().collect();
        let test: Vec<u8> = unit.iter().cycle().skip(3).take(5_000).copied().collect();
        let m0 = Markov::fit(0, 1.0, [&train[..]]).unwrap();
        let m6 = Markov::fit(6, 1.0, [&train[..]]).unwrap();
        let (b0, b6) = (
            m0.bits_per_base([&test[..]]).bits_per_base,
            m6.bits_per_base([&test[..]]).bits_per_base,
        );
        assert!(b0 > 1.5, "order 0: {b0}");
        assert!(b6 < 0.01, "order 6: {b6}");
    }

    #[test]
    fn bad_parameters() {
        assert!(Markov::new(13, 1.0).is_err());
        assert!(Markov::new(2, 0.0).is_err());
        assert!(Markov::new(2, f64::NAN).is_err());
        assert!(Markov::fit(0, 1.0, [&b""[..]])
            .unwrap()
            .bits_per_base([&b"NNN"[..]])
            .bits_per_base
            .is_nan());
    }
}
