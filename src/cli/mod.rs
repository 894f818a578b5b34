//! Command-line interface: one file per subcommand, each with `Args` and `run`.

use clap::{Parser, Subcommand};

pub mod annotate;
pub mod bench;
pub mod benchmark;
pub mod bpe;
pub mod demo;
pub mod eval;
pub mod eval_annotation;
pub mod extract;
pub mod labels;
pub mod leakage;
pub mod markov;
pub mod predict;
pub mod pretrain;
pub mod segment;
pub mod split;
pub mod stats;
pub mod tokenize;
pub mod train;

/// genolm: genomic language-model toolkit.
#[derive(Debug, Parser)]
#[command(name = "genolm", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
    /// Worker threads for rayon and the tensor kernels (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Compute device for training, evaluation, prediction and benchmarks: cpu, cuda or cuda:N
    /// (CUDA needs a build with `--features cuda`).
    #[arg(long, global = true, default_value = "cpu")]
    pub device: String,
}

/// All subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the main job on the embedded demo set.
    Demo(demo::Args),
    /// Per-file sequence statistics (records, bp, N50, GC, N and soft-mask fractions).
    Stats(stats::Args),
    /// Extract spliced, strand-correct CDS / transcript / gene / promoter sequences.
    Extract(extract::Args),
    /// Tokenize FASTA records into JSONL of token ids.
    Tokenize(tokenize::Args),
    /// Train or inspect a DNA BPE tokenizer.
    Bpe(bpe::Args),
    /// Per-class base counts of GFF3-derived label tracks, per strand.
    Labels(labels::Args),
    /// Train a model on labelled sequences.
    Train(Box<train::Args>),
    /// Evaluate a trained model on labelled data.
    Eval(eval::Args),
    /// Class probabilities for FASTA records.
    Predict(predict::Args),
    /// Accuracy benchmarks on published data sets (promoters).
    Benchmark(benchmark::Args),
    /// Throughput benchmarks.
    Bench(bench::Args),
    /// Train/valid/test splits: random, by chromosome, or homology-aware (with a leakage report).
    Split(split::Args),
    /// Test-vs-train leakage: each test sequence's highest identity to any training sequence.
    Leakage(leakage::Args),
    /// K-th order Markov baseline: bits per base on held-out sequences.
    Markov(markov::Args),
    /// Gene-annotation accuracy against a reference GFF3 (base, exon, transcript, gene levels).
    EvalAnnotation(eval_annotation::Args),
    /// Pretrain a language model on genomes (masked-token or next-token), scored in bits per base.
    Pretrain(Box<pretrain::Args>),
    /// Annotate a genome (GFF3 gene models) with a `train --task segment` model.
    Annotate(annotate::Args),
}

/// Fix the number of worker threads for rayon and candle (which reads `RAYON_NUM_THREADS`).
pub fn set_threads(n: usize) -> crate::Result<()> {
    if n == 0 {
        return Err(crate::Error::input("--threads must be at least 1"));
    }
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    // A pool may already exist (tests); that is not an error for the command line.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    Ok(())
}

/// Keep freed tensor buffers in the process: glibc otherwise returns large blocks to the OS
/// and page-faults them back in on every training step (measured ~40% of a backward pass).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator thresholds; called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Parse the command line, run it, print any error as one line; returns the exit code.
pub fn main() -> i32 {
    tune_allocator();
    // candle 0.11's element-wise ops run on a spinning barrier pool beside rayon; on few cores
    // the spinning starves our rayon kernels (measured: GB CNN step 218 ms → 87 ms on 2 cores).
    // Keep candle's own pool single-threaded unless the user asks otherwise.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    if let Some(n) = cli.threads {
        if let Err(e) = set_threads(n) {
            eprintln!("genolm: error: {e}");
            return e.exit_code();
        }
    }
    if let Err(e) = crate::device::parse(&cli.device).and_then(crate::device::set) {
        eprintln!("genolm: error: {e}");
        return e.exit_code();
    }
    let result = match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Stats(a) => stats::run(a),
        Command::Extract(a) => extract::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Bpe(a) => bpe::run(a),
        Command::Labels(a) => labels::run(a),
        Command::Train(a) => train::run(*a),
        Command::Eval(a) => eval::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Benchmark(a) => benchmark::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Split(a) => split::run(a),
        Command::Leakage(a) => leakage::run(a),
        Command::Markov(a) => markov::run(a),
        Command::EvalAnnotation(a) => eval_annotation::run(a),
        Command::Pretrain(a) => pretrain::run(*a),
        Command::Annotate(a) => annotate::run(a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("genolm: error: {}", crate::error::one_line(&e.to_string()));
            e.exit_code()
        }
    }
}
