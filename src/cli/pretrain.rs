//! `genolm pretrain`: masked-token or next-token pretraining on genome FASTA files.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use crate::cli::train::{backbone_config, OptimArgs};
use crate::data::windows::{Genome, SoftMask};
use crate::error::{Error, Result};
use crate::tokenize;
use crate::train::pretrain::{
    self, make_causal, LmConfig, Objective, PretrainConfig, PretrainData, PretrainJob,
    PretrainOptions, TokenInfo,
};
use crate::train::run;

/// Arguments of `genolm pretrain`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    long_about = "Pretrain a language model on genome sequences: masked-token prediction (mlm: 15 % of \
tokens selected, 80/10/10 mask/random/keep) or next-token prediction (ntp: a causal backbone). \
Training windows are drawn at random from every record not held out (N-capped, optionally \
reverse-complemented); the held-out records are tiled into windows and scored at the end: \
RUN_DIR/report.json holds the held-out loss, perplexity and bits_per_base (nats over the \
scored tokens / ln 2 / bases they cover; for mlm over the masked tokens only). Compare with \
`genolm markov --order 5` on the same --holdout.\n\n\
The run directory holds config.toml ([model.backbone] is the backbone, as in `genolm train`), \
metrics.jsonl, model.safetensors (best held-out loss; backbone tensors named backbone.*), \
last.safetensors + state.json (resumable checkpoint) and report.json.",
    after_help = "Examples:\n  genolm --threads 2 pretrain --objective ntp --model hyena --causal --tokenizer char \\\n    --genome genome.fa.gz --holdout Chr5 --out runs/lm --max-steps 2000 --seq-len 512\n  genolm pretrain --objective mlm --model transformer --tokenizer kmer:6:1 --mask-span 6 \\\n    --genome g.fa.gz --holdout chrX --out runs/mlm\n\nKill a run at any time and continue it with --resume (same options)."
)]
pub struct Args {
    /// Objective: `mlm` (masked tokens) or `ntp` (next token; needs a causal backbone).
    #[arg(long, value_enum)]
    pub objective: Objective,
    /// Backbone: hyena, mamba, transformer, transformer-dense, cnn (pool = 1 in --model-config)
    /// or caduceus (mlm only).
    #[arg(long, default_value = "hyena")]
    pub model: String,
    /// A TOML file with the backbone settings (overrides --model's defaults).
    #[arg(long)]
    pub model_config: Option<PathBuf>,
    /// Make the backbone causal (hyena/mamba: bidirectional = false; transformer: causal = true).
    #[arg(long)]
    pub causal: bool,
    /// Tokenizer spec (`char`, `kmer:K[:STRIDE]`, `bpe:PATH`, `onehot`).
    #[arg(long, default_value = "char")]
    pub tokenizer: String,
    /// Genome FASTA files (plain, gzip, BGZF).
    #[arg(long, required = true, num_args = 1..)]
    pub genome: Vec<String>,
    /// Record names held out of training and used for evaluation.
    #[arg(long, num_args = 1..)]
    pub holdout: Vec<String>,
    /// Run directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Optimizer steps.
    #[arg(long, default_value_t = 1000)]
    pub max_steps: u64,
    /// Tokens per window.
    #[arg(long, default_value_t = 512)]
    pub seq_len: usize,
    /// Windows per micro-batch.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub accumulate: usize,
    /// Optimizer flags.
    #[command(flatten)]
    pub optim: OptimArgs,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate on held-out windows every N steps (0 = only at the end).
    #[arg(long, default_value_t = 200)]
    pub eval_every: u64,
    /// Held-out windows (evenly spaced) for the periodic evaluations (0 = all).
    #[arg(long, default_value_t = 64)]
    pub eval_windows: usize,
    /// Save a resumable checkpoint every N steps (0 = only at the end).
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: u64,
    /// Continue an interrupted run in --out.
    #[arg(long)]
    pub resume: bool,
    /// Redraw training windows with a larger fraction of N.
    #[arg(long, default_value_t = 0.1)]
    pub max_n_frac: f64,
    /// Snap window starts to a grid of one window and shift them by up to this many bases
    /// (default: uniform random starts).
    #[arg(long)]
    pub max_shift: Option<usize>,
    /// Soft-masked (lower-case) bases: `keep` (as bases) or `n` (as N: capped, never scored).
    #[arg(long, value_enum, default_value = "keep")]
    pub softmask: SoftMask,
    /// Turn off reverse-complement augmentation of training windows.
    #[arg(long)]
    pub no_rc_augment: bool,
    /// MLM: probability that a token is selected.
    #[arg(long, default_value_t = 0.15)]
    pub mask_prob: f64,
    /// MLM: mask spans of this many tokens (0 = auto: ceil(k / stride) for overlapping k-mers,
    /// else 1).
    #[arg(long, default_value_t = 0)]
    pub mask_span: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Run `genolm pretrain`.
pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let tok = tokenize::from_spec(&args.tokenizer)?;
    let spec = tokenize::parse_spec(&tok.spec())?;
    let mut backbone = backbone_config(&args.model, args.model_config.as_deref())?;
    if args.causal {
        make_causal(&mut backbone)?;
    }
    let info = TokenInfo::new(tok.as_ref())?;
    let mask_span = match (args.mask_span, &spec) {
        (0, tokenize::Spec::Kmer { k, stride, .. }) if stride < k => k.div_ceil(*stride),
        (0, _) => 1,
        (s, _) => s,
    };
    let cfg = PretrainConfig {
        task: "pretrain".into(),
        tokenizer: args.tokenizer.clone(),
        data: PretrainData {
            genome: args.genome.clone(),
            holdout: args.holdout.clone(),
        },
        train: PretrainOptions {
            objective: args.objective,
            batch_size: args.batch,
            accumulate: args.accumulate,
            lr: args.optim.lr,
            weight_decay: args.optim.weight_decay,
            warmup_frac: args.optim.warmup,
            min_lr_ratio: 0.01,
            clip_norm: args.optim.clip_norm,
            seed: args.seed,
            max_steps: args.max_steps,
            eval_every: args.eval_every,
            eval_windows: args.eval_windows,
            checkpoint_every: args.checkpoint_every,
            rc_augment: !args.no_rc_augment,
            max_n_frac: args.max_n_frac,
            max_shift: args.max_shift,
            softmask: args.softmask,
            mask_prob: args.mask_prob,
            mask_span,
        },
        model: LmConfig {
            vocab_size: info.vocab,
            tokenizer_vocab: tok.vocab_size(),
            mask_id: info.mask_id,
            seq_len: args.seq_len,
            backbone,
        },
    };
    if args.seq_len < 2 {
        return Err(Error::input("--seq-len must be at least 2"));
    }
    // Fail on model problems (pooling backbone, bidirectional NTP) before reading the genome.
    pretrain::build_lm(&cfg.model, cfg.train.seed)?;
    if args.objective == Objective::Ntp && !pretrain::is_causal(&cfg.model.backbone) {
        return Err(Error::input(format!(
            "--objective ntp needs a causal backbone, but this {} config is bidirectional; \
             add --causal (or set bidirectional = false / causal = true in --model-config)",
            cfg.model.backbone.name()
        )));
    }
    let genome = Genome::load(&args.genome, &args.holdout, args.softmask)?;
    let cfg = pretrain::init_run(&args.out, cfg, args.resume)?;
    let job = PretrainJob {
        config: &cfg,
        tokenizer: tok.as_ref(),
        genome: &genome,
        dir: &args.out,
        resume: args.resume,
        progress: !args.quiet,
    };
    let (st, eval) = pretrain::pretrain(&job)?;
    let (_, weights) = pretrain::build_lm(&cfg.model, 0)?;
    let tokens_per_s = st.tokens as f64 / st.train_seconds.max(1e-9);
    let mut report = json!({
        "objective": args.objective.name(),
        "model": cfg.model.backbone.name(),
        "tokenizer": cfg.tokenizer,
        "seq_len": cfg.model.seq_len,
        "parameters": pretrain::param_count(&weights),
        "mask_token": if info.mask_added { "added row" } else { "tokenizer [MASK]" },
        "seed": args.seed,
        "steps": st.step,
        "best_step": st.best_step,
        "train_tokens": st.tokens,
        "tokens_per_s": tokens_per_s,
        "train_bases": genome.train_bases(),
        "holdout": args.holdout,
        "holdout_bases": genome.holdout_bases(),
    });
    if let (Some(e), Some(obj)) = (eval, report.as_object_mut()) {
        obj.insert("loss".into(), json!(e.loss));
        obj.insert("perplexity".into(), json!(e.perplexity));
        obj.insert("bits_per_base".into(), json!(e.bits_per_base));
        obj.insert(
            "bits_per_base_over".into(),
            json!(match args.objective {
                Objective::Mlm => "masked tokens",
                Objective::Ntp => "next tokens",
            }),
        );
        obj.insert("scored_tokens".into(), json!(e.tokens));
        obj.insert("scored_bases".into(), json!(e.bases));
        obj.insert("eval_windows".into(), json!(e.windows));
    }
    if let Some(obj) = report.as_object_mut() {
        obj.insert("seconds".into(), json!(started.elapsed().as_secs_f64()));
    }
    let text = serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
    run::write_text(&args.out, "report.json", &(text + "\n"))?;
    match eval {
        Some(e) => println!(
            "{} {} ({}): held-out loss {:.4}, perplexity {:.3}, {:.4} bits/base on {} tokens; \
             {:.0} tokens/s (run dir {})",
            args.objective.name(),
            cfg.model.backbone.name(),
            cfg.tokenizer,
            e.loss,
            e.perplexity,
            e.bits_per_base,
            e.tokens,
            tokens_per_s,
            args.out.display()
        ),
        None => println!(
            "{} {}: {} steps, no --holdout to evaluate; {:.0} tokens/s (run dir {})",
            args.objective.name(),
            cfg.model.backbone.name(),
            st.step,
            tokens_per_s,
            args.out.display()
        ),
    }
    Ok(())
}
