//! Integration tests for the tokenizers, `genolm tokenize` and `genolm bpe`.

mod common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use genolm::tokenize::bpe::Bpe;
use genolm::tokenize::{from_spec, SpecialTokens, Tokenizer};
use proptest::prelude::*;

use common::{expect_error, genolm, run_ok};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(rel: &str) -> PathBuf {
    root().join("tests").join(rel)
}

fn gena() -> Bpe {
    Bpe::from_file(fixture("fixtures/gena_style_tokenizer.json")).unwrap()
}

fn shipped_path() -> PathBuf {
    root().join("tokenizers/dna_bpe_4096.json")
}

fn shipped() -> &'static Bpe {
    static T: std::sync::OnceLock<Bpe> = std::sync::OnceLock::new();
    T.get_or_init(|| Bpe::from_file(shipped_path()).unwrap())
}

#[test]
fn gena_style_fixture_loads_and_encodes() {
    let t = gena();
    assert_eq!(t.vocab_size(), 40);
    assert_eq!(
        t.special_tokens(),
        SpecialTokens {
            unk: Some(0),
            cls: Some(1),
            sep: Some(2),
            pad: Some(3),
            mask: Some(4),
        }
    );
    // Merges apply by rank: TT (0) before AT (9); then A+TT (8).
    assert_eq!(t.encode(b"ATTG").unwrap(), vec![18, 8]);
    assert_eq!(t.encode(b"AAAATTTT").unwrap(), vec![23, 31]);
    // N is not in GENA-LM's vocabulary: it becomes [UNK] (id 0).
    assert_eq!(t.encode(b"ACGTN").unwrap(), vec![16, 8, 9, 0]);
    assert_eq!(t.encode(b"acgtn").unwrap(), vec![16, 8, 9, 0]);
    // The file's TemplateProcessing adds [CLS] … [SEP].
    assert_eq!(
        t.encode_with_special(b"ACGTN").unwrap(),
        vec![1, 16, 8, 9, 0, 2]
    );
    assert_eq!(t.decode(&[1, 16, 8, 9, 0, 2, 3, 3]).unwrap(), b"ACGTN");
    assert_eq!(t.id_to_token(39).as_deref(), Some("TGTG"));
    assert_eq!(t.token_to_id("TTTT"), Some(31));
    assert_eq!(t.decode(&[]).unwrap(), b"");
    assert!(t.decode(&[40]).is_err());
    // Batch, tensor and spec forms agree.
    let seqs: [&[u8]; 3] = [b"ATTG", b"AAAATTTT", b""];
    let batch = t.encode_batch(&seqs).unwrap();
    assert_eq!(batch, vec![vec![18, 8], vec![23, 31], vec![]]);
    let tb = t.encode_batch_tensor(&seqs, &Device::Cpu).unwrap();
    let v: Vec<Vec<u32>> = tb.tensor.to_vec2().unwrap();
    assert_eq!(v, vec![vec![18, 8], vec![23, 31], vec![3, 3]]);
    let by_spec = from_spec(&format!(
        "bpe:{}",
        fixture("fixtures/gena_style_tokenizer.json").display()
    ))
    .unwrap();
    assert_eq!(
        by_spec.encode(b"ATTGCG").unwrap(),
        t.encode(b"ATTGCG").unwrap()
    );
}

#[test]
fn gena_style_fixture_json_round_trip_and_legacy_decoder() {
    let t = gena();
    let json = t.to_json(true).unwrap();
    let back = Bpe::from_json_str(&json, "round-trip").unwrap();
    assert_eq!(back.to_json(true).unwrap(), json);
    let seq = b"TTTTAAAACCGGTGTGATGCATCNNA";
    assert_eq!(back.encode(seq).unwrap(), t.encode(seq).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("copy.json");
    t.save(&p).unwrap();
    assert_eq!(
        Bpe::from_file(&p).unwrap().encode(seq).unwrap(),
        t.encode(seq).unwrap()
    );
    // Older files spell the BPE decoder's type "BPE"; that loads too.
    let text = std::fs::read_to_string(fixture("fixtures/gena_style_tokenizer.json")).unwrap();
    let legacy = text.replace("\"type\": \"BPEDecoder\"", "\"type\": \"BPE\"");
    assert_ne!(legacy, text);
    let l = Bpe::from_json_str(&legacy, "legacy").unwrap();
    assert_eq!(l.decode(&l.encode(seq).unwrap()).unwrap(), seq);
}

#[test]
fn shipped_tokenizer_loads() {
    let t = shipped();
    assert_eq!(t.vocab_size(), 4096);
    assert_eq!(t.special_tokens(), SpecialTokens::FIXED);
    let meta = std::fs::metadata(shipped_path()).unwrap();
    assert!(meta.len() < 1 << 20, "{} bytes", meta.len());
    let seq = b"ATGAAACGCATTAGCACCACCATTACCACCACCATCACCATTACCACAGGTAACGGTGCGGGCTGA";
    let ids = t.encode(seq).unwrap();
    assert!(ids.len() * 3 < seq.len(), "{} tokens", ids.len());
    assert_eq!(t.decode(&ids).unwrap(), seq);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn bpe_round_trips_acgtn(s in "[ACGTN]{0,500}") {
        for t in [shipped(), &gena()] {
            let ids = t.encode(s.as_bytes()).unwrap();
            prop_assert_eq!(t.decode(&ids).unwrap(), s.as_bytes());
        }
    }

    #[test]
    fn batch_equals_sequential(seqs in proptest::collection::vec("[ACGTN]{0,80}", 0..12)) {
        let refs: Vec<&[u8]> = seqs.iter().map(|s| s.as_bytes()).collect();
        for spec in ["onehot", "char", "kmer:3", "kmer:4:1", "kmer:5:2:unk"] {
            let t = from_spec(spec).unwrap();
            let batch = t.encode_batch(&refs).unwrap();
            for (s, ids) in refs.iter().zip(&batch) {
                prop_assert_eq!(&t.encode(s).unwrap(), ids);
            }
        }
    }
}

#[test]
fn cli_tokenize_writes_jsonl() {
    let fa = fixture("malformed/tokenizer/ok.fa");
    let fa = fa.to_str().unwrap();
    let o = run_ok(&["tokenize", "--tokenizer", "char", fa]);
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["name"], "seq1");
    let ids: Vec<u32> = serde_json::from_value(lines[1]["ids"].clone()).unwrap();
    assert_eq!(ids, vec![5, 6, 7, 8, 8, 8, 7, 6, 5]); // acgtTTGCA

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k.jsonl");
    run_ok(&[
        "tokenize",
        "--tokenizer",
        "kmer:3:3",
        "--add-special",
        fa,
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let ids: Vec<u32> = serde_json::from_value(first["ids"].clone()).unwrap();
    // ACGTACGTNNACGT: ACG TAC GTN(UNK) NAC(UNK), tail GT as single bases, in CLS/SEP
    let k = from_spec("kmer:3:3").unwrap();
    assert_eq!(ids, k.encode_with_special(b"ACGTACGTNNACGT").unwrap());
    assert_eq!(ids.len(), 2 + 4 + 2);
    assert_eq!(k.decode(&ids).unwrap(), b"ACGTACNNNNNNGT");
}

#[test]
fn cli_tail_error_names_the_record() {
    let fa = fixture("malformed/tokenizer/ok.fa");
    let err = expect_error(
        &[
            "tokenize",
            "--tokenizer",
            "kmer:4:4:error",
            fa.to_str().unwrap(),
        ],
        "record 'seq1'",
    );
    assert!(err.contains("tail of 2 bases"), "{err}");
}

#[test]
fn cli_malformed_tokenizer_files_exit_2_with_one_line() {
    let dir = fixture("malformed/tokenizer");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        n += 1;
        let rel = path
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let o = genolm(&[
            "tokenize",
            "--tokenizer",
            &format!("bpe:{rel}"),
            "tests/malformed/tokenizer/ok.fa",
        ]);
        assert_eq!(o.status.code(), Some(2), "{rel}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{rel}: {err}");
        assert!(err.contains(&rel), "{rel}: {err}");
        assert!(!err.contains("panicked"), "{rel}: {err}");
        assert!(o.stdout.is_empty(), "{rel}");
    }
    assert!(n >= 4);
}

#[test]
fn cli_bad_specs_exit_2_with_one_line() {
    for spec in [
        "",
        "foo",
        "kmer",
        "kmer:0",
        "kmer:13",
        "kmer:abc",
        "kmer:3:0",
        "kmer:3:1:chop",
        "bpe:",
        "bpe:nonexistent.json",
        "onehot:half",
    ] {
        expect_error(
            &[
                "tokenize",
                "--tokenizer",
                spec,
                "tests/malformed/tokenizer/ok.fa",
            ],
            "error",
        );
    }
}

#[test]
fn cli_help_has_examples() {
    for args in [
        &["tokenize", "--help"][..],
        &["bpe", "--help"][..],
        &["bpe", "train", "--help"][..],
        &["bpe", "info", "--help"][..],
    ] {
        let o = run_ok(args);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("Example"), "{args:?}: {text}");
    }
}

#[test]
fn cli_bpe_train_then_tokenize() {
    let dir = tempfile::tempdir().unwrap();
    let fa = dir.path().join("train.fa");
    let mut text = String::new();
    let mut x: u64 = 12345;
    for r in 0..4 {
        text.push_str(&format!(">r{r}\n"));
        for i in 0..6000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let b = if i % 50 < 20 {
                b"ACGTTGCA"[i % 8]
            } else {
                b"ACGT"[(x >> 62) as usize]
            };
            text.push(b as char);
        }
        text.push('\n');
    }
    std::fs::write(&fa, text).unwrap();
    let out = dir.path().join("tok.json");
    let train = |out: &Path| {
        run_ok(&[
            "bpe",
            "train",
            "--vocab-size",
            "200",
            "--seed",
            "7",
            "--max-bases",
            "12000",
            "--out",
            out.to_str().unwrap(),
            fa.to_str().unwrap(),
        ])
    };
    train(&out);
    let t = Bpe::from_file(&out).unwrap();
    assert_eq!(t.vocab_size(), 200);
    assert_eq!(t.special_tokens(), SpecialTokens::FIXED);
    let again = dir.path().join("tok2.json");
    train(&again);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());

    let o = run_ok(&[
        "tokenize",
        "--tokenizer",
        &format!("bpe:{}", out.display()),
        fa.to_str().unwrap(),
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 4);

    for bad in [
        &["--vocab-size", "5"][..],
        &["--vocab-size", "100", "--max-bases", "10"][..],
        &["--vocab-size", "100", "--chunk-len", "0"][..],
    ] {
        let mut args = vec!["bpe", "train"];
        args.extend_from_slice(bad);
        args.extend_from_slice(&["--out", "/tmp/never.json", fa.to_str().unwrap()]);
        expect_error(&args, "error");
    }
    expect_error(
        &[
            "bpe",
            "train",
            "--vocab-size",
            "100",
            "--out",
            dir.path().join("x.json").to_str().unwrap(),
            "/nonexistent/genome.fa",
        ],
        "/nonexistent/genome.fa",
    );
}

/// Retrain the shipped tokenizer with the command in tokenizers/README.md; it must match.
#[test]
fn shipped_tokenizer_is_reproducible() {
    let rels = [
        "genomes/ecoli_k12_mg1655/genome.fna.gz",
        "genomes/yeast_chrI_II/genome.fa.gz",
        "genomes/athaliana_1pct/genome.fa.gz",
        "genomes/celegans_1pct/genome.fa.gz",
        "genomes/mpox_clade_iib/genome.fasta",
        "genomes/sars_cov_2/genome.fasta",
    ];
    let mut files = Vec::new();
    for rel in rels {
        match genolm::io::shared_data(rel) {
            Some(p) => files.push(p.display().to_string()),
            None => return,
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dna_bpe_4096.json");
    let mut args = vec![
        "bpe".to_string(),
        "train".into(),
        "--vocab-size".into(),
        "4096".into(),
        "--seed".into(),
        "42".into(),
        "--max-bases".into(),
        "4000000".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    args.extend(files);
    run_ok(&args);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(shipped_path()).unwrap(),
        "retraining did not reproduce tokenizers/dna_bpe_4096.json"
    );
}

/// Real data: every tokenizer round-trips a real genome where it is lossless.
#[test]
fn real_genome_round_trips() {
    let Some(path) = genolm::io::shared_data("genomes/sars_cov_2/genome.fasta") else {
        return;
    };
    let recs = genolm::io::fasta::read_records(path.to_str().unwrap(), Default::default()).unwrap();
    let seq = &recs[0].seq;
    assert!(seq.len() > 29_000);
    for spec in ["onehot", "char", "kmer:6", "kmer:6:1", "kmer:5:3"] {
        let t = from_spec(spec).unwrap();
        let ids = t.encode(seq).unwrap();
        assert_eq!(&t.decode(&ids).unwrap(), seq, "{spec}");
    }
    let ids = shipped().encode(seq).unwrap();
    assert_eq!(&shipped().decode(&ids).unwrap(), seq);
    let ratio = seq.len() as f64 / ids.len() as f64;
    assert!(ratio > 4.0, "bases per BPE token {ratio:.2}");
}

/// Rough single-thread encode throughput (release only; prints, asserts nothing):
/// `cargo test --release --test tokenize -- --ignored --nocapture throughput`.
#[test]
#[ignore]
fn throughput_report() {
    use genolm::tokenize::kmer::{Kmer, Tail};
    use genolm::tokenize::onehot;
    use std::time::Instant;
    let n = 8 << 20;
    let mut x: u64 = 1;
    let seq: Vec<u8> = (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            b"ACGT"[(x >> 62) as usize]
        })
        .collect();
    let report = |name: &str, f: &mut dyn FnMut()| {
        f();
        let reps = 20;
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!("{name:<24} {:>7.2} GB/s", n as f64 / s / 1e9);
    };
    let mut buf = vec![0f32; 4 * n];
    report("onehot encode_into", &mut || {
        onehot::encode_into(&seq, &mut buf)
    });
    let mut ids: Vec<u32> = Vec::with_capacity(n);
    report("onehot ids (codes)", &mut || {
        ids.clear();
        onehot::codes_into(&seq, &mut ids)
    });
    report("char ids", &mut || {
        ids.clear();
        genolm::tokenize::char::encode_ids_into(&seq, &mut ids)
    });
    for (k, s) in [(6, 1), (12, 1), (3, 3), (6, 6), (6, 3)] {
        let t = Kmer::new(k, s, Tail::Bases).unwrap();
        report(&format!("kmer:{k}:{s}"), &mut || {
            ids.clear();
            t.encode_ids_into(&seq, &mut ids).unwrap()
        });
    }
    let bpe = shipped();
    let chunk = &seq[..1 << 20];
    let t = Instant::now();
    let ids = bpe.encode(chunk).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "bpe (1 Mb, one call)     {:>7.2} MB/s, {} tokens",
        chunk.len() as f64 / s / 1e6,
        ids.len()
    );
}
