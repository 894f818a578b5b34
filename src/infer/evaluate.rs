//! Annotation accuracy: predicted gene models against a reference, with `gt eval`'s definitions.
//!
//! Levels and features (each with sensitivity `sn`, precision `pr` — gt calls it specificity —
//! F1, and the counts, per strand and over both):
//!
//! | level.feature     | counted unit                           | gt eval line                      |
//! |-------------------|----------------------------------------|-----------------------------------|
//! | `base.cds`        | CDS bases (union per strand)           | nucleotide … (CDS level)          |
//! | `base.exon`       | exon bases (union per strand)          | nucleotide … (mRNA level)         |
//! | `exon.all`        | exon rows, exact start and end         | exon … (mRNA level, all)          |
//! | `exon.cds`        | CDS rows, exact start and end          | exon … (CDS level, all)           |
//! | `exon.unique`     | distinct exons, exact start and end    | exon … (mRNA level, all, collapsed) |
//! | `exon.cds_unique` | distinct CDS parts, exact start and end | exon … (CDS level, all, collapsed) |
//! | `transcript.all`  | `mRNA` rows: same span, same exons     | mRNA … (mRNA level)               |
//! | `transcript.cds`  | `mRNA` rows: same span, same CDS parts | mRNA … (CDS level)                |
//! | `gene.all`        | `gene` rows: same span, same mRNAs     | gene … (mRNA level)               |
//! | `gene.cds`        | `gene` rows: same span, mRNAs same CDS | gene … (CDS level)                |
//!
//! As in gt: exon rows are counted per transcript (a reference exon shared by two transcripts
//! counts twice and can be matched twice); each reference transcript or gene is matched at most
//! once, predictions in file order taking the first equal unmatched reference; two genes are
//! equal when their spans match and, if they have the same number of `mRNA`s, those match
//! pairwise in sorted order (gt's rule: with different counts only the spans are compared);
//! `0/0` is 1. Differences from gt: features on strand `.` are skipped in both files (gt counts
//! predicted ones as false); exons the reader derives (transcripts given only as CDS/UTR rows)
//! count as exon rows; predicted bases past the reference's sequence end are not counted again
//! per overlapping feature.
//!
//! With `regions` (a BED file: a partial reference), base counts are clipped to the regions and
//! exons, transcripts and genes count only when they lie entirely inside one region.
//!
//! [`coding_view`] reduces both files to their coding parts first (the protocol of ab initio
//! gene-finder benchmarks such as Tiberius' and BRAKER's, which compare CDS only): then every
//! level above scores coding structure, and gene and transcript spans no longer hinge on the
//! untranslated ends. It equals `gt eval` on the files written from the coding view.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::{Error, Result};
use crate::io::gff::{self, Annotation, Gene, Interval, Strand, Transcript};

/// True / false positives and false negatives of one feature on one strand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Matched units.
    pub tp: u64,
    /// Predicted, unmatched.
    pub fp: u64,
    /// Reference, unmatched.
    pub fn_: u64,
}

impl Counts {
    /// Sensitivity `tp / (tp + fn)` (1 when there is no reference unit, as in gt).
    pub fn sn(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Precision `tp / (tp + fp)` (1 when nothing is predicted, as in gt).
    pub fn pr(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// Harmonic mean of sensitivity and precision (0 when both are 0).
    pub fn f1(&self) -> f64 {
        let (s, p) = (self.sn(), self.pr());
        if s + p == 0.0 {
            0.0
        } else {
            2.0 * s * p / (s + p)
        }
    }

    fn add(&mut self, o: Counts) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
    }

    fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "sn": self.sn(), "pr": self.pr(), "f1": self.f1(),
            "tp": self.tp, "fp": self.fp, "fn": self.fn_,
        })
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// Levels, in report order.
pub const LEVELS: [&str; 4] = ["base", "exon", "transcript", "gene"];
/// Features of one level, in report order.
pub fn features(level: &str) -> &'static [&'static str] {
    match level {
        "base" => &["cds", "exon"],
        "exon" => &["all", "cds", "unique", "cds_unique"],
        _ => &["all", "cds"],
    }
}

/// Counts per level, feature and strand (`[plus, minus]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// `(level, feature)` → counts on the plus and minus strands.
    pub counts: BTreeMap<(String, String), [Counts; 2]>,
}

impl Report {
    /// F1 of `level.feature` over both strands (0 for an unknown name).
    pub fn f1(&self, level: &str, feature: &str) -> f64 {
        self.total(level, feature).map_or(0.0, |c| c.f1())
    }

    /// Counts of `level.feature` over both strands (`None` for an unknown name).
    pub fn total(&self, level: &str, feature: &str) -> Option<Counts> {
        let c = self.counts.get(&(level.to_string(), feature.to_string()))?;
        let mut t = c[0];
        t.add(c[1]);
        Some(t)
    }

    /// Counts of `level.feature` on one strand.
    pub fn strand(&self, level: &str, feature: &str, minus: bool) -> Option<Counts> {
        let c = self.counts.get(&(level.to_string(), feature.to_string()))?;
        Some(c[usize::from(minus)])
    }

    fn put(&mut self, level: &str, feature: &str, c: [Counts; 2]) {
        self.counts
            .insert((level.to_string(), feature.to_string()), c);
    }

    /// JSON nested as level → feature → figure, e.g. `base.cds.f1`, with `plus` and `minus`
    /// objects of the same figures under each feature.
    pub fn to_json(&self) -> serde_json::Value {
        let mut top = serde_json::Map::new();
        for level in LEVELS {
            let mut lv = serde_json::Map::new();
            for &feature in features(level) {
                let key = (level.to_string(), feature.to_string());
                let Some(c) = self.counts.get(&key) else {
                    continue;
                };
                let mut t = c[0];
                t.add(c[1]);
                let mut v = t.to_json();
                v["plus"] = c[0].to_json();
                v["minus"] = c[1].to_json();
                lv.insert(feature.to_string(), v);
            }
            top.insert(level.to_string(), serde_json::Value::Object(lv));
        }
        serde_json::Value::Object(top)
    }

    /// A plain-text table: one row per level, feature and strand.
    pub fn table(&self) -> String {
        let mut t = format!(
            "{:<11} {:<10} {:<6} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10}\n",
            "level", "feature", "strand", "sn", "pr", "f1", "tp", "fp", "fn"
        );
        for level in LEVELS {
            for &feature in features(level) {
                let key = (level.to_string(), feature.to_string());
                let Some(c) = self.counts.get(&key) else {
                    continue;
                };
                let mut all = c[0];
                all.add(c[1]);
                for (name, x) in [("all", all), ("+", c[0]), ("-", c[1])] {
                    t.push_str(&format!(
                        "{:<11} {:<10} {:<6} {:>8.4} {:>8.4} {:>8.4} {:>10} {:>10} {:>10}\n",
                        level,
                        feature,
                        name,
                        x.sn(),
                        x.pr(),
                        x.f1(),
                        x.tp,
                        x.fp,
                        x.fn_
                    ));
                }
            }
        }
        t
    }
}

/// A 0-based half-open region of one sequence (from BED).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Sequence name.
    pub seqid: String,
    /// Interval on it.
    pub iv: Interval,
}

/// Read BED regions (first three columns; `track`, `browser` and `#` lines skipped).
pub fn read_bed(path: &str) -> Result<Vec<Region>> {
    Ok(crate::io::bed::read_bed(path)?
        .into_iter()
        .map(|r| Region {
            seqid: r.seqid,
            iv: r.iv,
        })
        .collect())
}

/// Evaluate the GFF3 files `pred` against `ref_` (optionally restricted to BED `regions`;
/// with `coding`, on the [`coding_view`] of both).
pub fn evaluate_files(
    pred: &str,
    ref_: &str,
    regions: Option<&str>,
    coding: bool,
) -> Result<Report> {
    let view = |a: Annotation| if coding { coding_view(&a) } else { a };
    let r = view(gff::read(ref_)?);
    let p = view(gff::read(pred)?);
    let regions = match regions {
        Some(b) => Some(read_bed(b)?),
        None => None,
    };
    evaluate(&p, &r, regions.as_deref())
}

/// Evaluate parsed annotations. Errors: the reference has no gene, or the prediction uses a
/// seqid the reference does not.
pub fn evaluate(
    pred: &Annotation,
    ref_: &Annotation,
    regions: Option<&[Region]>,
) -> Result<Report> {
    if ref_.genes.is_empty() {
        return Err(Error::input(format!(
            "{}: the reference has no genes",
            ref_.source
        )));
    }
    let ref_seqids: HashSet<&str> = ref_.seqids.iter().map(|u| u.seqid.as_str()).collect();
    for u in &pred.seqids {
        if !ref_seqids.contains(u.seqid.as_str()) {
            return Err(Error::at(
                &pred.source,
                u.first_line,
                format!(
                    "seqid '{}' does not occur in the reference {} (wrong reference, or renamed sequences?)",
                    u.seqid, ref_.source
                ),
            ));
        }
    }
    let regs: Option<HashMap<&str, Vec<Interval>>> = regions.map(|rs| {
        let mut m: HashMap<&str, Vec<Interval>> = HashMap::new();
        for r in rs {
            m.entry(r.seqid.as_str()).or_default().push(r.iv);
        }
        for v in m.values_mut() {
            *v = gff::merge(std::mem::take(v));
        }
        m
    });
    let inside = |seqid: &str, iv: Interval| -> bool {
        match &regs {
            None => true,
            Some(m) => m
                .get(seqid)
                .is_some_and(|v| v.iter().any(|r| r.start <= iv.start && iv.end <= r.end)),
        }
    };
    let mut rep = Report::default();

    // Base level.
    for (feature, cds) in [("cds", true), ("exon", false)] {
        let mut c = [Counts::default(); 2];
        let rb = bases(&ref_.genes, cds);
        let pb = bases(&pred.genes, cds);
        let mut keys: Vec<&(String, bool)> = rb.keys().chain(pb.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let empty = Vec::new();
            let mut a = rb.get(key).unwrap_or(&empty).clone();
            let mut b = pb.get(key).unwrap_or(&empty).clone();
            if let Some(m) = &regs {
                let rs = m.get(key.0.as_str()).cloned().unwrap_or_default();
                a = intersect(&a, &rs);
                b = intersect(&b, &rs);
            }
            let both = total(&intersect(&a, &b));
            let s = usize::from(key.1);
            c[s].tp += both;
            c[s].fn_ += total(&a) - both;
            c[s].fp += total(&b) - both;
        }
        rep.put("base", feature, c);
    }

    // Exon level: rows matched as multisets.
    for (feature, cds) in [("cds", true), ("all", false)] {
        let mut c = [Counts::default(); 2];
        let mut left: HashMap<(&str, bool, Interval), u64> = HashMap::new();
        for (seqid, minus, iv) in exon_rows(&ref_.genes, cds) {
            if inside(seqid, iv) {
                *left.entry((seqid, minus, iv)).or_default() += 1;
                c[usize::from(minus)].fn_ += 1;
            }
        }
        for (seqid, minus, iv) in exon_rows(&pred.genes, cds) {
            if !inside(seqid, iv) {
                continue;
            }
            let s = usize::from(minus);
            match left.get_mut(&(seqid, minus, iv)) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    c[s].tp += 1;
                    c[s].fn_ -= 1;
                }
                _ => c[s].fp += 1,
            }
        }
        rep.put("exon", feature, c);
    }
    // Unique exons (gt's "collapsed", gffcompare's exon level): each distinct exon once.
    for (feature, cds) in [("unique", false), ("cds_unique", true)] {
        let uniq = |genes: &'_ [Gene]| -> HashSet<(String, bool, Interval)> {
            exon_rows(genes, cds)
                .into_iter()
                .filter(|&(s, _, iv)| inside(s, iv))
                .map(|(s, m, iv)| (s.to_string(), m, iv))
                .collect()
        };
        let (ru, pu) = (uniq(&ref_.genes), uniq(&pred.genes));
        let mut c = [Counts::default(); 2];
        for x in &ru {
            let s = usize::from(x.1);
            if pu.contains(x) {
                c[s].tp += 1;
            } else {
                c[s].fn_ += 1;
            }
        }
        for x in pu.difference(&ru) {
            c[usize::from(x.1)].fp += 1;
        }
        rep.put("exon", feature, c);
    }

    // Transcript level: mRNA rows.
    for (feature, cds) in [("cds", true), ("all", false)] {
        let refs: Vec<(&Gene, &Transcript)> = mrnas(&ref_.genes)
            .filter(|(g, t)| inside(&g.seqid, t.span))
            .collect();
        let preds: Vec<(&Gene, &Transcript)> = mrnas(&pred.genes)
            .filter(|(g, t)| inside(&g.seqid, t.span))
            .collect();
        let mut by_span: HashMap<(&str, bool, Interval), Vec<usize>> = HashMap::new();
        for (k, (g, t)) in refs.iter().enumerate() {
            by_span
                .entry((g.seqid.as_str(), t.strand.is_minus(), t.span))
                .or_default()
                .push(k);
        }
        let mut used = vec![false; refs.len()];
        let mut c = [Counts::default(); 2];
        for (_, t) in &refs {
            c[usize::from(t.strand.is_minus())].fn_ += 1;
        }
        for (g, t) in &preds {
            let s = usize::from(t.strand.is_minus());
            let hit = by_span
                .get(&(g.seqid.as_str(), t.strand.is_minus(), t.span))
                .and_then(|v| {
                    v.iter()
                        .copied()
                        .find(|&k| !used[k] && same_parts(t, refs[k].1, cds))
                });
            match hit {
                Some(k) => {
                    used[k] = true;
                    c[s].tp += 1;
                    c[s].fn_ -= 1;
                }
                None => c[s].fp += 1,
            }
        }
        rep.put("transcript", feature, c);
    }

    // Gene level: gene rows.
    for (feature, cds) in [("cds", true), ("all", false)] {
        let keep =
            |g: &&Gene| g.kind == "gene" && g.strand != Strand::Unknown && inside(&g.seqid, g.span);
        let refs: Vec<&Gene> = ref_.genes.iter().filter(keep).collect();
        let preds: Vec<&Gene> = pred.genes.iter().filter(keep).collect();
        let mut by_span: HashMap<(&str, bool, Interval), Vec<usize>> = HashMap::new();
        for (k, g) in refs.iter().enumerate() {
            by_span
                .entry((g.seqid.as_str(), g.strand.is_minus(), g.span))
                .or_default()
                .push(k);
        }
        let mut used = vec![false; refs.len()];
        let mut c = [Counts::default(); 2];
        for g in &refs {
            c[usize::from(g.strand.is_minus())].fn_ += 1;
        }
        for g in &preds {
            let s = usize::from(g.strand.is_minus());
            let hit = by_span
                .get(&(g.seqid.as_str(), g.strand.is_minus(), g.span))
                .and_then(|v| {
                    v.iter()
                        .copied()
                        .find(|&k| !used[k] && same_gene(g, refs[k], cds))
                });
            match hit {
                Some(k) => {
                    used[k] = true;
                    c[s].tp += 1;
                    c[s].fn_ -= 1;
                }
                None => c[s].fp += 1,
            }
        }
        rep.put("gene", feature, c);
    }
    Ok(rep)
}

/// The coding view of an annotation: each coding transcript reduced to its CDS (exons = CDS
/// parts, span = CDS span, no UTRs) and made a `gene` → `mRNA` (CDS hung directly on a gene,
/// as in NCBI prokaryote files, included), transcripts of a gene with the same CDS parts kept
/// once, each gene's span the hull of its coding transcripts; non-coding ones dropped.
pub fn coding_view(a: &Annotation) -> Annotation {
    let mut genes = Vec::with_capacity(a.genes.len());
    for g in &a.genes {
        let mut seen: HashSet<Vec<Interval>> = HashSet::new();
        let mut ts = Vec::new();
        for t in &g.transcripts {
            let Some(span) = t.cds_span() else {
                continue;
            };
            let parts = parts(t, true);
            if !seen.insert(parts.clone()) {
                continue;
            }
            let mut cds = t.cds.clone();
            cds.sort_by_key(|c| c.iv);
            ts.push(Transcript {
                kind: "mRNA".into(),
                implicit: false,
                span,
                exons: parts,
                cds,
                utr5: Vec::new(),
                utr3: Vec::new(),
                ..t.clone()
            });
        }
        let (Some(start), Some(end)) = (
            ts.iter().map(|t| t.span.start).min(),
            ts.iter().map(|t| t.span.end).max(),
        ) else {
            continue;
        };
        genes.push(Gene {
            kind: "gene".into(),
            span: Interval { start, end },
            transcripts: ts,
            ..g.clone()
        });
    }
    Annotation { genes, ..a.clone() }
}

/// Transcripts that gt sees as `mRNA` rows, on a known strand.
fn mrnas(genes: &[Gene]) -> impl Iterator<Item = (&Gene, &Transcript)> {
    genes.iter().flat_map(|g| {
        g.transcripts
            .iter()
            .filter(|t| t.kind == "mRNA" && !t.implicit && t.strand != Strand::Unknown)
            .map(move |t| (g, t))
    })
}

fn parts(t: &Transcript, cds: bool) -> Vec<Interval> {
    let mut v: Vec<Interval> = if cds {
        t.cds.iter().map(|c| c.iv).collect()
    } else {
        t.exons.clone()
    };
    v.sort();
    v
}

fn same_parts(a: &Transcript, b: &Transcript, cds: bool) -> bool {
    parts(a, cds) == parts(b, cds)
}

/// gt's gene equality: parts hung directly on the gene equal, and (when both have the same
/// number of mRNAs) the mRNAs, sorted by span, pairwise equal.
fn same_gene(a: &Gene, b: &Gene, cds: bool) -> bool {
    let direct = |g: &Gene| {
        let mut v: Vec<Interval> = g
            .transcripts
            .iter()
            .filter(|t| t.implicit)
            .flat_map(|t| parts(t, cds))
            .collect();
        v.sort();
        v
    };
    if direct(a) != direct(b) {
        return false;
    }
    fn m(g: &Gene) -> Vec<&Transcript> {
        let mut v: Vec<&Transcript> = g
            .transcripts
            .iter()
            .filter(|t| t.kind == "mRNA" && !t.implicit)
            .collect();
        v.sort_by_key(|t| (t.span.start, t.span.end));
        v
    }
    let (ma, mb) = (m(a), m(b));
    if ma.len() != mb.len() {
        return true;
    }
    ma.iter().zip(&mb).all(|(x, y)| same_parts(x, y, cds))
}

/// Exon (or CDS) rows on a known strand: `(seqid, minus, interval)`.
fn exon_rows(genes: &[Gene], cds: bool) -> Vec<(&str, bool, Interval)> {
    let mut out = Vec::new();
    for g in genes {
        for t in &g.transcripts {
            if t.strand == Strand::Unknown {
                continue;
            }
            for iv in parts(t, cds) {
                out.push((g.seqid.as_str(), t.strand.is_minus(), iv));
            }
        }
    }
    out
}

/// Union of exon (or CDS) bases per `(seqid, minus)`.
fn bases(genes: &[Gene], cds: bool) -> HashMap<(String, bool), Vec<Interval>> {
    let mut m: HashMap<(String, bool), Vec<Interval>> = HashMap::new();
    for (seqid, minus, iv) in exon_rows(genes, cds) {
        m.entry((seqid.to_string(), minus)).or_default().push(iv);
    }
    for v in m.values_mut() {
        *v = gff::merge(std::mem::take(v));
    }
    m
}

/// Intersection of two sorted, disjoint interval lists.
fn intersect(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let s = a[i].start.max(b[j].start);
        let e = a[i].end.min(b[j].end);
        if s < e {
            out.push(Interval { start: s, end: e });
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

fn total(v: &[Interval]) -> u64 {
    v.iter().map(|i| i.len() as u64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coding_view_keeps_cds_structure_once() {
        let gff = "##gff-version 3
c\tx\tgene\t1\t400\t.\t+\t.\tID=g1
c\tx\tmRNA\t1\t300\t.\t+\t.\tID=t1;Parent=g1
c\tx\texon\t1\t100\t.\t+\t.\tParent=t1
c\tx\texon\t201\t300\t.\t+\t.\tParent=t1
c\tx\tCDS\t51\t100\t.\t+\t0\tParent=t1
c\tx\tCDS\t201\t250\t.\t+\t1\tParent=t1
c\tx\tmRNA\t11\t400\t.\t+\t.\tID=t2;Parent=g1
c\tx\texon\t11\t100\t.\t+\t.\tParent=t2
c\tx\texon\t201\t400\t.\t+\t.\tParent=t2
c\tx\tCDS\t51\t100\t.\t+\t0\tParent=t2
c\tx\tCDS\t201\t250\t.\t+\t1\tParent=t2
c\tx\tmRNA\t1\t300\t.\t+\t.\tID=t3;Parent=g1
c\tx\texon\t1\t300\t.\t+\t.\tParent=t3
c\tx\tCDS\t41\t280\t.\t+\t0\tParent=t3
c\tx\tgene\t500\t600\t.\t-\t.\tID=g2
c\tx\tncRNA\t500\t600\t.\t-\t.\tID=n1;Parent=g2
c\tx\texon\t500\t600\t.\t-\t.\tParent=n1
c\tx\tgene\t700\t900\t.\t+\t.\tID=g3
c\tx\tCDS\t700\t900\t.\t+\t0\tID=c3;Parent=g3
";
        let a = gff::parse_str(gff, "t.gff3").unwrap();
        let v = coding_view(&a);
        assert_eq!(v.genes.len(), 2, "the non-coding gene is dropped");
        // CDS hung directly on a gene becomes an mRNA, so genes compare by their mRNAs.
        assert!(a.genes[2].transcripts[0].implicit);
        let t3 = &v.genes[1].transcripts[0];
        assert!(!t3.implicit && t3.kind == "mRNA", "{t3:?}");
        let g = &v.genes[0];
        assert_eq!(
            g.span,
            Interval {
                start: 40,
                end: 280
            }
        );
        let ids: Vec<&str> = g.transcripts.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["t1", "t3"], "t2 has t1's CDS parts");
        let t1 = &g.transcripts[0];
        assert_eq!(
            t1.span,
            Interval {
                start: 50,
                end: 250
            }
        );
        assert_eq!(
            t1.exons,
            [
                Interval {
                    start: 50,
                    end: 100
                },
                Interval {
                    start: 200,
                    end: 250
                }
            ]
        );
        assert!(t1.utr5.is_empty() && t1.utr3.is_empty());
        // Against the full file, the view loses the UTR bases and nothing else.
        let r = evaluate(&v, &a, None).unwrap();
        assert_eq!(r.total("base", "cds").unwrap().f1(), 1.0);
        assert!(r.total("base", "exon").unwrap().fn_ > 0);
        assert_eq!(r.total("exon", "cds_unique").unwrap().f1(), 1.0);
        let same = evaluate(&v, &v, None).unwrap();
        assert_eq!(same.total("gene", "all").unwrap().f1(), 1.0);
    }

    #[test]
    fn intersect_and_counts() {
        let a = [
            Interval { start: 0, end: 10 },
            Interval { start: 20, end: 30 },
        ];
        let b = [Interval { start: 5, end: 25 }];
        assert_eq!(total(&intersect(&a, &b)), 10);
        let c = Counts {
            tp: 3,
            fp: 1,
            fn_: 2,
        };
        assert!((c.sn() - 0.6).abs() < 1e-12);
        assert!((c.pr() - 0.75).abs() < 1e-12);
        assert_eq!(Counts::default().sn(), 1.0);
    }
}
