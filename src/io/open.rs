//! Opening inputs (plain, gzip, BGZF, stdin), locating the data directory, atomic writes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::num::NonZero;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread;

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// Compression detected from a stream's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed text.
    None,
    /// Plain (possibly multi-member) gzip.
    Gzip,
    /// Blocked gzip (BGZF), as written by bgzip.
    Bgzf,
}

impl Compression {
    /// Detect compression from the first bytes of a stream.
    pub fn detect(head: &[u8]) -> Self {
        if head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b {
            // BGZF: FEXTRA set and the first extra subfield is 'BC'.
            if head.len() >= 14 && head[3] & 0x04 != 0 && head[12] == b'B' && head[13] == b'C' {
                Compression::Bgzf
            } else {
                Compression::Gzip
            }
        } else {
            Compression::None
        }
    }
}

const CHUNK: usize = 1 << 20;

/// A reader fed by a background thread that decompresses ahead in 1 MiB chunks.
struct ThreadedReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl ThreadedReader {
    fn spawn<R: Read + Send + 'static>(mut inner: R) -> Self {
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(4);
        thread::spawn(move || loop {
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match inner.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
            buf.truncate(filled);
            let end = filled == 0;
            if tx.send(Ok(buf)).is_err() || end {
                return;
            }
        });
        ThreadedReader {
            rx,
            buf: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl Read for ThreadedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ThreadedReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos >= self.buf.len() && !self.done {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.done = chunk.is_empty();
                    self.buf = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(io::Error::new(
                        e.kind(),
                        format!("truncated or corrupt gzip stream ({e})"),
                    ));
                }
                Err(_) => self.done = true,
            }
        }
        Ok(&self.buf[self.pos.min(self.buf.len())..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos += amt;
    }
}

/// Open a path (or `-` for stdin) as a buffered reader, decompressing gzip and BGZF transparently.
pub fn open_input(path: &str) -> Result<Box<dyn BufRead + Send>> {
    let raw: Box<dyn Read + Send> = if path == "-" {
        Box::new(io::stdin())
    } else {
        let p = Path::new(path);
        if p.is_dir() {
            return Err(Error::input(format!("{path}: is a directory, not a file")));
        }
        Box::new(File::open(p).map_err(|e| Error::io(path, e))?)
    };
    decompressing(raw, path)
}

/// Wrap in-memory bytes (plain, gzip or BGZF) as a buffered reader, e.g. an embedded data set.
pub fn open_bytes(bytes: &'static [u8], label: &str) -> Result<Box<dyn BufRead + Send>> {
    decompressing(Box::new(bytes), label)
}

fn decompressing(raw: Box<dyn Read + Send>, label: &str) -> Result<Box<dyn BufRead + Send>> {
    let mut reader = BufReader::with_capacity(CHUNK, raw);
    let head = reader.fill_buf().map_err(|e| Error::io(label, e))?.to_vec();
    Ok(match Compression::detect(&head) {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(ThreadedReader::spawn(MultiGzDecoder::new(reader))),
        Compression::Bgzf => {
            let workers = thread::available_parallelism().map_or(2, |n| n.get().max(1));
            let workers = NonZero::new(workers).unwrap_or(NonZero::<usize>::MIN);
            Box::new(noodles::bgzf::io::MultithreadedReader::with_worker_count(
                workers, reader,
            ))
        }
    })
}

/// Write `path` atomically: `write` fills a temporary file beside it, which is then renamed.
///
/// On any error the temporary file is removed and `path` is left untouched. `-` writes to stdout.
pub fn write_atomic<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> Result<()>,
{
    if path.as_os_str() == "-" {
        let stdout = io::stdout();
        let mut w = io::BufWriter::new(stdout.lock());
        write(&mut w)?;
        return w.flush().map_err(|e| Error::io("<stdout>", e));
    }
    let shown = path.display().to_string();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Error::input(format!(
            "{shown}: output directory {} does not exist",
            dir.display()
        )));
    }
    let name = path
        .file_name()
        .ok_or_else(|| Error::input(format!("{shown}: not a file path")))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
        let mut w = io::BufWriter::new(file);
        write(&mut w)?;
        w.flush().map_err(|e| Error::io(&shown, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(&shown, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The data directory: `flag`, else `$GENOLM_DATA`, else `../shared/data` (from the working
/// directory, then from the crate root); `None` when none exists.
pub fn data_dir(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(f) = flag {
        return Some(f.to_path_buf());
    }
    if let Some(env) = std::env::var_os("GENOLM_DATA") {
        if !env.is_empty() {
            return Some(PathBuf::from(env));
        }
    }
    [
        PathBuf::from("../shared/data"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
    ]
    .into_iter()
    .find(|p| p.is_dir())
}

/// A file under the data directory, or `None` (with a message on stderr) when it is missing.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    match data_dir(None).map(|d| d.join(rel)) {
        Some(p) if p.exists() => Some(p),
        _ => {
            eprintln!("SKIP: data file '{rel}' not found (set GENOLM_DATA to the data directory)");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_compression() {
        assert_eq!(Compression::detect(b">chr1\nACGT"), Compression::None);
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        let mut bgzf = vec![
            0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 6, 0, b'B', b'C', 2, 0,
        ];
        assert_eq!(Compression::detect(&bgzf), Compression::Bgzf);
        bgzf[12] = b'X';
        assert_eq!(Compression::detect(&bgzf), Compression::Gzip);
    }

    #[test]
    fn atomic_write_leaves_no_file_on_error() {
        let dir = std::env::temp_dir().join(format!("genolm-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("out.txt");
        let r = write_atomic(&target, |w| {
            w.write_all(b"partial").unwrap();
            Err(Error::input("boom"))
        });
        assert!(r.is_err());
        assert!(!target.exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        write_atomic(&target, |w| {
            w.write_all(b"ok").map_err(|e| Error::io("t", e))
        })
        .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"ok");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
