//! The run store in a local directory (`handler purge --state-dir`): objects are files,
//! appends are appends, and a lease is an exclusive lock on a file (`flock`), which the
//! kernel releases when its holder exits or is killed, so a dead run never blocks the
//! next one.

use super::backend::{
    Acquired, Backend, CHUNK, Chunks, LeaseHandle, StoreError, StoreErrorKind, WriteFn,
};
use async_trait::async_trait;
use futures::StreamExt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A directory holding run stores' objects.
pub struct DirBackend {
    root: PathBuf,
}

impl DirBackend {
    /// A backend rooted at `root` (created by [`Backend::prepare`]).
    pub fn new(root: PathBuf) -> DirBackend {
        DirBackend { root }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn error(&self, action: String, error: impl std::fmt::Display) -> StoreError {
        StoreError {
            location: self.location(),
            action,
            error: error.to_string(),
            kind: StoreErrorKind::Storage,
        }
    }

    fn parent_dir(&self, path: &Path, name: &str) -> Result<(), StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| self.error(format!("creating the folder of {name}"), e))?;
        }
        Ok(())
    }

    fn lock_file(&self, name: &str) -> Result<File, StoreError> {
        let path = self.path(&format!("{name}.lock"));
        self.parent_dir(&path, name)?;
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| self.error(format!("opening the lock of {name}"), e))
    }
}

#[async_trait]
impl Backend for DirBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn prepare(&self) -> Result<(), StoreError> {
        std::fs::create_dir_all(&self.root).map_err(|e| self.error("creating it".into(), e))
    }

    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match std::fs::read(self.path(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(format!("reading {name}"), e)),
        }
    }

    async fn read_chunks(&self, name: &str) -> Result<Option<Chunks>, StoreError> {
        let file = match File::open(self.path(name)) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(format!("reading {name}"), e)),
        };
        let fail = {
            let (location, name) = (self.location(), name.to_string());
            move |e: std::io::Error| StoreError {
                location: location.clone(),
                action: format!("reading {name}"),
                error: e.to_string(),
                kind: StoreErrorKind::Storage,
            }
        };
        let chunks = futures::stream::unfold(Some(file), move |file| {
            let fail = fail.clone();
            async move {
                let mut file = file?;
                let mut chunk = vec![0; CHUNK];
                match file.read(&mut chunk) {
                    Ok(0) => None,
                    Ok(n) => {
                        chunk.truncate(n);
                        Some((Ok(chunk), Some(file)))
                    }
                    Err(e) => Some((Err(fail(e)), None)),
                }
            }
        });
        Ok(Some(chunks.boxed()))
    }

    async fn write(&self, name: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path(name);
        self.parent_dir(&path, name)?;
        // Written beside, then renamed over: a reader never sees half an object.
        let partial = path.with_extension(format!("partial-{}", std::process::id()));
        std::fs::write(&partial, data)
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|e| self.error(format!("writing {name}"), e))
    }

    async fn write_from(&self, name: &str, write: &WriteFn<'_>) -> Result<(), StoreError> {
        let path = self.path(name);
        self.parent_dir(&path, name)?;
        // Streamed to the file beside, then renamed over, as `write` does.
        let partial = path.with_extension(format!("partial-{}", std::process::id()));
        let written = File::create(&partial).and_then(|file| {
            let mut out = std::io::BufWriter::new(file);
            write(&mut out)?;
            out.into_inner().map(drop).map_err(|e| e.into_error())
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&partial, &path)) {
            let _ = std::fs::remove_file(&partial);
            return Err(self.error(format!("writing {name}"), e));
        }
        Ok(())
    }

    async fn append(&self, name: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path(name);
        self.parent_dir(&path, name)?;
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(&data))
            .map_err(|e| self.error(format!("appending to {name}"), e))
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        match std::fs::remove_file(self.path(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error(format!("deleting {name}"), e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // Prefixes end at a folder here ("runs/", "runs/ID/plans/"): list that folder's tree.
        let (folder, start) = match prefix.rfind('/') {
            Some(i) => (&prefix[..i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        let mut names = Vec::new();
        let mut pending = vec![self.root.join(folder)];
        while let Some(dir) = pending.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.error(format!("listing {prefix}"), e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| self.error(format!("listing {prefix}"), e))?;
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else if let Ok(relative) = path.strip_prefix(&self.root) {
                    let name = relative.to_string_lossy().replace('\\', "/");
                    let in_folder = name.get(folder.len()..).unwrap_or("");
                    let in_folder = in_folder.strip_prefix('/').unwrap_or(in_folder);
                    if name.starts_with(folder)
                        && in_folder.starts_with(start)
                        && !name.contains(".partial-")
                        && !name.ends_with(".lock")
                    {
                        names.push(name);
                    }
                }
            }
        }
        names.sort();
        Ok(names)
    }

    async fn acquire(
        &self,
        name: &str,
        _seconds: u32,
        holder: Vec<u8>,
    ) -> Result<Acquired, StoreError> {
        let file = self.lock_file(name)?;
        match file.try_lock() {
            Ok(()) => {
                self.write(name, holder).await?;
                Ok(Acquired::Held(LeaseHandle::File(file)))
            }
            Err(TryLockError::WouldBlock) => Ok(Acquired::Busy(self.read(name).await?)),
            Err(TryLockError::Error(e)) => Err(self.error(format!("locking {name}"), e)),
        }
    }

    async fn renew(&self, _lease: &LeaseHandle) -> Result<(), StoreError> {
        Ok(())
    }

    async fn release(&self, lease: LeaseHandle) -> Result<(), StoreError> {
        if let LeaseHandle::File(file) = lease {
            file.unlock()
                .map_err(|e| self.error("releasing a lock".into(), e))?;
        }
        Ok(())
    }

    async fn holder(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let file = self.lock_file(name)?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(None)
            }
            Err(TryLockError::WouldBlock) => Ok(Some(self.read(name).await?.unwrap_or_default())),
            Err(TryLockError::Error(e)) => Err(self.error(format!("locking {name}"), e)),
        }
    }
}
