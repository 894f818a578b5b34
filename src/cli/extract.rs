//! `genolm extract`: spliced, strand-correct CDS / transcript / gene / promoter sequences.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::io::extract::{self, ExtractOptions, Feature};
use crate::seq::SeqPolicy;

/// Arguments of `genolm extract`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  genolm extract --fasta genome.fa.gz --gff genes.gff3.gz --feature cds --longest --out cds.fa
  genolm extract --fasta genome.fa --gff genes.gff3 --feature promoter --upstream 500 --downstream 50

Coordinates in headers are 1-based inclusive. CDS output starts on a codon (a 5' phase is
trimmed, header: phase_trim=N). Promoter windows are clipped at sequence ends (header:
clipped_upstream=N / clipped_downstream=N). --longest keeps, per gene, the transcript with the
longest CDS, then the longest spliced length, then the first in the file.")]
pub struct Args {
    /// Genome FASTA (plain, gzip or BGZF; `-` for stdin).
    #[arg(long)]
    pub fasta: String,
    /// GFF3 annotation (plain, gzip or BGZF; `-` for stdin).
    #[arg(long)]
    pub gff: String,
    /// What to extract.
    #[arg(long, value_enum, default_value_t = Feature::Cds)]
    pub feature: Feature,
    /// One transcript per gene: longest CDS, then longest spliced length.
    #[arg(long)]
    pub longest: bool,
    /// Promoter only: bases upstream of the TSS [default: 1000].
    #[arg(long, value_name = "N")]
    pub upstream: Option<usize>,
    /// Promoter only: bases from the TSS on, TSS included [default: 100].
    #[arg(long, value_name = "N")]
    pub downstream: Option<usize>,
    /// Output FASTA, written atomically (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// FASTA line width (0: one line per sequence).
    #[arg(long, default_value_t = 60)]
    pub width: usize,
    /// Keep soft-masked (lower-case) bases in lower case.
    #[arg(long)]
    pub keep_softmask: bool,
}

/// Run `genolm extract`.
pub fn run(args: Args) -> Result<()> {
    if args.fasta == "-" && args.gff == "-" {
        return Err(Error::input("--fasta and --gff cannot both be stdin ('-')"));
    }
    let defaults = ExtractOptions::default();
    if args.feature != Feature::Promoter && (args.upstream.is_some() || args.downstream.is_some()) {
        return Err(Error::input(
            "--upstream/--downstream only apply to --feature promoter",
        ));
    }
    let opts = ExtractOptions {
        feature: args.feature,
        longest: args.longest,
        upstream: args.upstream.unwrap_or(defaults.upstream),
        downstream: args.downstream.unwrap_or(defaults.downstream),
    };
    if opts.feature == Feature::Promoter && opts.upstream + opts.downstream == 0 {
        return Err(Error::input(
            "--upstream and --downstream are both 0: the promoter window would be empty",
        ));
    }
    let policy = SeqPolicy {
        keep_softmask: args.keep_softmask,
    };
    let (recs, warnings) = extract::extract_files(&args.fasta, &args.gff, policy, &opts)?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("-"));
    let shown = out.display().to_string();
    crate::io::write_atomic(&out, |w| {
        extract::write_fasta(w, &recs, args.width).map_err(|e| Error::io(&shown, e))
    })?;
    for w in &warnings {
        eprintln!("genolm: warning: {w}");
    }
    if args.out.is_some() {
        eprintln!("genolm extract: wrote {} sequences to {shown}", recs.len());
    }
    Ok(())
}
