//! What a run store needs of its storage, and nothing more: whole objects read and
//! written by name, objects appended to, names listed by prefix, and an exclusive lease
//! on a name that expires when its holder dies. Two backends implement it: Azure Blob
//! Storage ([`super::blob`]) and a local directory ([`super::dir`]).

use async_trait::async_trait;

/// An object's bytes in chunks, as they arrive (see [`Backend::read_chunks`]).
pub type Chunks = futures::stream::BoxStream<'static, Result<Vec<u8>, StoreError>>;

/// The most bytes a backend holds of an object read in chunks at once (per chunk).
pub const CHUNK: usize = 1024 * 1024;

/// A storage operation that failed, with what was being done.
#[derive(Debug, Clone, thiserror::Error)]
#[error("run store ({location}): {action}: {error}")]
pub struct StoreError {
    /// The store (a directory or a container URL).
    pub location: String,
    /// What was being done (`writing runs/…/record.json`).
    pub action: String,
    /// What went wrong.
    pub error: String,
    /// Which kind of failure it is.
    pub kind: StoreErrorKind,
}

/// What kind of failure a [`StoreError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The storage failed or refused (I/O, network, permissions).
    Storage,
    /// An object was read but is not what it should be (not JSON, not UTF-8).
    Corrupt,
    /// A run id that is not one the handler issues ([`super::run_id`]); nothing was read
    /// or written.
    InvalidRunId,
}

/// The outcome of asking for a lease.
pub enum Acquired {
    /// The lease is ours until released, or until it expires unrenewed.
    Held(LeaseHandle),
    /// Someone else holds it; what they wrote when they took it, if it could be read.
    Busy(Option<Vec<u8>>),
}

/// A held lease, as its backend knows it.
pub enum LeaseHandle {
    /// A blob lease id.
    Blob {
        /// The blob's name.
        name: String,
        /// The lease id.
        id: String,
    },
    /// A locked file (the lock ends with the process, or when dropped).
    File(std::fs::File),
}

/// What produces an object's bytes for [`Backend::write_from`].
pub type WriteFn<'a> = dyn Fn(&mut dyn std::io::Write) -> std::io::Result<()> + Sync + 'a;

/// The storage under a run store.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Where it stores, for messages.
    fn location(&self) -> String;
    /// Creates what the store needs (the container or directory) if it is missing.
    async fn prepare(&self) -> Result<(), StoreError>;
    /// An object's bytes; `None` when there is none.
    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// An object's bytes in chunks of at most [`CHUNK`] bytes, read as they are consumed
    /// (bounded memory, for objects that grow: the audit log); `None` when there is none.
    async fn read_chunks(&self, name: &str) -> Result<Option<Chunks>, StoreError>;
    /// Writes an object whole, replacing any.
    async fn write(&self, name: &str, data: Vec<u8>) -> Result<(), StoreError>;
    /// Writes an object whole from what `write` produces, replacing any. This takes the
    /// bytes whole; a backend that can stream them to its storage does (a repository's
    /// plan can be hundreds of megabytes of JSON).
    async fn write_from(&self, name: &str, write: &WriteFn<'_>) -> Result<(), StoreError> {
        let mut bytes = Vec::new();
        write(&mut bytes).map_err(|e| StoreError {
            location: self.location(),
            action: format!("writing {name}"),
            error: e.to_string(),
            kind: StoreErrorKind::Storage,
        })?;
        self.write(name, bytes).await
    }
    /// Appends to an object, creating it if missing.
    async fn append(&self, name: &str, data: Vec<u8>) -> Result<(), StoreError>;
    /// Removes an object (none is fine).
    async fn delete(&self, name: &str) -> Result<(), StoreError>;
    /// The names that start with `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Takes the lease on `name` for `seconds` and writes `holder` into it; or says who
    /// holds it.
    async fn acquire(
        &self,
        name: &str,
        seconds: u32,
        holder: Vec<u8>,
    ) -> Result<Acquired, StoreError>;
    /// Extends a held lease by its duration.
    async fn renew(&self, lease: &LeaseHandle) -> Result<(), StoreError>;
    /// Gives a lease up.
    async fn release(&self, lease: LeaseHandle) -> Result<(), StoreError>;
    /// What the holder of `name`'s lease wrote, when it is held; `None` when it is free.
    async fn holder(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
}
