//! `genolm leakage`: for each test sequence, its highest alignment identity to any training
//! sequence, and how many test sequences have a close training neighbour.

use std::path::PathBuf;

use crate::data::homology;
use crate::data::split::{write_json, Input};
use crate::error::{Error, Result};

/// Arguments of `genolm leakage`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "For each test sequence, its highest identity to any training sequence, on either \
strand: candidates share at least --min-shared canonical k-mers with it (the candidate bar); the \
candidate sharing the most is aligned first (bio, semi-global), the others are bounded by their \
longest common subsequence and aligned in decreasing bound order while a bound can beat the best \
(after the highest bound, only while it can reach the next reported level; `exact` says whether \
the row's identity is proven the maximum); identity = identical aligned A/C/G/T bases / length \
of the shorter sequence (as cd-hit-est). A test sequence with no candidate is reported with \
identity 0 and method 'none' (not aligned). Summary: test sequences with a train neighbour \
>= 50 %, >= 80 %, >= 95 %.\n\n\
--train and --test take any classification SPEC (comma-separated parts: LABEL=FASTA, CSV/TSV \
tables such as the EPDnew folds) or plain FASTA files; with --genome they are BED files (or \
LABEL=BED parts) of regions of that genome, as `genolm split --genome ... --regions ...` writes \
them (a `-` region is reverse-complemented). JSON (--json, or --out FILE): \
{identity_definition, below_candidate_bar, kmer, min_shared, max_occ, train, test, \
test_with_candidates, candidate_pairs, aligned_pairs, mean_best_identity, \
levels: [{identity, count, fraction}], seconds, rows: [{id, best_identity, best_train, strand, \
method, candidates}]}.",
    after_help = "Example:\n  D=promoters/epdnew_human_300\n  genolm leakage --train $D/fold_1.csv.gz,$D/fold_2.csv.gz,$D/fold_3.csv.gz,$D/fold_4.csv.gz --test $D/fold_5.csv.gz --out leakage.json\n  \
genolm leakage --train split/train.fa --test split/test.fa --identity 0.8 --json\n  \
genolm leakage --genome genome.fa.gz --train split/train.bed --test split/test.bed"
)]
pub struct Args {
    /// Training sequences: a SPEC or FASTA files joined by commas.
    #[arg(long)]
    pub train: String,
    /// Test sequences: a SPEC or FASTA files joined by commas.
    #[arg(long)]
    pub test: String,
    /// Genome FASTA: --train and --test are then BED regions of it.
    #[arg(long)]
    pub genome: Option<String>,
    /// Identity that counts as a leak in the text summary (the JSON always has 50/80/95 %).
    #[arg(long, default_value_t = 0.8)]
    pub identity: f64,
    /// k-mer length of the sketch (8..=16).
    #[arg(long, default_value_t = 13)]
    pub kmer: usize,
    /// Candidate bar: shared canonical k-mers needed before a pair is aligned.
    #[arg(long, default_value_t = 2)]
    pub min_shared: u32,
    /// Ignore k-mers held by more than this many training sequences when finding candidates.
    #[arg(long, default_value_t = 10_000)]
    pub max_occ: usize,
    /// Print the full JSON report (with per-sequence rows) to stdout.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Run `genolm leakage`.
pub fn run(args: Args) -> Result<()> {
    let params = super::split::params(args.identity, args.kmer, args.min_shared, args.max_occ)?;
    let (train, test) = match &args.genome {
        Some(genome) => (
            Input::load_bed(genome, std::slice::from_ref(&args.train))?,
            Input::load_bed(genome, std::slice::from_ref(&args.test))?,
        ),
        None => {
            let train = Input::load_any(&args.train, None)?;
            let test = Input::load_any(&args.test, Some(&train.classes))?;
            (train, test)
        }
    };
    let report = homology::leakage(
        &train.names,
        &train.seq_refs(),
        &test.names,
        &test.seq_refs(),
        &params,
    )?;
    if let Some(path) = &args.out {
        write_json(path, &report)?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?
        );
        return Ok(());
    }
    let at = report
        .rows
        .iter()
        .filter(|r| r.best_identity >= args.identity)
        .count();
    println!(
        "{} test vs {} train sequences: {} with a candidate, {} aligned pairs, {:.1} s",
        report.test,
        report.train,
        report.test_with_candidates,
        report.aligned_pairs,
        report.seconds
    );
    for l in &report.levels {
        println!(
            "  best identity >= {:.0}%: {} ({:.2}%)",
            l.identity * 100.0,
            l.count,
            l.fraction * 100.0
        );
    }
    println!(
        "  >= --identity {}: {at} ({:.2}%)",
        args.identity,
        if report.test == 0 {
            0.0
        } else {
            100.0 * at as f64 / report.test as f64
        }
    );
    Ok(())
}
