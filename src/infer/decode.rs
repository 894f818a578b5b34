//! Gene-model decoding: per-base class probabilities → gene models that obey gene grammar.
//!
//! # Model
//! Each strand is decoded on its own, 5′→3′ (the minus strand on the reverse complement, mapped
//! back to forward coordinates), by Viterbi over a 24-state gene-structure HMM:
//!
//! ```text
//! intergenic → [5′UTR (⇄ UTR intron)] → start ATG (3 states) → CDS codon positions 0,1,2
//!   (⇄ CDS introns in phase 0, 1, 2) → stop TAA/TAG/TGA (3 states) → [3′UTR (⇄ UTR intron)]
//!   → intergenic
//! ```
//!
//! * Emissions are `ln max(p, prob_floor)` of the per-base class the state stands for
//!   (intergenic states use intergenic + non-coding exon: non-coding genes are not decoded).
//! * The grammar is read from the sequence: a start codon is `ATG` (plus `GTG`, `TTG` when
//!   [`DecodeConfig::alt_starts`]), an intron starts with `GT` and ends with `AG`, a CDS ends with
//!   an in-frame stop and has no other in-frame stop. Codons split by an intron are tracked
//!   exactly: an intron after the first codon base remembers whether it was `T`; one after the
//!   second remembers `TA` / `TG` / other, so the codon finished after the intron is never a
//!   stop. Start and stop codons are not split by introns (their introns are rejected).
//! * Transition penalties (natural-log units): [`DecodeConfig::gene_penalty`] to open a gene,
//!   [`DecodeConfig::intron_penalty`] to open an intron (CDS or UTR); all other transitions free.
//! * Optional sequence signals ([`crate::infer::signals`], [`DecodeConfig::signals`]): the
//!   emission of a state becomes `nn_weight · ln p + genic_weight · ln p(genic or not) +
//!   content_weight · ln P_content(base | context)`
//!   for its codon position, intron or other slot, and the donor, acceptor and start-context
//!   log-odds × `site_weight` are added on entering an intron, leaving one and entering a start
//!   codon. [`crate::infer::tune`] chooses the weights on a validation region.
//! * Framed evidence (rows of 8: CDS split by codon position in the gene's direction,
//!   [`crate::io::labels::LabelTracks::paint_frames`]): the coding states' class probability is the sum of
//!   the three, and with [`DecodeConfig::frame_weight`] each coding state adds the log-odds of its
//!   own codon position, `frame_weight · ln (3 · P(CDS at it) / P(CDS))`.
//! * **Minimum intron length is exact**: an intron is entered by a jump that covers its first
//!   `min_intron` bases at once (their summed emissions come from a prefix sum), so no path has a
//!   shorter intron and no state chain is needed.
//! * **Minimum exon length**: exact for UTR-only exons (the states `U5X`/`U3X` are entered by a
//!   jump over their first `min_exon` bases); an exon with CDS shorter than `min_exon` makes the
//!   strand be decoded again with exonic states forbidden there (and a margin), up to
//!   [`MAX_EXON_REPAIRS`] rounds, after which a gene that still has one is dropped. The minimum
//!   CDS length is a post-filter: a gene with a shorter CDS is dropped.
//! * The path may begin and end in any state (the caller decodes chunks); genes without both a
//!   start and a stop codon inside the region (cut by its ends) are dropped.
//! * **Prokaryote genes may overlap** their same-strand neighbour by up to [`MAX_OVERLAP`]
//!   bases (operons' `ATGA`): after Viterbi, a gene's in-frame start codons inside the previous
//!   gene's end compete with the start the path chose (`overlap_start`).
//!
//! Memory: one byte per state per base for backpointers (24 bytes/base), plus 24 bytes/base of
//! intron prefix sums and 2 bytes/base of sequence and path, per strand, decoded one after the
//! other.

use crate::error::{Error, Result};
use crate::infer::signals::{code, Signals, CONTENT_SLOTS, SLOT_INTRON, SLOT_OTHER};
use crate::io::gff::{CdsPart, Gene, Interval, Strand, Transcript};
use crate::io::gffwrite::fill_phases;
use crate::io::labels::{self, NUM_CLASSES, NUM_FRAMED};
use std::ops::Range;
use std::sync::Arc;

/// Genome kind: prokaryotes have no introns.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Intron-less genes (bacteria, archaea).
    Prokaryote,
    /// Spliced genes.
    #[default]
    Eukaryote,
}

/// Decoder settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeConfig {
    /// Prokaryote or eukaryote grammar.
    pub mode: Mode,
    /// Shortest intron, in bases (exact, at least 4).
    pub min_intron: usize,
    /// Shortest exon, in bases. Exact for UTR-only exons (eukaryotes: entered by a jump over
    /// this many UTR bases, like introns); an exon with CDS that is shorter makes the strand be
    /// decoded again without it ([`MAX_EXON_REPAIRS`] rounds), and a gene that still has one is
    /// dropped.
    pub min_exon: usize,
    /// Shortest CDS (spliced, stop codon included), in bases (post-filter).
    pub min_cds: usize,
    /// Cost (nats) of opening a gene.
    pub gene_penalty: f64,
    /// Cost (nats) of opening an intron.
    pub intron_penalty: f64,
    /// Probabilities are clamped to at least this before taking logs.
    pub prob_floor: f32,
    /// Accept `GTG` and `TTG` start codons besides `ATG` (bacterial starts).
    pub alt_starts: bool,
    /// Sequence signals (content models, site matrices) added to the network's evidence.
    pub signals: Option<Arc<Signals>>,
    /// Weight of the network's log-probabilities in every emission.
    pub nn_weight: f64,
    /// Weight of the network's coarse evidence, `ln P(intergenic)` for the intergenic state and
    /// `ln (1 − P(intergenic))` for every genic state.
    pub genic_weight: f64,
    /// Weight of the content models' log-probabilities in every emission.
    pub content_weight: f64,
    /// Weight of the site matrices: donor and acceptor log-odds on intron entry and exit, start
    /// context on entering the start codon.
    pub site_weight: f64,
    /// Weight of the network's codon positions (framed rows only): every coding state adds
    /// `frame_weight · ln (3 · P(CDS at its codon position) / P(CDS))`, the log-odds of its
    /// codon position against a network without an opinion (0 when the three are equal).
    pub frame_weight: f64,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            mode: Mode::Eukaryote,
            min_intron: 20,
            min_exon: 3,
            min_cds: 90,
            gene_penalty: 10.0,
            intron_penalty: 4.0,
            prob_floor: 1e-6,
            alt_starts: false,
            signals: None,
            nn_weight: 1.0,
            genic_weight: 0.0,
            content_weight: 0.0,
            site_weight: 0.0,
            frame_weight: 0.0,
        }
    }
}

impl DecodeConfig {
    /// Defaults of a genome kind: [`DecodeConfig::default`] or [`DecodeConfig::prokaryote`].
    pub fn for_mode(mode: Mode) -> Self {
        match mode {
            Mode::Eukaryote => DecodeConfig::default(),
            Mode::Prokaryote => DecodeConfig::prokaryote(),
        }
    }

    /// Defaults for prokaryotes: no introns, `ATG`/`GTG`/`TTG` starts.
    pub fn prokaryote() -> Self {
        DecodeConfig {
            mode: Mode::Prokaryote,
            alt_starts: true,
            ..DecodeConfig::default()
        }
    }

    /// Add fitted sequence signals; their minimum intron length (fitted on the training
    /// introns, [`Signals::min_intron`]) replaces `min_intron`, and their minimum exon length
    /// ([`Signals::min_exon`]) replaces `min_exon`, when they have them.
    pub fn with_signals(mut self, signals: Arc<Signals>) -> Self {
        if let Some(m) = signals.min_intron {
            self.min_intron = m.max(4);
        }
        if let Some(m) = signals.min_exon {
            self.min_exon = m.max(1);
        }
        self.signals = Some(signals);
        self
    }

    /// Check the settings (lengths, finite non-negative weights and penalties, signal tables).
    pub fn check(&self) -> Result<()> {
        if self.mode == Mode::Eukaryote && self.min_intron < 4 {
            return Err(Error::input(format!(
                "decoder: min_intron must be at least 4 (GT...AG), got {}",
                self.min_intron
            )));
        }
        let finite = |x: f64| x.is_finite() && x >= 0.0;
        if !finite(self.gene_penalty) || !finite(self.intron_penalty) {
            return Err(Error::input(
                "decoder: gene and intron penalties must be finite and >= 0",
            ));
        }
        if !finite(self.nn_weight)
            || !finite(self.genic_weight)
            || !finite(self.content_weight)
            || !finite(self.site_weight)
            || !finite(self.frame_weight)
        {
            return Err(Error::input(
                "decoder: network, content, site and frame weights must be finite and >= 0",
            ));
        }
        if let Some(sig) = &self.signals {
            sig.validate()?;
        }
        if !(self.prob_floor > 0.0 && self.prob_floor < 1.0) {
            return Err(Error::input("decoder: prob_floor must be in (0, 1)"));
        }
        Ok(())
    }
}

/// A decoded gene (one transcript) with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictedGene {
    /// The gene model, in forward coordinates of its sequence (offset already added).
    pub gene: Gene,
    /// Mean posterior-like score of the path, in [0, 1].
    pub score: f64,
}

// States.
const IG: usize = 0;
const U5: usize = 1;
const U5I: usize = 2;
const S0: usize = 3;
const S1: usize = 4;
const S2: usize = 5;
const C0: usize = 6;
const C1: usize = 7;
const C1T: usize = 8;
const C1N: usize = 9;
const C2: usize = 10;
const I0: usize = 11;
const I1T: usize = 12;
const I1N: usize = 13;
const I2TA: usize = 14;
const I2TG: usize = 15;
const I2N: usize = 16;
const X0: usize = 17;
const X1: usize = 18;
const X2: usize = 19;
const U3: usize = 20;
const U3I: usize = 21;
/// 5′ UTR of a UTR-only exon (it ends at a donor): entered by a jump over `min_utr_exon` bases.
const U5X: usize = 22;
/// 3′ UTR of a UTR-only exon (it begins at an acceptor): entered by the same jump.
const U3X: usize = 23;
/// Number of HMM states.
pub const NUM_STATES: usize = 24;
const NONE: u8 = u8::MAX;

/// Emission slot of each state: 0 intergenic, 1 utr5, 2 cds, 3 intron, 4 utr3.
const EMIT: [usize; NUM_STATES] = [
    0, 1, 3, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 2, 2, 2, 4, 3, 1, 4,
];
/// Label class of each emission slot.
const SLOT_CLASS: [u8; 5] = [
    labels::INTERGENIC,
    labels::UTR5,
    labels::CDS,
    labels::INTRON,
    labels::UTR3,
];

/// Content slot of each state: codon position 0/1/2, intron, other.
const CSLOT: [usize; NUM_STATES] = [
    SLOT_OTHER,  // IG
    SLOT_OTHER,  // U5
    SLOT_INTRON, // U5I
    0,           // S0
    1,           // S1
    2,           // S2
    0,           // C0
    1,           // C1
    1,           // C1T
    1,           // C1N
    2,           // C2
    SLOT_INTRON, // I0
    SLOT_INTRON, // I1T
    SLOT_INTRON, // I1N
    SLOT_INTRON, // I2TA
    SLOT_INTRON, // I2TG
    SLOT_INTRON, // I2N
    0,           // X0
    1,           // X1
    2,           // X2
    SLOT_OTHER,  // U3
    SLOT_INTRON, // U3I
    SLOT_OTHER,  // U5X
    SLOT_OTHER,  // U3X
];

/// Site score of a start codon at `a` of `b` (× `site_weight`; 0 without signals): its
/// context matrix, and for prokaryotes also its ribosome-binding site and codon (ATG, GTG, TTG).
fn start_bonus(b: &[u8], a: usize, cfg: &DecodeConfig) -> f64 {
    match &cfg.signals {
        Some(s) if cfg.site_weight > 0.0 => {
            let extra = if cfg.mode == Mode::Eukaryote {
                0.0
            } else {
                s.upstream_at(b, a) + s.start_codon_at(b, a)
            };
            cfg.site_weight * f64::from(s.start_at(b, a) + extra)
        }
        _ => 0.0,
    }
}

/// Longest same-strand overlap of two prokaryote genes (as Prodigal allows).
pub const MAX_OVERLAP: usize = 60;

/// Prokaryotes: a start for the gene whose start codon is at `a` (oriented) that overlaps the
/// previous gene on the strand (`prev`: its oriented span) by at most [`MAX_OVERLAP`] bases.
/// The Viterbi path cannot hold overlapping genes, so this looks at the in-frame start codons
/// inside the previous gene's last bases (no in-frame stop between) and takes the one whose
/// start score plus the gap's coding-minus-intergenic emissions beats the start at `a`; `None`
/// when none does or the gap is not all intergenic. (The start codon's own bases are scored
/// as coding bases, as the old start codon's are in this comparison.)
fn overlap_start<'a, F>(
    b: &[u8],
    path: &[u8],
    row: &F,
    cfg: &DecodeConfig,
    a: usize,
    prev: (usize, usize),
) -> Option<usize>
where
    F: Fn(usize) -> &'a [f32],
{
    let (prev_start, prev_end) = prev;
    if prev_end > a || path[prev_end..a].iter().any(|&s| usize::from(s) != IG) {
        return None;
    }
    let at = |i: usize| -> u8 { b.get(i).copied().unwrap_or(N) };
    // The best-scoring overlapping start (the first of equals, walking upstream).
    let lowest = prev_end.saturating_sub(MAX_OVERLAP).max(prev_start + 3);
    let mut best: Option<(usize, f64)> = None;
    let mut s = a;
    while s >= lowest + 3 {
        s -= 3;
        if is_stop(at(s), at(s + 1), at(s + 2)) {
            break;
        }
        if s < prev_end && is_start(at(s), at(s + 1), at(s + 2), cfg.alt_starts) {
            let bonus = start_bonus(b, s, cfg);
            if best.is_none_or(|(_, x)| bonus > x) {
                best = Some((s, bonus));
            }
        }
    }
    // Only then the gap, which turns from intergenic to coding (its emissions are the costly
    // part, and most genes have no overlapping start).
    let (s, bonus) = best?;
    let mut gap = 0.0;
    for i in prev_end..a {
        let e = state_emissions(row(i), b, i, cfg);
        let pos = (3 - (a - i) % 3) % 3; // codon position of base i: (i - a) mod 3
        gap += e[[C0, C1, C2][pos]] - e[IG];
    }
    (bonus - start_bonus(b, a, cfg) + gap > 0.0).then_some(s)
}

/// Per-state emission scores at base `i`: network log-probabilities plus weighted content.
#[inline]
fn state_emissions(p: &[f32], b: &[u8], i: usize, cfg: &DecodeConfig) -> [f64; NUM_STATES] {
    let e = emissions(p, cfg.prob_floor);
    let c: [f64; CONTENT_SLOTS] = match &cfg.signals {
        Some(sig) if cfg.content_weight > 0.0 => match sig.content_at(b, i) {
            Some(c) => c.map(|x| cfg.content_weight * f64::from(x)),
            None => [0.0; CONTENT_SLOTS],
        },
        _ => [0.0; CONTENT_SLOTS],
    };
    let (genic, inter) = if cfg.genic_weight > 0.0 {
        let f = f64::from(cfg.prob_floor);
        let ig = f64::from(p[labels::INTERGENIC as usize] + p[labels::NC_EXON as usize]);
        let ig = if ig.is_nan() {
            0.5
        } else {
            ig.clamp(f, 1.0 - f)
        };
        (
            cfg.genic_weight * (1.0 - ig).ln(),
            cfg.genic_weight * ig.ln(),
        )
    } else {
        (0.0, 0.0)
    };
    let frame = if cfg.frame_weight > 0.0 && p.len() >= NUM_FRAMED {
        let l = |x: f32| f64::from(if x.is_nan() { 0.0 } else { x }.max(cfg.prob_floor).ln());
        let cds = l(class_prob(p, labels::CDS)) - 3f64.ln();
        [labels::CDS, labels::CDS1, labels::CDS2]
            .map(|k| cfg.frame_weight * (l(p[usize::from(k)]) - cds))
    } else {
        [0.0; 3]
    };
    let mut out = [0.0; NUM_STATES];
    for (s, o) in out.iter_mut().enumerate() {
        let coarse = if s == IG { inter } else { genic };
        let f = if EMIT[s] == 2 { frame[CSLOT[s]] } else { 0.0 };
        *o = cfg.nn_weight * e[EMIT[s]] + c[CSLOT[s]] + coarse + f;
    }
    out
}

/// Probability of class `c` in a row of 6 classes or 8 framed ones (CDS: its three codon
/// positions summed).
#[inline]
fn class_prob(r: &[f32], c: u8) -> f32 {
    let mut p = r[usize::from(c)];
    if c == labels::CDS && r.len() >= NUM_FRAMED {
        p += r[usize::from(labels::CDS1)] + r[usize::from(labels::CDS2)];
    }
    p
}

fn is_intron(s: usize) -> bool {
    matches!(s, U5I | I0 | I1T | I1N | I2TA | I2TG | I2N | U3I)
}

const A: u8 = 0;
const G: u8 = 2;
const T: u8 = 3;
const N: u8 = 4;

/// `ATG`, or with `alt` also `GTG` and `TTG`.
fn is_start(x: u8, y: u8, z: u8, alt: bool) -> bool {
    y == T && z == G && (x == A || (alt && (x == G || x == T)))
}

fn is_stop(x: u8, y: u8, z: u8) -> bool {
    x == T && ((y == A && (z == A || z == G)) || (y == G && z == A))
}

/// Decode one region of sequence `seqid` that starts at `offset`.
///
/// `seq` holds the region's bases (forward strand, upper or lower case); `plus` and `minus` hold
/// per-base probabilities, row-major `seq.len() × k`, in forward coordinates, for the plus- and
/// minus-strand label tracks ([`crate::io::labels`]): `k` = `NUM_CLASSES` (6) classes, or
/// `NUM_FRAMED` (8) with CDS split by codon position in the gene's direction (read with
/// [`DecodeConfig::frame_weight`]).
pub fn decode(
    seqid: &str,
    offset: usize,
    seq: &[u8],
    plus: &[f32],
    minus: &[f32],
    cfg: &DecodeConfig,
) -> Result<Vec<PredictedGene>> {
    cfg.check()?;
    let n = seq.len();
    let k = if n > 0 && plus.len() == n * NUM_FRAMED {
        NUM_FRAMED
    } else {
        NUM_CLASSES
    };
    for (name, p) in [("plus", plus), ("minus", minus)] {
        if p.len() != n * k {
            return Err(Error::input(format!(
                "decoder: {name}-strand probabilities have {} values, expected {} ({} bases × {} classes, \
                 or × {} framed ones on both strands)",
                p.len(),
                n * k,
                n,
                NUM_CLASSES,
                NUM_FRAMED
            )));
        }
    }
    let mut out = Vec::new();
    // Plus strand.
    let codes: Vec<u8> = seq.iter().map(|&b| code(b)).collect();
    let row = |i: usize| &plus[i * k..(i + 1) * k];
    decode_strand(&codes, row, seqid, offset, Strand::Plus, cfg, &mut out);
    // Minus strand: reverse complement, rows reversed.
    let rc: Vec<u8> = codes
        .iter()
        .rev()
        .map(|&c| if c == N { N } else { 3 - c })
        .collect();
    drop(codes);
    let row = |i: usize| {
        let j = n - 1 - i;
        &minus[j * k..(j + 1) * k]
    };
    decode_strand(&rc, row, seqid, offset, Strand::Minus, cfg, &mut out);
    out.sort_by_key(|g| (g.gene.span.start, g.gene.span.end, g.gene.strand.is_minus()));
    Ok(out)
}

/// Rounds of re-decoding a strand with short exons forbidden before such genes are dropped.
pub const MAX_EXON_REPAIRS: usize = 3;

/// Decode one strand (`b`: codes 5′→3′, `row(i)`: probabilities of base `i` in that order).
///
/// A gene whose path has an exon shorter than `min_exon` is not dropped at once: the strand is
/// decoded again with exonic states forbidden on that exon's bases and a margin (so the best
/// path must do without it), up to [`MAX_EXON_REPAIRS`] times; genes that still have one are
/// dropped.
fn decode_strand<'a, F>(
    b: &[u8],
    row: F,
    seqid: &str,
    offset: usize,
    strand: Strand,
    cfg: &DecodeConfig,
    out: &mut Vec<PredictedGene>,
) where
    F: Fn(usize) -> &'a [f32],
{
    let n = b.len();
    let mut path = viterbi(b, &row, cfg, None, 0..n);
    let mut forbid: Option<Vec<bool>> = None;
    for round in 0..=MAX_EXON_REPAIRS {
        let mut genes = Vec::new();
        let short = genes_from_path(b, &path, &row, seqid, offset, strand, cfg, &mut genes);
        if short.is_empty() || round == MAX_EXON_REPAIRS {
            out.extend(genes);
            return;
        }
        // The exon's bases and, so that the next path does not just move it a few bases, up
        // to `min_exon - 1` bases either side (no more than an intron's minimum, so the exons
        // beyond its flanking introns stay free).
        let pad = cfg.min_exon.min(cfg.min_intron).saturating_sub(1);
        let f = forbid.get_or_insert_with(|| vec![false; n]);
        let mut regions: Vec<Range<usize>> = Vec::with_capacity(short.len());
        for (x, y) in short {
            regions.push(repair_region(&path, x, REPAIR_REACH));
            let (x, y) = (x.saturating_sub(pad), (y + pad).min(n));
            f[x..y].fill(true);
        }
        // Only the genes with a short exon (and [`REPAIR_REACH`] neighbours either side) are
        // decoded again, between the midpoints of the intergenic runs around them, with the
        // path pinned to intergenic at both ends.
        regions.sort_by_key(|r| (r.start, r.end));
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(regions.len());
        for r in regions {
            match merged.last_mut() {
                Some(m) if r.start < m.end => m.end = m.end.max(r.end),
                _ => merged.push(r),
            }
        }
        for r in merged {
            let sub = viterbi(b, &row, cfg, Some(f), r.clone());
            path[r].copy_from_slice(&sub);
        }
    }
}

/// Genes on either side of a repaired gene that are decoded again with it.
pub const REPAIR_REACH: usize = 1;

/// The bases to decode again for the gene of the path that holds base `x` and `reach` genes
/// on either side: from the midpoint of the intergenic run before them to the midpoint of the
/// one after them (or the strand's ends), so that both ends are intergenic on the current path.
fn repair_region(path: &[u8], x: usize, reach: usize) -> Range<usize> {
    let n = path.len();
    let ig = |i: usize| usize::from(path[i]) == IG;
    // Leftwards, once per gene (x's own, then `reach` more): `a` its first base, `g0` the
    // first base of the intergenic run before it. Base x is genic, so the walk starts on it.
    let (mut a, mut g0) = (x + 1, x + 1);
    for _ in 0..=reach {
        if g0 == 0 {
            break;
        }
        a = g0;
        while a > 0 && !ig(a - 1) {
            a -= 1;
        }
        g0 = a;
        while g0 > 0 && ig(g0 - 1) {
            g0 -= 1;
        }
    }
    let lo = if g0 == 0 { 0 } else { (g0 + a) / 2 };
    // Rightwards the same: `e` one past a gene, `g1` one past the intergenic run after it.
    let (mut e, mut g1) = (x, x);
    for _ in 0..=reach {
        if g1 == n {
            break;
        }
        e = g1;
        while e < n && !ig(e) {
            e += 1;
        }
        g1 = e;
        while g1 < n && ig(g1) {
            g1 += 1;
        }
    }
    let hi = if g1 == n { n } else { (e + g1).div_ceil(2) };
    lo..hi
}

/// Emission log-probabilities of the five slots at one base.
#[inline]
fn emissions(p: &[f32], floor: f32) -> [f64; 5] {
    let l = |x: f32| {
        let x = if x.is_nan() { 0.0 } else { x };
        f64::from(x.max(floor).ln())
    };
    [
        l(p[labels::INTERGENIC as usize] + p[labels::NC_EXON as usize]),
        l(p[labels::UTR5 as usize]),
        l(class_prob(p, labels::CDS)),
        l(p[labels::INTRON as usize]),
        l(p[labels::UTR3 as usize]),
    ]
}

/// Best state path (one state per base) on one strand, 5′→3′, over the bases `span` of `b`.
///
/// `forbid`: bases where no exonic state may be (the repair of short exons). A span that does
/// not start at 0 starts in the intergenic state, and one that ends before `b` does ends in it,
/// so that the returned path can replace that part of a whole-strand path. Bases outside the
/// span are read only as context (codons, splice sites, signal windows).
fn viterbi<'a, F>(
    b: &[u8],
    row: F,
    cfg: &DecodeConfig,
    forbid: Option<&[bool]>,
    span: Range<usize>,
) -> Vec<u8>
where
    F: Fn(usize) -> &'a [f32],
{
    let (lo, hi) = (span.start, span.end.min(b.len()));
    if lo >= hi {
        return Vec::new();
    }
    let n = hi - lo;
    let euk = cfg.mode == Mode::Eukaryote;
    let l = cfg.min_intron.max(4);
    // UTR-only exons: entered by a jump over their first `mu` bases (1: a plain step).
    let mu = if euk { cfg.min_exon.max(1) } else { 1 };
    let sites = match &cfg.signals {
        Some(sig) if cfg.site_weight > 0.0 => Some((sig.as_ref(), cfg.site_weight)),
        _ => None,
    };
    let donor_bonus = |g: usize| sites.map_or(0.0, |(s, w)| w * f64::from(s.donor_at(b, g)));
    let start_bonus = |a: usize| start_bonus(b, a, cfg);
    let acceptor_bonus = |a: usize| sites.map_or(0.0, |(s, w)| w * f64::from(s.acceptor_at(b, a)));
    let gp = cfg.gene_penalty;
    let ip = cfg.intron_penalty;
    let at = |i: usize| -> u8 { b.get(i).copied().unwrap_or(N) };
    // An intron ends just before base `k` (an exon starts at `k`).
    let acc_at = |k: usize| euk && k >= 2 && b[k - 2] == A && b[k - 1] == G;
    let at_back = |i: usize, k: usize| -> u8 {
        if i >= k {
            b[i - k]
        } else {
            N
        }
    };
    let donor = |i: usize| at(i) == G && at(i + 1) == T;
    let start_codon = |i: usize| is_start(at(i), at(i + 1), at(i + 2), cfg.alt_starts);
    let stop_at = |i: usize| is_stop(at(i), at(i + 1), at(i + 2));

    // Prefix sums of the intron emission, for the min-length jump into introns: `pre[i + 1]`
    // is pushed at base i, before the jump that ends there reads it.
    let mut pre = Vec::with_capacity(if euk { n + 1 } else { 0 });
    let neg = f64::NEG_INFINITY;
    // Prefix sums of the 5′ and 3′ UTR emissions, for the jumps into UTR-only exons.
    let mut pre5 = Vec::with_capacity(n + 1);
    let mut pre3 = Vec::with_capacity(n + 1);
    let mut bp = vec![NONE; n * NUM_STATES];
    // Ring of past score vectors, for the jumps from positions i-L and i-mu.
    let ring = l.max(mu) + 1;
    let mut hist = vec![[neg; NUM_STATES]; ring];
    let mut v = state_emissions(row(lo), b, lo, cfg);
    if euk {
        pre.push(0.0);
        pre.push(v[I0]);
    }
    pre5.extend([0.0, v[U5]]);
    pre3.extend([0.0, v[U3]]);
    {
        if !start_codon(lo) {
            v[S0] = neg;
        }
        if !euk {
            for s in [U5I, I0, I1T, I1N, I2TA, I2TG, I2N, U3I] {
                v[s] = neg;
            }
        }
        if forbid.is_some_and(|f| f[lo]) {
            for (s, x) in v.iter_mut().enumerate() {
                if s != IG && !is_intron(s) {
                    *x = neg;
                }
            }
        }
        if lo > 0 {
            for (s, x) in v.iter_mut().enumerate() {
                if s != IG {
                    *x = neg;
                }
            }
        }
        hist[lo % ring] = v;
    }
    for i in lo + 1..hi {
        // `k`: the base's index within the span (prefix sums and back-pointers are local).
        let k = i - lo;
        let e = state_emissions(row(i), b, i, cfg);
        if euk {
            pre.push(pre[k] + e[I0]);
        }
        pre5.push(pre5[k] + e[U5]);
        pre3.push(pre3[k] + e[U3]);
        let mut nv = [neg; NUM_STATES];
        let bpi = &mut bp[k * NUM_STATES..(k + 1) * NUM_STATES];
        macro_rules! best {
            ($to:expr, $( ($from:expr, $score:expr, $ok:expr) ),+ ) => {{
                let mut m = neg;
                let mut arg = NONE;
                $(
                    if $ok {
                        let sc = $score;
                        if sc > m {
                            m = sc;
                            arg = $from as u8;
                        }
                    }
                )+
                nv[$to] = m + e[$to];
                bpi[$to] = arg;
            }};
        }
        let acc = euk && i >= 2 && b[i - 2] == A && b[i - 1] == G;
        // Acceptor bonus for leaving an intron at i (the exon starts here).
        let ab = if acc { acceptor_bonus(i) } else { 0.0 };
        let stop_here = stop_at(i);
        let start_here = start_codon(i);
        best!(
            IG,
            (IG, v[IG], true),
            (X2, v[X2], true),
            (U3, v[U3], true),
            (U3X, v[U3X], true)
        );
        // Into a UTR-only exon: from the state at u = i - mu, the exon's bases u+1..=i (the
        // emission sums exclude base i, which `best!` adds).
        let (hu, span5, span3, acc_u) = if k >= mu {
            let u = i - mu;
            let (s5, s3) = if mu == 1 {
                (0.0, 0.0) // a plain step (exactly, without prefix-sum rounding)
            } else {
                (
                    pre5[k + 1] - pre5[k + 1 - mu] - e[U5],
                    pre3[k + 1] - pre3[k + 1 - mu] - e[U3],
                )
            };
            (&hist[u % ring], s5, s3, acc_at(u + 1))
        } else {
            (&hist[0], 0.0, 0.0, false)
        };
        let abu = if acc_u {
            acceptor_bonus(i + 1 - mu)
        } else {
            0.0
        };
        // The 5′ UTR before the start codon: plain steps.
        best!(
            U5,
            (IG, v[IG] - gp, true),
            (U5, v[U5], true),
            (U5I, v[U5I] + ab, acc)
        );
        best!(
            U5X,
            (IG, hu[IG] - gp + span5, k >= mu),
            (U5X, v[U5X], true),
            (U5I, hu[U5I] + span5 + abu, acc_u)
        );
        let sb = if start_here { start_bonus(i) } else { 0.0 };
        best!(
            S0,
            (IG, v[IG] - gp + sb, start_here),
            (U5, v[U5] + sb, start_here)
        );
        best!(S1, (S0, v[S0], true));
        best!(S2, (S1, v[S1], true));
        best!(
            C0,
            (S2, v[S2], true),
            (C2, v[C2], true),
            (I0, v[I0] + ab, acc)
        );
        best!(C1, (C0, v[C0], true));
        best!(C1T, (I1T, v[I1T] + ab, acc));
        best!(C1N, (I1N, v[I1N] + ab, acc));
        let bi = b[i];
        let not_a_or_g = bi != A && bi != G;
        best!(
            C2,
            (C1, v[C1], !is_stop(at_back(i, 2), b[i - 1], bi)),
            (C1T, v[C1T], !is_stop(T, b[i - 1], bi)),
            (C1N, v[C1N], true),
            (I2TA, v[I2TA] + ab, acc && not_a_or_g),
            (I2TG, v[I2TG] + ab, acc && bi != A),
            (I2N, v[I2N] + ab, acc)
        );
        best!(
            X0,
            (C2, v[C2], stop_here),
            (S2, v[S2], stop_here),
            (I0, v[I0] + ab, acc && stop_here)
        );
        best!(X1, (X0, v[X0], true));
        best!(X2, (X1, v[X1], true));
        // The 3′ UTR after the stop codon (its exon holds CDS), then UTR-only exons.
        best!(U3, (X2, v[X2], true), (U3, v[U3], true));
        best!(
            U3X,
            (U3X, v[U3X], true),
            (U3I, hu[U3I] + span3 + abu, acc_u)
        );
        if euk {
            // Introns: stay, or jump in from the exon state at e = i - L (donor at e + 1).
            let jump = k >= l && donor(i + 1 - l);
            let (h, span, be, bem1) = if jump {
                let e0 = i - l;
                (
                    &hist[e0 % ring],
                    pre[k + 1] - pre[k + 1 - l] - e[I0] - ip + donor_bonus(e0 + 1),
                    b[e0],
                    at_back(e0, 1),
                )
            } else {
                (&hist[0], 0.0, N, N)
            };
            // `span` excludes base i, whose emission `best!` adds.
            best!(U5I, (U5I, v[U5I], true), (U5X, h[U5X] + span, jump));
            best!(
                U3I,
                (U3I, v[U3I], true),
                (U3, h[U3] + span, jump),
                (U3X, h[U3X] + span, jump)
            );
            best!(
                I0,
                (I0, v[I0], true),
                (S2, h[S2] + span, jump),
                (C2, h[C2] + span, jump)
            );
            best!(
                I1T,
                (I1T, v[I1T], true),
                (C0, h[C0] + span, jump && be == T)
            );
            best!(
                I1N,
                (I1N, v[I1N], true),
                (C0, h[C0] + span, jump && be != T)
            );
            best!(
                I2TA,
                (I2TA, v[I2TA], true),
                (C1, h[C1] + span, jump && bem1 == T && be == A),
                (C1T, h[C1T] + span, jump && be == A)
            );
            best!(
                I2TG,
                (I2TG, v[I2TG], true),
                (C1, h[C1] + span, jump && bem1 == T && be == G),
                (C1T, h[C1T] + span, jump && be == G)
            );
            let other = !(bem1 == T && (be == A || be == G));
            best!(
                I2N,
                (I2N, v[I2N], true),
                (C1, h[C1] + span, jump && other),
                (C1T, h[C1T] + span, jump && be != A && be != G),
                (C1N, h[C1N] + span, jump)
            );
        }
        if forbid.is_some_and(|f| f[i]) {
            for (s, x) in nv.iter_mut().enumerate() {
                if s != IG && !is_intron(s) {
                    *x = neg;
                }
            }
        }
        v = nv;
        hist[i % ring] = v;
    }
    // Traceback (`i` is local to the span from here on).
    let mut s = if hi < b.len() {
        IG
    } else {
        (0..NUM_STATES)
            .max_by(|&x, &y| v[x].total_cmp(&v[y]).then(y.cmp(&x)))
            .unwrap_or(IG)
    };
    let mut path = vec![IG as u8; n];
    let mut i = n - 1;
    loop {
        path[i] = s as u8;
        let p = bp[i * NUM_STATES + s];
        if p == NONE || i == 0 {
            break;
        }
        let p = usize::from(p);
        let jump = if is_intron(s) && p != s {
            l // bases i-L+1..=i are intron, the exon state sits at i-L
        } else if (s == U5X || s == U3X) && p != s {
            mu // bases i-mu+1..=i are UTR
        } else {
            1
        };
        for x in &mut path[i + 1 - jump..=i] {
            *x = s as u8;
        }
        i -= jump;
        s = p;
    }
    path
}

/// Runs of one kind of part along a gene (oriented coordinates).
fn runs(path: &[u8], a: usize, b: usize, keep: impl Fn(usize) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &s) in path.iter().enumerate().take(b).skip(a) {
        match (keep(usize::from(s)), start) {
            (true, None) => start = Some(i),
            (false, Some(st)) => {
                out.push((st, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(st) = start {
        out.push((st, b));
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn genes_from_path<'a, F>(
    codes: &[u8],
    path: &[u8],
    row: F,
    seqid: &str,
    offset: usize,
    strand: Strand,
    cfg: &DecodeConfig,
    out: &mut Vec<PredictedGene>,
) -> Vec<(usize, usize)>
where
    F: Fn(usize) -> &'a [f32],
{
    let mut short = Vec::new();
    let n = path.len();
    let minus = strand.is_minus();
    // Oriented span of the last gene kept (prokaryotes: the next one may overlap it).
    let mut prev: Option<(usize, usize)> = None;
    let to_fwd = |(a, b): (usize, usize)| {
        if minus {
            Interval {
                start: offset + n - b,
                end: offset + n - a,
            }
        } else {
            Interval {
                start: offset + a,
                end: offset + b,
            }
        }
    };
    let fwd_all = |v: Vec<(usize, usize)>| {
        let mut x: Vec<Interval> = v.into_iter().map(to_fwd).collect();
        x.sort();
        x
    };
    for (a, b) in runs(path, 0, path.len(), |s| s != IG) {
        let has = |st: usize| path[a..b].iter().any(|&s| usize::from(s) == st);
        let first = usize::from(path[a]);
        if !has(S0) || !has(X2) || !matches!(first, U5 | U5X | S0) {
            continue; // cut by the region's ends
        }
        let last = usize::from(path[b - 1]);
        if !matches!(last, X2 | U3 | U3X) {
            continue;
        }
        let exonic = |s: usize| !is_intron(s) && s != IG;
        let mut oriented = runs(path, a, b, exonic);
        let mut coding = runs(path, a, b, |s| {
            (S0..=C2).contains(&s) || (X0..=X2).contains(&s)
        });
        let moved = (cfg.mode == Mode::Prokaryote && first == S0 && last == X2)
            .then(|| prev.and_then(|p| overlap_start(codes, path, &row, cfg, a, p)))
            .flatten();
        if let Some(s) = moved {
            oriented = vec![(s, b)];
            coding = vec![(s, b)];
        }
        short.extend(
            oriented
                .iter()
                .copied()
                .filter(|&(x, y)| y - x < cfg.min_exon),
        );
        let exons = fwd_all(oriented);
        let cds = fwd_all(coding);
        let utr5 = fwd_all(runs(path, a, b, |s| s == U5 || s == U5X));
        let utr3 = fwd_all(runs(path, a, b, |s| s == U3 || s == U3X));
        let cds_len: usize = cds.iter().map(Interval::len).sum();
        if cds_len < cfg.min_cds || exons.iter().any(|e| e.len() < cfg.min_exon) {
            continue;
        }
        let mut score = 0.0f64;
        for (i, &s) in path.iter().enumerate().take(b).skip(a) {
            let slot = EMIT[usize::from(s)];
            let r = row(i);
            let mut p = class_prob(r, SLOT_CLASS[slot]);
            if slot == 0 {
                p += r[labels::NC_EXON as usize];
            }
            score += f64::from(if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) });
        }
        score /= (b - a) as f64;
        let start = moved.unwrap_or(a);
        let span = to_fwd((start, b));
        prev = Some((start, b));
        let id = format!(
            "{seqid}:{}-{}:{}",
            span.start + 1,
            span.end,
            strand.symbol()
        );
        let mut t = Transcript {
            id: format!("{id}.t1"),
            kind: "mRNA".to_string(),
            implicit: false,
            strand,
            span,
            exons,
            cds: cds
                .into_iter()
                .map(|iv| CdsPart { iv, phase: None })
                .collect(),
            utr5,
            utr3,
            line: 0,
        };
        fill_phases(&mut t);
        out.push(PredictedGene {
            gene: Gene {
                id,
                name: None,
                seqid: seqid.to_string(),
                strand,
                span,
                kind: "gene".to_string(),
                transcripts: vec![t],
                line: 0,
            },
            score,
        });
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Random bases and blocky random class probabilities that decode to several genes.
    fn case(seed: u64, n: usize) -> (Vec<u8>, Vec<f32>) {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let b: Vec<u8> = (0..n).map(|_| r.random_range(0..4u8)).collect();
        let mut p = vec![0f32; n * NUM_CLASSES];
        let mut i = 0;
        while i < n {
            let run = r.random_range(20..320usize).min(n - i);
            let c = r.random_range(0..NUM_CLASSES);
            for k in i..i + run {
                let row = &mut p[k * NUM_CLASSES..(k + 1) * NUM_CLASSES];
                for (x, v) in row.iter_mut().enumerate() {
                    *v = 0.02 + 0.1 * r.random::<f32>() + if x == c { 0.6 } else { 0.0 };
                }
            }
            i += run;
        }
        (b, p)
    }

    /// The repair decodes spans pinned to intergenic at both ends. By optimal substructure, a
    /// span whose ends are intergenic on the whole-strand path must decode to exactly that part
    /// of it; a wrong offset in the span's prefix sums, jumps or back-pointers breaks this.
    #[test]
    fn a_pinned_span_decodes_to_that_part_of_the_whole_path() {
        let mut spans = 0;
        for seed in [3u64, 17, 29] {
            let n = 8_000;
            let (b, p) = case(seed, n);
            let row = |i: usize| &p[i * NUM_CLASSES..(i + 1) * NUM_CLASSES];
            let cfg = DecodeConfig {
                min_intron: 30,
                min_exon: 12,
                ..DecodeConfig::default()
            };
            let path = viterbi(&b, row, &cfg, None, 0..n);
            assert_eq!(path.len(), n);
            let ig: Vec<usize> = (0..n).filter(|&i| usize::from(path[i]) == IG).collect();
            let mut r = ChaCha8Rng::seed_from_u64(seed * 7 + 1);
            for _ in 0..12 {
                let x = ig[r.random_range(0..ig.len())];
                let y = ig[r.random_range(0..ig.len())];
                let (lo, hi) = (x.min(y), x.max(y) + 1);
                if !path[lo..hi].iter().any(|&s| usize::from(s) == I0) {
                    continue; // only spans holding a spliced gene say something
                }
                spans += 1;
                let sub = viterbi(&b, row, &cfg, None, lo..hi);
                assert_eq!(sub, path[lo..hi], "seed {seed}, span {lo}..{hi}");
            }
            // A span starting at 0 or ending at the strand's end is free at that end.
            let first = ig[ig.len() / 2];
            assert_eq!(viterbi(&b, row, &cfg, None, 0..first + 1), path[..=first]);
            assert_eq!(viterbi(&b, row, &cfg, None, first..n), path[first..]);
        }
        assert!(spans >= 10, "only {spans} spans held a spliced gene");
    }

    /// The region decoded again for a gene reaches halfway into the intergenic runs around it.
    #[test]
    fn repair_regions_end_halfway_into_the_flanking_intergenic_runs() {
        let g = IG as u8;
        let c = C0 as u8;
        // IG x4, gene x3, IG x5, gene x2, IG x1
        let path = [g, g, g, g, c, c, c, g, g, g, g, g, c, c, g];
        assert_eq!(repair_region(&path, 5, 0), 0..10);
        assert_eq!(repair_region(&path, 12, 0), 9..15);
        let all = [c, c, c];
        assert_eq!(repair_region(&all, 1, 0), 0..3);
        // With one gene of reach either side: both genes, and the strand's ends.
        assert_eq!(repair_region(&path, 5, 1), 0..15);
        // IG x3, gene x2, IG x4, gene x1, IG x2, gene x2, IG x6
        let three = [g, g, g, c, c, g, g, g, g, c, g, g, c, c, g, g, g, g, g, g];
        assert_eq!(repair_region(&three, 9, 0), 7..11);
        assert_eq!(repair_region(&three, 9, 1), 0..20);
        assert_eq!(repair_region(&three, 3, 1), 0..11);
    }
}
