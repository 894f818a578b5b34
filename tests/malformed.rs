//! The malformed-input corpus: every bad file or spec gives exit code 2 and one stderr line that
//! names the file, and never a panic.

mod common;

use std::path::{Path, PathBuf};

fn corpus(dir: &str, exts: &[&str]) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/malformed")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        exts.iter().any(|e| name.ends_with(e)) && !name.starts_with("ok.") && name != "ref.fa"
    });
    files.sort();
    files
}

/// Run genolm with `args`; check exit code 2 and one stderr line mentioning `needle` (as
/// `common::expect_error`, but returning the failure so that one run lists every bad case).
fn expect_input_error(args: &[&str], needle: &str) -> Result<(), String> {
    let out = common::genolm(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let what = format!("genolm {}", args.join(" "));
    if stderr.contains("panicked") || stderr.contains("backtrace") {
        return Err(format!("{what}: panicked:\n{stderr}"));
    }
    if out.status.code() != Some(2) {
        return Err(format!(
            "{what}: exit {:?}, stderr: {stderr}",
            out.status.code()
        ));
    }
    if lines.len() != 1 || !lines[0].starts_with("genolm: error: ") {
        return Err(format!("{what}: want one error line, got: {stderr}"));
    }
    if !lines[0].contains(needle) {
        return Err(format!(
            "{what}: error does not name '{needle}': {}",
            lines[0]
        ));
    }
    Ok(())
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().to_string()
}

#[test]
fn malformed_corpus_gives_exit_2_and_one_line() {
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut check = |args: Vec<String>, needle: String| {
        cases += 1;
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Err(e) = expect_input_error(&refs, &needle) {
            failures.push(e);
        }
    };
    let fasta = corpus("fasta", &[".fa", ".fa.gz"]);
    assert!(fasta.len() >= 25, "FASTA corpus too small: {}", fasta.len());
    for f in &fasta {
        let p = f.to_string_lossy().to_string();
        check(vec!["stats".into(), p.clone()], name_of(f));
        check(
            vec![
                "tokenize".into(),
                "--tokenizer".into(),
                "char".into(),
                p.clone(),
            ],
            name_of(f),
        );
    }
    let gff_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed/gff");
    let gff = corpus("gff", &[".gff3", ".gff"]);
    for f in &gff {
        let fa = gff_dir.join("ref.fa").to_string_lossy().to_string();
        check(
            vec![
                "labels".into(),
                "--fasta".into(),
                fa,
                "--gff".into(),
                f.to_string_lossy().to_string(),
            ],
            name_of(f),
        );
    }
    let tok_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed/tokenizer");
    let ok_fa = tok_dir.join("ok.fa").to_string_lossy().to_string();
    for f in corpus("tokenizer", &[".json"]) {
        check(
            vec![
                "tokenize".into(),
                "--tokenizer".into(),
                format!("bpe:{}", f.display()),
                ok_fa.clone(),
            ],
            name_of(&f),
        );
    }
    for spec in [
        "kmer:0",
        "kmer:13",
        "kmer:abc",
        "kmer:3:0",
        "bpe:",
        "wordpiece",
        "onehot:7",
    ] {
        check(
            vec![
                "tokenize".into(),
                "--tokenizer".into(),
                spec.into(),
                ok_fa.clone(),
            ],
            spec.split(':').next().unwrap().to_string(),
        );
    }
    check(
        vec!["stats".into(), "/nonexistent/genome.fa".into()],
        "genome.fa".into(),
    );
    check(
        vec!["stats".into(), env!("CARGO_MANIFEST_DIR").into()],
        "directory".into(),
    );
    check(
        vec![
            "--device".into(),
            "tpu".into(),
            "demo".into(),
            "--no-train".into(),
        ],
        "unknown device".into(),
    );
    if !cfg!(feature = "cuda") {
        check(
            vec![
                "--device".into(),
                "cuda".into(),
                "demo".into(),
                "--no-train".into(),
            ],
            "built without CUDA".into(),
        );
    }
    eprintln!("{cases} malformed cases checked");
    assert!(cases >= 30 + fasta.len(), "corpus has only {cases} cases");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
