//! Labelled sequence sets for classification, loaded from a SPEC string.
//!
//! # SPEC syntax
//!
//! A SPEC is one or more PARTs separated by commas; the records of all parts, in order, form one
//! set (so paths cannot contain commas). A PART is one of:
//!
//! - `LABEL=FASTA`: every record of a FASTA file (plain, gzip or BGZF, any file name, CRLF
//!   tolerated) has class `LABEL`. A label may be given for several files; their records pool.
//! - `TABLE`: a CSV or TSV file with a header row (plain or gzipped). The delimiter comes from
//!   the name (`.csv`, `.tsv`, `.tab`, each optionally `.gz`/`.bgz`), else it is sniffed from the
//!   header line (tab when it has more tabs than commas). The sequence column is the first of
//!   `sequence`, `seq`; the label column the first of `label`, `promoter_presence`, `class`,
//!   `y` (header names match case-insensitively). Record names come from a `name` or `id`
//!   column, or from an unnamed first column (a pandas index), else they are `row1`, `row2`, ….
//!   Every row must have as many fields as the header; blank lines are skipped.
//! - `TABLE:SEQCOL:LABELCOL`: a table with its columns named, each by header name
//!   (case-insensitive) or by 1-based column number; leave one empty to auto-detect it
//!   (`data.csv::target`).
//!
//! A PART that names an existing file is always a table, even if it holds `=` or `:`.
//! Examples: `promoter=prom.fa.gz,non_promoter=non.fa.gz`; `fold_1.csv.gz,fold_2.csv.gz`;
//! `data.tsv:dna:activity`.
//!
//! Sequences are normalised by [`SeqPolicy`] (upper case unless soft-masking is kept; IUPAC
//! codes and `U` mapped as in [`crate::seq`]). Table sequences are trimmed of surrounding
//! whitespace; any other byte outside the alphabet is an error naming the file, line and record.
//!
//! # Label mapping
//!
//! Raw labels (the `LABEL`s of a SPEC, or the label column's values, trimmed) become class
//! indices by one stable rule over the whole SPEC:
//!
//! 1. **Integers**: if any label is a non-negative integer, all must be; label `v` is class `v`
//!    and the class names are `"0"`, `"1"`, …, `"K-1"`. Every class in `0..K` must occur (no
//!    gaps), so a 0/1 column maps 0 → 0 and 1 → 1, and a stray `maybe` is an error.
//! 2. **Names**: otherwise classes are ordered by group, then by name (byte order): first the
//!    negative names ([`NEGATIVE_NAMES`]: `non_promoter`, `negative`, `neg`, `false`, `no`, …),
//!    then all other names, then the positive names ([`POSITIVE_NAMES`]: `promoter`,
//!    `positive`, `pos`, `true`, `yes`, `prom`), matched case-insensitively. So in a binary
//!    promoter set the promoter class is always label 1, and `non_promoter` is label 0.
//!
//! A set needs at least two classes. To load a test set against a training set's classes
//! (where one class may be missing, as in a positives-only independent test), use
//! [`LabeledSet::load_with_classes`].
//!
//! # Promoter benchmarks (see [`promoter_benchmarks`]; paths under the data directory)
//!
//! | name | SPEC | protocol | published |
//! |---|---|---|---|
//! | `epdnew_human_300` | `promoters/epdnew_human_300/fold_{1..5}.csv.gz` (label `promoter_presence` 0/1) | given folds: train on four, test on the fifth | GENA-LM bert-base F1 74.56 ± 0.36; bert-large F1 76.44 |
//! | `ipromoter2l_ecoli` | `promoter=…/positive2860.txt.gz,non_promoter=…/negative2860.txt.gz`; test `promoter=…/independent.txt.gz` (256 promoters only) | 5-fold CV + independent test | iPromoter-2L accuracy 81.7% (jackknife); later CNN/LSTM about 84–88% |
//! | `ipromoter2l_ecoli_sigma` | `sigma24=…/sigma24promoter.txt.gz,…,sigma70=…/sigma70promoter.txt.gz` (six classes) | 5-fold CV | none given |
//! | `cnnprom_ecoli` | `promoter=cnnprom/Ecoli_prom.fa.gz,non_promoter=cnnprom/Ecoli_non_prom.fa.gz` | 5-fold CV | CNNProm Sn 0.90, Sp 0.96 |
//! | `cnnprom_bacillus` | `promoter=…/Bacillus_prom.fa.gz,non_promoter=…/Bacillus_non_prom.fa.gz` | 5-fold CV | CNNProm Sn 0.91, Sp 0.95 |
//! | `cnnprom_arabidopsis_tata` | `promoter=…/Arabidopsis_tata.fa.gz,non_promoter=…/Arabidopsis_non_prom.fa.gz` | 5-fold CV | CNNProm Sn 0.95, Sp 0.97 |
//! | `cnnprom_arabidopsis_non_tata` | `promoter=…/Arabidopsis_non_tata.fa.gz,non_promoter=…/Arabidopsis_non_prom.fa.gz` | 5-fold CV | CNNProm Sn 0.94, Sp 0.94 |
//! | `cnnprom_mouse_tata` | `promoter=…/Mouse_tata.fa.gz,non_promoter=…/Mouse_nonprom.fa.gz` | 5-fold CV | CNNProm Sn 0.97, Sp 0.97 |
//! | `cnnprom_mouse_tata_dbtss` | `promoter=…/Mouse_tata_dbtss.fa.gz,non_promoter=…/Mouse_nonprom.fa.gz` | 5-fold CV | CNNProm Sn 0.88, Sp 0.94 (mouse non-TATA) |
//!
//! `cnnprom/Arabidopsis_non_prom_big.fa.gz` (11,459 negatives) is a larger negative pool that no
//! standard set uses. The CV protocol for the CNNProm and iPromoter sets is ours (seeded
//! stratified 5-fold); the published numbers came from the authors' own splits.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::data::folds::Split;
use crate::error::{Error, Result};
use crate::io::fasta::Reader;
use crate::io::open_input;
use crate::seq::{self, SeqPolicy};

/// Sequence column names looked for in a table header, in order (case-insensitive).
pub const SEQ_COLUMNS: [&str; 2] = ["sequence", "seq"];
/// Label column names looked for in a table header, in order (case-insensitive).
pub const LABEL_COLUMNS: [&str; 4] = ["label", "promoter_presence", "class", "y"];
/// Class names that sort last (the positive class of a binary set), case-insensitive.
pub const POSITIVE_NAMES: [&str; 6] = ["promoter", "positive", "pos", "true", "yes", "prom"];
/// Class names that sort first (the negative class of a binary set), case-insensitive.
pub const NEGATIVE_NAMES: [&str; 10] = [
    "non_promoter",
    "non-promoter",
    "nonpromoter",
    "non_prom",
    "nonprom",
    "negative",
    "neg",
    "false",
    "no",
    "background",
];

/// Largest integer label accepted (integer labels are class indices).
const MAX_INT_LABEL: u32 = 100_000;

/// Where a record came from: an index into [`LabeledSet::files`] and a 1-based line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Index into [`LabeledSet::files`].
    pub file: u32,
    /// 1-based line of the record's header (FASTA) or row (table).
    pub line: u64,
}

/// A set of sequences with class labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledSet {
    /// Normalised sequences.
    pub seqs: Vec<Vec<u8>>,
    /// Class index of each sequence, into `classes`.
    pub labels: Vec<u32>,
    /// Record names (FASTA name, table id column, or `rowN`).
    pub names: Vec<String>,
    /// Class names indexed by label.
    pub classes: Vec<String>,
    /// The SPEC (or description) the set was loaded from.
    pub source: String,
    /// Input files, one per SPEC part, indexed by [`Origin::file`].
    pub files: Vec<String>,
    /// Where each record came from.
    pub origins: Vec<Origin>,
}

/// One comma-separated part of a SPEC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecPart {
    /// `LABEL=FASTA`: every record of the file has class `label`.
    Fasta {
        /// Class label for all records.
        label: String,
        /// FASTA path.
        path: String,
    },
    /// `TABLE[:SEQCOL:LABELCOL]`: a CSV/TSV file with a header.
    Table {
        /// Table path.
        path: String,
        /// Forced sequence column (name or 1-based number); `None` to auto-detect.
        seq_col: Option<String>,
        /// Forced label column (name or 1-based number); `None` to auto-detect.
        label_col: Option<String>,
    },
}

impl SpecPart {
    /// The file this part reads.
    pub fn path(&self) -> &str {
        match self {
            SpecPart::Fasta { path, .. } | SpecPart::Table { path, .. } => path,
        }
    }
}

/// Split a SPEC into its parts (see the module documentation for the syntax).
pub fn parse_spec(spec: &str) -> Result<Vec<SpecPart>> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(Error::input(
            "empty data SPEC: expected LABEL=FASTA[,LABEL=FASTA...] or a CSV/TSV file",
        ));
    }
    spec.split(',')
        .map(|part| {
            let part = part.trim();
            if part.is_empty() {
                return Err(Error::input(format!("data SPEC '{spec}': empty part between commas")));
            }
            if Path::new(part).is_file() {
                return Ok(table_part(part, None, None));
            }
            if let Some((label, path)) = part.split_once('=') {
                let (label, path) = (label.trim(), path.trim());
                if label.is_empty() || path.is_empty() {
                    return Err(Error::input(format!(
                        "data SPEC part '{part}': expected LABEL=FASTA with both sides non-empty"
                    )));
                }
                return Ok(SpecPart::Fasta {
                    label: label.to_string(),
                    path: path.to_string(),
                });
            }
            let pieces: Vec<&str> = part.rsplitn(3, ':').collect();
            match pieces.as_slice() {
                [_] => Ok(table_part(part, None, None)),
                [label, seq, path] if !path.is_empty() => Ok(table_part(
                    path,
                    Some(seq.trim()).filter(|s| !s.is_empty()),
                    Some(label.trim()).filter(|s| !s.is_empty()),
                )),
                _ => Err(Error::input(format!(
                    "data SPEC part '{part}': expected TABLE or TABLE:SEQCOL:LABELCOL (a column may be empty to auto-detect it)"
                ))),
            }
        })
        .collect()
}

fn table_part(path: &str, seq_col: Option<&str>, label_col: Option<&str>) -> SpecPart {
    SpecPart::Table {
        path: path.to_string(),
        seq_col: seq_col.map(str::to_string),
        label_col: label_col.map(str::to_string),
    }
}

/// Records of one SPEC part with labels interned per part, before the global label mapping.
struct RawPart {
    file: String,
    seqs: Vec<Vec<u8>>,
    names: Vec<String>,
    lines: Vec<u64>,
    /// Index into `label_names` per record.
    label_idx: Vec<u32>,
    /// Distinct raw labels in order of first appearance.
    label_names: Vec<String>,
    /// Line where each raw label first appears; 0 when it came from the SPEC.
    label_lines: Vec<u64>,
}

impl RawPart {
    fn new(file: &str) -> Self {
        RawPart {
            file: file.to_string(),
            seqs: Vec::new(),
            names: Vec::new(),
            lines: Vec::new(),
            label_idx: Vec::new(),
            label_names: Vec::new(),
            label_lines: Vec::new(),
        }
    }

    /// Where a raw label was seen, for error messages: `file:line` or `file`.
    fn label_place(&self, local: usize) -> String {
        match self.label_lines[local] {
            0 => format!("{} (label given in the SPEC)", self.file),
            line => format!("{}:{line}", self.file),
        }
    }
}

fn load_part(part: &SpecPart, policy: SeqPolicy) -> Result<RawPart> {
    match part {
        SpecPart::Fasta { label, path } => load_fasta(label, path, policy),
        SpecPart::Table {
            path,
            seq_col,
            label_col,
        } => load_table(path, seq_col.as_deref(), label_col.as_deref(), policy),
    }
}

fn load_fasta(label: &str, path: &str, policy: SeqPolicy) -> Result<RawPart> {
    let mut reader = Reader::open(path, policy)?;
    let mut part = RawPart::new(path);
    part.label_names.push(label.to_string());
    part.label_lines.push(0);
    while let Some(header) = reader.next_header()? {
        let mut s = Vec::new();
        reader.read_sequence(&header, |chunk, line| {
            let start = s.len();
            s.extend_from_slice(chunk);
            seq::normalize_in_place(&mut s[start..], policy).map_err(|i| {
                Error::at(
                    path,
                    line,
                    format!(
                        "record '{}': invalid base {} at sequence offset {}",
                        header.name,
                        seq::show_byte(s[start + i]),
                        start + i
                    ),
                )
            })
        })?;
        part.seqs.push(s);
        part.lines.push(header.line);
        part.names.push(header.name);
        part.label_idx.push(0);
    }
    Ok(part)
}

/// Field delimiter from the file name, else sniffed from the first line.
fn delimiter(path: &str, head: &[u8]) -> u8 {
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

fn csv_error(path: &str, e: csv::Error) -> Error {
    let line = e.position().map(|p| p.line());
    let msg = e.to_string();
    match (e.into_kind(), line) {
        (csv::ErrorKind::Io(io), _) => Error::io(path, io),
        (_, Some(l)) => Error::at(path, l, msg),
        (_, None) => Error::input(format!("{path}: {msg}")),
    }
}

fn show_header(headers: &[String]) -> String {
    headers
        .iter()
        .map(|h| format!("'{h}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolve a column: a forced name/number, else the first auto name present.
fn find_column(
    path: &str,
    headers: &[String],
    forced: Option<&str>,
    auto: &[&str],
    what: &str,
) -> Result<usize> {
    if let Some(want) = forced {
        if let Some(i) = headers.iter().position(|h| h.eq_ignore_ascii_case(want)) {
            return Ok(i);
        }
        if let Ok(n) = want.parse::<usize>() {
            if (1..=headers.len()).contains(&n) {
                return Ok(n - 1);
            }
        }
        return Err(Error::input(format!(
            "{path}: no {what} column '{want}' (header: {})",
            show_header(headers)
        )));
    }
    for name in auto {
        if let Some(i) = headers.iter().position(|h| h.eq_ignore_ascii_case(name)) {
            return Ok(i);
        }
    }
    Err(Error::input(format!(
        "{path}: no {what} column (looked for {}; header: {}); name the columns as {path}:SEQCOL:LABELCOL",
        auto.join(", "),
        show_header(headers)
    )))
}

fn load_table(
    path: &str,
    seq_col: Option<&str>,
    label_col: Option<&str>,
    policy: SeqPolicy,
) -> Result<RawPart> {
    let mut input = open_input(path)?;
    let delim = {
        let head = input.fill_buf().map_err(|e| Error::io(path, e))?;
        let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
        match head.iter().find(|b| !b.is_ascii_whitespace()) {
            None => {
                return Err(Error::input(format!(
                    "{path}: empty file, expected a CSV/TSV header"
                )))
            }
            Some(b'>') => {
                return Err(Error::input(format!(
                    "{path}: looks like FASTA, which carries no labels; give one file per class as LABEL=FASTA[,LABEL=FASTA...]"
                )))
            }
            Some(_) => {}
        }
        delimiter(path, head)
    };
    // Records end at '\n' only (a '\r' before it is trimmed with the field): with the default
    // CRLF terminator the csv crate's line numbers lag by one on CRLF files.
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .terminator(csv::Terminator::Any(b'\n'))
        .has_headers(true)
        .flexible(true)
        .from_reader(input);
    let headers: Vec<String> = rdr
        .byte_headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim()
                .trim_start_matches('\u{feff}')
                .to_string()
        })
        .collect();
    let ncols = headers.len();
    let seq_i = find_column(path, &headers, seq_col, &SEQ_COLUMNS, "sequence")?;
    let label_i = find_column(path, &headers, label_col, &LABEL_COLUMNS, "label")?;
    if seq_i == label_i {
        return Err(Error::input(format!(
            "{path}: the sequence and label columns are the same column ('{}')",
            headers[seq_i]
        )));
    }
    let name_i = headers
        .iter()
        .position(|h| h.eq_ignore_ascii_case("name") || h.eq_ignore_ascii_case("id"))
        .or_else(|| (headers[0].is_empty() && seq_i != 0 && label_i != 0).then_some(0));

    let mut part = RawPart::new(path);
    let mut interned: HashMap<String, u32> = HashMap::new();
    let mut rec = csv::ByteRecord::new();
    let mut row = 0u64;
    while rdr
        .read_byte_record(&mut rec)
        .map_err(|e| csv_error(path, e))?
    {
        if rec.len() == 1 && rec[0].trim_ascii().is_empty() {
            continue; // a blank line with a CR
        }
        row += 1;
        let line = rec.position().map_or(row + 1, |p| p.line());
        if rec.len() != ncols {
            return Err(Error::at(
                path,
                line,
                format!("row has {} fields, the header has {ncols}", rec.len()),
            ));
        }
        let name = match name_i.map(|i| String::from_utf8_lossy(&rec[i]).trim().to_string()) {
            Some(n) if !n.is_empty() => n,
            _ => format!("row{row}"),
        };
        let raw = rec[seq_i].trim_ascii();
        if raw.is_empty() {
            return Err(Error::at(
                path,
                line,
                format!("record '{name}': empty sequence"),
            ));
        }
        let mut s = raw.to_vec();
        seq::normalize_in_place(&mut s, policy).map_err(|i| {
            Error::at(
                path,
                line,
                format!(
                    "record '{name}': invalid base {} at sequence offset {i}",
                    seq::show_byte(s[i])
                ),
            )
        })?;
        let label = std::str::from_utf8(&rec[label_i])
            .map_err(|_| Error::at(path, line, format!("record '{name}': label is not UTF-8")))?
            .trim();
        if label.is_empty() {
            return Err(Error::at(
                path,
                line,
                format!("record '{name}': empty label"),
            ));
        }
        let idx = match interned.get(label) {
            Some(&i) => i,
            None => {
                let i = part.label_names.len() as u32;
                interned.insert(label.to_string(), i);
                part.label_names.push(label.to_string());
                part.label_lines.push(line);
                i
            }
        };
        part.seqs.push(s);
        part.names.push(name);
        part.lines.push(line);
        part.label_idx.push(idx);
    }
    if row == 0 {
        return Err(Error::input(format!(
            "{path}: no data rows after the header"
        )));
    }
    Ok(part)
}

fn is_int(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Sorting group of a class name: 0 negative, 1 other, 2 positive.
fn name_group(name: &str) -> u8 {
    if NEGATIVE_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        0
    } else if POSITIVE_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        2
    } else {
        1
    }
}

/// A distinct raw label: its text and where it was first seen (part, local index).
struct Distinct {
    text: String,
    part: usize,
    local: usize,
}

/// Infer class names from the distinct raw labels by the module's label-mapping rule.
fn infer_classes(parts: &[RawPart], distinct: &[Distinct]) -> Result<Vec<String>> {
    let first_int = distinct.iter().find(|d| is_int(&d.text));
    let classes: Vec<String> = if let Some(example) = first_int {
        if let Some(bad) = distinct.iter().find(|d| !is_int(&d.text)) {
            return Err(Error::input(format!(
                "{}: label '{}' is not an integer, but other labels are (e.g. '{}'); integer labels must all be class numbers 0..K-1",
                parts[bad.part].label_place(bad.local),
                bad.text,
                example.text
            )));
        }
        let mut max = 0;
        for d in distinct {
            match d.text.parse::<u32>() {
                Ok(v) if v <= MAX_INT_LABEL => max = max.max(v),
                _ => {
                    return Err(Error::input(format!(
                        "{}: integer label '{}' is too large (at most {MAX_INT_LABEL})",
                        parts[d.part].label_place(d.local),
                        d.text
                    )))
                }
            }
        }
        (0..=max).map(|v| v.to_string()).collect()
    } else {
        let mut names: Vec<&str> = distinct.iter().map(|d| d.text.as_str()).collect();
        names.sort_by(|a, b| name_group(a).cmp(&name_group(b)).then(a.cmp(b)));
        names.dedup();
        names.into_iter().map(str::to_string).collect()
    };
    Ok(classes)
}

/// Class index of a raw label under fixed class names: exact, then integer value, then
/// case-insensitive.
fn class_of(text: &str, classes: &[String]) -> Option<u32> {
    if let Some(i) = classes.iter().position(|c| c == text) {
        return Some(i as u32);
    }
    if is_int(text) {
        if let Ok(v) = text.parse::<u32>() {
            if let Some(i) = classes.iter().position(|c| c.parse::<u32>() == Ok(v)) {
                return Some(i as u32);
            }
        }
    }
    let mut matches = classes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.eq_ignore_ascii_case(text));
    match (matches.next(), matches.next()) {
        (Some((i, _)), None) => Some(i as u32),
        _ => None,
    }
}

/// Build a set from loaded parts, mapping raw labels to classes (inferred or fixed).
fn assemble(source: &str, parts: Vec<RawPart>, fixed: Option<&[String]>) -> Result<LabeledSet> {
    let mut distinct: Vec<Distinct> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (p, part) in parts.iter().enumerate() {
        for (l, text) in part.label_names.iter().enumerate() {
            if !seen.contains_key(text.as_str()) {
                seen.insert(text, distinct.len());
                distinct.push(Distinct {
                    text: text.clone(),
                    part: p,
                    local: l,
                });
            }
        }
    }
    let classes: Vec<String> = match fixed {
        Some(c) => c.to_vec(),
        None => infer_classes(&parts, &distinct)?,
    };
    // Global class of each distinct label.
    let mut global = Vec::with_capacity(distinct.len());
    for d in &distinct {
        let class = if fixed.is_some() {
            class_of(&d.text, &classes)
        } else if is_int(&d.text) {
            d.text.parse::<u32>().ok()
        } else {
            classes.iter().position(|c| *c == d.text).map(|i| i as u32)
        };
        match class {
            Some(c) => global.push(c),
            None => {
                return Err(Error::input(format!(
                    "{}: label '{}' is not one of the classes ({})",
                    parts[d.part].label_place(d.local),
                    d.text,
                    classes.join(", ")
                )))
            }
        }
    }
    let maps: Vec<Vec<u32>> = parts
        .iter()
        .map(|part| {
            part.label_names
                .iter()
                .map(|t| global[seen[t.as_str()]])
                .collect()
        })
        .collect();
    drop(seen);
    let n: usize = parts.iter().map(|p| p.seqs.len()).sum();
    let mut set = LabeledSet {
        seqs: Vec::with_capacity(n),
        labels: Vec::with_capacity(n),
        names: Vec::with_capacity(n),
        classes,
        source: source.to_string(),
        files: Vec::with_capacity(parts.len()),
        origins: Vec::with_capacity(n),
    };
    for (p, (part, map)) in parts.into_iter().zip(maps).enumerate() {
        set.labels
            .extend(part.label_idx.iter().map(|&i| map[i as usize]));
        set.origins.extend(part.lines.iter().map(|&line| Origin {
            file: p as u32,
            line,
        }));
        set.seqs.extend(part.seqs);
        set.names.extend(part.names);
        set.files.push(part.file);
    }
    if set.is_empty() {
        return Err(Error::input(format!("{source}: no records")));
    }
    if fixed.is_none() {
        let counts = set.class_counts();
        let present: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] > 0).collect();
        if let [only] = present.as_slice() {
            return Err(Error::input(format!(
                "{source}: only one class ('{}', {} records); a classifier needs at least two",
                set.classes[*only], counts[*only]
            )));
        }
        if let Some(gap) = (0..counts.len()).find(|&c| counts[c] == 0) {
            return Err(Error::input(format!(
                "{source}: no records of class {gap} (integer labels must be 0..K-1 without gaps; classes seen: {})",
                present
                    .iter()
                    .map(|c| set.classes[*c].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(set)
}

impl LabeledSet {
    /// Load a labelled set from a SPEC (see the module documentation), inferring the classes.
    pub fn load(spec: &str, policy: SeqPolicy) -> Result<Self> {
        Self::load_inner(spec, policy, None)
    }

    /// Load a SPEC against known class names (e.g. a training set's), allowing missing classes.
    ///
    /// Each raw label must name one of `classes` (exactly, as the same integer, or
    /// case-insensitively); a single class is allowed.
    pub fn load_with_classes(spec: &str, policy: SeqPolicy, classes: &[String]) -> Result<Self> {
        Self::load_inner(spec, policy, Some(classes))
    }

    fn load_inner(spec: &str, policy: SeqPolicy, fixed: Option<&[String]>) -> Result<Self> {
        let parts = parse_spec(spec)?;
        let loaded: Vec<Result<RawPart>> = parts.par_iter().map(|p| load_part(p, policy)).collect();
        let loaded = loaded.into_iter().collect::<Result<Vec<_>>>()?;
        assemble(spec.trim(), loaded, fixed)
    }

    /// Build a set from vectors (e.g. synthetic data); names are `row1`, `row2`, ….
    pub fn from_vecs(
        seqs: Vec<Vec<u8>>,
        labels: Vec<u32>,
        classes: Vec<String>,
        source: &str,
    ) -> Result<Self> {
        if seqs.len() != labels.len() {
            return Err(Error::input(format!(
                "{source}: {} sequences but {} labels",
                seqs.len(),
                labels.len()
            )));
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= classes.len()) {
            return Err(Error::input(format!(
                "{source}: record {} has label {} but there are {} classes",
                i + 1,
                labels[i],
                classes.len()
            )));
        }
        let n = seqs.len();
        Ok(LabeledSet {
            seqs,
            labels,
            names: (1..=n).map(|i| format!("row{i}")).collect(),
            classes,
            source: source.to_string(),
            files: vec![source.to_string()],
            origins: (1..=n as u64)
                .map(|line| Origin { file: 0, line })
                .collect(),
        })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// True when there are no records.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Records per class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Label of a class name (exact match), if present.
    pub fn label_of(&self, class: &str) -> Option<u32> {
        self.classes
            .iter()
            .position(|c| c == class)
            .map(|i| i as u32)
    }

    /// Error unless the set has exactly two classes.
    pub fn require_binary(&self) -> Result<()> {
        if self.classes.len() == 2 {
            return Ok(());
        }
        Err(Error::input(format!(
            "{}: {} classes ({}), but this task needs two",
            self.source,
            self.classes.len(),
            self.classes.join(", ")
        )))
    }

    /// The common sequence length, or `None` when lengths differ or the set is empty.
    pub fn fixed_length(&self) -> Option<usize> {
        let first = self.seqs.first()?.len();
        self.seqs.iter().all(|s| s.len() == first).then_some(first)
    }

    /// Error naming the first record (file, line, name) whose length is not `len`.
    pub fn require_length(&self, len: usize) -> Result<()> {
        match self.seqs.iter().position(|s| s.len() != len) {
            None => Ok(()),
            Some(i) => Err(self.error_at(
                i,
                format!(
                    "record '{}' has length {}, expected {len} (all records must have the same length)",
                    self.names[i],
                    self.seqs[i].len()
                ),
            )),
        }
    }

    /// An input error located at record `i`'s file and line.
    pub fn error_at(&self, i: usize, msg: impl std::fmt::Display) -> Error {
        let o = self.origins[i];
        Error::at(&self.files[o.file as usize], o.line, msg)
    }

    /// The records at `idx` (in that order) as a new set with the same classes.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn subset(&self, idx: &[usize]) -> LabeledSet {
        LabeledSet {
            seqs: idx.iter().map(|&i| self.seqs[i].clone()).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            names: idx.iter().map(|&i| self.names[i].clone()).collect(),
            classes: self.classes.clone(),
            source: self.source.clone(),
            files: self.files.clone(),
            origins: idx.iter().map(|&i| self.origins[i]).collect(),
        }
    }

    /// The (train, test) subsets of a split.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn split(&self, split: &Split) -> (LabeledSet, LabeledSet) {
        (self.subset(&split.train), self.subset(&split.test))
    }
}

/// How a benchmark set is evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// Published folds, one file per fold: train on the others, test on each in turn
    /// (see [`crate::data::folds::by_file`]).
    GivenFolds,
    /// Seeded stratified k-fold cross-validation on the whole set.
    KFold {
        /// Number of folds.
        k: usize,
    },
    /// Stratified k-fold cross-validation plus an independent test set.
    KFoldWithTest {
        /// Number of folds.
        k: usize,
        /// SPEC of the independent test set (load with the training set's classes).
        test_spec: String,
    },
}

/// A published result on a benchmark set, for comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// Method (and model size) that reported it.
    pub method: &'static str,
    /// Metric name as in [`crate::train::metrics::BinaryMetrics`] (`f1`, `accuracy`, `recall`, …).
    pub metric: &'static str,
    /// Reported value as a fraction (lower end when a range was reported).
    pub value: f64,
    /// Reported ± spread, if any.
    pub spread: Option<f64>,
    /// Upper end when a range was reported.
    pub upper: Option<f64>,
    /// How it was measured.
    pub note: &'static str,
}

/// A promoter benchmark: its data, protocol and published numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkSet {
    /// Short name, e.g. `cnnprom_ecoli`.
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// SPEC of the training / cross-validation data.
    pub spec: String,
    /// Every file the set uses (including an independent test set).
    pub files: Vec<PathBuf>,
    /// Evaluation protocol.
    pub protocol: Protocol,
    /// Length of every sequence.
    pub seq_len: usize,
    /// Expected records per class of `spec`, in label order.
    pub counts: Vec<(&'static str, usize)>,
    /// Expected records per class of the independent test set, if any.
    pub test_counts: Vec<(&'static str, usize)>,
    /// Published results (those in the data README), possibly none.
    pub published: Vec<Published>,
}

impl BenchmarkSet {
    /// True when every file of the set exists.
    pub fn available(&self) -> bool {
        self.files.iter().all(|f| f.is_file())
    }

    /// Load the training / cross-validation data.
    pub fn load(&self, policy: SeqPolicy) -> Result<LabeledSet> {
        LabeledSet::load(&self.spec, policy)
    }

    /// Load the independent test set with the training set's classes, if the protocol has one.
    pub fn load_test(&self, train: &LabeledSet, policy: SeqPolicy) -> Result<Option<LabeledSet>> {
        match &self.protocol {
            Protocol::KFoldWithTest { test_spec, .. } => {
                LabeledSet::load_with_classes(test_spec, policy, &train.classes).map(Some)
            }
            _ => Ok(None),
        }
    }
}

fn pairs(dir: &Path, pairs: &[(&str, &str)]) -> (String, Vec<PathBuf>) {
    let files: Vec<PathBuf> = pairs.iter().map(|(_, f)| dir.join(f)).collect();
    let spec = pairs
        .iter()
        .zip(&files)
        .map(|((label, _), f)| format!("{label}={}", f.display()))
        .collect::<Vec<_>>()
        .join(",");
    (spec, files)
}

fn published(
    method: &'static str,
    metric: &'static str,
    value: f64,
    note: &'static str,
) -> Published {
    Published {
        method,
        metric,
        value,
        spread: None,
        upper: None,
        note,
    }
}

/// The promoter benchmark sets under a data directory (files may be missing: see
/// [`BenchmarkSet::available`]).
pub fn promoter_benchmarks(data_dir: &Path) -> Vec<BenchmarkSet> {
    let p = data_dir.join("promoters");
    let mut sets = Vec::new();

    let epd = p.join("epdnew_human_300");
    let folds: Vec<PathBuf> = (1..=5)
        .map(|i| epd.join(format!("fold_{i}.csv.gz")))
        .collect();
    sets.push(BenchmarkSet {
        name: "epdnew_human_300",
        description: "Human EPDnew promoters (hg38, 300 bp) vs DeePromoter-style hard negatives",
        spec: folds
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
        files: folds,
        protocol: Protocol::GivenFolds,
        seq_len: 300,
        counts: vec![("0", 29_598), ("1", 29_598)],
        test_counts: vec![],
        published: vec![
            Published {
                spread: Some(0.0036),
                ..published(
                    "GENA-LM bert-base",
                    "f1",
                    0.7456,
                    "5 given folds, mean ± sd",
                )
            },
            published("GENA-LM bert-large", "f1", 0.7644, "5 given folds, mean"),
        ],
    });

    let ip = p.join("ipromoter2l_ecoli");
    let (spec, mut files) = pairs(
        &ip,
        &[
            ("promoter", "positive2860.txt.gz"),
            ("non_promoter", "negative2860.txt.gz"),
        ],
    );
    let (test_spec, test_files) = pairs(&ip, &[("promoter", "independent.txt.gz")]);
    files.extend(test_files);
    sets.push(BenchmarkSet {
        name: "ipromoter2l_ecoli",
        description: "iPromoter-2L E. coli benchmark, promoter vs non-promoter, 81 bp",
        spec,
        files,
        protocol: Protocol::KFoldWithTest { k: 5, test_spec },
        seq_len: 81,
        counts: vec![("non_promoter", 2860), ("promoter", 2860)],
        test_counts: vec![("promoter", 256)],
        published: vec![
            published("iPromoter-2L", "accuracy", 0.817, "jackknife"),
            Published {
                upper: Some(0.88),
                ..published("later CNN/LSTM methods", "accuracy", 0.84, "about 84–88%")
            },
        ],
    });

    const SIGMAS: [(&str, &str, usize); 6] = [
        ("sigma24", "sigma24promoter.txt.gz", 484),
        ("sigma28", "sigma28promoter.txt.gz", 134),
        ("sigma32", "sigma32promoter.txt.gz", 291),
        ("sigma38", "sigma38promoter.txt.gz", 163),
        ("sigma54", "sigma54promoter.txt.gz", 94),
        ("sigma70", "sigma70promoter.txt.gz", 1694),
    ];
    let sigma_pairs: Vec<(&str, &str)> = SIGMAS.iter().map(|&(l, f, _)| (l, f)).collect();
    let (spec, files) = pairs(&ip, &sigma_pairs);
    sets.push(BenchmarkSet {
        name: "ipromoter2l_ecoli_sigma",
        description:
            "iPromoter-2L second layer: E. coli promoters by sigma factor (6 classes), 81 bp",
        spec,
        files,
        protocol: Protocol::KFold { k: 5 },
        seq_len: 81,
        counts: SIGMAS.iter().map(|&(l, _, n)| (l, n)).collect(),
        test_counts: vec![],
        published: vec![],
    });

    let cnn = p.join("cnnprom");
    #[allow(clippy::type_complexity)]
    let cnnprom: [(&str, &str, &str, &str, usize, usize, usize); 6] = [
        (
            "cnnprom_ecoli",
            "CNNProm E. coli sigma70 promoters vs non-promoters, 81 bp",
            "Ecoli_prom.fa.gz",
            "Ecoli_non_prom.fa.gz",
            839,
            3000,
            81,
        ),
        (
            "cnnprom_bacillus",
            "CNNProm B. subtilis promoters vs non-promoters, 81 bp",
            "Bacillus_prom.fa.gz",
            "Bacillus_non_prom.fa.gz",
            373,
            1000,
            81,
        ),
        (
            "cnnprom_arabidopsis_tata",
            "CNNProm Arabidopsis TATA promoters vs non-promoters, 251 bp",
            "Arabidopsis_tata.fa.gz",
            "Arabidopsis_non_prom.fa.gz",
            1497,
            2879,
            251,
        ),
        (
            "cnnprom_arabidopsis_non_tata",
            "CNNProm Arabidopsis non-TATA promoters vs non-promoters, 251 bp",
            "Arabidopsis_non_tata.fa.gz",
            "Arabidopsis_non_prom.fa.gz",
            5905,
            2879,
            251,
        ),
        (
            "cnnprom_mouse_tata",
            "CNNProm mouse TATA promoters (EPD) vs non-promoters, 251 bp",
            "Mouse_tata.fa.gz",
            "Mouse_nonprom.fa.gz",
            1255,
            3530,
            251,
        ),
        (
            "cnnprom_mouse_tata_dbtss",
            "CNNProm mouse promoters from DBTSS (file Mouse_tata_dbtss) vs non-promoters, 251 bp",
            "Mouse_tata_dbtss.fa.gz",
            "Mouse_nonprom.fa.gz",
            1354,
            3530,
            251,
        ),
    ];
    for (name, description, prom, non, n_prom, n_non, len) in cnnprom {
        let (spec, files) = pairs(&cnn, &[("promoter", prom), ("non_promoter", non)]);
        // CNNProm's own numbers (Umarov & Solovyev 2016; the mouse non-TATA (DBTSS) pair as
        // quoted by iPTT(2L)-CNN, 2021).
        let (sn, sp) = match name {
            "cnnprom_ecoli" => (0.90, 0.96),
            "cnnprom_bacillus" => (0.91, 0.95),
            "cnnprom_arabidopsis_tata" => (0.95, 0.97),
            "cnnprom_arabidopsis_non_tata" => (0.94, 0.94),
            "cnnprom_mouse_tata" => (0.97, 0.97),
            _ => (0.88, 0.94),
        };
        let published = vec![
            published(
                "CNNProm",
                "recall",
                sn,
                "sensitivity, Umarov & Solovyev 2016",
            ),
            published("CNNProm", "specificity", sp, "Umarov & Solovyev 2016"),
        ];
        sets.push(BenchmarkSet {
            name,
            description,
            spec,
            files,
            protocol: Protocol::KFold { k: 5 },
            seq_len: len,
            counts: vec![("non_promoter", n_non), ("promoter", n_prom)],
            test_counts: vec![],
            published,
        });
    }
    sets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parsing() {
        let parts = parse_spec("promoter=a.fa, non_promoter = b.fa.gz").unwrap();
        assert_eq!(
            parts[1],
            SpecPart::Fasta {
                label: "non_promoter".into(),
                path: "b.fa.gz".into()
            }
        );
        assert_eq!(parts[0].path(), "a.fa");
        assert_eq!(
            parse_spec("x.csv").unwrap()[0],
            table_part("x.csv", None, None)
        );
        assert_eq!(
            parse_spec("x.tsv:dna:").unwrap()[0],
            table_part("x.tsv", Some("dna"), None)
        );
        assert_eq!(
            parse_spec("d/x.csv::3").unwrap()[0],
            table_part("d/x.csv", None, Some("3"))
        );
        for bad in ["", "a.fa,,b.fa", "=x.fa", "lab=", "x.csv:seq"] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_order() {
        let mut names = vec!["promoter", "zeta", "non_promoter", "alpha"];
        names.sort_by(|a, b| name_group(a).cmp(&name_group(b)).then(a.cmp(b)));
        assert_eq!(names, ["non_promoter", "alpha", "zeta", "promoter"]);
        assert_eq!(delimiter("x.TSV.gz", b"a,b"), b'\t');
        assert_eq!(delimiter("x.txt", b"a\tb\tc,d\n"), b'\t');
        assert_eq!(delimiter("x.txt", b"a,b\tc,d\n"), b',');
    }
}
