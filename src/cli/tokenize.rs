//! `genolm tokenize`: FASTA records to JSONL token ids, one line per record.

use std::io::Write;
use std::path::PathBuf;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::io::fasta::{Reader, Record};
use crate::seq::SeqPolicy;
use crate::tokenize::{from_spec, Tokenizer};

/// Records are encoded in parallel in batches of about this many bases.
const BATCH_BASES: usize = 16 << 20;
/// … or this many records, whichever comes first.
const BATCH_RECORDS: usize = 4096;

/// Arguments of `genolm tokenize`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Tokenizer specs:
  onehot[:zero|quarter]     base codes A=0 C=1 G=2 T=3 N=4 (tensor form: one-hot rows)
  char                      [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, A=5 C=6 G=7 T=8 N=9
  kmer:K[:STRIDE[:TAIL]]    K in 1..=12; STRIDE defaults to K (non-overlapping);
                            TAIL: bases (default, lossless) | drop | unk | error
  bpe:PATH                  a Hugging Face tokenizer.json (e.g. tokenizers/dna_bpe_4096.json)

Output: one JSON object per record, {\"name\":\"chr1\",\"ids\":[...]}.

Examples:
  genolm tokenize --tokenizer kmer:6 genome.fa.gz --out tokens.jsonl
  genolm tokenize --tokenizer kmer:3:1 --add-special reads.fa
  genolm tokenize --tokenizer bpe:tokenizers/dna_bpe_4096.json promoters.fa > ids.jsonl")]
pub struct Args {
    /// Tokenizer spec: onehot, char, kmer:K (or kmer:K:STRIDE, kmer:K:STRIDE:TAIL) or bpe:PATH.
    #[arg(long, short = 't', value_name = "SPEC")]
    pub tokenizer: String,
    /// FASTA input: plain, gzip or BGZF; `-` reads stdin.
    #[arg(value_name = "FILE")]
    pub file: String,
    /// Write JSONL here (atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Wrap each record's ids in `[CLS]` ... `[SEP]` (BPE: the file's post-processor).
    #[arg(long)]
    pub add_special: bool,
}

/// Run `genolm tokenize`.
pub fn run(args: Args) -> Result<()> {
    let tok = from_spec(&args.tokenizer)?;
    let mut reader = Reader::open(&args.file, SeqPolicy::default())?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("-"));
    let shown = match &args.out {
        Some(p) => p.display().to_string(),
        None => "<stdout>".to_string(),
    };
    let mut totals = (0u64, 0u64, 0u64);
    crate::io::write_atomic(&out, |w| {
        totals = tokenize_stream(
            tok.as_ref(),
            &mut reader,
            &args.file,
            args.add_special,
            w,
            &shown,
        )?;
        Ok(())
    })?;
    if args.out.is_some() {
        let (records, bases, tokens) = totals;
        eprintln!(
            "genolm tokenize: {records} records, {bases} bases -> {tokens} tokens ({}) -> {shown}",
            tok.spec()
        );
    }
    Ok(())
}

/// Encode every record of `reader` and write JSONL; returns (records, bases, tokens).
fn tokenize_stream(
    tok: &dyn Tokenizer,
    reader: &mut Reader,
    file: &str,
    add_special: bool,
    w: &mut dyn Write,
    shown: &str,
) -> Result<(u64, u64, u64)> {
    let mut totals = (0u64, 0u64, 0u64);
    let mut batch: Vec<Record> = Vec::new();
    let mut batch_bases = 0usize;
    let mut done = false;
    while !done {
        match reader.next() {
            Some(rec) => {
                let rec = rec?;
                batch_bases += rec.seq.len();
                batch.push(rec);
            }
            None => done = true,
        }
        if batch.is_empty() || (!done && batch_bases < BATCH_BASES && batch.len() < BATCH_RECORDS) {
            continue;
        }
        let encoded: Vec<Result<Vec<u32>>> = batch
            .par_iter()
            .map(|r| {
                let ids = if add_special {
                    tok.encode_with_special(&r.seq)
                } else {
                    tok.encode(&r.seq)
                };
                ids.map_err(|e| Error::input(format!("{file}: record '{}': {e}", r.name)))
            })
            .collect();
        for (rec, ids) in batch.iter().zip(encoded) {
            let ids = ids?;
            write_line(w, &rec.name, &ids).map_err(|e| Error::io(shown, e))?;
            totals.0 += 1;
            totals.1 += rec.seq.len() as u64;
            totals.2 += ids.len() as u64;
        }
        batch.clear();
        batch_bases = 0;
    }
    Ok(totals)
}

/// One JSONL line: `{"name":...,"ids":[...]}`.
fn write_line(w: &mut dyn Write, name: &str, ids: &[u32]) -> std::io::Result<()> {
    w.write_all(b"{\"name\":")?;
    serde_json::to_writer(&mut *w, name)?;
    w.write_all(b",\"ids\":")?;
    serde_json::to_writer(&mut *w, ids)?;
    w.write_all(b"}\n")
}
