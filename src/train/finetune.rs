//! Fine-tuning from a pretrained backbone (`genolm train --init RUN_DIR`).
//!
//! A source run directory is any directory with a `config.toml` holding a `tokenizer` spec and a
//! `[model]` table with `vocab_size` and a `[model.backbone]` table, plus `model.safetensors` (or
//! `last.safetensors`) with the backbone's tensors under the `backbone.` prefix: a `genolm train`
//! run, or a `genolm pretrain` run. Only the backbone and the vocabulary are taken; the source's
//! `seq_len`, classes and head are ignored (no backbone depends on the input length), and the new
//! run gets a fresh head initialised from its own seed.

use std::path::{Path, PathBuf};

use crate::error::{one_line, Error, Result};
use crate::models::{BackboneConfig, Weights};
use crate::tokenize::{self, Spec, Tokenizer};
use crate::train::classify::load_tensors;

/// What a source run directory provides to a fine-tuning run.
#[derive(Debug, Clone, PartialEq)]
pub struct InitSource {
    /// The run directory.
    pub dir: PathBuf,
    /// Its task (`classify`, `pretrain`, ...; empty when the config has none).
    pub task: String,
    /// Its tokenizer spec, as stored (a `bpe:` path is relative to `dir`).
    pub tokenizer: String,
    /// Vocabulary size the backbone was built for.
    pub vocab_size: usize,
    /// The backbone config.
    pub backbone: BackboneConfig,
    /// The checkpoint the tensors come from: `model.safetensors`, else `last.safetensors`.
    pub weights: PathBuf,
}

/// Read `dir/config.toml` and find the checkpoint; errors are one line naming the file.
pub fn read_source(dir: &Path) -> Result<InitSource> {
    let cfg_path = dir.join("config.toml");
    let bad = |msg: String| Error::input(format!("--init {}: {msg}", cfg_path.display()));
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| {
        Error::input(format!(
            "--init {}: not a genolm run directory ({e})",
            dir.display()
        ))
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| bad(one_line(&e.to_string())))?;
    let tokenizer = table
        .get("tokenizer")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("no `tokenizer` spec".into()))?
        .to_string();
    let task = table
        .get("task")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let model = table
        .get("model")
        .and_then(|v| v.as_table())
        .ok_or_else(|| bad("no [model] table".into()))?;
    let vocab_size = model
        .get("vocab_size")
        .and_then(|v| v.as_integer())
        .filter(|&v| v > 0)
        .ok_or_else(|| bad("[model] has no positive `vocab_size`".into()))?
        as usize;
    let backbone: BackboneConfig = model
        .get("backbone")
        .ok_or_else(|| bad("no [model.backbone] table".into()))?
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| {
            bad(format!("[model.backbone]: {}", one_line(&e.to_string())))
        })?;
    let weights = ["model.safetensors", "last.safetensors"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::input(format!(
                "--init {}: no model.safetensors or last.safetensors to take the backbone from",
                dir.display()
            ))
        })?;
    Ok(InitSource {
        dir: dir.to_path_buf(),
        task,
        tokenizer,
        vocab_size,
        backbone,
        weights,
    })
}

/// Error unless `spec` (this run's tokenizer, built as `tok`) is the tokenizer the source's
/// backbone was trained with: the same spec, or for BPE the same file contents; and the
/// vocabulary sizes agree.
pub fn check_tokenizer(src: &InitSource, spec: &str, tok: &dyn Tokenizer) -> Result<()> {
    let theirs = tokenize::parse_spec(&src.tokenizer)?;
    let ours = tokenize::parse_spec(spec)?;
    let same = match (&theirs, &ours) {
        (Spec::Bpe(a), Spec::Bpe(b)) => {
            let a = if a.is_relative() {
                src.dir.join(a)
            } else {
                a.clone()
            };
            let read = |p: &Path| std::fs::read(p).map_err(|e| Error::io(p.display(), e));
            read(&a)? == read(b)?
        }
        (a, b) => a == b,
    };
    if !same {
        return Err(Error::input(format!(
            "--init {}: the backbone was trained with tokenizer '{}' but this run uses '{spec}' \
             (pass --tokenizer {} or a backbone trained for this tokenizer)",
            src.dir.display(),
            src.tokenizer,
            src.tokenizer
        )));
    }
    if tok.vocab_size() != src.vocab_size {
        return Err(Error::input(format!(
            "--init {}: the backbone has a vocabulary of {} tokens but tokenizer '{spec}' has {}",
            src.dir.display(),
            src.vocab_size,
            tok.vocab_size()
        )));
    }
    Ok(())
}

/// Load every `backbone.*` parameter and buffer of `weights` from the source's checkpoint;
/// returns how many tensors were loaded. A missing or mis-shaped tensor is an error.
pub fn load_backbone(weights: &Weights, src: &InitSource) -> Result<usize> {
    let tensors = load_tensors(&src.weights)?;
    let what = format!("--init {}", src.weights.display());
    let n = weights.load_prefix(&tensors, "backbone.", &what)?;
    if n == 0 {
        return Err(Error::Internal(format!(
            "{what}: the model has no backbone tensors"
        )));
    }
    Ok(n)
}
