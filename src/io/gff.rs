//! GFF3 → gene models (gene → transcripts → exons / CDS / UTRs), tolerant of real-world styles.
//!
//! # Coordinates
//! Every interval in this module is **0-based, half-open** (`start..end`), so it can slice a
//! sequence directly; GFF's 1-based inclusive `s..=e` becomes `s-1..e`.
//!
//! # Parsing
//! Lines are parsed by hand (not with `noodles::gff`, which passes malformed percent escapes
//! through, accepts `start > end` and reports no line numbers). Every malformed line is an error
//! naming the file and line: wrong column count, bad start/end, `start > end`, bad score, strand
//! or phase, non-UTF-8 text, attributes that are not `tag=value`, bad percent escapes. Parsing
//! stops at `##FASTA`. `CDS` rows with phase `.` are accepted (phase taken as 0).
//!
//! # Hierarchy
//! * Part rows (`exon`, `noncoding_exon`, `pseudogenic_exon`, `CDS`, `five_prime_UTR`,
//!   `three_prime_UTR`, `UTR`) attach to every parent named in `Parent=a,b` (multi-parent).
//! * A parent that itself has a parent is a transcript of that gene (`gene → mRNA → exon`).
//! * A top-level parent whose type ends in `gene` (`gene`, `pseudogene`, ...) holds its parts
//!   directly (SGD / NCBI prokaryote style): they form implicit transcripts, one per CDS `ID`
//!   (rows without an ID share one). NCBI mature-peptide CDS rows (`ID=id-ACC:a..b`) are grouped
//!   by the polyprotein accession `ACC`, and the stop codon (which mature peptides exclude) is
//!   added when the gene extends exactly 3 bp past the last part.
//! * Any other top-level parent is a transcript that is its own gene.
//! * RNA/transcript rows with no parts (`tRNA` without exons, ...) get one exon = their span.
//! * Parents of type `protein`/`polypeptide` are ignored.
//! * Parents cut out of the file (e.g. by a slice) get stand-ins, with a warning: parts whose
//!   parents are all missing form a transcript named after the first one (siblings sharing a
//!   part row share a gene `implied:FIRST`); transcripts whose gene is missing share a gene
//!   named after the missing ID (gffread-like).
//! * Missing exons are derived from CDS ∪ UTRs (overlapping/adjacent parts merged); missing UTRs
//!   are derived from exons minus the CDS span.
//!
//! # Against the FASTA
//! [`Annotation::resolve_seqids`] maps GFF seqids to FASTA records (exact name, else the first
//! word of a description, else the name without a `.N` version, each only when unique). A seqid
//! no record has is an error naming both files. **A feature extending past the end of its
//! sequence is an error** (naming the GFF line): it means the annotation belongs to another
//! assembly.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use crate::error::{Error, Result};
use crate::io::fasta::Record;

/// Strand of a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strand {
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `.` or `?`: not stranded or unknown (treated as `+` for extraction and labels).
    Unknown,
}

impl Strand {
    /// The GFF character for this strand (`+`, `-`, `.`).
    pub fn symbol(self) -> char {
        match self {
            Strand::Plus => '+',
            Strand::Minus => '-',
            Strand::Unknown => '.',
        }
    }

    /// True for [`Strand::Minus`].
    pub fn is_minus(self) -> bool {
        self == Strand::Minus
    }
}

/// A 0-based half-open interval on a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    /// First base (0-based).
    pub start: usize,
    /// One past the last base.
    pub end: usize,
}

impl Interval {
    /// Number of bases (0 when `end <= start`).
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// True when the interval holds no base.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// One CDS segment with its GFF phase (`None` when the file said `.`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CdsPart {
    /// Location on the sequence.
    pub iv: Interval,
    /// Bases to skip at the 5′ end of this segment to reach the first complete codon.
    pub phase: Option<u8>,
}

/// A transcript: exons, CDS, UTRs, all sorted by start (ascending genomic order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// Transcript ID (for implicit transcripts: the CDS ID, polyprotein accession or gene ID).
    pub id: String,
    /// GFF type of the transcript row (`mRNA`, `ncRNA`, `tRNA`, ...); `mRNA` or `transcript`
    /// for implicit transcripts.
    pub kind: String,
    /// True when no transcript row exists (parts hung directly on a gene).
    pub implicit: bool,
    /// Strand.
    pub strand: Strand,
    /// Span of the transcript (row ∪ parts).
    pub span: Interval,
    /// Exons (given, else derived from CDS ∪ UTRs), merged where overlapping or adjacent.
    pub exons: Vec<Interval>,
    /// CDS segments, in ascending order; they may overlap (ribosomal slippage).
    pub cds: Vec<CdsPart>,
    /// 5′ UTR pieces (given, else derived from exons minus the CDS span).
    pub utr5: Vec<Interval>,
    /// 3′ UTR pieces (given, else derived).
    pub utr3: Vec<Interval>,
    /// GFF line that defined the transcript (its row, or its first part).
    pub line: u64,
}

impl Transcript {
    /// Spliced (exonic) length.
    pub fn len(&self) -> usize {
        self.exons.iter().map(Interval::len).sum()
    }

    /// True when the transcript has no exonic base.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total CDS length (overlapping slippage segments counted twice, as they are read).
    pub fn cds_len(&self) -> usize {
        self.cds.iter().map(|c| c.iv.len()).sum()
    }

    /// True when the transcript has a CDS.
    pub fn is_coding(&self) -> bool {
        !self.cds.is_empty()
    }

    /// CDS segments in transcript (5′→3′) order.
    pub fn cds_in_order(&self) -> Vec<CdsPart> {
        let mut v = self.cds.clone();
        if self.strand.is_minus() {
            v.reverse();
        }
        v
    }

    /// Span from the first to the last CDS base, if coding.
    pub fn cds_span(&self) -> Option<Interval> {
        let start = self.cds.iter().map(|c| c.iv.start).min()?;
        let end = self.cds.iter().map(|c| c.iv.end).max()?;
        Some(Interval { start, end })
    }

    /// The transcription start site (0-based position of the first transcribed base).
    pub fn tss(&self) -> usize {
        let first = self.exons.first().map_or(self.span.start, |e| e.start);
        let last = self.exons.last().map_or(self.span.end, |e| e.end);
        if self.strand.is_minus() {
            last.saturating_sub(1)
        } else {
            first
        }
    }
}

/// A gene with its transcripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gene {
    /// Gene ID (for implicit genes: the transcript's ID).
    pub id: String,
    /// `Name=` attribute, if any.
    pub name: Option<String>,
    /// Sequence name as written in the GFF.
    pub seqid: String,
    /// Strand.
    pub strand: Strand,
    /// Span: the gene row ∪ its transcripts.
    pub span: Interval,
    /// GFF type of the gene row (`gene`, `pseudogene`, ...), or the transcript type for
    /// implicit genes.
    pub kind: String,
    /// Transcripts in file order (may be empty, e.g. a pseudogene row with no parts).
    pub transcripts: Vec<Transcript>,
    /// GFF line of the gene row (or of the row that implied it).
    pub line: u64,
}

impl Gene {
    /// The representative transcript: longest CDS, ties broken by longest spliced length, then
    /// by file order (first wins).
    pub fn longest(&self) -> Option<&Transcript> {
        let mut best: Option<&Transcript> = None;
        for t in &self.transcripts {
            let better = match best {
                None => true,
                Some(b) => (t.cds_len(), t.len()) > (b.cds_len(), b.len()),
            };
            if better {
                best = Some(t);
            }
        }
        best
    }
}

/// Where a GFF seqid is used: for checks against the FASTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqidUse {
    /// The seqid as written.
    pub seqid: String,
    /// First line that uses it.
    pub first_line: u64,
    /// Largest feature end (0-based exclusive = 1-based inclusive end).
    pub max_end: usize,
    /// Line holding that largest end.
    pub max_end_line: u64,
}

/// A parsed GFF3 file.
#[derive(Debug, Clone, Default)]
pub struct Annotation {
    /// The file label used in messages.
    pub source: String,
    /// Genes in file order.
    pub genes: Vec<Gene>,
    /// Every seqid used by a feature line, in order of first use.
    pub seqids: Vec<SeqidUse>,
    /// Summarised, non-fatal oddities (orphan parts, parents outside the file, ...).
    pub warnings: Vec<String>,
}

/// Name, description and length of one FASTA record, for [`Annotation::resolve_seqids`].
#[derive(Debug, Clone, Copy)]
pub struct SeqName<'a> {
    /// Name (header up to the first whitespace).
    pub name: &'a str,
    /// The rest of the header.
    pub description: &'a str,
    /// Sequence length.
    pub len: usize,
}

impl<'a> From<&'a Record> for SeqName<'a> {
    fn from(r: &'a Record) -> Self {
        SeqName {
            name: &r.name,
            description: &r.description,
            len: r.seq.len(),
        }
    }
}

/// Read a GFF3 file (plain, gzip, BGZF or `-`).
pub fn read(path: &str) -> Result<Annotation> {
    let reader = crate::io::open_input(path)?;
    parse(reader, path)
}

/// Parse GFF3 text held in memory; `label` names it in messages.
pub fn parse_str(text: &str, label: &str) -> Result<Annotation> {
    parse(text.as_bytes(), label)
}

/// Parse GFF3 from any reader; `label` names the source in messages.
pub fn parse<R: BufRead>(mut reader: R, label: &str) -> Result<Annotation> {
    let mut p = Parsed::default();
    // ID → (seqid, first line) of gene and transcript rows: one on two sequences is an error.
    let mut feature_ids: HashMap<String, (String, u64)> = HashMap::new();
    let mut buf = Vec::new();
    let mut line_no: u64 = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(label, e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let mut bytes: &[u8] = &buf;
        if let Some(b) = bytes.strip_suffix(b"\n") {
            bytes = b;
        }
        if let Some(b) = bytes.strip_suffix(b"\r") {
            bytes = b;
        }
        if line_no == 1 {
            if let Some(b) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
                bytes = b;
            }
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let bad = bytes.get(e.valid_up_to()).copied().unwrap_or(0);
            Error::at(
                label,
                line_no,
                format!(
                    "not UTF-8 text (byte 0x{bad:02x} at column {}); is this a binary file?",
                    e.valid_up_to() + 1
                ),
            )
        })?;
        if text.trim().is_empty() {
            continue;
        }
        if let Some(rest) = text.strip_prefix('#') {
            if rest.starts_with("#FASTA") {
                break;
            }
            if let Some(v) = rest.strip_prefix("#gff-version") {
                let v = v.trim();
                if !(v == "3" || v.starts_with("3.")) {
                    return Err(Error::at(
                        label,
                        line_no,
                        format!("unsupported ##gff-version '{v}' (only GFF3 is read)"),
                    ));
                }
            }
            continue;
        }
        let row = parse_line(text).map_err(|msg| Error::at(label, line_no, msg))?;
        let parent_like = gene_like(&row.ty) || transcript_like(&row.ty);
        if let Some(id) = row.id.as_deref().filter(|_| parent_like) {
            match feature_ids.get(id) {
                Some((seqid, first)) if *seqid != row.seqid => {
                    return Err(Error::at(
                        label,
                        line_no,
                        format!(
                            "ID={id} on seqid '{}' was already used on line {first} on seqid '{seqid}' (GFF3 IDs must be unique)",
                            row.seqid
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    feature_ids.insert(id.to_string(), (row.seqid.clone(), line_no));
                }
            }
        }
        p.push(row, line_no);
    }
    p.build(label)
}

/// Which role a row plays in the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Cds,
    Exon,
    Utr5,
    Utr3,
    Utr,
    Protein,
    Other,
}

impl Class {
    fn of(ty: &str) -> Class {
        let l = ty.to_ascii_lowercase();
        match l.as_str() {
            "cds" => Class::Cds,
            "exon" | "noncoding_exon" | "pseudogenic_exon" => Class::Exon,
            "five_prime_utr" | "5utr" | "5'utr" | "five_prime_untranslated_region" => Class::Utr5,
            "three_prime_utr" | "3utr" | "3'utr" | "three_prime_untranslated_region" => Class::Utr3,
            "utr" | "untranslated_region" => Class::Utr,
            "protein" | "polypeptide" => Class::Protein,
            _ => Class::Other,
        }
    }

    fn is_part(self) -> bool {
        matches!(
            self,
            Class::Cds | Class::Exon | Class::Utr5 | Class::Utr3 | Class::Utr
        )
    }
}

fn gene_like(ty: &str) -> bool {
    ty.to_ascii_lowercase().ends_with("gene")
}

fn transcript_like(ty: &str) -> bool {
    ty.ends_with("RNA") || ty == "transcript" || ty.ends_with("_transcript") || ty == "mRNA_TE_gene"
}

/// One feature row, parsed and validated.
#[derive(Debug, Clone)]
struct Row {
    seqid: String,
    ty: String,
    iv: Interval,
    strand: Strand,
    phase: Option<u8>,
    id: Option<String>,
    parents: Vec<String>,
    name: Option<String>,
}

/// Parse the 9 columns of one feature line; the error is the message without location.
fn parse_line(text: &str) -> std::result::Result<Row, String> {
    let cols: Vec<&str> = text.split('\t').collect();
    if cols.len() != 9 {
        let mut msg = format!("expected 9 tab-separated columns, found {}", cols.len());
        if text.starts_with('>') {
            msg.push_str(" (this looks like FASTA; pass it with --fasta)");
        } else if cols.len() == 1 && text.contains(' ') {
            msg.push_str(" (columns must be separated by tabs, not spaces)");
        }
        return Err(msg);
    }
    let seqid = cols[0];
    if seqid.is_empty() || seqid == "." {
        return Err("empty seqid (column 1)".into());
    }
    let ty = cols[2];
    if ty.is_empty() || ty == "." {
        return Err("empty feature type (column 3)".into());
    }
    let start = parse_pos(cols[3], "start")?;
    let end = parse_pos(cols[4], "end")?;
    if start > end {
        return Err(format!("start {start} > end {end}"));
    }
    let score = cols[5];
    if score != "." && score.parse::<f64>().is_err() {
        return Err(format!("score '{score}' is neither '.' nor a number"));
    }
    let strand = match cols[6] {
        "+" => Strand::Plus,
        "-" => Strand::Minus,
        "." | "?" => Strand::Unknown,
        s => return Err(format!("strand '{s}' is not one of + - . ?")),
    };
    let phase = match cols[7] {
        "." => None,
        "0" => Some(0),
        "1" => Some(1),
        "2" => Some(2),
        s => return Err(format!("phase '{s}' is not one of . 0 1 2")),
    };
    let mut row = Row {
        seqid: seqid.to_string(),
        ty: ty.to_string(),
        iv: Interval {
            start: start - 1,
            end,
        },
        strand,
        phase,
        id: None,
        parents: Vec::new(),
        name: None,
    };
    parse_attributes(cols[8], &mut row)?;
    Ok(row)
}

fn parse_pos(s: &str, what: &str) -> std::result::Result<usize, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| format!("{what} '{s}' is not a positive integer"))?;
    if n == 0 {
        return Err(format!("{what} is 0 (GFF3 coordinates start at 1)"));
    }
    usize::try_from(n).map_err(|_| format!("{what} {n} is too large"))
}

fn parse_attributes(col: &str, row: &mut Row) -> std::result::Result<(), String> {
    let col = col.trim();
    if col.is_empty() || col == "." {
        return Ok(());
    }
    for pair in col.split(';') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((tag, value)) = pair.split_once('=') else {
            return Err(format!(
                "attribute '{}' is not tag=value (GTF-style attributes are not GFF3)",
                clip(pair)
            ));
        };
        let tag = percent_decode(tag.trim()).map_err(|e| format!("attribute tag: {e}"))?;
        match tag.as_str() {
            "ID" => row.id = Some(percent_decode(value).map_err(|e| format!("ID: {e}"))?),
            "Name" => row.name = Some(percent_decode(value).map_err(|e| format!("Name: {e}"))?),
            "Parent" => {
                for v in value.split(',') {
                    let v = percent_decode(v.trim()).map_err(|e| format!("Parent: {e}"))?;
                    if !v.is_empty() {
                        row.parents.push(v);
                    }
                }
            }
            _ => {
                for v in value.split(',') {
                    percent_decode(v).map_err(|e| format!("{tag}: {e}"))?;
                }
            }
        }
    }
    Ok(())
}

fn clip(s: &str) -> String {
    if s.chars().count() > 40 {
        let head: String = s.chars().take(40).collect();
        format!("{head}...")
    } else {
        s.to_string()
    }
}

/// Decode `%XX` escapes; a `%` not followed by two hex digits, or a result that is not UTF-8,
/// is an error.
pub fn percent_decode(s: &str) -> std::result::Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).and_then(|&c| hex_value(c));
            let lo = b.get(i + 2).and_then(|&c| hex_value(c));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                let shown: String = s[i..].chars().take(3).collect();
                return Err(format!(
                    "bad percent escape '{shown}' in '{}' (expected %XX, hex)",
                    clip(s)
                ));
            };
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| format!("percent escapes in '{}' decode to non-UTF-8", clip(s)))
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Counts of one kind of warning, with the first example.
#[derive(Debug, Default)]
struct Warn {
    count: u64,
    first_line: u64,
    example: String,
}

#[derive(Debug, Default)]
struct Parsed {
    rows: Vec<Row>,
    lines: Vec<u64>,
    classes: Vec<Class>,
    seqids: Vec<SeqidUse>,
    seqid_index: HashMap<String, usize>,
    warns: BTreeMap<&'static str, Warn>,
    /// Rows from this index on are stand-ins for missing parents.
    stand_in_from: usize,
}

/// Key of a transcript under construction: the parent row, and the group for implicit ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TxKey {
    row: usize,
    group: Option<String>,
}

#[derive(Debug)]
struct TxBuild {
    key: TxKey,
    gene: GeneRef,
    polyprotein: bool,
    first_line: u64,
    parts: Vec<usize>,
}

/// The gene a transcript belongs to: a gene row, or itself (implicit gene).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum GeneRef {
    Row(usize),
    SelfOf(usize),
}

impl Parsed {
    fn push(&mut self, row: Row, line: u64) {
        match self.seqid_index.get(&row.seqid) {
            Some(&i) => {
                let u = &mut self.seqids[i];
                if row.iv.end > u.max_end {
                    u.max_end = row.iv.end;
                    u.max_end_line = line;
                }
            }
            None => {
                self.seqid_index
                    .insert(row.seqid.clone(), self.seqids.len());
                self.seqids.push(SeqidUse {
                    seqid: row.seqid.clone(),
                    first_line: line,
                    max_end: row.iv.end,
                    max_end_line: line,
                });
            }
        }
        self.classes.push(Class::of(&row.ty));
        self.rows.push(row);
        self.lines.push(line);
    }

    fn add_warn(
        warns: &mut BTreeMap<&'static str, Warn>,
        kind: &'static str,
        line: u64,
        example: String,
    ) {
        let w = warns.entry(kind).or_default();
        if w.count == 0 {
            w.first_line = line;
            w.example = example;
        }
        w.count += 1;
    }

    /// First resolvable, usable parent of row `i` (not a part, not a protein, same seqid), and
    /// whether the row names any parent at all.
    fn parent_of(&self, ids: &HashMap<&str, usize>, i: usize) -> (Option<usize>, bool) {
        let mut had_any = false;
        for p in &self.rows[i].parents {
            had_any = true;
            if let Some(&j) = ids.get(p.as_str()) {
                if j != i
                    && !self.classes[j].is_part()
                    && self.classes[j] != Class::Protein
                    && self.rows[j].seqid == self.rows[i].seqid
                {
                    return (Some(j), true);
                }
            }
        }
        (None, had_any)
    }

    /// Add stand-in rows for parents cut out of the file (e.g. by a slice): when none of a part
    /// row's parents exists, a stand-in transcript for its first parent; when none of a
    /// transcript row's parents exists, a stand-in gene. Stand-ins span their children.
    fn add_missing_parents(&mut self) {
        let known: std::collections::HashSet<&str> =
            self.rows.iter().filter_map(|r| r.id.as_deref()).collect();
        let usable: std::collections::HashSet<&str> = self
            .rows
            .iter()
            .zip(&self.classes)
            .filter(|(_, c)| **c == Class::Other)
            .filter_map(|(r, _)| r.id.as_deref())
            .collect();
        let mut missing: HashMap<&str, usize> = HashMap::new();
        let mut stand_ins: Vec<(Row, u64)> = Vec::new();
        let mut gene_warn: Option<(u64, String)> = None;
        let mut gene_warns = 0u64;
        for pass in 0..2 {
            for (i, r) in self.rows.iter().enumerate() {
                let eligible = if pass == 0 {
                    self.classes[i].is_part()
                } else {
                    self.classes[i] == Class::Other && transcript_like(&r.ty)
                };
                if !eligible || r.parents.iter().any(|p| usable.contains(p.as_str())) {
                    continue;
                }
                let Some(p) = r.parents.iter().find(|p| !known.contains(p.as_str())) else {
                    continue;
                };
                if pass == 1 {
                    gene_warns += 1;
                    gene_warn.get_or_insert((self.lines[i], format!("Parent={p}")));
                }
                match missing.get(p.as_str()) {
                    Some(&k) => {
                        let s = &mut stand_ins[k].0;
                        if s.seqid == r.seqid {
                            s.iv.start = s.iv.start.min(r.iv.start);
                            s.iv.end = s.iv.end.max(r.iv.end);
                        }
                    }
                    None => {
                        missing.insert(p, stand_ins.len());
                        let row = Row {
                            seqid: r.seqid.clone(),
                            ty: if pass == 0 { "" } else { "gene" }.to_string(),
                            iv: r.iv,
                            strand: r.strand,
                            phase: None,
                            id: Some(p.clone()),
                            parents: Vec::new(),
                            name: None,
                        };
                        stand_ins.push((row, self.lines[i]));
                    }
                }
            }
        }
        // Stand-in transcripts sharing a part row are siblings: give them one implied gene.
        let mut root: Vec<usize> = (0..stand_ins.len()).collect();
        fn find(root: &mut [usize], mut i: usize) -> usize {
            while root[i] != i {
                root[i] = root[root[i]];
                i = root[i];
            }
            i
        }
        for (i, r) in self.rows.iter().enumerate() {
            if !self.classes[i].is_part() {
                continue;
            }
            let mut first: Option<usize> = None;
            for p in &r.parents {
                let Some(&k) = missing.get(p.as_str()) else {
                    continue;
                };
                if !stand_ins[k].0.ty.is_empty() {
                    continue;
                }
                match first {
                    None => first = Some(k),
                    Some(f) => {
                        let (a, b) = (find(&mut root, f), find(&mut root, k));
                        root[a.max(b)] = a.min(b);
                    }
                }
            }
        }
        let mut genes_of: HashMap<usize, usize> = HashMap::new();
        let n = stand_ins.len();
        let tops: Vec<usize> = (0..n).map(|k| find(&mut root, k)).collect();
        let mut size = vec![0usize; n];
        for &t in &tops {
            size[t] += 1;
        }
        for (k, &top) in tops.iter().enumerate() {
            if size[top] < 2 {
                continue; // a lone stand-in transcript is its own gene
            }
            let g = match genes_of.get(&top) {
                Some(&g) => g,
                None => {
                    let (t, line) = &stand_ins[top];
                    let mut row = t.clone();
                    row.ty = "gene".to_string();
                    row.id = Some(format!("implied:{}", t.id.as_deref().unwrap_or("")));
                    let line = *line;
                    stand_ins.push((row, line));
                    genes_of.insert(top, stand_ins.len() - 1);
                    stand_ins.len() - 1
                }
            };
            let (iv, seqid) = (stand_ins[k].0.iv, stand_ins[k].0.seqid.clone());
            let gid = stand_ins[g].0.id.clone().unwrap_or_default();
            let gr = &mut stand_ins[g].0;
            if gr.seqid == seqid {
                gr.iv.start = gr.iv.start.min(iv.start);
                gr.iv.end = gr.iv.end.max(iv.end);
            }
            stand_ins[k].0.parents = vec![gid];
        }
        for (row, line) in stand_ins {
            self.rows.push(row);
            self.lines.push(line);
            self.classes.push(Class::Other);
        }
        if let Some((line, example)) = gene_warn {
            let w = self
                .warns
                .entry("transcript row(s) name a gene that is not in the file; grouped into a gene of that ID")
                .or_default();
            w.count = gene_warns;
            w.first_line = line;
            w.example = example;
        }
    }

    fn build(mut self, label: &str) -> Result<Annotation> {
        let first_stand_in = self.rows.len();
        self.stand_in_from = first_stand_in;
        self.add_missing_parents();
        let mut warns = std::mem::take(&mut self.warns);
        let is_stand_in = |i: usize| i >= first_stand_in;
        // ID → row, preferring non-part rows (multi-row CDS share IDs; unrelated rows may too).
        let mut ids: HashMap<&str, usize> = HashMap::new();
        for (i, r) in self.rows.iter().enumerate() {
            if let Some(id) = r.id.as_deref() {
                match ids.get(id) {
                    None => {
                        ids.insert(id, i);
                    }
                    Some(&j) if self.classes[j].is_part() && !self.classes[i].is_part() => {
                        ids.insert(id, i);
                    }
                    Some(_) => {}
                }
            }
        }

        let mut tx_index: HashMap<TxKey, usize> = HashMap::new();
        let mut txs: Vec<TxBuild> = Vec::new();
        let mut pending: Vec<(&'static str, u64, String)> = Vec::new();
        let mut is_parent = vec![false; self.rows.len()];

        for i in 0..self.rows.len() {
            let class = self.classes[i];
            if !class.is_part() {
                continue;
            }
            let row = &self.rows[i];
            let line = self.lines[i];
            if row.parents.is_empty() {
                pending.push((
                    "part row(s) without a Parent (ignored)",
                    line,
                    row.ty.clone(),
                ));
                continue;
            }
            let mut attached = false;
            for pid in &row.parents {
                let Some(&x) = ids.get(pid.as_str()) else {
                    pending.push((
                        "part row(s) name a further Parent that is not in the file (ignored)",
                        line,
                        format!("Parent={pid}"),
                    ));
                    continue;
                };
                if is_stand_in(x) {
                    pending.push((
                        "part row(s) name a Parent that is not in the file; grouped into a transcript of that ID",
                        line,
                        format!("Parent={pid}"),
                    ));
                }
                let xc = self.classes[x];
                if xc == Class::Protein {
                    continue;
                }
                if xc.is_part() || x == i {
                    pending.push((
                        "part row(s) have another part as Parent (skipped)",
                        line,
                        format!("Parent={pid}"),
                    ));
                    continue;
                }
                let xr = &self.rows[x];
                if xr.seqid != row.seqid {
                    pending.push((
                        "part row(s) lie on another sequence than their parent (skipped)",
                        line,
                        format!("{} vs {}", row.seqid, xr.seqid),
                    ));
                    continue;
                }
                let (gene_row, had_parent) = self.parent_of(&ids, x);
                let whole = TxKey {
                    row: x,
                    group: None,
                };
                let (key, gene, poly) = match gene_row {
                    Some(g) => (whole, GeneRef::Row(g), false),
                    None if !had_parent && gene_like(&xr.ty) => {
                        let (group, poly) = implicit_group(class, row.id.as_deref());
                        (TxKey { row: x, group }, GeneRef::Row(x), poly)
                    }
                    None => (whole, GeneRef::SelfOf(x), false),
                };
                is_parent[x] = true;
                let t = match tx_index.get(&key) {
                    Some(&t) => t,
                    None => {
                        if had_parent && gene_row.is_none() {
                            pending.push((
                                "transcript(s) whose Parent is not a gene row were made their own gene",
                                self.lines[x],
                                xr.id.clone().unwrap_or_default(),
                            ));
                        }
                        tx_index.insert(key.clone(), txs.len());
                        txs.push(TxBuild {
                            key,
                            gene,
                            polyprotein: poly,
                            first_line: line,
                            parts: Vec::new(),
                        });
                        txs.len() - 1
                    }
                };
                txs[t].parts.push(i);
                attached = true;
            }
            if !attached && !row.parents.is_empty() {
                // Already reported per parent above unless every parent was a protein.
                if row.parents.iter().all(|p| {
                    ids.get(p.as_str())
                        .is_some_and(|&x| self.classes[x] == Class::Protein)
                }) {
                    pending.push((
                        "part row(s) have only protein parents (skipped)",
                        line,
                        row.ty.clone(),
                    ));
                }
            }
        }

        // Transcript rows with no parts: one exon spanning the row.
        for (i, &used) in is_parent.iter().enumerate() {
            if used || self.classes[i] != Class::Other || !transcript_like(&self.rows[i].ty) {
                continue;
            }
            if let Some(id) = self.rows[i].id.as_deref() {
                if ids.get(id) != Some(&i) {
                    continue; // a later row of a multi-row feature
                }
            }
            let (gene_row, _) = self.parent_of(&ids, i);
            let gene = match gene_row {
                Some(g) => GeneRef::Row(g),
                None => GeneRef::SelfOf(i),
            };
            let key = TxKey {
                row: i,
                group: None,
            };
            tx_index.insert(key.clone(), txs.len());
            txs.push(TxBuild {
                key,
                gene,
                polyprotein: false,
                first_line: self.lines[i],
                parts: Vec::new(),
            });
        }

        for (k, l, e) in pending {
            Self::add_warn(&mut warns, k, l, e);
        }

        // Gene table: gene rows used by transcripts, implicit genes, and childless gene rows.
        let mut gene_of: HashMap<GeneRef, usize> = HashMap::new();
        let mut genes: Vec<Gene> = Vec::new();
        let mut built: Vec<(usize, Transcript)> = Vec::new();
        for tb in &txs {
            let gi = match gene_of.get(&tb.gene) {
                Some(&g) => g,
                None => {
                    let g = self.new_gene(tb.gene);
                    gene_of.insert(tb.gene, genes.len());
                    genes.push(g);
                    genes.len() - 1
                }
            };
            let t = self.build_transcript(tb, &genes[gi], label)?;
            built.push((gi, t));
        }
        for (gi, t) in built {
            genes[gi].transcripts.push(t);
        }
        for i in 0..self.rows.len() {
            let r = &self.rows[i];
            if self.classes[i] == Class::Other
                && gene_like(&r.ty)
                && !transcript_like(&r.ty)
                && r.parents.is_empty()
                && !gene_of.contains_key(&GeneRef::Row(i))
                && r.id.as_deref().is_none_or(|id| ids.get(id) == Some(&i))
            {
                gene_of.insert(GeneRef::Row(i), genes.len());
                let g = self.new_gene(GeneRef::Row(i));
                genes.push(g);
            }
        }
        for g in &mut genes {
            g.transcripts.sort_by_key(|t| t.line);
            for t in &g.transcripts {
                g.span.start = g.span.start.min(t.span.start);
                g.span.end = g.span.end.max(t.span.end);
            }
            if g.strand == Strand::Unknown {
                if let Some(t) = g.transcripts.iter().find(|t| t.strand != Strand::Unknown) {
                    g.strand = t.strand;
                }
            }
        }
        genes.sort_by_key(|g| g.line);

        let warnings = warns
            .iter()
            .map(|(k, w)| {
                format!(
                    "{label}: {} {k} (first at line {}: {})",
                    w.count, w.first_line, w.example
                )
            })
            .collect();
        Ok(Annotation {
            source: label.to_string(),
            genes,
            seqids: self.seqids,
            warnings,
        })
    }

    fn new_gene(&self, g: GeneRef) -> Gene {
        let i = match g {
            GeneRef::Row(i) | GeneRef::SelfOf(i) => i,
        };
        let r = &self.rows[i];
        Gene {
            id: r
                .id
                .clone()
                .unwrap_or_else(|| format!("line{}", self.lines[i])),
            name: r.name.clone(),
            seqid: r.seqid.clone(),
            strand: r.strand,
            span: r.iv,
            kind: if r.ty.is_empty() { "gene" } else { &r.ty }.to_string(),
            transcripts: Vec::new(),
            line: self.lines[i],
        }
    }

    /// One transcript from its parts. Errors (inconsistent features): a part on the other
    /// strand than its transcript, a part outside its transcript row's span, a CDS part that
    /// overlaps the transcript's given exons without lying inside one of them.
    fn build_transcript(&self, tb: &TxBuild, gene: &Gene, label: &str) -> Result<Transcript> {
        let xr = &self.rows[tb.key.row];
        let implicit = matches!(tb.gene, GeneRef::Row(g) if g == tb.key.row)
            || tb.key.row >= self.stand_in_from;
        let mut exons = Vec::new();
        let mut cds = Vec::new();
        let mut utr5 = Vec::new();
        let mut utr3 = Vec::new();
        let mut utr = Vec::new();
        let mut part_strand = Strand::Unknown;
        for &p in &tb.parts {
            let r = &self.rows[p];
            if part_strand == Strand::Unknown {
                part_strand = r.strand;
            }
            match self.classes[p] {
                Class::Cds => cds.push(CdsPart {
                    iv: r.iv,
                    phase: r.phase,
                }),
                Class::Exon => exons.push(r.iv),
                Class::Utr5 => utr5.push(r.iv),
                Class::Utr3 => utr3.push(r.iv),
                Class::Utr => utr.push(r.iv),
                Class::Protein | Class::Other => {}
            }
        }
        let mut strand = if implicit { gene.strand } else { xr.strand };
        for s in [gene.strand, part_strand] {
            if strand == Strand::Unknown {
                strand = s;
            }
        }
        let name = || {
            xr.id
                .clone()
                .unwrap_or_else(|| format!("line{}", self.lines[tb.key.row]))
        };
        for &p in &tb.parts {
            let r = &self.rows[p];
            let bad =
                if r.strand != Strand::Unknown && strand != Strand::Unknown && r.strand != strand {
                    Some(format!(
                        "is on strand {}, but its transcript",
                        r.strand.symbol()
                    ))
                } else if !implicit && (r.iv.start < xr.iv.start || r.iv.end > xr.iv.end) {
                    Some("lies outside its transcript".to_string())
                } else {
                    None
                };
            if let Some(what) = bad {
                return Err(Error::at(
                    label,
                    self.lines[p],
                    format!(
                        "inconsistent features: {} {}..{} {what} '{}' (line {}) on {} at {}..{}",
                        r.ty,
                        r.iv.start + 1,
                        r.iv.end,
                        name(),
                        self.lines[tb.key.row],
                        strand.symbol(),
                        xr.iv.start + 1,
                        xr.iv.end
                    ),
                ));
            }
        }
        if !exons.is_empty() {
            let given = merge(exons.clone());
            for &p in &tb.parts {
                let r = &self.rows[p];
                // A CDS with no exon row at all is a sliced file's missing exon, not a conflict.
                let overlaps = given
                    .iter()
                    .any(|e| e.start < r.iv.end && r.iv.start < e.end);
                let inside = given
                    .iter()
                    .any(|e| e.start <= r.iv.start && r.iv.end <= e.end);
                if self.classes[p] == Class::Cds && overlaps && !inside {
                    return Err(Error::at(
                        label,
                        self.lines[p],
                        format!(
                            "inconsistent features: CDS {}..{} crosses an exon boundary of its transcript '{}' (line {})",
                            r.iv.start + 1,
                            r.iv.end,
                            name(),
                            self.lines[tb.key.row]
                        ),
                    ));
                }
            }
        }
        cds.sort_by_key(|c| (c.iv.start, c.iv.end));
        cds.dedup_by_key(|c| c.iv);

        if tb.polyprotein && !cds.is_empty() {
            // Mature peptides exclude the stop codon; take it from the gene when exactly 3 bp.
            if strand.is_minus() {
                if let Some(first) = cds.iter_mut().min_by_key(|c| c.iv.start) {
                    if first.iv.start == gene.span.start + 3 {
                        first.iv.start -= 3;
                    }
                }
            } else if let Some(last) = cds.iter_mut().max_by_key(|c| c.iv.end) {
                if last.iv.end + 3 == gene.span.end {
                    last.iv.end += 3;
                }
            }
        }
        let cds_span = cds.iter().map(|c| c.iv).reduce(|a, b| Interval {
            start: a.start.min(b.start),
            end: a.end.max(b.end),
        });
        // Generic UTR rows: 5′ or 3′ by position against the CDS.
        for u in utr {
            let before = cds_span.is_none_or(|c| u.end <= c.start);
            let is5 = if strand.is_minus() { !before } else { before };
            if is5 {
                utr5.push(u);
            } else {
                utr3.push(u);
            }
        }
        let had_exons = !exons.is_empty();
        if !had_exons {
            exons.extend(cds.iter().map(|c| c.iv));
            exons.extend(utr5.iter().copied());
            exons.extend(utr3.iter().copied());
        }
        let no_parts = exons.is_empty();
        if no_parts {
            exons.push(xr.iv);
        }
        let exons = merge(exons);
        let mut utr5 = merge(utr5);
        let mut utr3 = merge(utr3);
        if had_exons && utr5.is_empty() && utr3.is_empty() {
            if let Some(c) = cds_span {
                let (left, right) = outside(&exons, c);
                if strand.is_minus() {
                    utr5 = right;
                    utr3 = left;
                } else {
                    utr5 = left;
                    utr3 = right;
                }
            }
        }
        let mut span = if implicit {
            exons
                .iter()
                .copied()
                .reduce(|a, b| Interval {
                    start: a.start.min(b.start),
                    end: a.end.max(b.end),
                })
                .unwrap_or(xr.iv)
        } else {
            xr.iv
        };
        for e in &exons {
            span.start = span.start.min(e.start);
            span.end = span.end.max(e.end);
        }
        let id = match (&tb.key.group, implicit) {
            (Some(g), _) => g.clone(),
            (None, true) => xr.id.clone().unwrap_or_else(|| gene.id.clone()),
            (None, false) => xr
                .id
                .clone()
                .unwrap_or_else(|| format!("line{}", self.lines[tb.key.row])),
        };
        let kind = if implicit {
            if cds.is_empty() { "transcript" } else { "mRNA" }.to_string()
        } else {
            xr.ty.clone()
        };
        let line = if implicit {
            tb.first_line
        } else {
            self.lines[tb.key.row]
        };
        Ok(Transcript {
            id,
            kind,
            implicit,
            strand,
            span,
            exons,
            cds,
            utr5,
            utr3,
            line,
        })
    }
}

/// Group of a part hung directly on a gene: CDS ID (mature peptides: polyprotein accession).
fn implicit_group(class: Class, id: Option<&str>) -> (Option<String>, bool) {
    if class != Class::Cds {
        return (None, false);
    }
    let Some(id) = id else {
        return (None, false);
    };
    if let Some(rest) = id.strip_prefix("id-") {
        if let Some((acc, range)) = rest.rsplit_once(':') {
            let is_range = range
                .split_once("..")
                .is_some_and(|(a, b)| is_digits(a) && is_digits(b));
            if is_range && !acc.is_empty() {
                return (Some(acc.to_string()), true);
            }
        }
    }
    (Some(id.to_string()), false)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Sort and merge overlapping or adjacent intervals.
pub fn merge(mut v: Vec<Interval>) -> Vec<Interval> {
    v.sort();
    let mut out: Vec<Interval> = Vec::with_capacity(v.len());
    for iv in v {
        match out.last_mut() {
            Some(last) if iv.start <= last.end => last.end = last.end.max(iv.end),
            _ => out.push(iv),
        }
    }
    out
}

/// Parts of `exons` left and right of `span` (exons are sorted and disjoint).
fn outside(exons: &[Interval], span: Interval) -> (Vec<Interval>, Vec<Interval>) {
    let mut left = Vec::new();
    let mut right = Vec::new();
    for e in exons {
        if e.start < span.start {
            left.push(Interval {
                start: e.start,
                end: e.end.min(span.start),
            });
        }
        if e.end > span.end {
            right.push(Interval {
                start: e.start.max(span.end),
                end: e.end,
            });
        }
    }
    (left, right)
}

impl Annotation {
    /// Map every GFF seqid to an index into `seqs`, and check every feature lies inside its
    /// sequence. Errors name both files (unknown seqid) or the GFF line (feature past the end).
    pub fn resolve_seqids(
        &self,
        fasta_label: &str,
        seqs: &[SeqName<'_>],
    ) -> Result<HashMap<String, usize>> {
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        let mut by_desc: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_unversioned: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, s) in seqs.iter().enumerate() {
            by_name.entry(s.name).or_insert(i);
            if let Some(w) = s.description.split_whitespace().next() {
                by_desc.entry(w).or_default().push(i);
            }
            by_unversioned
                .entry(unversioned(s.name))
                .or_default()
                .push(i);
        }
        let unique = |v: Option<&Vec<usize>>| match v {
            Some(v) if v.len() == 1 => Some(v[0]),
            _ => None,
        };
        let mut map = HashMap::new();
        for u in &self.seqids {
            let idx = by_name
                .get(u.seqid.as_str())
                .copied()
                .or_else(|| unique(by_desc.get(u.seqid.as_str())))
                .or_else(|| unique(by_unversioned.get(unversioned(&u.seqid))));
            let Some(idx) = idx else {
                let mut names: Vec<&str> = seqs.iter().take(5).map(|s| s.name).collect();
                if seqs.len() > 5 {
                    names.push("...");
                }
                return Err(Error::input(format!(
                    "{}:{}: seqid '{}' is not a sequence of {fasta_label} (which has: {})",
                    self.source,
                    u.first_line,
                    u.seqid,
                    if names.is_empty() {
                        "no records".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            };
            let len = seqs[idx].len;
            if u.max_end > len {
                return Err(Error::at(
                    &self.source,
                    u.max_end_line,
                    format!(
                        "feature ends at {} but sequence '{}' in {fasta_label} has only {len} bp",
                        u.max_end, seqs[idx].name
                    ),
                ));
            }
            map.insert(u.seqid.clone(), idx);
        }
        Ok(map)
    }

    /// [`Annotation::resolve_seqids`] over loaded FASTA records.
    pub fn resolve_records(
        &self,
        fasta_label: &str,
        records: &[Record],
    ) -> Result<HashMap<String, usize>> {
        let names: Vec<SeqName<'_>> = records.iter().map(SeqName::from).collect();
        self.resolve_seqids(fasta_label, &names)
    }

    /// Number of transcripts over all genes.
    pub fn transcript_count(&self) -> usize {
        self.genes.iter().map(|g| g.transcripts.len()).sum()
    }
}

/// A name without a trailing `.N` version suffix (`NC_063383.1` → `NC_063383`).
fn unversioned(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((base, v)) if !base.is_empty() && is_digits(v) => base,
        _ => name,
    }
}
