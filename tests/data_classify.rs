//! Labelled-set loading (FASTA per class, CSV/TSV tables), label mapping, malformed inputs,
//! splits, and the real promoter benchmarks (skipped when the data directory is missing).

use std::path::{Path, PathBuf};
use std::time::Instant;

use genolm::data::classify::{promoter_benchmarks, LabeledSet, Protocol};
use genolm::data::folds::{self, Split};
use genolm::io::{data_dir, shared_data};
use genolm::seq::SeqPolicy;
use genolm::Error;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/classify")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn malformed(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/malformed/classify")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn load(spec: &str) -> LabeledSet {
    LabeledSet::load(spec, SeqPolicy::default()).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

/// Load a spec that must fail with a one-line input error mentioning every `needles`.
fn load_err(spec: &str, needles: &[&str]) -> String {
    let err = LabeledSet::load(spec, SeqPolicy::default()).expect_err(spec);
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Input(_) | Error::Io { .. }),
        "{spec}: not an input error: {err:?}"
    );
    assert_eq!(err.exit_code(), 2, "{spec}");
    assert!(!msg.contains('\n'), "{spec}: multi-line error: {msg}");
    for n in needles {
        assert!(
            msg.contains(n),
            "{spec}: error does not mention '{n}': {msg}"
        );
    }
    msg
}

#[test]
fn fasta_per_class_with_crlf_gzip_and_iupac() {
    let set = load(&format!(
        "promoter={},non_promoter={}",
        fixture("prom.fa"),
        fixture("non_prom.fa.gz")
    ));
    assert_eq!(set.classes, ["non_promoter", "promoter"]);
    assert_eq!(set.labels, [1, 1, 1, 0, 0, 0, 0]);
    assert_eq!(set.names[..4], ["p1", "p2", "p3", "n1"]);
    assert_eq!(set.seqs[0], b"ACGTACGTACGTNN"); // R and Y become N, CRLF dropped
    assert_eq!(set.seqs[1], b"ACGTACGTACGTAC"); // upper-cased
    assert_eq!(set.class_counts(), [4, 3]);
    assert_eq!(set.fixed_length(), Some(14));
    set.require_length(14).unwrap();
    assert_eq!(set.files.len(), 2);
    let lines: Vec<u64> = set.origins.iter().map(|o| o.line).collect();
    assert_eq!(lines, [1, 4, 6, 1, 3, 5, 7]);
    set.require_binary().unwrap();

    // The order of the SPEC does not change the mapping; integer labels map to themselves.
    let rev = load(&format!(
        "non_promoter={},promoter={}",
        fixture("non_prom.fa.gz"),
        fixture("prom.fa")
    ));
    assert_eq!(rev.classes, set.classes);
    assert_eq!(rev.labels, [0, 0, 0, 0, 1, 1, 1]);
    let ints = load(&format!(
        "1={},0={}",
        fixture("prom.fa"),
        fixture("non_prom.fa.gz")
    ));
    assert_eq!(ints.classes, ["0", "1"]);
    assert_eq!(ints.labels, set.labels);

    // Soft-masking can be kept.
    let keep = LabeledSet::load(
        &format!(
            "pos={},neg={}",
            fixture("prom.fa"),
            fixture("non_prom.fa.gz")
        ),
        SeqPolicy {
            keep_softmask: true,
        },
    )
    .unwrap();
    assert_eq!(keep.classes, ["neg", "pos"]);
    assert_eq!(keep.seqs[1], b"acgtacgtacgtac");
}

#[test]
fn csv_with_index_column() {
    let set = load(&fixture("small.csv"));
    assert_eq!(set.len(), 5);
    assert_eq!(set.classes, ["0", "1"]);
    assert_eq!(set.labels, [1, 0, 1, 0, 0]);
    assert_eq!(set.names, ["0", "1", "2", "3", "4"]);
    assert_eq!(set.seqs[2], b"ACGTNNACGT");
    let lines: Vec<u64> = set.origins.iter().map(|o| o.line).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6]);
    assert_eq!(set.label_of("1"), Some(1));
}

#[test]
fn tsv_named_columns_and_sniffing() {
    let tsv = load(&fixture("small.tsv"));
    assert_eq!(tsv.classes, ["non_promoter", "promoter"]);
    assert_eq!(tsv.labels, [1, 0, 1]);
    assert_eq!(tsv.names, ["row1", "row2", "row3"]);

    // Forced columns by name (case-insensitive) and by 1-based number, gzipped, quoted fields.
    for spec in [
        format!("{}:DNA:target", fixture("named.csv.gz")),
        format!("{}:2:3", fixture("named.csv.gz")),
    ] {
        let set = load(&spec);
        assert_eq!(set.classes, ["0", "1", "2"]);
        assert_eq!(set.labels, [1, 2, 0, 2]);
        assert_eq!(set.names, ["r1", "r2", "r3", "r4"]);
        assert!(set.require_binary().is_err());
    }
    load_err(
        &fixture("named.csv.gz"),
        &["named.csv.gz", "no sequence column"],
    );
    load_err(
        &format!("{}:dna:nope", fixture("named.csv.gz")),
        &["named.csv.gz", "no label column 'nope'"],
    );
    load_err(
        &format!("{}:dna:dna", fixture("named.csv.gz")),
        &["same column"],
    );

    // A .txt table: tab delimiter sniffed, CRLF, labels that are plain names sort by name.
    let set = load(&fixture("sniff_tab.txt"));
    assert_eq!(set.classes, ["a", "b", "c"]);
    assert_eq!(set.labels, [1, 0, 2]);
    assert_eq!(set.fixed_length(), None);
    let e = set.require_length(8).unwrap_err().to_string();
    assert!(
        e.contains("sniff_tab.txt:5:") && e.contains("'row3'") && e.contains("length 6"),
        "{e}"
    );
}

#[test]
fn several_tables_pool_and_make_given_folds() {
    let f = fixture("small.csv");
    let set = load(&format!("{f},{f},{f}"));
    assert_eq!(set.len(), 15);
    assert_eq!(set.files.len(), 3);
    let splits = folds::by_file(&set).unwrap();
    assert_eq!(splits.len(), 3);
    assert_eq!(splits[1].test, (5..10).collect::<Vec<_>>());
    assert_eq!(splits[1].train.len(), 10);
    let (train, test) = set.split(&splits[2]);
    assert_eq!((train.len(), test.len()), (10, 5));
    assert!(test.origins.iter().all(|o| o.file == 2));
    assert!(folds::by_file(&load(&f)).is_err());
}

#[test]
fn test_set_against_training_classes() {
    let classes = vec!["non_promoter".to_string(), "promoter".to_string()];
    let spec = format!("promoter={}", fixture("prom.fa"));
    let test = LabeledSet::load_with_classes(&spec, SeqPolicy::default(), &classes).unwrap();
    assert_eq!(test.labels, [1, 1, 1]);
    assert_eq!(test.classes, classes);
    // Alone, a single class is an error; an unknown class is one too.
    load_err(&spec, &["prom.fa", "only one class"]);
    let e = LabeledSet::load_with_classes(
        &format!("other={}", fixture("prom.fa")),
        SeqPolicy::default(),
        &classes,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("prom.fa") && e.contains("'other'"), "{e}");
    // Integer classes match by value.
    let ints = vec!["0".to_string(), "1".to_string()];
    let t = LabeledSet::load_with_classes(&fixture("small.csv"), SeqPolicy::default(), &ints);
    assert_eq!(t.unwrap().labels, [1, 0, 1, 0, 0]);
}

#[test]
fn malformed_inputs_name_the_file() {
    let cases: [(&str, &str); 11] = [
        ("no_label_column.csv", "no label column"),
        ("no_sequence_column.csv", "no sequence column"),
        (
            "short_row.csv",
            "short_row.csv:3: row has 2 fields, the header has 3",
        ),
        (
            "bad_label.csv",
            "bad_label.csv:4: label 'maybe' is not an integer",
        ),
        ("one_class.csv", "only one class ('1', 3 records)"),
        (
            "empty_sequence.csv",
            "empty_sequence.csv:3: record '1': empty sequence",
        ),
        (
            "invalid_base.csv",
            "invalid_base.csv:4: record '2': invalid base 'X'",
        ),
        ("header_only.csv", "no data rows"),
        ("label_gap.csv", "no records of class 1"),
        ("fasta_as_table.csv", "looks like FASTA"),
        ("empty_class.fa", "looks like"),
    ];
    for (file, needle) in cases {
        let path = malformed(file);
        if file == "empty_class.fa" {
            // The empty class file in the LABEL=FASTA form.
            let spec = format!("promoter={},non_promoter={path}", malformed("ok.fa"));
            load_err(&spec, &[file, "empty input"]);
            // As a table it is an empty file.
            load_err(&path, &[file, "empty file"]);
            continue;
        }
        load_err(&path, &[file, needle]);
    }
    // Missing files, in either form.
    load_err("/nonexistent/x.csv", &["/nonexistent/x.csv"]);
    load_err(
        "pos=/nonexistent/p.fa,neg=/nonexistent/n.fa",
        &["/nonexistent/p.fa"],
    );
    // A bad base in a class FASTA names file, line and record.
    let bad = malformed("short_row.csv");
    load_err(
        &format!("a={},b={bad}", malformed("ok.fa")),
        &["short_row.csv:1", "not FASTA"],
    );
    // Bad SPECs.
    load_err("", &["empty data SPEC"]);
    load_err(&format!("{},,", fixture("small.csv")), &["empty part"]);
}

fn check_partition(labels: &[u32], splits: &[Split], k: usize) {
    let n = labels.len();
    assert_eq!(splits.len(), k);
    let mut seen = vec![0; n];
    let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut per_fold = vec![vec![0usize; classes]; k];
    for (f, s) in splits.iter().enumerate() {
        assert_eq!(s.train.len() + s.test.len(), n);
        assert!(s.test.windows(2).all(|w| w[0] < w[1]));
        assert!(s.train.windows(2).all(|w| w[0] < w[1]));
        let mut in_test = vec![false; n];
        for &i in &s.test {
            seen[i] += 1;
            in_test[i] = true;
            per_fold[f][labels[i] as usize] += 1;
        }
        assert!(
            s.train.iter().all(|&i| !in_test[i]),
            "train and test overlap"
        );
    }
    assert!(seen.iter().all(|&c| c == 1), "test folds do not partition");
    for c in 0..classes {
        let counts: Vec<usize> = per_fold.iter().map(|f| f[c]).collect();
        let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(hi - lo <= 1, "class {c} unbalanced over folds: {counts:?}");
    }
    let sizes: Vec<usize> = splits.iter().map(|s| s.test.len()).collect();
    assert!(
        sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
        "{sizes:?}"
    );
}

#[test]
fn stratified_kfold_partitions_and_balances() {
    // 103 records over three unbalanced classes, interleaved irregularly.
    let labels: Vec<u32> = (0..103u32)
        .map(|i| [0, 0, 1, 0, 2, 0, 1][(i * 7 % 11) as usize % 7])
        .collect();
    for k in 2..=10 {
        for seed in [0, 1, 42] {
            let s = folds::stratified_kfold(&labels, k, seed).unwrap();
            check_partition(&labels, &s, k);
            assert_eq!(s, folds::stratified_kfold(&labels, k, seed).unwrap());
        }
    }
    let a = folds::stratified_kfold(&labels, 5, 1).unwrap();
    let b = folds::stratified_kfold(&labels, 5, 2).unwrap();
    assert_ne!(a, b, "different seeds should shuffle differently");
}

#[test]
fn stratified_holdout_keeps_balance() {
    let labels: Vec<u32> = (0..1000u32).map(|i| u32::from(i % 4 == 0)).collect();
    let s = folds::stratified_holdout(&labels, 0.1, 9).unwrap();
    assert_eq!(s.test.len(), 100);
    assert_eq!(s.test.iter().filter(|&&i| labels[i] == 1).count(), 25);
    assert_eq!(s.train.len(), 900);
    let mut all: Vec<usize> = s.train.iter().chain(&s.test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    assert_eq!(s, folds::stratified_holdout(&labels, 0.1, 9).unwrap());
    assert_ne!(s, folds::stratified_holdout(&labels, 0.1, 10).unwrap());
}

#[test]
fn epdnew_fold_1() {
    let Some(path) = shared_data("promoters/epdnew_human_300/fold_1.csv.gz") else {
        return;
    };
    let set = load(&path.to_string_lossy());
    assert!((11_838..=11_840).contains(&set.len()), "{}", set.len());
    set.require_length(300).unwrap();
    assert_eq!(set.classes, ["0", "1"]);
    let counts = set.class_counts();
    assert!(counts[0].abs_diff(counts[1]) <= 2, "{counts:?}");
}

fn benchmark_dir() -> Option<PathBuf> {
    match data_dir(None) {
        Some(d) if d.join("promoters").is_dir() => Some(d),
        _ => {
            eprintln!("SKIP: promoters data directory not found (set GENOLM_DATA)");
            None
        }
    }
}

#[test]
fn promoter_benchmarks_load_with_published_counts() {
    let Some(dir) = benchmark_dir() else {
        return;
    };
    let sets = promoter_benchmarks(&dir);
    assert_eq!(sets.len(), 9);
    for b in &sets {
        if !b.available() {
            eprintln!("SKIP: benchmark {} has missing files", b.name);
            continue;
        }
        let t0 = Instant::now();
        let set = b.load(SeqPolicy::default()).unwrap();
        eprintln!("{}: {} records in {:?}", b.name, set.len(), t0.elapsed());
        let want: Vec<(&str, usize)> = b.counts.clone();
        let got: Vec<(&str, usize)> = set
            .classes
            .iter()
            .map(String::as_str)
            .zip(set.class_counts())
            .collect();
        assert_eq!(got, want, "{}", b.name);
        set.require_length(b.seq_len).unwrap();
        if set.num_classes() == 2 {
            assert!(b.counts[1].0 == "1" || b.counts[1].0 == "promoter");
        }
        match &b.protocol {
            Protocol::GivenFolds => {
                let splits = folds::by_file(&set).unwrap();
                assert_eq!(splits.len(), 5);
                for s in &splits {
                    assert!((11_838..=11_840).contains(&s.test.len()));
                }
            }
            Protocol::KFold { k } | Protocol::KFoldWithTest { k, .. } => {
                let splits = folds::stratified_kfold(&set.labels, *k, 0).unwrap();
                check_partition(&set.labels, &splits, *k);
            }
        }
        let test = b.load_test(&set, SeqPolicy::default()).unwrap();
        match test {
            Some(t) => {
                let got: Vec<(&str, usize)> = t
                    .classes
                    .iter()
                    .map(String::as_str)
                    .zip(t.class_counts())
                    .filter(|&(_, n)| n > 0)
                    .collect();
                assert_eq!(got, b.test_counts, "{} test", b.name);
                t.require_length(b.seq_len).unwrap();
            }
            None => assert!(b.test_counts.is_empty()),
        }
    }
    let names: Vec<&str> = sets.iter().map(|b| b.name).collect();
    assert!(names.contains(&"cnnprom_ecoli") && names.contains(&"ipromoter2l_ecoli"));
    let ecoli = sets.iter().find(|b| b.name == "cnnprom_ecoli").unwrap();
    assert!(ecoli
        .published
        .iter()
        .any(|p| p.metric == "specificity" && p.value == 0.96));
}
