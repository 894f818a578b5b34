//! Sequence signals for the gene decoder, fitted on the training region's label tracks.
//!
//! The network's per-base probabilities are blurred at exon boundaries and learn codon
//! periodicity slowly from a small genome. Classic gene finders (GeneMark, Augustus) get both
//! from two cheap models that [`crate::infer::decode`] can add to its emissions and
//! transitions:
//!
//! * **Content**: an inhomogeneous Markov chain of order `k` per codon position (three CDS
//!   models), one for introns and one for everything else (intergenic, UTRs, non-coding exons):
//!   `ln P(base | previous k bases)`, with add-one smoothing.
//! * **Sites**: position weight matrices (log-odds against the training base composition)
//!   of donors (3 exon bases, `GT`, 4 intron bases), acceptors (18 intron bases, `AG`, 3 exon
//!   bases) and start codons (6 bases, `ATG`, 3 bases). The fixed `GT`/`AG`/`ATG` columns
//!   score 0.
//!
//! Fitting reads each track 5′→3′ in its gene's orientation (the minus track on the reverse
//! complement). Codon positions count CDS bases from the first CDS base after a non-CDS exon
//! base or intergenic base, carried across introns.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::labels;

/// Content slots: codon positions 0, 1, 2, intron, other.
pub const CONTENT_SLOTS: usize = 5;
/// Content slot of introns.
pub const SLOT_INTRON: usize = 3;
/// Content slot of intergenic, UTR and non-coding exon bases.
pub const SLOT_OTHER: usize = 4;

/// Donor window: exon bases before the `GT`.
pub const DONOR_BEFORE: usize = 3;
/// Donor window length (3 exon bases, `GT`, 4 intron bases).
pub const DONOR_LEN: usize = 9;
/// Acceptor window: intron bases before the exon, `AG` included.
pub const ACCEPTOR_BEFORE: usize = 20;
/// Acceptor window length (18 intron bases, `AG`, 3 exon bases).
pub const ACCEPTOR_LEN: usize = 23;

/// Start window: bases before the `ATG`.
pub const START_BEFORE: usize = 6;
/// Start window length (6 bases, `ATG`, 3 bases).
pub const START_LEN: usize = 12;

/// Upstream (ribosome-binding) window: it ends this many bases before the start codon.
pub const UPSTREAM_NEAR: usize = 4;
/// Upstream window: it begins this many bases before the start codon.
pub const UPSTREAM_FAR: usize = 20;
/// Word length of the upstream model.
pub const UPSTREAM_K: usize = 4;

/// Fitted sequence signals (`signals.json` of a segment run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// Markov order `k` of the content models.
    pub order: usize,
    /// `ln P(base | context)`, index `(slot · 4^k + context) · 4 + base`.
    pub content: Vec<f32>,
    /// Donor log-odds, `DONOR_LEN × 4`, row-major.
    pub donor: Vec<f32>,
    /// Acceptor log-odds, `ACCEPTOR_LEN × 4`, row-major.
    pub acceptor: Vec<f32>,
    /// Start-codon log-odds, `START_LEN × 4`, row-major.
    pub start: Vec<f32>,
    /// Training bases counted per content slot.
    pub bases: [u64; CONTENT_SLOTS],
    /// Donor, acceptor and start sites counted.
    pub sites: [u64; 3],
    /// Shortest intron the decoder should allow: the [`MIN_INTRON_QUANTILE`] quantile of the
    /// training introns' lengths (`None` with fewer than [`MIN_INTRONS_FOR_LENGTH`] introns, and
    /// in files written before it).
    #[serde(default)]
    pub min_intron: Option<usize>,
    /// Complete training introns measured for `min_intron`.
    #[serde(default)]
    pub introns: u64,
    /// Shortest exon the decoder should allow: the [`MIN_INTRON_QUANTILE`] quantile of the
    /// complete training exons' lengths (`None` with fewer than [`MIN_INTRONS_FOR_LENGTH`]
    /// exons, and in files written before it).
    #[serde(default)]
    pub min_exon: Option<usize>,
    /// Complete training exons measured for `min_exon`.
    #[serde(default)]
    pub exons: u64,
    /// Ribosome-binding model: `ln P(word | upstream of a start) / P(word)` for each
    /// [`UPSTREAM_K`]-mer (index base-4), from the words of the `UPSTREAM_FAR`..`UPSTREAM_NEAR`
    /// window before every training CDS start; empty in files written before it.
    #[serde(default)]
    pub upstream: Vec<f32>,
    /// Start-codon model: `ln P(codon | CDS start) / P(codon)` for each codon (index base-4),
    /// from the first codon of every training CDS; empty in files written before it.
    #[serde(default)]
    pub start_codons: Vec<f32>,
}

/// Quantile of the training intron lengths taken as the decoder's minimum intron length.
pub const MIN_INTRON_QUANTILE: f64 = 0.005;
/// Complete training introns needed before a minimum intron length is fitted.
pub const MIN_INTRONS_FOR_LENGTH: usize = 20;

/// Base code: A 0, C 1, G 2, T 3, anything else 4.
pub fn code(b: u8) -> u8 {
    match b {
        b'A' | b'a' => 0,
        b'C' | b'c' => 1,
        b'G' | b'g' => 2,
        b'T' | b't' | b'U' | b'u' => 3,
        _ => 4,
    }
}

/// Counts gathered before normalising.
struct Counts {
    order: usize,
    content: Vec<u64>,
    donor: Vec<u64>,
    acceptor: Vec<u64>,
    start: Vec<u64>,
    background: [u64; 4],
    upstream: Vec<u64>,
    words: Vec<u64>,
    start_codons: Vec<u64>,
    sites: [u64; 3],
    /// Lengths of complete introns (exonic on both sides).
    intron_lengths: Vec<usize>,
    /// Lengths of complete exons (runs of exonic bases with a non-exonic base on both sides).
    exon_lengths: Vec<usize>,
}

fn exonic(c: u8) -> bool {
    c != labels::INTRON && c != labels::INTERGENIC
}

impl Counts {
    fn new(order: usize) -> Self {
        let ctx = 1usize << (2 * order);
        Counts {
            order,
            content: vec![0; CONTENT_SLOTS * ctx * 4],
            donor: vec![0; DONOR_LEN * 4],
            acceptor: vec![0; ACCEPTOR_LEN * 4],
            start: vec![0; START_LEN * 4],
            background: [0; 4],
            upstream: vec![0; 1 << (2 * UPSTREAM_K)],
            words: vec![0; 1 << (2 * UPSTREAM_K)],
            start_codons: vec![0; 64],
            sites: [0; 3],
            intron_lengths: Vec::new(),
            exon_lengths: Vec::new(),
        }
    }

    /// Count one oriented sequence (codes) with its oriented track.
    fn add(&mut self, b: &[u8], track: &[u8]) {
        let k = self.order;
        let ctx_n = 1usize << (2 * k);
        let mut pos = 0usize;
        let mut last = labels::INTERGENIC;
        // Start of the current intron run, when it began right after an exonic base.
        let mut intron_from: Option<usize> = None;
        // Start of the current exon run, when it began right after a non-exonic base.
        let mut exon_from: Option<usize> = None;
        for i in 0..b.len() {
            // Framed tracks count as their classes (codon positions are counted here).
            let c = labels::coarse(track[i]);
            if i > 0 {
                let p = labels::coarse(track[i - 1]);
                if c == labels::INTRON && p != labels::INTRON {
                    intron_from = exonic(p).then_some(i);
                } else if c != labels::INTRON && p == labels::INTRON {
                    if let Some(from) = intron_from.filter(|_| exonic(c)) {
                        self.intron_lengths.push(i - from);
                    }
                    intron_from = None;
                }
                if exonic(c) && !exonic(p) {
                    exon_from = Some(i);
                } else if !exonic(c) && exonic(p) {
                    if let Some(from) = exon_from.take() {
                        self.exon_lengths.push(i - from);
                    }
                }
            }
            if let Some(w) = context(b, i + 1, UPSTREAM_K) {
                self.words[w] += 1;
            }
            let slot = if c == labels::CDS {
                if last != labels::CDS {
                    pos = 0;
                    if let Some(c3) = window(b, i, 0, 3) {
                        self.start_codons[word_index(c3)] += 1;
                    }
                    if let Some(up) = window(b, i, UPSTREAM_FAR, UPSTREAM_FAR - UPSTREAM_NEAR) {
                        for w in up.windows(UPSTREAM_K) {
                            self.upstream[word_index(w)] += 1;
                        }
                    }
                    if b.get(i..i + 3) == Some(&[0, 3, 2]) {
                        if let Some(w) = window(b, i, START_BEFORE, START_LEN) {
                            self.sites[2] += 1;
                            for (j, &x) in w.iter().enumerate() {
                                self.start[j * 4 + usize::from(x)] += 1;
                            }
                        }
                    }
                }
                let s = pos % 3;
                pos += 1;
                s
            } else if c == labels::INTRON {
                SLOT_INTRON
            } else {
                SLOT_OTHER
            };
            if c != labels::INTRON {
                last = c;
            }
            if b[i] < 4 {
                self.background[usize::from(b[i])] += 1;
            }
            if let Some(ctx) = context(b, i, k) {
                if b[i] < 4 {
                    self.content[(slot * ctx_n + ctx) * 4 + usize::from(b[i])] += 1;
                }
            }
            if i > 0 {
                let p = labels::coarse(track[i - 1]);
                // Donor: exon base at i-1, intron from i, GT at i.
                if exonic(p) && c == labels::INTRON && b[i] == 2 && b.get(i + 1) == Some(&3) {
                    if let Some(w) = window(b, i, DONOR_BEFORE, DONOR_LEN) {
                        self.sites[0] += 1;
                        for (j, &x) in w.iter().enumerate() {
                            self.donor[j * 4 + usize::from(x)] += 1;
                        }
                    }
                }
                // Acceptor: intron ends at i-1 with AG, exon from i.
                if p == labels::INTRON && exonic(c) && i >= 2 && b[i - 2] == 0 && b[i - 1] == 2 {
                    if let Some(w) = window(b, i, ACCEPTOR_BEFORE, ACCEPTOR_LEN) {
                        self.sites[1] += 1;
                        for (j, &x) in w.iter().enumerate() {
                            self.acceptor[j * 4 + usize::from(x)] += 1;
                        }
                    }
                }
            }
        }
    }

    fn finish(mut self) -> Signals {
        self.intron_lengths.sort_unstable();
        let n = self.intron_lengths.len();
        let min_intron = (n >= MIN_INTRONS_FOR_LENGTH).then(|| {
            let at = ((n - 1) as f64 * MIN_INTRON_QUANTILE).floor() as usize;
            self.intron_lengths[at]
        });
        self.exon_lengths.sort_unstable();
        let ne = self.exon_lengths.len();
        let min_exon = (ne >= MIN_INTRONS_FOR_LENGTH).then(|| {
            let at = ((ne - 1) as f64 * MIN_INTRON_QUANTILE).floor() as usize;
            self.exon_lengths[at]
        });
        let ctx_n = 1usize << (2 * self.order);
        let mut content = vec![0f32; self.content.len()];
        let mut bases = [0u64; CONTENT_SLOTS];
        for (slot, nb) in bases.iter_mut().enumerate() {
            for ctx in 0..ctx_n {
                let at = (slot * ctx_n + ctx) * 4;
                let row = &self.content[at..at + 4];
                let sum: u64 = row.iter().sum();
                *nb += sum;
                for x in 0..4 {
                    content[at + x] = ((row[x] as f64 + 1.0) / (sum as f64 + 4.0)).ln() as f32;
                }
            }
        }
        let bg_sum: u64 = self.background.iter().sum();
        let bg: Vec<f64> = self
            .background
            .iter()
            .map(|&c| (c as f64 + 1.0) / (bg_sum as f64 + 4.0))
            .collect();
        let pwm = |counts: &[u64], fixed: &[usize]| -> Vec<f32> {
            let mut out = vec![0f32; counts.len()];
            for j in 0..counts.len() / 4 {
                if fixed.contains(&j) {
                    continue;
                }
                let row = &counts[j * 4..j * 4 + 4];
                let sum: u64 = row.iter().sum();
                for x in 0..4 {
                    let p = (row[x] as f64 + 1.0) / (sum as f64 + 4.0);
                    out[j * 4 + x] = (p / bg[x]).ln() as f32;
                }
            }
            out
        };
        Signals {
            order: self.order,
            content,
            donor: pwm(&self.donor, &[DONOR_BEFORE, DONOR_BEFORE + 1]),
            acceptor: pwm(&self.acceptor, &[ACCEPTOR_BEFORE - 2, ACCEPTOR_BEFORE - 1]),
            start: pwm(
                &self.start,
                &[START_BEFORE, START_BEFORE + 1, START_BEFORE + 2],
            ),
            bases,
            sites: self.sites,
            min_intron,
            introns: n as u64,
            min_exon,
            exons: ne as u64,
            upstream: word_log_odds(&self.upstream, &self.words),
            // Codon background: the words' counts summed over their last base.
            start_codons: word_log_odds(
                &self.start_codons,
                &self
                    .words
                    .chunks(1 << (2 * (UPSTREAM_K - 3)))
                    .map(|c| c.iter().sum())
                    .collect::<Vec<u64>>(),
            ),
        }
    }
}

/// Base-4 index of a word of codes (first base most significant, as [`context`]).
#[inline]
fn word_index(w: &[u8]) -> usize {
    w.iter().fold(0usize, |a, &x| (a << 2) | usize::from(x))
}

/// `ln` of a word's add-one frequency in `counts` over its add-one frequency in `background`
/// (empty when `counts` holds no word).
fn word_log_odds(counts: &[u64], background: &[u64]) -> Vec<f32> {
    let (n, m) = (counts.iter().sum::<u64>(), background.iter().sum::<u64>());
    if n == 0 {
        return Vec::new();
    }
    let k = counts.len() as f64;
    counts
        .iter()
        .zip(background)
        .map(|(&c, &g)| {
            let p = (c as f64 + 1.0) / (n as f64 + k);
            let q = (g as f64 + 1.0) / (m as f64 + k);
            (p / q).ln() as f32
        })
        .collect()
}

/// Context index of the `k` bases before `i`, or `None` if one is not ACGT or `i < k`.
#[inline]
fn context(b: &[u8], i: usize, k: usize) -> Option<usize> {
    if i < k {
        return None;
    }
    let mut ctx = 0usize;
    for &x in &b[i - k..i] {
        if x > 3 {
            return None;
        }
        ctx = (ctx << 2) | usize::from(x);
    }
    Some(ctx)
}

/// The `len` codes starting `before` bases before `i`, if all are ACGT and inside `b`.
#[inline]
fn window(b: &[u8], i: usize, before: usize, len: usize) -> Option<&[u8]> {
    let s = i.checked_sub(before)?;
    let w = b.get(s..s + len)?;
    w.iter().all(|&x| x < 4).then_some(w)
}

/// One oriented training piece: bases (forward letters) and the track in the same orientation.
pub struct Piece<'a> {
    /// Bases, 5′→3′ of the track's strand.
    pub seq: std::borrow::Cow<'a, [u8]>,
    /// Per-base classes, same orientation.
    pub track: std::borrow::Cow<'a, [u8]>,
}

impl Signals {
    /// Fit content models of order `order` (0 to 8) and splice matrices on `pieces`.
    pub fn fit<'a>(order: usize, pieces: impl IntoIterator<Item = Piece<'a>>) -> Result<Self> {
        if order > 8 {
            return Err(Error::input(format!(
                "signals: Markov order must be at most 8, got {order}"
            )));
        }
        let mut c = Counts::new(order);
        for p in pieces {
            if p.seq.len() != p.track.len() {
                return Err(Error::input(format!(
                    "signals: a piece has {} bases but {} labels",
                    p.seq.len(),
                    p.track.len()
                )));
            }
            let codes: Vec<u8> = p.seq.iter().map(|&x| code(x)).collect();
            c.add(&codes, &p.track);
        }
        Ok(c.finish())
    }

    /// Check sizes after loading from a file.
    pub fn validate(&self) -> Result<()> {
        let ctx = 1usize << (2 * self.order.min(8));
        if self.order > 8
            || self.content.len() != CONTENT_SLOTS * ctx * 4
            || self.donor.len() != DONOR_LEN * 4
            || self.acceptor.len() != ACCEPTOR_LEN * 4
            || self.start.len() != START_LEN * 4
            || !(self.upstream.is_empty() || self.upstream.len() == 1 << (2 * UPSTREAM_K))
            || !(self.start_codons.is_empty() || self.start_codons.len() == 64)
        {
            return Err(Error::input(
                "signals: table sizes do not match the Markov order and window lengths",
            ));
        }
        Ok(())
    }

    /// Content log-probabilities of base `i` of `b` (codes) for each slot; `None` when the base
    /// or its context is not ACGT.
    #[inline]
    pub fn content_at(&self, b: &[u8], i: usize) -> Option<[f32; CONTENT_SLOTS]> {
        let x = *b.get(i)?;
        if x > 3 {
            return None;
        }
        let ctx = context(b, i, self.order)?;
        let ctx_n = 1usize << (2 * self.order);
        let mut out = [0f32; CONTENT_SLOTS];
        for (s, o) in out.iter_mut().enumerate() {
            *o = self.content[(s * ctx_n + ctx) * 4 + usize::from(x)];
        }
        Some(out)
    }

    /// Donor log-odds for an intron whose first base (the `G` of `GT`) is `i`; 0 near the ends
    /// or next to non-ACGT bases.
    #[inline]
    pub fn donor_at(&self, b: &[u8], i: usize) -> f32 {
        pwm_score(&self.donor, b, i, DONOR_BEFORE, DONOR_LEN)
    }

    /// Start-context log-odds for a start codon whose `A` is at `i`.
    #[inline]
    pub fn start_at(&self, b: &[u8], i: usize) -> f32 {
        pwm_score(&self.start, b, i, START_BEFORE, START_LEN)
    }

    /// Ribosome-binding log-likelihood ratio before a start codon whose first base is `i`:
    /// `ln` of the mean of the upstream model's word odds over the window (one word from the
    /// model at an unknown offset, the rest background); 0 without the model, near the ends
    /// or next to non-ACGT bases.
    #[inline]
    pub fn upstream_at(&self, b: &[u8], i: usize) -> f32 {
        if self.upstream.is_empty() {
            return 0.0;
        }
        let Some(up) = window(b, i, UPSTREAM_FAR, UPSTREAM_FAR - UPSTREAM_NEAR) else {
            return 0.0;
        };
        let odds: f64 = up
            .windows(UPSTREAM_K)
            .map(|w| f64::from(self.upstream[word_index(w)]).exp())
            .sum();
        (odds / (up.len() - UPSTREAM_K + 1) as f64).ln() as f32
    }

    /// Start-codon log-odds of the codon at `i` (how often training CDS open with it, against
    /// its background frequency); 0 without the model or next to non-ACGT bases.
    #[inline]
    pub fn start_codon_at(&self, b: &[u8], i: usize) -> f32 {
        match window(b, i, 0, 3) {
            Some(c) if !self.start_codons.is_empty() => self.start_codons[word_index(c)],
            _ => 0.0,
        }
    }

    /// Acceptor log-odds for an exon starting at `i` after an intron ending in `AG`.
    #[inline]
    pub fn acceptor_at(&self, b: &[u8], i: usize) -> f32 {
        pwm_score(&self.acceptor, b, i, ACCEPTOR_BEFORE, ACCEPTOR_LEN)
    }
}

#[inline]
fn pwm_score(m: &[f32], b: &[u8], i: usize, before: usize, len: usize) -> f32 {
    match window(b, i, before, len) {
        Some(w) => w
            .iter()
            .enumerate()
            .map(|(j, &x)| m[j * 4 + usize::from(x)])
            .sum(),
        None => 0.0,
    }
}

/// Fit signals on `regions` `(record, start, end)` of labelled records, both strands (the minus
/// track on the reverse complement).
pub fn fit_regions(
    records: &[crate::train::segment::LabeledRecord],
    regions: &[(usize, usize, usize)],
    order: usize,
) -> Result<Signals> {
    use std::borrow::Cow;
    let pieces = regions.iter().flat_map(|&(r, s, e)| {
        let rec = &records[r];
        let plus = Piece {
            seq: Cow::Borrowed(&rec.seq[s..e]),
            track: Cow::Borrowed(&rec.tracks.plus[s..e]),
        };
        let minus = Piece {
            seq: Cow::Owned(crate::seq::revcomp(&rec.seq[s..e])),
            track: Cow::Owned(rec.tracks.minus[s..e].iter().rev().copied().collect()),
        };
        [plus, minus]
    });
    Signals::fit(order, pieces)
}

/// Read `signals.json` of a run directory, if it has one.
pub fn read_run_signals(dir: &std::path::Path) -> Result<Option<Signals>> {
    let p = dir.join("signals.json");
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(p.display(), e))?;
    let s: Signals =
        serde_json::from_str(&text).map_err(|e| Error::input(format!("{}: {e}", p.display())))?;
    s.validate()
        .map_err(|e| Error::input(format!("{}: {e}", p.display())))?;
    Ok(Some(s))
}

/// Write `signals.json` into a run directory (atomically).
pub fn write_run_signals(dir: &std::path::Path, s: &Signals) -> Result<()> {
    let text = serde_json::to_string(s).map_err(|e| Error::Internal(e.to_string()))?;
    crate::train::run::write_text(dir, "signals.json", &text)
}
