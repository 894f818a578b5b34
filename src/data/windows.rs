//! Fixed-length windows from genome sequences for language-model pretraining.
//!
//! [`Genome::load`] reads FASTA files once (streamed; plain, gzip or BGZF), splitting records
//! into training sequences and the held-out sequences named by `--holdout`. Each record is
//! held in memory once; a window is a slice of it, never a re-read of the file.
//!
//! Training windows ([`Sampler::sample`]) are drawn from a caller-seeded RNG: a sequence is
//! picked with probability proportional to its number of window starts, then a start uniformly
//! (every start is equally likely, so a random shift of up to a whole window is built in);
//! `max_shift` instead snaps starts to a grid of `len` bases and moves them by a uniform shift
//! in `-max_shift..=max_shift`. Windows whose N fraction exceeds the cap are redrawn, and a
//! window is reverse-complemented with probability 0.5 when RC augmentation is on.
//!
//! Held-out windows ([`Genome::holdout_tiles`]) tile each held-out sequence from its start
//! with non-overlapping windows, in the order given by `--holdout`; the last partial window is
//! dropped; no augmentation and no N cap (N positions are simply not scored).

use std::collections::BTreeMap;

use rand::Rng;

use crate::error::{Error, Result};
use crate::io::fasta::Reader;
use crate::seq::{self, SeqPolicy};

/// What to do with lower-case (soft-masked, usually repeat) bases.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum SoftMask {
    /// Upper-case them and use them like any base (default).
    #[default]
    Keep,
    /// Turn them into N: they count toward the N cap and are never prediction targets.
    N,
}

/// One named sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedSeq {
    /// Record name.
    pub name: String,
    /// Upper-case bases (A C G T N).
    pub seq: Vec<u8>,
}

/// Training and held-out sequences of one or more genome FASTA files.
#[derive(Debug, Clone, Default)]
pub struct Genome {
    /// Sequences windows are sampled from.
    pub train: Vec<NamedSeq>,
    /// Held-out sequences, in `--holdout` order.
    pub holdout: Vec<NamedSeq>,
}

/// Fraction of N (non-ACGT) bytes in `w` (1 for an empty slice).
pub fn n_fraction(w: &[u8]) -> f64 {
    if w.is_empty() {
        return 1.0;
    }
    let n = w
        .iter()
        .filter(|&&b| seq::BASE_CODE[b as usize] > 3)
        .count();
    n as f64 / w.len() as f64
}

impl Genome {
    /// Read `paths`; records named in `holdout` are held out (each must exist exactly once).
    pub fn load(paths: &[String], holdout: &[String], softmask: SoftMask) -> Result<Genome> {
        let wanted: BTreeMap<&str, usize> = holdout
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        let mut held: Vec<Option<NamedSeq>> = vec![None; holdout.len()];
        let mut train = Vec::new();
        let policy = SeqPolicy {
            keep_softmask: softmask == SoftMask::N,
        };
        for path in paths {
            let mut reader = Reader::open(path, policy)?;
            while let Some(rec) = reader.next_record()? {
                let mut s = rec.seq;
                for b in s.iter_mut() {
                    if b.is_ascii_lowercase() || seq::BASE_CODE[*b as usize] > 3 {
                        *b = b'N';
                    }
                }
                let ns = NamedSeq {
                    name: rec.name,
                    seq: s,
                };
                match wanted.get(ns.name.as_str()) {
                    Some(&i) => {
                        if held[i].is_some() {
                            return Err(Error::input(format!(
                                "{path}: held-out record '{}' appears twice",
                                ns.name
                            )));
                        }
                        held[i] = Some(ns);
                    }
                    None => train.push(ns),
                }
            }
        }
        let mut out = Vec::with_capacity(held.len());
        for (h, name) in held.into_iter().zip(holdout) {
            match h {
                Some(s) => out.push(s),
                None => {
                    let known: Vec<&str> = train.iter().take(12).map(|s| s.name.as_str()).collect();
                    return Err(Error::input(format!(
                        "--holdout '{name}': no such record in {} (records: {})",
                        paths.join(", "),
                        known.join(", ")
                    )));
                }
            }
        }
        if train.is_empty() {
            return Err(Error::input(format!(
                "no training sequences in {}: every record is held out",
                paths.join(", ")
            )));
        }
        Ok(Genome {
            train,
            holdout: out,
        })
    }

    /// Bases of the training sequences.
    pub fn train_bases(&self) -> u64 {
        self.train.iter().map(|s| s.seq.len() as u64).sum()
    }

    /// Bases of the held-out sequences.
    pub fn holdout_bases(&self) -> u64 {
        self.holdout.iter().map(|s| s.seq.len() as u64).sum()
    }

    /// Non-overlapping windows of `len` bases tiling each held-out sequence from its start.
    pub fn holdout_tiles(&self, len: usize) -> Vec<&[u8]> {
        let mut out = Vec::new();
        if len == 0 {
            return out;
        }
        for s in &self.holdout {
            out.extend(s.seq.chunks_exact(len));
        }
        out
    }

    /// A sampler of training windows of `len` bases.
    pub fn sampler(&self, opts: WindowOptions) -> Result<Sampler<'_>> {
        Sampler::new(&self.train, opts)
    }
}

/// Settings of the training-window sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowOptions {
    /// Window length in bases.
    pub len: usize,
    /// Redraw windows with a larger fraction of N (0..=1).
    pub max_n_frac: f64,
    /// Reverse-complement windows with probability 0.5.
    pub rc: bool,
    /// `None`: uniform starts; `Some(s)`: grid starts shifted by up to `s` bases either way.
    pub max_shift: Option<usize>,
}

/// Draws training windows (see the module documentation).
pub struct Sampler<'a> {
    seqs: Vec<&'a [u8]>,
    /// Cumulative counts of window starts over `seqs`.
    cum: Vec<u64>,
    opts: WindowOptions,
}

/// Most redraws of a window before giving up on the N cap.
pub const MAX_TRIES: usize = 10_000;

impl<'a> Sampler<'a> {
    /// A sampler over `train`; sequences shorter than the window are skipped.
    pub fn new(train: &'a [NamedSeq], opts: WindowOptions) -> Result<Self> {
        if opts.len == 0 {
            return Err(Error::input("window length must be at least 1 base"));
        }
        if !(0.0..=1.0).contains(&opts.max_n_frac) {
            return Err(Error::input(format!(
                "--max-n-frac must be in [0, 1], got {}",
                opts.max_n_frac
            )));
        }
        let mut seqs = Vec::new();
        let mut cum = Vec::new();
        let mut total = 0u64;
        for s in train {
            if s.seq.len() >= opts.len {
                total += (s.seq.len() - opts.len + 1) as u64;
                seqs.push(s.seq.as_slice());
                cum.push(total);
            }
        }
        if seqs.is_empty() {
            return Err(Error::input(format!(
                "no training sequence is as long as one window ({} bases)",
                opts.len
            )));
        }
        Ok(Sampler { seqs, cum, opts })
    }

    /// The window settings.
    pub fn options(&self) -> &WindowOptions {
        &self.opts
    }

    /// (sequence index, start) of a window start drawn before the N check.
    fn draw_start<R: Rng>(&self, rng: &mut R) -> (usize, usize) {
        let total = *self.cum.last().expect("non-empty");
        let r = rng.random_range(0..total);
        let i = self.cum.partition_point(|&c| c <= r);
        let before = if i == 0 { 0 } else { self.cum[i - 1] };
        let len = self.opts.len;
        let last = self.seqs[i].len() - len;
        let start = (r - before) as usize;
        match self.opts.max_shift {
            None => (i, start),
            Some(s) => {
                let grid = (start / len) * len;
                let shift = rng.random_range(0..=2 * s as i64) - s as i64;
                (i, (grid as i64 + shift).clamp(0, last as i64) as usize)
            }
        }
    }

    /// One training window (bases, possibly reverse-complemented) within the N cap.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Result<Vec<u8>> {
        let len = self.opts.len;
        for _ in 0..MAX_TRIES {
            let (i, start) = self.draw_start(rng);
            let w = &self.seqs[i][start..start + len];
            let rc = self.opts.rc && rng.random_bool(0.5);
            if n_fraction(w) > self.opts.max_n_frac {
                continue;
            }
            return Ok(if rc { seq::revcomp(w) } else { w.to_vec() });
        }
        Err(Error::input(format!(
            "no window of {len} bases with at most {:.0}% N found in {MAX_TRIES} draws; \
             raise --max-n-frac or check the genome",
            self.opts.max_n_frac * 100.0
        )))
    }
}
