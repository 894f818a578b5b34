//! `genolm demo`: the main job on the embedded demo set (fly promoter-proximal vs distal windows).
//!
//! Reads both classes, reports their statistics, tokenizes them with every tokenizer genolm
//! ships, checks that reverse-complement augmentation round-trips, scores the simplest
//! training-free baseline (GC content) by AUROC, then trains a classifier on a seeded stratified
//! 80/20 split and reports its held-out test metrics (run directory in `--out`).

use std::io::BufRead;
use std::path::PathBuf;

use serde::Serialize;

use crate::augment::{reverse_complement, StrandTracks};
use crate::error::{Error, Result};
use crate::io::fasta::{Reader, Record};
use crate::seq::{self, SeqPolicy};
use crate::tokenize::{self, Tokenizer};

/// Embedded demo class files (see `datasets/demo/README.md` for source and licence).
const PROXIMAL: &[u8] = include_bytes!("../../datasets/demo/proximal.fa.gz");
const DISTAL: &[u8] = include_bytes!("../../datasets/demo/distal.fa.gz");
/// The shipped BPE tokenizer (see `tokenizers/README.md`).
const SHIPPED_BPE: &str = include_str!("../../tokenizers/dna_bpe_4096.json");

/// Arguments of `genolm demo`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  genolm demo\n  genolm demo --json --seed 7 --model cnn --out runs/demo-cnn\n  genolm demo --positive my_promoters.fa --negative my_background.fa"
)]
pub struct Args {
    /// Positive-class FASTA (default: the embedded fly promoter-proximal windows).
    #[arg(long)]
    pub positive: Option<String>,
    /// Negative-class FASTA (default: the embedded fly distal upstream windows).
    #[arg(long)]
    pub negative: Option<String>,
    /// Seed (the demo is deterministic; the seed is recorded for the runs that build on it).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Run directory of the training job (the demo report is written there as demo.json).
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Model to train (`gb-cnn`, `cnn`, `transformer`, `mamba`, `caduceus`, `hyena`, `kmer-lr`).
    #[arg(long, default_value = "gb-cnn")]
    pub model: String,
    /// Training epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Skip the training job (statistics and tokenizers only).
    #[arg(long)]
    pub no_train: bool,
}

/// Summary of one tokenizer on the demo set.
#[derive(Debug, Serialize)]
pub struct TokenizerSummary {
    /// The tokenizer spec.
    pub spec: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Mean tokens per sequence.
    pub tokens_per_seq: f64,
    /// Bases per token (compression).
    pub bases_per_token: f64,
    /// Records for which decode(encode(x)) == x.
    pub lossless_records: usize,
}

/// The demo report.
#[derive(Debug, Serialize)]
pub struct DemoReport {
    /// Seed given.
    pub seed: u64,
    /// Records in the positive class.
    pub positive_records: usize,
    /// Records in the negative class.
    pub negative_records: usize,
    /// Mean GC of the positive class.
    pub positive_gc: f64,
    /// Mean GC of the negative class.
    pub negative_gc: f64,
    /// Soft-masked fraction of the positive class.
    pub positive_softmask: f64,
    /// Soft-masked fraction of the negative class.
    pub negative_softmask: f64,
    /// AUROC of GC content as a training-free score for the positive class.
    pub gc_auroc: f64,
    /// Records whose reverse complement applied twice gave back the record and its labels.
    pub rc_roundtrip_ok: usize,
    /// One row per tokenizer.
    pub tokenizers: Vec<TokenizerSummary>,
    /// Held-out test metrics of the trained model (absent with `--no-train`).
    pub test: Option<serde_json::Value>,
}

fn load(path: &Option<String>, embedded: &'static [u8], label: &str) -> Result<Vec<Record>> {
    let policy = SeqPolicy {
        keep_softmask: true,
    };
    let recs: Vec<Record> = match path {
        Some(p) => Reader::open(p, policy)?.collect::<Result<_>>()?,
        None => {
            let r: Box<dyn BufRead + Send> = crate::io::open_bytes(embedded, label)?;
            Reader::new(r, label, policy).collect::<Result<_>>()?
        }
    };
    if recs.is_empty() {
        return Err(Error::input(format!("{label}: no records")));
    }
    Ok(recs)
}

fn summarize(tok: &dyn Tokenizer, recs: &[&Record]) -> Result<TokenizerSummary> {
    let seqs: Vec<Vec<u8>> = recs.iter().map(|r| r.seq.to_ascii_uppercase()).collect();
    let refs: Vec<&[u8]> = seqs.iter().map(Vec::as_slice).collect();
    let ids = tok.encode_batch(&refs)?;
    let tokens: usize = ids.iter().map(Vec::len).sum();
    let bases: usize = seqs.iter().map(Vec::len).sum();
    let mut lossless = 0;
    for (s, i) in seqs.iter().zip(&ids) {
        if tok.decode(i)? == *s {
            lossless += 1;
        }
    }
    Ok(TokenizerSummary {
        spec: tok.spec(),
        vocab_size: tok.vocab_size(),
        tokens_per_seq: tokens as f64 / seqs.len() as f64,
        bases_per_token: bases as f64 / tokens.max(1) as f64,
        lossless_records: lossless,
    })
}

/// Run the demo and return its report.
pub fn demo(args: &Args) -> Result<DemoReport> {
    let pos = load(&args.positive, PROXIMAL, "embedded:proximal.fa.gz")?;
    let neg = load(&args.negative, DISTAL, "embedded:distal.fa.gz")?;
    let gc = |rs: &[Record]| {
        rs.iter()
            .map(|r| seq::gc_fraction(&r.seq))
            .collect::<Vec<_>>()
    };
    let (gp, gn) = (gc(&pos), gc(&neg));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let soft = |rs: &[Record]| {
        let lower: usize = rs
            .iter()
            .map(|r| r.seq.iter().filter(|b| b.is_ascii_lowercase()).count())
            .sum();
        lower as f64 / rs.iter().map(|r| r.seq.len()).sum::<usize>() as f64
    };
    let all: Vec<&Record> = pos.iter().chain(&neg).collect();
    let rc_ok = all
        .iter()
        .filter(|r| {
            let t = StrandTracks {
                plus: (0..r.seq.len()).map(|i| (i % 6) as u8).collect(),
                minus: vec![0; r.seq.len()],
            };
            let (s1, t1) = reverse_complement(&r.seq, &t);
            let (s2, t2) = reverse_complement(&s1, &t1);
            s2 == r.seq && t2 == t
        })
        .count();
    let mut tokenizers = Vec::new();
    for spec in ["char", "kmer:6", "kmer:6:1"] {
        tokenizers.push(summarize(tokenize::from_spec(spec)?.as_ref(), &all)?);
    }
    let bpe = tokenize::Bpe::from_json_str(SHIPPED_BPE, "tokenizers/dna_bpe_4096.json")?;
    tokenizers.push(summarize(&bpe, &all)?);
    Ok(DemoReport {
        seed: args.seed,
        positive_records: pos.len(),
        negative_records: neg.len(),
        positive_gc: mean(&gp),
        negative_gc: mean(&gn),
        positive_softmask: soft(&pos),
        negative_softmask: soft(&neg),
        gc_auroc: {
            let scores: Vec<f64> = gp.iter().chain(&gn).copied().collect();
            let labels: Vec<u32> = gp.iter().map(|_| 1).chain(gn.iter().map(|_| 0)).collect();
            crate::train::metrics::auroc(&scores, &labels)
        },
        rc_roundtrip_ok: rc_ok,
        tokenizers,
        test: if args.no_train {
            None
        } else {
            Some(train_job(args, &pos, &neg)?)
        },
    })
}

#[derive(clap::Parser)]
struct TrainWrap {
    #[command(flatten)]
    a: crate::cli::train::Args,
}

/// Train on a seeded stratified 80/20 split; returns the test report.
fn train_job(args: &Args, pos: &[Record], neg: &[Record]) -> Result<serde_json::Value> {
    use clap::Parser;
    let seqs: Vec<Vec<u8>> = neg
        .iter()
        .chain(pos)
        .map(|r| r.seq.to_ascii_uppercase())
        .collect();
    let labels: Vec<u32> = (0..neg.len())
        .map(|_| 0)
        .chain((0..pos.len()).map(|_| 1))
        .collect();
    let classes = vec!["distal".to_string(), "proximal".to_string()];
    let all = crate::data::LabeledSet::from_vecs(seqs, labels, classes, "demo")?;
    let split = crate::data::folds::stratified_holdout(&all.labels, 0.2, args.seed)?;
    let (rest, test) = all.split(&split);
    let hold = crate::data::folds::stratified_holdout(&rest.labels, 0.1, args.seed)?;
    let (train, valid) = rest.split(&hold);
    let argv = [
        "train".to_string(),
        "--train".into(),
        "embedded demo set".into(),
        "--out".into(),
        args.out.display().to_string(),
        "--model".into(),
        args.model.clone(),
        "--epochs".into(),
        args.epochs.to_string(),
        "--seed".into(),
        args.seed.to_string(),
        "--patience".into(),
        "0".into(),
    ];
    let targs = TrainWrap::try_parse_from(argv)
        .map_err(|e| Error::input(crate::error::one_line(&e.to_string())))?
        .a;
    Ok(crate::cli::train::run_sets(&targs, &train, &valid, Some(&test))?.report)
}

/// Run `genolm demo`.
pub fn run(args: Args) -> Result<()> {
    let r = demo(&args)?;
    let json = serde_json::to_string_pretty(&r).map_err(|e| Error::Internal(e.to_string()))?;
    if !args.no_train {
        let out = args.out.join("demo.json");
        crate::io::write_atomic(&out, |w| {
            w.write_all(json.as_bytes())
                .map_err(|e| Error::io(out.display(), e))
        })?;
    }
    if args.json {
        println!("{json}");
        return Ok(());
    }
    println!("genolm demo: promoter-proximal (positive) vs distal (negative) upstream windows");
    println!(
        "  records        {:>8} {:>8}",
        r.positive_records, r.negative_records
    );
    println!(
        "  mean GC        {:>8.4} {:>8.4}",
        r.positive_gc, r.negative_gc
    );
    println!(
        "  soft-masked    {:>8.4} {:>8.4}",
        r.positive_softmask, r.negative_softmask
    );
    println!(
        "  GC-content AUROC (training-free baseline; 0.5 = chance, < 0.5 = positives AT-richer): {:.4}",
        r.gc_auroc
    );
    println!(
        "  reverse complement x2 round-trips: {}/{}",
        r.rc_roundtrip_ok,
        r.positive_records + r.negative_records
    );
    let w = r.tokenizers.iter().map(|t| t.spec.len()).max().unwrap_or(9);
    println!(
        "  {:<w$}  {:>6}  {:>10}  {:>11}  {:>8}",
        "tokenizer", "vocab", "tokens/seq", "bases/token", "lossless"
    );
    for t in &r.tokenizers {
        println!(
            "  {:<w$}  {:>6}  {:>10.1}  {:>11.2}  {:>8}",
            t.spec, t.vocab_size, t.tokens_per_seq, t.bases_per_token, t.lossless_records
        );
    }
    if let Some(t) = &r.test {
        let fig = |k: &str| t.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        println!(
            "  {} trained {} epochs on {} examples; held-out test ({} examples): accuracy {:.4}, \
             F1 {:.4}, MCC {:.4}, AUROC {:.4}, AUPRC {:.4}",
            args.model,
            args.epochs,
            t["n_train"],
            t["n_test"],
            fig("accuracy"),
            fig("f1"),
            fig("mcc"),
            fig("auroc"),
            fig("auprc")
        );
        println!("  run directory: {}", args.out.display());
    }
    Ok(())
}
