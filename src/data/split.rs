//! Train/valid/test splits of a sequence set: random (stratified), by chromosome (named sequence
//! ids), or by homology (whole clusters of similar sequences, see [`crate::data::homology`]),
//! and writers that keep the input's format.
//!
//! # Inputs
//!
//! A list of FASTA files (no labels), or a classification SPEC (see [`crate::data::classify`];
//! several arguments are joined with commas into one SPEC, so labels map consistently).
//!
//! # Outputs (in the output directory)
//!
//! - FASTA input: `train.fa`, `valid.fa`, `test.fa` (names and descriptions kept).
//! - CSV/TSV tables with one header: `train.csv`, `valid.csv`, `test.csv` (or `.tsv`), the same
//!   header and the input rows unchanged (uncompressed).
//! - `LABEL=FASTA` parts (or tables with different headers): one FASTA per split and class,
//!   `train.LABEL.fa`, …, so that `LABEL=train.LABEL.fa,…` is again a SPEC.
//! - With [`OutFormat::Fasta`]: `train.fa`, `valid.fa`, `test.fa`, the label kept in the record
//!   description (`>seq17 label=1`).
//!
//! # Assignment
//!
//! Groups (homology clusters; single records for `random`) are dealt largest first (ties in a
//! seeded random order) to the split whose per-class fill, after adding the group, is lowest
//! relative to its target `fraction × class size`, so every split approaches its fraction within
//! each class. Splits with fraction 0 receive nothing. The same input and seed give the same
//! split.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::classify::{parse_spec, LabeledSet, SpecPart};
use crate::data::homology::{self, ClusterStats, Params};
use crate::error::{Error, Result};
use crate::io::fasta::Reader;
use crate::io::{open_input, write_atomic};
use crate::seq::SeqPolicy;

/// Names of the three splits, in index order.
pub const SPLITS: [&str; 3] = ["train", "valid", "test"];

/// How records are assigned to splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Stratified random assignment of single records.
    Random,
    /// Whole sequence ids (chromosomes) named by the user go to valid / test.
    Chromosome,
    /// Whole clusters of similar sequences (identity ≥ threshold, both strands).
    Homology,
}

impl Method {
    /// Parse `random`, `chromosome` or `homology`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "random" => Ok(Method::Random),
            "chromosome" | "chrom" => Ok(Method::Chromosome),
            "homology" => Ok(Method::Homology),
            _ => Err(Error::input(format!(
                "unknown --method '{s}': expected random, chromosome or homology"
            ))),
        }
    }

    /// The method's name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Random => "random",
            Method::Chromosome => "chromosome",
            Method::Homology => "homology",
        }
    }
}

/// Parse `TRAIN,VALID,TEST` fractions: three non-negative numbers summing to 1, train > 0.
pub fn parse_fractions(s: &str) -> Result<[f64; 3]> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let bad = || {
        Error::input(format!(
            "--fractions '{s}': expected three numbers TRAIN,VALID,TEST that sum to 1, e.g. 0.8,0.1,0.1"
        ))
    };
    if parts.len() != 3 {
        return Err(bad());
    }
    let mut f = [0.0; 3];
    for (slot, p) in f.iter_mut().zip(&parts) {
        *slot = p.parse::<f64>().map_err(|_| bad())?;
        if !(slot.is_finite() && *slot >= 0.0) {
            return Err(bad());
        }
    }
    let sum: f64 = f.iter().sum();
    if (sum - 1.0).abs() > 1e-6 {
        return Err(Error::input(format!(
            "--fractions '{s}' sum to {sum}, not 1"
        )));
    }
    if f[0] <= 0.0 {
        return Err(Error::input(format!(
            "--fractions '{s}': the training fraction must be positive"
        )));
    }
    Ok(f)
}

/// How the input is laid out, which decides the output files.
#[derive(Debug, Clone, PartialEq)]
pub enum InputFormat {
    /// FASTA files without labels.
    Fasta,
    /// A SPEC of `LABEL=FASTA` parts (or tables that cannot be written back as one table).
    LabeledFasta,
    /// CSV/TSV tables sharing one header; `rows[i]` is record `i`'s row.
    Table {
        /// Field delimiter.
        delimiter: u8,
        /// Output extension, `csv` or `tsv`.
        ext: &'static str,
        /// Header fields.
        header: csv::ByteRecord,
        /// One row per record, in record order.
        rows: Vec<csv::ByteRecord>,
    },
    /// Regions of a genome from BED files (`[LABEL=]BED` parts); `lines[i]` is record `i`'s BED
    /// line, written back unchanged.
    Bed {
        /// BED line per record.
        lines: Vec<String>,
    },
}

/// A loaded sequence set to split.
#[derive(Debug, Clone)]
pub struct Input {
    /// Record names.
    pub names: Vec<String>,
    /// FASTA descriptions (empty for tables and labelled FASTA).
    pub descriptions: Vec<String>,
    /// Normalised sequences (upper case).
    pub seqs: Vec<Vec<u8>>,
    /// Class index per record, or `None` for unlabelled FASTA.
    pub labels: Option<Vec<u32>>,
    /// Class names indexed by label (empty when unlabelled).
    pub classes: Vec<String>,
    /// Layout of the input.
    pub format: InputFormat,
    /// Note for the user (e.g. why tables are written as FASTA), if any.
    pub note: Option<String>,
}

impl Input {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// True when there are no records.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// Label per record (all 0 when unlabelled).
    pub fn labels_or_zero(&self) -> Vec<u32> {
        self.labels.clone().unwrap_or_else(|| vec![0; self.len()])
    }

    /// Sequences as slices.
    pub fn seq_refs(&self) -> Vec<&[u8]> {
        self.seqs.iter().map(Vec::as_slice).collect()
    }

    /// Load FASTA files (unlabelled) or a SPEC (labelled); see the module documentation.
    pub fn load(inputs: &[String]) -> Result<Self> {
        if inputs.is_empty() {
            return Err(Error::input("no input given"));
        }
        let mut fasta = Vec::new();
        for i in inputs {
            fasta.push(looks_like_fasta_file(i)?);
        }
        if fasta.iter().all(|&f| f) {
            return load_fasta(inputs);
        }
        if let Some(i) = fasta.iter().position(|&f| f) {
            return Err(Error::input(format!(
                "{}: a FASTA file without a label among labelled inputs; give it as LABEL={}",
                inputs[i], inputs[i]
            )));
        }
        load_spec(&inputs.join(","))
    }

    /// Load a SPEC (or FASTA files) keeping no output layout, e.g. for `genolm leakage`.
    ///
    /// Unlike [`LabeledSet::load`], a FASTA path without a label is accepted, and a test SPEC may
    /// hold one class when `classes` are given.
    pub fn load_any(spec: &str, classes: Option<&[String]>) -> Result<Self> {
        let parts: Vec<String> = spec
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if !parts.is_empty()
            && parts
                .iter()
                .map(|p| looks_like_fasta_file(p))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .all(|f| f)
        {
            return load_fasta(&parts);
        }
        let set = match classes {
            Some(c) if !c.is_empty() => {
                LabeledSet::load_with_classes(spec, SeqPolicy::default(), c)?
            }
            _ => LabeledSet::load(spec, SeqPolicy::default())?,
        };
        Ok(from_labeled(set, InputFormat::LabeledFasta))
    }
}

impl Input {
    /// Load regions of `genome` named by BED files: `parts` are `BED` (no labels) or
    /// `LABEL=BED` (all labelled), see [`InputFormat::Bed`].
    ///
    /// Each region becomes a record named `SEQID:START-END` (1-based inclusive, so the
    /// chromosome method reads its sequence id), with `name=NAME` (BED column 4) in the
    /// description; a `-` region (column 6) is reverse-complemented. Only the sequences the BED
    /// files name are kept in memory. Errors name the BED file and line: a sequence not in the
    /// genome, a region past its end, a malformed line.
    pub fn load_bed(genome: &str, parts: &[String]) -> Result<Self> {
        let parts: Vec<String> = parts
            .iter()
            .flat_map(|p| p.split(','))
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            return Err(Error::input("--regions: no BED file given"));
        }
        // The SPEC rule: a part that is a file is unlabelled, else LABEL=PATH.
        let parsed: Vec<(Option<String>, String)> = parse_spec(&parts.join(","))?
            .into_iter()
            .map(|part| match part {
                SpecPart::Fasta { label, path } => Ok((Some(label), path)),
                SpecPart::Table {
                    path,
                    seq_col: None,
                    label_col: None,
                } => Ok((None, path)),
                SpecPart::Table { path, .. } => Err(Error::input(format!(
                    "--regions {path}: expected BED or LABEL=BED"
                ))),
            })
            .collect::<Result<_>>()?;
        let labelled = parsed.iter().filter(|(l, _)| l.is_some()).count();
        if labelled != 0 && labelled != parsed.len() {
            return Err(Error::input(
                "--regions: give every BED file a label (LABEL=BED) or none",
            ));
        }
        let mut classes: Vec<String> = Vec::new();
        let mut beds = Vec::new();
        for (label, path) in &parsed {
            let recs = crate::io::bed::read_bed(path)?;
            let class = label.as_ref().map(|l| {
                classes.iter().position(|c| c == l).unwrap_or_else(|| {
                    classes.push(l.clone());
                    classes.len() - 1
                }) as u32
            });
            beds.push((path.clone(), class, recs));
        }
        let wanted: HashSet<&str> = beds
            .iter()
            .flat_map(|(_, _, recs)| recs.iter().map(|r| r.seqid.as_str()))
            .collect();
        let mut chroms: HashMap<String, Vec<u8>> = HashMap::new();
        for rec in Reader::open(genome, SeqPolicy::default())? {
            let rec = rec?;
            if wanted.contains(rec.name.as_str()) {
                chroms.insert(rec.name, rec.seq);
            }
        }
        let mut input = Input {
            names: Vec::new(),
            descriptions: Vec::new(),
            seqs: Vec::new(),
            labels: (labelled != 0).then(Vec::new),
            classes,
            format: InputFormat::Bed { lines: Vec::new() },
            note: None,
        };
        let mut lines = Vec::new();
        for (path, class, recs) in beds {
            for r in recs {
                let chrom = chroms.get(&r.seqid).ok_or_else(|| {
                    Error::at(
                        &path,
                        r.line_no,
                        format!("sequence '{}' is not in {genome}", r.seqid),
                    )
                })?;
                if r.iv.end > chrom.len() {
                    return Err(Error::at(
                        &path,
                        r.line_no,
                        format!(
                            "region ends at {} but '{}' has {} bases",
                            r.iv.end,
                            r.seqid,
                            chrom.len()
                        ),
                    ));
                }
                let piece = &chrom[r.iv.start..r.iv.end];
                let minus = r.strand == crate::io::gff::Strand::Minus;
                input.seqs.push(if minus {
                    crate::seq::revcomp(piece)
                } else {
                    piece.to_vec()
                });
                input.names.push(format!(
                    "{}:{}-{}{}",
                    r.seqid,
                    r.iv.start + 1,
                    r.iv.end,
                    if minus { "(-)" } else { "" }
                ));
                input.descriptions.push(
                    r.name
                        .as_ref()
                        .map(|n| format!("name={n}"))
                        .unwrap_or_default(),
                );
                if let (Some(l), Some(c)) = (&mut input.labels, class) {
                    l.push(c);
                }
                lines.push(r.line);
            }
        }
        input.format = InputFormat::Bed { lines };
        Ok(input)
    }
}

/// True when `path` is an existing file whose first non-blank byte (after decompression) is '>'.
fn looks_like_fasta_file(path: &str) -> Result<bool> {
    if !Path::new(path).is_file() {
        if path.contains('=') || path.contains(':') || path.contains(',') {
            return Ok(false); // a SPEC part; the SPEC reader reports missing files
        }
        return Err(Error::input(format!("{path}: no such file")));
    }
    let mut r = open_input(path)?;
    let head = r.fill_buf().map_err(|e| Error::io(path, e))?;
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    Ok(head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'>'))
}

fn load_fasta(paths: &[String]) -> Result<Input> {
    let mut input = Input {
        names: Vec::new(),
        descriptions: Vec::new(),
        seqs: Vec::new(),
        labels: None,
        classes: Vec::new(),
        format: InputFormat::Fasta,
        note: None,
    };
    for p in paths {
        for rec in Reader::open(p, SeqPolicy::default())? {
            let rec = rec?;
            input.names.push(rec.name);
            input.descriptions.push(rec.description);
            input.seqs.push(rec.seq);
        }
    }
    if input.is_empty() {
        return Err(Error::input(format!("{}: no records", paths.join(","))));
    }
    Ok(input)
}

fn from_labeled(set: LabeledSet, format: InputFormat) -> Input {
    let n = set.len();
    Input {
        names: set.names,
        descriptions: vec![String::new(); n],
        seqs: set.seqs,
        labels: Some(set.labels),
        classes: set.classes,
        format,
        note: None,
    }
}

/// Field delimiter of a table, as the classification reader decides it.
fn table_delimiter(path: &str, head: &[u8]) -> u8 {
    let lower = path.to_ascii_lowercase();
    let stem = lower
        .strip_suffix(".gz")
        .or_else(|| lower.strip_suffix(".bgz"))
        .unwrap_or(&lower);
    if stem.ends_with(".csv") {
        return b',';
    }
    if stem.ends_with(".tsv") || stem.ends_with(".tab") {
        return b'\t';
    }
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let count = |c: u8| first.iter().filter(|&&b| b == c).count();
    if count(b'\t') > count(b',') {
        b'\t'
    } else {
        b','
    }
}

/// Strip a trailing CR from the last field (CRLF files).
fn trim_cr(rec: &csv::ByteRecord) -> csv::ByteRecord {
    let n = rec.len();
    rec.iter()
        .enumerate()
        .map(|(i, f)| {
            if i + 1 == n {
                f.strip_suffix(b"\r").unwrap_or(f)
            } else {
                f
            }
        })
        .collect()
}

/// The header and data rows of a table, skipping blank lines as the classification reader does.
fn read_table_rows(path: &str) -> Result<(u8, csv::ByteRecord, Vec<csv::ByteRecord>)> {
    let mut input = open_input(path)?;
    let delim = {
        let head = input.fill_buf().map_err(|e| Error::io(path, e))?;
        let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
        table_delimiter(path, head)
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .terminator(csv::Terminator::Any(b'\n'))
        .has_headers(true)
        .flexible(true)
        .from_reader(input);
    let csv_err = |e: csv::Error| Error::input(format!("{path}: {e}"));
    let mut header = trim_cr(rdr.byte_headers().map_err(csv_err)?);
    if let Some(first) = header.get(0) {
        if let Some(rest) = first.strip_prefix(b"\xef\xbb\xbf") {
            let mut h: Vec<Vec<u8>> = header.iter().map(<[u8]>::to_vec).collect();
            h[0] = rest.to_vec();
            header = h.iter().collect();
        }
    }
    let mut rows = Vec::new();
    let mut rec = csv::ByteRecord::new();
    while rdr.read_byte_record(&mut rec).map_err(csv_err)? {
        if rec.len() == 1 && rec[0].trim_ascii().is_empty() {
            continue;
        }
        rows.push(trim_cr(&rec));
    }
    Ok((delim, header, rows))
}

fn load_spec(spec: &str) -> Result<Input> {
    let parts = parse_spec(spec)?;
    let set = LabeledSet::load(spec, SeqPolicy::default())?;
    if !parts.iter().all(|p| matches!(p, SpecPart::Table { .. })) {
        return Ok(from_labeled(set, InputFormat::LabeledFasta));
    }
    // Tables: re-read the raw rows so that the outputs keep every column unchanged.
    let mut delim0 = None;
    let mut header0: Option<csv::ByteRecord> = None;
    let mut rows = Vec::with_capacity(set.len());
    let mut note = None;
    for (f, part) in parts.iter().enumerate() {
        let path = part.path();
        let (delim, header, r) = read_table_rows(path)?;
        let expected = set.origins.iter().filter(|o| o.file as usize == f).count();
        if r.len() != expected {
            return Err(Error::Internal(format!(
                "{path}: {} rows but {expected} records were loaded",
                r.len()
            )));
        }
        match (&header0, delim0) {
            (None, _) => {
                header0 = Some(header);
                delim0 = Some(delim);
            }
            (Some(h), Some(d)) if *h == header && d == delim => {}
            _ => {
                note = Some(format!(
                    "{path}: its header or delimiter differs from the first table's; writing FASTA per class"
                ));
            }
        }
        rows.extend(r);
    }
    if note.is_some() {
        let mut input = from_labeled(set, InputFormat::LabeledFasta);
        input.note = note;
        return Ok(input);
    }
    let delimiter = delim0.unwrap_or(b',');
    let format = InputFormat::Table {
        delimiter,
        ext: if delimiter == b'\t' { "tsv" } else { "csv" },
        header: header0.unwrap_or_default(),
        rows,
    };
    Ok(from_labeled(set, format))
}

/// Deal groups to splits, largest first, balancing each class against its target fractions.
///
/// `group_of[i]` is record `i`'s group (any ids), `labels[i]` its class. Returns the split index
/// (0 train, 1 valid, 2 test) per record.
pub fn assign_groups(
    group_of: &[usize],
    labels: &[u32],
    fractions: [f64; 3],
    seed: u64,
) -> Vec<u8> {
    deal_groups(group_of, labels, &fractions, seed)
        .into_iter()
        .map(|s| s as u8)
        .collect()
}

/// [`assign_groups`] for any number of parts: part index per record, each part approaching its
/// fraction within every class (parts with fraction 0 receive nothing). With `k` equal
/// fractions the parts are `k` group-aware, class-balanced folds.
pub fn deal_groups(group_of: &[usize], labels: &[u32], fractions: &[f64], seed: u64) -> Vec<usize> {
    let n_classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(1);
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &g) in group_of.iter().enumerate() {
        members.entry(g).or_default().push(i);
    }
    let mut groups: Vec<Vec<usize>> = members.into_values().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    groups.shuffle(&mut rng);
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    let mut totals = vec![0usize; n_classes];
    for &l in labels {
        totals[l as usize] += 1;
    }
    let mut current = vec![vec![0usize; n_classes]; fractions.len()];
    let mut out = vec![0usize; labels.len()];
    let mut counts = vec![0usize; n_classes];
    for g in &groups {
        counts.iter_mut().for_each(|c| *c = 0);
        for &i in g {
            counts[labels[i] as usize] += 1;
        }
        let mut best = (f64::INFINITY, 0usize);
        for (s, &frac) in fractions.iter().enumerate() {
            if frac <= 0.0 {
                continue;
            }
            // Mean fill ratio of the group's classes in part s after adding the group.
            let mut ratio = 0.0;
            for c in 0..n_classes {
                if counts[c] > 0 {
                    let target = frac * totals[c] as f64;
                    ratio += counts[c] as f64 * (current[s][c] + counts[c]) as f64 / target;
                }
            }
            ratio /= g.len() as f64;
            if ratio < best.0 - 1e-12 {
                best = (ratio, s);
            }
        }
        let s = best.1;
        for c in 0..n_classes {
            current[s][c] += counts[c];
        }
        for &i in g {
            out[i] = s;
        }
    }
    out
}

/// The sequence id of a record name for `--method chromosome`: the name up to the first ':'
/// (so `chr1:1000-1300(+)` is on `chr1`).
pub fn seqid_of(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

/// Assign records to splits by the sequence ids named for valid and test; the rest is train.
pub fn assign_chromosomes(names: &[String], valid: &[String], test: &[String]) -> Result<Vec<u8>> {
    if valid.is_empty() && test.is_empty() {
        return Err(Error::input(
            "--method chromosome needs --valid-seqids and/or --test-seqids",
        ));
    }
    let mut split_of: HashMap<&str, u8> = HashMap::new();
    for (ids, s) in [(valid, 1u8), (test, 2u8)] {
        for id in ids {
            if let Some(prev) = split_of.insert(id.as_str(), s) {
                if prev != s {
                    return Err(Error::input(format!(
                        "sequence id '{id}' is named for both valid and test"
                    )));
                }
            }
        }
    }
    let present: HashSet<&str> = names.iter().map(|n| seqid_of(n)).collect();
    for id in valid.iter().chain(test) {
        if !present.contains(id.as_str()) {
            return Err(Error::input(format!(
                "sequence id '{id}' matches no record (a record's id is its name up to the first ':')"
            )));
        }
    }
    Ok(names
        .iter()
        .map(|n| split_of.get(seqid_of(n)).copied().unwrap_or(0))
        .collect())
}

/// Options of [`split`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Assignment method.
    pub method: Method,
    /// Train, valid, test fractions (ignored by `chromosome`).
    pub fractions: [f64; 3],
    /// Seed for the random order.
    pub seed: u64,
    /// Homology parameters (clusters and leakage).
    pub params: Params,
    /// Sequence ids for valid (`chromosome`).
    pub valid_seqids: Vec<String>,
    /// Sequence ids for test (`chromosome`).
    pub test_seqids: Vec<String>,
}

/// What [`split`] decided.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// Split index per record (0 train, 1 valid, 2 test).
    pub split_of: Vec<u8>,
    /// Cluster id per record (`homology` only).
    pub clusters: Option<Vec<usize>>,
    /// Clustering statistics (`homology` only).
    pub stats: Option<ClusterStats>,
}

/// Split index per record, plus the clusters and their statistics for `homology`.
pub fn split(input: &Input, opts: &Options) -> Result<Assignment> {
    match opts.method {
        Method::Random => {
            let groups: Vec<usize> = (0..input.len()).collect();
            Ok(Assignment {
                split_of: assign_groups(
                    &groups,
                    &input.labels_or_zero(),
                    opts.fractions,
                    opts.seed,
                ),
                clusters: None,
                stats: None,
            })
        }
        Method::Chromosome => Ok(Assignment {
            split_of: assign_chromosomes(&input.names, &opts.valid_seqids, &opts.test_seqids)?,
            clusters: None,
            stats: None,
        }),
        Method::Homology => {
            let seqs = input.seq_refs();
            homology::check_lengths(&input.names, &seqs, "input")?;
            let (clusters, stats) = homology::cluster(&seqs, &opts.params)?;
            Ok(Assignment {
                split_of: assign_groups(
                    &clusters,
                    &input.labels_or_zero(),
                    opts.fractions,
                    opts.seed,
                ),
                clusters: Some(clusters),
                stats: Some(stats),
            })
        }
    }
}

/// Move to train every cluster holding a record of `split` whose index is in `leaking`
/// (positions among that split's records, in record order); returns the records moved.
///
/// The leakage check indexes the training records alone, so a k-mer that `max_occ` hid from
/// the all-against-all search can still find a pair there; moving the pair's cluster keeps the
/// split free of links at the identity.
pub fn move_leaking_clusters(
    split_of: &mut [u8],
    clusters: &[usize],
    split: u8,
    leaking: &[usize],
) -> usize {
    let members: Vec<usize> = (0..split_of.len())
        .filter(|&i| split_of[i] == split)
        .collect();
    let bad: HashSet<usize> = leaking.iter().map(|&k| clusters[members[k]]).collect();
    let mut moved = 0;
    for (i, s) in split_of.iter_mut().enumerate() {
        if *s == split && bad.contains(&clusters[i]) {
            *s = 0;
            moved += 1;
        }
    }
    moved
}

/// Output layout chosen by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    /// The input's own format.
    Input,
    /// FASTA, the label in the record description.
    Fasta,
}

/// A class name made safe for a file name (other characters become '_').
pub fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path.display(), e)
}

/// Write FASTA records `idx` of `input` to `path`, with `label=` descriptions when asked.
fn write_fasta(input: &Input, idx: &[usize], path: &Path, with_label: bool) -> Result<()> {
    write_atomic(path, |w| {
        for &i in idx {
            let desc = match (&input.labels, with_label) {
                (Some(l), true) => format!("label={}", input.classes[l[i] as usize]),
                _ => input.descriptions[i].clone(),
            };
            crate::io::fasta::write_record(w, &input.names[i], &desc, &input.seqs[i], 0)
                .map_err(io_err(path))?;
        }
        Ok(())
    })
}

/// Write the three splits into `dir` (created if missing); returns the files written.
pub fn write_splits(
    input: &Input,
    split_of: &[u8],
    dir: &Path,
    format: OutFormat,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let idx: Vec<Vec<usize>> = (0..3u8)
        .map(|s| (0..input.len()).filter(|&i| split_of[i] == s).collect())
        .collect();
    let mut written = Vec::new();
    match (&input.format, format) {
        (InputFormat::Fasta, _) | (_, OutFormat::Fasta) => {
            for (s, name) in SPLITS.iter().enumerate() {
                let path = dir.join(format!("{name}.fa"));
                write_fasta(input, &idx[s], &path, true)?;
                written.push(path);
            }
        }
        (InputFormat::LabeledFasta, OutFormat::Input) => {
            let labels = input.labels.as_deref().unwrap_or_default();
            for (s, name) in SPLITS.iter().enumerate() {
                for (c, class) in input.classes.iter().enumerate() {
                    let path = dir.join(format!("{name}.{}.fa", file_safe(class)));
                    let members: Vec<usize> = idx[s]
                        .iter()
                        .copied()
                        .filter(|&i| labels[i] as usize == c)
                        .collect();
                    write_fasta(input, &members, &path, false)?;
                    written.push(path);
                }
            }
        }
        (InputFormat::Bed { lines }, OutFormat::Input) => {
            for (s, name) in SPLITS.iter().enumerate() {
                let groups: Vec<(String, Vec<usize>)> = match &input.labels {
                    None => vec![(format!("{name}.bed"), idx[s].clone())],
                    Some(labels) => input
                        .classes
                        .iter()
                        .enumerate()
                        .map(|(c, class)| {
                            let members = idx[s]
                                .iter()
                                .copied()
                                .filter(|&i| labels[i] as usize == c)
                                .collect();
                            (format!("{name}.{}.bed", file_safe(class)), members)
                        })
                        .collect(),
                };
                for (file, members) in groups {
                    let path = dir.join(file);
                    write_atomic(&path, |w| {
                        for &i in &members {
                            writeln!(w, "{}", lines[i]).map_err(io_err(&path))?;
                        }
                        Ok(())
                    })?;
                    written.push(path);
                }
            }
        }
        (
            InputFormat::Table {
                delimiter,
                ext,
                header,
                rows,
            },
            OutFormat::Input,
        ) => {
            for (s, name) in SPLITS.iter().enumerate() {
                let path = dir.join(format!("{name}.{ext}"));
                write_atomic(&path, |w| {
                    let mut wr = csv::WriterBuilder::new()
                        .delimiter(*delimiter)
                        .terminator(csv::Terminator::Any(b'\n'))
                        .from_writer(w);
                    let err = |e: csv::Error| Error::input(format!("{}: {e}", path.display()));
                    wr.write_byte_record(header).map_err(err)?;
                    for &i in &idx[s] {
                        wr.write_byte_record(&rows[i]).map_err(err)?;
                    }
                    wr.flush().map_err(io_err(&path))
                })?;
                written.push(path);
            }
        }
    }
    Ok(written)
}

/// Records per split and class: `counts[split][class]`.
pub fn split_counts(split_of: &[u8], labels: &[u32], n_classes: usize) -> [Vec<usize>; 3] {
    let mut c = [
        vec![0; n_classes.max(1)],
        vec![0; n_classes.max(1)],
        vec![0; n_classes.max(1)],
    ];
    for (&s, &l) in split_of.iter().zip(labels) {
        c[s as usize][l as usize] += 1;
    }
    c
}

/// Write a JSON value to `path` atomically (pretty-printed, with a final newline).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(|e| Error::Internal(e.to_string()))?;
        w.write_all(b"\n").map_err(io_err(path))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_and_methods() {
        assert_eq!(parse_fractions("0.8, 0.1,0.1").unwrap(), [0.8, 0.1, 0.1]);
        for bad in [
            "0.8,0.1",
            "0.8,0.1,0.2",
            "a,b,c",
            "0,0.5,0.5",
            "1.2,-0.1,-0.1",
        ] {
            assert!(parse_fractions(bad).is_err(), "{bad}");
        }
        assert_eq!(Method::parse("Homology").unwrap(), Method::Homology);
        assert!(Method::parse("kmeans").is_err());
        assert_eq!(seqid_of("chr1:10-20(+)"), "chr1");
    }

    #[test]
    fn groups_fill_fractions_per_class() {
        // 1000 records, two classes 700/300, a few big groups and many singletons.
        let labels: Vec<u32> = (0..1000).map(|i| u32::from(i % 10 >= 7)).collect();
        let groups: Vec<usize> = (0..1000)
            .map(|i| if i < 100 { i / 25 } else { i })
            .collect();
        let s = assign_groups(&groups, &labels, [0.8, 0.1, 0.1], 3);
        let c = split_counts(&s, &labels, 2);
        for (split, frac) in [(0, 0.8), (1, 0.1), (2, 0.1)] {
            for (class, total) in [(0, 700.0), (1, 300.0)] {
                let got = c[split][class] as f64;
                assert!((got - frac * total).abs() <= 3.0, "{c:?}");
            }
        }
        for g in 0..4 {
            let first = s[g * 25];
            assert!((g * 25..g * 25 + 25).all(|i| s[i] == first));
        }
        assert_eq!(s, assign_groups(&groups, &labels, [0.8, 0.1, 0.1], 3));
    }
}
