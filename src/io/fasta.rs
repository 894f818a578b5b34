//! Streaming FASTA reader with line-precise errors.
//!
//! Handles plain, gzip, BGZF and stdin input (see [`crate::io::open_input`]), multi-line records,
//! CRLF line ends, blank lines and lower-case soft-masking. Record parsing is written here rather
//! than taken from noodles so that every error names the file and line, and so that statistics can
//! visit sequence bytes without copying them.

use std::io::BufRead;

use crate::error::{Error, Result};
use crate::io::open_input;
use crate::seq::{self, SeqPolicy};

/// One FASTA record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Header text up to the first whitespace.
    pub name: String,
    /// Header text after the first whitespace (may be empty).
    pub description: String,
    /// Sequence bytes, normalised by the reader's [`SeqPolicy`].
    pub seq: Vec<u8>,
}

/// A record header and the line it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header text up to the first whitespace.
    pub name: String,
    /// Header text after the first whitespace.
    pub description: String,
    /// 1-based line number of the header.
    pub line: u64,
}

/// Streaming FASTA reader over any buffered input.
pub struct Reader<R = Box<dyn BufRead + Send>> {
    inner: R,
    label: String,
    policy: SeqPolicy,
    /// Lines fully consumed so far.
    line: u64,
    /// The next record's header line (without '>' and line end), already consumed.
    pending: Option<(Vec<u8>, u64)>,
    started: bool,
}

impl Reader {
    /// Open a file (or `-` for stdin), decompressing gzip/BGZF transparently.
    pub fn open(path: &str, policy: SeqPolicy) -> Result<Self> {
        Ok(Reader::new(open_input(path)?, path, policy))
    }
}

impl<R: BufRead> Reader<R> {
    /// Wrap a buffered reader; `label` names the input in error messages.
    pub fn new(inner: R, label: &str, policy: SeqPolicy) -> Self {
        Reader {
            inner,
            label: label.to_string(),
            policy,
            line: 0,
            pending: None,
            started: false,
        }
    }

    /// The label (file name) used in error messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn io_err(&self, e: std::io::Error) -> Error {
        Error::at(&self.label, self.line + 1, e)
    }

    /// Read one full line (without its terminator) into `out`; false at end of input.
    fn read_line_into(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        let n = self
            .inner
            .read_until(b'\n', out)
            .map_err(|e| self.io_err(e))?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        if out.last() == Some(&b'\n') {
            out.pop();
        }
        if out.last() == Some(&b'\r') {
            out.pop();
        }
        Ok(true)
    }

    /// Skip leading blank lines and read the first header; errors if the input is not FASTA.
    fn start(&mut self) -> Result<()> {
        self.started = true;
        let mut line = Vec::new();
        loop {
            if !self.read_line_into(&mut line)? {
                return Err(Error::input(format!(
                    "{}: empty input, no FASTA records",
                    self.label
                )));
            }
            if self.line == 1 && line.starts_with(b"\xef\xbb\xbf") {
                line.drain(..3); // A UTF-8 byte-order mark is tolerated.
            }
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            if line.contains(&0) || std::str::from_utf8(&line).is_err() && line[0] != b'>' {
                return Err(Error::at(
                    &self.label,
                    self.line,
                    "binary or non-text data, not FASTA",
                ));
            }
            if line[0] != b'>' {
                return Err(Error::at(
                    &self.label,
                    self.line,
                    "sequence data before any '>' header (not FASTA?)",
                ));
            }
            self.pending = Some((line[1..].to_vec(), self.line));
            return Ok(());
        }
    }

    /// Read the next header, or `None` at end of input. Call [`Self::read_sequence`] after each.
    pub fn next_header(&mut self) -> Result<Option<Header>> {
        if !self.started {
            self.start()?;
        }
        let Some((raw, line)) = self.pending.take() else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&raw)
            .map_err(|_| Error::at(&self.label, line, "header is not valid UTF-8"))?;
        let text = text.trim();
        let (name, description) = match text.find(char::is_whitespace) {
            Some(i) => (&text[..i], text[i..].trim()),
            None => (text, ""),
        };
        if name.is_empty() {
            return Err(Error::at(
                &self.label,
                line,
                "header has an empty record name",
            ));
        }
        Ok(Some(Header {
            name: name.to_string(),
            description: description.to_string(),
            line,
        }))
    }

    /// Stream the current record's sequence to `visit` in chunks (line ends removed).
    ///
    /// `visit` gets each chunk and the 1-based line it came from. Returns the number of bytes.
    /// Stops at the next header (kept for [`Self::next_header`]) or end of input.
    pub fn read_sequence<F>(&mut self, header: &Header, mut visit: F) -> Result<u64>
    where
        F: FnMut(&[u8], u64) -> Result<()>,
    {
        let mut total = 0u64;
        let mut at_line_start = true;
        let mut pending_cr = false;
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.io_err(e)),
            };
            if buf.is_empty() {
                if pending_cr {
                    visit(b"\r", self.line + 1)?;
                }
                if !at_line_start {
                    self.line += 1;
                }
                break;
            }
            if at_line_start && buf[0] == b'>' {
                let mut h = Vec::new();
                self.read_line_into(&mut h)?;
                self.pending = Some((h[1..].to_vec(), self.line));
                break;
            }
            let line_no = self.line + 1;
            match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    let mut seg = &buf[..i];
                    if pending_cr && i > 0 {
                        visit(b"\r", line_no)?;
                    }
                    if seg.last() == Some(&b'\r') {
                        seg = &seg[..seg.len() - 1];
                    }
                    if !seg.is_empty() {
                        visit(seg, line_no)?;
                        total += seg.len() as u64;
                    }
                    pending_cr = false;
                    at_line_start = true;
                    self.line += 1;
                    self.inner.consume(i + 1);
                }
                None => {
                    let n = buf.len();
                    let mut seg = buf;
                    if pending_cr {
                        visit(b"\r", line_no)?;
                    }
                    pending_cr = seg.last() == Some(&b'\r');
                    if pending_cr {
                        seg = &seg[..seg.len() - 1];
                    }
                    if !seg.is_empty() {
                        visit(seg, line_no)?;
                        total += seg.len() as u64;
                    }
                    at_line_start = false;
                    self.inner.consume(n);
                }
            }
        }
        if total == 0 {
            return Err(Error::at(
                &self.label,
                header.line,
                format!("record '{}' has no sequence", header.name),
            ));
        }
        Ok(total)
    }

    /// Read the next whole record, normalised by the policy; `None` at end of input.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        let Some(header) = self.next_header()? else {
            return Ok(None);
        };
        let mut seq = Vec::new();
        let policy = self.policy;
        let label = self.label.clone();
        self.read_sequence(&header, |chunk, line| {
            let start = seq.len();
            seq.extend_from_slice(chunk);
            seq::normalize_in_place(&mut seq[start..], policy).map_err(|i| {
                Error::at(
                    &label,
                    line,
                    format!(
                        "record '{}': invalid base {} at sequence offset {}",
                        header.name,
                        seq::show_byte(seq[start + i]),
                        start + i
                    ),
                )
            })
        })?;
        Ok(Some(Record {
            name: header.name,
            description: header.description,
            seq,
        }))
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => None,
            Err(e) => {
                // Stop after the first error.
                self.started = true;
                self.pending = None;
                Some(Err(e))
            }
        }
    }
}

/// Read every record of a FASTA file (or `-`) into memory.
pub fn read_records(path: &str, policy: SeqPolicy) -> Result<Vec<Record>> {
    Reader::open(path, policy)?.collect()
}

/// Write records as FASTA wrapped at `width` columns (0 = no wrapping).
pub fn write_record(
    w: &mut dyn std::io::Write,
    name: &str,
    description: &str,
    seq: &[u8],
    width: usize,
) -> std::io::Result<()> {
    if description.is_empty() {
        writeln!(w, ">{name}")?;
    } else {
        writeln!(w, ">{name} {description}")?;
    }
    if width == 0 {
        w.write_all(seq)?;
        w.write_all(b"\n")?;
    } else {
        for line in seq.chunks(width) {
            w.write_all(line)?;
            w.write_all(b"\n")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn parse(text: &[u8], cap: usize) -> Result<Vec<Record>> {
        let r = BufReader::with_capacity(cap, Cursor::new(text.to_vec()));
        Reader::new(r, "t.fa", SeqPolicy::default()).collect()
    }

    #[test]
    fn multiline_crlf_blank_and_softmask() {
        let text = b"\n>a desc here\r\nACgt\r\n\r\nNN\r\n>b\nTTTT";
        for cap in [1, 2, 3, 7, 64] {
            let recs = parse(text, cap).unwrap();
            assert_eq!(recs.len(), 2, "cap {cap}");
            assert_eq!(recs[0].name, "a");
            assert_eq!(recs[0].description, "desc here");
            assert_eq!(recs[0].seq, b"ACGTNN");
            assert_eq!(recs[1].seq, b"TTTT");
        }
        let r = BufReader::new(Cursor::new(text.to_vec()));
        let keep: Vec<_> = Reader::new(
            r,
            "t",
            SeqPolicy {
                keep_softmask: true,
            },
        )
        .collect::<Result<_>>()
        .unwrap();
        assert_eq!(keep[0].seq, b"ACgtNN");
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases: [(&[u8], &str); 6] = [
            (b"ACGT\n>a\nAC\n", "t.fa:1: sequence data before"),
            (b">a\n>b\nACGT\n", "t.fa:1: record 'a' has no sequence"),
            (b">a\nACGT\nAC-T\n", "t.fa:3: record 'a': invalid base '-'"),
            (b">a\nAC\rGT\n", "t.fa:2: record 'a': invalid base 0x0d"),
            (b"\x00\x01\x02binary", "t.fa:1: binary"),
            (b"", "t.fa: empty input"),
        ];
        for (text, want) in cases {
            for cap in [1, 3, 64] {
                let e = parse(text, cap).unwrap_err().to_string();
                assert!(e.starts_with(want), "got {e:?}, want {want:?} (cap {cap})");
            }
        }
        let e = parse(b">\nACGT\n", 64).unwrap_err().to_string();
        assert!(e.contains("empty record name"), "{e}");
    }
}
