//! `genolm bench`: throughput benchmarks, printed as a table or JSON.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use crate::cli::stats::file_stats;
use crate::error::{Error, Result};
use crate::io::fasta::Reader;
use crate::seq::SeqPolicy;
use crate::tokenize::kmer::{Kmer, Tail};
use crate::tokenize::onehot;

/// Arguments of `genolm bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which benchmark to run.
    #[command(subcommand)]
    pub which: Which,
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum Which {
    /// FASTA reading (`stats`) against seqkit and zcat, and one-hot / k-mer encoding speed.
    #[command(
        after_help = "Example:\n  bash scripts/fetch_bench_data.sh   # hs37chrXtrunc.fa.gz from Debian smalt-examples\n  genolm bench io --file target/bench-data/hs37chrXtrunc.fa.gz --json"
    )]
    Io(IoArgs),
    /// Training steps per second of a model on random tokens (forward, backward, AdamW).
    #[command(
        after_help = "Example:\n  genolm bench train --model gb-cnn --batch 64 --length 300 --threads 2 --json"
    )]
    Train(TrainArgs),
    /// Forward + backward time and peak heap of each backbone as the sequence length doubles.
    #[command(
        after_help = "Example:\n  genolm bench models --models mamba,hyena,transformer,transformer-dense --max-length 32768 --out scaling/\n  genolm bench models --json --min-length 1024 --max-length 4096"
    )]
    Models(ModelsArgs),
    /// Wall time of `genolm split --method homology` (clustering, dealing, leakage report, files).
    #[command(
        after_help = "Example:\n  genolm --threads 2 bench split --repeat 5   # the five EPDnew folds: 59,196 promoters of 300 bp\n  genolm bench split --json --repeat 1 datasets/demo/proximal.fa.gz datasets/demo/distal.fa.gz"
    )]
    Split(SplitArgs),
}

/// Arguments of `genolm bench split`.
#[derive(Debug, clap::Args)]
pub struct SplitArgs {
    /// Inputs as `genolm split` takes them (default: the five EPDnew folds of the data
    /// directory, `promoters/epdnew_human_300/fold_{1..5}.csv.gz`).
    pub input: Vec<String>,
    /// Data directory (default: $GENOLM_DATA, then ../shared/data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Identity threshold of the split.
    #[arg(long, default_value_t = 0.8)]
    pub identity: f64,
    /// Timed runs.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Target wall time in seconds (the "60k sequences of 300 bp in seconds").
    #[arg(long, default_value_t = 10.0)]
    pub target_s: f64,
    /// Print JSON instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

/// Result of `genolm bench split`.
#[derive(Debug, Serialize)]
pub struct SplitReport {
    /// The inputs split.
    pub inputs: Vec<String>,
    /// Records in them.
    pub records: u64,
    /// Clusters at the identity.
    pub clusters: u64,
    /// Candidate pairs bounded by LCS.
    pub candidate_pairs: u64,
    /// Worker threads of every run.
    pub threads: usize,
    /// Wall seconds of each run of the whole command (process start to exit).
    pub runs_s: Vec<f64>,
    /// Seconds of each run spent clustering (the rest: reading, dealing, leakage, writing).
    pub cluster_s: Vec<f64>,
    /// Fastest run.
    pub best_s: f64,
    /// Median run.
    pub median_s: f64,
    /// The target.
    pub target_s: f64,
    /// Whether the median run is within the target.
    pub meets_target: bool,
}

/// Time `genolm split --method homology` runs of this program on the inputs.
pub fn bench_split(a: &SplitArgs) -> Result<SplitReport> {
    let inputs: Vec<String> = if a.input.is_empty() {
        let dir = crate::io::data_dir(a.data_dir.as_deref())
            .map(|d| d.join("promoters/epdnew_human_300"))
            .filter(|d| d.is_dir())
            .ok_or_else(|| {
                Error::input(
                    "no promoters/epdnew_human_300 in the data directory: pass inputs, \
                     --data-dir, or set GENOLM_DATA",
                )
            })?;
        (1..=5)
            .map(|k| dir.join(format!("fold_{k}.csv.gz")).display().to_string())
            .collect()
    } else {
        a.input.clone()
    };
    if a.repeat == 0 {
        return Err(Error::input("--repeat must be at least 1"));
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("the genolm program", e))?;
    let threads = rayon::current_num_threads();
    let out = std::env::temp_dir().join(format!("genolm-bench-split-{}", std::process::id()));
    let mut runs = Vec::new();
    let mut cluster_s = Vec::new();
    let mut summary = serde_json::Value::Null;
    for _ in 0..a.repeat {
        let t = Instant::now();
        let o = Command::new(&exe)
            .args([
                "--threads",
                &threads.to_string(),
                "split",
                "--method",
                "homology",
            ])
            .args(["--identity", &a.identity.to_string(), "--json", "--out"])
            .arg(&out)
            .args(&inputs)
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Error::io(exe.display(), e))?;
        runs.push(t.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(&out);
        if !o.status.success() {
            let err = String::from_utf8_lossy(&o.stderr);
            let last = err.trim().lines().last().unwrap_or("no message");
            return Err(Error::input(format!(
                "genolm split: {}",
                last.trim_start_matches("genolm: error: ")
            )));
        }
        summary = serde_json::from_slice(&o.stdout)
            .map_err(|e| Error::Internal(format!("genolm split --json output: {e}")))?;
        cluster_s.push(summary["clusters"]["seconds"].as_f64().unwrap_or(0.0));
    }
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    let median_s = sorted[sorted.len() / 2];
    let count = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    Ok(SplitReport {
        inputs,
        records: count(&summary["records"]),
        clusters: count(&summary["clusters"]["clusters"]),
        candidate_pairs: count(&summary["clusters"]["candidate_pairs"]),
        threads,
        best_s: sorted[0],
        median_s,
        runs_s: runs,
        cluster_s,
        target_s: a.target_s,
        meets_target: median_s <= a.target_s,
    })
}

/// Arguments of `genolm bench models`.
#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// Comma-separated backbones (`transformer-dense` is the transformer with a full window).
    #[arg(long, default_value = "mamba,hyena,transformer,transformer-dense,cnn")]
    pub models: String,
    /// First length (tokens); lengths double from here.
    #[arg(long, default_value_t = 1024)]
    pub min_length: usize,
    /// Last length (tokens).
    #[arg(long, default_value_t = 32768)]
    pub max_length: usize,
    /// Batch size.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Timed repetitions per length (after one warm-up); the fastest is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Stop a model when its next length is predicted to need more heap than this (bytes).
    #[arg(long, default_value_t = 8_000_000_000)]
    pub max_bytes: u64,
    /// Stop a model when its next length is predicted to take longer than this per pass (seconds).
    #[arg(long, default_value_t = 60.0)]
    pub max_seconds: f64,
    /// Directory for `scaling.json`, `scaling.md`, `scaling_time.svg` and `scaling_memory.svg`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print JSON (a list of `{"model", "length", "seconds", "peak_bytes"}`).
    #[arg(long)]
    pub json: bool,
}

/// One measurement of `genolm bench models`.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingPoint {
    /// Backbone name.
    pub model: String,
    /// Sequence length in tokens.
    pub length: usize,
    /// Seconds for one forward + backward pass (fastest repetition).
    pub seconds: f64,
    /// Peak heap bytes above the pre-pass level during the pass (0 when not measurable).
    pub peak_bytes: u64,
}

/// A backbone config for a `bench models` name.
fn bench_backbone(name: &str) -> Result<crate::models::BackboneConfig> {
    crate::models::BackboneConfig::by_name(name)
}

/// Time one forward + backward pass of `name` at `len` tokens; returns (seconds, peak bytes).
fn scaling_point(name: &str, len: usize, batch: usize, repeat: usize) -> Result<(f64, u64)> {
    use crate::models::{Ctx, HeadConfig, ModelConfig, Pooling};
    use candle_core::Tensor;
    use rand::{Rng, SeedableRng};
    let backbone = bench_backbone(name)?;
    let cfg = ModelConfig {
        vocab_size: 10,
        seq_len: len,
        num_classes: 2,
        head: HeadConfig {
            pooling: Pooling::Mean,
            hidden: 0,
            hidden_activation: false,
            dropout: 0.0,
        },
        backbone,
    };
    let (model, _weights) = crate::train::classify::build_model(&cfg, 0)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let ids: Vec<u32> = (0..batch * len).map(|_| rng.random_range(5..10)).collect();
    let dev = crate::device::current();
    let x = Tensor::from_vec(ids, (batch, len), &dev)?;
    let y = Tensor::from_vec(vec![0u32; batch], batch, &dev)?;
    let pass = |rng: &mut rand_chacha::ChaCha8Rng| -> Result<()> {
        let mut ctx = Ctx { train: true, rng };
        let loss = crate::ops::cross_entropy(&model.forward(&x, &mut ctx)?, &y, None)?;
        let grads = loss.backward()?;
        drop(grads);
        // GPU kernels run asynchronously: the pass ends when the device is done.
        x.device().synchronize()?;
        Ok(())
    };
    pass(&mut rng)?;
    let (mut best, mut peak) = (f64::INFINITY, 0u64);
    for _ in 0..repeat.max(1) {
        crate::mem::reset_peak();
        let base = crate::mem::current_bytes();
        let t = Instant::now();
        pass(&mut rng)?;
        best = best.min(t.elapsed().as_secs_f64());
        peak = peak.max(crate::mem::peak_bytes().saturating_sub(base) as u64);
    }
    Ok((best, peak))
}

/// Run the scaling benchmark: each model at doubling lengths until a limit is predicted to be hit.
pub fn bench_models(a: &ModelsArgs) -> Result<Vec<ScalingPoint>> {
    if a.min_length == 0 || a.max_length < a.min_length || a.batch == 0 {
        return Err(Error::input(format!(
            "bench models: need 0 < --min-length ({}) <= --max-length ({}) and --batch ({}) >= 1",
            a.min_length, a.max_length, a.batch
        )));
    }
    let names: Vec<&str> = a
        .models
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for n in &names {
        bench_backbone(n)?;
    }
    let mut out = Vec::new();
    for name in names {
        let mut prev: Option<(f64, u64)> = None;
        let mut len = a.min_length;
        while len <= a.max_length {
            let (s, b) = scaling_point(name, len, a.batch, a.repeat)?;
            eprintln!(
                "bench models: {name} L={len}: {s:.3} s, peak {:.1} MB",
                b as f64 / 1e6
            );
            out.push(ScalingPoint {
                model: name.to_string(),
                length: len,
                seconds: s,
                peak_bytes: b,
            });
            // Predict the next length from the last doubling (at least 2x).
            let (ts, tb) = match prev {
                Some((ps, pb)) if ps > 0.0 && pb > 0 => {
                    ((s / ps).max(2.0), (b as f64 / pb as f64).max(2.0))
                }
                _ => (2.0, 2.0),
            };
            if s * ts > a.max_seconds || b as f64 * tb > a.max_bytes as f64 {
                eprintln!("bench models: {name} stops at L={len} (next length predicted past --max-seconds or --max-bytes)");
                break;
            }
            prev = Some((s, b));
            len *= 2;
        }
    }
    Ok(out)
}

/// The scaling table as Markdown, with the time and memory ratio to the previous length.
pub fn scaling_table(points: &[ScalingPoint]) -> String {
    let mut s = String::from(
        "| model | length | seconds | peak MB | time × vs L/2 | memory × vs L/2 |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for (i, p) in points.iter().enumerate() {
        let prev = i
            .checked_sub(1)
            .map(|j| &points[j])
            .filter(|q| q.model == p.model && q.length * 2 == p.length);
        let (rt, rm) = match prev {
            Some(q) => (
                format!("{:.2}", p.seconds / q.seconds),
                if q.peak_bytes > 0 {
                    format!("{:.2}", p.peak_bytes as f64 / q.peak_bytes as f64)
                } else {
                    "-".into()
                },
            ),
            None => ("-".into(), "-".into()),
        };
        s.push_str(&format!(
            "| {} | {} | {:.3} | {:.1} | {} | {} |\n",
            p.model,
            p.length,
            p.seconds,
            p.peak_bytes as f64 / 1e6,
            rt,
            rm
        ));
    }
    s
}

fn write_scaling(dir: &Path, points: &[ScalingPoint]) -> Result<()> {
    use crate::train::plot::{line_chart, Series};
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut models: Vec<&str> = Vec::new();
    for p in points {
        if !models.contains(&p.model.as_str()) {
            models.push(&p.model);
        }
    }
    let series = |f: &dyn Fn(&ScalingPoint) -> f64| -> Vec<Series> {
        models
            .iter()
            .map(|m| {
                Series::new(
                    *m,
                    points
                        .iter()
                        .filter(|p| p.model == *m)
                        .map(|p| ((p.length as f64).log2(), f(p)))
                        .collect(),
                )
            })
            .collect()
    };
    let time = line_chart(
        "Forward + backward time",
        "log2 length (tokens)",
        "log2 seconds",
        &series(&|p| p.seconds.log2()),
    );
    let mem = line_chart(
        "Peak heap during forward + backward",
        "log2 length (tokens)",
        "log2 MB",
        &series(&|p| (p.peak_bytes.max(1) as f64 / 1e6).log2()),
    );
    let json = serde_json::to_string_pretty(points).map_err(|e| Error::Internal(e.to_string()))?;
    for (name, text) in [
        ("scaling_time.svg", time),
        ("scaling_memory.svg", mem),
        ("scaling.md", scaling_table(points)),
        ("scaling.json", json),
    ] {
        let path = dir.join(name);
        crate::io::write_atomic(&path, |w| {
            w.write_all(text.as_bytes())
                .map_err(|e| Error::io(path.display(), e))
        })?;
    }
    Ok(())
}

/// Arguments of `genolm bench train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Model: a `genolm train --model` name (`gb-cnn`, `cnn`, `transformer`, `transformer-dense`,
    /// `mamba`, `caduceus`, `hyena`, `kmer-lr`).
    #[arg(long, default_value = "gb-cnn")]
    pub model: String,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Sequence length in tokens (char tokenizer).
    #[arg(long, default_value_t = 300)]
    pub length: usize,
    /// Timed steps (after 5 warm-up steps).
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Result of `genolm bench train`.
#[derive(Debug, Serialize)]
pub struct TrainReport {
    /// Framework name.
    pub framework: &'static str,
    /// Model.
    pub model: String,
    /// Batch size.
    pub batch: usize,
    /// Length.
    pub length: usize,
    /// Rayon / kernel threads.
    pub threads: usize,
    /// Compute device (`cpu`, `cuda:N`).
    pub device: String,
    /// Training steps per second.
    pub steps_per_s: f64,
    /// Milliseconds per step.
    pub ms_per_step: f64,
}

/// Time training steps of a model on random token ids.
pub fn bench_train(a: &TrainArgs) -> Result<TrainReport> {
    use crate::models::{BackboneConfig, Ctx, ModelConfig};
    use crate::train::optim::{AdamW, AdamWConfig};
    use candle_core::Tensor;
    use rand::{Rng, SeedableRng};
    let backbone = BackboneConfig::by_name(&a.model)?;
    let cfg = ModelConfig {
        vocab_size: 10,
        seq_len: a.length,
        num_classes: 2,
        head: backbone.default_head(),
        backbone,
    };
    let (model, weights) = crate::train::classify::build_model(&cfg, 0)?;
    let vars: Vec<_> = {
        let data = weights.params.data().lock().expect("var map lock");
        data.iter()
            .map(|(k, v)| (k.clone(), v.clone(), 1.0))
            .collect()
    };
    let mut opt = AdamW::new(vars, AdamWConfig::default())?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let dev = crate::device::current();
    let mut step = |rng: &mut rand_chacha::ChaCha8Rng| -> Result<()> {
        let ids: Vec<u32> = (0..a.batch * a.length)
            .map(|_| rng.random_range(5..10))
            .collect();
        let y: Vec<u32> = (0..a.batch).map(|_| rng.random_range(0..2)).collect();
        let x = Tensor::from_vec(ids, (a.batch, a.length), &dev)?;
        let y = Tensor::from_vec(y, a.batch, &dev)?;
        let mut ctx = Ctx { train: true, rng };
        let loss = crate::ops::cross_entropy(&model.forward(&x, &mut ctx)?, &y, None)?;
        let g = opt.collect(&loss.backward()?);
        opt.step_grads(g, 1e-3, 1.0)?;
        // GPU kernels run asynchronously: the step ends when the device is done.
        dev.synchronize()?;
        Ok(())
    };
    for _ in 0..5 {
        step(&mut rng)?;
    }
    let t = Instant::now();
    for _ in 0..a.steps.max(1) {
        step(&mut rng)?;
    }
    let s = t.elapsed().as_secs_f64() / a.steps.max(1) as f64;
    Ok(TrainReport {
        framework: "genolm",
        model: a.model.clone(),
        batch: a.batch,
        length: a.length,
        threads: rayon::current_num_threads(),
        device: crate::device::name(&dev),
        steps_per_s: 1.0 / s,
        ms_per_step: s * 1e3,
    })
}

/// Arguments of `genolm bench io`.
#[derive(Debug, clap::Args)]
pub struct IoArgs {
    /// A gzip FASTA to read (default: hs37chrXtrunc.fa.gz in the data dir or target/bench-data).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Data directory (default: $GENOLM_DATA, then ../shared/data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Timed repetitions; the best is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Results of `genolm bench io` (seconds are the best of the repetitions).
#[derive(Debug, Serialize)]
pub struct IoReport {
    /// The gzip file read.
    pub file: String,
    /// Bases in the file.
    pub bases: u64,
    /// Uncompressed size in bytes.
    pub plain_bytes: u64,
    /// `genolm stats` on the uncompressed file.
    pub stats_plain_s: f64,
    /// `genolm stats` on the gzip file.
    pub stats_gzip_s: f64,
    /// `seqkit stats -a -j 1` on the uncompressed file, if seqkit is installed.
    pub seqkit_plain_s: Option<f64>,
    /// `zcat FILE > /dev/null`, if zcat is installed.
    pub zcat_s: Option<f64>,
    /// stats_plain_s / seqkit_plain_s (target ≤ 0.5).
    pub ratio_vs_seqkit: Option<f64>,
    /// stats_gzip_s / zcat_s (target ≤ 1.1).
    pub ratio_vs_zcat: Option<f64>,
    /// One-hot encoding throughput, input GB/s on one core.
    pub onehot_gb_per_s: f64,
    /// k-mer (k=6, stride 1) id encoding throughput, input GB/s on one core.
    pub kmer_gb_per_s: f64,
}

/// Run `genolm bench`.
pub fn run(args: Args) -> Result<()> {
    match args.which {
        Which::Io(a) => {
            let report = bench_io(&a)?;
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report)
                        .map_err(|e| Error::Internal(e.to_string()))?
                );
            } else {
                print_io(&report);
            }
            Ok(())
        }
        Which::Models(a) => {
            if !crate::mem::installed() {
                eprintln!("bench models: heap accounting is not installed in this program; peak_bytes will be 0");
            }
            let points = bench_models(&a)?;
            if let Some(dir) = &a.out {
                write_scaling(dir, &points)?;
            }
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string(&points).map_err(|e| Error::Internal(e.to_string()))?
                );
            } else {
                print!("{}", scaling_table(&points));
            }
            Ok(())
        }
        Which::Split(a) => {
            let r = bench_split(&a)?;
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r).map_err(|e| Error::Internal(e.to_string()))?
                );
            } else {
                println!(
                    "homology split of {} records ({} clusters), {} threads: median {:.2} s, best {:.2} s over {} runs (target {} s: {})",
                    r.records,
                    r.clusters,
                    r.threads,
                    r.median_s,
                    r.best_s,
                    r.runs_s.len(),
                    r.target_s,
                    if r.meets_target { "met" } else { "not met" }
                );
            }
            Ok(())
        }
        Which::Train(a) => {
            let r = bench_train(&a)?;
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string(&r).map_err(|e| Error::Internal(e.to_string()))?
                );
            } else {
                println!(
                    "{} batch {} length {} threads {} on {}: {:.2} steps/s ({:.1} ms/step)",
                    r.model, r.batch, r.length, r.threads, r.device, r.steps_per_s, r.ms_per_step
                );
            }
            Ok(())
        }
    }
}

fn best_of<F: FnMut() -> Result<()>>(n: usize, mut f: F) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..n.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn time_command(n: usize, program: &str, args: &[&str]) -> Option<f64> {
    let ok = Command::new(program)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        return None;
    }
    best_of(n, || {
        let st = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| Error::io(program, e))?;
        if st.success() {
            Ok(())
        } else {
            Err(Error::Internal(format!("{program} failed")))
        }
    })
    .ok()
}

fn default_bench_file(data_dir: Option<&Path>) -> Option<PathBuf> {
    let name = "hs37chrXtrunc.fa.gz";
    let mut candidates = Vec::new();
    if let Some(d) = crate::io::data_dir(data_dir) {
        candidates.push(d.join(name));
        candidates.push(d.join("bench").join(name));
    }
    candidates.push(PathBuf::from("target/bench-data").join(name));
    candidates.into_iter().find(|p| p.exists())
}

/// Measure reading and encoding throughput on a gzip FASTA.
pub fn bench_io(a: &IoArgs) -> Result<IoReport> {
    let gz = match &a.file {
        Some(f) => f.clone(),
        None => default_bench_file(a.data_dir.as_deref()).ok_or_else(|| {
            Error::input(
                "no benchmark FASTA: pass --file, or run scripts/fetch_bench_data.sh to fetch \
                 hs37chrXtrunc.fa.gz (Debian smalt-examples) into target/bench-data",
            )
        })?,
    };
    let gz_s = gz.display().to_string();
    // Decompress once to a plain file beside the build outputs.
    let plain = std::env::temp_dir().join(format!("genolm-bench-{}.fa", std::process::id()));
    let mut seqs: Vec<Vec<u8>> = Vec::new();
    {
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(&plain).map_err(|e| Error::io(plain.display(), e))?,
        );
        for rec in Reader::open(
            &gz_s,
            SeqPolicy {
                keep_softmask: true,
            },
        )? {
            let rec = rec?;
            crate::io::fasta::write_record(&mut w, &rec.name, &rec.description, &rec.seq, 60)
                .map_err(|e| Error::io(plain.display(), e))?;
            seqs.push(rec.seq);
        }
        std::io::Write::flush(&mut w).map_err(|e| Error::io(plain.display(), e))?;
    }
    let plain_s = plain.display().to_string();
    let plain_bytes = std::fs::metadata(&plain).map(|m| m.len()).unwrap_or(0);
    let bases: u64 = seqs.iter().map(|s| s.len() as u64).sum();

    let stats_plain_s = best_of(a.repeat, || file_stats(&plain_s).map(|_| ()))?;
    let stats_gzip_s = best_of(a.repeat, || file_stats(&gz_s).map(|_| ()))?;
    let seqkit_plain_s = time_command(a.repeat, "seqkit", &["stats", "-a", "-j", "1", &plain_s]);
    let zcat_s = time_command(
        a.repeat,
        "sh",
        &["-c", &format!("zcat '{gz_s}' > /dev/null")],
    );

    let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
    let mut buf = vec![0f32; 4 * longest];
    let onehot_s = best_of(a.repeat, || {
        for s in &seqs {
            onehot::encode_into(s, &mut buf[..4 * s.len()]);
        }
        std::hint::black_box(&buf);
        Ok(())
    })?;
    let kmer = Kmer::new(6, 1, Tail::Bases)?;
    let mut ids = Vec::with_capacity(longest + 8);
    let kmer_s = best_of(a.repeat, || {
        for s in &seqs {
            ids.clear();
            kmer.encode_ids_into(s, &mut ids)?;
        }
        std::hint::black_box(&ids);
        Ok(())
    })?;
    let _ = std::fs::remove_file(&plain);
    let gb = bases as f64 / 1e9;
    Ok(IoReport {
        file: gz_s,
        bases,
        plain_bytes,
        stats_plain_s,
        stats_gzip_s,
        ratio_vs_seqkit: seqkit_plain_s.map(|s| stats_plain_s / s),
        ratio_vs_zcat: zcat_s.map(|s| stats_gzip_s / s),
        seqkit_plain_s,
        zcat_s,
        onehot_gb_per_s: gb / onehot_s,
        kmer_gb_per_s: gb / kmer_s,
    })
}

fn print_io(r: &IoReport) {
    let opt = |x: Option<f64>, unit: &str| {
        x.map_or("n/a (not installed)".into(), |v| format!("{v:.3}{unit}"))
    };
    println!(
        "file: {} ({} bases, {} bytes uncompressed)",
        r.file, r.bases, r.plain_bytes
    );
    println!("genolm stats, plain file     {:.3} s", r.stats_plain_s);
    println!(
        "seqkit stats -a -j 1, plain  {}",
        opt(r.seqkit_plain_s, " s")
    );
    println!(
        "  ratio (target <= 0.5)      {}",
        opt(r.ratio_vs_seqkit, "")
    );
    println!("genolm stats, gzip file      {:.3} s", r.stats_gzip_s);
    println!("zcat > /dev/null             {}", opt(r.zcat_s, " s"));
    println!("  ratio (target <= 1.1)      {}", opt(r.ratio_vs_zcat, ""));
    println!("one-hot encode, 1 core       {:.2} GB/s", r.onehot_gb_per_s);
    println!("k-mer (k=6) encode, 1 core   {:.2} GB/s", r.kmer_gb_per_s);
}
