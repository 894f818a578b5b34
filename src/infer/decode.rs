//! Gene-model decoding: per-base class probabilities → gene models that obey gene grammar.
//!
//! Interface only; the decoder itself lands with issue 6.

use crate::error::{Error, Result};
use crate::io::gff::Gene;

/// Genome kind: prokaryotes have no introns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Intron-less genes (bacteria, archaea).
    Prokaryote,
    /// Spliced genes.
    Eukaryote,
}

/// Decoder settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeConfig {
    /// Prokaryote or eukaryote grammar.
    pub mode: Mode,
    /// Shortest intron, in bases.
    pub min_intron: usize,
    /// Shortest exon, in bases.
    pub min_exon: usize,
    /// Shortest CDS (spliced), in bases.
    pub min_cds: usize,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            mode: Mode::Eukaryote,
            min_intron: 20,
            min_exon: 3,
            min_cds: 90,
        }
    }
}

/// A decoded gene (one transcript) with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictedGene {
    /// The gene model, in forward coordinates of its sequence (offset already added).
    pub gene: Gene,
    /// Mean posterior-like score of the path, in [0, 1].
    pub score: f64,
}

/// Decode one region of sequence `seqid` that starts at `offset`.
///
/// `seq` holds the region's bases (forward strand, upper or lower case); `plus` and `minus` hold
/// per-base probabilities, row-major `seq.len() × labels::NUM_CLASSES`, in forward coordinates,
/// for the plus- and minus-strand label tracks ([`crate::io::labels`]).
pub fn decode(
    seqid: &str,
    offset: usize,
    seq: &[u8],
    plus: &[f32],
    minus: &[f32],
    cfg: &DecodeConfig,
) -> Result<Vec<PredictedGene>> {
    let _ = (seqid, offset, seq, plus, minus, cfg);
    Err(Error::input("gene decoding is not built yet (issue 6)"))
}
