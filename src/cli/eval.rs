//! `genolm eval`: metrics of a trained model on labelled data.

use std::path::PathBuf;

use crate::data::LabeledSet;
use crate::error::{Error, Result};
use crate::seq::SeqPolicy;
use crate::train::classify::Metrics;
use crate::train::run::Ensemble;

/// Arguments of `genolm eval`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  genolm eval --model runs/prom --data promoter=test_prom.fa,background=test_bg.fa --json\n  genolm eval --model runs/seed0,runs/seed1,runs/seed2 --data test.csv"
)]
pub struct Args {
    /// Run directory of a trained model; several, comma-separated, average their class
    /// probabilities (an ensemble; the classes must match).
    #[arg(long, value_delimiter = ',', required = true)]
    pub model: Vec<PathBuf>,
    /// Relative weights of the run directories (one each, comma-separated, each > 0; default
    /// equal), e.g. a seed ensemble and a blend model: `--weights 0.3,0.3,0.4`.
    #[arg(long, value_delimiter = ',')]
    pub weights: Vec<f64>,
    /// Labelled data SPEC (as for `genolm train`).
    #[arg(long)]
    pub data: String,
    /// Average over the reverse complement (default: as in training).
    #[arg(long)]
    pub rc_average: Option<bool>,
    /// Decision threshold for two classes (default: the run's, see `threshold.txt`; for several
    /// runs the (weighted) mean of theirs).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `genolm eval`.
pub fn run(args: Args) -> Result<()> {
    let ens = Ensemble::load(&args.model, &args.weights)?;
    let set = LabeledSet::load_with_classes(&args.data, SeqPolicy::default(), ens.classes())?;
    let probs = ens.predict(&set, args.rc_average)?;
    let threshold = args.threshold.unwrap_or_else(|| ens.threshold());
    if !(0.0..=1.0).contains(&threshold) {
        return Err(Error::input(format!(
            "--threshold {threshold}: must be in [0, 1]"
        )));
    }
    let m = Metrics::at(&probs, &set.labels, ens.classes().len(), threshold);
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
