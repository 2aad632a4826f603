//! What is too big to hold in memory on its way somewhere, kept on local disk: a
//! [`TempFile`] in the system's temporary folder, removed when dropped, and [`LineSpool`],
//! numbered lines appended to one and read back in order (the storage figures' full blob
//! lists, written to the run store at the end of a repository).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A new file in [`std::env::temp_dir`], open to read and to append, removed when dropped
/// (or left behind if the process is killed: its name, `acr-purge-{pid}-{n}.{suffix}`,
/// says whose it was).
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    file: File,
}

impl TempFile {
    /// Creates an empty file named `acr-purge-{pid}-{n}.{suffix}` (never an existing one).
    pub fn create(suffix: &str) -> io::Result<TempFile> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("acr-purge-{}-{n}.{suffix}", std::process::id());
        let path = std::env::temp_dir().join(name);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?;
        Ok(TempFile { path, file })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Write for TempFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.file.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Read for TempFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for TempFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.file.seek(to)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Lines appended to a [`TempFile`] (made at the first line), numbered from 0 in the order
/// appended and read back in that order. Clones share the lines (a clone's appends get
/// numbers of their own); the file goes when the last clone is dropped.
///
/// An append that fails (a full disk) is remembered: reading the lines back then fails,
/// rather than give lines that may be cut short.
#[derive(Debug, Clone, Default)]
pub struct LineSpool(Arc<Mutex<Lines>>);

#[derive(Debug, Default)]
struct Lines {
    /// The file, once a line was appended.
    out: Option<BufWriter<TempFile>>,
    /// How many lines were appended.
    count: usize,
    /// Why an append failed, if one did.
    failed: Option<String>,
}

impl LineSpool {
    /// A spool with no lines (no file yet).
    pub fn new() -> LineSpool {
        LineSpool::default()
    }

    fn lock(&self) -> MutexGuard<'_, Lines> {
        match self.0.lock() {
            Ok(lines) => lines,
            Err(poisoned) => {
                // A panic while appending may have cut a line short: the lines no longer read.
                let mut lines = poisoned.into_inner();
                lines
                    .failed
                    .get_or_insert_with(|| "an append was cut short".into());
                lines
            }
        }
    }

    /// Appends the line `write` produces (it writes no newline: the spool adds it) and
    /// says its number.
    pub fn push(&self, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> usize {
        let mut lines = self.lock();
        let number = lines.count;
        lines.count += 1;
        if lines.failed.is_none() {
            let appended = match lines.out.as_mut() {
                Some(out) => write_line(out, write),
                None => TempFile::create("lines").and_then(|file| {
                    let out = lines.out.insert(BufWriter::new(file));
                    write_line(out, write)
                }),
            };
            if let Err(error) = appended {
                lines.failed = Some(error.to_string());
            }
        }
        number
    }

    /// How many lines were appended.
    pub fn len(&self) -> usize {
        self.lock().count
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where its file is, once it has one.
    pub fn path(&self) -> Option<PathBuf> {
        let lines = self.lock();
        lines
            .out
            .as_ref()
            .map(|out| out.get_ref().path().to_path_buf())
    }

    /// Calls `each` with every line's number and bytes (without the newline), in order; an
    /// error from `each` ends it. Fails when an append failed or the file does not read
    /// back whole. `each` must not append to this spool (it is locked meanwhile).
    pub fn each_line(
        &self,
        mut each: impl FnMut(usize, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut lines = self.lock();
        if let Some(why) = &lines.failed {
            return Err(io::Error::other(format!(
                "the spooled lines were not all written: {why}"
            )));
        }
        let count = lines.count;
        let Some(out) = lines.out.as_mut() else {
            return Ok(());
        };
        out.flush()?;
        // Read through its own reference (appends always go to the end, wherever this
        // leaves the file's position).
        let mut file: &File = &out.get_ref().file;
        file.seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            let Some(text) = line.strip_suffix(b"\n") else {
                break;
            };
            if number < count {
                each(number, text)?;
            }
            number += 1;
        }
        match number == count {
            true => Ok(()),
            false => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{number} spooled lines read back of the {count} written"),
            )),
        }
    }
}

/// Writes one line and its newline.
fn write_line(
    out: &mut BufWriter<TempFile>,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    write(out)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_back_numbered_in_order_and_the_file_goes_with_the_last_clone() {
        let spool = LineSpool::new();
        assert!(spool.path().is_none(), "no file before a line");
        assert_eq!(spool.push(|out| out.write_all(b"zero")), 0);
        let clone = spool.clone();
        assert_eq!(clone.push(|out| out.write_all(b"one")), 1);
        let path = spool.path().expect("a file");
        assert!(path.starts_with(std::env::temp_dir()));
        let mut read = Vec::new();
        spool
            .each_line(|n, line| {
                read.push((n, String::from_utf8_lossy(line).into_owned()));
                Ok(())
            })
            .unwrap();
        assert_eq!(read, [(0, "zero".into()), (1, "one".into())]);
        // Appending after reading back goes on at the end.
        assert_eq!(spool.push(|out| out.write_all(b"two")), 2);
        let mut numbers = Vec::new();
        spool
            .each_line(|n, _| {
                numbers.push(n);
                Ok(())
            })
            .unwrap();
        assert_eq!(numbers, [0, 1, 2]);
        drop(spool);
        assert!(path.exists(), "a clone still holds it");
        drop(clone);
        assert!(!path.exists(), "removed when dropped");
    }

    #[test]
    fn a_failed_append_fails_the_read_back() {
        let spool = LineSpool::new();
        spool.push(|out| out.write_all(b"fine"));
        spool.push(|_| Err(io::Error::other("disk full")));
        let read = spool.each_line(|_, _| Ok(()));
        assert!(read.is_err_and(|e| e.to_string().contains("disk full")));
    }

    #[test]
    fn a_temp_file_is_removed_when_dropped() {
        let mut file = TempFile::create("test").unwrap();
        file.write_all(b"bytes").unwrap();
        let path = file.path().to_path_buf();
        assert!(path.exists());
        drop(file);
        assert!(!path.exists());
    }
}
