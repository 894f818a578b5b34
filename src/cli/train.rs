//! `genolm train`: train a model on labelled sequences and write a run directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use crate::data::folds::stratified_holdout;
use crate::data::LabeledSet;
use crate::error::{Error, Result};
use crate::models::{BackboneConfig, ModelConfig, Pooling};
use crate::seq::SeqPolicy;
use crate::tokenize;
use crate::train::classify::{self, encode_set, predict, Encoded, Job, Metrics, TrainOptions};
use crate::train::finetune;
use crate::train::metrics::summarise_folds;
use crate::train::run::{self, DataSpecs, RunConfig};

/// Arguments of `genolm train`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  genolm train --task classify --model cnn \\\n    --train promoter=prom.fa.gz,background=bg.fa.gz --test test.csv --out runs/prom\n  genolm train --train folds/fold_1.csv.gz,folds/fold_2.csv.gz --valid folds/fold_3.csv.gz \\\n    --model gb-cnn --epochs 10 --seed 1 --out runs/gb\n  genolm train --train folds/fold_1.csv.gz --init runs/pretrained --freeze-backbone-steps 200 \\\n    --backbone-lr-scale 0.1 --out runs/finetuned\n\nSPEC is LABEL=FASTA[,LABEL=FASTA...] or a CSV/TSV table with sequence and label columns\n(see `genolm::data::classify`). Kill a run at any time and continue it with --resume.\n\nPer-base gene structure (then `genolm annotate`):\n  genolm train --task segment --genome genome.fa.gz --gff genes.gff3.gz --holdout Chr5 \\\n    --batch-size 16 --epochs 6 --out runs/seg"
)]
pub struct Args {
    /// Task: `classify` (sequence classification) or `segment` (per-base gene structure from
    /// --genome and --gff; see `genolm::train::segment`).
    #[arg(long, default_value = "classify")]
    pub task: String,
    /// Model: `cnn` (dilated residual CNN), `gb-cnn` (the genomic-benchmarks baseline), `transformer`
    /// (block-sparse attention), `mamba` (bidirectional), `caduceus` (RC-equivariant Mamba), `hyena`,
    /// `kmer-lr` (logistic regression on the k-mer spectrum; classify only). Default `cnn`; with
    /// --init, the source's backbone (a different one named here is an error).
    #[arg(long)]
    pub model: Option<String>,
    /// A TOML file with the backbone settings (overrides --model's defaults).
    #[arg(long)]
    pub model_config: Option<PathBuf>,
    /// Pooling of the classification head (default: the model's).
    #[arg(long, value_enum)]
    pub pooling: Option<Pooling>,
    /// Training data SPEC (classify).
    #[arg(long, default_value = "")]
    pub train: String,
    /// Validation data SPEC (default: a stratified holdout of the training data).
    #[arg(long)]
    pub valid: Option<String>,
    /// Test data SPEC; its metrics go to report.json.
    #[arg(long)]
    pub test: Option<String>,
    /// Run directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Tokenizer spec (`char`, `kmer:K[:STRIDE]`, `bpe:PATH`, ...).
    #[arg(long, default_value = "char")]
    pub tokenizer: String,
    /// Fraction of the training data held out for validation when --valid is not given.
    #[arg(long, default_value_t = 0.1)]
    pub valid_fraction: f64,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Gradient accumulation steps.
    #[arg(long, default_value_t = 1)]
    pub accumulate: usize,
    /// Optimizer flags.
    #[command(flatten)]
    pub optim: OptimArgs,
    /// Early-stopping patience in epochs (0 = off).
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    /// Validation metric for early stopping: auroc, auprc, f1, mcc, accuracy, loss.
    #[arg(long, default_value = "auroc")]
    pub metric: String,
    /// Classify: validate, keep and report an exponential moving average of the weights with this
    /// decay (e.g. 0.99; 0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub ema: f64,
    /// Turn off reverse-complement augmentation.
    #[arg(long)]
    pub no_rc_augment: bool,
    /// Turn off reverse-complement averaging at evaluation.
    #[arg(long)]
    pub no_rc_average: bool,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Save a resumable checkpoint every N steps (0 = each epoch).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: u64,
    /// Stop after N optimizer steps (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub max_steps: u64,
    /// Continue an interrupted run in --out.
    #[arg(long)]
    pub resume: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Decision threshold on the positive-class probability (two classes): a number; `auto` for
    /// the one that maximises sensitivity + specificity on the validation set; or `sn:X` for the
    /// highest one that keeps validation sensitivity at least X (e.g. `sn:0.9`).
    #[arg(long, default_value = "0.5", value_parser = parse_threshold)]
    pub threshold: Threshold,
    /// Cross-validation instead of one run: `K` makes K stratified, seeded folds of --train;
    /// `files` uses each file of the --train SPEC as one fold. Fold `i` trains in
    /// `RUN_DIR/fold_i` (validation held out of its training part) and tests on fold `i`;
    /// `RUN_DIR/report.json` holds the mean over folds under the plain names, plus `sd` and
    /// `folds`.
    #[arg(long)]
    pub cv: Option<String>,
    /// Segmentation options (`--task segment`).
    #[command(flatten)]
    pub segment: crate::cli::segment::SegmentArgs,
    /// Fine-tune: take the backbone (config and weights) of this run directory (a `genolm train`
    /// or `genolm pretrain` run), add a fresh head. The tokenizer must be the one it was trained
    /// with.
    #[arg(long, value_name = "RUN_DIR")]
    pub init: Option<PathBuf>,
    /// The backbone gets no updates for the first N optimizer steps (only the head trains).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub freeze_backbone_steps: u64,
    /// Backbone learning rate = F × the head's (default 0.1 with --init, else 1).
    #[arg(long, value_name = "F")]
    pub backbone_lr_scale: Option<f64>,
}

/// Optimizer flags shared by `genolm train` and `genolm pretrain`.
#[derive(Debug, Clone, clap::Args)]
pub struct OptimArgs {
    /// Peak learning rate (warmup, then cosine decay to 1 % of it).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Warmup fraction of all steps.
    #[arg(long, default_value_t = 0.05)]
    pub warmup: f64,
    /// Clip the global gradient norm (0 = off).
    #[arg(long, default_value_t = 1.0)]
    pub clip_norm: f64,
}

/// A `--threshold` value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// A fixed threshold.
    Fixed(f64),
    /// Chosen on the validation set (Youden's J).
    Auto,
    /// Chosen on the validation set: the highest that keeps sensitivity at least this.
    Sensitivity(f64),
}

/// Parse `--threshold`: `auto`, `sn:X` or a number in [0, 1].
fn parse_threshold(s: &str) -> std::result::Result<Threshold, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(Threshold::Auto);
    }
    let (sn, num) = match s.split_once(':') {
        Some((k, v)) if k.eq_ignore_ascii_case("sn") => (true, v),
        _ => (false, s),
    };
    match num.parse::<f64>() {
        Ok(t) if sn && t > 0.0 && t <= 1.0 => Ok(Threshold::Sensitivity(t)),
        Ok(t) if !sn && (0.0..=1.0).contains(&t) => Ok(Threshold::Fixed(t)),
        _ if sn => Err(format!("'{s}': `sn:X` needs a sensitivity X in (0, 1]")),
        _ => Err(format!("'{s}' is not `auto`, `sn:X` or a number in [0, 1]")),
    }
}

impl Args {
    /// The model name: `--model`, else the `--init` source's (resolved later), else `cnn`.
    pub fn model_name(&self) -> &str {
        self.model.as_deref().unwrap_or("cnn")
    }

    /// Training options from the arguments.
    pub fn options(&self) -> TrainOptions {
        TrainOptions {
            epochs: self.epochs,
            batch_size: self.batch_size,
            accumulate: self.accumulate,
            lr: self.optim.lr,
            weight_decay: self.optim.weight_decay,
            warmup_frac: self.optim.warmup,
            min_lr_ratio: 0.01,
            clip_norm: self.optim.clip_norm,
            patience: self.patience,
            metric: self.metric.clone(),
            rc_augment: !self.no_rc_augment,
            rc_average: !self.no_rc_average,
            max_shift: self.segment.max_shift.unwrap_or(0),
            ema: self.ema,
            seed: self.seed,
            checkpoint_every: self.checkpoint_every,
            max_steps: self.max_steps,
            threshold: match self.threshold {
                Threshold::Fixed(t) => t,
                Threshold::Auto | Threshold::Sensitivity(_) => 0.5,
            },
            tune_threshold: !matches!(self.threshold, Threshold::Fixed(_)),
            min_recall: match self.threshold {
                Threshold::Sensitivity(r) => Some(r),
                _ => None,
            },
            init: self.init.as_ref().map(|p| p.display().to_string()),
            freeze_backbone_steps: self.freeze_backbone_steps,
            backbone_lr_scale: self.backbone_lr_scale.unwrap_or(if self.init.is_some() {
                0.1
            } else {
                1.0
            }),
        }
    }
}

/// Load a backbone config: `--model-config` TOML or the model's defaults.
pub fn backbone_config(model: &str, file: Option<&Path>) -> Result<BackboneConfig> {
    let base = BackboneConfig::by_name(model)?;
    let Some(f) = file else {
        return Ok(base);
    };
    let text = std::fs::read_to_string(f).map_err(|e| Error::io(f.display(), e))?;
    let parsed = match base {
        BackboneConfig::GbCnn(_) => toml::from_str(&text).map(BackboneConfig::GbCnn),
        BackboneConfig::Cnn(_) => toml::from_str(&text).map(BackboneConfig::Cnn),
        BackboneConfig::Mamba(_) => toml::from_str(&text).map(BackboneConfig::Mamba),
        BackboneConfig::Transformer(_) => toml::from_str(&text).map(BackboneConfig::Transformer),
        BackboneConfig::Hyena(_) => toml::from_str(&text).map(BackboneConfig::Hyena),
        BackboneConfig::KmerLr(_) => toml::from_str(&text).map(BackboneConfig::KmerLr),
    };
    parsed.map_err(|e| {
        Error::input(format!(
            "{}: {}",
            f.display(),
            crate::error::one_line(&e.to_string())
        ))
    })
}

/// The backbone of a fine-tuning run: the source's, checked against `--model` and
/// `--model-config` when given (they may only restate it).
pub fn init_backbone(
    src: &finetune::InitSource,
    model: Option<&str>,
    file: Option<&Path>,
) -> Result<BackboneConfig> {
    let theirs = src.backbone.name();
    if let Some(m) = model {
        let named = BackboneConfig::by_name(m)?;
        if named.name() != theirs {
            return Err(Error::input(format!(
                "--init {}: its backbone is {theirs}, not --model {m} (leave --model out to take \
                 the source's)",
                src.dir.display()
            )));
        }
    }
    if let Some(f) = file {
        let given = backbone_config(model.unwrap_or(theirs), Some(f))?;
        if given != src.backbone {
            return Err(Error::input(format!(
                "--init {}: --model-config {} differs from the source's backbone settings \
                 (leave --model-config out to take the source's)",
                src.dir.display(),
                f.display()
            )));
        }
    }
    Ok(src.backbone.clone())
}

/// Result of one training run.
pub struct Outcome {
    /// Test (or, without a test set, validation) metrics.
    pub metrics: Metrics,
    /// The report written to `report.json`.
    pub report: serde_json::Value,
    /// Class probabilities of the validation set, in its order.
    pub valid_probs: Vec<Vec<f32>>,
    /// Class probabilities of the test set, in its order (empty without one).
    pub test_probs: Vec<Vec<f32>>,
    /// The decision threshold used (two classes).
    pub threshold: f64,
}

/// Train on loaded sets and write the run directory; the test set may be absent.
pub fn run_sets(
    args: &Args,
    train: &LabeledSet,
    valid: &LabeledSet,
    test: Option<&LabeledSet>,
) -> Result<Outcome> {
    let started = Instant::now();
    if args.task != "classify" {
        return Err(Error::input(format!(
            "unknown task '{}' (this build supports: classify, segment)",
            args.task
        )));
    }
    let tok = tokenize::from_spec(&args.tokenizer)?;
    let init = args
        .init
        .as_deref()
        .map(finetune::read_source)
        .transpose()?;
    let backbone = match &init {
        Some(src) => {
            finetune::check_tokenizer(src, &args.tokenizer, tok.as_ref())?;
            init_backbone(src, args.model.as_deref(), args.model_config.as_deref())?
        }
        None => backbone_config(args.model_name(), args.model_config.as_deref())?,
    };
    let enc_train = encode_set(train, tok.as_ref(), None)?;
    let len = enc_train.len;
    let enc_valid = encode_set(valid, tok.as_ref(), Some(len))?;
    let enc_test: Option<Encoded> = test
        .map(|t| encode_set(t, tok.as_ref(), Some(len)))
        .transpose()?;
    let mut head = backbone.default_head();
    if let Some(p) = args.pooling {
        head.pooling = p;
    }
    let model = ModelConfig {
        vocab_size: tok.vocab_size(),
        seq_len: len,
        num_classes: train.num_classes(),
        backbone,
        head,
    };
    let opts = args.options();
    let cfg = RunConfig {
        task: args.task.clone(),
        tokenizer: args.tokenizer.clone(),
        classes: train.classes.clone(),
        data: DataSpecs {
            train: args.train.clone(),
            valid: args.valid.clone().unwrap_or_default(),
            test: args.test.clone().unwrap_or_default(),
        },
        train: opts.clone(),
        model: model.clone(),
    };
    run::init_run(&args.out, cfg, args.resume)?;
    let job = Job {
        model: &model,
        opts: &opts,
        train: &enc_train,
        valid: &enc_valid,
        dir: &args.out,
        resume: args.resume,
        progress: !args.quiet,
    };
    let (clf, _weights, st) = classify::train(&job)?;
    let bs = opts.batch_size.max(256);
    let vprobs = predict(&clf, &enc_valid, bs, opts.rc_average)?;
    let threshold = opts.decision_threshold(model.num_classes, &vprobs, &enc_valid.labels);
    run::write_text(&args.out, "threshold.txt", &format!("{threshold}\n"))?;
    let vm = Metrics::at(&vprobs, &enc_valid.labels, model.num_classes, threshold);
    write_predictions(&args.out, "valid_predictions.tsv", valid, &vprobs)?;
    let tprobs = match (&enc_test, test) {
        (Some(t), Some(set)) => {
            let p = predict(&clf, t, bs, opts.rc_average)?;
            write_predictions(&args.out, "test_predictions.tsv", set, &p)?;
            p
        }
        _ => Vec::new(),
    };
    let (metrics, probs, labels, split) = match &enc_test {
        Some(t) => (
            Metrics::at(&tprobs, &t.labels, model.num_classes, threshold),
            &tprobs,
            &t.labels,
            "test",
        ),
        None => (vm.clone(), &vprobs, &enc_valid.labels, "valid"),
    };
    let mut report = serde_json::to_value(&metrics).map_err(|e| Error::Internal(e.to_string()))?;
    if let Some(obj) = report.as_object_mut() {
        obj.insert("split".into(), json!(split));
        obj.insert("valid".into(), json!(vm));
        obj.insert("model".into(), json!(model.backbone.name()));
        obj.insert("tokenizer".into(), json!(args.tokenizer));
        obj.insert("seed".into(), json!(args.seed));
        obj.insert("epochs_run".into(), json!(st.epoch));
        obj.insert("best_epoch".into(), json!(st.best_epoch));
        obj.insert("steps".into(), json!(st.step));
        obj.insert("n_train".into(), json!(train.len()));
        obj.insert("n_valid".into(), json!(valid.len()));
        obj.insert("n_test".into(), json!(test.map_or(0, |t| t.len())));
        obj.insert("classes".into(), json!(train.classes));
        obj.insert("seconds".into(), json!(started.elapsed().as_secs_f64()));
        if let Some(src) = &init {
            obj.insert(
                "init".into(),
                json!({"dir": src.dir.display().to_string(), "weights": src.weights.display().to_string(),
                       "task": src.task, "freeze_backbone_steps": opts.freeze_backbone_steps,
                       "backbone_lr_scale": opts.backbone_lr_scale}),
            );
        }
    }
    let text = serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
    run::write_text(&args.out, "report.json", &(text + "\n"))?;
    run::write_loss_plot(&args.out, &st)?;
    run::write_roc_plot(&args.out, probs, labels, &metrics)?;
    Ok(Outcome {
        metrics,
        report,
        valid_probs: vprobs,
        test_probs: tprobs,
        threshold,
    })
}

/// Write `name` in `dir`: one row per record of `set` with its name, true class and class
/// probabilities.
pub fn write_predictions(
    dir: &Path,
    name: &str,
    set: &LabeledSet,
    probs: &[Vec<f32>],
) -> Result<()> {
    let mut text = String::from("name\tlabel");
    for c in &set.classes {
        text.push_str(&format!("\tp_{c}"));
    }
    text.push('\n');
    for ((n, &l), p) in set.names.iter().zip(&set.labels).zip(probs) {
        text.push_str(&format!("{n}\t{}", set.classes[l as usize]));
        for v in p {
            text.push_str(&format!("\t{v:.6}"));
        }
        text.push('\n');
    }
    run::write_text(dir, name, &text)
}

/// Load the SPECs of `args` (holding out validation data when needed).
pub fn load_sets(args: &Args) -> Result<(LabeledSet, LabeledSet, Option<LabeledSet>)> {
    let policy = SeqPolicy::default();
    let all = LabeledSet::load(&args.train, policy)?;
    let (train, valid) = match &args.valid {
        Some(v) => {
            let valid = LabeledSet::load_with_classes(v, policy, &all.classes)?;
            (all, valid)
        }
        None => {
            if !(0.0..1.0).contains(&args.valid_fraction) || args.valid_fraction <= 0.0 {
                return Err(Error::input("--valid-fraction must be in (0, 1)"));
            }
            let split = stratified_holdout(&all.labels, args.valid_fraction, args.seed)?;
            let (t, v) = all.split(&split);
            (t, v)
        }
    };
    let test = args
        .test
        .as_ref()
        .map(|t| LabeledSet::load_with_classes(t, policy, &train.classes))
        .transpose()?;
    Ok((train, valid, test))
}

/// The metrics summarised over cross-validation folds.
const CV_FIGURES: [&str; 9] = [
    "accuracy",
    "f1",
    "mcc",
    "auroc",
    "auprc",
    "recall",
    "specificity",
    "macro_f1",
    "micro_f1",
];

/// Run `genolm train --cv`: one run per fold, then the mean and sd of the test metrics.
fn run_cv(args: &Args, cv: &str) -> Result<serde_json::Value> {
    if args.valid.is_some() || args.test.is_some() {
        return Err(Error::input(
            "--cv makes its own validation and test sets; drop --valid and --test",
        ));
    }
    if args.resume {
        return Err(Error::input(
            "--cv cannot --resume; resume a fold with `genolm train --resume --out RUN_DIR/fold_i`",
        ));
    }
    if !(0.0..1.0).contains(&args.valid_fraction) || args.valid_fraction <= 0.0 {
        return Err(Error::input("--valid-fraction must be in (0, 1)"));
    }
    let all = LabeledSet::load(&args.train, SeqPolicy::default())?;
    let splits = if cv.eq_ignore_ascii_case("files") {
        crate::data::folds::by_file(&all)?
    } else {
        let k: usize = cv.parse().map_err(|_| {
            Error::input(format!(
                "--cv '{cv}': expected a number of folds (>= 2) or `files`"
            ))
        })?;
        crate::data::folds::stratified_kfold(&all.labels, k, args.seed)?
    };
    let started = Instant::now();
    let mut folds = Vec::new();
    for (i, split) in splits.iter().enumerate() {
        let (train_all, test) = all.split(split);
        let hold =
            stratified_holdout(&train_all.labels, args.valid_fraction, args.seed + i as u64)?;
        let (train, valid) = train_all.split(&hold);
        let mut a = args.clone();
        a.out = args.out.join(format!("fold_{}", i + 1));
        let out = run_sets(&a, &train, &valid, Some(&test))?;
        eprintln!(
            "fold {}/{}: {}",
            i + 1,
            splits.len(),
            CV_FIGURES
                .iter()
                .filter_map(|k| out.metrics.get(k).map(|v| format!("{k} {v:.4}")))
                .collect::<Vec<_>>()
                .join(" ")
        );
        folds.push(out.report);
    }
    let (mut report, sd) = summarise_folds(&folds, &CV_FIGURES, |f, k| {
        f.get(k).and_then(|x| x.as_f64())
    });
    report.insert("split".into(), json!(format!("{}-fold cv", folds.len())));
    report.insert("cv".into(), json!(cv));
    report.insert("sd".into(), serde_json::Value::Object(sd));
    let model = folds
        .first()
        .and_then(|f| f["model"].as_str())
        .unwrap_or(args.model_name())
        .to_string();
    report.insert("model".into(), json!(model));
    report.insert("seed".into(), json!(args.seed));
    report.insert("seconds".into(), json!(started.elapsed().as_secs_f64()));
    report.insert("folds".into(), json!(folds));
    let report = serde_json::Value::Object(report);
    let text = serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(args.out.display(), e))?;
    run::write_text(
        &args.out,
        "command.txt",
        &format!("{}\n", run::command_line()),
    )?;
    run::write_text(&args.out, "report.json", &(text + "\n"))?;
    Ok(report)
}

/// Run `genolm train`.
pub fn run(args: Args) -> Result<()> {
    if args.task == "segment" {
        if args.ema != 0.0 {
            return Err(Error::input(
                "--ema is for --task classify (segment training keeps no moving average)",
            ));
        }
        return crate::cli::segment::run_train(&args);
    }
    if args.train.is_empty() {
        return Err(Error::input(
            "--train SPEC is required (or --task segment --genome FASTA --gff GFF3)",
        ));
    }
    let report = match &args.cv {
        Some(cv) => run_cv(&args, cv)?,
        None => {
            let (train, valid, test) = load_sets(&args)?;
            run_sets(&args, &train, &valid, test.as_ref())?.report
        }
    };
    let r = &report;
    let fig = |k: &str| {
        r.get(k)
            .and_then(|v| v.as_f64())
            .map_or("-".into(), |v| format!("{v:.4}"))
    };
    println!(
        "{}: {} metrics: accuracy {} f1 {} mcc {} auroc {} auprc {} (run dir {})",
        r["model"].as_str().unwrap_or(args.model_name()),
        r["split"].as_str().unwrap_or(""),
        fig("accuracy"),
        fig("f1"),
        fig("mcc"),
        fig("auroc"),
        fig("auprc"),
        args.out.display()
    );
    Ok(())
}
