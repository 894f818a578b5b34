//! FASTA readers on every container (plain, multi-member gzip, BGZF, stdin) and real genomes.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use genolm::io::fai::IndexedFasta;
use genolm::io::fasta::{read_records, Record};
use genolm::io::shared_data;
use genolm::seq::SeqPolicy;

use common::{run_ok, BIN};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .to_string()
}

#[test]
fn all_containers_give_the_same_records() {
    let plain = read_records(&fixture("good.fa"), SeqPolicy::default()).unwrap();
    assert_eq!(plain.len(), 40);
    assert!(plain.iter().all(|r| r.seq.len() == 8000));
    for f in ["good.bgzf.fa.gz", "good_multimember.fa.gz"] {
        let other = read_records(&fixture(f), SeqPolicy::default()).unwrap();
        assert_eq!(other, plain, "{f}");
    }
}

#[test]
fn stdin_is_read_with_dash() {
    let mut child = Command::new(BIN)
        .args(["stats", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let data = std::fs::read(fixture("good_multimember.fa.gz")).unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["records"], 40);
    assert_eq!(v[0]["bases"], 320_000);
}

#[test]
fn utf8_bom_is_tolerated() {
    let r = read_records(&fixture("utf8_bom.fa"), SeqPolicy::default()).unwrap();
    assert_eq!(r[0].name, "chr1");
}

#[test]
fn ecoli_stats_json() {
    let Some(p) = shared_data("genomes/ecoli_k12_mg1655/genome.fna.gz") else {
        return;
    };
    let p = p.to_str().unwrap();
    let out = run_ok(&["stats", "--json", p]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["records"], 1);
    assert_eq!(v[0]["bases"], 4_641_652);
    let gc = v[0]["gc"].as_f64().unwrap();
    assert!((gc - 0.5079).abs() < 5e-5, "gc {gc}");
    // The table form names the same numbers.
    let t = run_ok(&["stats", p]);
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(
        text.contains("4641652") && text.contains("0.5079"),
        "{text}"
    );
}

#[test]
fn indexed_fetch_matches_streaming_on_a_real_genome() {
    let Some(p) = shared_data("genomes/athaliana_1pct/genome.fa.gz") else {
        return;
    };
    let keep = SeqPolicy {
        keep_softmask: true,
    };
    let recs: Vec<Record> = read_records(&p.to_string_lossy(), keep).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("genome.fa");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&plain).unwrap());
    for r in &recs {
        genolm::io::fasta::write_record(&mut w, &r.name, &r.description, &r.seq, 79).unwrap();
    }
    drop(w);
    let fa = IndexedFasta::open(&plain).unwrap();
    assert_eq!(fa.records().len(), recs.len());
    for (i, r) in recs.iter().enumerate() {
        let n = r.seq.len() as u64;
        assert_eq!(fa.len_of(&r.name), Some(n));
        for k in 0..20u64 {
            let s = (k * 7919 * (i as u64 + 1)) % n;
            let e = (s + 1 + (k * 104_729) % 5000).min(n);
            let got = fa.fetch(&r.name, s, e).unwrap();
            assert_eq!(&*got, &r.seq[s as usize..e as usize], "{} {s}-{e}", r.name);
        }
    }
    assert!(dir.path().join("genome.fa.fai").exists());
}
