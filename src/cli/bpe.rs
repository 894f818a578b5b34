//! `genolm bpe`: train a DNA BPE tokenizer from FASTA, or inspect a `tokenizer.json`.

use std::path::PathBuf;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::tokenize::bpe::{self, Bpe, SampleConfig, TrainConfig};
use crate::tokenize::Tokenizer;

/// Largest `--max-bases`: the HF trainer needs ~60 bytes of memory per training base.
const MAX_TRAIN_BASES: u64 = 100_000_000;

/// Arguments of `genolm bpe`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  genolm bpe train --vocab-size 4096 --out tokenizers/dna_bpe_4096.json genome.fa.gz
  genolm bpe info tokenizers/dna_bpe_4096.json")]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: BpeCommand,
}

/// Subcommands of `genolm bpe`.
#[derive(Debug, clap::Subcommand)]
pub enum BpeCommand {
    /// Train a BPE vocabulary on a seeded sample of ~1 kb chunks of FASTA sequence.
    Train(TrainArgs),
    /// Print a tokenizer.json's vocabulary size, special tokens and an example encoding.
    Info(InfoArgs),
}

/// Arguments of `genolm bpe train`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The input records are cut into --chunk-len chunks (all-N chunks skipped) and a uniform
reservoir sample of at most --max-bases bases is drawn with --seed, so the result is
reproducible and memory stays bounded (training needs ~60 MB per MB of sample).
Special tokens get ids [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4; the alphabet is A C G T N.

Example:
  genolm bpe train --vocab-size 4096 --seed 42 --max-bases 4000000 \\
      --out tokenizers/dna_bpe_4096.json genomes/ecoli_k12_mg1655/genome.fna.gz \\
      genomes/yeast_chrI_II/genome.fa.gz")]
pub struct TrainArgs {
    /// Target vocabulary size (special tokens and A C G T N included).
    #[arg(long, value_name = "N")]
    pub vocab_size: usize,
    /// Where to write the tokenizer.json (atomically).
    #[arg(long, short = 'o', value_name = "PATH")]
    pub out: PathBuf,
    /// FASTA inputs (plain, gzip or BGZF).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Seed of the chunk sample.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Most bases to train on (a uniform sample of chunks).
    #[arg(long, default_value_t = 4_000_000, value_name = "N")]
    pub max_bases: u64,
    /// Chunk length in bases; each chunk is one BPE word.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub chunk_len: usize,
    /// Merge a pair only if it occurs at least this often.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub min_frequency: u64,
    /// Longest token in bases (default: no limit).
    #[arg(long, value_name = "N")]
    pub max_token_length: Option<usize>,
    /// Show progress bars from the trainer.
    #[arg(long)]
    pub progress: bool,
}

/// Arguments of `genolm bpe info`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  genolm bpe info tokenizers/dna_bpe_4096.json")]
pub struct InfoArgs {
    /// A Hugging Face tokenizer.json with a BPE model.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

/// Run `genolm bpe`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        BpeCommand::Train(a) => train(a),
        BpeCommand::Info(a) => info(a),
    }
}

fn train(a: TrainArgs) -> Result<()> {
    if !(bpe::MIN_VOCAB..=bpe::MAX_VOCAB).contains(&a.vocab_size) {
        return Err(Error::input(format!(
            "--vocab-size must be in {}..={} (got {})",
            bpe::MIN_VOCAB,
            bpe::MAX_VOCAB,
            a.vocab_size
        )));
    }
    if !(16..=1_000_000).contains(&a.chunk_len) {
        return Err(Error::input(format!(
            "--chunk-len must be in 16..=1000000 (got {})",
            a.chunk_len
        )));
    }
    if a.max_bases < a.chunk_len as u64 || a.max_bases > MAX_TRAIN_BASES {
        return Err(Error::input(format!(
            "--max-bases must be in {}..={MAX_TRAIN_BASES} (got {}); training needs ~60 MB \
             of memory per MB of sample",
            a.chunk_len, a.max_bases
        )));
    }
    if a.max_token_length == Some(0) {
        return Err(Error::input("--max-token-length must be at least 1"));
    }
    let out_dir = match a.out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !out_dir.is_dir() {
        return Err(Error::input(format!(
            "{}: output directory {} does not exist",
            a.out.display(),
            out_dir.display()
        )));
    }
    let started = Instant::now();
    let sample = bpe::sample_chunks(
        &a.files,
        &SampleConfig {
            chunk_len: a.chunk_len,
            max_bases: a.max_bases,
            seed: a.seed,
        },
    )?;
    if sample.chunks.is_empty() {
        return Err(Error::input(format!(
            "no sequence to train on in {} (empty or all-N input)",
            a.files.join(", ")
        )));
    }
    let cfg = TrainConfig {
        vocab_size: a.vocab_size,
        min_frequency: a.min_frequency,
        max_token_length: a.max_token_length,
        show_progress: a.progress,
    };
    let tok = bpe::train(sample.chunks.iter(), &cfg)?;
    tok.save(&a.out)?;
    eprintln!(
        "genolm bpe train: vocabulary {} (asked {}) from {} chunks / {} bases sampled of {} \
         bases in {} records (seed {}), {:.1}s -> {}",
        tok.vocab_size(),
        a.vocab_size,
        sample.chunks.len(),
        sample.bases(),
        sample.bases_seen,
        sample.records,
        a.seed,
        started.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

fn info(a: InfoArgs) -> Result<()> {
    let tok = Bpe::from_file(&a.path)?;
    let specials: Vec<String> = tok
        .special_tokens()
        .iter()
        .map(|(name, id)| format!("{name}={id}"))
        .collect();
    let example = b"ACGTACGTTTGACCAGTCAGGTACCATG";
    let ids = tok.encode(example)?;
    let pieces: Vec<String> = ids
        .iter()
        .map(|&id| tok.id_to_token(id).unwrap_or_default())
        .collect();
    println!("file\t{}", a.path.display());
    println!("vocab_size\t{}", tok.vocab_size());
    println!("special_tokens\t{}", specials.join(" "));
    println!(
        "example\t{} -> {}",
        String::from_utf8_lossy(example),
        pieces.join(" ")
    );
    Ok(())
}
