//! GFF3 writer for gene models: gene → mRNA → exon / CDS (phase) / UTR.
//!
//! Interface only; the writer lands with issue 6.

use std::io::Write;

use crate::error::{Error, Result};
use crate::io::gff::Gene;

/// Write `genes` as GFF3, with a `##sequence-region` line per entry of `regions` (name, length).
///
/// `scores`, when given, holds one score per gene (column 6 of the gene and mRNA rows).
pub fn write_gff3<W: Write>(
    w: &mut W,
    source: &str,
    regions: &[(String, usize)],
    genes: &[Gene],
    scores: Option<&[f64]>,
) -> Result<()> {
    let _ = (w, source, regions, genes, scores);
    Err(Error::input("GFF3 writing is not built yet (issue 6)"))
}
