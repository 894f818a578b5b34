//! GFF3 writer for gene models: gene → mRNA → exon / CDS (phase) / UTR.
//!
//! Output: `##gff-version 3`, one `##sequence-region` line per region, then per gene a `gene`
//! row (`ID`, `Name`), one row per transcript (its own type, `ID`, `Parent`), and `exon`, `CDS`
//! (with phase), `five_prime_UTR` and `three_prime_UTR` rows (`Parent`), each group in genomic
//! order. Regions and genes are written sorted by seqid (byte order), then start and end: the
//! order `gt eval` requires. Coordinates convert from 0-based
//! half-open to GFF's 1-based inclusive. Reserved characters in seqids and attribute values are
//! percent-escaped. A CDS part without a phase gets the phase implied by the CDS length before it
//! (in transcript order). Transcript IDs that repeat an ID already written (e.g. an implicit
//! transcript named after its gene) get a `.tN` suffix, so every ID is unique, as
//! `gt gff3validator` requires.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use crate::error::{Error, Result};
use crate::io::gff::{CdsPart, Gene, Interval, Strand, Transcript};

/// Write `genes` as GFF3, with a `##sequence-region` line per entry of `regions` (name, length).
///
/// `scores`, when given, holds one score per gene (column 6 of the gene and mRNA rows).
/// When `regions` is not empty, every gene must lie on one of them and inside its length.
pub fn write_gff3<W: Write>(
    w: &mut W,
    source: &str,
    regions: &[(String, usize)],
    genes: &[Gene],
    scores: Option<&[f64]>,
) -> Result<()> {
    if let Some(s) = scores {
        if s.len() != genes.len() {
            return Err(Error::input(format!(
                "GFF3 writer: {} scores for {} genes",
                s.len(),
                genes.len()
            )));
        }
    }
    let region_index: HashMap<&str, usize> = regions
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.as_str(), i))
        .collect();
    for g in genes {
        if regions.is_empty() {
            break;
        }
        let Some(&r) = region_index.get(g.seqid.as_str()) else {
            return Err(Error::input(format!(
                "GFF3 writer: gene '{}' is on '{}', which is not one of the {} sequence regions",
                g.id,
                g.seqid,
                regions.len()
            )));
        };
        let end = gene_extent(g).end;
        if end > regions[r].1 {
            return Err(Error::input(format!(
                "GFF3 writer: gene '{}' ends at {end} but sequence '{}' has only {} bp",
                g.id, g.seqid, regions[r].1
            )));
        }
    }
    let source = if source.is_empty() {
        ".".to_string()
    } else {
        escape(source, false)
    };
    let io = |e| Error::io("GFF3 output", e);
    writeln!(w, "##gff-version 3").map_err(io)?;
    let mut sorted_regions: Vec<&(String, usize)> = regions.iter().collect();
    sorted_regions.sort();
    for (name, len) in sorted_regions {
        writeln!(w, "##sequence-region {} 1 {len}", escape(name, true)).map_err(io)?;
    }
    let mut order: Vec<usize> = (0..genes.len()).collect();
    order.sort_by_key(|&i| {
        let g = &genes[i];
        (g.seqid.clone(), gene_extent(g).start, gene_extent(g).end)
    });
    let mut used: HashSet<String> = HashSet::new();
    for i in order {
        let g = &genes[i];
        let score = scores.map(|s| s[i]);
        write_gene(w, &source, g, score, &mut used).map_err(io)?;
    }
    Ok(())
}

/// The gene's span widened to cover all of its transcripts' parts.
fn gene_extent(g: &Gene) -> Interval {
    let mut s = g.span;
    for t in &g.transcripts {
        let e = tx_extent(t);
        s.start = s.start.min(e.start);
        s.end = s.end.max(e.end);
    }
    s
}

/// A transcript's span widened to cover its parts.
fn tx_extent(t: &Transcript) -> Interval {
    let mut s = t.span;
    let parts = t
        .exons
        .iter()
        .chain(t.utr5.iter())
        .chain(t.utr3.iter())
        .copied()
        .chain(t.cds.iter().map(|c| c.iv));
    for p in parts {
        s.start = s.start.min(p.start);
        s.end = s.end.max(p.end);
    }
    s
}

fn unique_id(used: &mut HashSet<String>, want: &str, fallback: &str) -> String {
    let base = if want.is_empty() { fallback } else { want };
    if used.insert(base.to_string()) {
        return base.to_string();
    }
    let mut k = 1;
    loop {
        let id = format!("{base}.t{k}");
        if used.insert(id.clone()) {
            return id;
        }
        k += 1;
    }
}

#[allow(clippy::too_many_arguments)]
fn row<W: Write>(
    w: &mut W,
    seqid: &str,
    source: &str,
    ty: &str,
    iv: Interval,
    score: Option<f64>,
    strand: Strand,
    phase: Option<u8>,
    attrs: &str,
) -> std::io::Result<()> {
    let score = score.map_or(".".to_string(), |s| format!("{s:.3}"));
    let phase = phase.map_or(".".to_string(), |p| p.to_string());
    writeln!(
        w,
        "{seqid}\t{source}\t{ty}\t{}\t{}\t{score}\t{}\t{phase}\t{attrs}",
        iv.start + 1,
        iv.end,
        strand.symbol()
    )
}

fn write_gene<W: Write>(
    w: &mut W,
    source: &str,
    g: &Gene,
    score: Option<f64>,
    used: &mut HashSet<String>,
) -> std::io::Result<()> {
    let seqid = escape(&g.seqid, true);
    let gid = unique_id(used, &g.id, "gene");
    let mut attrs = format!("ID={}", escape(&gid, false));
    if let Some(n) = &g.name {
        attrs.push_str(&format!(";Name={}", escape(n, false)));
    }
    let kind = if g.kind.is_empty() { "gene" } else { &g.kind };
    row(
        w,
        &seqid,
        source,
        &escape_type(kind),
        gene_extent(g),
        score,
        g.strand,
        None,
        &attrs,
    )?;
    for t in &g.transcripts {
        let tid = unique_id(used, &t.id, &format!("{gid}.t1"));
        let parent = format!("Parent={}", escape(&tid, false));
        let kind = if t.kind.is_empty() { "mRNA" } else { &t.kind };
        row(
            w,
            &seqid,
            source,
            &escape_type(kind),
            tx_extent(t),
            score,
            t.strand,
            None,
            &format!("ID={};Parent={}", escape(&tid, false), escape(&gid, false)),
        )?;
        // Parts in genomic order: exons, then CDS, then UTRs, interleaved by start.
        let mut parts: Vec<(Interval, u8, Option<u8>)> = Vec::new();
        parts.extend(t.exons.iter().map(|&e| (e, 0u8, None)));
        for (c, ph) in t.cds.iter().zip(cds_phases(t)) {
            parts.push((c.iv, 1, Some(c.phase.unwrap_or(ph))));
        }
        parts.extend(t.utr5.iter().map(|&u| (u, 2, None)));
        parts.extend(t.utr3.iter().map(|&u| (u, 3, None)));
        parts.sort_by_key(|&(iv, k, _)| (iv.start, k, iv.end));
        for (iv, k, phase) in parts {
            if iv.is_empty() {
                continue;
            }
            let ty = ["exon", "CDS", "five_prime_UTR", "three_prime_UTR"][usize::from(k)];
            row(w, &seqid, source, ty, iv, None, t.strand, phase, &parent)?;
        }
    }
    Ok(())
}

/// GFF phase of each CDS part (in `t.cds` order) implied by the CDS length before it in
/// transcript (5′→3′) order.
pub fn cds_phases(t: &Transcript) -> Vec<u8> {
    let n = t.cds.len();
    let mut out = vec![0u8; n];
    let mut idx: Vec<usize> = (0..n).collect();
    if t.strand.is_minus() {
        idx.reverse();
    }
    let mut before = 0usize;
    for i in idx {
        out[i] = ((3 - before % 3) % 3) as u8;
        before += t.cds[i].iv.len();
    }
    out
}

/// Set each CDS part's phase from the CDS length before it (transcript order).
pub fn fill_phases(t: &mut Transcript) {
    let ph = cds_phases(t);
    for (c, p) in t.cds.iter_mut().zip(ph) {
        *c = CdsPart {
            iv: c.iv,
            phase: Some(p),
        };
    }
}

/// Percent-escape a column value: seqids keep `[A-Za-z0-9.:^*$@!+_?|-]`, attribute values
/// escape only `; = & ,`, `%` and control characters (GFF3 spec).
fn escape(s: &str, seqid: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let keep = if seqid {
            c.is_ascii_alphanumeric() || ".:^*$@!+_?|-".contains(c)
        } else {
            !(c.is_control() || ";=&,%".contains(c))
        };
        if keep {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

fn escape_type(s: &str) -> String {
    escape(s, false).replace('\t', "%09")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_reserved_characters() {
        assert_eq!(escape("a;b=c", false), "a%3Bb%3Dc");
        assert_eq!(escape("chr 1", true), "chr%201");
        assert_eq!(escape("NC_1.1", true), "NC_1.1");
    }
}
