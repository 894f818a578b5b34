//! Command-line interface: one file per subcommand, each with `Args` and `run`.

use clap::{Parser, Subcommand};

pub mod bench;
pub mod bpe;
pub mod demo;
pub mod extract;
pub mod labels;
pub mod stats;
pub mod tokenize;

/// genolm: genomic language-model toolkit.
#[derive(Debug, Parser)]
#[command(name = "genolm", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
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
    /// Throughput benchmarks.
    Bench(bench::Args),
}

/// Parse the command line, run it, print any error as one line; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Stats(a) => stats::run(a),
        Command::Extract(a) => extract::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Bpe(a) => bpe::run(a),
        Command::Labels(a) => labels::run(a),
        Command::Bench(a) => bench::run(a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("genolm: error: {}", crate::error::one_line(&e.to_string()));
            e.exit_code()
        }
    }
}
