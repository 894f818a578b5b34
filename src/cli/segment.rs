//! `genolm train --task segment`: per-base gene-structure training from a genome and its GFF3.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use crate::error::{Error, Result};
use crate::infer::decode::{DecodeConfig, Mode};
use crate::infer::tune::{self, DecoderSettings, Evidence};
use crate::infer::{evaluate, signals};
use crate::io::labels::{CLASS_NAMES, FRAMED_NAMES, NUM_CLASSES, NUM_FRAMED};
use crate::models::{ModelConfig, UNetConfig};
use crate::tokenize;
use crate::train::run::{self, DataSpecs};
use crate::train::segment::{
    self, class_counts, class_weights, SegmentJob, SegmentRunConfig, SegmentSpec, TileOptions,
};

/// Options of `genolm train --task segment`.
#[derive(Debug, Clone, clap::Args)]
pub struct SegmentArgs {
    /// Segment: genome FASTA.
    #[arg(long)]
    pub genome: Option<String>,
    /// Segment: GFF3 gene models of --genome.
    #[arg(long)]
    pub gff: Option<String>,
    /// Segment: records held out as the test set (report.json); repeat or comma-separate.
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub holdout: Vec<String>,
    /// Segment: training window in bases.
    #[arg(long, default_value_t = 4096)]
    pub window: usize,
    /// Largest shift augmentation: segment, in bases (default 64); classify, in tokens, with
    /// `[PAD]` filling the vacated end (default 0 = off).
    #[arg(long)]
    pub max_shift: Option<usize>,
    /// Segment: cap of the inverse-frequency class weights (1 = unweighted).
    #[arg(long, default_value_t = 10.0)]
    pub class_weight_cap: f64,
    /// Segment: a TOML file with the U-Net head settings.
    #[arg(long)]
    pub unet_config: Option<PathBuf>,
    /// Segment: Markov order of the decoder's content models (0 to 8; default: the best of
    /// 2, 3, 4, 5 on the validation region).
    #[arg(long)]
    pub signal_order: Option<usize>,
    /// Segment: predict CDS without its codon position (6 classes per strand instead of 8).
    #[arg(long)]
    pub no_frame: bool,
    /// Segment: gene grammar the decoder is tuned with (prokaryote: no introns, ATG/GTG/TTG
    /// starts); `annotate` uses it unless given `--mode`.
    #[arg(long, value_enum, default_value = "eukaryote")]
    pub mode: crate::infer::decode::Mode,
}

/// Run `genolm train --task segment`.
pub fn run_train(args: &crate::cli::train::Args) -> Result<()> {
    let started = Instant::now();
    let s = &args.segment;
    let (Some(genome), Some(gff)) = (&s.genome, &s.gff) else {
        return Err(Error::input(
            "--task segment needs --genome FASTA and --gff GFF3",
        ));
    };
    if !args.train.is_empty() || args.valid.is_some() || args.test.is_some() || args.cv.is_some() {
        return Err(Error::input(
            "--task segment takes --genome/--gff/--holdout, not --train/--valid/--test/--cv",
        ));
    }
    let tok = tokenize::from_spec(&args.tokenizer)?;
    segment::check_per_base(tok.as_ref())?;
    let init = args
        .init
        .as_deref()
        .map(crate::train::finetune::read_source)
        .transpose()?;
    if let Some(src) = &init {
        crate::train::finetune::check_tokenizer(src, &args.tokenizer, tok.as_ref())?;
    }
    let framed = !s.no_frame;
    let num_classes = if framed { NUM_FRAMED } else { NUM_CLASSES };
    let class_names: &[&str] = if framed { &FRAMED_NAMES } else { &CLASS_NAMES };
    let data = segment::load_genome(genome, gff, &s.holdout, args.valid_fraction, framed)?;
    for w in &data.warnings {
        eprintln!("warning: {w}");
    }
    let counts = class_counts(&data, &data.train);
    let weights = class_weights(&counts, s.class_weight_cap);
    let unet = match &s.unet_config {
        None => UNetConfig::default(),
        Some(f) => {
            let text = std::fs::read_to_string(f).map_err(|e| Error::io(f.display(), e))?;
            toml::from_str(&text).map_err(|e| {
                Error::input(format!(
                    "{}: {}",
                    f.display(),
                    crate::error::one_line(&e.to_string())
                ))
            })?
        }
    };
    let backbone = match &init {
        Some(src) => crate::cli::train::init_backbone(
            src,
            args.model.as_deref(),
            args.model_config.as_deref(),
        )?,
        None => {
            crate::cli::train::backbone_config(args.model_name(), args.model_config.as_deref())?
        }
    };
    let head = backbone.default_head();
    let mut opts = args.options();
    if opts.metric != "loss" {
        opts.metric = "macro_f1".into();
    }
    let cfg = SegmentRunConfig {
        task: "segment".into(),
        tokenizer: args.tokenizer.clone(),
        classes: class_names.iter().map(|c| c.to_string()).collect(),
        data: DataSpecs {
            train: genome.clone(),
            valid: String::new(),
            test: s.holdout.join(","),
        },
        train: opts,
        model: ModelConfig {
            vocab_size: tok.vocab_size(),
            seq_len: s.window,
            num_classes,
            backbone,
            head,
        },
        segment: SegmentSpec {
            genome: genome.clone(),
            gff: gff.clone(),
            holdout: s.holdout.clone(),
            window: s.window,
            max_shift: s.max_shift.unwrap_or(64),
            class_weight_cap: s.class_weight_cap,
            valid_fraction: args.valid_fraction,
            mode: s.mode,
            unet,
            class_weights: weights.clone(),
            ..SegmentSpec::default()
        },
    };
    segment::init_run(&args.out, &cfg, args.resume)?;
    let job = SegmentJob {
        config: &cfg,
        tok: tok.as_ref(),
        data: &data,
        dir: &args.out,
        resume: args.resume,
        progress: !args.quiet,
    };
    let (model, _weights, st) = segment::train(&job)?;
    let tiles = TileOptions {
        tile: cfg.segment.tile,
        overlap: cfg.segment.overlap,
        rc_average: cfg.train.rc_average,
    };
    let valid = segment::evaluate(&model, tok.as_ref(), &data, &data.valid, &tiles)?.report();
    let (split, metrics) = if data.test.is_empty() {
        ("valid", valid.clone())
    } else {
        (
            "test",
            segment::evaluate(&model, tok.as_ref(), &data, &data.test, &tiles)?.report(),
        )
    };
    let orders = match s.signal_order {
        Some(k) => vec![k],
        None => vec![2, 3, 4, 5],
    };
    let annotation = tune_decoder(
        &args.out,
        &model,
        tok.as_ref(),
        &data,
        &tiles,
        &orders,
        s.mode,
    )?;
    let bases = |regions: &[(usize, usize, usize)]| -> usize {
        regions.iter().map(|&(_, a, b)| b - a).sum()
    };
    let report = json!({
        "task": "segment",
        "split": split,
        "holdout": s.holdout,
        "per_base": metrics,
        "valid": valid,
        "model": cfg.model.backbone.name(),
        "tokenizer": args.tokenizer,
        "seed": args.seed,
        "epochs_run": st.epoch,
        "best_epoch": st.best_epoch,
        "steps": st.step,
        "genes": data.genes,
        "train_bases": bases(&data.train),
        "valid_bases": bases(&data.valid),
        "test_bases": bases(&data.test),
        "class_counts_train": CLASS_NAMES.iter().zip(counts).map(|(c, n)| (c.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "class_weights": CLASS_NAMES.iter().zip(&weights).map(|(c, w)| (c.to_string(), json!(w))).collect::<serde_json::Map<_, _>>(),
        "annotation": annotation,
        "init": init.as_ref().map(|src| json!({
            "dir": src.dir.display().to_string(),
            "weights": src.weights.display().to_string(),
            "task": src.task,
            "freeze_backbone_steps": cfg.train.freeze_backbone_steps,
            "backbone_lr_scale": cfg.train.backbone_lr_scale,
        })),
        "seconds": started.elapsed().as_secs_f64(),
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
    run::write_text(&args.out, "report.json", &(text + "\n"))?;
    run::write_loss_plot(&args.out, &st)?;
    let f1 = |c: &str| {
        metrics["per_class"][c]["f1"]
            .as_f64()
            .map_or("-".into(), |v| format!("{v:.4}"))
    };
    println!(
        "segment {}: {split} per-base F1 cds {} intron {} intergenic {} utr5 {} utr3 {} ncexon {}{} \
         (run dir {})",
        cfg.model.backbone.name(),
        f1("cds"),
        f1("intron"),
        f1("intergenic"),
        f1("utr5"),
        f1("utr3"),
        f1("ncexon"),
        metrics["frame_accuracy"]
            .as_f64()
            .map_or(String::new(), |a| format!(", codon position accuracy {a:.4}")),
        args.out.display()
    );
    Ok(())
}

/// Per-base probabilities of `regions` as decoder evidence.
fn evidence(
    model: &crate::models::SegmentModel,
    tok: &dyn tokenize::Tokenizer,
    data: &segment::GenomeData,
    regions: &[(usize, usize, usize)],
    tiles: &TileOptions,
) -> Result<Vec<Evidence>> {
    regions
        .iter()
        .map(|&(r, s, e)| {
            let rec = &data.records[r];
            let (plus, minus) =
                segment::predict_region(model, tok, &rec.seq[s..e], tiles, &|_| {})?;
            Ok(Evidence {
                seqid: rec.name.clone(),
                offset: s,
                seq: rec.seq[s..e].to_vec(),
                plus,
                minus,
            })
        })
        .collect()
}

/// Fit the decoder's sequence signals on the training region for each Markov order in
/// `orders`, choose the order and decoder settings on the validation region (`signals.json`,
/// `decoder.json`), then decode the test region with them and with the network alone; returns
/// the `annotation` object of `report.json` (null without a validation region or reference
/// genes, when only `signals.json` of the first order is written).
fn tune_decoder(
    dir: &std::path::Path,
    model: &crate::models::SegmentModel,
    tok: &dyn tokenize::Tokenizer,
    data: &segment::GenomeData,
    tiles: &TileOptions,
    orders: &[usize],
    mode: Mode,
) -> Result<serde_json::Value> {
    let fit = |k: usize| signals::fit_regions(&data.records, &data.train, k);
    if data.valid.is_empty() || data.reference.genes.is_empty() {
        signals::write_run_signals(dir, &fit(orders[0])?)?;
        return Ok(serde_json::Value::Null);
    }
    let valid = evidence(model, tok, data, &data.valid, tiles)?;
    let mut best: Option<(tune::Trial, Vec<tune::Trial>, DecodeConfig)> = None;
    for &k in orders {
        let base = DecodeConfig::for_mode(mode).with_signals(std::sync::Arc::new(fit(k)?));
        let grid = tune::default_grid(true, mode == Mode::Eukaryote);
        let mut trials = tune::tune(&valid, &data.reference, &base, &grid)?;
        if model.config.num_classes == NUM_FRAMED {
            let grid = tune::frame_grid(&trials, tune::FRAME_TOP);
            trials.extend(tune::tune(&valid, &data.reference, &base, &grid)?);
        }
        let top = tune::best(&trials)
            .cloned()
            .ok_or_else(|| Error::Internal("empty decoder grid".into()))?;
        eprintln!(
            "decoder, content order {k}: best validation objective {:.4}",
            top.objective
        );
        if best.as_ref().is_none_or(|b| top.objective > b.0.objective) {
            best = Some((top, trials, base));
        }
    }
    let (chosen, trials, base) =
        best.ok_or_else(|| Error::Internal("no signal order to try".into()))?;
    if let Some(sig) = &base.signals {
        signals::write_run_signals(dir, sig)?;
    }
    // The network alone is one setting of the grid (its result does not depend on the order).
    let network_only = trials
        .iter()
        .find(|t| t.settings == DecoderSettings::default())
        .cloned()
        .ok_or_else(|| Error::Internal("the decoder grid lacks the network alone".into()))?;
    let file = tune::DecoderFile {
        settings: chosen.settings,
        chosen: chosen.clone(),
        network_only: network_only.clone(),
        trials,
    };
    let text = serde_json::to_string_pretty(&file).map_err(|e| Error::Internal(e.to_string()))?;
    run::write_text(dir, "decoder.json", &(text + "\n"))?;
    let s = &chosen.settings;
    eprintln!(
        "decoder chosen on validation: order {} min intron {} nn {} genic {} content {} site {} gene {} intron {} \
         frame {} (base.cds F1 {:.4}, exon.all F1 {:.4}; network alone {:.4}, {:.4})",
        base.signals.as_ref().map_or(0, |g| g.order),
        base.min_intron,
        s.nn_weight,
        s.genic_weight,
        s.content_weight,
        s.site_weight,
        s.gene_penalty,
        s.intron_penalty,
        s.frame_weight,
        chosen.base_cds_f1,
        chosen.exon_all_f1,
        network_only.base_cds_f1,
        network_only.exon_all_f1
    );
    let mut out = json!({
        "mode": mode,
        "decoder": s,
        "signal_order": base.signals.as_ref().map(|g| g.order),
        "valid": chosen,
        "valid_network_only": network_only,
    });
    if !data.test.is_empty() {
        let test = evidence(model, tok, data, &data.test, tiles)?;
        let mut cfg = base.clone();
        s.apply(&mut cfg);
        let (rep, pred) = tune::decode_and_evaluate(&test, &data.reference, &cfg)?;
        let coding = evaluate::evaluate(
            &evaluate::coding_view(&pred),
            &evaluate::coding_view(&data.reference),
            Some(&tune::spans(&test)),
        )?;
        let mut alone = base;
        DecoderSettings::default().apply(&mut alone);
        let (rep0, _) = tune::decode_and_evaluate(&test, &data.reference, &alone)?;
        eprintln!(
            "decoded test genes: base.cds F1 {:.4}, exon.all F1 {:.4}, gene.all F1 {:.4} \
             (network alone: {:.4}, {:.4}, {:.4})",
            rep.f1("base", "cds"),
            rep.f1("exon", "all"),
            rep.f1("gene", "all"),
            rep0.f1("base", "cds"),
            rep0.f1("exon", "all"),
            rep0.f1("gene", "all")
        );
        eprintln!(
            "coding view: exon.cds_unique F1 {:.4}, transcript.all F1 {:.4}, gene.all F1 {:.4}",
            coding.f1("exon", "cds_unique"),
            coding.f1("transcript", "all"),
            coding.f1("gene", "all")
        );
        out["test"] = rep.to_json();
        out["test_coding"] = coding.to_json();
        out["test_network_only"] = rep0.to_json();
    }
    Ok(out)
}
