//! FASTA index (`.fai`) and zero-copy region fetch over a memory-mapped uncompressed FASTA.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::num::NonZero;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use noodles::fasta::fai;

use crate::error::{Error, Result};
use crate::io::Compression;

/// Build a `.fai` index for an uncompressed FASTA held in memory.
///
/// Every line of a record but the last must have the same length (the samtools rule); a record
/// that breaks it is an error naming the line.
pub fn build_index(data: &[u8], label: &str) -> Result<fai::Index> {
    let mut records = Vec::new();
    let mut names = HashMap::new();
    let mut pos = 0usize;
    let mut line_no = 0u64;
    // Current record: name, header line, offset, length, line_bases, line_width, last line short.
    let mut cur: Option<(String, u64, u64, u64, u64, u64, bool)> = None;
    let finish = |cur: Option<(String, u64, u64, u64, u64, u64, bool)>,
                  records: &mut Vec<fai::Record>|
     -> Result<()> {
        if let Some((name, line, offset, len, bases, width, _)) = cur {
            if len == 0 {
                return Err(Error::at(
                    label,
                    line,
                    format!("record '{name}' has no sequence"),
                ));
            }
            let nz = |v: u64| NonZero::new(v).unwrap_or(NonZero::<u64>::MIN);
            records.push(fai::Record::new(name, len, offset, nz(bases), nz(width)));
        }
        Ok(())
    };
    while pos < data.len() {
        let end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
        let line = &data[pos..end];
        let width = (end + 1).min(data.len()) - pos;
        line_no += 1;
        let content = line.strip_suffix(b"\r").unwrap_or(line);
        if content.first() == Some(&b'>') {
            finish(cur.take(), &mut records)?;
            let text = std::str::from_utf8(&content[1..])
                .map_err(|_| Error::at(label, line_no, "header is not valid UTF-8"))?;
            let name = text.split_whitespace().next().unwrap_or("").to_string();
            if name.is_empty() {
                return Err(Error::at(label, line_no, "header has an empty record name"));
            }
            if names.insert(name.clone(), line_no).is_some() {
                return Err(Error::at(
                    label,
                    line_no,
                    format!("duplicate record name '{name}'"),
                ));
            }
            cur = Some((name, line_no, (end + 1) as u64, 0, 0, 0, false));
        } else if let Some(c) = cur.as_mut() {
            if !content.is_empty() {
                if c.6 {
                    return Err(Error::at(
                        label,
                        line_no - 1,
                        format!("record '{}': uneven line lengths, cannot index", c.0),
                    ));
                }
                let (len, w) = (content.len() as u64, width as u64);
                if c.4 == 0 {
                    c.4 = len;
                    c.5 = w;
                } else if len > c.4 || (len == c.4 && w != c.5) {
                    return Err(Error::at(
                        label,
                        line_no,
                        format!("record '{}': uneven line lengths, cannot index", c.0),
                    ));
                }
                if len < c.4 || w < c.5 {
                    c.6 = true; // a short line must be the record's last
                }
                c.3 += content.len() as u64;
            } else if c.3 > 0 {
                c.6 = true;
            }
        } else if !content.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(Error::at(
                label,
                line_no,
                "sequence data before any '>' header",
            ));
        }
        pos = end + 1;
    }
    finish(cur, &mut records)?;
    if records.is_empty() {
        return Err(Error::input(format!("{label}: no FASTA records")));
    }
    Ok(fai::Index::from(records))
}

/// An uncompressed FASTA, memory-mapped, with its index for random access.
pub struct IndexedFasta {
    mmap: Mmap,
    index: fai::Index,
    by_name: HashMap<String, usize>,
    path: String,
}

impl IndexedFasta {
    /// Open `path`, reading `path.fai` if present and building (and trying to save) it otherwise.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|e| Error::io(&shown, e))?;
        // SAFETY: the file is opened read-only; genolm never writes to an input it maps.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&shown, e))?;
        if Compression::detect(&mmap[..mmap.len().min(16)]) != Compression::None {
            return Err(Error::input(format!(
                "{shown}: indexed access needs an uncompressed FASTA (decompress it first)"
            )));
        }
        let fai_path = PathBuf::from(format!("{shown}.fai"));
        let index = if fai_path.exists() {
            let fai_shown = fai_path.display().to_string();
            let index = fai::fs::read(&fai_path)
                .map_err(|e| Error::input(format!("{fai_shown}: invalid .fai index: {e}")))?;
            for r in index.as_ref() {
                let (lb, lw) = (r.line_base_count().get(), r.line_width().get());
                let end = r.position() + r.length().div_ceil(lb) * lw;
                if end > mmap.len() as u64 + lw {
                    return Err(Error::input(format!(
                        "{fai_shown}: entry '{}' points past the end of {shown} (stale index?)",
                        r.name()
                    )));
                }
            }
            index
        } else {
            let index = build_index(&mmap, &shown)?;
            // Saving the index is a convenience; a read-only directory is not an error.
            let _ = crate::io::write_atomic(&fai_path, |w| {
                let mut writer = fai::io::Writer::new(w);
                writer
                    .write_index(&index)
                    .map_err(|e| Error::io(fai_path.display(), e))
            });
            index
        };
        let by_name = index
            .as_ref()
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name().to_string(), i))
            .collect();
        Ok(IndexedFasta {
            mmap,
            index,
            by_name,
            path: shown,
        })
    }

    /// The index records (name, length, offsets).
    pub fn records(&self) -> &[fai::Record] {
        self.index.as_ref()
    }

    /// Length of sequence `name`, if present.
    pub fn len_of(&self, name: &str) -> Option<u64> {
        self.by_name
            .get(name)
            .map(|&i| self.index.as_ref()[i].length())
    }

    /// Fetch bases `[start, end)` (0-based) of `name`: borrowed from the map when the region lies
    /// within one line, copied (line ends removed) otherwise. Bytes are returned as stored.
    pub fn fetch(&self, name: &str, start: u64, end: u64) -> Result<Cow<'_, [u8]>> {
        let &i = self
            .by_name
            .get(name)
            .ok_or_else(|| Error::input(format!("{}: no sequence named '{name}'", self.path)))?;
        let r = &self.index.as_ref()[i];
        if start > end || end > r.length() {
            return Err(Error::input(format!(
                "{}: region {name}:{start}-{end} is outside the sequence (length {})",
                self.path,
                r.length()
            )));
        }
        let (lb, lw) = (r.line_base_count().get(), r.line_width().get());
        let at = |p: u64| (r.position() + (p / lb) * lw + p % lb) as usize;
        if start == end {
            return Ok(Cow::Borrowed(&[]));
        }
        if start / lb == (end - 1) / lb {
            return Ok(Cow::Borrowed(&self.mmap[at(start)..at(end - 1) + 1]));
        }
        let mut out = Vec::with_capacity((end - start) as usize);
        let mut p = start;
        while p < end {
            let line_end = ((p / lb + 1) * lb).min(end);
            out.extend_from_slice(&self.mmap[at(p)..at(line_end - 1) + 1]);
            p = line_end;
        }
        Ok(Cow::Owned(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_fetch_match_plain_slicing() {
        let dir = std::env::temp_dir().join(format!("genolm-fai-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.fa");
        let seq_a: Vec<u8> = (0..103).map(|i| b"ACGTN"[i % 5]).collect();
        let mut text = b">a first\n".to_vec();
        for l in seq_a.chunks(10) {
            text.extend_from_slice(l);
            text.extend_from_slice(b"\r\n");
        }
        text.extend_from_slice(b">b\nGGGCC\n");
        std::fs::write(&path, &text).unwrap();
        let fa = IndexedFasta::open(&path).unwrap();
        assert_eq!(fa.len_of("a"), Some(103));
        for (s, e) in [
            (0, 1),
            (0, 10),
            (5, 15),
            (9, 11),
            (0, 103),
            (97, 103),
            (50, 50),
        ] {
            assert_eq!(
                &*fa.fetch("a", s, e).unwrap(),
                &seq_a[s as usize..e as usize]
            );
        }
        assert!(matches!(fa.fetch("a", 2, 8).unwrap(), Cow::Borrowed(_)));
        assert_eq!(&*fa.fetch("b", 1, 4).unwrap(), b"GGC");
        assert!(fa.fetch("a", 0, 104).is_err());
        assert!(fa.fetch("zz", 0, 1).is_err());
        // The saved index is read back on the next open.
        assert!(dir.join("x.fa.fai").exists());
        let again = IndexedFasta::open(&path).unwrap();
        assert_eq!(&*again.fetch("a", 5, 25).unwrap(), &seq_a[5..25]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn uneven_lines_are_rejected() {
        let e = build_index(b">a\nACGT\nAC\nACGT\n", "u.fa")
            .unwrap_err()
            .to_string();
        assert!(e.contains("u.fa:") && e.contains("uneven"), "{e}");
    }
}
