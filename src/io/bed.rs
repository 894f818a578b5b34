//! BED regions: the first three columns (sequence, 0-based start, end), plus the name (column 4)
//! and strand (column 6) when present. `track`, `browser`, `#` and blank lines are skipped.

use std::io::BufRead;

use crate::error::{Error, Result};
use crate::io::gff::{Interval, Strand};

/// One BED line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedRecord {
    /// Sequence name (column 1).
    pub seqid: String,
    /// 0-based half-open interval (columns 2 and 3).
    pub iv: Interval,
    /// Name (column 4), when present and not `.`.
    pub name: Option<String>,
    /// Strand (column 6): `+`, `-`, or `Unknown` for `.` or a missing column.
    pub strand: Strand,
    /// The line as read (without its line end).
    pub line: String,
    /// 1-based line number.
    pub line_no: u64,
}

/// Read every region of a BED file (plain or compressed); an empty file is an error.
pub fn read_bed(path: &str) -> Result<Vec<BedRecord>> {
    let r = crate::io::open_input(path)?;
    let mut out = Vec::new();
    for (k, line) in r.lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let ln = k as u64 + 1;
        let t = line.trim_end_matches(['\r', '\n']);
        if t.trim().is_empty()
            || t.starts_with('#')
            || t.starts_with("track")
            || t.starts_with("browser")
        {
            continue;
        }
        let cols: Vec<&str> = t.split('\t').collect();
        if cols.len() < 3 {
            return Err(Error::at(
                path,
                ln,
                format!("BED needs 3 tab-separated columns, found {}", cols.len()),
            ));
        }
        let num = |s: &str, what: &str| {
            s.parse::<usize>()
                .map_err(|_| Error::at(path, ln, format!("BED {what} '{s}' is not a number")))
        };
        let (start, end) = (num(cols[1], "start")?, num(cols[2], "end")?);
        if start >= end {
            return Err(Error::at(
                path,
                ln,
                format!("BED start {start} is not below end {end}"),
            ));
        }
        let name = cols
            .get(3)
            .filter(|n| !n.is_empty() && **n != ".")
            .map(|n| n.to_string());
        let strand = match cols.get(5).copied() {
            None | Some(".") | Some("") => Strand::Unknown,
            Some("+") => Strand::Plus,
            Some("-") => Strand::Minus,
            Some(other) => {
                return Err(Error::at(
                    path,
                    ln,
                    format!("BED strand '{other}' is not +, - or ."),
                ))
            }
        };
        out.push(BedRecord {
            seqid: cols[0].to_string(),
            iv: Interval { start, end },
            name,
            strand,
            line: t.to_string(),
            line_no: ln,
        });
    }
    if out.is_empty() {
        return Err(Error::input(format!("{path}: no BED regions")));
    }
    Ok(out)
}
