//! Training end to end on the embedded demo set: determinism, exact resume after SIGKILL,
//! run-directory contents, eval/predict agreement, and clear errors for bad configs and data.

use std::path::{Path, PathBuf};

mod common;

use common::{demo_slice, expect_error, genolm, run_ok};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A small real training set: the first `n` records of each demo class, as FASTA files.
fn small_demo(dir: &Path, n: usize) -> String {
    demo_slice(dir, 0, n)
}

fn train_args<'a>(spec: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--threads",
        "2",
        "train",
        "--model",
        "gb-cnn",
        "--train",
        spec,
        "--out",
        out,
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--seed",
        "11",
        "--quiet",
        "--patience",
        "0",
    ];
    v.extend_from_slice(extra);
    v
}

fn report(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("seconds");
    v
}

#[test]
fn same_seed_same_numbers_and_complete_run_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = small_demo(tmp.path(), 150);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&a, &b] {
        run_ok(&train_args(&spec, &d.to_string_lossy(), &[]));
    }
    assert_eq!(report(&a), report(&b));
    for f in [
        "config.toml",
        "tokenizer.txt",
        "command.txt",
        "metrics.jsonl",
        "model.safetensors",
        "last.safetensors",
        "state.json",
        "report.json",
        "loss.svg",
        "roc_pr.svg",
    ] {
        assert!(a.join(f).exists(), "run dir lacks {f}");
    }
    let r = report(&a);
    for k in ["accuracy", "f1", "mcc", "auroc", "auprc"] {
        let v = r[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v.abs()), "{k} = {v}");
    }
    assert!(std::fs::read_to_string(a.join("command.txt"))
        .unwrap()
        .contains("--seed 11"));
    // A different seed gives different weights.
    let c = tmp.path().join("c");
    let c_s = c.to_string_lossy().to_string();
    let mut args = train_args(&spec, &c_s, &[]);
    let i = args.iter().position(|x| *x == "11").unwrap();
    args[i] = "12";
    run_ok(&args);
    assert_ne!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(c.join("model.safetensors")).unwrap()
    );
    // eval on the validation-size data agrees with itself and prints the plain metric names.
    let o = run_ok(&[
        "eval",
        "--model",
        &a.to_string_lossy(),
        "--data",
        &spec,
        "--json",
    ]);
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(m["auroc"].as_f64().unwrap() > 0.5);
    // predict writes one row per record with probabilities summing to 1.
    let fa = spec.split(',').next().unwrap().split('=').nth(1).unwrap();
    let o = run_ok(&[
        "predict",
        "--model",
        &a.to_string_lossy(),
        "--rc-average",
        fa,
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "name\tp_distal\tp_proximal");
    assert_eq!(rows.len(), 151);
    let p: Vec<f64> = rows[1]
        .split('\t')
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    assert!((p[0] + p[1] - 1.0).abs() < 1e-4);
}

/// Train with `extra` uninterrupted and again killed (SIGKILL) mid-epoch then resumed; the
/// two runs must end identical. Returns the uninterrupted run's directory.
fn kill_and_resume(tmp: &Path, spec: &str, extra: &[&str]) -> PathBuf {
    let full = tmp.join("full");
    let mut args = vec!["--checkpoint-every", "3"];
    args.extend_from_slice(extra);
    run_ok(&train_args(spec, &full.to_string_lossy(), &args));

    let part = tmp.join("part");
    let part_s = part.to_string_lossy().to_string();
    // Kill (SIGKILL) once a mid-epoch checkpoint exists and training has moved past it.
    common::kill_after_checkpoint(&train_args(spec, &part_s, &args), &part, 13);
    args.push("--resume");
    run_ok(&train_args(spec, &part_s, &args));
    assert_eq!(report(&full), report(&part));
    assert_eq!(
        std::fs::read(full.join("model.safetensors")).unwrap(),
        std::fs::read(part.join("model.safetensors")).unwrap()
    );
    // The metrics log has no duplicated steps after the resume.
    let log = std::fs::read_to_string(part.join("metrics.jsonl")).unwrap();
    let full_log = std::fs::read_to_string(full.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), full_log.lines().count());
    full
}

#[test]
fn killed_run_resumes_to_identical_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = small_demo(tmp.path(), 150);
    kill_and_resume(tmp.path(), &spec, &[]);
}

#[test]
fn moving_average_runs_resume_exactly_and_keep_the_averaged_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = small_demo(tmp.path(), 150);
    let ema = tmp.path().join("ema");
    std::fs::create_dir_all(&ema).unwrap();
    let ema_run = kill_and_resume(&ema, &spec, &["--ema", "0.9"]);
    // Same seed without the average: the kept weights differ.
    let plain = tmp.path().join("plain");
    run_ok(&train_args(
        &spec,
        &plain.to_string_lossy(),
        &["--checkpoint-every", "3"],
    ));
    assert_ne!(
        std::fs::read(ema_run.join("model.safetensors")).unwrap(),
        std::fs::read(plain.join("model.safetensors")).unwrap()
    );
    expect_error(
        &train_args(
            &spec,
            &tmp.path().join("bad").to_string_lossy(),
            &["--ema", "1"],
        ),
        "--ema",
    );
}

/// A run trained on 150 records per class with `--valid` (records 150..250 of each class) and
/// `--threshold THRESHOLD`, and the threshold it wrote to `threshold.txt`.
struct TunedRun {
    tmp: tempfile::TempDir,
    spec: String,
    vspec: String,
    run: PathBuf,
    run_s: String,
    threshold: f64,
}

impl TunedRun {
    fn train(threshold: &str) -> TunedRun {
        let tmp = tempfile::tempdir().unwrap();
        let spec = small_demo(tmp.path(), 150);
        let vdir = tmp.path().join("v");
        std::fs::create_dir_all(&vdir).unwrap();
        let vspec = demo_slice(&vdir, 150, 100);
        let run = tmp.path().join("run");
        let run_s = run.to_string_lossy().to_string();
        run_ok(&train_args(
            &spec,
            &run_s,
            &["--valid", &vspec, "--threshold", threshold],
        ));
        let threshold: f64 = std::fs::read_to_string(run.join("threshold.txt"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        TunedRun {
            tmp,
            spec,
            vspec,
            run,
            run_s,
            threshold,
        }
    }

    /// `genolm eval --json` of the run on its validation set, with `extra` options.
    fn eval(&self, extra: &[&str]) -> serde_json::Value {
        let mut args = vec![
            "eval",
            "--model",
            &self.run_s,
            "--data",
            &self.vspec,
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = run_ok(&args);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    }
}

#[test]
fn threshold_auto_is_chosen_on_validation_and_used_by_eval() {
    let tr = TunedRun::train("auto");
    let t = tr.threshold;
    let r = report(&tr.run);
    assert_eq!(r["threshold"].as_f64().unwrap(), t);
    assert_eq!(r["valid"]["threshold"].as_f64().unwrap(), t);
    let j = |m: &serde_json::Value| {
        m["recall"].as_f64().unwrap() + m["specificity"].as_f64().unwrap() - 1.0
    };
    let tuned = tr.eval(&[]);
    assert_eq!(tuned["threshold"].as_f64().unwrap(), t);
    let fixed = tr.eval(&["--threshold", "0.5"]);
    assert_eq!(fixed["threshold"].as_f64().unwrap(), 0.5);
    // On the data it was chosen on, the tuned threshold is at least as good as 0.5.
    assert!(j(&tuned) >= j(&fixed) - 1e-12, "{tuned} vs {fixed}");
    // The default run keeps 0.5.
    let plain = tr.tmp.path().join("plain");
    run_ok(&train_args(&tr.spec, &plain.to_string_lossy(), &[]));
    assert_eq!(report(&plain)["threshold"].as_f64().unwrap(), 0.5);
}

#[test]
fn threshold_sn_keeps_the_validation_sensitivity() {
    let tr = TunedRun::train("sn:0.95");
    let t = tr.threshold;
    let r = report(&tr.run);
    assert_eq!(r["valid"]["threshold"].as_f64().unwrap(), t);
    assert!(
        r["valid"]["recall"].as_f64().unwrap() >= 0.95,
        "{}",
        r["valid"]
    );
    let at = tr.eval(&[]);
    assert_eq!(at["threshold"].as_f64().unwrap(), t);
    assert!(at["recall"].as_f64().unwrap() >= 0.95, "{at}");
    // A sensitivity outside (0, 1]: exit code 2, with the reason.
    let o = genolm(&train_args(&tr.spec, &tr.run_s, &["--threshold", "sn:1.5"]));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`sn:X` needs a sensitivity X in (0, 1]"),
        "{err}"
    );
}

#[test]
fn nan_loss_stops_the_run_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = small_demo(tmp.path(), 40);
    let out = tmp.path().join("nan").to_string_lossy().to_string();
    // A learning rate of 1e30 sends the weights to infinity after one step.
    expect_error(
        &train_args(&spec, &out, &["--lr", "1e30", "--clip-norm", "0"]),
        "loss became",
    );
    assert!(!tmp.path().join("nan/report.json").exists());
}

#[test]
fn cross_validation_runs_each_fold_and_averages() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = small_demo(tmp.path(), 60);
    let out = tmp.path().join("cv");
    let out_s = out.to_string_lossy().to_string();
    run_ok(&train_args(&spec, &out_s, &["--cv", "3"]));
    let r = report(&out);
    let folds = r["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 3);
    // The test folds partition the 120 records.
    let n: u64 = folds.iter().map(|f| f["n_test"].as_u64().unwrap()).sum();
    assert_eq!(n, 120);
    for k in ["accuracy", "f1", "mcc", "auroc", "auprc"] {
        let mean = folds.iter().map(|f| f[k].as_f64().unwrap()).sum::<f64>() / 3.0;
        assert!((r[k].as_f64().unwrap() - mean).abs() < 1e-12, "{k}");
        assert!(r["sd"][k].as_f64().unwrap() >= 0.0);
    }
    for i in 1..=3 {
        assert!(out.join(format!("fold_{i}/model.safetensors")).exists());
    }
    // A bad K, or --cv with a test set, is an error.
    expect_error(&train_args(&spec, &out_s, &["--cv", "many"]), "--cv 'many'");
    expect_error(
        &train_args(&spec, &out_s, &["--cv", "3", "--test", &spec]),
        "--cv makes its own",
    );
}

#[test]
fn bad_configs_and_data_give_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = small_demo(tmp.path(), 20);
    let out = tmp.path().join("o").to_string_lossy().to_string();
    let mal = root().join("tests/malformed/classify");
    expect_error(
        &[
            "train",
            "--model",
            "resnet9000",
            "--train",
            &spec,
            "--out",
            &out,
        ],
        "resnet9000",
    );
    expect_error(
        &["train", "--task", "dance", "--train", &spec, "--out", &out],
        "dance",
    );
    expect_error(
        &[
            "train", "--train", &spec, "--out", &out, "--metric", "vibes",
        ],
        "vibes",
    );
    for f in std::fs::read_dir(&mal).unwrap() {
        let p = f.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("ok.") {
            continue;
        }
        let spec = if name.ends_with(".fa") {
            format!("a={},b={}", p.display(), mal.join("ok.fa").display())
        } else {
            p.display().to_string()
        };
        expect_error(&["train", "--train", &spec, "--out", &out], &name);
    }
    // Sequences too short for the baseline CNN's three conv + pool stages.
    let short = tmp.path().join("short.csv");
    let mut text = String::from("sequence,label\n");
    for i in 0..40 {
        text.push_str(&format!("ACGTACGTACGTACGTACGT,{}\n", i % 2));
    }
    std::fs::write(&short, text).unwrap();
    expect_error(
        &[
            "train",
            "--model",
            "gb-cnn",
            "--train",
            &short.to_string_lossy(),
            "--out",
            &out,
        ],
        "cannot take sequences of 20",
    );
    // Mixed lengths name the offending record.
    let mixed = tmp.path().join("mixed.csv");
    let mut text = String::from("name,sequence,label\n");
    for i in 0..40 {
        let s = if i == 17 { "ACGTACGT" } else { "ACGTACGTAC" };
        text.push_str(&format!("r{i},{s},{}\n", i % 2));
    }
    std::fs::write(&mixed, text).unwrap();
    expect_error(
        &[
            "train",
            "--model",
            "cnn",
            "--train",
            &mixed.to_string_lossy(),
            "--out",
            &out,
        ],
        "mixed.csv:19",
    );
    // A run directory that is not one.
    expect_error(
        &[
            "eval",
            "--model",
            &tmp.path().to_string_lossy(),
            "--data",
            &spec,
        ],
        "not a genolm run",
    );
}

/// Tiny settings for each long-range backbone, so a CPU test trains them in seconds.
const TINY: [(&str, &str); 6] = [
    (
        "transformer",
        "d_model = 16\nn_layer = 1\nn_heads = 2\nblock = 8\n",
    ),
    (
        "transformer-dense",
        "d_model = 16\nn_layer = 1\nn_heads = 2\ndense = true\n",
    ),
    ("mamba", "d_model = 16\nn_layer = 1\nd_state = 4\n"),
    (
        "caduceus",
        "d_model = 8\nn_layer = 1\nd_state = 4\nrc_equivariant = true\n",
    ),
    ("hyena", "d_model = 16\nn_layer = 1\nfilter_order = 16\n"),
    (
        "hyena",
        "d_model = 16\nn_layer = 1\nfilter_order = 16\nbidirectional = false\n",
    ),
];

#[test]
fn long_range_backbones_train_with_every_head_and_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = small_demo(tmp.path(), 40);
    let poolings = ["attention", "mean", "max", "flatten"];
    for (i, (model, toml)) in TINY.iter().enumerate() {
        let cfg = tmp.path().join(format!("m{i}.toml"));
        std::fs::write(&cfg, toml).unwrap();
        let cfg_s = cfg.to_string_lossy().to_string();
        let pooling = poolings[i % poolings.len()];
        let mut reports = Vec::new();
        // The Mamba run goes twice: same seed, same numbers.
        for rep in 0..if i == 2 { 2 } else { 1 } {
            let run = tmp.path().join(format!("run{i}_{rep}"));
            let run_s = run.to_string_lossy().to_string();
            let mut args = train_args(
                &spec,
                &run_s,
                &["--model-config", &cfg_s, "--pooling", pooling],
            );
            args[4] = model;
            args[10] = "1"; // one epoch
            run_ok(&args);
            let r = report(&run);
            let auroc = r["valid"]["auroc"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&auroc), "{model}: {r}");
            let stored = std::fs::read_to_string(run.join("config.toml")).unwrap();
            let kind = if model.starts_with("transformer") {
                "transformer"
            } else if *model == "caduceus" {
                "mamba"
            } else {
                model
            };
            assert!(stored.contains(&format!("kind = \"{kind}\"")), "{stored}");
            let o = run_ok(&["eval", "--model", &run_s, "--data", &spec, "--json"]);
            let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert!(m["accuracy"].as_f64().unwrap() > 0.0, "{m}");
            reports.push(r);
        }
        if reports.len() == 2 {
            assert_eq!(
                reports[0], reports[1],
                "{model}: same seed, different numbers"
            );
        }
    }
    // The RC-equivariant Mamba needs the character vocabulary: a k-mer tokenizer is a clear error.
    let cfg = tmp.path().join("m3.toml");
    let run = tmp.path().join("bad");
    let mut args = train_args(
        &spec,
        run.to_str().unwrap(),
        &[
            "--model-config",
            cfg.to_str().unwrap(),
            "--tokenizer",
            "kmer:3",
        ],
    );
    args[4] = "caduceus";
    expect_error(&args, "rc_equivariant needs the character vocabulary");
}

/// Run `genolm args` (a `predict`) and parse its output: (name, probabilities).
fn predicted(args: &[&str]) -> Vec<(String, Vec<f64>)> {
    String::from_utf8_lossy(&run_ok(args).stdout)
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split('\t');
            let name = f.next().unwrap().to_string();
            (name, f.map(|x| x.parse().unwrap()).collect())
        })
        .collect()
}

#[test]
fn several_run_directories_predict_and_evaluate_as_one_ensemble() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = small_demo(tmp.path(), 100);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (a_s, b_s) = (a.to_string_lossy(), b.to_string_lossy());
    for (d, seed) in [(&a_s, "1"), (&b_s, "2")] {
        let mut args = train_args(&spec, d, &[]);
        let i = args.iter().position(|x| *x == "11").unwrap();
        args[i] = seed;
        run_ok(&args);
    }
    // Every run directory holds its validation predictions.
    let valid = std::fs::read_to_string(a.join("valid_predictions.tsv")).unwrap();
    assert_eq!(
        valid.lines().next(),
        Some("name\tlabel\tp_distal\tp_proximal")
    );
    assert_eq!(valid.lines().count(), 1 + 20);
    let fa = spec.split(',').next().unwrap().split('=').nth(1).unwrap();
    let pa = predicted(&["predict", "--model", &a_s, fa]);
    let pb = predicted(&["predict", "--model", &b_s, fa]);
    let both = format!("{a_s},{b_s}");
    let pab = predicted(&["predict", "--model", &both, fa]);
    assert_eq!(pab.len(), 100);
    assert_ne!(pa, pb);
    for ((x, y), z) in pa.iter().zip(&pb).zip(&pab) {
        assert_eq!(x.0, z.0);
        for c in 0..2 {
            let mean = (x.1[c] + y.1[c]) / 2.0;
            assert!(
                (mean - z.1[c]).abs() < 1.5e-6,
                "{}: {mean} vs {}",
                z.0,
                z.1[c]
            );
        }
    }
    // Relative weights 1 : 3 give 0.25 × a + 0.75 × b.
    let weighted = predicted(&["predict", "--model", &both, "--weights", "1,3", fa]);
    for ((x, y), z) in pa.iter().zip(&pb).zip(&weighted) {
        for c in 0..2 {
            let want = 0.25 * x.1[c] + 0.75 * y.1[c];
            assert!(
                (want - z.1[c]).abs() < 1.5e-6,
                "{}: {want} vs {}",
                z.0,
                z.1[c]
            );
        }
    }
    let o = run_ok(&["eval", "--model", &both, "--data", &spec, "--json"]);
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m["threshold"].as_f64(), Some(0.5));
    let auroc = m["auroc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auroc));
    let o = run_ok(&[
        "eval",
        "--model",
        &both,
        "--weights",
        "1,3",
        "--data",
        &spec,
        "--json",
    ]);
    let mw: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_ne!(mw["auroc"], m["auroc"], "the weights changed nothing");
    for (w, needle) in [
        ("1", "1 weights for 2 run directories"),
        ("1,-2", "not a positive"),
    ] {
        expect_error(&["predict", "--model", &both, "--weights", w, fa], needle);
    }
    // A member with other classes: one line naming it, exit code 2.
    let c = tmp.path().join("c");
    std::fs::create_dir_all(&c).unwrap();
    for f in ["model.safetensors", "tokenizer.txt"] {
        std::fs::copy(a.join(f), c.join(f)).unwrap();
    }
    let cfg = std::fs::read_to_string(a.join("config.toml")).unwrap();
    assert!(cfg.contains("\"proximal\""), "{cfg}");
    std::fs::write(
        c.join("config.toml"),
        cfg.replace("\"proximal\"", "\"other\""),
    )
    .unwrap();
    let o = genolm(&["predict", "--model", &format!("{a_s},{}", c.display()), fa]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("classes") && err.contains(&c.display().to_string()),
        "{err}"
    );
}

#[test]
fn kmer_lr_trains_on_the_char_tokenizer_and_refuses_other_uses() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = small_demo(tmp.path(), 40);
    let cfg = tmp.path().join("k.toml");
    std::fs::write(&cfg, "k_max = 5\n").unwrap();
    let cfg_s = cfg.to_string_lossy().to_string();
    let mut reports = Vec::new();
    for rep in 0..2 {
        let run = tmp.path().join(format!("run{rep}"));
        let run_s = run.to_string_lossy().to_string();
        let mut args = train_args(&spec, &run_s, &["--model-config", &cfg_s]);
        args[4] = "kmer-lr";
        run_ok(&args);
        let stored = std::fs::read_to_string(run.join("config.toml")).unwrap();
        assert!(stored.contains("kind = \"kmer-lr\""), "{stored}");
        assert!(stored.contains("k_max = 5"), "{stored}");
        // 4 + 16 + 64 + 256 + 1024 spectrum features, two classes.
        let w = safetensors_shapes(&run.join("model.safetensors"));
        assert_eq!(w.get("head.out.weight"), Some(&vec![2, 1364]), "{w:?}");
        let o = run_ok(&["eval", "--model", &run_s, "--data", &spec, "--json"]);
        let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(m["auroc"].as_f64().unwrap() > 0.5, "{m}");
        reports.push(report(&run));
    }
    assert_eq!(reports[0], reports[1], "same seed, different numbers");
    // Another tokenizer, a per-base task, an impossible k: one line each, exit code 2.
    let bad = tmp.path().join("bad").to_string_lossy().to_string();
    let mut args = train_args(&spec, &bad, &["--tokenizer", "kmer:3"]);
    args[4] = "kmer-lr";
    expect_error(&args, "char tokenizer");
    let k0 = tmp.path().join("k0.toml");
    std::fs::write(&k0, "k_max = 0\n").unwrap();
    let mut args = train_args(&spec, &bad, &["--model-config", k0.to_str().unwrap()]);
    args[4] = "kmer-lr";
    expect_error(&args, "k_max must be 1 to 10");
}

/// Tensor names and shapes of a safetensors file (its JSON header).
fn safetensors_shapes(path: &Path) -> std::collections::HashMap<String, Vec<usize>> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let h: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    h.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let s = v["shape"].as_array().unwrap();
            (
                k.clone(),
                s.iter().map(|x| x.as_u64().unwrap() as usize).collect(),
            )
        })
        .collect()
}
