//! `genolm benchmark promoters --split homology`: homology folds keep families whole and classes
//! balanced, the report puts published-split and homology-split numbers side by side with each
//! split's train/test leakage (synthetic families; then a real set, skipped without data);
//! `--folds` and `--ensemble`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use genolm::cli::benchmark::homology_folds;
use genolm::data::homology::Params;
use genolm::data::LabeledSet;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use common::{expect_error, run_ok};

/// Write `n_fam` families of `size` near-identical 81 bp sequences (3 substitutions each from
/// the family's base) as a gzipped FASTA; positives carry a TATAAT box at position 40.
fn families(path: &Path, tag: &str, n_fam: usize, size: usize, motif: bool, rng: &mut ChaCha8Rng) {
    let mut text = String::new();
    for f in 0..n_fam {
        let mut base: Vec<u8> = (0..81).map(|_| b"ACGT"[rng.random_range(0..4)]).collect();
        if motif {
            base[40..46].copy_from_slice(b"TATAAT");
        }
        for m in 0..size {
            let mut s = base.clone();
            for _ in 0..3 {
                let i = rng.random_range(0..81);
                if !(motif && (40..46).contains(&i)) {
                    s[i] = b"ACGT"[rng.random_range(0..4)];
                }
            }
            text.push_str(&format!(
                ">{tag}_fam{f}_m{m}\n{}\n",
                String::from_utf8(s).unwrap()
            ));
        }
    }
    let file = std::fs::File::create(path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap();
}

/// A data directory holding a synthetic `cnnprom_bacillus` set (200 positives, 400 negatives,
/// families of 5).
fn synthetic_data(dir: &Path) -> PathBuf {
    let c = dir.join("promoters/cnnprom");
    std::fs::create_dir_all(&c).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    families(&c.join("Bacillus_prom.fa.gz"), "pos", 40, 5, true, &mut rng);
    families(
        &c.join("Bacillus_non_prom.fa.gz"),
        "neg",
        80,
        5,
        false,
        &mut rng,
    );
    dir.to_path_buf()
}

fn family(name: &str) -> &str {
    name.rsplit_once("_m").unwrap().0
}

#[test]
fn homology_folds_keep_families_whole_and_classes_balanced() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synthetic_data(tmp.path());
    let c = data.join("promoters/cnnprom");
    let spec = format!(
        "promoter={},non_promoter={}",
        c.join("Bacillus_prom.fa.gz").display(),
        c.join("Bacillus_non_prom.fa.gz").display()
    );
    let set = LabeledSet::load(&spec, Default::default()).unwrap();
    let (folds, stats) = homology_folds(&set, 5, &Params::default(), 0).unwrap();
    assert_eq!(stats.clusters, 120, "{stats:?}");
    assert_eq!(stats.merged_by_check, 0, "{stats:?}");
    assert_eq!(folds.len(), 5);
    let mut seen = vec![0usize; set.len()];
    for f in &folds {
        for &i in &f.test {
            seen[i] += 1;
        }
        let train_fams: std::collections::HashSet<&str> =
            f.train.iter().map(|&i| family(&set.names[i])).collect();
        assert!(f
            .test
            .iter()
            .all(|&i| !train_fams.contains(family(&set.names[i]))));
        // A fifth of each class (families are dealt whole: 8 of 40 positive, 16 of 80 negative).
        let pos = f.test.iter().filter(|&&i| set.labels[i] == 1).count();
        assert_eq!((pos, f.test.len() - pos), (40, 80), "{:?}", set.classes);
    }
    assert!(seen.iter().all(|&s| s == 1), "test folds partition the set");
}

#[test]
fn fold_check_merges_the_links_the_candidate_search_missed() {
    // Families of three identical copies: with max_occ 2 every family k-mer (in 3 records) is
    // hidden from the all-against-all search, so no family is clustered. The fold check indexes
    // the other folds alone, where a family k-mer is in at most 2 records, finds the pairs, and
    // their clusters are merged and dealt again until every family sits in one fold.
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let write = |path: &Path, tag: &str, n_fam: usize, rng: &mut ChaCha8Rng| {
        let mut text = String::new();
        for f in 0..n_fam {
            let base: String = (0..200)
                .map(|_| "ACGT".as_bytes()[rng.random_range(0..4)] as char)
                .collect();
            for m in 0..3 {
                text.push_str(&format!(">{tag}_fam{f}_m{m}\n{base}\n"));
            }
        }
        std::fs::write(path, text).unwrap();
    };
    write(&c.join("pos.fa"), "pos", 20, &mut rng);
    write(&c.join("neg.fa"), "neg", 20, &mut rng);
    let spec = format!(
        "promoter={},non_promoter={}",
        c.join("pos.fa").display(),
        c.join("neg.fa").display()
    );
    let set = LabeledSet::load(&spec, Default::default()).unwrap();
    let params = Params {
        max_occ: 2,
        ..Params::default()
    };
    let (folds, stats) = homology_folds(&set, 5, &params, 3).unwrap();
    assert!(stats.merged_by_check > 0, "{stats:?}");
    // Families whose copies were dealt to one fold never leak, so need no merge.
    assert!((40..120).contains(&stats.clusters), "{stats:?}");
    for f in &folds {
        let train_fams: std::collections::HashSet<&str> =
            f.train.iter().map(|&i| family(&set.names[i])).collect();
        assert!(
            f.test
                .iter()
                .all(|&i| !train_fams.contains(family(&set.names[i]))),
            "a family is split across train and test"
        );
    }
}

/// The arguments of `genolm benchmark promoters` on `set` (from `data`, or the default data
/// directory), one epoch, 2 threads, with gb-cnn, into `out`, followed by `extra`.
fn benchmark_args(data: Option<&Path>, set: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["--threads", "2", "benchmark", "promoters"]
        .map(String::from)
        .to_vec();
    if let Some(d) = data {
        a.extend(["--data-dir".to_string(), d.to_string_lossy().into_owned()]);
    }
    a.extend(["--sets", set, "--epochs", "1", "--model", "gb-cnn"].map(String::from));
    a.extend(["--out".to_string(), out.to_string_lossy().into_owned()]);
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// [`benchmark_args`] on the synthetic Bacillus set of `data`.
fn bacillus_benchmark(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    benchmark_args(Some(data), "cnnprom_bacillus", out, extra)
}

#[test]
fn quick_benchmark_reports_published_and_homology_splits_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synthetic_data(&tmp.path().join("data"));
    let out = tmp.path().join("bench");
    run_ok(&bacillus_benchmark(
        &data,
        &out,
        &["--quick", "--split", "homology", "--identity", "0.8"],
    ));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["split"], "published+homology");
    let set = &r["sets"][0];
    let hom = &set["homology"];
    assert_eq!(hom["folds_run"], 1);
    assert_eq!(hom["folds_total"], set["folds_total"]);
    // Same test fraction as the protocol (one fifth).
    assert_eq!(hom["folds"][0]["n_test"], 120);
    // The random CV split leaks family members into the test fold; the homology split does not.
    let published_leak = set["folds"][0]["leakage"]["count"].as_u64().unwrap();
    assert!(published_leak > 50, "{}", set["folds"][0]["leakage"]);
    assert_eq!(hom["folds"][0]["leakage"]["count"], 0);
    for part in [set, hom] {
        let auroc = part["mean"]["auroc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&auroc));
    }
    assert!(out
        .join("cnnprom_bacillus/homology/fold_1/model.safetensors")
        .exists());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| cnnprom_bacillus | published | 1/5 |"),
        "{md}"
    );
    assert!(
        md.contains("| cnnprom_bacillus | homology | 1/5 | 0 (0.0 %) |"),
        "{md}"
    );
    // A bad identity is one line, exit code 2.
    expect_error(
        &[
            "benchmark",
            "promoters",
            "--data-dir",
            data.to_str().unwrap(),
            "--split",
            "homology",
            "--identity",
            "1.5",
            "--out",
            out.to_str().unwrap(),
        ],
        "--identity must be in (0, 1]",
    );
}

#[test]
fn real_set_homology_split_has_no_leakage_at_the_threshold() {
    let Some(data) = genolm::io::data_dir(None) else {
        eprintln!("SKIP: no data directory");
        return;
    };
    let c = data.join("promoters/cnnprom");
    if !c.join("Arabidopsis_tata.fa.gz").is_file() {
        eprintln!("SKIP: {} missing", c.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bench");
    run_ok(&benchmark_args(
        None,
        "cnnprom_arabidopsis_tata",
        &out,
        &["--quick", "--split", "homology"],
    ));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let set = &r["sets"][0];
    let hom = &set["homology"]["folds"][0];
    assert_eq!(hom["leakage"]["count"], 0, "{}", hom["leakage"]);
    // 4,376 records, test fraction one fifth within a few clusters' slack.
    let n = hom["n_test"].as_u64().unwrap() as f64;
    assert!((n / 4376.0 - 0.2).abs() < 0.02, "n_test {n}");
    assert!(set["folds"][0]["leakage"]["count"].as_u64().is_some());
}

#[test]
fn folds_option_runs_only_the_named_folds() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synthetic_data(&tmp.path().join("data"));
    let out = tmp.path().join("bench");
    let args = |extra: &[&str]| {
        bacillus_benchmark(&data, &out, &[&["--max-train", "100"], extra].concat())
    };
    run_ok(&args(&["--folds", "2,4"]));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let set = &r["sets"][0];
    assert_eq!(set["folds_run"], 2);
    assert_eq!(set["folds"][0]["fold"], 2);
    assert_eq!(set["folds"][1]["fold"], 4);
    let dir = out.join("cnnprom_bacillus");
    assert!(dir.join("fold_2/model.safetensors").exists());
    assert!(dir.join("fold_4/model.safetensors").exists());
    assert!(!dir.join("fold_1").exists() && !dir.join("fold_3").exists());
    // A fold the set does not have, and --folds with --max-folds: one line, exit code 2.
    expect_error(
        &args(&["--folds", "6"]),
        "--folds: cnnprom_bacillus has folds 1 to 5, not 6",
    );
    expect_error(&args(&["--folds", "1", "--max-folds", "1"]), "--max-folds");
    // Options the benchmark sets itself are refused inside --train-args, in one line.
    expect_error(
        &args(&["--folds", "1", "--train-args=--epochs 3"]),
        "--epochs",
    );
    expect_error(
        &args(&["--folds", "1", "--train-args=--valid x.tsv"]),
        "--valid, --test and --cv are not taken",
    );
    expect_error(
        &args(&["--folds", "1", "--train-args=--task segment"]),
        "classification only",
    );
    // --valid-fraction sets each training fold's holdout: 10 of the 100 by default, 20 at 0.2.
    let n_valid = |fold: &str| {
        let r: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(fold).join("report.json")).unwrap(),
        )
        .unwrap();
        r["n_valid"].as_u64().unwrap()
    };
    assert_eq!(n_valid("fold_2"), 10);
    run_ok(&args(&[
        "--folds",
        "1",
        "--train-args=--valid-fraction 0.2",
    ]));
    assert_eq!(n_valid("fold_1"), 20);
}

/// [`bacillus_benchmark`] on fold 1 only, at most 150 training examples, `--threshold auto`.
fn first_fold_of_150(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let base = [
        "--folds",
        "1",
        "--max-train",
        "150",
        "--train-args=--threshold auto",
    ];
    bacillus_benchmark(data, out, &[&base[..], extra].concat())
}

/// Read a predictions TSV: (name, label, probabilities).
fn predictions(path: &Path) -> Vec<(String, String, Vec<f64>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "name\tlabel\tp_non_promoter\tp_promoter"
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let p = f[2..].iter().map(|v| v.parse().unwrap()).collect();
            (f[0].to_string(), f[1].to_string(), p)
        })
        .collect()
}

#[test]
fn ensemble_scores_the_mean_of_its_members() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synthetic_data(&tmp.path().join("data"));
    let args = |out: &Path, extra: &[&str]| first_fold_of_150(&data, out, extra);
    let single = tmp.path().join("single");
    run_ok(&args(&single, &[]));
    let ens = tmp.path().join("ens");
    run_ok(&args(&ens, &["--ensemble", "3"]));
    let fold = ens.join("cnnprom_bacillus/fold_1");
    let members: Vec<_> = (1..=3)
        .map(|k| predictions(&fold.join(format!("member_{k}/test_predictions.tsv"))))
        .collect();
    // Member 1 is the single run (same seed, same split); member 2 trained with another seed.
    let one = predictions(&single.join("cnnprom_bacillus/fold_1/test_predictions.tsv"));
    assert_eq!(members[0], one);
    assert_ne!(members[0], members[1]);
    assert_eq!(one.len(), 120);
    // The fold's predictions are the members' mean, and its figures are computed from them.
    let mean = predictions(&fold.join("test_predictions.tsv"));
    for (i, (name, label, p)) in mean.iter().enumerate() {
        assert_eq!((name, label), (&members[0][i].0, &members[0][i].1));
        for (c, &pc) in p.iter().enumerate() {
            let m = members.iter().map(|r| r[i].2[c]).sum::<f64>() / 3.0;
            assert!((m - pc).abs() < 2e-6, "row {i}: {m} vs {pc}");
        }
    }
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ens.join("report.json")).unwrap()).unwrap();
    let f = &r["sets"][0]["folds"][0];
    assert_eq!(f["ensemble"], 3);
    let t = f["threshold"].as_f64().unwrap();
    let correct = mean
        .iter()
        .filter(|(_, label, p)| (p[1] >= t) == (label == "promoter"))
        .count();
    let acc = f["accuracy"].as_f64().unwrap();
    // Probabilities are printed to 6 decimals, so a score within 1e-6 of t may flip.
    let near = mean
        .iter()
        .filter(|(_, _, p)| (p[1] - t).abs() < 1e-6)
        .count();
    assert!(
        (acc * 120.0 - correct as f64).abs() <= near as f64 + 1e-9,
        "accuracy {acc}, {correct} of 120 correct at {t}"
    );
    // At CNNProm's Bacillus sensitivity (0.91): the threshold keeps the validation sensitivity
    // at 0.91, and the test figures are read at it.
    let at = &f["at_published_sn"];
    assert_eq!(at["target_recall"].as_f64().unwrap(), 0.91);
    let ta = at["threshold"].as_f64().unwrap();
    let sn_sp = |rows: &[(String, String, Vec<f64>)]| {
        let pos: Vec<f64> = rows
            .iter()
            .filter(|r| r.1 == "promoter")
            .map(|r| r.2[1])
            .collect();
        let neg: Vec<f64> = rows
            .iter()
            .filter(|r| r.1 != "promoter")
            .map(|r| r.2[1])
            .collect();
        let sn = pos.iter().filter(|&&p| p >= ta).count() as f64 / pos.len() as f64;
        let sp = neg.iter().filter(|&&p| p < ta).count() as f64 / neg.len() as f64;
        let near = rows.iter().filter(|r| (r.2[1] - ta).abs() < 1e-6).count();
        (sn, sp, near, pos.len(), neg.len())
    };
    let (vsn, _, vnear, vpos, _) = sn_sp(&predictions(&fold.join("valid_predictions.tsv")));
    assert!(
        vsn + vnear as f64 / vpos as f64 >= 0.91,
        "valid Sn {vsn} at {ta}"
    );
    let (sn, sp, near, pos, neg) = sn_sp(&mean);
    let (rsn, rsp) = (
        at["recall"].as_f64().unwrap(),
        at["specificity"].as_f64().unwrap(),
    );
    assert!(
        (rsn - sn).abs() * pos as f64 <= near as f64 + 1e-9,
        "{at}: Sn {sn}"
    );
    assert!(
        (rsp - sp).abs() * neg as f64 <= near as f64 + 1e-9,
        "{at}: Sp {sp}"
    );
    assert_eq!(
        r["sets"][0]["mean"]["at_published_sn_recall"].as_f64(),
        Some(rsn)
    );
    let member_mean = f["members"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&member_mean));
    assert_eq!(
        r["sets"][0]["members_mean"]["accuracy"],
        f["members"]["accuracy"]
    );
    let md = std::fs::read_to_string(ens.join("report.md")).unwrap();
    assert!(md.contains("ensemble of 3 seeds per fold"), "{md}");
    assert!(md.contains("The ensemble's members alone"), "{md}");
    assert!(md.contains("At the published sensitivity"), "{md}");
    assert!(
        md.contains(&format!(
            "| cnnprom_bacillus | {rsn:.4} | {rsp:.4} | 0.91 / 0.95 |"
        )),
        "{md}"
    );
    // No members: one line, exit code 2.
    expect_error(
        &args(&tmp.path().join("zero"), &["--ensemble", "0"]),
        "--ensemble",
    );
}

#[test]
fn blend_scores_the_weighted_mean_of_the_ensemble_and_the_blend_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synthetic_data(&tmp.path().join("data"));
    let args = |out: &Path, extra: &[&str]| first_fold_of_150(&data, out, extra);
    let out = tmp.path().join("blend");
    run_ok(&args(&out, &["--ensemble", "2", "--blend", "kmer-lr:0.25"]));
    let fold = out.join("cnnprom_bacillus/fold_1");
    let members: Vec<_> = (1..=2)
        .map(|k| predictions(&fold.join(format!("member_{k}/test_predictions.tsv"))))
        .collect();
    let blend = predictions(&fold.join("blend/test_predictions.tsv"));
    assert_ne!(blend, members[0]);
    // The fold's predictions are 0.75 × the members' mean + 0.25 × the blend model's.
    let mixed = predictions(&fold.join("test_predictions.tsv"));
    assert_eq!(mixed.len(), 120);
    for (i, (name, _, p)) in mixed.iter().enumerate() {
        assert_eq!(name, &blend[i].0);
        for (c, &pc) in p.iter().enumerate() {
            let m = (members[0][i].2[c] + members[1][i].2[c]) / 2.0;
            let want = 0.75 * m + 0.25 * blend[i].2[c];
            assert!((want - pc).abs() < 3e-6, "row {i}: {want} vs {pc}");
        }
    }
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["blend"], "kmer-lr:0.25");
    let f = &r["sets"][0]["folds"][0];
    assert_eq!(f["blend"]["model"], "kmer-lr");
    assert_eq!(f["blend"]["weight"].as_f64(), Some(0.25));
    assert_eq!(r["sets"][0]["blend_mean"]["auroc"], f["blend"]["auroc"]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("blended with kmer-lr:0.25"), "{md}");
    assert!(md.contains("The blend model alone"), "{md}");
    // One member plus the blend: the member keeps its own directory and predictions. With
    // `auto` the weight is the grid point (0, 0.1, ..., 1) with the best validation AUROC.
    let one = tmp.path().join("one");
    run_ok(&args(&one, &["--blend", "kmer-lr:auto"]));
    let fold = one.join("cnnprom_bacillus/fold_1");
    assert_eq!(
        predictions(&fold.join("member_1/test_predictions.tsv")),
        members[0]
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(one.join("report.json")).unwrap()).unwrap();
    let w = r["sets"][0]["folds"][0]["blend"]["weight"]
        .as_f64()
        .unwrap();
    assert!(
        (w * 10.0 - (w * 10.0).round()).abs() < 1e-9 && (0.0..=1.0).contains(&w),
        "{w}"
    );
    let mv = predictions(&fold.join("member_1/valid_predictions.tsv"));
    let bv = predictions(&fold.join("blend/valid_predictions.tsv"));
    let auroc_at = |w: f64| {
        let s: Vec<(f64, bool)> = mv
            .iter()
            .zip(&bv)
            .map(|(m, b)| ((1.0 - w) * m.2[1] + w * b.2[1], m.1 == "promoter"))
            .collect();
        let (mut pairs, mut good) = (0.0, 0.0);
        for (p, yes) in &s {
            for (q, no) in &s {
                if *yes && !*no {
                    pairs += 1.0;
                    good += if p > q {
                        1.0
                    } else if p == q {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        good / pairs
    };
    let best = (0..=10)
        .map(|i| auroc_at(i as f64 / 10.0))
        .fold(0.0, f64::max);
    // The TSVs hold 6 decimals, so a near-tie may rank differently by a pair or two.
    assert!(
        auroc_at(w) >= best - 2e-3,
        "weight {w}: {} vs best {best}",
        auroc_at(w)
    );
    let mixed = predictions(&fold.join("test_predictions.tsv"));
    let bt = predictions(&fold.join("blend/test_predictions.tsv"));
    for ((m, b), x) in members[0].iter().zip(&bt).zip(&mixed) {
        let want = (1.0 - w) * m.2[1] + w * b.2[1];
        assert!(
            (want - x.2[1]).abs() < 3e-6,
            "{}: {want} vs {}",
            x.0,
            x.2[1]
        );
    }
    // Bad blends: one line, exit code 2, naming the problem.
    for (extra, needle) in [
        (&["--blend", "kmer-lr"][..], "MODEL:WEIGHT"),
        (&["--blend", "kmer-lr:0"][..], "MODEL:WEIGHT"),
        (&["--blend", "kmer-lr:1.5"][..], "MODEL:WEIGHT"),
        (&["--blend", "kmer-lr:best"][..], "or auto"),
        (&["--blend", "nope:0.5"][..], "unknown model 'nope'"),
        (&["--blend-args=--lr 1e-3"][..], "only with --blend"),
    ] {
        expect_error(&args(&tmp.path().join("bad"), extra), needle);
    }
    // The blend model's options are checked before any member trains, and the message names
    // --blend-args.
    let bad = tmp.path().join("bad_args");
    for (extra, needle) in [
        (
            &["--blend", "kmer-lr:0.4", "--blend-args=--valid x.tsv"][..],
            "--train-args with --blend-args: --valid, --test and --cv",
        ),
        (
            &["--blend", "kmer-lr:0.4", "--blend-args=--no-such-option"][..],
            "--train-args with --blend-args",
        ),
    ] {
        expect_error(&args(&bad, extra), needle);
        assert!(!bad
            .join("cnnprom_bacillus/fold_1/member_1/model.safetensors")
            .exists());
    }
}
