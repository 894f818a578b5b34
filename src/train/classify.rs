//! Sequence-classification training: encoding, the training loop, evaluation, checkpoints and
//! exact resume.
//!
//! Reproducibility by construction: the data order of epoch `e` is a permutation drawn from
//! `(seed, e)`, and the randomness of step `s` (augmentation, dropout) from `(seed, s)`, so the
//! state to checkpoint is only the weights, batch-norm buffers, optimizer moments, the step and
//! the early-stopping record. A run resumed from any checkpoint replays the same steps as an
//! uninterrupted one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::LabeledSet;
use crate::error::{Error, Result};
use crate::models::{Classifier, Ctx, ModelConfig, Weights};
use crate::ops;
use crate::seq;
use crate::tokenize::Tokenizer;
use crate::train::metrics::{
    binary_metrics_at, multi_metrics, recall_threshold, youden_threshold, BinaryMetrics,
    MultiMetrics, DEFAULT_THRESHOLD,
};
use crate::train::step::{
    self, Accumulated, Checkpointer, EpochEnd, RunFiles, Stepped, Throughput,
};

/// Training options (stored in the run's `config.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainOptions {
    /// Passes over the training data.
    pub epochs: usize,
    /// Examples per optimizer micro-batch.
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed per optimizer step.
    pub accumulate: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Fraction of all steps spent warming up linearly.
    pub warmup_frac: f64,
    /// Final learning rate as a fraction of the peak (cosine decay).
    pub min_lr_ratio: f64,
    /// Clip the global gradient norm to this (0 = no clipping).
    pub clip_norm: f64,
    /// Stop after this many epochs without improvement of the validation metric (0 = never).
    pub patience: usize,
    /// Validation metric for early stopping and the best checkpoint: `auroc`, `f1`, `mcc`,
    /// `accuracy` or `loss`.
    pub metric: String,
    /// Randomly reverse-complement training examples (probability 0.5).
    pub rc_augment: bool,
    /// Average predictions over the sequence and its reverse complement at evaluation.
    pub rc_average: bool,
    /// Validate, keep and return the exponential moving average of the weights with this decay
    /// (see [`crate::train::optim::AdamW::enable_ema`]; 0 = off, the raw weights).
    pub ema: f64,
    /// Shift each training example by a uniform random `-max_shift ..= max_shift` tokens,
    /// filling the vacated end with `[PAD]` (0 = off).
    pub max_shift: usize,
    /// Seed for initialisation, data order, augmentation and dropout.
    pub seed: u64,
    /// Save a resumable checkpoint every this many steps (0 = at the end of each epoch only).
    pub checkpoint_every: u64,
    /// Stop after this many optimizer steps (0 = no limit).
    pub max_steps: u64,
    /// Decision threshold on the positive-class probability (two classes).
    pub threshold: f64,
    /// Replace `threshold` after training by the one that maximises Youden's J on the
    /// validation set (written to the run's `threshold.txt`).
    pub tune_threshold: bool,
    /// With `tune_threshold`: instead of Youden's J, the highest threshold whose validation
    /// sensitivity is at least this.
    pub min_recall: Option<f64>,
    /// Run directory whose backbone initialises this model (`--init`; none: from scratch).
    pub init: Option<String>,
    /// The backbone gets no updates for this many optimizer steps (head only).
    pub freeze_backbone_steps: u64,
    /// Backbone learning rate as a multiple of the head's.
    pub backbone_lr_scale: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 10,
            batch_size: 64,
            accumulate: 1,
            lr: 1e-3,
            weight_decay: 0.01,
            warmup_frac: 0.05,
            min_lr_ratio: 0.01,
            clip_norm: 1.0,
            patience: 3,
            metric: "auroc".into(),
            rc_augment: true,
            rc_average: true,
            max_shift: 0,
            ema: 0.0,
            seed: 0,
            checkpoint_every: 0,
            max_steps: 0,
            threshold: 0.5,
            tune_threshold: false,
            min_recall: None,
            init: None,
            freeze_backbone_steps: 0,
            backbone_lr_scale: 1.0,
        }
    }
}

impl TrainOptions {
    /// The decision threshold for validation probabilities `probs` with true `labels`: with
    /// `tune_threshold` and two classes, Youden's J on them (or the highest threshold that keeps
    /// sensitivity at `min_recall`), else `threshold`.
    pub fn decision_threshold(
        &self,
        num_classes: usize,
        probs: &[Vec<f32>],
        labels: &[u32],
    ) -> f64 {
        if self.tune_threshold && num_classes == 2 {
            tuned_threshold(probs, labels, self.min_recall)
        } else {
            self.threshold
        }
    }
}

/// The threshold chosen on two-class probabilities `probs` with true `labels`: the highest that
/// keeps sensitivity at `min_recall`, or without one, Youden's J.
pub fn tuned_threshold(probs: &[Vec<f32>], labels: &[u32], min_recall: Option<f64>) -> f64 {
    let scores: Vec<f64> = probs.iter().map(|p| p[1] as f64).collect();
    match min_recall {
        Some(r) => recall_threshold(&scores, labels, r),
        None => youden_threshold(&scores, labels),
    }
}

/// Token ids of a labelled set, forward and reverse-complemented, as flat `N × L` arrays.
pub struct Encoded {
    /// Forward token ids, row-major `(N, L)`.
    pub ids: Vec<u32>,
    /// Token ids of the reverse complements, row-major `(N, L)`.
    pub rc_ids: Vec<u32>,
    /// Class labels.
    pub labels: Vec<u32>,
    /// Tokens per sequence.
    pub len: usize,
    /// The tokenizer's `[PAD]` id (0 without one), for shifted examples.
    pub pad: u32,
}

impl Encoded {
    /// Number of examples.
    pub fn n(&self) -> usize {
        self.labels.len()
    }
}

/// Encode every sequence (and its reverse complement) in parallel; all must give `len` tokens
/// (`None`: the first sequence's count).
pub fn encode_set(set: &LabeledSet, tok: &dyn Tokenizer, len: Option<usize>) -> Result<Encoded> {
    let rows: Vec<(Vec<u32>, Vec<u32>)> = set
        .seqs
        .par_iter()
        .map(|s| Ok((tok.encode(s)?, tok.encode(&seq::revcomp(s))?)))
        .collect::<Result<_>>()?;
    let want = len.unwrap_or_else(|| rows.first().map_or(0, |r| r.0.len()));
    let mut ids = Vec::with_capacity(rows.len() * want);
    let mut rc_ids = Vec::with_capacity(rows.len() * want);
    for (i, (f, r)) in rows.into_iter().enumerate() {
        if f.len() != want || r.len() != want {
            return Err(set.error_at(
                i,
                format!(
                    "sequence gives {} tokens with {}, but the model takes {want} \
                     (all sequences must have the same length)",
                    f.len(),
                    tok.spec()
                ),
            ));
        }
        ids.extend(f);
        rc_ids.extend(r);
    }
    Ok(Encoded {
        ids,
        rc_ids,
        labels: set.labels.clone(),
        len: want,
        pad: tok.special_tokens().pad.unwrap_or(0),
    })
}

pub use crate::train::step::rng_for;

/// The example order of epoch `epoch`.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rng_for(seed, 1, epoch));
    idx
}

/// Rows `rows` of `enc` as a `(B, L)` id tensor; `rc[k]` takes row k's reverse complement and
/// `shift[k]` moves it right (positive) or left by that many tokens, `[PAD]` filling the
/// vacated end (missing entries: no RC, no shift).
fn batch_tensor(
    enc: &Encoded,
    rows: &[usize],
    rc: &[bool],
    shift: &[i64],
    dev: &Device,
) -> Result<Tensor> {
    let l = enc.len;
    let mut flat = Vec::with_capacity(rows.len() * l);
    for (k, &i) in rows.iter().enumerate() {
        let src = if rc.get(k).copied().unwrap_or(false) {
            &enc.rc_ids
        } else {
            &enc.ids
        };
        let row = &src[i * l..(i + 1) * l];
        let s = shift.get(k).copied().unwrap_or(0);
        let m = (s.unsigned_abs() as usize).min(l);
        if s >= 0 {
            flat.extend(std::iter::repeat_n(enc.pad, m));
            flat.extend_from_slice(&row[..l - m]);
        } else {
            flat.extend_from_slice(&row[m..]);
            flat.extend(std::iter::repeat_n(enc.pad, m));
        }
    }
    Ok(Tensor::from_vec(flat, (rows.len(), l), dev)?)
}

/// Class probabilities `N × C` for every example, in evaluation mode, optionally averaged over
/// the reverse complement.
pub fn predict(
    model: &Classifier,
    enc: &Encoded,
    batch: usize,
    rc_average: bool,
) -> Result<Vec<Vec<f32>>> {
    let dev = crate::device::current();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut out = Vec::with_capacity(enc.n());
    let rows: Vec<usize> = (0..enc.n()).collect();
    for chunk in rows.chunks(batch.max(1)) {
        let mut ctx = Ctx {
            train: false,
            rng: &mut rng,
        };
        let x = batch_tensor(enc, chunk, &[], &[], &dev)?;
        let mut p = ops::softmax(&model.forward(&x, &mut ctx)?, 1)?;
        if rc_average {
            let flags = vec![true; chunk.len()];
            let xr = batch_tensor(enc, chunk, &flags, &[], &dev)?;
            let pr = ops::softmax(&model.forward(&xr, &mut ctx)?, 1)?;
            p = ((p + pr)? * 0.5)?;
        }
        out.extend(p.to_dtype(DType::F32)?.to_vec2::<f32>()?);
    }
    Ok(out)
}

/// Metrics of predictions: binary metrics (positive class = label 1) or multi-class metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Metrics {
    /// Two classes.
    Binary(BinaryMetrics),
    /// More than two classes.
    Multi(MultiMetrics),
}

impl Metrics {
    /// Compute metrics of `probs` against `labels` (two classes: at threshold 0.5).
    pub fn of(probs: &[Vec<f32>], labels: &[u32], num_classes: usize) -> Self {
        Self::at(probs, labels, num_classes, DEFAULT_THRESHOLD)
    }

    /// Compute metrics of `probs` against `labels`; with two classes, predict the positive class
    /// when its probability is at least `threshold`.
    pub fn at(probs: &[Vec<f32>], labels: &[u32], num_classes: usize, threshold: f64) -> Self {
        if num_classes == 2 {
            let scores: Vec<f64> = probs.iter().map(|p| p[1] as f64).collect();
            Metrics::Binary(binary_metrics_at(&scores, labels, threshold))
        } else {
            let pred: Vec<u32> = probs
                .iter()
                .map(|p| {
                    p.iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map_or(0, |(i, _)| i as u32)
                })
                .collect();
            Metrics::Multi(multi_metrics(&pred, labels, num_classes))
        }
    }

    /// A named figure (`auroc`, `auprc`, `f1`, `mcc`, `accuracy`); multi-class maps `f1` to
    /// macro-F1 and AUROC/AUPRC to NaN-free 0.
    pub fn get(&self, name: &str) -> Option<f64> {
        match self {
            Metrics::Binary(m) => match name {
                "auroc" => Some(m.auroc),
                "auprc" => Some(m.auprc),
                "f1" => Some(m.f1),
                "mcc" => Some(m.mcc),
                "accuracy" => Some(m.accuracy),
                _ => None,
            },
            Metrics::Multi(m) => match name {
                "f1" | "auroc" | "auprc" => Some(m.macro_f1),
                "mcc" => Some(m.mcc),
                "accuracy" => Some(m.accuracy),
                _ => None,
            },
        }
    }
}

/// Mean cross-entropy of probabilities against labels.
pub fn mean_nll(probs: &[Vec<f32>], labels: &[u32]) -> f64 {
    let n = probs.len().max(1) as f64;
    probs
        .iter()
        .zip(labels)
        .map(|(p, &y)| -(p[y as usize].max(1e-12) as f64).ln())
        .sum::<f64>()
        / n
}

/// Name of the `U8` tensor in `last.safetensors` holding the run state as JSON (the same text as
/// `state.json`).
pub const STATE_TENSOR: &str = "run_state.json";

/// Everything in a run directory's `state.json` besides tensors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    /// Optimizer steps taken.
    pub step: u64,
    /// Epoch the next step belongs to.
    pub epoch: u64,
    /// Micro-batches of that epoch already consumed.
    pub batch_in_epoch: u64,
    /// Best validation metric so far (higher is better; loss is negated).
    pub best: Option<f64>,
    /// Epoch of the best metric.
    pub best_epoch: u64,
    /// Epochs since the best metric.
    pub bad_epochs: u64,
    /// Training stopped (early stopping, max steps or all epochs done).
    pub finished: bool,
    /// Byte length of `metrics.jsonl` at this checkpoint (truncated to it on resume).
    pub log_bytes: u64,
    /// Per-epoch (epoch, train loss, valid loss, valid metric) history for the plots.
    pub history: Vec<(u64, f64, f64, f64)>,
}

/// Save tensors as safetensors atomically (temp file, then rename).
pub fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path.display(), e))
}

/// Load safetensors, naming the file on failure.
pub fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| Error::input(format!("{}: cannot read checkpoint: {e}", path.display())))
}

/// A training job's inputs.
pub struct Job<'a> {
    /// Model config.
    pub model: &'a ModelConfig,
    /// Training options.
    pub opts: &'a TrainOptions,
    /// Encoded training examples.
    pub train: &'a Encoded,
    /// Encoded validation examples.
    pub valid: &'a Encoded,
    /// Run directory.
    pub dir: &'a Path,
    /// Continue from `dir/last.safetensors` and `dir/state.json` if present.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
}

/// Build a fresh model with weights initialised from `seed`.
pub fn build_model(cfg: &ModelConfig, seed: u64) -> Result<(Classifier, Weights)> {
    let dev = crate::device::current();
    let weights = Weights::new();
    let (p, b) = weights.builders(seed, DType::F32, &dev);
    let model = Classifier::new(cfg, p, b)?;
    Ok((model, weights))
}

/// Train, validating each epoch; returns the model with the best validation weights loaded,
/// frozen for prediction (no autograd graph), and the weights.
pub fn train(job: &Job) -> Result<(Classifier, Weights, RunState)> {
    let o = job.opts;
    if o.batch_size == 0 || o.accumulate == 0 || o.epochs == 0 {
        return Err(Error::input(
            "batch size, accumulation and epochs must be at least 1",
        ));
    }
    if !["auroc", "f1", "mcc", "accuracy", "loss", "auprc"].contains(&o.metric.as_str()) {
        return Err(Error::input(format!(
            "unknown validation metric '{}' (auroc, auprc, f1, mcc, accuracy, loss)",
            o.metric
        )));
    }

    let dev = crate::device::current();
    let (model, weights) = build_model(job.model, o.seed)?;
    // Backbone and head are two parameter groups: the backbone's learning rate is scaled.
    let mut opt = step::backbone_head_optimizer(&weights, o)?;
    opt.enable_ema(o.ema)?;
    let n = job.train.n();
    let total_steps = step::total_steps(n, o.batch_size, o.accumulate, o.epochs, o.max_steps);
    let sched = step::schedule(o.lr, o.warmup_frac, o.min_lr_ratio, total_steps);
    let files = RunFiles::new(job.dir);
    // The run state travels inside last.safetensors (one atomic rename with the weights), so a
    // kill between writing the checkpoint and state.json cannot pair new weights with an old
    // state; state.json is read only for checkpoints written before that.
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

    let started = Instant::now();
    let mut seen = Throughput::default();
    while !st.finished && st.epoch < o.epochs as u64 {
        let order = epoch_order(n, o.seed, st.epoch);
        let batches: Vec<&[usize]> = order.chunks(o.batch_size).collect();
        let mut epoch_loss = 0.0;
        let mut epoch_batches = 0usize;
        while (st.batch_in_epoch as usize) < batches.len() {
            // One optimizer step over up to `accumulate` micro-batches.
            let mut rng = rng_for(o.seed, 2, st.step);
            let frozen = st.step < o.freeze_backbone_steps;
            let mut acc = Accumulated::default();
            while acc.micro() < o.accumulate && (st.batch_in_epoch as usize) < batches.len() {
                let rows = batches[st.batch_in_epoch as usize];
                let rc: Vec<bool> = rows
                    .iter()
                    .map(|_| o.rc_augment && rng.random_bool(0.5))
                    .collect();
                // Drawn only when shifting, so runs without it keep their random stream.
                let m = o.max_shift as i64;
                let shift: Vec<i64> = if m > 0 {
                    rows.iter().map(|_| rng.random_range(-m..=m)).collect()
                } else {
                    Vec::new()
                };
                let x = batch_tensor(job.train, rows, &rc, &shift, &dev)?;
                let y: Vec<u32> = rows.iter().map(|&i| job.train.labels[i]).collect();
                let y = Tensor::from_vec(y, rows.len(), &dev)?;
                let mut ctx = Ctx {
                    train: true,
                    rng: &mut rng,
                };
                let logits = model.forward_with(&x, &mut ctx, frozen)?;
                let loss = ops::cross_entropy(&logits, &y, None)?;
                let lv = step::loss_value(
                    &loss,
                    st.step + 1,
                    Some(st.epoch + 1),
                    "lower --lr or check the data",
                )?;
                acc.add(&opt, &loss, lv)?;
                st.batch_in_epoch += 1;
                seen.add(rows.len() as u64);
            }
            let lr = sched.lr(st.step);
            let Stepped { loss, norm } = acc.step(&mut opt, lr, o.clip_norm)?;
            st.step += 1;
            epoch_loss += loss;
            epoch_batches += 1;
            let rate = seen.rate();
            log.write(
                &serde_json::json!({"kind": "step", "step": st.step, "epoch": st.epoch + 1,
                    "loss": loss, "lr": lr, "grad_norm": norm, "examples_per_s": rate}),
            )?;
            bar.set_position(st.step);
            bar.set_message(format!("loss {loss:.4}, {rate:.0} ex/s"));
            seen.after_step(st.step);
            if step::after_step(&mut st, o, batches.len(), |st| {
                checkpoint.save(st, &opt, &mut log)
            })? {
                break;
            }
        }
        // End of epoch (or max steps): validate, keep the best, decide on stopping. With a
        // moving average, the averaged weights are validated and kept, then swapped back out.
        opt.swap_ema()?;
        let frozen = model.frozen(&weights)?;
        let probs = predict(&frozen, job.valid, o.batch_size.max(256), o.rc_average)?;
        let vloss = mean_nll(&probs, &job.valid.labels);
        let m = Metrics::of(&probs, &job.valid.labels, job.model.num_classes);
        let score = if o.metric == "loss" {
            -vloss
        } else {
            m.get(&o.metric).unwrap_or(0.0)
        };
        let train_loss = epoch_loss / epoch_batches.max(1) as f64;
        EpochEnd {
            train_loss,
            valid_loss: vloss,
            score,
            valid: serde_json::json!(m),
            patience: o.patience,
            epochs: o.epochs,
            started,
            files: &files,
        }
        .apply(&mut st, &mut log, &weights)?;
        drop(frozen);
        opt.swap_ema()?;
        bar.println(format!(
            "epoch {}: train loss {train_loss:.4}, valid loss {vloss:.4}, valid {} {:.4}",
            st.epoch,
            o.metric,
            score.abs()
        ));
        checkpoint.save(&mut st, &opt, &mut log)?;
    }
    bar.finish_and_clear();
    // Load the best weights for evaluation.
    files.load_best(&weights)?;
    Ok((model.frozen(&weights)?, weights, st))
}

/// A fresh run directory path is usable: created if missing.
pub fn prepare_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc() -> Encoded {
        Encoded {
            ids: vec![5, 6, 7, 8, 9, 10, 11, 12],
            rc_ids: vec![8, 7, 6, 5, 12, 11, 10, 9],
            labels: vec![0, 1],
            len: 4,
            pad: 0,
        }
    }

    fn rows(t: &Tensor) -> Vec<Vec<u32>> {
        t.to_vec2().unwrap()
    }

    #[test]
    fn shifted_batches_move_tokens_and_pad_the_vacated_end() {
        let e = enc();
        let dev = Device::Cpu;
        let plain = batch_tensor(&e, &[1, 0], &[], &[], &dev).unwrap();
        assert_eq!(rows(&plain), vec![vec![9, 10, 11, 12], vec![5, 6, 7, 8]]);
        let s = batch_tensor(&e, &[0, 1, 0], &[false, true, false], &[2, -1, 9], &dev).unwrap();
        assert_eq!(
            rows(&s),
            vec![vec![0, 0, 5, 6], vec![11, 10, 9, 0], vec![0, 0, 0, 0]]
        );
        // A zero shift is the plain batch.
        let z = batch_tensor(&e, &[1, 0], &[], &[0, 0], &dev).unwrap();
        assert_eq!(rows(&z), rows(&plain));
    }
}
