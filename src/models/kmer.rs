//! A k-mer spectrum backbone: each sequence's counts of every k-mer for k = 1..`k_max`, each
//! count z-scored under a uniform i.i.d. background, as one feature vector `(B, F, 1)`. With the
//! default head (flatten, no hidden layer) the model is a logistic regression on the spectrum (the
//! linear spectrum kernel), the classic k-mer baseline of promoter prediction.
//!
//! The features are fixed functions of the tokens: the backbone has no parameters and passes no
//! gradient to its input. It reads bases from the `char` tokenizer's ids; any other token (N,
//! `[UNK]`, padding) breaks the k-mers that span it.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Backbone, Ctx};
use crate::error::{Error, Result};
use crate::tokenize::{CharTokenizer, Tokenizer, N_SPECIAL, PAD};

/// Settings of the k-mer spectrum backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Longest k-mer counted (all of 1..=k_max are; 4 + 16 + ... + 4^k_max features).
    pub k_max: usize,
    /// Dropout on the features in training (a data-dependent L2 penalty for the linear head).
    pub dropout: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            k_max: 8,
            // Chosen on the CNNProm E. coli and Bacillus validation holdouts (0, 0.3, 0.5 tried).
            dropout: 0.5,
        }
    }
}

impl Config {
    /// Number of features: the sum of 4^k for k = 1..=k_max.
    pub fn features(&self) -> usize {
        (1..=self.k_max).map(|k| 1usize << (2 * k)).sum()
    }
}

/// The k-mer spectrum backbone.
pub struct KmerSpectrum {
    cfg: Config,
    dtype: DType,
    device: Device,
}

impl KmerSpectrum {
    /// Build for `vocab` token ids (must be the `char` tokenizer's); the builders only supply the
    /// dtype and device, as the backbone has no weights.
    pub fn new(cfg: &Config, vocab: usize, params: VarBuilder) -> Result<Self> {
        if !(0.0..1.0).contains(&cfg.dropout) {
            return Err(Error::input(format!(
                "kmer-lr: dropout must be in [0, 1), got {}",
                cfg.dropout
            )));
        }
        if !(1..=10).contains(&cfg.k_max) {
            return Err(Error::input(format!(
                "kmer-lr: k_max must be 1 to 10 (10 is already 1.4 M features), got {}",
                cfg.k_max
            )));
        }
        let char_vocab = CharTokenizer.vocab_size();
        if vocab != char_vocab {
            return Err(Error::input(format!(
                "kmer-lr reads bases from the char tokenizer (vocabulary {char_vocab}); this \
                 tokenizer has {vocab} ids (use --tokenizer char)"
            )));
        }
        Ok(KmerSpectrum {
            cfg: cfg.clone(),
            dtype: params.dtype(),
            device: params.device().clone(),
        })
    }
}

/// Z-scored k-mer spectrum of one sequence of `char` token ids, k = 1..=`k_max`, laid out by k,
/// then by k-mer code (A=0 C=1 G=2 T=3, first base most significant). Each count c of a k-mer
/// among the n = L - k + 1 windows becomes (c - n/4^k) / sqrt(n/4^k (1 - 1/4^k)), where L counts
/// every token but `[PAD]`; windows over a non-base token count for nothing.
pub fn spectrum(ids: &[u32], k_max: usize) -> Vec<f64> {
    let mut counts = Vec::with_capacity(k_max);
    for k in 1..=k_max {
        counts.push(vec![0u32; 1 << (2 * k)]);
    }
    let base = |id: u32| id.checked_sub(N_SPECIAL).filter(|&b| b < 4);
    for i in 0..ids.len() {
        let mut code = 0usize;
        for (k, c) in counts.iter_mut().enumerate() {
            let Some(b) = ids.get(i + k).copied().and_then(base) else {
                break;
            };
            code = code * 4 + b as usize;
            c[code] += 1;
        }
    }
    // `[PAD]` (padding of shorter sequences, or a shift's vacated end) is not sequence.
    let len = ids.iter().filter(|&&id| id != PAD).count();
    let mut out = Vec::with_capacity(counts.iter().map(Vec::len).sum());
    for (k, c) in counts.iter().enumerate() {
        let n = len.saturating_sub(k) as f64;
        let p = 1.0 / c.len() as f64;
        let mean = n * p;
        let sd = (n * p * (1.0 - p)).sqrt().max(1e-12);
        out.extend(c.iter().map(|&x| (x as f64 - mean) / sd));
    }
    out
}

impl Backbone for KmerSpectrum {
    fn forward(&self, ids: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let (b, _) = ids.dims2()?;
        let rows = ids.to_device(&Device::Cpu)?.to_vec2::<u32>()?;
        let f = self.cfg.features();
        let data: Vec<f64> = rows
            .par_iter()
            .flat_map_iter(|r| spectrum(r, self.cfg.k_max))
            .collect();
        let t = Tensor::from_vec(data, (b, f, 1), &Device::Cpu)?
            .to_dtype(self.dtype)?
            .to_device(&self.device)?;
        if ctx.train && self.cfg.dropout > 0.0 {
            return Ok(crate::ops::dropout(&t, self.cfg.dropout, ctx.rng)?);
        }
        Ok(t)
    }

    fn out_channels(&self) -> usize {
        self.cfg.features()
    }

    fn out_len(&self, _len: usize) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &[u8]) -> Vec<u32> {
        let mut v = Vec::new();
        crate::tokenize::char::encode_ids_into(s, &mut v);
        v
    }

    #[test]
    fn counts_by_hand() {
        // ACGTA: 1-mers A2 C1 G1 T1 over n = 5; 2-mers AC CG GT TA over n = 4.
        let z = spectrum(&ids(b"ACGTA"), 2);
        assert_eq!(z.len(), 4 + 16);
        let z1 = |c: f64| (c - 5.0 / 4.0) / (5.0f64 * 0.25 * 0.75).sqrt();
        assert!((z[0] - z1(2.0)).abs() < 1e-12);
        assert!((z[1] - z1(1.0)).abs() < 1e-12);
        let z2 = |c: f64| (c - 4.0 / 16.0) / (4.0f64 / 16.0 * 15.0 / 16.0).sqrt();
        // AC = 0*4+1, CG = 1*4+2, GT = 2*4+3, TA = 3*4+0.
        for (code, want) in [
            (1, 1.0),
            (6, 1.0),
            (11, 1.0),
            (12, 1.0),
            (0, 0.0),
            (15, 0.0),
        ] {
            assert!((z[4 + code] - z2(want)).abs() < 1e-12, "2-mer {code}");
        }
    }

    #[test]
    fn non_bases_break_kmers() {
        // ACNGT: A C G T once each; the 2-mers spanning N do not count, so only AC and GT.
        let z = spectrum(&ids(b"ACNGT"), 2);
        let n2: f64 = 4.0;
        let zero2 = -n2 / 16.0 / (n2 / 16.0 * 15.0 / 16.0).sqrt();
        let counted: Vec<usize> = (0..16).filter(|&c| z[4 + c] > zero2 + 1e-9).collect();
        assert_eq!(counted, vec![1, 11]);
        // Lower case is the same base.
        assert_eq!(spectrum(&ids(b"acgta"), 3), spectrum(&ids(b"ACGTA"), 3));
        // Padding is not sequence: a padded record has the spectrum of the record itself.
        let mut padded = ids(b"ACGTA");
        padded.extend([PAD; 4]);
        assert_eq!(spectrum(&padded, 3), spectrum(&ids(b"ACGTA"), 3));
    }

    #[test]
    fn features_and_errors() {
        assert_eq!(
            Config {
                k_max: 3,
                dropout: 0.0
            }
            .features(),
            4 + 16 + 64
        );
        let vm = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        assert!(KmerSpectrum::new(
            &Config {
                k_max: 3,
                dropout: 0.0
            },
            10,
            vb.clone()
        )
        .is_ok());
        let e = KmerSpectrum::new(
            &Config {
                k_max: 3,
                dropout: 0.0,
            },
            4101,
            vb.clone(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("char tokenizer"), "{e}");
        assert!(KmerSpectrum::new(
            &Config {
                k_max: 0,
                dropout: 0.0
            },
            10,
            vb
        )
        .is_err());
    }
}
