//! Pieces shared by the training loops of [`crate::train::classify`],
//! [`crate::train::segment`] and [`crate::train::pretrain`]: seeded RNGs, the optimizer and its
//! schedule, gradient accumulation, the metrics log, throughput, progress bar, checkpoints and
//! the end-of-epoch bookkeeping.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::models::Weights;
use crate::train::classify::{load_tensors, save_tensors, RunState, TrainOptions, STATE_TENSOR};
use crate::train::optim::{clip_factor, AdamW, AdamWConfig, Schedule};

/// The RNG of item `index` of stream `stream` under `seed` (data order, step randomness).
pub fn rng_for(seed: u64, stream: u64, index: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r.set_word_pos(u128::from(index) << 20);
    r
}

/// Write `bytes` atomically to `path`.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::io::write_atomic(path, |w| {
        w.write_all(bytes).map_err(|e| Error::io(path.display(), e))
    })
}

/// The optimizer of a run with a backbone and a head: two parameter groups, the backbone's
/// (`backbone.*`) learning rate scaled by `o.backbone_lr_scale` (checked here).
pub fn backbone_head_optimizer(weights: &Weights, o: &TrainOptions) -> Result<AdamW> {
    if !(o.backbone_lr_scale.is_finite() && o.backbone_lr_scale >= 0.0) {
        return Err(Error::input(format!(
            "--backbone-lr-scale must be a number >= 0, got {}",
            o.backbone_lr_scale
        )));
    }
    optimizer(weights, o.lr, o.weight_decay, |k| {
        if k.starts_with("backbone.") {
            o.backbone_lr_scale
        } else {
            1.0
        }
    })
}

/// Load the `--init` source's backbone into `weights` (nothing without `--init`).
pub fn load_init(weights: &Weights, o: &TrainOptions) -> Result<()> {
    if let Some(init) = &o.init {
        let src = crate::train::finetune::read_source(Path::new(init))?;
        crate::train::finetune::load_backbone(weights, &src)?;
    }
    Ok(())
}

/// AdamW over all trainable weights; `scale` gives each parameter's learning-rate multiplier.
pub fn optimizer(
    weights: &Weights,
    lr: f64,
    weight_decay: f64,
    scale: impl Fn(&str) -> f64,
) -> Result<AdamW> {
    let vars: Vec<(String, candle_core::Var, f64)> = {
        let data = weights.params.data().lock().expect("var map lock");
        data.iter()
            .map(|(k, v)| (k.clone(), v.clone(), scale(k)))
            .collect()
    };
    AdamW::new(
        vars,
        AdamWConfig {
            lr,
            weight_decay,
            ..Default::default()
        },
    )
}

/// Warmup over `warmup_frac` of `total` steps, then cosine decay to `min_ratio × peak`.
pub fn schedule(peak: f64, warmup_frac: f64, min_ratio: f64, total: u64) -> Schedule {
    Schedule {
        peak,
        warmup: (warmup_frac * total as f64).round() as u64,
        total,
        min_ratio,
    }
}

/// Optimizer steps of an epoch-based run over `n` examples, capped by `max_steps` (0: no cap).
pub fn total_steps(
    n: usize,
    batch_size: usize,
    accumulate: usize,
    epochs: usize,
    max_steps: u64,
) -> u64 {
    let micro_per_epoch = n.div_ceil(batch_size) as u64;
    let steps_per_epoch = micro_per_epoch.div_ceil(accumulate as u64);
    let total = steps_per_epoch * epochs as u64;
    if max_steps > 0 {
        total.min(max_steps)
    } else {
        total
    }
}

/// The value of a scalar loss; a non-finite one is an error naming `step` (and `epoch`).
pub fn loss_value(loss: &Tensor, step: u64, epoch: Option<u64>, hint: &str) -> Result<f64> {
    let lv = loss.to_scalar::<f32>()? as f64;
    if !lv.is_finite() {
        let epoch = epoch.map(|e| format!(" (epoch {e})")).unwrap_or_default();
        return Err(Error::input(format!(
            "loss became {lv} at step {step}{epoch}; {hint}"
        )));
    }
    Ok(lv)
}

/// Gradients and losses summed over the micro-batches of one optimizer step.
#[derive(Default)]
pub struct Accumulated {
    grads: Option<Vec<Option<Tensor>>>,
    loss: f64,
    micro: usize,
}

/// What one optimizer step did.
pub struct Stepped {
    /// Mean loss of its micro-batches.
    pub loss: f64,
    /// Norm of the mean gradient (before clipping).
    pub norm: f64,
}

impl Accumulated {
    /// Add the gradients of one micro-batch's `loss`, whose value is `value`.
    pub fn add(&mut self, opt: &AdamW, loss: &Tensor, value: f64) -> Result<()> {
        let grads = opt.collect(&loss.backward()?);
        self.grads = Some(match self.grads.take() {
            None => grads,
            Some(acc) => AdamW::add_grads(acc, grads)?,
        });
        self.loss += value;
        self.micro += 1;
        Ok(())
    }

    /// Micro-batches added so far.
    pub fn micro(&self) -> usize {
        self.micro
    }

    /// Step `opt` with the mean gradient, clipped to `clip_norm`, at learning rate `lr`.
    pub fn step(self, opt: &mut AdamW, lr: f64, clip_norm: f64) -> Result<Stepped> {
        let grads = self.grads.unwrap_or_default();
        let scale = 1.0 / self.micro as f64;
        let norm = opt.norm_of(&grads)? * scale;
        let factor = clip_factor(norm, clip_norm) * scale;
        opt.step_grads(grads, lr, factor)?;
        Ok(Stepped {
            loss: self.loss / self.micro as f64,
            norm,
        })
    }
}

/// Items (examples, bases, tokens) per second, over windows restarted every 20 steps.
pub struct Throughput {
    count: u64,
    since: Instant,
}

impl Default for Throughput {
    fn default() -> Self {
        Throughput {
            count: 0,
            since: Instant::now(),
        }
    }
}

impl Throughput {
    /// Count `n` more items.
    pub fn add(&mut self, n: u64) {
        self.count += n;
    }

    /// Items per second since the window started.
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.since.elapsed().as_secs_f64().max(1e-9)
    }

    /// Restart the window after every 20th step.
    pub fn after_step(&mut self, step: u64) {
        if step % 20 == 0 {
            *self = Throughput::default();
        }
    }
}

/// A progress bar over `total` steps at `pos` (hidden unless `show`).
pub fn progress_bar(show: bool, total: u64, pos: u64) -> Result<indicatif::ProgressBar> {
    if !show {
        return Ok(indicatif::ProgressBar::hidden());
    }
    let b = indicatif::ProgressBar::new(total);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} steps, ETA {eta} {msg}",
        )
        .map_err(|e| Error::Internal(e.to_string()))?
        .progress_chars("=> "),
    );
    b.set_position(pos);
    Ok(b)
}

/// The files of a run directory that training writes.
pub struct RunFiles {
    /// `metrics.jsonl`.
    pub log: PathBuf,
    /// `state.json`.
    pub state: PathBuf,
    /// `last.safetensors` (the resumable checkpoint).
    pub last: PathBuf,
    /// `model.safetensors` (the best weights).
    pub best: PathBuf,
}

impl RunFiles {
    /// The files of run directory `dir`.
    pub fn new(dir: &Path) -> Self {
        RunFiles {
            log: dir.join("metrics.jsonl"),
            state: dir.join("state.json"),
            last: dir.join("last.safetensors"),
            best: dir.join("model.safetensors"),
        }
    }

    /// Save the best weights.
    pub fn save_best(&self, weights: &Weights) -> Result<()> {
        save_tensors(&self.best, &weights.tensors())
    }

    /// Load the best weights into `weights`.
    pub fn load_best(&self, weights: &Weights) -> Result<()> {
        let best = load_tensors(&self.best)?;
        weights.load(&best, &self.best.display().to_string())
    }
}

/// A run state saved with each checkpoint (`state.json`).
pub trait SavedState: Serialize + DeserializeOwned + Default {
    /// Optimizer steps taken.
    fn step(&self) -> u64;
    /// Byte length of `metrics.jsonl` at the checkpoint.
    fn log_bytes(&mut self) -> &mut u64;
}

impl SavedState for RunState {
    fn step(&self) -> u64 {
        self.step
    }
    fn log_bytes(&mut self) -> &mut u64 {
        &mut self.log_bytes
    }
}

/// Start a run or resume it: on resume (a checkpoint found by [`read_state`]) load the weights
/// and optimizer moments and cut the log back to the checkpoint; otherwise run `fresh` and start
/// an empty log. Returns the state, the log and whether the run was resumed.
pub fn start<S: SavedState>(
    files: &RunFiles,
    resume: bool,
    weights: &Weights,
    opt: &mut AdamW,
    fresh: impl FnOnce() -> Result<()>,
) -> Result<(S, MetricsLog, bool)> {
    match read_state::<S>(files, resume)? {
        Some((mut st, t)) => {
            weights.load(&t, &files.last.display().to_string())?;
            opt.load_state(&t, st.step())?;
            let log = MetricsLog::open(&files.log, Some(*st.log_bytes()))?;
            Ok((st, log, true))
        }
        None => {
            fresh()?;
            Ok((S::default(), MetricsLog::open(&files.log, None)?, false))
        }
    }
}

/// Saves the resumable checkpoint of one run (see [`save_checkpoint`]).
pub struct Checkpointer<'a> {
    /// The run files.
    pub files: &'a RunFiles,
    /// The model's weights.
    pub weights: &'a Weights,
}

impl Checkpointer<'_> {
    /// Record the log length in `st`, then save weights, optimizer moments and `st`.
    pub fn save<S: SavedState>(&self, st: &mut S, opt: &AdamW, log: &mut MetricsLog) -> Result<()> {
        *st.log_bytes() = log.flushed_len()?;
        save_checkpoint(self.files, self.weights, opt, st)
    }
}

/// Print that an epoch-based run resumes (to stderr).
pub fn say_resuming(dir: &Path, st: &RunState) {
    eprintln!(
        "resuming {} at step {} (epoch {}, batch {})",
        dir.display(),
        st.step,
        st.epoch + 1,
        st.batch_in_epoch
    );
}

/// After an optimizer step of an epoch-based run: true (and `st.finished`) once `max_steps`
/// (0: no limit) are done; otherwise save a checkpoint every `checkpoint_every` steps (0:
/// never) unless the epoch is over (its end saves one anyway).
pub fn after_step(
    st: &mut RunState,
    o: &TrainOptions,
    batches: usize,
    save: impl FnOnce(&mut RunState) -> Result<()>,
) -> Result<bool> {
    if o.max_steps > 0 && st.step >= o.max_steps {
        st.finished = true;
        return Ok(true);
    }
    if o.checkpoint_every > 0
        && st.step % o.checkpoint_every == 0
        && (st.batch_in_epoch as usize) < batches
    {
        save(st)?;
    }
    Ok(false)
}

/// Parse a run state from `state.json`.
fn read_state_json<S: DeserializeOwned>(path: &Path) -> Result<S> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    serde_json::from_str(&text).map_err(|e| Error::input(format!("{}: {e}", path.display())))
}

/// On resume, the saved run state and checkpoint tensors, if there is a checkpoint.
///
/// The state is read from the checkpoint's [`STATE_TENSOR`]; checkpoints written before it
/// existed fall back to `state.json`.
pub fn read_state<S: DeserializeOwned>(
    files: &RunFiles,
    resume: bool,
) -> Result<Option<(S, HashMap<String, Tensor>)>> {
    if !resume || !files.last.exists() {
        return Ok(None);
    }
    let t = load_tensors(&files.last)?;
    let state = match t.get(STATE_TENSOR) {
        Some(bytes) => Some(
            serde_json::from_slice::<S>(&bytes.to_vec1::<u8>()?).map_err(|e| {
                Error::input(format!(
                    "{}: bad run state in the checkpoint: {e}",
                    files.last.display()
                ))
            })?,
        ),
        None if files.state.exists() => Some(read_state_json(&files.state)?),
        None => None,
    };
    Ok(state.map(|s| (s, t)))
}

/// Save the resumable checkpoint: weights, optimizer moments and the state (as
/// [`STATE_TENSOR`], one atomic rename) to `last.safetensors`, then a readable copy of the state
/// to `state.json`.
pub fn save_checkpoint<S: Serialize>(
    files: &RunFiles,
    weights: &Weights,
    opt: &AdamW,
    st: &S,
) -> Result<()> {
    let json = serde_json::to_string_pretty(st).map_err(|e| Error::Internal(e.to_string()))?;
    let mut t = weights.tensors();
    t.extend(opt.state());
    let bytes = json.as_bytes().to_vec();
    let n = bytes.len();
    t.insert(
        STATE_TENSOR.into(),
        Tensor::from_vec(bytes, n, &Device::Cpu)?,
    );
    save_tensors(&files.last, &t)?;
    write_file(&files.state, json.as_bytes())
}

/// `metrics.jsonl`, one JSON object a line, opened for appending.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Open `path`: cut to `keep` bytes (resume: drop lines written after the checkpoint), or
    /// emptied when `keep` is `None` (a fresh run).
    pub fn open(path: &Path, keep: Option<u64>) -> Result<Self> {
        match keep {
            Some(len) => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io(path.display(), e))?;
                f.set_len(len).map_err(|e| Error::io(path.display(), e))?;
            }
            None => std::fs::write(path, b"").map_err(|e| Error::io(path.display(), e))?,
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path.display(), e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Append one line.
    pub fn write(&mut self, line: &serde_json::Value) -> Result<()> {
        writeln!(self.file, "{line}").map_err(|e| Error::io(self.path.display(), e))
    }

    /// Flush and return the length in bytes (the state's `log_bytes`).
    pub fn flushed_len(&mut self) -> Result<u64> {
        self.file
            .flush()
            .map_err(|e| Error::io(self.path.display(), e))?;
        Ok(self
            .file
            .metadata()
            .map_err(|e| Error::io(self.path.display(), e))?
            .len())
    }
}

/// End of an epoch-based run's epoch: record history, log the `epoch` line, keep the best
/// weights (higher `score` is better), count patience and move to the next epoch.
pub struct EpochEnd<'a> {
    /// Mean training loss of the epoch.
    pub train_loss: f64,
    /// Validation loss.
    pub valid_loss: f64,
    /// Validation metric (loss negated), compared with the best so far.
    pub score: f64,
    /// Validation report, logged as `valid`.
    pub valid: serde_json::Value,
    /// Epochs without improvement before stopping (0 = never).
    pub patience: usize,
    /// Epochs of the run.
    pub epochs: usize,
    /// When training started (for `seconds`).
    pub started: Instant,
    /// The run files (the best weights go to `model.safetensors`).
    pub files: &'a RunFiles,
}

impl EpochEnd<'_> {
    /// Apply to `st` (and `log`, `weights`); `st.epoch` is the next epoch afterwards.
    pub fn apply(self, st: &mut RunState, log: &mut MetricsLog, weights: &Weights) -> Result<()> {
        st.history.push((
            st.epoch + 1,
            self.train_loss,
            self.valid_loss,
            self.score.abs(),
        ));
        log.write(
            &serde_json::json!({"kind": "epoch", "epoch": st.epoch + 1, "step": st.step,
            "train_loss": self.train_loss, "valid_loss": self.valid_loss, "valid": self.valid,
            "seconds": self.started.elapsed().as_secs_f64()}),
        )?;
        if st.best.is_none_or(|b| self.score > b) {
            st.best = Some(self.score);
            st.best_epoch = st.epoch + 1;
            st.bad_epochs = 0;
            self.files.save_best(weights)?;
        } else {
            st.bad_epochs += 1;
            if self.patience > 0 && st.bad_epochs >= self.patience as u64 {
                st.finished = true;
            }
        }
        st.epoch += 1;
        st.batch_in_epoch = 0;
        if st.epoch >= self.epochs as u64 {
            st.finished = true;
        }
        Ok(())
    }
}
