//! `genolm eval-annotation`: base-, exon-, transcript- and gene-level accuracy of predicted gene
//! models against a reference GFF3, with `gt eval`'s definitions.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::infer::evaluate;

/// Arguments of `genolm eval-annotation`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  genolm eval-annotation --pred pred.gff3 --ref genes.gff3.gz
  genolm eval-annotation --pred pred.gff3 --ref genes.gff3 --regions heldout.bed --json
  genolm eval-annotation --pred pred.gff3 --ref genes.gff3.gz --coding

Levels (sensitivity sn, precision pr, F1, counts; per strand and overall), as `gt eval`:
  base.cds / base.exon     CDS / exon bases (union per strand)
  exon.all / exon.cds      exon / CDS rows with exact start and end
  exon.unique              distinct exons (gt's collapsed count, gffcompare's exon level)
  exon.cds_unique          distinct CDS parts (gt's CDS-level collapsed count)
  transcript.all / .cds    mRNA rows with the same span and the same exons / CDS parts
  gene.all / gene.cds      gene rows with the same span and the same mRNAs
JSON nests level, feature, figure: base.cds.f1, exon.all.f1, gene.all.f1 (and .plus / .minus).
With --regions (BED), bases are clipped to the regions and exons, transcripts and genes count
only when inside one region. With --coding, both files are first reduced to their coding
parts (exons = CDS parts, transcript and gene spans = CDS spans, UTRs and non-coding genes
dropped, isoforms with the same CDS kept once), as CDS-only gene-finder benchmarks score.")]
pub struct Args {
    /// Predicted gene models (GFF3; plain or gzip).
    #[arg(long)]
    pub pred: String,
    /// Reference gene models (GFF3; plain or gzip).
    #[arg(long = "ref")]
    pub reference: String,
    /// Restrict the evaluation to these BED regions (for a partial reference).
    #[arg(long)]
    pub regions: Option<String>,
    /// Score coding structure only: both files reduced to their CDS first.
    #[arg(long)]
    pub coding: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Run `genolm eval-annotation`.
pub fn run(args: Args) -> Result<()> {
    if args.pred == "-" && args.reference == "-" {
        return Err(Error::input("--pred and --ref cannot both be stdin ('-')"));
    }
    let rep = evaluate::evaluate_files(
        &args.pred,
        &args.reference,
        args.regions.as_deref(),
        args.coding,
    )?;
    let text = if args.json {
        let mut v = rep.to_json();
        v["pred"] = args.pred.clone().into();
        v["ref"] = args.reference.clone().into();
        v["coding"] = args.coding.into();
        if let Some(r) = &args.regions {
            v["regions"] = r.clone().into();
        }
        let mut t =
            serde_json::to_string_pretty(&v).map_err(|e| Error::Internal(format!("JSON: {e}")))?;
        t.push('\n');
        t
    } else {
        format!(
            "{} vs reference {}{}\n{}",
            args.pred,
            args.reference,
            if args.coding { " (coding view)" } else { "" },
            rep.table()
        )
    };
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("-"));
    let shown = out.display().to_string();
    crate::io::write_atomic(&out, |w| {
        w.write_all(text.as_bytes())
            .map_err(|e| Error::io(&shown, e))
    })
}
