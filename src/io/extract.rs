//! Spliced, strand-correct sequence extraction from gene models (like `gffread -x / -w`).
//!
//! * `cds`: CDS segments concatenated in transcript order (overlapping slippage segments read
//!   twice), reverse-complemented on `-`; when the 5′-most segment has phase `p > 0`, its first
//!   `p` bases are dropped so the output starts on a codon (header: `phase_trim=p`).
//! * `transcript`: exons concatenated (spliced mRNA / ncRNA).
//! * `gene`: the gene span, unspliced.
//! * `promoter`: `upstream` bases before the TSS and `downstream` bases from the TSS on, in
//!   transcript orientation. Windows are clipped at sequence ends and the header says so
//!   (`clipped_upstream=k`, `clipped_downstream=k`); transcripts of one gene sharing a TSS give
//!   one record (`shared_by=n`).
//!
//! Headers: `>ID gene=GENE [name=NAME] loc=SEQID:START-END(STRAND) ... len=N`, coordinates
//! 1-based inclusive.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::io::fasta;
use crate::io::gff::{Annotation, Gene, Interval, Strand, Transcript};
use crate::seq::{revcomp, SeqPolicy};

/// What to extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Feature {
    /// Spliced coding sequence.
    Cds,
    /// Spliced transcript (exons).
    Transcript,
    /// Unspliced gene span.
    Gene,
    /// Window around each transcript's TSS.
    Promoter,
}

/// Options for [`extract`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractOptions {
    /// What to extract.
    pub feature: Feature,
    /// One transcript per gene ([`Gene::longest`]); ignored for `gene`.
    pub longest: bool,
    /// Promoter bases before the TSS.
    pub upstream: usize,
    /// Promoter bases from the TSS on (the TSS included).
    pub downstream: usize,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            feature: Feature::Cds,
            longest: false,
            upstream: 1000,
            downstream: 100,
        }
    }
}

/// One extracted sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Record name (transcript or gene ID).
    pub id: String,
    /// Header text after the name.
    pub description: String,
    /// The sequence, 5′→3′ on the feature's strand.
    pub seq: Vec<u8>,
}

/// Extract from an annotation and loaded sequences; `index` maps GFF seqids to `records`
/// (from [`Annotation::resolve_records`]).
pub fn extract(
    ann: &Annotation,
    records: &[fasta::Record],
    index: &HashMap<String, usize>,
    opts: &ExtractOptions,
) -> Result<Vec<Extracted>> {
    let mut out = Vec::new();
    for gene in &ann.genes {
        let seq = index
            .get(&gene.seqid)
            .and_then(|&i| records.get(i))
            .map(|r| r.seq.as_slice())
            .ok_or_else(|| {
                Error::input(format!(
                    "{}:{}: seqid '{}' has no sequence",
                    ann.source, gene.line, gene.seqid
                ))
            })?;
        if opts.feature == Feature::Gene {
            let s = slice(seq, gene.span, gene, &ann.source)?;
            let s = oriented(s, gene.strand);
            let mut d = head(None, gene);
            let _ = write!(
                d,
                " loc={} len={}",
                loc(gene, gene.span, gene.strand),
                s.len()
            );
            out.push(Extracted {
                id: gene.id.clone(),
                description: d,
                seq: s,
            });
            continue;
        }
        let chosen: Vec<&Transcript> = if opts.longest {
            gene.longest().into_iter().collect()
        } else {
            gene.transcripts.iter().collect()
        };
        let mut seen_tss: HashMap<(usize, Strand), usize> = HashMap::new();
        for t in chosen {
            match opts.feature {
                Feature::Cds => {
                    if let Some(x) = cds_record(seq, gene, t, &ann.source)? {
                        out.push(x);
                    }
                }
                Feature::Transcript => {
                    let mut s = Vec::with_capacity(t.len());
                    for e in &t.exons {
                        s.extend_from_slice(slice_ref(seq, *e, gene, &ann.source)?);
                    }
                    let s = oriented(s, t.strand);
                    let mut d = head(Some(t), gene);
                    let _ = write!(
                        d,
                        " loc={} exons={} len={}",
                        loc(gene, t.span, t.strand),
                        t.exons.len(),
                        s.len()
                    );
                    out.push(Extracted {
                        id: t.id.clone(),
                        description: d,
                        seq: s,
                    });
                }
                Feature::Promoter => {
                    let tss = t.tss();
                    if let Some(&k) = seen_tss.get(&(tss, t.strand)) {
                        bump_shared(&mut out[k]);
                        continue;
                    }
                    seen_tss.insert((tss, t.strand), out.len());
                    out.push(promoter_record(seq, gene, t, opts, &ann.source)?);
                }
                Feature::Gene => {}
            }
        }
    }
    Ok(out)
}

/// Read both files, resolve seqids and extract; returns the records and the GFF warnings.
pub fn extract_files(
    fasta_path: &str,
    gff_path: &str,
    policy: SeqPolicy,
    opts: &ExtractOptions,
) -> Result<(Vec<Extracted>, Vec<String>)> {
    let ann = crate::io::gff::read(gff_path)?;
    let records = fasta::read_records(fasta_path, policy)?;
    let index = ann.resolve_records(fasta_path, &records)?;
    let out = extract(&ann, &records, &index, opts)?;
    Ok((out, ann.warnings))
}

/// Write records as FASTA wrapped at `width` columns (0 = one line).
pub fn write_fasta(
    w: &mut dyn std::io::Write,
    recs: &[Extracted],
    width: usize,
) -> std::io::Result<()> {
    for r in recs {
        fasta::write_record(w, &r.id, &r.description, &r.seq, width)?;
    }
    Ok(())
}

fn cds_record(seq: &[u8], gene: &Gene, t: &Transcript, src: &str) -> Result<Option<Extracted>> {
    let parts = t.cds_in_order();
    let Some(first) = parts.first() else {
        return Ok(None);
    };
    let mut s = Vec::with_capacity(t.cds_len());
    for p in &t.cds {
        s.extend_from_slice(slice_ref(seq, p.iv, gene, src)?);
    }
    let mut s = oriented(s, t.strand);
    let trim = usize::from(first.phase.unwrap_or(0)).min(s.len());
    s.drain(..trim);
    let span = t.cds_span().unwrap_or(t.span);
    let mut d = head(Some(t), gene);
    let _ = write!(
        d,
        " loc={} segments={} len={}",
        loc(gene, span, t.strand),
        t.cds.len(),
        s.len()
    );
    if trim > 0 {
        let _ = write!(d, " phase_trim={trim}");
    }
    Ok(Some(Extracted {
        id: t.id.clone(),
        description: d,
        seq: s,
    }))
}

fn promoter_record(
    seq: &[u8],
    gene: &Gene,
    t: &Transcript,
    o: &ExtractOptions,
    src: &str,
) -> Result<Extracted> {
    let tss = t.tss();
    let len = seq.len();
    // Desired window in forward coordinates, as signed to see how much falls off each end.
    let (lo, hi) = if t.strand.is_minus() {
        (
            tss as i128 + 1 - o.downstream as i128,
            tss as i128 + 1 + o.upstream as i128,
        )
    } else {
        (
            tss as i128 - o.upstream as i128,
            tss as i128 + o.downstream as i128,
        )
    };
    let cut_lo = (-lo).max(0) as usize;
    let cut_hi = (hi - len as i128).max(0) as usize;
    let iv = Interval {
        start: lo.clamp(0, len as i128) as usize,
        end: hi.clamp(0, len as i128) as usize,
    };
    let (clip_up, clip_down) = if t.strand.is_minus() {
        (cut_hi, cut_lo)
    } else {
        (cut_lo, cut_hi)
    };
    let s = oriented(slice(seq, iv, gene, src)?, t.strand);
    let mut d = head(Some(t), gene);
    let strand = if t.strand.is_minus() { '-' } else { '+' };
    let _ = write!(
        d,
        " tss={}:{}({strand}) loc={} upstream={} downstream={}",
        gene.seqid,
        tss + 1,
        loc(gene, iv, t.strand),
        o.upstream,
        o.downstream
    );
    if clip_up > 0 {
        let _ = write!(d, " clipped_upstream={clip_up}");
    }
    if clip_down > 0 {
        let _ = write!(d, " clipped_downstream={clip_down}");
    }
    let _ = write!(d, " len={}", s.len());
    Ok(Extracted {
        id: t.id.clone(),
        description: d,
        seq: s,
    })
}

fn bump_shared(x: &mut Extracted) {
    let key = " shared_by=";
    if let Some(pos) = x.description.find(key) {
        let rest = &x.description[pos + key.len()..];
        let end = rest.find(' ').unwrap_or(rest.len());
        let n: usize = rest[..end].parse().unwrap_or(1);
        let tail = rest[end..].to_string();
        x.description.truncate(pos);
        let _ = write!(x.description, "{key}{}{tail}", n + 1);
    } else {
        x.description.push_str(" shared_by=2");
    }
}

fn head(t: Option<&Transcript>, gene: &Gene) -> String {
    let mut d = String::new();
    if t.is_some() {
        let _ = write!(d, "gene={}", gene.id);
    } else {
        let _ = write!(d, "kind={}", gene.kind);
    }
    if let Some(n) = &gene.name {
        let _ = write!(d, " name={}", n.replace(char::is_whitespace, "_"));
    }
    if let Some(t) = t {
        let _ = write!(d, " kind={}", t.kind);
    }
    d
}

fn loc(gene: &Gene, iv: Interval, strand: Strand) -> String {
    format!(
        "{}:{}-{}({})",
        gene.seqid,
        iv.start + 1,
        iv.end,
        strand.symbol()
    )
}

fn slice_ref<'a>(seq: &'a [u8], iv: Interval, gene: &Gene, src: &str) -> Result<&'a [u8]> {
    seq.get(iv.start..iv.end).ok_or_else(|| {
        Error::input(format!(
            "{src}:{}: {}:{}-{} lies outside sequence '{}' ({} bp)",
            gene.line,
            gene.seqid,
            iv.start + 1,
            iv.end,
            gene.seqid,
            seq.len()
        ))
    })
}

fn slice(seq: &[u8], iv: Interval, gene: &Gene, src: &str) -> Result<Vec<u8>> {
    slice_ref(seq, iv, gene, src).map(<[u8]>::to_vec)
}

fn oriented(s: Vec<u8>, strand: Strand) -> Vec<u8> {
    if strand.is_minus() {
        revcomp(&s)
    } else {
        s
    }
}
