//! `genolm predict`: class probabilities for every record of a FASTA file.

use std::path::PathBuf;

use crate::data::LabeledSet;
use crate::error::{Error, Result};
use crate::io::fasta::Reader;
use crate::seq::SeqPolicy;
use crate::train::classify::{encode_set, predict};
use crate::train::run::load_run;

/// Arguments of `genolm predict`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  genolm predict --model runs/prom --rc-average candidates.fa > probs.tsv"
)]
pub struct Args {
    /// Run directory of a trained model.
    #[arg(long)]
    pub model: PathBuf,
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
    let run = load_run(&args.model)?;
    let recs = Reader::open(&args.fasta, SeqPolicy::default())?.collect::<Result<Vec<_>>>()?;
    if recs.is_empty() {
        return Err(Error::input(format!("{}: no records", args.fasta)));
    }
    let names: Vec<String> = recs.iter().map(|r| r.name.clone()).collect();
    let classes = run.config.classes.clone();
    let n = recs.len();
    let set = LabeledSet::from_vecs(
        recs.into_iter().map(|r| r.seq).collect(),
        vec![0; n],
        classes.clone(),
        &args.fasta,
    )?;
    let enc = encode_set(&set, run.tokenizer.as_ref(), Some(run.config.model.seq_len))?;
    let probs = predict(&run.model, &enc, 256, args.rc_average)?;
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
