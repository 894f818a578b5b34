//! `genolm split`: train/valid/test splits (random, by chromosome, or homology-aware) with a
//! leakage report.

use std::path::PathBuf;

use serde::Serialize;

use crate::data::homology::{self, ClusterStats, Level, Params};
use crate::data::split::{self, Input, InputFormat, Method, OutFormat, SPLITS};
use crate::error::{Error, Result};

/// Arguments of `genolm split`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Split sequences into train / valid / test and report test-vs-train leakage.\n\n\
Methods: 'random' (stratified by label), 'chromosome' (records whose sequence id, the name up to \
the first ':', is named by --valid-seqids / --test-seqids go there, the rest to train), and \
'homology': every sequence is sketched by its canonical k-mers (so a reverse complement matches), \
candidate pairs come from an inverted index, each candidate is confirmed by semi-global alignment \
(bio) on its strand, identity = identical aligned bases / length of the shorter sequence (as \
cd-hit-est), pairs at >= --identity are linked and the connected components (clusters) are dealt \
whole to the splits, largest first, keeping the fractions within each class.\n\n\
INPUT is FASTA files (no labels) or a classification SPEC (LABEL=FASTA parts, CSV/TSV tables); \
or --genome FASTA with --regions BED (or LABEL=BED parts): each region is a record named \
SEQID:START-END (1-based), reverse-complemented on '-'. \
Outputs in --out: train/valid/test in the input's format (FASTA -> train.fa ...; one CSV/TSV header \
-> train.csv ... with the rows unchanged; LABEL=FASTA -> train.LABEL.fa ...; BED -> train.bed ... or \
train.LABEL.bed ... with the lines unchanged), or with --format fasta \
train.fa/valid.fa/test.fa with the label in the description ('>seq17 label=1'); plus leakage.json \
(see 'genolm leakage --help').",
    after_help = "Example:\n  genolm split --method homology promoters/epdnew_human_300/fold_{1,2,3,4,5}.csv.gz --out split/ --identity 0.8 --seed 1\n  \
genolm split --method random promoter=prom.fa,non_promoter=non.fa --out split/ --fractions 0.8,0.1,0.1\n  \
genolm split --method chromosome genome.fa --out split/ --valid-seqids Chr4 --test-seqids Chr5\n  \
genolm split --method homology --genome genome.fa.gz --regions windows.bed --out split/"
)]
pub struct Args {
    /// Split method: random, chromosome or homology.
    #[arg(long)]
    pub method: String,
    /// FASTA files, or a classification SPEC (several arguments are joined with commas).
    #[arg(required_unless_present = "genome")]
    pub input: Vec<String>,
    /// Genome FASTA whose --regions are split (instead of INPUT).
    #[arg(long, requires = "regions", conflicts_with = "input")]
    pub genome: Option<String>,
    /// BED files of regions of --genome: `BED` or `LABEL=BED` (repeat, or join with commas).
    #[arg(long, requires = "genome")]
    pub regions: Vec<String>,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Identity threshold in (0, 1] for linking sequences (homology) and the leakage report.
    #[arg(long, default_value_t = 0.8)]
    pub identity: f64,
    /// Train, valid, test fractions (sum 1; ignored by chromosome).
    #[arg(long, default_value = "0.8,0.1,0.1")]
    pub fractions: String,
    /// Sequence ids for the validation split (chromosome method).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub valid_seqids: Vec<String>,
    /// Sequence ids for the test split (chromosome method).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub test_seqids: Vec<String>,
    /// Output format: 'input' (the input's own) or 'fasta' (label in the description).
    #[arg(long, default_value = "input")]
    pub format: String,
    /// Seed for the random order of records and clusters.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// k-mer length of the homology sketch (8..=16).
    #[arg(long, default_value_t = 13)]
    pub kmer: usize,
    /// Candidate bar: shared canonical k-mers needed before a pair is aligned.
    #[arg(long, default_value_t = 2)]
    pub min_shared: u32,
    /// Ignore k-mers held by more than this many sequences when finding candidates.
    #[arg(long, default_value_t = 10_000)]
    pub max_occ: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Summary printed by `genolm split`.
#[derive(Debug, Serialize)]
struct Summary {
    method: &'static str,
    records: usize,
    classes: Vec<String>,
    /// Records per split and class.
    counts: Vec<SplitCount>,
    clusters: Option<ClusterStats>,
    /// Test records moved to train because the leakage check found a link the clustering
    /// missed (homology only).
    moved_to_train: usize,
    leakage: Vec<Level>,
    files: Vec<String>,
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct SplitCount {
    split: &'static str,
    total: usize,
    per_class: Vec<usize>,
}

/// Parse the homology options shared by `split` and `leakage`.
pub fn params(identity: f64, kmer: usize, min_shared: u32, max_occ: usize) -> Result<Params> {
    let p = Params {
        identity,
        k: kmer,
        min_shared,
        max_occ,
    };
    p.validate()?;
    Ok(p)
}

/// Run `genolm split`.
pub fn run(args: Args) -> Result<()> {
    let start = std::time::Instant::now();
    let method = Method::parse(&args.method)?;
    let fractions = split::parse_fractions(&args.fractions)?;
    let params = params(args.identity, args.kmer, args.min_shared, args.max_occ)?;
    let format = match args.format.to_ascii_lowercase().as_str() {
        "input" | "same" => OutFormat::Input,
        "fasta" | "fa" => OutFormat::Fasta,
        other => {
            return Err(Error::input(format!(
                "unknown --format '{other}': expected input or fasta"
            )))
        }
    };
    if method != Method::Chromosome
        && !(args.valid_seqids.is_empty() && args.test_seqids.is_empty())
    {
        return Err(Error::input(
            "--valid-seqids / --test-seqids apply to --method chromosome only",
        ));
    }
    let input = match &args.genome {
        Some(genome) => Input::load_bed(genome, &args.regions)?,
        None => Input::load(&args.input)?,
    };
    if let Some(note) = &input.note {
        eprintln!("genolm split: note: {note}");
    }
    let opts = split::Options {
        method,
        fractions,
        seed: args.seed,
        params,
        valid_seqids: args.valid_seqids.clone(),
        test_seqids: args.test_seqids.clone(),
    };
    let split::Assignment {
        mut split_of,
        clusters: cluster_ids,
        stats: clusters,
    } = split::split(&input, &opts)?;

    // Leakage of test into train. A homology split whose check still finds a test record with
    // a train neighbour at the identity (a pair the candidate search missed) moves that
    // record's cluster to train and checks again.
    let leakage_of = |split_of: &[u8]| -> Result<Option<homology::Leakage>> {
        let pick = |s: u8| -> (Vec<String>, Vec<&[u8]>) {
            (0..input.len())
                .filter(|&i| split_of[i] == s)
                .map(|i| (input.names[i].clone(), input.seqs[i].as_slice()))
                .unzip()
        };
        let (train_names, train) = pick(0);
        let (test_names, test) = pick(2);
        if !train
            .iter()
            .chain(&test)
            .all(|s| s.len() <= homology::MAX_ALIGN_LEN)
        {
            return Ok(None);
        }
        homology::leakage(&train_names, &train, &test_names, &test, &params).map(Some)
    };
    let mut leak = leakage_of(&split_of)?;
    let mut moved = 0;
    // Only a homology split has clusters.
    if let Some(ids) = &cluster_ids {
        for _ in 0..10 {
            let Some(l) = &leak else { break };
            let leaking: Vec<usize> = (0..l.rows.len())
                .filter(|&k| l.rows[k].best_identity >= params.identity)
                .collect();
            if leaking.is_empty() {
                break;
            }
            moved += split::move_leaking_clusters(&mut split_of, ids, 2, &leaking);
            leak = leakage_of(&split_of)?;
        }
        if moved > 0 {
            eprintln!(
                "genolm split: note: moved {moved} test records (whole clusters) to train: the \
                 leakage check found train neighbours at >= {} that the candidate search missed \
                 (k-mers above --max-occ)",
                params.identity
            );
        }
    }
    if leak.is_none() {
        eprintln!(
            "genolm split: note: sequences longer than {} bp, no alignment-based leakage report",
            homology::MAX_ALIGN_LEN
        );
    }
    let files = split::write_splits(&input, &split_of, &args.out, format)?;
    let leak_path = args.out.join("leakage.json");
    match &leak {
        Some(l) => split::write_json(&leak_path, l)?,
        None => split::write_json(
            &leak_path,
            &serde_json::json!({"skipped": format!("sequences longer than {} bp", homology::MAX_ALIGN_LEN)}),
        )?,
    }

    let labels = input.labels_or_zero();
    let n_classes = input.classes.len().max(1);
    let counts = split::split_counts(&split_of, &labels, n_classes);
    let summary = Summary {
        method: method.name(),
        moved_to_train: moved,
        records: input.len(),
        classes: input.classes.clone(),
        counts: SPLITS
            .iter()
            .zip(counts.iter())
            .map(|(name, c)| SplitCount {
                split: name,
                total: c.iter().sum(),
                per_class: c.clone(),
            })
            .collect(),
        clusters,
        leakage: leak.as_ref().map(|l| l.levels.clone()).unwrap_or_default(),
        files: files
            .iter()
            .chain(std::iter::once(&leak_path))
            .map(|p| p.display().to_string())
            .collect(),
        seconds: start.elapsed().as_secs_f64(),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).map_err(|e| Error::Internal(e.to_string()))?
        );
        return Ok(());
    }
    println!(
        "{} split of {} records in {:.1} s",
        summary.method, summary.records, summary.seconds
    );
    for c in &summary.counts {
        if input.classes.is_empty() {
            println!("  {:<5} {}", c.split, c.total);
        } else {
            let per: Vec<String> = input
                .classes
                .iter()
                .zip(&c.per_class)
                .map(|(name, n)| format!("{name} {n}"))
                .collect();
            println!("  {:<5} {} ({})", c.split, c.total, per.join(", "));
        }
    }
    if let Some(cs) = &summary.clusters {
        println!(
            "  clusters at identity {}: {} (largest {}), {} candidate pairs, {} aligned, {} linked, {:.1} s",
            args.identity,
            cs.clusters,
            cs.largest_cluster,
            cs.candidate_pairs,
            cs.aligned_pairs,
            cs.linked_pairs,
            cs.seconds
        );
    }
    if let Some(l) = &leak {
        let lv: Vec<String> = l
            .levels
            .iter()
            .map(|v| format!(">= {:.0}%: {}", v.identity * 100.0, v.count))
            .collect();
        println!(
            "  test sequences with a train neighbour {} (of {})",
            lv.join(", "),
            l.test
        );
    }
    if matches!(input.format, InputFormat::LabeledFasta) && format == OutFormat::Input {
        let spec: Vec<String> = input
            .classes
            .iter()
            .map(|c| {
                let file = format!("train.{}.fa", split::file_safe(c));
                format!("{c}={}", args.out.join(file).display())
            })
            .collect();
        println!("  training SPEC: {}", spec.join(","));
    }
    for f in &summary.files {
        println!("  wrote {f}");
    }
    Ok(())
}
