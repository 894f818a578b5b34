//! Decoder, GFF3 writer and `eval-annotation` on real A. thaliana 1 % data (skipped, with a
//! message, when the data is absent), checked against `gt gff3validator` and `gt eval` when
//! genometools is installed.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use genolm::infer::decode::{decode, DecodeConfig};
use genolm::infer::evaluate::{coding_view, evaluate, evaluate_files, Counts, Region, Report};
use genolm::io::fasta::read_records;
use genolm::io::gff::{self, Annotation, Gene, Interval};
use genolm::io::gffwrite::{fill_phases, write_gff3};
use genolm::io::labels::{LabelTracks, NUM_CLASSES};
use genolm::io::shared_data;
use genolm::seq::SeqPolicy;

use common::{expect_error, run_ok};

fn athaliana() -> Option<(PathBuf, PathBuf)> {
    let dir = shared_data("genomes/athaliana_1pct")?;
    let fa = dir.join("genome.fa.gz");
    let gff = dir.join("annotation.gff3.gz");
    if fa.exists() && gff.exists() {
        Some((fa, gff))
    } else {
        eprintln!("skipping: A. thaliana 1 % data not found under $GENOLM_DATA");
        None
    }
}

fn gt_available() -> bool {
    Command::new("gt")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn one_hot(track: &[u8]) -> Vec<f32> {
    let mut p = vec![0f32; track.len() * NUM_CLASSES];
    for (i, &c) in track.iter().enumerate() {
        p[i * NUM_CLASSES + usize::from(c)] = 1.0;
    }
    p
}

fn write(path: &Path, regions: &[(String, usize)], genes: &[Gene], scores: Option<&[f64]>) {
    let mut buf = Vec::new();
    write_gff3(&mut buf, "genolm", regions, genes, scores).unwrap();
    std::fs::write(path, buf).unwrap();
}

struct Perfect {
    decoded: Vec<genolm::infer::decode::PredictedGene>,
    regions: Vec<(String, usize)>,
    ref_cds: u64,
    hit: u64,
    pred_cds: u64,
    bases: usize,
    secs: f64,
}

/// The FASTA records of `fa` and the genes of `gff` grouped by record index.
fn genes_by_record(
    fa: &Path,
    gff: &Path,
) -> (Vec<genolm::io::fasta::Record>, HashMap<usize, Vec<Gene>>) {
    let recs = read_records(fa.to_str().unwrap(), SeqPolicy::default()).unwrap();
    let ann = gff::read(gff.to_str().unwrap()).unwrap();
    let idx = ann.resolve_records(fa.to_str().unwrap(), &recs).unwrap();
    let mut by_rec: HashMap<usize, Vec<Gene>> = HashMap::new();
    for g in ann.genes {
        by_rec.entry(idx[&g.seqid]).or_default().push(g);
    }
    (recs, by_rec)
}

/// Decode label tracks painted from the reference (probability 1 on the true class).
fn decode_perfect(fa: &Path, gff: &Path, cfg: &DecodeConfig) -> Perfect {
    let (recs, mut by_rec) = genes_by_record(fa, gff);
    let mut r = Perfect {
        decoded: Vec::new(),
        regions: Vec::new(),
        ref_cds: 0,
        hit: 0,
        pred_cds: 0,
        bases: 0,
        secs: 0.0,
    };
    for (i, rec) in recs.iter().enumerate() {
        r.regions.push((rec.name.clone(), rec.seq.len()));
        let genes = by_rec.remove(&i).unwrap_or_default();
        let t = LabelTracks::from_genes(rec.seq.len(), &genes);
        let (pp, pm) = (one_hot(&t.plus), one_hot(&t.minus));
        let t0 = Instant::now();
        let out = decode(&rec.name, 0, &rec.seq, &pp, &pm, cfg).unwrap();
        r.secs += t0.elapsed().as_secs_f64();
        r.bases += rec.seq.len();
        let mut mask = [vec![false; rec.seq.len()], vec![false; rec.seq.len()]];
        for p in &out {
            let m = &mut mask[usize::from(p.gene.strand.is_minus())];
            for c in &p.gene.transcripts[0].cds {
                m[c.iv.start..c.iv.end].iter_mut().for_each(|x| *x = true);
            }
        }
        for (track, m) in [(&t.plus, &mask[0]), (&t.minus, &mask[1])] {
            for (k, &c) in track.iter().enumerate() {
                let is_ref = c == genolm::io::labels::CDS;
                r.ref_cds += u64::from(is_ref);
                r.pred_cds += u64::from(m[k]);
                r.hit += u64::from(is_ref && m[k]);
            }
        }
        r.decoded.extend(out);
    }
    r
}

#[test]
fn perfect_probabilities_recover_reference_cds() {
    let Some((fa, gff)) = athaliana() else {
        return;
    };
    let Perfect {
        decoded,
        regions,
        ref_cds,
        hit,
        pred_cds,
        bases,
        secs,
    } = decode_perfect(&fa, &gff, &DecodeConfig::default());
    let recall = hit as f64 / ref_cds as f64;
    let precision = hit as f64 / pred_cds as f64;
    eprintln!(
        "A. thaliana 1 %: {} genes decoded from perfect probabilities; CDS bases recovered \
         {hit}/{ref_cds} = {recall:.4}, precision {precision:.4}; decode {bases} bp × 2 strands \
         in {secs:.3} s = {:.2} Mb/s",
        decoded.len(),
        bases as f64 / secs / 1e6
    );
    assert!(recall > 0.9, "CDS recall {recall}");
    assert!(precision > 0.95, "CDS precision {precision}");

    // Written, read back, validated; evaluation of decoded vs reference gives the same figure.
    let dir = tempfile::tempdir().unwrap();
    let pred = dir.path().join("pred.gff3");
    let genes: Vec<Gene> = decoded.iter().map(|p| p.gene.clone()).collect();
    let scores: Vec<f64> = decoded.iter().map(|p| p.score).collect();
    write(&pred, &regions, &genes, Some(&scores));
    let back = gff::read(pred.to_str().unwrap()).unwrap();
    assert_eq!(back.genes.len(), genes.len());
    let rep = evaluate_files(pred.to_str().unwrap(), gff.to_str().unwrap(), None, false).unwrap();
    let base = rep.total("base", "cds").unwrap();
    eprintln!("eval-annotation decoded vs reference:\n{}", rep.table());
    assert!(base.sn() > 0.85, "{base:?}");
    if gt_available() {
        let o = Command::new("gt")
            .arg("gff3validator")
            .arg(&pred)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "gt gff3validator: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    } else {
        eprintln!("skipping gt gff3validator: `gt` (genometools) not installed");
    }
}

/// A perturbed copy of the reference: some genes removed, some exons shifted, one gene moved.
fn perturb(genes: &[Gene]) -> Vec<Gene> {
    let mut out = Vec::new();
    for (k, g) in genes.iter().enumerate() {
        if k % 7 == 3 {
            continue; // removed
        }
        let mut g = g.clone();
        if k % 5 == 1 {
            for t in &mut g.transcripts {
                if t.exons.len() >= 3 {
                    // Shift the second exon's start by 3 bases (and its CDS part with it).
                    let e = t.exons[1];
                    if e.len() > 10 {
                        t.exons[1].start += 3;
                        for c in &mut t.cds {
                            if c.iv.start == e.start {
                                c.iv.start += 3;
                            }
                        }
                        fill_phases(t);
                    }
                }
            }
        }
        if k % 11 == 5 {
            // Drop the last exon of every transcript (span shrinks).
            for t in &mut g.transcripts {
                if t.exons.len() >= 2 {
                    let last = t.exons.pop().unwrap();
                    t.cds.retain(|c| c.iv.start < last.start);
                    t.utr5.retain(|u| u.start < last.start);
                    t.utr3.retain(|u| u.start < last.start);
                    t.span.end = t.exons.last().unwrap().end;
                }
            }
            g.span.end = g
                .transcripts
                .iter()
                .map(|t| t.span.end)
                .max()
                .unwrap_or(g.span.end);
            g.span.start = g
                .transcripts
                .iter()
                .map(|t| t.span.start)
                .min()
                .unwrap_or(g.span.start);
        }
        out.push(g);
    }
    out
}

/// gt eval's `(a/b)` figures by line label.
fn parse_gt(text: &str) -> HashMap<String, (u64, u64)> {
    let mut m = HashMap::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(": ") else {
            continue;
        };
        let nums: Vec<u64> = rest
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .filter(|s| !s.is_empty() && !s.contains('.'))
            .map(|s| s.parse().unwrap())
            .collect();
        let fig = if name.starts_with("nucleotide") {
            // "TP=a/(TP=a + FN=b)" → (a, a + b)
            (nums[0], nums[1] + nums[2])
        } else {
            (nums[0], nums[1])
        };
        m.insert(name.to_string(), fig);
    }
    m
}

fn check_against_gt(rep: &Report, gt: &HashMap<String, (u64, u64)>) -> usize {
    let pairs = [
        ("gene", "all", "gene", "mRNA level"),
        ("gene", "cds", "gene", "CDS level"),
        ("transcript", "all", "mRNA", "mRNA level"),
        ("transcript", "cds", "mRNA", "CDS level"),
        ("exon", "all", "exon", "mRNA level, all"),
        ("exon", "cds", "exon", "CDS level, all"),
        ("exon", "unique", "exon", "mRNA level, all, collapsed"),
        ("exon", "cds_unique", "exon", "CDS level, all, collapsed"),
        ("base", "exon", "nucleotide", "mRNA level"),
        ("base", "cds", "nucleotide", "CDS level"),
    ];
    let mut checked = 0;
    for (level, feature, gt_name, gt_level) in pairs {
        let c: Counts = rep.total(level, feature).unwrap();
        let sn = gt[&format!("{gt_name} sensitivity ({gt_level})")];
        let sp = gt[&format!("{gt_name} specificity ({gt_level})")];
        assert_eq!(
            (c.tp, c.tp + c.fn_),
            sn,
            "{level}.{feature} sensitivity vs gt {gt_name} ({gt_level})"
        );
        assert_eq!(
            (c.tp, c.tp + c.fp),
            sp,
            "{level}.{feature} precision vs gt {gt_name} ({gt_level})"
        );
        checked += 1;
    }
    checked
}

#[test]
fn eval_annotation_agrees_with_gt_eval() {
    let Some((fa, gff)) = athaliana() else {
        return;
    };
    let recs = read_records(fa.to_str().unwrap(), SeqPolicy::default()).unwrap();
    let regions: Vec<(String, usize)> =
        recs.iter().map(|r| (r.name.clone(), r.seq.len())).collect();
    let ann = gff::read(gff.to_str().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (rp, pp) = (dir.path().join("ref.gff3"), dir.path().join("pred.gff3"));
    write(&rp, &regions, &ann.genes, None);
    let pred_genes = perturb(&ann.genes);
    write(&pp, &regions, &pred_genes, None);
    let (rs, ps) = (rp.to_str().unwrap(), pp.to_str().unwrap());
    let rep = evaluate_files(ps, rs, None, false).unwrap();
    eprintln!("perturbed vs reference:\n{}", rep.table());
    let g = rep.total("gene", "all").unwrap();
    assert!(g.fn_ > 0 && g.tp > 0 && g.sn() < 1.0);
    let e = rep.total("exon", "all").unwrap();
    assert!(e.fp > 0 && e.fn_ > 0);
    // Identical files score 1 everywhere.
    let same = evaluate_files(rs, rs, None, false).unwrap();
    for ((l, f), c) in &same.counts {
        for s in c {
            assert_eq!((s.fp, s.fn_), (0, 0), "{l}.{f}");
        }
    }

    // Regions: the whole of Chr1 as BED equals evaluating only Chr1's genes.
    let r = gff::read(rs).unwrap();
    let p = gff::read(ps).unwrap();
    let chr1 = |a: &Annotation| Annotation {
        genes: a
            .genes
            .iter()
            .filter(|g| g.seqid == "Chr1")
            .cloned()
            .collect(),
        seqids: a
            .seqids
            .iter()
            .filter(|u| u.seqid == "Chr1")
            .cloned()
            .collect(),
        ..a.clone()
    };
    let bed = [Region {
        seqid: "Chr1".into(),
        iv: Interval {
            start: 0,
            end: regions[0].1,
        },
    }];
    assert_eq!(regions[0].0, "Chr1");
    let a = evaluate(&p, &r, Some(&bed)).unwrap();
    let b = evaluate(&chr1(&p), &chr1(&r), None).unwrap();
    assert_eq!(a, b);

    if !gt_available() {
        eprintln!("skipping gt eval comparison: `gt` (genometools) not installed");
        return;
    }
    for (path, label) in [(&rp, "ref"), (&pp, "pred")] {
        let o = Command::new("gt")
            .arg("gff3validator")
            .arg(path)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "gt gff3validator {label}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let gt_eval = |r: &str, p: &str| {
        let o = Command::new("gt").args(["eval", r, p]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let text = gt_eval(rs, ps);
    eprintln!("gt eval:\n{text}");
    let n = check_against_gt(&rep, &parse_gt(&text));
    assert_eq!(n, 10);

    // The coding view equals gt eval on the files written from it.
    let (rc, pc) = (coding_view(&r), coding_view(&p));
    let (rcp, pcp) = (
        dir.path().join("ref_cds.gff3"),
        dir.path().join("pred_cds.gff3"),
    );
    write(&rcp, &regions, &rc.genes, None);
    write(&pcp, &regions, &pc.genes, None);
    let coding = evaluate_files(ps, rs, None, true).unwrap();
    assert_eq!(coding, evaluate(&pc, &rc, None).unwrap());
    let text = gt_eval(rcp.to_str().unwrap(), pcp.to_str().unwrap());
    assert_eq!(check_against_gt(&coding, &parse_gt(&text)), 10);
    // Gene spans now end at the CDS: the perturbation leaves genes to match.
    assert!(coding.total("gene", "all").unwrap().tp > 0);
}

#[test]
fn eval_annotation_cli_json_and_errors() {
    let Some((_, gff)) = athaliana() else {
        return;
    };
    let g = gff.to_str().unwrap();
    let o = run_ok(&["eval-annotation", "--pred", g, "--ref", g, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in ["base", "exon", "transcript", "gene"] {
        assert!(v[key].is_object(), "{key}");
    }
    assert_eq!(v["base"]["cds"]["f1"].as_f64(), Some(1.0));
    assert_eq!(v["exon"]["all"]["f1"].as_f64(), Some(1.0));
    assert_eq!(v["gene"]["all"]["f1"].as_f64(), Some(1.0));
    assert!(v["base"]["cds"]["minus"]["tp"].as_u64().unwrap() > 0);
    let o = run_ok(&[
        "eval-annotation",
        "--pred",
        g,
        "--ref",
        g,
        "--json",
        "--coding",
    ]);
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["coding"].as_bool(), Some(true));
    assert_eq!(c["exon"]["cds_unique"]["f1"].as_f64(), Some(1.0));
    // Coding view: exons are the CDS parts, so the two exon rows agree.
    assert_eq!(c["exon"]["all"]["tp"], c["exon"]["cds"]["tp"]);
    assert!(c["exon"]["all"]["tp"].as_u64() < v["exon"]["all"]["tp"].as_u64());

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.gff3");
    std::fs::write(
        &bad,
        "##gff-version 3\nChr1\tx\tgene\t10\t5\t.\t+\t.\tID=a\n",
    )
    .unwrap();
    let other = dir.path().join("other.gff3");
    std::fs::write(
        &other,
        "##gff-version 3\nchrZ\tx\tgene\t10\t50\t.\t+\t.\tID=a\nchrZ\tx\tmRNA\t10\t50\t.\t+\t.\tID=t;Parent=a\n",
    )
    .unwrap();
    let bed = dir.path().join("bad.bed");
    std::fs::write(&bed, "Chr1\t100\n").unwrap();
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec!["--pred", bad.to_str().unwrap(), "--ref", g],
            "bad.gff3:2: start 10 > end 5",
        ),
        (
            vec!["--pred", other.to_str().unwrap(), "--ref", g],
            "seqid 'chrZ' does not occur in the reference",
        ),
        (
            vec!["--pred", g, "--ref", g, "--regions", bed.to_str().unwrap()],
            "bad.bed:1: BED needs 3",
        ),
        (
            vec!["--pred", "/nonexistent.gff3", "--ref", g],
            "/nonexistent.gff3",
        ),
    ];
    for (args, want) in cases {
        expect_error(&[&["eval-annotation"][..], &args].concat(), want);
    }
}

#[test]
fn prokaryote_mode_recovers_ecoli_cds() {
    let Some(dir) = shared_data("genomes/ecoli_k12_mg1655") else {
        eprintln!("skipping: E. coli data not found under $GENOLM_DATA");
        return;
    };
    let (fa, gff) = (dir.join("genome.fna.gz"), dir.join("annotation.gff.gz"));
    if !fa.exists() || !gff.exists() {
        eprintln!("skipping: E. coli data not found under $GENOLM_DATA");
        return;
    }
    let r = decode_perfect(&fa, &gff, &DecodeConfig::prokaryote());
    let recall = r.hit as f64 / r.ref_cds as f64;
    let precision = r.hit as f64 / r.pred_cds as f64;
    eprintln!(
        "E. coli (prokaryote mode): {} genes decoded from perfect probabilities; CDS bases \
         recovered {}/{} = {recall:.4}, precision {precision:.4}; {:.2} Mb/s",
        r.decoded.len(),
        r.hit,
        r.ref_cds,
        r.bases as f64 / r.secs / 1e6
    );
    assert!(recall > 0.9, "CDS recall {recall}");
    assert!(precision > 0.95, "CDS precision {precision}");
    assert!(r
        .decoded
        .iter()
        .all(|p| p.gene.transcripts[0].exons.len() == 1));
}

/// Framed tracks on the real A. thaliana annotation: read in the gene's direction, the bases
/// labelled codon positions 0, 1, 2 in a row are codons. Stops fall almost only at the end of a
/// CDS in that frame, and start codons open it, while the two shifted frames are full of stops.
#[test]
fn framed_tracks_put_real_codons_in_frame() {
    use genolm::io::labels::codon_position;
    let Some((fa, gff)) = athaliana() else {
        return;
    };
    let (recs, mut by_rec) = genes_by_record(&fa, &gff);
    // [frame shift][stop codons, codons]
    let mut stops = [[0u64; 2]; 3];
    let mut starts = 0u64;
    let mut cds_runs = 0u64;
    for (i, rec) in recs.iter().enumerate() {
        let genes = by_rec.remove(&i).unwrap_or_default();
        let t = LabelTracks::from_genes_framed(rec.seq.len(), &genes);
        let coarse = LabelTracks::from_genes(rec.seq.len(), &genes);
        for (plus, track) in [(true, &t.plus), (false, &t.minus)] {
            let (seq, track): (Vec<u8>, Vec<u8>) = if plus {
                (rec.seq.to_ascii_uppercase(), track.clone())
            } else {
                (
                    genolm::seq::revcomp(&rec.seq).to_ascii_uppercase(),
                    track.iter().rev().copied().collect(),
                )
            };
            // Spliced CDS in gene order: (base, codon position) of consecutive CDS bases of a
            // gene; introns skipped, a run ends at intergenic.
            let mut run: Vec<(u8, usize)> = Vec::new();
            let mut flush = |run: &mut Vec<(u8, usize)>| {
                if run.len() >= 6 {
                    cds_runs += 1;
                    let s = run.iter().position(|&(_, p)| p == 0).unwrap_or(0);
                    if run[s..].len() >= 3 && &[run[s].0, run[s + 1].0, run[s + 2].0] == b"ATG" {
                        starts += 1;
                    }
                    for (shift, count) in stops.iter_mut().enumerate() {
                        let mut j = s + shift;
                        while j + 3 <= run.len() {
                            let c = [run[j].0, run[j + 1].0, run[j + 2].0];
                            count[1] += 1;
                            if matches!(&c, b"TAA" | b"TAG" | b"TGA") {
                                count[0] += 1;
                            }
                            j += 3;
                        }
                    }
                }
                run.clear();
            };
            for (j, &c) in track.iter().enumerate() {
                match codon_position(c) {
                    Some(p) => run.push((seq[j], p)),
                    None if c == genolm::io::labels::INTRON => {}
                    None => flush(&mut run),
                }
            }
            flush(&mut run);
        }
        // Framing only refines CDS: the classes are unchanged.
        for (a, b) in t.plus.iter().zip(&coarse.plus) {
            assert_eq!(genolm::io::labels::coarse(*a), *b);
        }
    }
    let rate = |s: [u64; 2]| s[0] as f64 / s[1].max(1) as f64;
    eprintln!(
        "{cds_runs} CDS runs, {starts} open with ATG at codon position 0; stop rate in frame {:.4}, \
         shifted {:.4} / {:.4}",
        rate(stops[0]),
        rate(stops[1]),
        rate(stops[2])
    );
    assert!(cds_runs > 300);
    assert!(starts as f64 > 0.9 * cds_runs as f64);
    // About one stop per gene in frame (its last codon), against ~1 in 20 codons shifted.
    assert!(stops[0][0] as f64 <= 1.1 * cds_runs as f64, "{stops:?}");
    assert!(rate(stops[1]) > 10.0 * rate(stops[0]), "{stops:?}");
    assert!(rate(stops[2]) > 10.0 * rate(stops[0]), "{stops:?}");
}
