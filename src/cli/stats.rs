//! `genolm stats`: per-file sequence statistics.

use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::io::fasta::Reader;
use crate::seq::{self, SeqPolicy};

/// Arguments of `genolm stats`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  genolm stats --json genome.fa.gz other.fa\n  zcat g.fa.gz | genolm stats -"
)]
pub struct Args {
    /// FASTA files (plain, gzip, BGZF) or `-` for stdin.
    #[arg(required = true)]
    pub files: Vec<String>,
    /// Print JSON (a list with one object per file) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Statistics of one FASTA file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileStats {
    /// The file as given.
    pub file: String,
    /// Number of records.
    pub records: u64,
    /// Total bases.
    pub bases: u64,
    /// Shortest record length.
    pub min_len: u64,
    /// Longest record length.
    pub max_len: u64,
    /// Mean record length.
    pub mean_len: f64,
    /// N50 of record lengths.
    pub n50: u64,
    /// G+C fraction among A/C/G/T bases (N and other ambiguity codes excluded).
    pub gc: f64,
    /// Fraction of bases that are N or another ambiguity code.
    pub n_fraction: f64,
    /// Fraction of bases in lower case (soft-masked).
    pub softmask_fraction: f64,
}

// Byte classes for counting: upper A/T, upper C/G, upper ambiguous, then lower-case ones, invalid.
const AT: usize = 0;
const CG: usize = 1;
const AMB: usize = 2;
const LOWER: usize = 3;
const INVALID: usize = 6;

static CLASS: [u8; 256] = build_class();

const fn build_class() -> [u8; 256] {
    let mut t = [INVALID as u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let up = c.to_ascii_uppercase();
        let class = match up {
            b'A' | b'T' | b'U' => AT,
            b'C' | b'G' => CG,
            b'N' | b'R' | b'Y' | b'S' | b'W' | b'K' | b'M' | b'B' | b'D' | b'H' | b'V' => AMB,
            _ => INVALID,
        };
        t[b] = if class != INVALID && c.is_ascii_lowercase() {
            (class + LOWER) as u8
        } else {
            class as u8
        };
        b += 1;
    }
    t
}

/// Add the byte classes of `chunk` to four interleaved counters (avoids store-forwarding stalls).
#[inline]
fn count_classes(chunk: &[u8], c: &mut [[u64; 8]; 4]) {
    let mut it = chunk.chunks_exact(4);
    for q in &mut it {
        c[0][CLASS[q[0] as usize] as usize] += 1;
        c[1][CLASS[q[1] as usize] as usize] += 1;
        c[2][CLASS[q[2] as usize] as usize] += 1;
        c[3][CLASS[q[3] as usize] as usize] += 1;
    }
    for &b in it.remainder() {
        c[0][CLASS[b as usize] as usize] += 1;
    }
}

/// Compute statistics for one FASTA file (or `-`) in one streaming pass.
pub fn file_stats(path: &str) -> Result<FileStats> {
    let mut reader = Reader::open(
        path,
        SeqPolicy {
            keep_softmask: true,
        },
    )?;
    let mut lengths = Vec::new();
    let mut counts = [[0u64; 8]; 4];
    while let Some(header) = reader.next_header()? {
        let label = reader.label().to_string();
        let mut offset = 0u64;
        let len = reader.read_sequence(&header, |chunk, line| {
            let before: u64 = counts.iter().map(|c| c[INVALID]).sum();
            count_classes(chunk, &mut counts);
            let after: u64 = counts.iter().map(|c| c[INVALID]).sum();
            if after != before {
                let i = chunk
                    .iter()
                    .position(|&b| CLASS[b as usize] as usize == INVALID)
                    .unwrap_or(0);
                return Err(Error::at(
                    &label,
                    line,
                    format!(
                        "record '{}': invalid base {} at sequence offset {}",
                        header.name,
                        seq::show_byte(chunk[i]),
                        offset + i as u64
                    ),
                ));
            }
            offset += chunk.len() as u64;
            Ok(())
        })?;
        lengths.push(len);
    }
    let mut class = [0u64; 8];
    for c in &counts {
        for (k, v) in c.iter().enumerate() {
            class[k] += v;
        }
    }
    let bases: u64 = lengths.iter().sum();
    let at = class[AT] + class[AT + LOWER];
    let cg = class[CG] + class[CG + LOWER];
    let amb = class[AMB] + class[AMB + LOWER];
    let lower = class[AT + LOWER] + class[CG + LOWER] + class[AMB + LOWER];
    let frac = |x: u64, of: u64| if of == 0 { 0.0 } else { x as f64 / of as f64 };
    Ok(FileStats {
        file: path.to_string(),
        records: lengths.len() as u64,
        bases,
        min_len: lengths.iter().copied().min().unwrap_or(0),
        max_len: lengths.iter().copied().max().unwrap_or(0),
        mean_len: frac(bases, lengths.len() as u64),
        n50: n50(&mut lengths),
        gc: frac(cg, at + cg),
        n_fraction: frac(amb, bases),
        softmask_fraction: frac(lower, bases),
    })
}

/// N50: the length L such that records of length ≥ L hold at least half of all bases.
pub fn n50(lengths: &mut [u64]) -> u64 {
    lengths.sort_unstable_by(|a, b| b.cmp(a));
    let total: u64 = lengths.iter().sum();
    let mut acc = 0;
    for &l in lengths.iter() {
        acc += l;
        if acc * 2 >= total {
            return l;
        }
    }
    0
}

/// Render statistics as an aligned table.
pub fn table(stats: &[FileStats]) -> String {
    let mut rows = vec![[
        "file", "records", "bases", "min_len", "max_len", "mean_len", "N50", "GC", "N_frac",
        "softmask",
    ]
    .map(String::from)];
    for s in stats {
        rows.push([
            s.file.clone(),
            s.records.to_string(),
            s.bases.to_string(),
            s.min_len.to_string(),
            s.max_len.to_string(),
            format!("{:.1}", s.mean_len),
            s.n50.to_string(),
            format!("{:.4}", s.gc),
            format!("{:.4}", s.n_fraction),
            format!("{:.4}", s.softmask_fraction),
        ]);
    }
    let widths: Vec<usize> = (0..10)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Run `genolm stats`.
pub fn run(args: Args) -> Result<()> {
    let stats: Vec<FileStats> = args
        .files
        .par_iter()
        .map(|f| file_stats(f))
        .collect::<Result<_>>()?;
    let text = if args.json {
        serde_json::to_string_pretty(&stats).map_err(|e| Error::Internal(e.to_string()))? + "\n"
    } else {
        table(&stats)
    };
    let out = args.out.unwrap_or_else(|| PathBuf::from("-"));
    crate::io::write_atomic(&out, |w| {
        w.write_all(text.as_bytes())
            .map_err(|e| Error::io(out.display(), e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n50_by_hand() {
        assert_eq!(n50(&mut [2, 3, 4, 5, 6, 7, 8, 9, 10]), 8);
        assert_eq!(n50(&mut [100]), 100);
        assert_eq!(n50(&mut []), 0);
    }

    #[test]
    fn stats_on_small_file() {
        let dir = std::env::temp_dir().join(format!("genolm-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.fa");
        std::fs::write(&p, b">a\nACGTacgtNN\n>b\nGGGG\n").unwrap();
        let s = file_stats(p.to_str().unwrap()).unwrap();
        assert_eq!(
            (s.records, s.bases, s.min_len, s.max_len, s.n50),
            (2, 14, 4, 10, 10)
        );
        assert!((s.gc - 8.0 / 12.0).abs() < 1e-12);
        assert!((s.n_fraction - 2.0 / 14.0).abs() < 1e-12);
        assert!((s.softmask_fraction - 4.0 / 14.0).abs() < 1e-12);
        std::fs::write(&p, b">a\nACGT\nAXGT\n").unwrap();
        let e = file_stats(p.to_str().unwrap()).unwrap_err().to_string();
        assert!(
            e.contains("s.fa:3:") && e.contains("'X'") && e.contains("offset 5"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
