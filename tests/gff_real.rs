//! GFF3 gene models and extraction on real genomes (skipped, with a message, when data is absent).
//!
//! Each dataset: `extract --feature cds --longest`, translate with the standard code, and count
//! CDS that start with ATG, end with a stop and have no internal stop. The floors are the
//! team's reference counts.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use genolm::io::extract::{extract_files, ExtractOptions, Extracted, Feature};
use genolm::io::labels::{label_files, CDS, NUM_CLASSES};
use genolm::io::shared_data;
use genolm::seq::SeqPolicy;

use common::run_ok;

/// Standard genetic code, TCAG order.
fn translate(cds: &[u8]) -> Vec<u8> {
    const AA: &[u8; 64] = b"FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG";
    let idx = |b: u8| match b {
        b'T' | b't' => Some(0),
        b'C' | b'c' => Some(1),
        b'A' | b'a' => Some(2),
        b'G' | b'g' => Some(3),
        _ => None,
    };
    cds.chunks_exact(3)
        .map(|c| match (idx(c[0]), idx(c[1]), idx(c[2])) {
            (Some(a), Some(b), Some(d)) => AA[a * 16 + b * 4 + d],
            _ => b'X',
        })
        .collect()
}

#[derive(Debug, Default, Clone, Copy)]
struct Score {
    n: usize,
    /// ATG start, stop at the end, no internal stop, length a multiple of 3.
    good: usize,
    /// Stop at the end (length a multiple of 3).
    ends_in_stop: usize,
}

fn score(recs: &[Extracted]) -> Score {
    let mut s = Score::default();
    for r in recs {
        s.n += 1;
        let whole = r.seq.len() % 3 == 0;
        let p = translate(&r.seq);
        let ends = whole && p.last() == Some(&b'*');
        let internal = p[..p.len().saturating_sub(1)].contains(&b'*');
        if ends {
            s.ends_in_stop += 1;
        }
        if ends && !internal && r.seq.starts_with(b"ATG") {
            s.good += 1;
        }
    }
    s
}

fn paths(dir: &str, fasta: &str, gff: &str) -> Option<(String, String)> {
    let f = shared_data(&format!("genomes/{dir}/{fasta}"))?;
    let g = shared_data(&format!("genomes/{dir}/{gff}"))?;
    Some((f.display().to_string(), g.display().to_string()))
}

fn longest_cds(fasta: &str, gff: &str) -> Vec<Extracted> {
    let opts = ExtractOptions {
        feature: Feature::Cds,
        longest: true,
        ..ExtractOptions::default()
    };
    let (recs, warnings) = extract_files(fasta, gff, SeqPolicy::default(), &opts).unwrap();
    for w in warnings {
        println!("warning: {w}");
    }
    recs
}

fn check(dir: &str, fasta: &str, gff: &str, min_good: usize, min_stop: usize) -> Option<Score> {
    let (f, g) = paths(dir, fasta, gff)?;
    let t = Instant::now();
    let recs = longest_cds(&f, &g);
    let s = score(&recs);
    println!(
        "{dir}: {} CDS, {} ATG..stop without internal stop, {} end in a stop ({:.2?})",
        s.n,
        s.good,
        s.ends_in_stop,
        t.elapsed()
    );
    assert!(s.good >= min_good, "{dir}: {s:?}, want good >= {min_good}");
    assert!(
        s.ends_in_stop >= min_stop,
        "{dir}: {s:?}, want stop >= {min_stop}"
    );
    Some(s)
}

#[test]
fn athaliana_cds_translate() {
    if let Some(s) = check(
        "athaliana_1pct",
        "genome.fa.gz",
        "annotation.gff3.gz",
        344,
        344,
    ) {
        assert!(s.n >= 347, "{s:?}");
    }
}

#[test]
fn celegans_cds_translate() {
    if let Some(s) = check(
        "celegans_1pct",
        "genome.fa.gz",
        "annotation.gff3.gz",
        158,
        158,
    ) {
        assert!(s.n >= 162, "{s:?}");
    }
}

#[test]
fn yeast_cds_translate() {
    if let Some(s) = check(
        "yeast_chrI_II",
        "genome.fa.gz",
        "annotation.gff3.gz",
        583,
        583,
    ) {
        assert_eq!(s.n, 583);
    }
}

#[test]
fn ecoli_cds_end_in_stop() {
    // Alternative start codons (GTG, TTG) are common in E. coli: only the stop is checked.
    if let Some(s) = check(
        "ecoli_k12_mg1655",
        "genome.fna.gz",
        "annotation.gff.gz",
        0,
        4303,
    ) {
        assert!(s.n >= 4305, "{s:?}");
    }
}

#[test]
fn mpox_cds_translate() {
    // FASTA name NC_063383 vs GFF seqid NC_063383.1 (resolved through the description).
    if let Some(s) = check(
        "mpox_clade_iib",
        "genome.fasta",
        "annotation.gff3",
        179,
        179,
    ) {
        assert_eq!(s.n, 179);
    }
}

#[test]
fn sars_cov_2_orf1ab_slippage() {
    let Some((f, g)) = paths("sars_cov_2", "genome.fasta", "annotation.gff3") else {
        return;
    };
    let recs = longest_cds(&f, &g);
    let s = score(&recs);
    println!("sars_cov_2: {s:?}");
    assert_eq!(s.good, s.n);
    let orf1ab = recs
        .iter()
        .find(|r| r.description.contains("name=ORF1ab"))
        .expect("ORF1ab");
    let p = translate(&orf1ab.seq);
    println!(
        "ORF1ab: {} nt, {} aa + stop, header: {} {}",
        orf1ab.seq.len(),
        p.len() - 1,
        orf1ab.id,
        orf1ab.description
    );
    assert_eq!(orf1ab.seq.len(), 21291);
    assert_eq!(p.len(), 7097);
    assert_eq!(p.last(), Some(&b'*'));
    assert!(!p[..7096].contains(&b'*'));
    assert!(p.starts_with(b"MESLVPGFNEKTHVQLSLPVLQVRDVLVRGFGDSVEEVLSEARQHLKDGTCGLVEVEKGV"));
}

/// Unpack smallgenes.tar.gz with the system `tar` into a temporary directory.
fn smallgenes() -> Option<(tempfile::TempDir, PathBuf)> {
    let tgz = shared_data("genomes/celegans_smallgenes/smallgenes.tar.gz")?;
    let tmp = tempfile::tempdir().unwrap();
    let ok = Command::new("tar")
        .arg("xzf")
        .arg(&tgz)
        .arg("-C")
        .arg(tmp.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP: could not unpack {} with tar", tgz.display());
        return None;
    }
    let dir = tmp.path().join("smallgenes");
    Some((tmp, dir))
}

fn concat(dir: &Path, ext: &str, out: &Path) -> usize {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    let mut all = Vec::new();
    for f in &files {
        all.extend(std::fs::read(f).unwrap());
        if all.last() != Some(&b'\n') {
            all.push(b'\n');
        }
    }
    std::fs::write(out, all).unwrap();
    files.len()
}

#[test]
fn smallgenes_cds_translate() {
    let Some((tmp, dir)) = smallgenes() else {
        return;
    };
    let fa = tmp.path().join("all.fa");
    let gff = tmp.path().join("all.gff3");
    let loci = concat(&dir, "fa", &fa);
    assert_eq!(loci, concat(&dir, "gff3", &gff));
    let recs = longest_cds(&fa.display().to_string(), &gff.display().to_string());
    let s = score(&recs);
    println!(
        "smallgenes: {loci} loci, {} CDS, {} ATG..stop without internal stop",
        s.n, s.good
    );
    assert!(s.good >= 921, "{s:?}");
    assert!(s.n >= 923, "{s:?}");
}

#[test]
fn labels_on_real_genomes_are_consistent() {
    for (dir, fasta, gff) in [
        ("athaliana_1pct", "genome.fa.gz", "annotation.gff3.gz"),
        ("yeast_chrI_II", "genome.fa.gz", "annotation.gff3.gz"),
        ("sars_cov_2", "genome.fasta", "annotation.gff3"),
    ] {
        let Some((f, g)) = paths(dir, fasta, gff) else {
            continue;
        };
        let s = label_files(&f, &g).unwrap();
        println!("{dir}: plus {:?} minus {:?}", s.plus, s.minus);
        assert_eq!(s.plus.iter().sum::<u64>(), s.bases);
        assert_eq!(s.minus.iter().sum::<u64>(), s.bases);
        assert!(s.plus[CDS as usize] > 0);
        assert_eq!(s.plus.len(), NUM_CLASSES);
    }
}

#[test]
fn extract_cli_writes_fasta() {
    let Some((f, g)) = paths("sars_cov_2", "genome.fasta", "annotation.gff3") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("prom.fa");
    run_ok(&[
        "extract",
        "--feature",
        "promoter",
        "--upstream",
        "300",
        "--downstream",
        "20",
        "--fasta",
        &f,
        "--gff",
        &g,
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with(">YP_009724389.1 "), "{}", &text[..80]);
    // ORF1ab's TSS is at 266: only 265 bases exist upstream.
    assert!(text.lines().next().unwrap().contains("clipped_upstream=35"));
    let help = run_ok(&["extract", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples:"));
}
