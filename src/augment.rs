//! Sequence augmentation that transforms labels with the sequence: reverse complement, shift,
//! point mutations. All functions are pure; randomness comes from a caller-seeded RNG.

use rand::Rng;

use crate::seq;

/// Per-base labels for both strands, indexed in the sequence's forward coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StrandTracks {
    /// Labels of features on the plus strand.
    pub plus: Vec<u8>,
    /// Labels of features on the minus strand.
    pub minus: Vec<u8>,
}

/// Reverse complement a sequence and its per-base labels: tracks are reversed and strands swapped.
pub fn reverse_complement(sequence: &[u8], tracks: &StrandTracks) -> (Vec<u8>, StrandTracks) {
    let rev = |t: &[u8]| t.iter().rev().copied().collect::<Vec<u8>>();
    (
        seq::revcomp(sequence),
        StrandTracks {
            plus: rev(&tracks.minus),
            minus: rev(&tracks.plus),
        },
    )
}

/// Take a window of `len` bases starting at `start + shift` from a longer context, with labels.
///
/// This is gReLU's pair shift: the window moves over the source and the labels move with it, so
/// base `i` of the result is always labelled by the label of the same source base. Returns `None`
/// if the shifted window leaves the source.
pub fn shift_window(
    sequence: &[u8],
    tracks: &StrandTracks,
    start: usize,
    len: usize,
    shift: i64,
) -> Option<(Vec<u8>, StrandTracks)> {
    let s = start as i64 + shift;
    if s < 0 || s as usize + len > sequence.len() {
        return None;
    }
    let s = s as usize;
    let cut = |t: &[u8]| t.get(s..s + len).map(<[u8]>::to_vec).unwrap_or_default();
    Some((
        sequence[s..s + len].to_vec(),
        StrandTracks {
            plus: cut(&tracks.plus),
            minus: cut(&tracks.minus),
        },
    ))
}

/// Draw a shift uniformly from `-max..=max` and clamp it so the window stays inside the source.
pub fn random_shift<R: Rng>(
    rng: &mut R,
    max: usize,
    start: usize,
    len: usize,
    total: usize,
) -> i64 {
    if max == 0 {
        return 0;
    }
    let lo = -(max.min(start) as i64);
    let hi = max.min(total.saturating_sub(start + len)) as i64;
    if lo >= hi {
        return lo.max(0).min(hi);
    }
    rng.random_range(lo..=hi)
}

/// Mutate each A/C/G/T base with probability `rate` to one of the three other bases.
///
/// N and other bases are left alone; case is kept. Labels do not change.
pub fn point_mutations<R: Rng>(rng: &mut R, sequence: &[u8], rate: f64) -> Vec<u8> {
    const BASES: &[u8; 4] = b"ACGT";
    sequence
        .iter()
        .map(|&b| {
            let code = seq::BASE_CODE[b as usize];
            if code < 4 && rate > 0.0 && rng.random_bool(rate.clamp(0.0, 1.0)) {
                let other = BASES[((code + rng.random_range(1..4u8)) % 4) as usize];
                if b.is_ascii_lowercase() {
                    other.to_ascii_lowercase()
                } else {
                    other
                }
            } else {
                b
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn dna() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop::sample::select(b"ACGTNacgtn".to_vec()), 0..200)
    }

    fn tracks_for(len: usize, seed: u64) -> StrandTracks {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        StrandTracks {
            plus: (0..len).map(|_| rng.random_range(0..6)).collect(),
            minus: (0..len).map(|_| rng.random_range(0..6)).collect(),
        }
    }

    proptest! {
        #[test]
        fn rc_twice_is_identity(s in dna(), seed in 0u64..1000) {
            let t = tracks_for(s.len(), seed);
            let (s1, t1) = reverse_complement(&s, &t);
            let (s2, t2) = reverse_complement(&s1, &t1);
            prop_assert_eq!(s2, s);
            prop_assert_eq!(t2, t);
        }

        #[test]
        fn rc_moves_labels_with_bases(s in dna(), seed in 0u64..1000) {
            let t = tracks_for(s.len(), seed);
            let (rc, rt) = reverse_complement(&s, &t);
            let n = s.len();
            for i in 0..n {
                prop_assert_eq!(rc[n - 1 - i], seq::complement(s[i]));
                prop_assert_eq!(rt.minus[n - 1 - i], t.plus[i]);
                prop_assert_eq!(rt.plus[n - 1 - i], t.minus[i]);
            }
        }

        #[test]
        fn shift_keeps_labels_aligned(s in dna(), seed in 0u64..1000, shift in -20i64..20) {
            // Label each base by its own position so alignment is checkable.
            let pos: Vec<u8> = (0..s.len()).map(|i| (i % 251) as u8).collect();
            let t = StrandTracks { plus: pos.clone(), minus: pos };
            let len = s.len() / 2;
            let start = s.len() / 4;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let sh = random_shift(&mut rng, shift.unsigned_abs() as usize, start, len, s.len());
            prop_assert!(sh.unsigned_abs() as i64 <= shift.abs());
            let (w, wt) = shift_window(&s, &t, start, len, sh).unwrap();
            let s0 = (start as i64 + sh) as usize;
            prop_assert_eq!(&w[..], &s[s0..s0 + len]);
            for i in 0..len {
                prop_assert_eq!(wt.plus[i] as usize, (s0 + i) % 251);
            }
        }

        #[test]
        fn mutation_rate_zero_is_identity_and_keeps_n(s in dna(), seed in 0u64..1000) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            prop_assert_eq!(point_mutations(&mut rng, &s, 0.0), s.clone());
            let m = point_mutations(&mut rng, &s, 1.0);
            for (a, b) in s.iter().zip(&m) {
                if seq::BASE_CODE[*a as usize] == 4 { prop_assert_eq!(a, b); } else { prop_assert_ne!(a, b); }
                prop_assert_eq!(a.is_ascii_lowercase(), b.is_ascii_lowercase());
            }
        }
    }

    #[test]
    fn mutations_are_seeded_and_near_rate() {
        let s: Vec<u8> = b"ACGT".iter().cycle().take(100_000).copied().collect();
        let a = point_mutations(&mut ChaCha8Rng::seed_from_u64(7), &s, 0.1);
        let b = point_mutations(&mut ChaCha8Rng::seed_from_u64(7), &s, 0.1);
        assert_eq!(a, b);
        let changed = a.iter().zip(&s).filter(|(x, y)| x != y).count();
        assert!((9_000..11_000).contains(&changed), "{changed}");
    }

    #[test]
    fn shift_outside_is_none() {
        let t = StrandTracks {
            plus: vec![0; 10],
            minus: vec![0; 10],
        };
        assert!(shift_window(b"ACGTACGTAC", &t, 2, 5, -3).is_none());
        assert!(shift_window(b"ACGTACGTAC", &t, 2, 5, 4).is_none());
        assert!(shift_window(b"ACGTACGTAC", &t, 2, 5, 3).is_some());
    }
}
