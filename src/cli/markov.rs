//! `genolm markov`: a K-th order Markov baseline, in bits per base on held-out sequences.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::io::fasta::Reader;
use crate::seq::{self, SeqPolicy};
use crate::train::markov::{Markov, Stream};

/// Arguments of `genolm markov`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Fit a K-th order Markov model on every sequence except the held-out ones and report \
its cross-entropy on the held-out sequences, in bits per base: -mean log2 p(base | previous K bases) \
over held-out positions whose base and K preceding bases are all A/C/G/T.\n\n\
Training counts (K+1)-mers on BOTH strands of every training sequence (the reverse complement is \
counted too); windows holding N or another non-ACGT byte are skipped. Probabilities use additive \
smoothing with a fixed pseudocount (no tuning on the held-out set). Held-out sequences are scored \
on the strand given.",
    after_help = "Example:\n  genolm markov --order 5 --genome genome.fa.gz --holdout Chr2\n  \
for k in 0 1 2 3 4 5 6; do genolm markov --order $k --genome g.fa.gz --holdout chrX --json; done"
)]
pub struct Args {
    /// Model order K (0..=12): each base is predicted from the K bases before it.
    #[arg(long)]
    pub order: usize,
    /// FASTA files (plain, gzip, BGZF); every record not held out is training data.
    #[arg(long, required = true, num_args = 1..)]
    pub genome: Vec<String>,
    /// Record names (sequence ids) to hold out and score.
    #[arg(long, required = true, num_args = 1..)]
    pub holdout: Vec<String>,
    /// Additive-smoothing pseudocount added to every (K+1)-mer count.
    #[arg(long, default_value_t = 1.0)]
    pub pseudocount: f64,
    /// Print JSON instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

/// The JSON report of `genolm markov`.
#[derive(Debug, Serialize)]
struct Report {
    order: usize,
    pseudocount: f64,
    train_bases: u64,
    holdout_bases: u64,
    bits_per_base: f64,
    holdout: Vec<String>,
}

/// Error on a byte outside the DNA alphabet (IUPAC codes are allowed and skipped as non-ACGT).
fn check_bases(path: &str, line: u64, name: &str, chunk: &[u8]) -> Result<()> {
    match chunk.iter().position(|&b| !seq::is_valid(b)) {
        None => Ok(()),
        Some(i) => Err(Error::at(
            path,
            line,
            format!("record '{name}': invalid base {}", seq::show_byte(chunk[i])),
        )),
    }
}

/// Run `genolm markov`.
pub fn run(args: Args) -> Result<()> {
    let mut model = Markov::new(args.order, args.pseudocount)?;
    let wanted: BTreeSet<&str> = args.holdout.iter().map(String::as_str).collect();
    let mut held: HashMap<String, Vec<u8>> = HashMap::new();
    let policy = SeqPolicy::default();
    for path in &args.genome {
        let mut reader = Reader::open(path, policy)?;
        while let Some(h) = reader.next_header()? {
            if wanted.contains(h.name.as_str()) {
                if held.contains_key(&h.name) {
                    return Err(Error::at(
                        path,
                        h.line,
                        format!("held-out record '{}' appears twice", h.name),
                    ));
                }
                let mut seq = Vec::new();
                reader.read_sequence(&h, |chunk, line| {
                    check_bases(path, line, &h.name, chunk)?;
                    seq.extend_from_slice(chunk);
                    Ok(())
                })?;
                held.insert(h.name, seq);
            } else {
                let mut st = Stream::default();
                reader.read_sequence(&h, |chunk, line| {
                    check_bases(path, line, &h.name, chunk)?;
                    model.add_chunk(&mut st, chunk);
                    Ok(())
                })?;
            }
        }
    }
    if let Some(missing) = args.holdout.iter().find(|h| !held.contains_key(*h)) {
        return Err(Error::input(format!(
            "--holdout '{missing}': no such record in {}",
            args.genome.join(", ")
        )));
    }
    if model.windows() == 0 {
        return Err(Error::input(format!(
            "no training data: every record is held out or has no run of {} A/C/G/T bases",
            args.order + 1
        )));
    }
    let score = model.bits_per_base(args.holdout.iter().map(|h| held[h].as_slice()));
    if score.bases == 0 {
        return Err(Error::input(format!(
            "held-out sequences have no position with {} preceding A/C/G/T bases to score",
            args.order
        )));
    }
    let report = Report {
        order: args.order,
        pseudocount: args.pseudocount,
        train_bases: model.train_bases(),
        holdout_bases: score.bases,
        bits_per_base: score.bits_per_base,
        holdout: args.holdout.clone(),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| Error::Internal(e.to_string()))?
        );
    } else {
        println!(
            "order {} (pseudocount {}): {:.4} bits/base on {} held-out bases ({}); trained on {} bases, both strands",
            report.order,
            report.pseudocount,
            report.bits_per_base,
            report.holdout_bases,
            report.holdout.join(", "),
            report.train_bases
        );
    }
    Ok(())
}
