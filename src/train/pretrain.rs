//! Language-model pretraining on genomes: masked-token (MLM) and next-token (NTP) objectives,
//! a linear LM head on any per-token backbone, held-out evaluation in bits per base,
//! periodic checkpoints and exact resume.
//!
//! **Model.** [`LanguageModel`] is a backbone (built exactly as in
//! [`crate::models::Classifier`], parameters under `backbone.`) followed by `lm_head`, a linear
//! map from the backbone's channels to the vocabulary at every position. Backbones that pool
//! (output length ≠ input length) are refused.
//!
//! **MLM.** Each position whose token is a base token (see [`TokenInfo`]) is selected with
//! probability `mask_prob` (15 %); a selected token is replaced by the mask token with
//! probability 0.8, by a uniformly drawn base token with 0.1, and kept with 0.1 (BERT). With
//! `mask_span = s > 1` (meant for overlapping k-mers, where a base leaks through its neighbours)
//! span starts are drawn with probability `mask_prob / s` and the `s` tokens from each start are
//! selected, so about `1 - (1 - p/s)^s` of the tokens are selected (14.1 % for p = 0.15, s = 6).
//! The loss is the mean cross-entropy over selected positions only
//! ([`crate::ops::cross_entropy_masked`]). The mask token is the tokenizer's `[MASK]` when it
//! has one (char, k-mer, BPE); otherwise (one-hot) one embedding row is added after the
//! tokenizer's vocabulary and its id is `vocab_size` ([`LmConfig::mask_id`]).
//!
//! **NTP.** Logits at position `t` predict token `t + 1`; every target that is a base token is
//! scored. The backbone must be causal (hyena or mamba with `bidirectional = false`, the
//! transformer with `causal = true`).
//!
//! **Bits per base.** Over the held-out tiles (see [`crate::data::windows`]): total nats over
//! the scored tokens / ln 2 / the bases those tokens cover — one base per character token,
//! `stride` bases per k-mer token (the bases a token adds to its predecessor), the decoded
//! length of a BPE token. For MLM the scored tokens are the masked ones (drawn with a fixed
//! seed, the same for every evaluation), so MLM and NTP numbers measure different things: NTP
//! bits per base is a proper cross-entropy rate comparable to a Markov model; MLM's sees context
//! on both sides.
//!
//! **Reproducibility.** The windows, masks and dropout of step `s` come from an RNG seeded by
//! `(seed, s)`, so a checkpoint holds only weights, optimizer moments and a small state; a run
//! resumed from any checkpoint replays the same steps.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::windows::{Genome, SoftMask, WindowOptions};
use crate::error::{Error, Result};
use crate::models::{build_backbone, Backbone, BackboneConfig, Ctx, Weights};
use crate::ops::{self, Linear};
use crate::tokenize::{self, Tokenizer};
use crate::train::run;
use crate::train::step::{
    self, Accumulated, Checkpointer, RunFiles, SavedState, Stepped, Throughput,
};

/// Pretraining objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Masked-token prediction (BERT style).
    Mlm,
    /// Next-token prediction (causal).
    Ntp,
}

impl Objective {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Mlm => "mlm",
            Objective::Ntp => "ntp",
        }
    }
}

/// The language model's config (stored under `[model]` in the run's `config.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmConfig {
    /// Embedding rows and LM-head outputs: the tokenizer's vocabulary, plus one when a mask row
    /// was added.
    pub vocab_size: usize,
    /// The tokenizer's vocabulary size.
    pub tokenizer_vocab: usize,
    /// Id of the mask token (MLM input).
    pub mask_id: u32,
    /// Tokens per window.
    pub seq_len: usize,
    /// The backbone.
    pub backbone: BackboneConfig,
}

/// Pretraining options (stored under `[train]` in the run's `config.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainOptions {
    /// Objective.
    pub objective: Objective,
    /// Windows per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub accumulate: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Fraction of the steps spent warming up.
    pub warmup_frac: f64,
    /// Final learning rate as a fraction of the peak (cosine decay).
    pub min_lr_ratio: f64,
    /// Clip the global gradient norm (0 = off).
    pub clip_norm: f64,
    /// Seed of initialisation, windows, masks and dropout.
    pub seed: u64,
    /// Optimizer steps.
    pub max_steps: u64,
    /// Evaluate on held-out windows every this many steps (0 = only at the end).
    pub eval_every: u64,
    /// Held-out windows used by the periodic evaluations (0 = all); the final one uses all.
    pub eval_windows: usize,
    /// Save a resumable checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: u64,
    /// Reverse-complement training windows with probability 0.5.
    pub rc_augment: bool,
    /// Redraw training windows with more N than this fraction.
    pub max_n_frac: f64,
    /// Grid starts shifted by up to this many bases (`None`: uniform starts).
    pub max_shift: Option<usize>,
    /// Soft-mask handling.
    pub softmask: SoftMask,
    /// MLM selection probability.
    pub mask_prob: f64,
    /// MLM span length in tokens (1 = token-level masking).
    pub mask_span: usize,
}

impl Default for PretrainOptions {
    fn default() -> Self {
        PretrainOptions {
            objective: Objective::Ntp,
            batch_size: 16,
            accumulate: 1,
            lr: 1e-3,
            weight_decay: 0.01,
            warmup_frac: 0.05,
            min_lr_ratio: 0.01,
            clip_norm: 1.0,
            seed: 0,
            max_steps: 1000,
            eval_every: 200,
            eval_windows: 64,
            checkpoint_every: 100,
            rc_augment: true,
            max_n_frac: 0.1,
            max_shift: None,
            softmask: SoftMask::Keep,
            mask_prob: 0.15,
            mask_span: 1,
        }
    }
}

/// Data of a pretraining run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PretrainData {
    /// Genome FASTA files.
    pub genome: Vec<String>,
    /// Held-out record names.
    pub holdout: Vec<String>,
}

/// The `config.toml` of a pretraining run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    /// Always `pretrain`.
    pub task: String,
    /// Tokenizer spec; a BPE file is copied into the run directory as `tokenizer.json`.
    pub tokenizer: String,
    /// Data.
    pub data: PretrainData,
    /// Training options.
    pub train: PretrainOptions,
    /// Model config (`[model.backbone]` is the backbone, as in classification runs).
    pub model: LmConfig,
}

/// Per-id facts about a tokenizer's vocabulary that the objectives need.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// Id is a base token (only A/C/G/T): a prediction target and an MLM random replacement.
    pub is_base: Vec<bool>,
    /// Bases a token adds (see the module documentation).
    pub bases: Vec<f64>,
    /// The base-token ids.
    pub base_ids: Vec<u32>,
    /// Mask id (may equal the tokenizer's vocabulary size: an added row).
    pub mask_id: u32,
    /// True when the mask row was added to the vocabulary.
    pub mask_added: bool,
    /// Model vocabulary (embedding rows).
    pub vocab: usize,
}

impl TokenInfo {
    /// Facts about `tok`'s vocabulary.
    pub fn new(tok: &dyn Tokenizer) -> Result<Self> {
        let v = tok.vocab_size();
        let spec = tokenize::parse_spec(&tok.spec())?;
        let stride = match spec {
            tokenize::Spec::Kmer { stride, .. } => Some(stride),
            _ => None,
        };
        let mut is_base = vec![false; v];
        let mut bases = vec![0.0; v];
        for id in 0..v as u32 {
            let Some(t) = tok.id_to_token(id) else {
                continue;
            };
            let ok = !t.is_empty()
                && t.bytes()
                    .all(|b| matches!(b.to_ascii_uppercase(), b'A' | b'C' | b'G' | b'T'));
            if ok && !tok.special_tokens().contains(id) {
                is_base[id as usize] = true;
                // k-mer tail tokens (single bases) add one base; full k-mers add `stride`.
                bases[id as usize] = match stride {
                    Some(s) if t.len() > 1 => s as f64,
                    _ => t.len() as f64,
                };
            }
        }
        let base_ids: Vec<u32> = (0..v as u32).filter(|&i| is_base[i as usize]).collect();
        if base_ids.is_empty() {
            return Err(Error::input(format!(
                "tokenizer {} has no base tokens to predict",
                tok.spec()
            )));
        }
        let (mask_id, mask_added) = match tok.special_tokens().mask {
            Some(m) => (m, false),
            None => (v as u32, true),
        };
        Ok(TokenInfo {
            is_base,
            bases,
            base_ids,
            mask_id,
            mask_added,
            vocab: v + usize::from(mask_added),
        })
    }

    /// True if `id` is a base token.
    pub fn base(&self, id: u32) -> bool {
        self.is_base.get(id as usize).copied().unwrap_or(false)
    }
}

/// Bases per window needed for `seq_len` tokens of `spec` (BPE: 16 per token, then truncated).
pub fn window_bases(spec: &tokenize::Spec, seq_len: usize) -> usize {
    match spec {
        tokenize::Spec::Kmer { k, stride, .. } => (seq_len.max(1) - 1) * stride + k,
        tokenize::Spec::Bpe(_) => 16 * seq_len,
        _ => seq_len,
    }
}

/// Token ids of `window`, exactly `seq_len` of them.
pub fn encode_window(tok: &dyn Tokenizer, window: &[u8], seq_len: usize) -> Result<Vec<u32>> {
    let mut ids = tok.encode(window)?;
    if ids.len() < seq_len {
        return Err(Error::input(format!(
            "a window of {} bases gives only {} tokens with {}, fewer than --seq-len {seq_len}",
            window.len(),
            ids.len(),
            tok.spec()
        )));
    }
    ids.truncate(seq_len);
    Ok(ids)
}

/// An MLM batch: corrupted inputs, targets and the 0/1 selection weights, all `(rows × len)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Masked {
    /// Input ids after replacement.
    pub inputs: Vec<u32>,
    /// Original ids.
    pub targets: Vec<u32>,
    /// 1 at selected (scored) positions, 0 elsewhere.
    pub weights: Vec<f32>,
}

/// Select and corrupt MLM positions of `ids` (rows of `len` tokens); see the module docs.
pub fn mlm_mask<R: Rng>(
    ids: &[u32],
    len: usize,
    info: &TokenInfo,
    prob: f64,
    span: usize,
    rng: &mut R,
) -> Masked {
    let span = span.max(1);
    let mut selected = vec![false; ids.len()];
    let start_p = (prob / span as f64).clamp(0.0, 1.0);
    for row in 0..ids.len() / len.max(1) {
        let base = row * len;
        for i in 0..len {
            if rng.random_bool(start_p) {
                for j in i..(i + span).min(len) {
                    selected[base + j] = true;
                }
            }
        }
    }
    let mut inputs = ids.to_vec();
    let mut weights = vec![0f32; ids.len()];
    for (i, &sel) in selected.iter().enumerate() {
        if !sel || !info.base(ids[i]) {
            continue;
        }
        weights[i] = 1.0;
        let r: f64 = rng.random();
        if r < 0.8 {
            inputs[i] = info.mask_id;
        } else if r < 0.9 {
            inputs[i] = info.base_ids[rng.random_range(0..info.base_ids.len())];
        }
    }
    Masked {
        inputs,
        targets: ids.to_vec(),
        weights,
    }
}

/// A backbone with a linear language-model head.
pub struct LanguageModel {
    /// The feature extractor (parameters under `backbone.`).
    pub backbone: Box<dyn Backbone>,
    /// `lm_head`: channels → vocabulary at each position.
    pub head: Linear,
    /// The config it was built from.
    pub config: LmConfig,
}

/// True if the backbone's output at position `t` depends only on inputs `0..=t`.
pub fn is_causal(cfg: &BackboneConfig) -> bool {
    match cfg {
        BackboneConfig::Hyena(c) => !c.bidirectional,
        BackboneConfig::Mamba(c) => !c.bidirectional && !c.rc_equivariant,
        BackboneConfig::Transformer(c) => c.causal,
        BackboneConfig::Cnn(_) | BackboneConfig::GbCnn(_) | BackboneConfig::KmerLr(_) => false,
    }
}

/// Make a backbone config causal (`--causal`); CNNs have no causal form.
pub fn make_causal(cfg: &mut BackboneConfig) -> Result<()> {
    match cfg {
        BackboneConfig::Hyena(c) => c.bidirectional = false,
        BackboneConfig::Mamba(c) if c.rc_equivariant => {
            return Err(Error::input(
                "caduceus (RC-equivariant Mamba) has no causal form; use --model mamba",
            ))
        }
        BackboneConfig::Mamba(c) => c.bidirectional = false,
        BackboneConfig::Transformer(c) => c.causal = true,
        other => {
            return Err(Error::input(format!(
                "model {} has no causal form (next-token prediction needs hyena, mamba or \
                 transformer)",
                other.name()
            )))
        }
    }
    Ok(())
}

impl LanguageModel {
    /// The same model over `weights` with no autograd graph: the model to evaluate with.
    pub fn frozen(&self, weights: &Weights) -> Result<Self> {
        let (p, b) = weights.frozen_builders(&crate::device::current());
        Self::new(&self.config, p, b)
    }

    /// Build from `cfg`; parameters from `params`, buffers from `buffers`.
    pub fn new(cfg: &LmConfig, params: VarBuilder, buffers: VarBuilder) -> Result<Self> {
        if cfg.seq_len < 2 || cfg.vocab_size == 0 {
            return Err(Error::input(format!(
                "impossible language-model config: seq_len {} (needs >= 2), vocab_size {}",
                cfg.seq_len, cfg.vocab_size
            )));
        }
        let backbone = build_backbone(
            &cfg.backbone,
            cfg.vocab_size,
            params.pp("backbone"),
            buffers.pp("backbone"),
        )?;
        let out = backbone.out_len(cfg.seq_len);
        if out != cfg.seq_len {
            return Err(Error::input(format!(
                "model {} pools ({} tokens in, {out} positions out); a language model needs \
                 per-token features (use hyena, mamba, transformer, or cnn with pool = 1)",
                cfg.backbone.name(),
                cfg.seq_len
            )));
        }
        let head = Linear::load(
            params.pp("lm_head"),
            backbone.out_channels(),
            cfg.vocab_size,
            true,
        )?;
        Ok(LanguageModel {
            backbone,
            head,
            config: cfg.clone(),
        })
    }

    /// Logits `(B, L, vocab)` for ids `(B, L)`.
    pub fn forward(&self, ids: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let f = self.backbone.forward(ids, ctx)?;
        let f = f.transpose(1, 2)?.contiguous()?;
        Ok(ops::linear(&f, self.head.weight(), self.head.bias())?)
    }
}

/// Build a fresh language model with weights initialised from `seed`.
pub fn build_lm(cfg: &LmConfig, seed: u64) -> Result<(LanguageModel, Weights)> {
    let weights = Weights::new();
    let (p, b) = weights.builders(seed, DType::F32, &crate::device::current());
    let model = LanguageModel::new(cfg, p, b)?;
    Ok((model, weights))
}

/// Inputs, targets and weights of one batch under an objective.
pub struct Prepared {
    /// Model input ids `(B, L)`.
    pub inputs: Tensor,
    /// Target ids `(B, L')` (`L' = L - 1` for NTP).
    pub targets: Tensor,
    /// 0/1 weights `(B, L')`.
    pub weights: Tensor,
    /// Bases covered by the scored targets.
    pub bases: f64,
    /// Scored targets.
    pub count: f64,
}

/// Prepare a batch of `rows × len` ids for `objective` (MLM draws its masks from `rng`).
pub fn prepare<R: Rng>(
    ids: &[u32],
    len: usize,
    objective: Objective,
    opts: &PretrainOptions,
    info: &TokenInfo,
    rng: &mut R,
) -> Result<Prepared> {
    let rows = ids.len() / len;
    let dev = crate::device::current();
    let (inputs, targets, weights, tlen) = match objective {
        Objective::Mlm => {
            let m = mlm_mask(ids, len, info, opts.mask_prob, opts.mask_span, rng);
            (m.inputs, m.targets, m.weights, len)
        }
        Objective::Ntp => {
            let mut t = Vec::with_capacity(rows * (len - 1));
            for r in 0..rows {
                t.extend_from_slice(&ids[r * len + 1..(r + 1) * len]);
            }
            let w: Vec<f32> = t
                .iter()
                .map(|&i| if info.base(i) { 1.0 } else { 0.0 })
                .collect();
            (ids.to_vec(), t, w, len - 1)
        }
    };
    let (mut bases, mut count) = (0.0, 0.0);
    for (t, w) in targets.iter().zip(&weights) {
        if *w > 0.0 {
            bases += info.bases[*t as usize];
            count += 1.0;
        }
    }
    Ok(Prepared {
        inputs: Tensor::from_vec(inputs, (rows, len), &dev)?,
        targets: Tensor::from_vec(targets, (rows, tlen), &dev)?,
        weights: Tensor::from_vec(weights, (rows, tlen), &dev)?,
        bases,
        count,
    })
}

/// Mean loss over the scored positions of a prepared batch (a scalar tensor).
pub fn batch_loss(
    model: &LanguageModel,
    p: &Prepared,
    objective: Objective,
    ctx: &mut Ctx,
) -> Result<Tensor> {
    let logits = model.forward(&p.inputs, ctx)?;
    let logits = match objective {
        Objective::Mlm => logits,
        Objective::Ntp => {
            let l = logits.dim(1)?;
            logits.narrow(1, 0, l - 1)?
        }
    };
    Ok(ops::cross_entropy_masked(&logits, &p.targets, &p.weights)?)
}

/// Held-out evaluation result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Mean nats per scored token.
    pub loss: f64,
    /// exp(loss).
    pub perplexity: f64,
    /// Total nats / ln 2 / bases covered by the scored tokens.
    pub bits_per_base: f64,
    /// Scored tokens.
    pub tokens: u64,
    /// Bases they cover.
    pub bases: f64,
    /// Windows evaluated.
    pub windows: usize,
}

/// Evaluate on `windows` (bases); MLM masks come from `seed` and the window index.
pub fn evaluate(
    model: &LanguageModel,
    tok: &dyn Tokenizer,
    info: &TokenInfo,
    opts: &PretrainOptions,
    windows: &[&[u8]],
    batch: usize,
) -> Result<EvalResult> {
    let len = model.config.seq_len;
    let (mut nats, mut bases, mut count) = (0.0f64, 0.0f64, 0.0f64);
    let mut drop_rng = ChaCha8Rng::seed_from_u64(0);
    for (ci, chunk) in windows.chunks(batch.max(1)).enumerate() {
        let mut ids = Vec::with_capacity(chunk.len() * len);
        for w in chunk {
            ids.extend(encode_window(tok, w, len)?);
        }
        let mut rng = rng_for(opts.seed, 3, ci as u64);
        let p = prepare(&ids, len, opts.objective, opts, info, &mut rng)?;
        if p.count == 0.0 {
            continue;
        }
        let mut ctx = Ctx {
            train: false,
            rng: &mut drop_rng,
        };
        let loss = batch_loss(model, &p, opts.objective, &mut ctx)?;
        nats += loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * p.count;
        bases += p.bases;
        count += p.count;
    }
    let loss = if count > 0.0 { nats / count } else { f64::NAN };
    Ok(EvalResult {
        loss,
        perplexity: loss.exp(),
        bits_per_base: if bases > 0.0 {
            nats / std::f64::consts::LN_2 / bases
        } else {
            f64::NAN
        },
        tokens: count as u64,
        bases,
        windows: windows.len(),
    })
}

pub use crate::train::step::rng_for;

/// Everything in a pretraining run's `state.json` besides tensors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PretrainState {
    /// Optimizer steps taken.
    pub step: u64,
    /// Lowest periodic held-out loss so far.
    pub best: Option<f64>,
    /// Step of the best held-out loss.
    pub best_step: u64,
    /// All steps done.
    pub finished: bool,
    /// Byte length of `metrics.jsonl` at this checkpoint.
    pub log_bytes: u64,
    /// Training tokens consumed.
    pub tokens: u64,
    /// Seconds spent training (summed over resumes).
    pub train_seconds: f64,
}

impl SavedState for PretrainState {
    fn step(&self) -> u64 {
        self.step
    }
    fn log_bytes(&mut self) -> &mut u64 {
        &mut self.log_bytes
    }
}

/// A pretraining job.
pub struct PretrainJob<'a> {
    /// Run config (model, options, data).
    pub config: &'a PretrainConfig,
    /// The tokenizer.
    pub tokenizer: &'a dyn Tokenizer,
    /// Training and held-out sequences.
    pub genome: &'a Genome,
    /// Run directory.
    pub dir: &'a Path,
    /// Continue from `dir/last.safetensors` and `dir/state.json` if present.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
}

/// Evenly spaced subset of `n` items of `all` (all when `n` is 0 or too large).
fn spread<'a>(all: &[&'a [u8]], n: usize) -> Vec<&'a [u8]> {
    if n == 0 || n >= all.len() {
        return all.to_vec();
    }
    (0..n).map(|i| all[i * all.len() / n]).collect()
}

/// Train; returns the final state and the held-out evaluation of the best (or last) weights.
pub fn pretrain(job: &PretrainJob) -> Result<(PretrainState, Option<EvalResult>)> {
    let cfg = job.config;
    let o = &cfg.train;
    if o.batch_size == 0 || o.accumulate == 0 || o.max_steps == 0 {
        return Err(Error::input(
            "--batch, --accumulate and --max-steps must be at least 1",
        ));
    }
    if !(0.0..=1.0).contains(&o.mask_prob) {
        return Err(Error::input(format!(
            "--mask-prob must be in [0, 1], got {}",
            o.mask_prob
        )));
    }
    if o.objective == Objective::Ntp && !is_causal(&cfg.model.backbone) {
        return Err(Error::input(format!(
            "--objective ntp needs a causal backbone, but this {} config is bidirectional; \
             add --causal (or set bidirectional = false / causal = true in --model-config)",
            cfg.model.backbone.name()
        )));
    }
    let tok = job.tokenizer;
    let info = TokenInfo::new(tok)?;
    if info.vocab != cfg.model.vocab_size {
        return Err(Error::Internal("vocabulary size mismatch".into()));
    }
    let spec = tokenize::parse_spec(&tok.spec())?;
    let wlen = window_bases(&spec, cfg.model.seq_len);
    let sampler = job.genome.sampler(WindowOptions {
        len: wlen,
        max_n_frac: o.max_n_frac,
        rc: o.rc_augment,
        max_shift: o.max_shift,
    })?;
    let tiles = job.genome.holdout_tiles(wlen);
    if !job.genome.holdout.is_empty() && tiles.is_empty() {
        return Err(Error::input(format!(
            "held-out sequences are shorter than one window ({wlen} bases)"
        )));
    }
    let periodic = spread(&tiles, o.eval_windows);
    let eval_batch = o.batch_size.max(8);

    let (model, weights) = build_lm(&cfg.model, o.seed)?;
    let mut opt = step::optimizer(&weights, o.lr, o.weight_decay, |_| 1.0)?;
    let sched = step::schedule(o.lr, o.warmup_frac, o.min_lr_ratio, o.max_steps);
    let dir = job.dir;
    let files = RunFiles::new(dir);
    let (mut st, mut log, resumed) =
        step::start::<PretrainState>(&files, job.resume, &weights, &mut opt, || {
            for p in [&files.best, &files.last, &files.state] {
                let _ = std::fs::remove_file(p);
            }
            Ok(())
        })?;
    if resumed {
        eprintln!("resuming {} at step {}", dir.display(), st.step);
    }
    let checkpoint = Checkpointer {
        files: &files,
        weights: &weights,
    };
    let bar = step::progress_bar(job.progress, o.max_steps, st.step)?;
    let len = cfg.model.seq_len;
    let mut toks = Throughput::default();
    while st.step < o.max_steps {
        let t_step = Instant::now();
        let mut rng = rng_for(o.seed, 2, st.step);
        let mut acc = Accumulated::default();
        for _ in 0..o.accumulate {
            let mut ids = Vec::with_capacity(o.batch_size * len);
            for _ in 0..o.batch_size {
                let w = sampler.sample(&mut rng)?;
                ids.extend(encode_window(tok, &w, len)?);
            }
            let p = prepare(&ids, len, o.objective, o, &info, &mut rng)?;
            let mut ctx = Ctx {
                train: true,
                rng: &mut rng,
            };
            let loss = batch_loss(&model, &p, o.objective, &mut ctx)?;
            let lv = step::loss_value(&loss, st.step + 1, None, "lower --lr")?;
            acc.add(&opt, &loss, lv)?;
        }
        let lr = sched.lr(st.step);
        let Stepped { loss, norm } = acc.step(&mut opt, lr, o.clip_norm)?;
        st.step += 1;
        let ntok = (o.batch_size * o.accumulate * len) as u64;
        st.tokens += ntok;
        st.train_seconds += t_step.elapsed().as_secs_f64();
        toks.add(ntok);
        let rate = toks.rate();
        log.write(
            &serde_json::json!({"kind": "step", "step": st.step, "loss": loss, "lr": lr,
                "grad_norm": norm, "tokens_per_s": rate}),
        )?;
        bar.set_position(st.step);
        bar.set_message(format!("loss {loss:.4}, {rate:.0} tok/s"));
        toks.after_step(st.step);
        let last = st.step >= o.max_steps;
        if !periodic.is_empty() && ((o.eval_every > 0 && st.step % o.eval_every == 0) || last) {
            let e = evaluate(
                &model.frozen(&weights)?,
                tok,
                &info,
                o,
                &periodic,
                eval_batch,
            )?;
            log.write(
                &serde_json::json!({"kind": "eval", "step": st.step, "loss": e.loss,
                    "perplexity": e.perplexity, "bits_per_base": e.bits_per_base,
                    "windows": e.windows}),
            )?;
            bar.println(format!(
                "step {}: held-out loss {:.4}, {:.4} bits/base ({} windows)",
                st.step, e.loss, e.bits_per_base, e.windows
            ));
            if st.best.is_none_or(|b| e.loss < b) {
                st.best = Some(e.loss);
                st.best_step = st.step;
                files.save_best(&weights)?;
            }
        }
        if last {
            st.finished = true;
            if periodic.is_empty() {
                st.best_step = st.step;
                files.save_best(&weights)?;
            }
            checkpoint.save(&mut st, &opt, &mut log)?;
        } else if o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0 {
            checkpoint.save(&mut st, &opt, &mut log)?;
        }
    }
    bar.finish_and_clear();
    if tiles.is_empty() {
        return Ok((st, None));
    }
    files.load_best(&weights)?;
    let e = evaluate(&model.frozen(&weights)?, tok, &info, o, &tiles, eval_batch)?;
    Ok((st, Some(e)))
}

/// Prepare a pretraining run directory: `config.toml`, `tokenizer.txt` and the command.
/// Returns the config with the tokenizer spec as stored in the run.
pub fn init_run(dir: &Path, mut cfg: PretrainConfig, resume: bool) -> Result<PretrainConfig> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    run::copy_bpe(dir, &mut cfg.tokenizer)?;
    run::write_run_files(dir, &cfg, &cfg.tokenizer, resume, |p| {
        run::read_toml(p, true)
    })?;
    Ok(cfg)
}

/// Number of parameters of a model's weights.
pub fn param_count(w: &Weights) -> usize {
    let data = w.params.data().lock().expect("var map lock");
    data.values().map(|v| v.as_tensor().elem_count()).sum()
}
