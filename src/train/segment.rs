//! Per-base segmentation training (`genolm train --task segment`) and tiled per-base inference.
//!
//! Data: every FASTA record with per-base label tracks for both strands
//! ([`crate::io::labels`]). Records named by `--holdout` are the test set; of every other record
//! the last `valid_fraction` of its bases is the validation region and the rest the training
//! region. Training examples are windows of `window` bases at a stride of `window / 2` over the
//! training regions (a record shorter than the window is padded with `N`, padding does not count
//! in the loss).
//!
//! Outputs: the model predicts, for every base, one softmax over the classes of the plus-strand
//! track and one over the minus-strand track (`2 × num_classes` logits), both in forward
//! coordinates. A framed model (`num_classes` = [`NUM_FRAMED`], the default of new runs) splits
//! CDS by codon position in the gene's direction ([`LabelTracks::paint_frames`]); a model with
//! [`NUM_CLASSES`] outputs (runs made before, or `--no-frame`) does not. Reverse-complement augmentation reverses the sequence and swaps and reverses the
//! two tracks ([`crate::augment::reverse_complement`]); shift augmentation moves each window by
//! up to `max_shift` bases inside its region, labels with it. The loss is cross-entropy over both
//! tracks with inverse-frequency class weights (`max count / count`, capped at
//! `class_weight_cap`; 1 turns weighting off).
//!
//! Evaluation and `genolm annotate` share [`predict_region`]: overlapping tiles, blended with
//! linear ramps over the overlap, averaged with the reverse complement, in parallel over tiles.
//!
//! Reproducibility and resume follow [`crate::train::classify`]: the order of epoch `e` and the
//! randomness of step `s` derive from `(seed, e)` and `(seed, s)`; the checkpoint is the weights,
//! optimizer moments and [`RunState`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::augment::{self, StrandTracks};
use crate::error::{Error, Result};
use crate::io::fasta::Record;
use crate::io::gff;
use crate::io::labels::{self, LabelTracks, CLASS_NAMES, NUM_CLASSES, NUM_FRAMED};
use crate::models::{Ctx, ModelConfig, SegmentModel, SegmentModelConfig, UNetConfig, Weights};
use crate::ops;
use crate::seq::SeqPolicy;
use crate::tokenize::Tokenizer;
use crate::train::classify::{epoch_order, load_tensors, RunState, TrainOptions};
use crate::train::run::{self, DataSpecs};
use crate::train::step::{
    self, rng_for, Accumulated, Checkpointer, EpochEnd, RunFiles, Stepped, Throughput,
};

/// Segmentation settings (stored in the run's `config.toml` under `[segment]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SegmentSpec {
    /// Genome FASTA.
    pub genome: String,
    /// GFF3 gene models.
    pub gff: String,
    /// Records held out as the test set.
    pub holdout: Vec<String>,
    /// Training window, in bases.
    pub window: usize,
    /// Largest shift augmentation, in bases (0 = none).
    pub max_shift: usize,
    /// Cap of the inverse-frequency class weights (1 = unweighted).
    pub class_weight_cap: f64,
    /// Fraction of each non-held-out record (its end) used for validation.
    pub valid_fraction: f64,
    /// Tile length of evaluation (and the default of `annotate`).
    pub tile: usize,
    /// Overlap of neighbouring tiles.
    pub overlap: usize,
    /// Gene grammar of the decoder (tuned with it; `annotate`'s default).
    pub mode: crate::infer::decode::Mode,
    /// The U-Net head.
    pub unet: UNetConfig,
    /// Class weights used in the loss (computed from the training regions), by class code.
    pub class_weights: Vec<f64>,
}

impl Default for SegmentSpec {
    fn default() -> Self {
        SegmentSpec {
            genome: String::new(),
            gff: String::new(),
            holdout: Vec::new(),
            window: 4096,
            max_shift: 64,
            class_weight_cap: 10.0,
            valid_fraction: 0.1,
            tile: 8192,
            overlap: 512,
            mode: crate::infer::decode::Mode::Eukaryote,
            unet: UNetConfig::default(),
            class_weights: Vec::new(),
        }
    }
}

/// The `config.toml` of a segmentation run: [`crate::train::run::RunConfig`]'s fields (so
/// classification tools can read it and refuse it by its task) plus `[segment]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRunConfig {
    /// Always `segment`.
    pub task: String,
    /// Tokenizer spec (one token per base: `char` or `onehot`).
    pub tokenizer: String,
    /// Class names per strand, indexed by class code.
    pub classes: Vec<String>,
    /// Data specs (train = genome FASTA, valid = GFF3, test = held-out records).
    pub data: DataSpecs,
    /// Training options.
    pub train: TrainOptions,
    /// Backbone and sizes (`seq_len` = window, `num_classes` per strand; the classification
    /// head entry is unused).
    pub model: ModelConfig,
    /// Segmentation settings.
    pub segment: SegmentSpec,
}

impl SegmentRunConfig {
    /// The segmentation model config.
    pub fn model_config(&self) -> SegmentModelConfig {
        SegmentModelConfig {
            vocab_size: self.model.vocab_size,
            num_classes: self.model.num_classes,
            backbone: self.model.backbone.clone(),
            unet: self.segment.unet.clone(),
        }
    }
}

/// Check that `tok` gives one token per base.
pub fn check_per_base(tok: &dyn Tokenizer) -> Result<()> {
    let probe = tok.encode(b"ACGTNACGTN")?;
    if probe.len() != 10 {
        return Err(Error::input(format!(
            "tokenizer {} does not give one token per base; per-base segmentation needs `char` \
             or `onehot`",
            tok.spec()
        )));
    }
    Ok(())
}

/// One genome record with its label tracks.
pub struct LabeledRecord {
    /// Record name.
    pub name: String,
    /// Bases (normalised, upper case).
    pub seq: Vec<u8>,
    /// Per-base classes of both strands.
    pub tracks: StrandTracks,
}

/// A genome with labels, split into training, validation and test regions.
pub struct GenomeData {
    /// All records.
    pub records: Vec<LabeledRecord>,
    /// Training regions `(record, start, end)`.
    pub train: Vec<(usize, usize, usize)>,
    /// Validation regions.
    pub valid: Vec<(usize, usize, usize)>,
    /// Test regions (the held-out records, whole).
    pub test: Vec<(usize, usize, usize)>,
    /// Genes painted per record.
    pub genes: usize,
    /// Non-fatal GFF warnings.
    pub warnings: Vec<String>,
    /// The GFF's genes with seqids renamed to their FASTA record names.
    pub reference: gff::Annotation,
}

/// Load `fasta` and `gff`, build label tracks (framed when `framed`) and split into regions.
///
/// Errors: a GFF seqid that is not a FASTA record, a feature past its record's end, a
/// `--holdout` name that is not a record, or no training bases left.
pub fn load_genome(
    fasta: &str,
    gff_path: &str,
    holdout: &[String],
    valid_fraction: f64,
    framed: bool,
) -> Result<GenomeData> {
    if !(0.0..0.5).contains(&valid_fraction) {
        return Err(Error::input(
            "--valid-fraction must be in [0, 0.5) for --task segment",
        ));
    }
    let recs: Vec<Record> = crate::io::fasta::read_records(fasta, SeqPolicy::default())?;
    if recs.is_empty() {
        return Err(Error::input(format!("{fasta}: no FASTA records")));
    }
    let ann = gff::read(gff_path)?;
    let index = ann.resolve_records(fasta, &recs)?;
    for h in holdout {
        if !recs.iter().any(|r| &r.name == h) {
            let names: Vec<&str> = recs.iter().take(8).map(|r| r.name.as_str()).collect();
            return Err(Error::input(format!(
                "--holdout {h}: not a record of {fasta} (which has: {})",
                names.join(", ")
            )));
        }
    }
    let mut by_record: HashMap<usize, Vec<&gff::Gene>> = HashMap::new();
    for g in &ann.genes {
        if let Some(&i) = index.get(&g.seqid) {
            by_record.entry(i).or_default().push(g);
        }
    }
    let mut data = GenomeData {
        records: Vec::new(),
        train: Vec::new(),
        valid: Vec::new(),
        test: Vec::new(),
        genes: 0,
        warnings: ann.warnings.clone(),
        reference: gff::Annotation {
            source: gff_path.to_string(),
            ..gff::Annotation::default()
        },
    };
    for (i, r) in recs.into_iter().enumerate() {
        let genes = by_record.remove(&i).unwrap_or_default();
        data.reference
            .genes
            .extend(genes.iter().map(|&g| gff::Gene {
                seqid: r.name.clone(),
                ..g.clone()
            }));
        data.genes += genes.iter().filter(|g| !g.transcripts.is_empty()).count();
        let t = if framed {
            LabelTracks::from_genes_framed(r.seq.len(), genes)
        } else {
            LabelTracks::from_genes(r.seq.len(), genes)
        };
        let n = r.seq.len();
        if holdout.contains(&r.name) {
            data.test.push((i, 0, n));
        } else {
            let v = (n as f64 * valid_fraction).round() as usize;
            if n - v > 0 {
                data.train.push((i, 0, n - v));
            }
            if v > 0 {
                data.valid.push((i, n - v, n));
            }
        }
        let mut seq = r.seq;
        seq.make_ascii_uppercase();
        data.records.push(LabeledRecord {
            name: r.name,
            seq,
            tracks: StrandTracks {
                plus: t.plus,
                minus: t.minus,
            },
        });
    }
    if data.train.is_empty() {
        return Err(Error::input(
            "no training bases left: every record is held out",
        ));
    }
    Ok(data)
}

/// Base counts per class over `regions`, both strands pooled (framed CDS codes count as CDS).
pub fn class_counts(data: &GenomeData, regions: &[(usize, usize, usize)]) -> [u64; NUM_CLASSES] {
    let mut c = [0u64; NUM_CLASSES];
    for &(r, s, e) in regions {
        let t = &data.records[r].tracks;
        for track in [&t.plus[s..e], &t.minus[s..e]] {
            for &b in track {
                c[usize::from(labels::coarse(b)).min(NUM_CLASSES - 1)] += 1;
            }
        }
    }
    c
}

/// Loss weights by model class code: the class weights, extended to the framed codes (each
/// codon position gets the CDS weight) when `num_classes` is [`NUM_FRAMED`].
pub fn model_class_weights(weights: &[f64], num_classes: usize) -> Vec<f64> {
    (0..num_classes)
        .map(|c| {
            let c = if num_classes == NUM_FRAMED {
                labels::coarse(c as u8)
            } else {
                c as u8
            };
            weights.get(usize::from(c)).copied().unwrap_or(1.0)
        })
        .collect()
}

/// Inverse-frequency class weights: `max count / count`, capped at `cap` (≥ 1); absent classes
/// get weight 1.
pub fn class_weights(counts: &[u64], cap: f64) -> Vec<f64> {
    let max = counts.iter().copied().max().unwrap_or(0) as f64;
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                1.0
            } else {
                (max / c as f64).clamp(1.0, cap.max(1.0))
            }
        })
        .collect()
}

/// Window starts over a region of `len` bases: stride `stride`, the last aligned to the end.
pub fn window_starts(len: usize, window: usize, stride: usize) -> Vec<usize> {
    if len <= window {
        return vec![0];
    }
    let mut v: Vec<usize> = (0..=len - window).step_by(stride.max(1)).collect();
    if *v.last().unwrap_or(&0) != len - window {
        v.push(len - window);
    }
    v
}

/// One training example: a window of `record` starting at `start` within region `[lo, hi)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Example {
    /// Record index.
    pub record: usize,
    /// Region start.
    pub lo: usize,
    /// Region end.
    pub hi: usize,
    /// Window start.
    pub start: usize,
}

/// Training examples over `regions` with windows of `window` bases at stride `window / 2`.
pub fn examples(regions: &[(usize, usize, usize)], window: usize) -> Vec<Example> {
    let mut out = Vec::new();
    for &(record, lo, hi) in regions {
        for s in window_starts(hi - lo, window, window / 2) {
            out.push(Example {
                record,
                lo,
                hi,
                start: lo + s,
            });
        }
    }
    out
}

/// One augmented example: bases and tracks (shorter than the window only for short regions).
pub fn example_window<R: Rng>(
    data: &GenomeData,
    ex: &Example,
    window: usize,
    max_shift: usize,
    rc: bool,
    rng: &mut R,
) -> (Vec<u8>, StrandTracks) {
    let r = &data.records[ex.record];
    let len = window.min(ex.hi - ex.lo);
    let region = &r.seq[ex.lo..ex.hi];
    let tracks = StrandTracks {
        plus: r.tracks.plus[ex.lo..ex.hi].to_vec(),
        minus: r.tracks.minus[ex.lo..ex.hi].to_vec(),
    };
    let start = ex.start - ex.lo;
    let shift = augment::random_shift(rng, max_shift, start, len, region.len());
    let (s, t) = augment::shift_window(region, &tracks, start, len, shift).unwrap_or_else(|| {
        augment::shift_window(region, &tracks, start, len, 0).unwrap_or_default()
    });
    if rc {
        augment::reverse_complement(&s, &t)
    } else {
        (s, t)
    }
}

/// A training batch: ids `(B, W)`, targets `(B, W, 2)` and per-target weights `(B, W, 2)`
/// (class weight, 0 on padding).
pub fn batch_tensors(
    tok: &dyn Tokenizer,
    items: &[(Vec<u8>, StrandTracks)],
    window: usize,
    weights: &[f64],
) -> Result<(Tensor, Tensor, Tensor)> {
    let dev = crate::device::current();
    let b = items.len();
    let mut ids = Vec::with_capacity(b * window);
    let mut y = Vec::with_capacity(b * window * 2);
    let mut w = Vec::with_capacity(b * window * 2);
    for (s, t) in items {
        let mut row = tok.encode(s)?;
        let pad = tok.encode(b"N")?[0];
        row.resize(window, pad);
        ids.extend(row);
        for i in 0..window {
            for track in [&t.plus, &t.minus] {
                match track.get(i) {
                    Some(&c) if i < s.len() => {
                        y.push(u32::from(c));
                        w.push(weights.get(usize::from(c)).copied().unwrap_or(1.0) as f32);
                    }
                    _ => {
                        y.push(0);
                        w.push(0.0);
                    }
                }
            }
        }
    }
    Ok((
        Tensor::from_vec(ids, (b, window), &dev)?,
        Tensor::from_vec(y, (b, window, 2), &dev)?,
        Tensor::from_vec(w, (b, window, 2), &dev)?,
    ))
}

/// Tiling of [`predict_region`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileOptions {
    /// Tile length in bases (short regions are padded with `N` to it).
    pub tile: usize,
    /// Overlap of neighbouring tiles (blended with linear ramps).
    pub overlap: usize,
    /// Average with the reverse complement.
    pub rc_average: bool,
}

/// Blend weight of position `i` of a tile of `n` bases whose left/right edges are ramped.
fn ramp(i: usize, n: usize, overlap: usize, left: bool, right: bool) -> f32 {
    if overlap == 0 {
        return 1.0;
    }
    let r = (overlap + 1) as f32;
    let mut w = 1.0f32;
    if left {
        w = w.min((i + 1) as f32 / r);
    }
    if right {
        w = w.min((n - i) as f32 / r);
    }
    w
}

/// Per-base probabilities of both strands for a tile's bases, RC-averaged if asked:
/// row-major `(n, 2, NUM_CLASSES)`.
fn tile_probs(
    model: &SegmentModel,
    tok: &dyn Tokenizer,
    bases: &[u8],
    tile: usize,
    rc_average: bool,
) -> Result<Vec<f32>> {
    let n = bases.len();
    let k = model.config.num_classes;
    let len = tile.max(n).max(model.min_len());
    let pad = tok.encode(b"N")?[0];
    let mut fwd = tok.encode(bases)?;
    fwd.resize(len, pad);
    let mut rows = fwd;
    if rc_average {
        let mut r = tok.encode(&crate::seq::revcomp(bases))?;
        // Padded on the right too: RC position j holds the complement of base n - 1 - j.
        r.resize(len, pad);
        rows.extend(r);
    }
    let bsz = if rc_average { 2 } else { 1 };
    let ids = Tensor::from_vec(rows, (bsz, len), &crate::device::current())?;
    let mut rng = rng_for(0, 9, 0);
    let mut ctx = Ctx {
        train: false,
        rng: &mut rng,
    };
    let p = ops::softmax(&model.forward(&ids, &mut ctx)?, 3)?;
    let p: Vec<f32> = p.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let stride = 2 * k;
    let mut out = p[..n * stride].to_vec();
    if rc_average {
        let q = &p[len * stride..];
        for i in 0..n {
            let j = n - 1 - i;
            for c in 0..k {
                // Plus track at forward i = minus track of the RC at j, and vice versa.
                out[i * stride + c] = 0.5 * (out[i * stride + c] + q[j * stride + k + c]);
                out[i * stride + k + c] = 0.5 * (out[i * stride + k + c] + q[j * stride + c]);
            }
        }
    }
    Ok(out)
}

/// Per-base class probabilities of `seq` for the plus and minus tracks, each row-major
/// `(len, num_classes)` of the model (6, or 8 for a framed model), from overlapping tiles blended with linear ramps (rayon over tiles).
///
/// `progress` is called with the number of bases of each finished tile.
pub fn predict_region(
    model: &SegmentModel,
    tok: &dyn Tokenizer,
    seq: &[u8],
    opts: &TileOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(Vec<f32>, Vec<f32>)> {
    let n = seq.len();
    let k = model.config.num_classes;
    let tile = opts.tile.max(model.min_len());
    let overlap = opts.overlap.min(tile / 2);
    let starts = window_starts(n, tile, tile - overlap);
    let mut acc = vec![0f32; n * 2 * k];
    let mut wsum = vec![0f32; n];
    let group = rayon::current_num_threads().max(1) * 2;
    for chunk in starts.chunks(group) {
        let probs: Vec<Vec<f32>> = chunk
            .par_iter()
            .map(|&s| {
                let e = (s + tile).min(n);
                let p = tile_probs(model, tok, &seq[s..e], tile, opts.rc_average)?;
                progress((e - s) as u64);
                Ok(p)
            })
            .collect::<Result<_>>()?;
        for (&s, p) in chunk.iter().zip(&probs) {
            let m = p.len() / (2 * k);
            for i in 0..m {
                let w = ramp(i, m, overlap, s > 0, s + m < n);
                wsum[s + i] += w;
                let dst = &mut acc[(s + i) * 2 * k..(s + i + 1) * 2 * k];
                for (d, &v) in dst.iter_mut().zip(&p[i * 2 * k..(i + 1) * 2 * k]) {
                    *d += w * v;
                }
            }
        }
    }
    let mut plus = vec![0f32; n * k];
    let mut minus = vec![0f32; n * k];
    for i in 0..n {
        let w = wsum[i].max(1e-12);
        for c in 0..k {
            plus[i * k + c] = acc[i * 2 * k + c] / w;
            minus[i * k + c] = acc[i * 2 * k + k + c] / w;
        }
    }
    Ok((plus, minus))
}

/// Per-base confusion counts (both strands pooled), `[truth][predicted]`, over the six classes;
/// framed predictions and labels are counted by their class, and their codon positions apart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BaseConfusion {
    /// Counts, `NUM_CLASSES × NUM_CLASSES`.
    pub counts: Vec<Vec<u64>>,
    /// Summed negative log-likelihood of the true classes (of the model's classes).
    pub nll: f64,
    /// Framed rows: CDS bases (by the labels) whose codon position was scored.
    pub frame_bases: u64,
    /// Framed rows: of those, the bases whose most probable codon position is the true one.
    pub frame_correct: u64,
}

impl BaseConfusion {
    /// Empty counts.
    pub fn new() -> Self {
        BaseConfusion {
            counts: vec![vec![0; NUM_CLASSES]; NUM_CLASSES],
            ..BaseConfusion::default()
        }
    }

    /// Add one track's probabilities (row-major `(n, k)`, `k` = 6 classes or 8 framed) against
    /// its labels (framed codes with framed rows). Framed rows are summed to classes for the
    /// confusion counts; the NLL is of the model's own class.
    pub fn add(&mut self, probs: &[f32], track: &[u8], k: usize) {
        let framed = k == NUM_FRAMED;
        for (i, &y) in track.iter().enumerate() {
            let row = &probs[i * k..(i + 1) * k];
            let coarse = coarse_row(row);
            let pred = coarse
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(c, _)| c);
            let yc = usize::from(labels::coarse(y)).min(NUM_CLASSES - 1);
            self.counts[yc][pred] += 1;
            let own = if framed {
                usize::from(y).min(k - 1)
            } else {
                yc
            };
            self.nll -= f64::from(row[own].max(1e-12)).ln();
            if let (true, Some(pos)) = (framed, labels::codon_position(y)) {
                let f = frame_row(row);
                let best = (0..3).max_by(|&a, &b| f[a].total_cmp(&f[b])).unwrap_or(0);
                self.frame_bases += 1;
                self.frame_correct += u64::from(best == pos);
            }
        }
    }

    /// Bases counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Per-class precision, recall, F1, support; accuracy; macro F1 over classes present in
    /// truth; mean NLL — as JSON.
    pub fn report(&self) -> serde_json::Value {
        let mut per = serde_json::Map::new();
        let mut f1s = Vec::new();
        let mut correct = 0u64;
        for c in 0..NUM_CLASSES {
            let tp = self.counts[c][c];
            correct += tp;
            let support: u64 = self.counts[c].iter().sum();
            let predicted: u64 = self.counts.iter().map(|r| r[c]).sum();
            let p = if predicted > 0 {
                tp as f64 / predicted as f64
            } else {
                0.0
            };
            let r = if support > 0 {
                tp as f64 / support as f64
            } else {
                0.0
            };
            let f1 = if p + r > 0.0 {
                2.0 * p * r / (p + r)
            } else {
                0.0
            };
            if support > 0 {
                f1s.push(f1);
            }
            per.insert(
                CLASS_NAMES[c].to_string(),
                serde_json::json!({"precision": p, "recall": r, "f1": f1, "support": support}),
            );
        }
        let n = self.total().max(1);
        serde_json::json!({
            "bases": self.total(),
            "accuracy": correct as f64 / n as f64,
            "macro_f1": f1s.iter().sum::<f64>() / f1s.len().max(1) as f64,
            "loss": self.nll / n as f64,
            "per_class": per,
            "frame_accuracy": (self.frame_bases > 0)
                .then(|| self.frame_correct as f64 / self.frame_bases as f64),
        })
    }

    /// F1 of class `c`.
    pub fn f1(&self, c: usize) -> f64 {
        self.report()["per_class"][CLASS_NAMES[c]]["f1"]
            .as_f64()
            .unwrap_or(0.0)
    }
}

/// Per-base metrics of `model` on `regions` (tiled, blended, RC-averaged prediction).
pub fn evaluate(
    model: &SegmentModel,
    tok: &dyn Tokenizer,
    data: &GenomeData,
    regions: &[(usize, usize, usize)],
    opts: &TileOptions,
) -> Result<BaseConfusion> {
    let mut conf = BaseConfusion::new();
    for &(r, s, e) in regions {
        let rec = &data.records[r];
        let (p, m) = predict_region(model, tok, &rec.seq[s..e], opts, &|_| {})?;
        let k = model.config.num_classes;
        conf.add(&p, &rec.tracks.plus[s..e], k);
        conf.add(&m, &rec.tracks.minus[s..e], k);
    }
    Ok(conf)
}

/// The six class probabilities of a row of 6 classes or 8 framed ones (codon positions summed
/// into CDS).
pub fn coarse_row(row: &[f32]) -> [f32; NUM_CLASSES] {
    let mut c = [0f32; NUM_CLASSES];
    c.copy_from_slice(&row[..NUM_CLASSES]);
    if row.len() >= NUM_FRAMED {
        c[usize::from(labels::CDS)] +=
            row[usize::from(labels::CDS1)] + row[usize::from(labels::CDS2)];
    }
    c
}

/// The probabilities of codon positions 0, 1, 2 in a framed row (CDS, CDS1, CDS2; not
/// normalised).
pub fn frame_row(row: &[f32]) -> [f32; 3] {
    [
        row[usize::from(labels::CDS)],
        row[usize::from(labels::CDS1)],
        row[usize::from(labels::CDS2)],
    ]
}

/// Rows of `k` values (6 classes or 8 framed) → rows of the six classes.
pub fn coarse_rows(probs: &[f32], k: usize) -> Vec<f32> {
    if k == NUM_CLASSES {
        return probs.to_vec();
    }
    probs.chunks_exact(k).flat_map(coarse_row).collect()
}

/// Build a fresh segmentation model with weights initialised from `seed`.
pub fn build_model(cfg: &SegmentModelConfig, seed: u64) -> Result<(SegmentModel, Weights)> {
    let weights = Weights::new();
    let (p, b) = weights.builders(seed, DType::F32, &crate::device::current());
    let model = SegmentModel::new(cfg, p, b)?;
    Ok((model, weights))
}

/// A segmentation training job.
pub struct SegmentJob<'a> {
    /// The run config.
    pub config: &'a SegmentRunConfig,
    /// The tokenizer.
    pub tok: &'a dyn Tokenizer,
    /// Genome and regions.
    pub data: &'a GenomeData,
    /// Run directory.
    pub dir: &'a Path,
    /// Continue from the run's last checkpoint.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
}

/// Train; validate per epoch (per-base F1 per class to `metrics.jsonl`), keep the best weights
/// by validation macro F1 (or loss with `metric = "loss"`); returns the model with them loaded,
/// frozen for prediction (no autograd graph), and the weights.
pub fn train(job: &SegmentJob) -> Result<(SegmentModel, Weights, RunState)> {
    let o = &job.config.train;
    let spec = &job.config.segment;
    if o.batch_size == 0 || o.accumulate == 0 || o.epochs == 0 || spec.window == 0 {
        return Err(Error::input(
            "batch size, accumulation, epochs and window must be at least 1",
        ));
    }
    let (model, weights) = build_model(&job.config.model_config(), o.seed)?;
    if spec.window < model.min_len() {
        return Err(Error::input(format!(
            "--window {} is shorter than the model's minimum of {} bases",
            spec.window,
            model.min_len()
        )));
    }
    let mut opt = step::backbone_head_optimizer(&weights, o)?;
    let exs = examples(&job.data.train, spec.window);
    let n = exs.len();
    let total_steps = step::total_steps(n, o.batch_size, o.accumulate, o.epochs, o.max_steps);
    let sched = step::schedule(o.lr, o.warmup_frac, o.min_lr_ratio, total_steps);
    let tiles = TileOptions {
        tile: spec.tile,
        overlap: spec.overlap,
        rc_average: o.rc_average,
    };
    let files = RunFiles::new(job.dir);
    let (mut st, mut log, resumed) =
        step::start::<RunState>(&files, job.resume, &weights, &mut opt, || {
            step::load_init(&weights, o)
        })?;
    if resumed {
        step::say_resuming(job.dir, &st);
    }
    let checkpoint = Checkpointer {
        files: &files,
        weights: &weights,
    };
    let bar = step::progress_bar(job.progress, total_steps, st.step)?;
    let weights_c = &model_class_weights(&spec.class_weights, job.config.model.num_classes);
    let started = Instant::now();
    let mut bases = Throughput::default();
    while !st.finished && st.epoch < o.epochs as u64 {
        let order = epoch_order(n, o.seed, st.epoch);
        let batches: Vec<&[usize]> = order.chunks(o.batch_size).collect();
        let mut epoch_loss = 0.0;
        let mut epoch_batches = 0usize;
        while (st.batch_in_epoch as usize) < batches.len() {
            let mut rng: ChaCha8Rng = rng_for(o.seed, 2, st.step);
            let mut acc = Accumulated::default();
            let frozen = st.step < o.freeze_backbone_steps;
            while acc.micro() < o.accumulate && (st.batch_in_epoch as usize) < batches.len() {
                let rows = batches[st.batch_in_epoch as usize];
                let items: Vec<(Vec<u8>, StrandTracks)> = rows
                    .iter()
                    .map(|&i| {
                        let rc = o.rc_augment && rng.random_bool(0.5);
                        example_window(job.data, &exs[i], spec.window, spec.max_shift, rc, &mut rng)
                    })
                    .collect();
                let (x, y, w) = batch_tensors(job.tok, &items, spec.window, weights_c)?;
                let mut ctx = Ctx {
                    train: true,
                    rng: &mut rng,
                };
                let logits = model.forward_with(&x, &mut ctx, frozen)?;
                let loss = ops::cross_entropy_masked(&logits, &y, &w)?;
                let lv = step::loss_value(&loss, st.step + 1, Some(st.epoch + 1), "lower --lr")?;
                acc.add(&opt, &loss, lv)?;
                st.batch_in_epoch += 1;
                bases.add((rows.len() * spec.window) as u64);
            }
            let lr = sched.lr(st.step);
            let Stepped { loss, norm } = acc.step(&mut opt, lr, o.clip_norm)?;
            st.step += 1;
            epoch_loss += loss;
            epoch_batches += 1;
            let rate = bases.rate();
            log.write(
                &serde_json::json!({"kind": "step", "step": st.step, "epoch": st.epoch + 1,
                    "loss": loss, "lr": lr, "grad_norm": norm, "bases_per_s": rate}),
            )?;
            bar.set_position(st.step);
            bar.set_message(format!("loss {loss:.4}, {rate:.0} bases/s"));
            bases.after_step(st.step);
            if step::after_step(&mut st, o, batches.len(), |st| {
                checkpoint.save(st, &opt, &mut log)
            })? {
                break;
            }
        }
        let regions = if job.data.valid.is_empty() {
            &job.data.train
        } else {
            &job.data.valid
        };
        let conf = evaluate(&model.frozen(&weights)?, job.tok, job.data, regions, &tiles)?;
        let rep = conf.report();
        let vloss = rep["loss"].as_f64().unwrap_or(f64::NAN);
        let score = if o.metric == "loss" {
            -vloss
        } else {
            rep["macro_f1"].as_f64().unwrap_or(0.0)
        };
        let train_loss = epoch_loss / epoch_batches.max(1) as f64;
        EpochEnd {
            train_loss,
            valid_loss: vloss,
            score,
            valid: rep.clone(),
            patience: o.patience,
            epochs: o.epochs,
            started,
            files: &files,
        }
        .apply(&mut st, &mut log, &weights)?;
        let f1 = |c: &str| rep["per_class"][c]["f1"].as_f64().unwrap_or(0.0);
        bar.println(format!(
            "epoch {}: train loss {train_loss:.4}, valid loss {vloss:.4}, per-base F1 cds {:.4} \
             intron {:.4} intergenic {:.4} utr5 {:.4} utr3 {:.4}, macro {:.4}{}",
            st.epoch,
            f1("cds"),
            f1("intron"),
            f1("intergenic"),
            f1("utr5"),
            f1("utr3"),
            rep["macro_f1"].as_f64().unwrap_or(0.0),
            rep["frame_accuracy"]
                .as_f64()
                .map_or(String::new(), |a| format!(
                    ", codon position accuracy {a:.4}"
                ))
        ));
        checkpoint.save(&mut st, &opt, &mut log)?;
    }
    bar.finish_and_clear();
    files.load_best(&weights)?;
    Ok((model.frozen(&weights)?, weights, st))
}

/// Write the run's `config.toml`, `tokenizer.txt` and command; on resume the config must match.
pub fn init_run(dir: &Path, cfg: &SegmentRunConfig, resume: bool) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    run::write_run_files(dir, cfg, &cfg.tokenizer, resume, |_| read_config(dir))
}

/// Read a segmentation run's `config.toml`; a run of another task is a clear error.
pub fn read_config(dir: &Path) -> Result<SegmentRunConfig> {
    let cfg_path = dir.join("config.toml");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| {
        Error::input(format!(
            "{}: not a genolm run directory ({e})",
            dir.display()
        ))
    })?;
    let value: toml::Value = toml::from_str(&text).map_err(|e| {
        Error::input(format!(
            "{}: {}",
            cfg_path.display(),
            crate::error::one_line(&e.to_string())
        ))
    })?;
    let task = value.get("task").and_then(|t| t.as_str()).unwrap_or("");
    if task != "segment" {
        return Err(Error::input(format!(
            "{}: the model was trained for task '{task}', not per-base segmentation; train one \
             with `genolm train --task segment`",
            dir.display()
        )));
    }
    toml::from_str(&text).map_err(|e| {
        Error::input(format!(
            "{}: {}",
            cfg_path.display(),
            crate::error::one_line(&e.to_string())
        ))
    })
}

/// A trained segmentation model loaded from a run directory.
pub struct LoadedSegmentRun {
    /// The run's config.
    pub config: SegmentRunConfig,
    /// The model with its best weights, frozen for prediction (no autograd graph).
    pub model: SegmentModel,
    /// Its weights.
    pub weights: Weights,
    /// Its tokenizer.
    pub tokenizer: Box<dyn Tokenizer>,
    /// Decoder sequence signals (`signals.json`), when the run has them.
    pub signals: Option<crate::infer::signals::Signals>,
}

/// Load a segmentation run: config (task checked), tokenizer (vocabulary checked), weights.
pub fn load_run(dir: &Path) -> Result<LoadedSegmentRun> {
    let config = read_config(dir)?;
    let tokenizer = run::run_tokenizer(dir, &config.tokenizer)?;
    if tokenizer.vocab_size() != config.model.vocab_size {
        return Err(Error::input(format!(
            "{}: tokenizer {} has {} tokens but the model was trained for {}",
            dir.display(),
            config.tokenizer,
            tokenizer.vocab_size(),
            config.model.vocab_size
        )));
    }
    check_per_base(tokenizer.as_ref())?;
    let k = config.model.num_classes;
    if k != NUM_CLASSES && k != NUM_FRAMED {
        return Err(Error::input(format!(
            "{}: the model predicts {k} classes per strand; segment models predict {NUM_CLASSES} \
             (or {NUM_FRAMED} with codon positions)",
            dir.display()
        )));
    }
    let weights = Weights::new();
    let (p, b) = weights.builders(0, DType::F32, &crate::device::current());
    let model = SegmentModel::new(&config.model_config(), p, b)?;
    let wpath: PathBuf = dir.join("model.safetensors");
    weights.load(&load_tensors(&wpath)?, &wpath.display().to_string())?;
    let model = model.frozen(&weights)?;
    let signals = crate::infer::signals::read_run_signals(dir)?;
    Ok(LoadedSegmentRun {
        config,
        model,
        weights,
        tokenizer,
        signals,
    })
}
