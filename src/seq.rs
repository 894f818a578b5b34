//! Alphabet, sequence policy (case, IUPAC codes) and reverse complement, in one place.

use crate::error::{Error, Result};

/// How raw sequence bytes are normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqPolicy {
    /// Keep lower-case (soft-masked) bases as lower case instead of upper-casing them.
    pub keep_softmask: bool,
}

/// Class of a byte under the DNA alphabet.
const BAD: u8 = 0;

/// `NORM[b]`: the normalised base for byte `b` keeping case (`A C G T N a c g t n`), or `BAD`.
/// IUPAC ambiguity codes (R Y S W K M B D H V) and `N` map to `N`; `U` maps to `T`.
static NORM: [u8; 256] = build_norm();

const fn build_norm() -> [u8; 256] {
    let mut t = [BAD; 256];
    let upper = b"ACGTNURYSWKMBDHV";
    let mapped = b"ACGTNTNNNNNNNNNN";
    let mut i = 0;
    while i < upper.len() {
        t[upper[i] as usize] = mapped[i];
        t[upper[i].to_ascii_lowercase() as usize] = mapped[i].to_ascii_lowercase();
        i += 1;
    }
    t
}

/// `COMP[b]`: the IUPAC complement of `b`, preserving case; non-IUPAC bytes map to themselves.
static COMP: [u8; 256] = build_comp();

const fn build_comp() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as u8;
        i += 1;
    }
    let from = b"ACGTURYSWKMBDHVN";
    let to = b"TGCAAYRSWMKVHDBN";
    let mut j = 0;
    while j < from.len() {
        t[from[j] as usize] = to[j];
        t[from[j].to_ascii_lowercase() as usize] = to[j].to_ascii_lowercase();
        j += 1;
    }
    t
}

/// Code of a base for counting and encoding: A=0, C=1, G=2, T=3, N/other=4 (case-insensitive).
pub static BASE_CODE: [u8; 256] = build_code();

const fn build_code() -> [u8; 256] {
    let mut t = [4u8; 256];
    t[b'A' as usize] = 0;
    t[b'a' as usize] = 0;
    t[b'C' as usize] = 1;
    t[b'c' as usize] = 1;
    t[b'G' as usize] = 2;
    t[b'g' as usize] = 2;
    t[b'T' as usize] = 3;
    t[b't' as usize] = 3;
    t
}

/// True if `b` is a byte the DNA alphabet accepts (ACGTN, U, IUPAC codes, either case).
#[inline]
pub fn is_valid(b: u8) -> bool {
    NORM[b as usize] != BAD
}

/// Complement one base (IUPAC-aware, case-preserving).
#[inline]
pub fn complement(b: u8) -> u8 {
    COMP[b as usize]
}

/// Reverse complement of a sequence (IUPAC-aware, case-preserving).
pub fn revcomp(seq: &[u8]) -> Vec<u8> {
    seq.iter().rev().map(|&b| COMP[b as usize]).collect()
}

/// Reverse complement a sequence in place.
pub fn revcomp_in_place(seq: &mut [u8]) {
    seq.reverse();
    for b in seq.iter_mut() {
        *b = COMP[*b as usize];
    }
}

/// Position of the first byte outside the DNA alphabet, if any.
pub fn first_invalid(seq: &[u8]) -> Option<usize> {
    seq.iter().position(|&b| NORM[b as usize] == BAD)
}

/// Normalise `seq` in place under `policy`; on a byte outside the alphabet return its offset.
pub fn normalize_in_place(seq: &mut [u8], policy: SeqPolicy) -> Result<(), usize> {
    for (i, b) in seq.iter_mut().enumerate() {
        let n = NORM[*b as usize];
        if n == BAD {
            return Err(i);
        }
        *b = if policy.keep_softmask {
            n
        } else {
            n.to_ascii_uppercase()
        };
    }
    Ok(())
}

/// Normalise a record's sequence, naming the record and offset on a bad byte.
pub fn normalize_record(name: &str, seq: &mut [u8], policy: SeqPolicy) -> Result<()> {
    normalize_in_place(seq, policy).map_err(|i| {
        Error::input(format!(
            "record '{name}': invalid base {} at offset {i}",
            show_byte(seq[i])
        ))
    })
}

/// Render a byte for an error message (`'X'` or `0xNN`).
pub fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("0x{b:02x}")
    }
}

/// Fraction of G+C among A/C/G/T bases (N excluded); 0 when there are none.
pub fn gc_fraction(seq: &[u8]) -> f64 {
    let mut acgt = [0u64; 5];
    for &b in seq {
        acgt[BASE_CODE[b as usize] as usize] += 1;
    }
    let total = acgt[0] + acgt[1] + acgt[2] + acgt[3];
    if total == 0 {
        0.0
    } else {
        (acgt[1] + acgt[2]) as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revcomp_iupac_and_case() {
        assert_eq!(revcomp(b"ACGTNRYacgtn"), b"nacgtRYNACGT".to_vec());
        assert_eq!(revcomp(b"KMBDHVSW"), b"WSBDHVKM".to_vec());
    }

    #[test]
    fn normalize_maps_iupac_to_n_and_rejects_other() {
        let mut s = b"ACgtRyU".to_vec();
        normalize_in_place(&mut s, SeqPolicy::default()).unwrap();
        assert_eq!(s, b"ACGTNNT");
        let mut s = b"ACgtRy".to_vec();
        normalize_in_place(
            &mut s,
            SeqPolicy {
                keep_softmask: true,
            },
        )
        .unwrap();
        assert_eq!(s, b"ACgtNn");
        let mut s = b"ACX".to_vec();
        assert_eq!(normalize_in_place(&mut s, SeqPolicy::default()), Err(2));
        let mut s = b"AC-".to_vec();
        let e = normalize_record("chr1", &mut s, SeqPolicy::default()).unwrap_err();
        assert!(e.to_string().contains("chr1") && e.to_string().contains("offset 2"));
    }

    #[test]
    fn gc_ignores_n() {
        assert!((gc_fraction(b"GCNNAT") - 0.5).abs() < 1e-12);
        assert_eq!(gc_fraction(b"NNN"), 0.0);
    }
}
