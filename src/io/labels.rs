//! Per-base label tracks (intergenic / UTR / CDS / intron / non-coding exon) from gene models.
//!
//! One track per strand, both indexed in the sequence's forward coordinates. Each gene
//! contributes its representative transcript ([`Gene::longest`]); transcripts on strand `.`/`?`
//! go to the plus track. Within a transcript: gaps between exons are introns; exonic bases of a
//! coding transcript are 5′ UTR before the CDS span, 3′ UTR after it and CDS inside it (so bases
//! skipped by a frameshift stay CDS); CDS segments are CDS even outside the exons; exons of a
//! non-coding transcript are non-coding exon.
//!
//! Where features overlap (overlapping genes, or a transcript's own pieces), the class with the
//! higher precedence wins: **CDS > 5′ UTR > 3′ UTR > non-coding exon > intron > intergenic**.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::io::fasta::Reader;
use crate::io::gff::{self, Gene, Interval, SeqName, Transcript};
use crate::seq::{self, SeqPolicy};

/// Not in any transcript of a chosen gene model.
pub const INTERGENIC: u8 = 0;
/// 5′ untranslated region.
pub const UTR5: u8 = 1;
/// Coding sequence.
pub const CDS: u8 = 2;
/// Intron (between two exons of a transcript).
pub const INTRON: u8 = 3;
/// 3′ untranslated region.
pub const UTR3: u8 = 4;
/// Exon of a non-coding transcript.
pub const NC_EXON: u8 = 5;
/// Number of classes.
pub const NUM_CLASSES: usize = 6;
/// Class names, indexed by class code.
pub const CLASS_NAMES: [&str; NUM_CLASSES] =
    ["intergenic", "utr5", "cds", "intron", "utr3", "ncexon"];

/// Framed tracks ([`LabelTracks::paint_frames`]): a CDS base at codon position 1 (in the
/// transcript's direction). Codon position 0 keeps [`CDS`].
pub const CDS1: u8 = 6;
/// Framed tracks: a CDS base at codon position 2.
pub const CDS2: u8 = 7;
/// Number of framed classes: the six classes with CDS split by codon position.
pub const NUM_FRAMED: usize = 8;
/// Framed class names, indexed by class code.
pub const FRAMED_NAMES: [&str; NUM_FRAMED] = [
    "intergenic",
    "utr5",
    "cds",
    "intron",
    "utr3",
    "ncexon",
    "cds1",
    "cds2",
];

/// The class of a framed code (`CDS1`/`CDS2` → `CDS`; others unchanged).
pub fn coarse(class: u8) -> u8 {
    match class {
        CDS1 | CDS2 => CDS,
        c => c,
    }
}

/// The codon position (0, 1, 2) of a framed code, `None` for non-CDS codes.
pub fn codon_position(class: u8) -> Option<usize> {
    match class {
        CDS => Some(0),
        CDS1 => Some(1),
        CDS2 => Some(2),
        _ => None,
    }
}

/// The framed code of a CDS base at codon position `pos` (taken modulo 3).
pub fn framed_cds(pos: usize) -> u8 {
    [CDS, CDS1, CDS2][pos % 3]
}

/// Precedence of each class code (higher wins): CDS > 5′UTR > 3′UTR > ncexon > intron > intergenic.
const RANK: [u8; NUM_CLASSES] = [0, 4, 5, 1, 3, 2];

/// Precedence of a class code (higher wins where features overlap); 0 for unknown codes.
/// Framed CDS codes rank as CDS.
pub fn precedence(class: u8) -> u8 {
    RANK.get(usize::from(coarse(class))).copied().unwrap_or(0)
}

/// Per-base class codes for both strands of one sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelTracks {
    /// Classes of plus-strand features, by forward position.
    pub plus: Vec<u8>,
    /// Classes of minus-strand features, by forward position.
    pub minus: Vec<u8>,
}

impl LabelTracks {
    /// All-intergenic tracks for a sequence of `len` bases.
    pub fn new(len: usize) -> Self {
        LabelTracks {
            plus: vec![INTERGENIC; len],
            minus: vec![INTERGENIC; len],
        }
    }

    /// Tracks for a sequence of `len` bases from the representative transcript of each gene.
    pub fn from_genes<'a>(len: usize, genes: impl IntoIterator<Item = &'a Gene>) -> Self {
        let mut t = LabelTracks::new(len);
        for g in genes {
            if let Some(tx) = g.longest() {
                t.paint_transcript(tx);
            }
        }
        t
    }

    /// Paint one transcript onto its strand's track (precedence rules apply; clipped to length).
    pub fn paint_transcript(&mut self, t: &Transcript) {
        let track = if t.strand.is_minus() {
            &mut self.minus
        } else {
            &mut self.plus
        };
        if let (Some(first), Some(last)) = (t.exons.first(), t.exons.last()) {
            paint(
                track,
                Interval {
                    start: first.start,
                    end: last.end,
                },
                INTRON,
            );
        }
        match t.cds_span() {
            None => {
                for e in &t.exons {
                    paint(track, *e, NC_EXON);
                }
            }
            Some(span) => {
                let (before, after) = if t.strand.is_minus() {
                    (UTR3, UTR5)
                } else {
                    (UTR5, UTR3)
                };
                for e in &t.exons {
                    let left = Interval {
                        start: e.start,
                        end: e.end.min(span.start),
                    };
                    let mid = Interval {
                        start: e.start.max(span.start),
                        end: e.end.min(span.end),
                    };
                    let right = Interval {
                        start: e.start.max(span.end),
                        end: e.end,
                    };
                    paint(track, left, before);
                    paint(track, mid, CDS);
                    paint(track, right, after);
                }
                for c in &t.cds {
                    paint(track, c.iv, CDS);
                }
            }
        }
    }

    /// Tracks from the representative transcripts with every CDS base given its codon
    /// position ([`LabelTracks::paint_frames`]).
    pub fn from_genes_framed<'a>(len: usize, genes: impl IntoIterator<Item = &'a Gene>) -> Self {
        let genes: Vec<&Gene> = genes.into_iter().collect();
        let mut t = LabelTracks::from_genes(len, genes.iter().copied());
        for g in &genes {
            if let Some(tx) = g.longest() {
                t.paint_frames(tx);
            }
        }
        t
    }

    /// Give the CDS bases of `t` their codon position in the transcript's direction
    /// ([`CDS`], [`CDS1`], [`CDS2`]). Each CDS part starts at the position its GFF phase says
    /// (phase `p`: the part's first `p` bases end the previous codon), or, without a phase, where
    /// the CDS bases before it leave off. Only bases still plain [`CDS`] change, so where CDS of
    /// two transcripts overlap the first one painted keeps its frame.
    pub fn paint_frames(&mut self, t: &Transcript) {
        let minus = t.strand.is_minus();
        let track = if minus {
            &mut self.minus
        } else {
            &mut self.plus
        };
        let mut parts: Vec<&gff::CdsPart> = t.cds.iter().collect();
        if minus {
            parts.reverse();
        }
        let mut done = 0usize;
        for part in parts {
            let n = part.iv.end.saturating_sub(part.iv.start);
            let first = match part.phase {
                Some(p) => (3 - usize::from(p) % 3) % 3,
                None => done % 3,
            };
            for k in 0..n {
                let pos = if minus {
                    part.iv.end - 1 - k
                } else {
                    part.iv.start + k
                };
                if let Some(b) = track.get_mut(pos) {
                    if *b == CDS {
                        *b = framed_cds(first + k);
                    }
                }
            }
            done += n;
        }
    }

    /// Base counts per class: `[plus, minus]`, each indexed by class code.
    pub fn counts(&self) -> [[u64; NUM_CLASSES]; 2] {
        [count(&self.plus), count(&self.minus)]
    }
}

fn paint(track: &mut [u8], iv: Interval, class: u8) {
    let end = iv.end.min(track.len());
    let Some(cells) = track.get_mut(iv.start.min(end)..end) else {
        return;
    };
    let r = precedence(class);
    for b in cells {
        if r > precedence(*b) {
            *b = class;
        }
    }
}

fn count(track: &[u8]) -> [u64; NUM_CLASSES] {
    let mut c = [0u64; NUM_CLASSES];
    for &b in track {
        if let Some(x) = c.get_mut(usize::from(coarse(b))) {
            *x += 1;
        }
    }
    c
}

/// Totals of [`label_files`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSummary {
    /// Plus-strand base counts by class code.
    pub plus: [u64; NUM_CLASSES],
    /// Minus-strand base counts by class code.
    pub minus: [u64; NUM_CLASSES],
    /// FASTA records.
    pub sequences: usize,
    /// Total bases.
    pub bases: u64,
    /// Genes painted (those with a transcript).
    pub genes: usize,
    /// Non-fatal GFF warnings.
    pub warnings: Vec<String>,
}

/// Build label tracks for every record of `fasta_path` from `gff_path` and count classes.
///
/// Sequences are streamed (only lengths are kept), so memory is two bytes per base of the
/// longest record.
pub fn label_files(fasta_path: &str, gff_path: &str) -> Result<LabelSummary> {
    let ann = gff::read(gff_path)?;
    let mut reader = Reader::open(fasta_path, SeqPolicy::default())?;
    let mut heads: Vec<(String, String, usize)> = Vec::new();
    while let Some(h) = reader.next_header()? {
        let label = reader.label().to_string();
        let len = reader.read_sequence(&h, |chunk, line| match seq::first_invalid(chunk) {
            None => Ok(()),
            Some(i) => Err(Error::at(
                &label,
                line,
                format!(
                    "record '{}': invalid base {}",
                    h.name,
                    seq::show_byte(chunk[i])
                ),
            )),
        })?;
        let len = usize::try_from(len)
            .map_err(|_| Error::input(format!("{fasta_path}: record '{}' too long", h.name)))?;
        heads.push((h.name, h.description, len));
    }
    let names: Vec<SeqName<'_>> = heads
        .iter()
        .map(|(n, d, l)| SeqName {
            name: n,
            description: d,
            len: *l,
        })
        .collect();
    let index = ann.resolve_seqids(fasta_path, &names)?;
    let mut by_record: HashMap<usize, Vec<&Gene>> = HashMap::new();
    for g in &ann.genes {
        if let Some(&i) = index.get(&g.seqid) {
            by_record.entry(i).or_default().push(g);
        }
    }
    let mut s = LabelSummary {
        sequences: heads.len(),
        warnings: ann.warnings.clone(),
        ..LabelSummary::default()
    };
    for (i, (_, _, len)) in heads.iter().enumerate() {
        s.bases += *len as u64;
        let genes = by_record.remove(&i).unwrap_or_default();
        s.genes += genes.iter().filter(|g| !g.transcripts.is_empty()).count();
        let [p, m] = LabelTracks::from_genes(*len, genes).counts();
        for k in 0..NUM_CLASSES {
            s.plus[k] += p[k];
            s.minus[k] += m[k];
        }
    }
    Ok(s)
}
