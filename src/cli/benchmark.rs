//! `genolm benchmark promoters`: train and test on every promoter benchmark under its protocol
//! and report our numbers beside the published ones.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::cli::train::Outcome;
use crate::data::classify::{promoter_benchmarks, BenchmarkSet, Protocol};
use crate::data::folds::{by_file, given_folds, stratified_holdout, stratified_kfold, Split};
use crate::data::homology::{self, ClusterStats, Params};
use crate::data::split::deal_groups;
use crate::data::LabeledSet;
use crate::error::{Error, Result};
use crate::seq::SeqPolicy;
use crate::train::classify::{tuned_threshold, Metrics};
use crate::train::metrics::{mean_sd, summarise_folds};
use crate::train::run::{mean_probs, weighted_mean_probs, Ensemble};

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
        after_help = "Examples:\n  genolm benchmark promoters --quick --out runs/bench-quick\n  genolm benchmark promoters --model cnn --train-args=\"--threshold auto\" --out runs/bench\n  genolm benchmark promoters --sets epdnew_human_300 --model gb-cnn --out runs/gb\n  genolm benchmark promoters --sets epdnew_human_300 --model mamba --folds 3,4,5 --max-train 6000 --epochs 3 --out runs/mamba-345\n  genolm benchmark promoters --quick --split homology --identity 0.8 --model gb-cnn --out runs/hom"
    )]
    Promoters(PromoterArgs),
}

/// Arguments of `genolm benchmark promoters`.
#[derive(Debug, clap::Args)]
pub struct PromoterArgs {
    /// Data directory (default: $GENOLM_DATA, then ../shared/data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Model (`cnn`, `gb-cnn`, `transformer`, `mamba`, `caduceus`, `hyena`, `kmer-lr`; default `cnn`, or
    /// the backbone of `--train-args="--init RUN_DIR"`).
    #[arg(long)]
    pub model: Option<String>,
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
    /// Only these folds of each set (1-based, comma-separated), for example to finish a
    /// five-fold run in pieces: `--folds 3,4,5`.
    #[arg(long, value_delimiter = ',')]
    pub folds: Vec<usize>,
    /// Subsample each training fold to at most this many examples (stratified, seeded).
    #[arg(long)]
    pub max_train: Option<usize>,
    /// Epochs per fold (default 10; 2 with --quick).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Extra `genolm train` options for every fold; use the `=` form since the value starts with
    /// `--`: `--train-args="--threshold auto --lr 2e-3"`. The benchmark gives each fold's data, `--out`,
    /// `--epochs` and `--seed` (and `--model` when set) itself: naming those, `--valid`, `--test`,
    /// `--cv` or a `--task` other than classify here is an error. `--valid-fraction` sets the
    /// validation holdout of each training fold (default 0.1).
    #[arg(long, default_value = "")]
    pub train_args: String,
    /// Seed (of the folds, the validation holdouts and the first ensemble member).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train N models per fold with training seeds seed, seed+1, ... on the same split
    /// (`fold_i/member_k`) and score the mean of their class probabilities; the threshold of
    /// `--threshold auto` is chosen on the mean validation probabilities. The fold also reports
    /// the members' mean figures.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub ensemble: usize,
    /// Blend one more model into every fold: `MODEL:WEIGHT` (for example `kmer-lr:0.5`) trains
    /// MODEL once per fold on the same split and validation holdout (seed --seed, in
    /// `fold_i/blend`, with --train-args then --blend-args) and scores (1 − WEIGHT) × the
    /// ensemble's mean probabilities + WEIGHT × its own; `--threshold auto` is chosen on the
    /// blended validation probabilities. `MODEL:auto` chooses WEIGHT per fold on the validation
    /// holdout (0, 0.1, …, 1: highest AUROC for two classes, else highest mean log-likelihood;
    /// ties to the smaller). The fold also reports the blend model's own figures and the weight.
    #[arg(long, value_name = "MODEL:WEIGHT")]
    pub blend: Option<String>,
    /// Extra `genolm train` options for the --blend model only (after --train-args).
    #[arg(long, default_value = "")]
    pub blend_args: String,
    /// `published`: each set's protocol (given folds, or seeded stratified k-fold CV).
    /// `homology`: also re-split each set by homology (clusters at --identity dealt whole to k
    /// class-balanced folds, k and so the test fraction as in the protocol) and report both
    /// side by side, with each split's train/test leakage.
    #[arg(long, value_enum, default_value = "published")]
    pub split: SplitMode,
    /// Identity threshold for `--split homology` (clusters and the leakage counts).
    #[arg(long, default_value_t = 0.8)]
    pub identity: f64,
}

/// How `genolm benchmark promoters` splits each set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitMode {
    /// The set's published protocol only.
    Published,
    /// The published protocol and a homology-aware re-split, side by side.
    Homology,
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

/// Homology-aware folds of a set: single-linkage clusters at `params.identity` dealt whole to
/// `k` class-balanced folds. Returns the splits and the clustering statistics.
///
/// Each fold is then checked as a test set against the other folds ([`homology::leakage`]
/// indexes the training side alone, so a k-mer that `max_occ` hid from the all-against-all
/// search can still find a pair). The clusters of every test record and its train neighbour at
/// the identity are merged and the folds dealt again, until no fold leaks (at most 10 rounds).
pub fn homology_folds(
    set: &LabeledSet,
    k: usize,
    params: &Params,
    seed: u64,
) -> Result<(Vec<Split>, ClusterStats)> {
    let seqs: Vec<&[u8]> = set.seqs.iter().map(|s| s.as_slice()).collect();
    homology::check_lengths(&set.names, &seqs, &set.source)?;
    let (mut clusters, mut stats) = homology::cluster(&seqs, params)?;
    let start = Instant::now();
    // Records joined by cluster; the fold check adds the links it finds.
    let mut uf = homology::UnionFind::new(clusters.len());
    let mut first_of = vec![usize::MAX; stats.clusters];
    for (i, &c) in clusters.iter().enumerate() {
        if first_of[c] == usize::MAX {
            first_of[c] = i;
        }
        uf.union(first_of[c], i);
    }
    let mut round = 0;
    loop {
        let fold_of = deal_groups(&clusters, &set.labels, &vec![1.0 / k as f64; k], seed);
        let ids: Vec<u32> = fold_of.iter().map(|&f| f as u32).collect();
        let splits = given_folds(&ids)?;
        if splits.len() != k {
            return Err(Error::input(format!(
                "{}: only {} folds could be filled from the homology clusters at identity {}; cannot make {k} folds",
                set.source,
                splits.len(),
                params.identity
            )));
        }
        let mut merged = 0u64;
        for s in &splits {
            let pick = |idx: &[usize]| -> (Vec<String>, Vec<&[u8]>) {
                idx.iter().map(|&i| (set.names[i].clone(), seqs[i])).unzip()
            };
            let (train_names, train) = pick(&s.train);
            let (test_names, test) = pick(&s.test);
            let l = homology::leakage(&train_names, &train, &test_names, &test, params)?;
            for (row, &t) in l.rows.iter().zip(&s.test) {
                if let (true, Some(r)) =
                    (row.best_identity >= params.identity, row.best_train_index)
                {
                    if uf.union(t, s.train[r]) {
                        merged += 1;
                    }
                }
            }
        }
        if merged == 0 || round == 10 {
            stats.seconds += start.elapsed().as_secs_f64();
            return Ok((splits, stats));
        }
        clusters = uf.cluster_ids();
        stats.count_clusters(&clusters);
        stats.merged_by_check += merged;
        round += 1;
    }
}

/// Test sequences of `test` with a training neighbour at `identity` or above in `train`.
fn leak(train: &LabeledSet, test: &LabeledSet, identity: f64) -> Result<Value> {
    let params = Params {
        identity,
        ..Params::default()
    };
    let tr: Vec<&[u8]> = train.seqs.iter().map(|s| s.as_slice()).collect();
    let te: Vec<&[u8]> = test.seqs.iter().map(|s| s.as_slice()).collect();
    let l = homology::leakage(&train.names, &tr, &test.names, &te, &params)?;
    let at = |x: f64| {
        l.levels
            .iter()
            .find(|v| (v.identity - x).abs() < 1e-12)
            .map_or(0, |v| v.count)
    };
    let n = at(identity);
    Ok(
        json!({"identity": identity, "count": n, "fraction": n as f64 / test.len().max(1) as f64,
              "count_95": at(0.95), "seconds": l.seconds}),
    )
}

/// One split protocol of one set: where its folds go and what to measure besides the model.
struct FoldPlan<'a> {
    /// Folds (train / test record indices).
    folds: &'a [Split],
    /// Subdirectory of `--out` for the fold run directories.
    dir: PathBuf,
    /// Identity for the leakage count of each fold (`None`: not measured).
    leak_identity: Option<f64>,
}

/// Train and test every fold of `p` (up to `max_folds`); returns the per-fold metrics and the
/// independent-set recalls.
#[allow(clippy::too_many_arguments)]
fn run_folds(
    a: &PromoterArgs,
    b: &BenchmarkSet,
    set: &LabeledSet,
    indep: Option<&LabeledSet>,
    p: &FoldPlan,
    max_folds: usize,
    max_train: Option<usize>,
    epochs: usize,
    blend: Option<&(String, Option<f64>)>,
) -> Result<(Vec<Value>, Vec<f64>)> {
    let mut fold_metrics = Vec::new();
    let mut indep_recall = Vec::new();
    if let Some(&bad) = a.folds.iter().find(|&&f| f == 0 || f > p.folds.len()) {
        return Err(Error::input(format!(
            "--folds: {} has folds 1 to {}, not {bad}",
            b.name,
            p.folds.len()
        )));
    }
    let wanted = |fi: usize| {
        if a.folds.is_empty() {
            fi < max_folds
        } else {
            a.folds.contains(&(fi + 1))
        }
    };
    for (fi, split) in p.folds.iter().enumerate().filter(|&(fi, _)| wanted(fi)) {
        let (train_all, test) = set.split(split);
        let leakage = match p.leak_identity {
            Some(id) => Some(leak(&train_all, &test, id)?),
            None => None,
        };
        let train_all = match max_train {
            Some(m) => subsample(&train_all, m, a.seed + fi as u64),
            None => train_all,
        };
        let dir = p.dir.join(format!("fold_{}", fi + 1));
        let t0 = Instant::now();
        let members = a.ensemble;
        let member_dirs: Vec<PathBuf> = (1..=members)
            .map(|k| {
                if members == 1 && blend.is_none() {
                    dir.clone()
                } else {
                    dir.join(format!("member_{k}"))
                }
            })
            .collect();
        let targs = member_dirs
            .iter()
            .enumerate()
            .map(|(k, mdir)| train_args(a, b, mdir, epochs, a.seed + k as u64, None))
            .collect::<Result<Vec<_>>>()?;
        // The blend model's options are checked too before any member trains.
        let blend_dir = dir.join("blend");
        let blend_run = match blend {
            Some((model, w)) => Some((
                train_args(a, b, &blend_dir, epochs, a.seed, Some(model))?,
                *w,
            )),
            None => None,
        };
        // Early stopping and the threshold use a stratified holdout of the training fold
        // (`--valid-fraction`, default 0.1, from --train-args), the same for every member.
        let hold = stratified_holdout(
            &train_all.labels,
            targs[0].valid_fraction,
            a.seed + fi as u64,
        )?;
        let (train, valid) = train_all.split(&hold);
        let outs = targs
            .iter()
            .map(|t| crate::cli::train::run_sets(t, &train, &valid, Some(&test)))
            .collect::<Result<Vec<_>>>()?;
        let first = &outs[0];
        let nc = set.num_classes();
        let mean_of = |f: fn(&Outcome) -> &Vec<Vec<f32>>| {
            if members == 1 {
                f(first).clone()
            } else {
                mean_probs(&outs.iter().map(f).collect::<Vec<_>>())
            }
        };
        let mut vp = mean_of(|o| &o.valid_probs);
        let mut tp = mean_of(|o| &o.test_probs);
        let blended = match blend_run {
            Some((t, w)) => {
                let o = crate::cli::train::run_sets(&t, &train, &valid, Some(&test))?;
                let w = w.unwrap_or_else(|| blend_weight(&vp, &o.valid_probs, &valid.labels));
                vp = weighted_mean_probs(&[&vp[..], &o.valid_probs[..]], &[1.0 - w, w]);
                tp = weighted_mean_probs(&[&tp[..], &o.test_probs[..]], &[1.0 - w, w]);
                Some((o, w))
            }
            None => None,
        };
        let (mut m, threshold) = if members == 1 && blended.is_none() {
            let m =
                serde_json::to_value(&first.metrics).map_err(|e| Error::Internal(e.to_string()))?;
            (m, first.threshold)
        } else {
            // The members' options differ only in their seed and directory.
            let threshold = targs[0]
                .options()
                .decision_threshold(nc, &vp, &valid.labels);
            crate::cli::train::write_predictions(&dir, "test_predictions.tsv", &test, &tp)?;
            crate::cli::train::write_predictions(&dir, "valid_predictions.tsv", &valid, &vp)?;
            let mut m = serde_json::to_value(Metrics::at(&tp, &test.labels, nc, threshold))
                .map_err(|e| Error::Internal(e.to_string()))?;
            let vm = Metrics::at(&vp, &valid.labels, nc, threshold);
            m["valid"] = serde_json::to_value(&vm).map_err(|e| Error::Internal(e.to_string()))?;
            let member_figs: Vec<Value> = outs
                .iter()
                .map(|o| serde_json::to_value(&o.metrics).unwrap_or(Value::Null))
                .collect();
            let (mean, _) = summarise_folds(&member_figs, &FIGURES, figure);
            m["ensemble"] = json!(members);
            m["members"] = Value::Object(mean);
            if let Some((o, w)) = &blended {
                let mut bm =
                    serde_json::to_value(&o.metrics).map_err(|e| Error::Internal(e.to_string()))?;
                bm["weight"] = json!(w);
                bm["model"] = o.report["model"].clone();
                m["blend"] = bm;
            }
            (m, threshold)
        };
        if let Some(at) = at_published_sn(b, &vp, &valid.labels, &tp, &test.labels, nc) {
            m["at_published_sn"] = at;
        }
        if let Some(ind) = indep {
            let mp = match &blended {
                // The members share 1 − w, the blend model has w (a zero weight drops its side).
                Some((_, w)) => {
                    let (dirs, ws): (Vec<PathBuf>, Vec<f64>) = member_dirs
                        .iter()
                        .map(|d| (d.clone(), (1.0 - w) / members as f64))
                        .chain([(blend_dir.clone(), *w)])
                        .filter(|(_, x)| *x > 0.0)
                        .unzip();
                    Ensemble::load(&dirs, &ws)?
                }
                None => Ensemble::load(&member_dirs, &[])?,
            }
            .predict(ind, None)?;
            let r = Metrics::at(&mp, &ind.labels, nc, threshold);
            let recall = serde_json::to_value(&r)
                .ok()
                .and_then(|v| figure(&v, "recall"))
                .unwrap_or(0.0);
            indep_recall.push(recall);
            m["independent_recall"] = json!(recall);
        }
        m["seconds"] = json!(t0.elapsed().as_secs_f64());
        m["fold"] = json!(fi + 1);
        m["n_train"] = json!(train.len());
        m["n_test"] = json!(test.len());
        m["model"] = first.report["model"].clone();
        if let Some(l) = leakage {
            m["leakage"] = l;
        }
        eprintln!(
            "{} fold {}: f1 {:.4} accuracy {:.4} auroc {:.4} ({:.0} s)",
            p.dir.display(),
            fi + 1,
            figure(&m, "f1").unwrap_or(0.0),
            figure(&m, "accuracy").unwrap_or(0.0),
            figure(&m, "auroc").unwrap_or(0.0),
            t0.elapsed().as_secs_f64()
        );
        fold_metrics.push(m);
    }
    Ok((fold_metrics, indep_recall))
}

/// Test sensitivity and specificity at the set's published sensitivity, if it has one: the
/// threshold is the highest that keeps the validation sensitivity at the published figure, so
/// both methods are compared at one operating point (two classes only).
fn at_published_sn(
    b: &BenchmarkSet,
    valid_probs: &[Vec<f32>],
    valid_labels: &[u32],
    test_probs: &[Vec<f32>],
    test_labels: &[u32],
    num_classes: usize,
) -> Option<Value> {
    let sn = b.published.iter().find(|p| p.metric == "recall")?.value;
    if num_classes != 2 {
        return None;
    }
    let t = tuned_threshold(valid_probs, valid_labels, Some(sn));
    let at = serde_json::to_value(Metrics::at(test_probs, test_labels, num_classes, t)).ok()?;
    Some(json!({
        "target_recall": sn,
        "threshold": t,
        "recall": figure(&at, "recall")?,
        "specificity": figure(&at, "specificity")?,
    }))
}

/// `--blend MODEL:WEIGHT` parsed: the model name (checked) and a weight in (0, 1], or `None`
/// for `auto` (chosen per fold on validation, see [`blend_weight`]).
pub fn parse_blend(spec: &str) -> Result<(String, Option<f64>)> {
    let bad = || {
        Error::input(format!(
            "--blend '{spec}': expected MODEL:WEIGHT with WEIGHT in (0, 1] or auto, e.g. kmer-lr:0.5"
        ))
    };
    let (model, w) = spec.rsplit_once(':').ok_or_else(bad)?;
    let w = match w.trim() {
        "auto" => None,
        x => {
            let w: f64 = x.parse().map_err(|_| bad())?;
            if !(w > 0.0 && w <= 1.0) {
                return Err(bad());
            }
            Some(w)
        }
    };
    crate::models::BackboneConfig::by_name(model.trim()).map_err(|e| {
        Error::input(format!(
            "--blend: {}",
            crate::error::one_line(&e.to_string())
        ))
    })?;
    Ok((model.trim().to_string(), w))
}

/// The blend weight of `--blend MODEL:auto`: of 0, 0.1, …, 1, the one whose mix
/// `(1 − w) × ensemble + w × blend` scores best on the validation labels (AUROC of the last class
/// for two classes, else the mean log-likelihood of the true class); ties go to the smaller.
pub fn blend_weight(ensemble: &[Vec<f32>], blend: &[Vec<f32>], labels: &[u32]) -> f64 {
    let score = |w: f64| {
        let p = weighted_mean_probs(&[ensemble, blend], &[1.0 - w, w]);
        if p.first().is_some_and(|r| r.len() == 2) {
            let s: Vec<f64> = p.iter().map(|r| r[1] as f64).collect();
            crate::train::metrics::auroc(&s, labels)
        } else {
            p.iter()
                .zip(labels)
                .map(|(r, &y)| (r[y as usize] as f64).max(1e-12).ln())
                .sum::<f64>()
                / labels.len().max(1) as f64
        }
    };
    let mut best = (0.0, f64::NEG_INFINITY);
    for i in 0..=10 {
        let w = i as f64 / 10.0;
        let sc = score(w);
        if sc > best.1 + 1e-12 {
            best = (w, sc);
        }
    }
    best.0
}

/// The arguments of one `genolm train` run of a fold: the ensemble's model (`--model`), or
/// `blend_model` with `--blend-args` after `--train-args`.
fn train_args(
    a: &PromoterArgs,
    b: &BenchmarkSet,
    dir: &std::path::Path,
    epochs: usize,
    seed: u64,
    blend_model: Option<&str>,
) -> Result<crate::cli::train::Args> {
    let mut argv: Vec<String> = vec![
        "train".into(),
        "--train".into(),
        b.spec.clone(),
        "--out".into(),
        dir.display().to_string(),
        "--epochs".into(),
        epochs.to_string(),
        "--seed".into(),
        seed.to_string(),
        "--quiet".into(),
    ];
    if let Some(m) = blend_model.or(a.model.as_deref()) {
        argv.extend(["--model".into(), m.to_string()]);
    }
    argv.extend(a.train_args.split_whitespace().map(String::from));
    let what = if blend_model.is_some() {
        argv.extend(a.blend_args.split_whitespace().map(String::from));
        "--train-args with --blend-args"
    } else {
        "--train-args"
    };
    let t = TrainWrap::try_parse_from(&argv)
        .map_err(|e| {
            Error::input(format!(
                "{what}: {}",
                crate::error::one_line(&e.to_string())
            ))
        })?
        .a;
    if t.valid.is_some() || t.test.is_some() || t.cv.is_some() {
        return Err(Error::input(format!(
            "{what}: --valid, --test and --cv are not taken: the benchmark splits each set itself"
        )));
    }
    if t.task != "classify" {
        return Err(Error::input(format!(
            "{what}: --task {}: the promoter benchmark is classification only",
            t.task
        )));
    }
    Ok(t)
}

/// Mean and sd over folds (with the independent recall and the leakage fraction, if any).
fn summarise(fold_metrics: &[Value], indep_recall: &[f64]) -> (Value, Value) {
    let (mut mean, mut sd) = summarise_folds(fold_metrics, &FIGURES, figure);
    if !indep_recall.is_empty() {
        let (mu, s) = mean_sd(indep_recall);
        mean.insert("independent_recall".into(), json!(mu));
        sd.insert("independent_recall".into(), json!(s));
    }
    let at: Vec<Value> = fold_metrics
        .iter()
        .filter_map(|m| m.get("at_published_sn").cloned())
        .collect();
    let (at_mean, at_sd) = summarise_folds(&at, &["recall", "specificity"], figure);
    for (k, v) in at_mean {
        mean.insert(format!("at_published_sn_{k}"), v);
    }
    for (k, v) in at_sd {
        sd.insert(format!("at_published_sn_{k}"), v);
    }
    let leaks: Vec<f64> = fold_metrics
        .iter()
        .filter_map(|m| m["leakage"]["fraction"].as_f64())
        .collect();
    if !leaks.is_empty() {
        let (mu, s) = mean_sd(&leaks);
        mean.insert("leakage_fraction".into(), json!(mu));
        sd.insert("leakage_fraction".into(), json!(s));
    }
    (Value::Object(mean), Value::Object(sd))
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
    let homology = a.split == SplitMode::Homology;
    if homology {
        Params {
            identity: a.identity,
            ..Params::default()
        }
        .validate()?;
    }
    if a.ensemble == 0 {
        return Err(Error::input("--ensemble: need at least one model per fold"));
    }
    let blend = a.blend.as_deref().map(parse_blend).transpose()?;
    if blend.is_none() && !a.blend_args.trim().is_empty() {
        return Err(Error::input("--blend-args: only with --blend"));
    }
    if !a.folds.is_empty() && (a.max_folds.is_some() || a.quick) {
        return Err(Error::input(
            "--folds names the folds to run; it cannot be combined with --max-folds or --quick",
        ));
    }
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(a.out.display(), e))?;
    let max_folds = a.max_folds.unwrap_or(if a.quick { 1 } else { usize::MAX });
    let max_train = a.max_train.or(if a.quick { Some(2000) } else { None });
    let epochs = a.epochs.unwrap_or(if a.quick { 2 } else { 10 });
    let policy = SeqPolicy::default();
    let mut sets_out = Vec::new();
    let mut model_name: Option<String> = a.model.clone();
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
        let published_protocol = FoldPlan {
            folds: &folds,
            dir: a.out.join(b.name),
            leak_identity: homology.then_some(a.identity),
        };
        let (fold_metrics, indep_recall) = run_folds(
            a,
            b,
            &set,
            indep.as_ref(),
            &published_protocol,
            max_folds,
            max_train,
            epochs,
            blend.as_ref(),
        )?;
        if model_name.is_none() {
            model_name = fold_metrics
                .first()
                .and_then(|m| m["model"].as_str())
                .map(String::from);
        }
        let (mean, sd) = summarise(&fold_metrics, &indep_recall);
        // Mean over folds of a per-fold figure block (`members`, `blend`), when the folds have it.
        let fold_mean = |key: &str| {
            let figs: Vec<Value> = fold_metrics
                .iter()
                .filter_map(|m| m.get(key).cloned())
                .collect();
            (!figs.is_empty()).then(|| Value::Object(summarise_folds(&figs, &FIGURES, figure).0))
        };
        let members_mean = fold_mean("members");
        let blend_mean = fold_mean("blend");
        let published: Vec<Value> = b
            .published
            .iter()
            .map(|p| {
                json!({"method": p.method, "metric": p.metric, "value": p.value,
                       "spread": p.spread, "upper": p.upper, "note": p.note})
            })
            .collect();
        let mut entry = json!({
            "name": b.name,
            "description": b.description,
            "protocol": format!("{:?}", b.protocol).split([' ', '{']).next().unwrap_or(""),
            "folds_run": fold_metrics.len(),
            "folds_total": folds.len(),
            "mean": mean,
            "sd": sd,
            "folds": fold_metrics,
            "published": published,
        });
        if let Some(mm) = members_mean {
            entry["members_mean"] = mm;
        }
        if let Some(bm) = blend_mean {
            entry["blend_mean"] = bm;
        }
        if homology {
            let params = Params {
                identity: a.identity,
                ..Params::default()
            };
            let (hfolds, stats) = homology_folds(&set, folds.len(), &params, a.seed)?;
            eprintln!(
                "{}: {} sequences in {} clusters at identity {} (largest {}; {} merged by the fold check; {:.1} s)",
                b.name,
                stats.sequences,
                stats.clusters,
                a.identity,
                stats.largest_cluster,
                stats.merged_by_check,
                stats.seconds
            );
            let p = FoldPlan {
                folds: &hfolds,
                dir: a.out.join(b.name).join("homology"),
                leak_identity: Some(a.identity),
            };
            let (hm, hr) = run_folds(
                a,
                b,
                &set,
                indep.as_ref(),
                &p,
                max_folds,
                max_train,
                epochs,
                blend.as_ref(),
            )?;
            let (mean, sd) = summarise(&hm, &hr);
            entry["homology"] = json!({
                "identity": a.identity,
                "clusters": stats,
                "folds_run": hm.len(),
                "folds_total": hfolds.len(),
                "mean": mean,
                "sd": sd,
                "folds": hm,
            });
        }
        sets_out.push(entry);
    }
    let report = json!({
        "benchmark": "promoters",
        "model": model_name.unwrap_or_else(|| "cnn".into()),
        "quick": a.quick,
        "epochs": epochs,
        "max_train": max_train,
        "seed": a.seed,
        "ensemble": a.ensemble,
        "blend": a.blend,
        "blend_args": a.blend_args,
        "train_args": a.train_args,
        "split": if homology { "published+homology" } else { "published" },
        "identity": if homology { json!(a.identity) } else { Value::Null },
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
        "# Promoter benchmarks: genolm {}{} ({}{} epochs, seed {}{})\n\n",
        r["model"].as_str().unwrap_or(""),
        match (r["ensemble"].as_u64(), r["blend"].as_str()) {
            (Some(n), Some(bl)) if n > 1 => {
                format!(", ensemble of {n} seeds per fold blended with {bl}")
            }
            (_, Some(bl)) => format!(" blended with {bl}"),
            (Some(n), None) if n > 1 => format!(", ensemble of {n} seeds per fold"),
            _ => String::new(),
        },
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
    s.push_str(&published_sn_markdown(r));
    let parts = [
        (
            "members_mean",
            "The ensemble's members alone (mean over members, then over folds)",
            r["ensemble"].as_u64().is_some_and(|n| n > 1) || r["blend"].is_string(),
        ),
        (
            "blend_mean",
            "The blend model alone (mean over folds)",
            r["blend"].is_string(),
        ),
    ];
    for (key, title, shown) in parts {
        if !shown {
            continue;
        }
        s.push_str(&format!("\n{title}:\n\n"));
        s.push_str("| set | accuracy | F1 | MCC | AUROC | Sn (recall) | Sp |\n|---|---|---|---|---|---|---|\n");
        for set in r["sets"].as_array().into_iter().flatten() {
            let Some(mm) = set.get(key) else {
                continue;
            };
            let f = |k: &str| {
                mm.get(k)
                    .and_then(Value::as_f64)
                    .map_or("-".into(), |v| format!("{v:.4}"))
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                set["name"].as_str().unwrap_or(""),
                f("accuracy"),
                f("f1"),
                f("mcc"),
                f("auroc"),
                f("recall"),
                f("specificity")
            ));
        }
    }
    if r["split"].as_str() == Some("published+homology") {
        s.push_str(&homology_markdown(r));
    }
    s.push_str(&format!(
        "\nTotal time {:.0} s. Multi-class sets report macro-F1 in the F1 column.\n",
        r["seconds"].as_f64().unwrap_or(0.0)
    ));
    s
}

/// The table of test figures at the published sensitivity (empty when no set has one).
fn published_sn_markdown(r: &Value) -> String {
    let mut rows = String::new();
    for set in r["sets"].as_array().into_iter().flatten() {
        let mean = &set["mean"];
        let (Some(sn), Some(sp)) = (
            mean["at_published_sn_recall"].as_f64(),
            mean["at_published_sn_specificity"].as_f64(),
        ) else {
            continue;
        };
        let published = |k: &str| {
            set["published"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["metric"].as_str() == Some(k))
                .and_then(|p| p["value"].as_f64())
                .map_or("-".into(), |v| format!("{v:.2}"))
        };
        rows.push_str(&format!(
            "| {} | {sn:.4} | {sp:.4} | {} / {} |\n",
            set["name"].as_str().unwrap_or(""),
            published("recall"),
            published("specificity")
        ));
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "\nAt the published sensitivity (per fold, the highest threshold that keeps the validation \
         sensitivity at the published figure; test means):\n\n| set | Sn | Sp | published Sn / Sp \
         |\n|---|---|---|---|\n{rows}"
    )
}

/// The side-by-side table of published-split and homology-split numbers.
fn homology_markdown(r: &Value) -> String {
    let id = r["identity"].as_f64().unwrap_or(0.8);
    let pct = id * 100.0;
    let mut s = format!(
        "\n## Published split vs homology split (clusters at {pct:.0} % identity dealt whole to \
         the folds)\n\n| set | split | folds | test with a ≥ {pct:.0} % train neighbour | \
         accuracy | F1 | MCC | AUROC |\n|---|---|---|---|---|---|---|---|\n"
    );
    for set in r["sets"].as_array().into_iter().flatten() {
        let name = set["name"].as_str().unwrap_or("");
        if set.get("skipped").is_some() {
            continue;
        }
        for (label, part) in [("published", set), ("homology", &set["homology"])] {
            let cell = |k: &str| match (part["mean"].get(k), part["sd"].get(k)) {
                (Some(m), Some(d)) => format!(
                    "{:.4} ± {:.4}",
                    m.as_f64().unwrap_or(0.0),
                    d.as_f64().unwrap_or(0.0)
                ),
                _ => "-".into(),
            };
            let leaks: Vec<String> = part["folds"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| {
                    let l = &f["leakage"];
                    Some(format!(
                        "{} ({:.1} %)",
                        l["count"].as_u64()?,
                        100.0 * l["fraction"].as_f64()?
                    ))
                })
                .collect();
            s.push_str(&format!(
                "| {name} | {label} | {}/{} | {} | {} | {} | {} | {} |\n",
                part["folds_run"],
                part["folds_total"],
                if leaks.is_empty() {
                    "-".into()
                } else {
                    leaks.join(", ")
                },
                cell("accuracy"),
                cell("f1"),
                cell("mcc"),
                cell("auroc"),
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_weight_picks_the_better_side_on_validation() {
        let labels = [0u32, 0, 1, 1];
        let good = vec![
            vec![0.9f32, 0.1],
            vec![0.8, 0.2],
            vec![0.3, 0.7],
            vec![0.1, 0.9],
        ];
        let bad = vec![
            vec![0.1f32, 0.9],
            vec![0.2, 0.8],
            vec![0.7, 0.3],
            vec![0.9, 0.1],
        ];
        // A perfect ensemble and a reversed blend model: weight 0 (ties go to the smaller).
        assert_eq!(blend_weight(&good, &bad, &labels), 0.0);
        // The other way round: the smallest weight whose mix ranks perfectly (at 0.6 the mix
        // is 0.42, 0.44, 0.54, 0.58; at 0.5 all four tie at 0.5).
        assert_eq!(blend_weight(&bad, &good, &labels), 0.6);
        // Three classes: the mean log-likelihood decides.
        let l3 = [0u32, 1, 2];
        let sure = vec![
            vec![0.8f32, 0.1, 0.1],
            vec![0.1, 0.8, 0.1],
            vec![0.1, 0.1, 0.8],
        ];
        let flat = vec![vec![1.0f32 / 3.0; 3]; 3];
        assert_eq!(blend_weight(&flat, &sure, &l3), 1.0);
        assert_eq!(blend_weight(&sure, &flat, &l3), 0.0);
    }

    #[test]
    fn parse_blend_takes_weights_and_auto() {
        assert_eq!(
            parse_blend("kmer-lr:0.4").unwrap(),
            ("kmer-lr".into(), Some(0.4))
        );
        assert_eq!(
            parse_blend("kmer-lr:auto").unwrap(),
            ("kmer-lr".into(), None)
        );
        for bad in [
            "kmer-lr",
            "kmer-lr:0",
            "kmer-lr:-1",
            "kmer-lr:2",
            "nope:0.5",
            "kmer-lr:x",
        ] {
            assert!(parse_blend(bad).is_err(), "{bad}");
        }
    }
}
