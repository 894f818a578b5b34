//! `genolm eval`: metrics of a trained model on labelled data.

use std::path::PathBuf;

use crate::data::LabeledSet;
use crate::error::{Error, Result};
use crate::seq::SeqPolicy;
use crate::train::classify::{encode_set, predict, Metrics};
use crate::train::run::load_run;

/// Arguments of `genolm eval`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  genolm eval --model runs/prom --data promoter=test_prom.fa,background=test_bg.fa --json"
)]
pub struct Args {
    /// Run directory of a trained model.
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled data SPEC (as for `genolm train`).
    #[arg(long)]
    pub data: String,
    /// Average over the reverse complement (default: as in training).
    #[arg(long)]
    pub rc_average: Option<bool>,
    /// Decision threshold for two classes (default: the run's, see `threshold.txt`).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `genolm eval`.
pub fn run(args: Args) -> Result<()> {
    let run = load_run(&args.model)?;
    let set = LabeledSet::load_with_classes(&args.data, SeqPolicy::default(), &run.config.classes)?;
    let enc = encode_set(&set, run.tokenizer.as_ref(), Some(run.config.model.seq_len))?;
    let rc = args.rc_average.unwrap_or(run.config.train.rc_average);
    let probs = predict(&run.model, &enc, 256, rc)?;
    let threshold = args.threshold.unwrap_or(run.threshold);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(Error::input(format!(
            "--threshold {threshold}: must be in [0, 1]"
        )));
    }
    let m = Metrics::at(&probs, &enc.labels, run.config.model.num_classes, threshold);
    let json = serde_json::to_string_pretty(&m).map_err(|e| Error::Internal(e.to_string()))?;
    if args.json {
        println!("{json}");
    } else {
        for k in ["accuracy", "f1", "mcc", "auroc", "auprc"] {
            if let Some(v) = m.get(k) {
                println!("{k:<9} {v:.4}");
            }
        }
    }
    Ok(())
}
