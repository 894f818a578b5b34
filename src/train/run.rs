//! Run directories: the config, tokenizer spec, exact command, metrics log, checkpoints, report
//! and plots of one training run, and loading a trained classifier back from one.

use std::path::{Path, PathBuf};

use candle_core::DType;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::data::LabeledSet;
use crate::error::{Error, Result};
use crate::models::{Classifier, ModelConfig, Weights};
use crate::tokenize::{self, Tokenizer};
use crate::train::classify::{encode_set, load_tensors, predict, Metrics, RunState, TrainOptions};
use crate::train::plot;
use crate::train::step::write_file;

/// The `config.toml` of a run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Task (`classify`).
    pub task: String,
    /// Tokenizer spec; a BPE file is copied into the run directory as `tokenizer.json`.
    pub tokenizer: String,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
    /// Data specs as given.
    pub data: DataSpecs,
    /// Training options.
    pub train: TrainOptions,
    /// Model config.
    pub model: ModelConfig,
}

/// Data specs of a run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DataSpecs {
    /// Training data.
    pub train: String,
    /// Validation data (empty: held out from training).
    pub valid: String,
    /// Test data (empty: none).
    pub test: String,
}

/// Write `text` atomically to `dir/name`.
pub fn write_text(dir: &Path, name: &str, text: &str) -> Result<()> {
    write_file(&dir.join(name), text.as_bytes())
}

/// The exact command line, shell-quoted.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prepare a run directory: write config, tokenizer spec (copying a BPE file in) and command.
/// Returns the config with the tokenizer spec as stored in the run.
pub fn init_run(dir: &Path, mut cfg: RunConfig, resume: bool) -> Result<RunConfig> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    copy_bpe(dir, &mut cfg.tokenizer)?;
    write_run_files(dir, &cfg, &cfg.tokenizer, resume, |p| read_toml(p, false))?;
    Ok(cfg)
}

/// Copy the file of a `bpe:PATH` tokenizer spec into `dir` as `tokenizer.json` and point the
/// spec at it (other specs are left alone).
pub fn copy_bpe(dir: &Path, spec: &mut String) -> Result<()> {
    if let Some(path) = spec.strip_prefix("bpe:") {
        let src = PathBuf::from(path);
        let dst = dir.join("tokenizer.json");
        if src != dst {
            let bytes = std::fs::read(&src).map_err(|e| Error::io(src.display(), e))?;
            write_file(&dst, &bytes)?;
        }
        *spec = "bpe:tokenizer.json".into();
    }
    Ok(())
}

/// Read a TOML file; `one_line` puts the parse error on one line.
pub fn read_toml<C: DeserializeOwned>(path: &Path, one_line: bool) -> Result<C> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    toml::from_str(&text).map_err(|e| {
        let e = e.to_string();
        let e = if one_line {
            crate::error::one_line(&e)
        } else {
            e
        };
        Error::input(format!("{}: {e}", path.display()))
    })
}

/// Write `config.toml` (on resume it must equal the run's, read by `read_old` from its path),
/// `tokenizer.txt` and the command (`command.txt`, or `command.resume.txt` on resume).
pub fn write_run_files<C: Serialize + PartialEq>(
    dir: &Path,
    cfg: &C,
    tokenizer: &str,
    resume: bool,
    read_old: impl FnOnce(&Path) -> Result<C>,
) -> Result<()> {
    let text = toml::to_string_pretty(cfg).map_err(|e| Error::Internal(e.to_string()))?;
    let cfg_path = dir.join("config.toml");
    if resume && cfg_path.exists() {
        let old = read_old(&cfg_path)?;
        if &old != cfg {
            return Err(Error::input(format!(
                "{}: the run was started with a different configuration; resume with the same \
                 options or use a new --out",
                cfg_path.display()
            )));
        }
    }
    write_text(dir, "config.toml", &text)?;
    write_text(dir, "tokenizer.txt", &format!("{tokenizer}\n"))?;
    let name = if resume {
        "command.resume.txt"
    } else {
        "command.txt"
    };
    write_text(dir, name, &format!("{}\n", command_line()))
}

/// Build a run's tokenizer, resolving `bpe:` paths relative to the run directory.
pub fn run_tokenizer(dir: &Path, spec: &str) -> Result<Box<dyn Tokenizer>> {
    match spec.strip_prefix("bpe:") {
        Some(p) if Path::new(p).is_relative() => {
            tokenize::from_spec(&format!("bpe:{}", dir.join(p).display()))
        }
        _ => tokenize::from_spec(spec),
    }
}

/// A trained classifier loaded from a run directory.
pub struct LoadedRun {
    /// The run's config.
    pub config: RunConfig,
    /// The model with its best weights, frozen for prediction (no autograd graph).
    pub model: Classifier,
    /// Its weights.
    pub weights: Weights,
    /// Its tokenizer.
    pub tokenizer: Box<dyn Tokenizer>,
    /// Decision threshold for two classes: `threshold.txt` when present, else the config's.
    pub threshold: f64,
}

/// Load `dir/config.toml`, the tokenizer and `dir/model.safetensors`.
pub fn load_run(dir: &Path) -> Result<LoadedRun> {
    let cfg_path = dir.join("config.toml");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| {
        Error::input(format!(
            "{}: not a genolm run directory ({e})",
            dir.display()
        ))
    })?;
    let config: RunConfig = toml::from_str(&text).map_err(|e| {
        Error::input(format!(
            "{}: {}",
            cfg_path.display(),
            crate::error::one_line(&e.to_string())
        ))
    })?;
    if config.task == "segment" {
        return Err(Error::input(format!(
            "{}: a per-base segmentation run (task segment); use `genolm annotate --model {}`",
            dir.display(),
            dir.display()
        )));
    }
    let tokenizer = run_tokenizer(dir, &config.tokenizer)?;
    if tokenizer.vocab_size() != config.model.vocab_size {
        return Err(Error::input(format!(
            "{}: tokenizer {} has {} tokens but the model was trained for {}",
            dir.display(),
            config.tokenizer,
            tokenizer.vocab_size(),
            config.model.vocab_size
        )));
    }
    let weights = Weights::new();
    let (p, b) = weights.builders(0, DType::F32, &crate::device::current());
    let model = Classifier::new(&config.model, p, b)?;
    let wpath = dir.join("model.safetensors");
    weights.load(&load_tensors(&wpath)?, &wpath.display().to_string())?;
    let model = model.frozen(&weights)?;
    let tpath = dir.join("threshold.txt");
    let threshold = match std::fs::read_to_string(&tpath) {
        Ok(t) => match t.trim().parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => v,
            _ => {
                return Err(Error::input(format!(
                    "{}: not a threshold in [0, 1]: '{}'",
                    tpath.display(),
                    t.trim()
                )))
            }
        },
        Err(_) => config.train.threshold,
    };
    Ok(LoadedRun {
        threshold,
        config,
        model,
        weights,
        tokenizer,
    })
}

/// Several trained classifiers with the same classes whose class probabilities are averaged
/// (one run directory is an ensemble of one).
pub struct Ensemble {
    /// The members, in the order given.
    pub runs: Vec<LoadedRun>,
    /// Each member's weight (summing to 1; equal unless [`Ensemble::load`] was given weights).
    pub weights: Vec<f64>,
}

impl Ensemble {
    /// Load every run directory; all must have the same classes, in the same order. `weights`
    /// are their relative weights (one per directory, each > 0, normalised to sum to 1); empty
    /// means equal.
    pub fn load(dirs: &[PathBuf], weights: &[f64]) -> Result<Self> {
        if dirs.is_empty() {
            return Err(Error::input("--model: no run directory given"));
        }
        if !weights.is_empty() && weights.len() != dirs.len() {
            return Err(Error::input(format!(
                "--weights: {} weights for {} run directories",
                weights.len(),
                dirs.len()
            )));
        }
        if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
            return Err(Error::input(format!(
                "--weights: {w} is not a positive number"
            )));
        }
        let runs = dirs
            .iter()
            .map(|d| load_run(d))
            .collect::<Result<Vec<_>>>()?;
        for (d, r) in dirs.iter().zip(&runs).skip(1) {
            if r.config.classes != runs[0].config.classes {
                return Err(Error::input(format!(
                    "{}: classes {:?} differ from {}'s {:?}",
                    d.display(),
                    r.config.classes,
                    dirs[0].display(),
                    runs[0].config.classes
                )));
            }
        }
        let weights = if weights.is_empty() {
            vec![1.0 / runs.len() as f64; runs.len()]
        } else {
            let total: f64 = weights.iter().sum();
            weights.iter().map(|w| w / total).collect()
        };
        Ok(Ensemble { runs, weights })
    }

    /// Class names.
    pub fn classes(&self) -> &[String] {
        &self.runs[0].config.classes
    }

    /// The decision threshold for two classes: the members' weighted mean.
    pub fn threshold(&self) -> f64 {
        self.runs
            .iter()
            .zip(&self.weights)
            .map(|(r, w)| r.threshold * w)
            .sum()
    }

    /// Weighted mean class probabilities of `set` over the members; each member encodes with its own
    /// tokenizer and length and averages over the reverse complement when `rc` says so
    /// (`None`: as it was trained).
    pub fn predict(&self, set: &LabeledSet, rc: Option<bool>) -> Result<Vec<Vec<f32>>> {
        let mut all = Vec::with_capacity(self.runs.len());
        for r in &self.runs {
            let enc = encode_set(set, r.tokenizer.as_ref(), Some(r.config.model.seq_len))?;
            all.push(predict(
                &r.model,
                &enc,
                256,
                rc.unwrap_or(r.config.train.rc_average),
            )?);
        }
        Ok(weighted_mean_probs(&all, &self.weights))
    }
}

/// The element-wise mean of several models' class probabilities for the same records.
pub fn mean_probs<P: AsRef<[Vec<f32>]>>(runs: &[P]) -> Vec<Vec<f32>> {
    weighted_mean_probs(runs, &vec![1.0 / runs.len().max(1) as f64; runs.len()])
}

/// `Σ weights[k] × runs[k]`, element-wise (the weights are used as given).
pub fn weighted_mean_probs<P: AsRef<[Vec<f32>]>>(runs: &[P], weights: &[f64]) -> Vec<Vec<f32>> {
    let Some(first) = runs.first().map(AsRef::as_ref) else {
        return Vec::new();
    };
    (0..first.len())
        .map(|i| {
            (0..first[i].len())
                .map(|c| {
                    runs.iter()
                        .zip(weights)
                        .map(|(r, w)| r.as_ref()[i][c] as f64 * w)
                        .sum::<f64>() as f32
                })
                .collect()
        })
        .collect()
}

/// Write `loss.svg` (per-epoch train and validation loss) from a run's history.
pub fn write_loss_plot(dir: &Path, st: &RunState) -> Result<()> {
    let train: Vec<(f64, f64)> = st.history.iter().map(|h| (h.0 as f64, h.1)).collect();
    let valid: Vec<(f64, f64)> = st.history.iter().map(|h| (h.0 as f64, h.2)).collect();
    let svg = plot::line_chart(
        "Loss per epoch",
        "epoch",
        "cross-entropy",
        &[
            plot::Series {
                name: "train".into(),
                points: train,
            },
            plot::Series {
                name: "valid".into(),
                points: valid,
            },
        ],
    );
    write_text(dir, "loss.svg", &svg)
}

/// Write `roc_pr.svg` for binary predictions.
pub fn write_roc_plot(dir: &Path, probs: &[Vec<f32>], labels: &[u32], m: &Metrics) -> Result<()> {
    if let Metrics::Binary(b) = m {
        let scores: Vec<f64> = probs.iter().map(|p| p[1] as f64).collect();
        write_text(
            dir,
            "roc_pr.svg",
            &plot::roc_pr_svg(&scores, labels, b.auroc, b.auprc),
        )?;
    }
    Ok(())
}
