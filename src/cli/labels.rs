//! `genolm labels`: per-class base counts of GFF3-derived label tracks, per strand.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::io::labels::{self, CLASS_NAMES, NUM_CLASSES};

/// Arguments of `genolm labels`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  genolm labels --fasta genome.fa.gz --gff genes.gff3.gz
  genolm labels --fasta genome.fa --gff genes.gff3 --json

Classes: 0 intergenic, 1 utr5, 2 cds, 3 intron, 4 utr3, 5 ncexon. One transcript per gene (the
longest CDS, then the longest spliced length). Where features overlap on a strand:
cds > utr5 > utr3 > ncexon > intron > intergenic.")]
pub struct Args {
    /// Genome FASTA (plain, gzip or BGZF; `-` for stdin).
    #[arg(long)]
    pub fasta: String,
    /// GFF3 annotation (plain, gzip or BGZF; `-` for stdin).
    #[arg(long)]
    pub gff: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Run `genolm labels`.
pub fn run(args: Args) -> Result<()> {
    if args.fasta == "-" && args.gff == "-" {
        return Err(Error::input("--fasta and --gff cannot both be stdin ('-')"));
    }
    let s = labels::label_files(&args.fasta, &args.gff)?;
    let text = if args.json {
        let class = |counts: &[u64; NUM_CLASSES]| {
            let mut m = serde_json::Map::new();
            for (k, name) in CLASS_NAMES.iter().enumerate() {
                m.insert((*name).to_string(), counts[k].into());
            }
            serde_json::Value::Object(m)
        };
        let v = serde_json::json!({
            "fasta": args.fasta,
            "gff": args.gff,
            "sequences": s.sequences,
            "bases": s.bases,
            "genes": s.genes,
            "classes": CLASS_NAMES,
            "plus": class(&s.plus),
            "minus": class(&s.minus),
        });
        let mut t =
            serde_json::to_string_pretty(&v).map_err(|e| Error::Internal(format!("JSON: {e}")))?;
        t.push('\n');
        t
    } else {
        table(&args, &s)
    };
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("-"));
    let shown = out.display().to_string();
    crate::io::write_atomic(&out, |w| {
        w.write_all(text.as_bytes())
            .map_err(|e| Error::io(&shown, e))
    })?;
    for w in &s.warnings {
        eprintln!("genolm: warning: {w}");
    }
    Ok(())
}

fn table(args: &Args, s: &labels::LabelSummary) -> String {
    let pct = |n: u64| {
        if s.bases == 0 {
            0.0
        } else {
            100.0 * n as f64 / s.bases as f64
        }
    };
    let mut t = format!(
        "{} + {}: {} sequences, {} bp, {} genes\n{:<4} {:<11} {:>13} {:>7} {:>13} {:>7}\n",
        args.fasta,
        args.gff,
        s.sequences,
        s.bases,
        s.genes,
        "code",
        "class",
        "plus",
        "%",
        "minus",
        "%"
    );
    for (k, name) in CLASS_NAMES.iter().enumerate() {
        t.push_str(&format!(
            "{:<4} {:<11} {:>13} {:>7.2} {:>13} {:>7.2}\n",
            k,
            name,
            s.plus[k],
            pct(s.plus[k]),
            s.minus[k],
            pct(s.minus[k])
        ));
    }
    t
}
