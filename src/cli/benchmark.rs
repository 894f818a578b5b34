//! `genolm benchmark promoters`: train and test on every promoter benchmark under its protocol
//! and report our numbers beside the published ones.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::data::classify::{promoter_benchmarks, BenchmarkSet, Protocol};
use crate::data::folds::{by_file, stratified_holdout, stratified_kfold, Split};
use crate::data::LabeledSet;
use crate::error::{Error, Result};
use crate::seq::SeqPolicy;
use crate::train::classify::{encode_set, predict, Metrics};
use crate::train::metrics::{mean_sd, summarise_folds};
use crate::train::run::load_run;

/// Arguments of `genolm benchmark`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which benchmark.
    #[command(subcommand)]
    pub which: Which,
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum Which {
    /// EPDnew human 300 bp (published folds), iPromoter-2L E. coli, and the CNNProm sets.
    #[command(
        after_help = "Examples:\n  genolm benchmark promoters --quick --out runs/bench-quick\n  genolm benchmark promoters --model cnn --train-args=\"--threshold auto\" --out runs/bench\n  genolm benchmark promoters --sets epdnew_human_300 --model gb-cnn --out runs/gb"
    )]
    Promoters(PromoterArgs),
}

/// Arguments of `genolm benchmark promoters`.
#[derive(Debug, clap::Args)]
pub struct PromoterArgs {
    /// Data directory (default: $GENOLM_DATA, then ../shared/data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Model (`cnn`, `gb-cnn`, `transformer`, `mamba`, `caduceus`, `hyena`).
    #[arg(long, default_value = "cnn")]
    pub model: String,
    /// Output directory (one run directory per set and fold, plus report.json and report.md).
    #[arg(long)]
    pub out: PathBuf,
    /// A reduced run in minutes: the first fold of each set, at most --max-train training
    /// examples (default 2000 with --quick), 2 epochs.
    #[arg(long)]
    pub quick: bool,
    /// Only these sets (comma-separated names; default: all available).
    #[arg(long, value_delimiter = ',')]
    pub sets: Vec<String>,
    /// Use at most this many folds per set.
    #[arg(long)]
    pub max_folds: Option<usize>,
    /// Subsample each training fold to at most this many examples (stratified, seeded).
    #[arg(long)]
    pub max_train: Option<usize>,
    /// Epochs per fold (default 10; 2 with --quick).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Extra `genolm train` options for every fold; use the `=` form since the value starts with
    /// `--`: `--train-args="--threshold auto --lr 2e-3"`.
    #[arg(long, default_value = "")]
    pub train_args: String,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Parser)]
struct TrainWrap {
    #[command(flatten)]
    a: crate::cli::train::Args,
}

/// Run `genolm benchmark`.
pub fn run(args: Args) -> Result<()> {
    match args.which {
        Which::Promoters(a) => promoters(&a).map(|_| ()),
    }
}

fn subsample(set: &LabeledSet, max: usize, seed: u64) -> LabeledSet {
    if set.len() <= max {
        return set.clone();
    }
    // Keep class proportions: shuffle each class and take its share.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut keep = Vec::new();
    for c in 0..set.num_classes() as u32 {
        let mut idx: Vec<usize> = (0..set.len()).filter(|&i| set.labels[i] == c).collect();
        idx.shuffle(&mut rng);
        let share = (idx.len() * max).div_ceil(set.len());
        keep.extend(idx.into_iter().take(share.max(1)));
    }
    keep.sort_unstable();
    set.subset(&keep)
}

fn splits(b: &BenchmarkSet, set: &LabeledSet, seed: u64) -> Result<Vec<Split>> {
    match &b.protocol {
        Protocol::GivenFolds => by_file(set),
        Protocol::KFold { k } | Protocol::KFoldWithTest { k, .. } => {
            stratified_kfold(&set.labels, *k, seed)
        }
    }
}

const FIGURES: [&str; 7] = [
    "accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "mcc",
    "auroc",
];

fn figure(m: &Value, k: &str) -> Option<f64> {
    match k {
        // Multi-class: macro-F1 stands in for F1.
        "f1" => m
            .get("f1")
            .or_else(|| m.get("macro_f1"))
            .and_then(Value::as_f64),
        _ => m.get(k).and_then(Value::as_f64),
    }
}

/// Run the promoter benchmarks; returns the report written to `out/report.json`.
pub fn promoters(a: &PromoterArgs) -> Result<Value> {
    let started = Instant::now();
    let data = crate::io::data_dir(a.data_dir.as_deref())
        .ok_or_else(|| Error::input("no data directory: pass --data-dir or set GENOLM_DATA"))?;
    let all = promoter_benchmarks(&data);
    for s in &a.sets {
        if !all.iter().any(|b| b.name == s) {
            let names: Vec<&str> = all.iter().map(|b| b.name).collect();
            return Err(Error::input(format!(
                "unknown benchmark set '{s}' (known: {})",
                names.join(", ")
            )));
        }
    }
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(a.out.display(), e))?;
    let max_folds = a.max_folds.unwrap_or(if a.quick { 1 } else { usize::MAX });
    let max_train = a.max_train.or(if a.quick { Some(2000) } else { None });
    let epochs = a.epochs.unwrap_or(if a.quick { 2 } else { 10 });
    let policy = SeqPolicy::default();
    let mut sets_out = Vec::new();
    for b in &all {
        if !a.sets.is_empty() && !a.sets.iter().any(|s| s == b.name) {
            continue;
        }
        if !b.available() {
            eprintln!(
                "SKIP {}: data files missing under {}",
                b.name,
                data.display()
            );
            sets_out.push(json!({"name": b.name, "skipped": "data files missing"}));
            continue;
        }
        let set = b.load(policy)?;
        let indep = b.load_test(&set, policy)?;
        let folds = splits(b, &set, a.seed)?;
        let mut fold_metrics = Vec::new();
        let mut indep_recall = Vec::new();
        for (fi, split) in folds.iter().enumerate().take(max_folds) {
            let (train_all, test) = set.split(split);
            let train_all = match max_train {
                Some(m) => subsample(&train_all, m, a.seed + fi as u64),
                None => train_all,
            };
            let hold = stratified_holdout(&train_all.labels, 0.1, a.seed + fi as u64)?;
            let (train, valid) = train_all.split(&hold);
            let dir = a.out.join(b.name).join(format!("fold_{}", fi + 1));
            let mut argv: Vec<String> = vec![
                "train".into(),
                "--train".into(),
                b.spec.clone(),
                "--out".into(),
                dir.display().to_string(),
                "--model".into(),
                a.model.clone(),
                "--epochs".into(),
                epochs.to_string(),
                "--seed".into(),
                a.seed.to_string(),
                "--quiet".into(),
            ];
            argv.extend(a.train_args.split_whitespace().map(String::from));
            let targs = TrainWrap::try_parse_from(&argv)
                .map_err(|e| {
                    Error::input(format!(
                        "--train-args: {}",
                        crate::error::one_line(&e.to_string())
                    ))
                })?
                .a;
            let t0 = Instant::now();
            let out = crate::cli::train::run_sets(&targs, &train, &valid, Some(&test))?;
            let mut m =
                serde_json::to_value(&out.metrics).map_err(|e| Error::Internal(e.to_string()))?;
            if let Some(ind) = &indep {
                let run = load_run(&dir)?;
                let enc = encode_set(ind, run.tokenizer.as_ref(), Some(run.config.model.seq_len))?;
                let probs = predict(&run.model, &enc, 256, run.config.train.rc_average)?;
                let r = Metrics::at(
                    &probs,
                    &enc.labels,
                    run.config.model.num_classes,
                    run.threshold,
                );
                let recall = serde_json::to_value(&r)
                    .ok()
                    .and_then(|v| figure(&v, "recall"))
                    .unwrap_or(0.0);
                indep_recall.push(recall);
                m["independent_recall"] = json!(recall);
            }
            m["seconds"] = json!(t0.elapsed().as_secs_f64());
            m["n_train"] = json!(train.len());
            m["n_test"] = json!(test.len());
            eprintln!(
                "{} fold {}: f1 {:.4} accuracy {:.4} auroc {:.4} ({:.0} s)",
                b.name,
                fi + 1,
                figure(&m, "f1").unwrap_or(0.0),
                figure(&m, "accuracy").unwrap_or(0.0),
                figure(&m, "auroc").unwrap_or(0.0),
                t0.elapsed().as_secs_f64()
            );
            fold_metrics.push(m);
        }
        let (mut mean, mut sd) = summarise_folds(&fold_metrics, &FIGURES, figure);
        if !indep_recall.is_empty() {
            let (mu, s) = mean_sd(&indep_recall);
            mean.insert("independent_recall".into(), json!(mu));
            sd.insert("independent_recall".into(), json!(s));
        }
        let published: Vec<Value> = b
            .published
            .iter()
            .map(|p| {
                json!({"method": p.method, "metric": p.metric, "value": p.value,
                       "spread": p.spread, "upper": p.upper, "note": p.note})
            })
            .collect();
        sets_out.push(json!({
            "name": b.name,
            "description": b.description,
            "protocol": format!("{:?}", b.protocol).split([' ', '{']).next().unwrap_or(""),
            "folds_run": fold_metrics.len(),
            "folds_total": folds.len(),
            "mean": mean,
            "sd": sd,
            "folds": fold_metrics,
            "published": published,
        }));
    }
    let report = json!({
        "benchmark": "promoters",
        "model": a.model,
        "quick": a.quick,
        "epochs": epochs,
        "max_train": max_train,
        "seed": a.seed,
        "train_args": a.train_args,
        "data_dir": data.display().to_string(),
        "seconds": started.elapsed().as_secs_f64(),
        "sets": sets_out,
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
    crate::train::run::write_text(&a.out, "report.json", &(text + "\n"))?;
    crate::train::run::write_text(&a.out, "report.md", &markdown(&report))?;
    println!("{}", markdown(&report));
    Ok(report)
}

/// Render the benchmark report as a Markdown table with the published numbers beside ours.
pub fn markdown(r: &Value) -> String {
    let extra = r["train_args"].as_str().unwrap_or("").trim();
    let mut s = format!(
        "# Promoter benchmarks: genolm {} ({}{} epochs, seed {}{})\n\n",
        r["model"].as_str().unwrap_or(""),
        if r["quick"].as_bool().unwrap_or(false) {
            "quick run, "
        } else {
            ""
        },
        r["epochs"],
        r["seed"],
        if extra.is_empty() {
            String::new()
        } else {
            format!(", train options `{extra}`")
        }
    );
    s.push_str("| set | folds | accuracy | F1 | MCC | AUROC | Sn (recall) | Sp | published |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for set in r["sets"].as_array().into_iter().flatten() {
        let name = set["name"].as_str().unwrap_or("");
        if set.get("skipped").is_some() {
            s.push_str(&format!(
                "| {name} | skipped: data missing | | | | | | | |\n"
            ));
            continue;
        }
        let cell = |k: &str| match (set["mean"].get(k), set["sd"].get(k)) {
            (Some(m), Some(d)) => format!(
                "{:.4} ± {:.4}",
                m.as_f64().unwrap_or(0.0),
                d.as_f64().unwrap_or(0.0)
            ),
            _ => "-".into(),
        };
        let published: Vec<String> = set["published"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let v = p["value"].as_f64().unwrap_or(0.0);
                let spread = p["spread"]
                    .as_f64()
                    .map_or(String::new(), |x| format!(" ± {x:.4}"));
                let upper = p["upper"]
                    .as_f64()
                    .map_or(String::new(), |x| format!("–{x:.4}"));
                format!(
                    "{} {} {v:.4}{upper}{spread}",
                    p["method"].as_str().unwrap_or(""),
                    p["metric"].as_str().unwrap_or("")
                )
            })
            .collect();
        let mut recall = cell("recall");
        if set["mean"].get("independent_recall").is_some() {
            recall.push_str(&format!(
                " (independent set: {})",
                cell("independent_recall")
            ));
        }
        s.push_str(&format!(
            "| {name} | {}/{} | {} | {} | {} | {} | {} | {} | {} |\n",
            set["folds_run"],
            set["folds_total"],
            cell("accuracy"),
            cell("f1"),
            cell("mcc"),
            cell("auroc"),
            recall,
            cell("specificity"),
            published.join("; ")
        ));
    }
    s.push_str(&format!(
        "\nTotal time {:.0} s. Multi-class sets report macro-F1 in the F1 column.\n",
        r["seconds"].as_f64().unwrap_or(0.0)
    ));
    s
}
