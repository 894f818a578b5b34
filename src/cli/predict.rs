//! `genolm predict`: class probabilities for every record of a FASTA file.

use std::path::PathBuf;

use crate::data::LabeledSet;
use crate::error::{Error, Result};
use crate::io::fasta::Reader;
use crate::seq::SeqPolicy;
use crate::train::run::Ensemble;

/// Arguments of `genolm predict`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  genolm predict --model runs/prom --rc-average candidates.fa > probs.tsv\n  genolm predict --model runs/seed0,runs/seed1,runs/seed2 candidates.fa --out probs.tsv"
)]
pub struct Args {
    /// Run directory of a trained model; several, comma-separated, average their class
    /// probabilities (an ensemble, e.g. of seeds; the classes must match).
    #[arg(long, value_delimiter = ',', required = true)]
    pub model: Vec<PathBuf>,
    /// Relative weights of the run directories (one each, comma-separated, each > 0; default
    /// equal), e.g. a seed ensemble and a blend model: `--weights 0.3,0.3,0.4`.
    #[arg(long, value_delimiter = ',')]
    pub weights: Vec<f64>,
    /// FASTA file (any container, or `-`).
    pub fasta: String,
    /// Average over the reverse complement.
    #[arg(long)]
    pub rc_average: bool,
    /// Output TSV (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Run `genolm predict`.
pub fn run(args: Args) -> Result<()> {
    let ens = Ensemble::load(&args.model, &args.weights)?;
    let recs = Reader::open(&args.fasta, SeqPolicy::default())?.collect::<Result<Vec<_>>>()?;
    if recs.is_empty() {
        return Err(Error::input(format!("{}: no records", args.fasta)));
    }
    let names: Vec<String> = recs.iter().map(|r| r.name.clone()).collect();
    let classes = ens.classes().to_vec();
    let n = recs.len();
    let set = LabeledSet::from_vecs(
        recs.into_iter().map(|r| r.seq).collect(),
        vec![0; n],
        classes.clone(),
        &args.fasta,
    )?;
    let probs = ens.predict(&set, Some(args.rc_average))?;
    let out = args.out.unwrap_or_else(|| PathBuf::from("-"));
    crate::io::write_atomic(&out, |w| {
        let io = |e| Error::io(out.display(), e);
        let header: Vec<String> = classes.iter().map(|c| format!("p_{c}")).collect();
        writeln!(w, "name\t{}", header.join("\t")).map_err(io)?;
        for (name, p) in names.iter().zip(&probs) {
            let cols: Vec<String> = p.iter().map(|v| format!("{v:.6}")).collect();
            writeln!(w, "{name}\t{}", cols.join("\t")).map_err(io)?;
        }
        Ok(())
    })
}
