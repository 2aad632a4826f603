//! The run store in Azure Blob Storage, through the official `azure_storage_blob` crate,
//! signed in with Entra ID (the managed identity; no account keys): objects are block
//! blobs, appends go to append blobs (in blocks of at most 4 MiB), and a lease is a blob
//! lease, which expires when its holder stops renewing it.

use super::backend::{
    Acquired, Backend, CHUNK, Chunks, LeaseHandle, StoreError, StoreErrorKind, WriteFn,
};
use super::spool::TempFile;
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{RequestContent, StatusCode, Url};
use azure_storage_blob::models::{
    AppendBlobClientCreateOptions, BlobClientAcquireLeaseResultHeaders, BlobClientDownloadOptions,
    BlobClientGetPropertiesResultHeaders, BlobClientUploadOptions,
    BlobContainerClientListBlobsOptions, BlockLookupList, LeaseState,
};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The most an append blob takes in one block.
const MAX_APPEND_BLOCK: usize = 4 * 1024 * 1024;

/// The size of each block an object streamed in ([`Backend::write_from`]) is sent in.
const STAGE_BLOCK: usize = 4 * 1024 * 1024;

/// A blob container holding run stores' objects.
pub struct BlobBackend {
    container: BlobContainerClient,
    url: String,
    /// Append blobs known to exist (so appending costs one request).
    appendable: Mutex<HashSet<String>>,
}

/// Retries of one store request: a few, within [`RETRY_WITHIN`], so that a store that does
/// not answer fails the run quickly (nothing is purged without it) and a lease renewal
/// (every 15 s of a 60 s lease) has time for its retries.
fn retry() -> azure_core::http::RetryOptions {
    azure_core::http::RetryOptions::exponential(azure_core::http::ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(250),
        max_retries: 4,
        max_total_elapsed: azure_core::time::Duration::seconds(RETRY_WITHIN),
        max_delay: azure_core::time::Duration::seconds(4),
    })
}

/// How long, in seconds, one store request is retried at most.
pub const RETRY_WITHIN: i64 = 10;

impl BlobBackend {
    /// A backend on the container at `container_url` (`https://ACCOUNT.blob.core.windows.net/NAME`),
    /// signed in with `credential`, over `http` (which trusts the configured roots).
    pub fn new(
        container_url: &Url,
        credential: Arc<dyn TokenCredential>,
        http: reqwest::Client,
    ) -> Result<BlobBackend, StoreError> {
        let mut options = BlobContainerClientOptions::default();
        options.client_options.transport = Some(azure_core::http::Transport::new(Arc::new(http)));
        options.client_options.retry = retry();
        let container =
            BlobContainerClient::new(container_url.clone(), Some(credential), Some(options))
                .map_err(|e| StoreError {
                    location: container_url.to_string(),
                    action: "setting up the Blob Storage client".into(),
                    error: crate::outbound::error_chain(&e),
                    kind: StoreErrorKind::Storage,
                })?;
        Ok(BlobBackend {
            container,
            url: container_url.to_string(),
            appendable: Mutex::default(),
        })
    }

    fn io_error(&self, action: String, error: &std::io::Error) -> StoreError {
        StoreError {
            location: self.url.clone(),
            action,
            error: error.to_string(),
            kind: StoreErrorKind::Storage,
        }
    }

    /// Sends the spooled object `file` as blocks of [`STAGE_BLOCK`] bytes, then commits them
    /// in order as blob `name` (replacing any): it becomes visible whole or not at all.
    async fn write_blocks(&self, name: &str, file: &mut TempFile) -> Result<(), StoreError> {
        use std::io::Read;
        let blob = self.container.blob_client(name).block_blob_client();
        let mut ids = Vec::new();
        loop {
            let mut block = Vec::with_capacity(STAGE_BLOCK);
            (&mut *file)
                .take(STAGE_BLOCK as u64)
                .read_to_end(&mut block)
                .map_err(|e| self.io_error(format!("reading back {name}"), &e))?;
            if block.is_empty() {
                break;
            }
            // Block ids of one length (the service requires it), in order.
            let id = format!("block-{:08}", ids.len()).into_bytes();
            let length = block.len() as u64;
            blob.stage_block(&id, length, RequestContent::from(block), None)
                .await
                .map_err(|e| self.error(format!("writing {name}"), &e))?;
            ids.push(id);
        }
        let list = BlockLookupList {
            latest: Some(ids),
            ..BlockLookupList::default()
        };
        let list = RequestContent::try_from(list)
            .map_err(|e| self.error(format!("writing {name}"), &e))?;
        blob.commit_block_list(list, None)
            .await
            .map(drop)
            .map_err(|e| self.error(format!("writing {name}"), &e))
    }

    fn error(&self, action: String, error: &azure_core::Error) -> StoreError {
        StoreError {
            location: self.url.clone(),
            action,
            error: crate::outbound::error_chain(error),
            kind: StoreErrorKind::Storage,
        }
    }

    async fn create_append_blob(&self, name: &str) -> Result<(), StoreError> {
        let options = AppendBlobClientCreateOptions::default().if_not_exists();
        let blob = self.container.blob_client(name).append_blob_client();
        match blob.create(Some(options)).await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(StatusCode::Conflict) => Ok(()),
            Err(e) => Err(self.error(format!("creating {name}"), &e)),
        }
    }
}

/// An object on its way to the store: held in memory up to one block ([`STAGE_BLOCK`]),
/// beyond that spilled to a [`TempFile`] (removed when dropped).
#[derive(Default)]
struct Spool {
    bytes: Vec<u8>,
    /// The file spilled to, once the object outgrew one block.
    out: Option<std::io::BufWriter<TempFile>>,
}

impl Spool {
    /// Moves what is held to a new temporary file, which takes the rest.
    fn spill(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(TempFile::create("partial")?);
        out.write_all(&std::mem::take(&mut self.bytes))?;
        self.out = Some(out);
        Ok(())
    }
}

impl std::io::Write for Spool {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.out.is_none() && self.bytes.len() + data.len() > STAGE_BLOCK {
            self.spill()?;
        }
        match self.out.as_mut() {
            Some(out) => out.write(data),
            None => {
                self.bytes.extend_from_slice(data);
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.as_mut().map_or(Ok(()), std::io::Write::flush)
    }
}

fn status(error: &azure_core::Error) -> Option<StatusCode> {
    error.http_status()
}

#[async_trait]
impl Backend for BlobBackend {
    fn location(&self) -> String {
        self.url.clone()
    }

    async fn prepare(&self) -> Result<(), StoreError> {
        match self.container.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(StatusCode::Conflict) => Ok(()),
            Err(e) => Err(self.error("creating the container".into(), &e)),
        }
    }

    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let blob = self.container.blob_client(name);
        match blob.download(None).await {
            Ok(response) => {
                let bytes = response
                    .body
                    .collect()
                    .await
                    .map_err(|e| self.error(format!("reading {name}"), &e))?;
                Ok(Some(bytes.to_vec()))
            }
            Err(e) if status(&e) == Some(StatusCode::NotFound) => Ok(None),
            Err(e) => Err(self.error(format!("reading {name}"), &e)),
        }
    }

    async fn read_chunks(&self, name: &str) -> Result<Option<Chunks>, StoreError> {
        // One ranged GET of at most CHUNK bytes at a time (the client's partitioned
        // download, one partition in flight): the blob is never held whole.
        let options = BlobClientDownloadOptions {
            parallel: std::num::NonZero::new(1),
            partition_size: std::num::NonZero::new(CHUNK),
            ..Default::default()
        };
        let blob = self.container.blob_client(name);
        let response = match blob.download(Some(options)).await {
            Ok(response) => response,
            Err(e) if status(&e) == Some(StatusCode::NotFound) => return Ok(None),
            Err(e) => return Err(self.error(format!("reading {name}"), &e)),
        };
        let (location, name) = (self.url.clone(), name.to_string());
        let chunks = response.body.map(move |chunk| {
            chunk.map(|bytes| bytes.to_vec()).map_err(|e| StoreError {
                location: location.clone(),
                action: format!("reading {name}"),
                error: crate::outbound::error_chain(&e),
                kind: StoreErrorKind::Storage,
            })
        });
        Ok(Some(chunks.boxed()))
    }

    async fn write(&self, name: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let blob = self.container.blob_client(name);
        blob.upload(RequestContent::from(data), None)
            .await
            .map(|_| ())
            .map_err(|e| self.error(format!("writing {name}"), &e))
    }

    /// The writer's output is held in memory up to one block, then uploaded whole; a larger
    /// object (a repository's plan can be hundreds of megabytes; the writer is synchronous)
    /// goes to a local file and is sent a block at a time: never held whole in memory.
    async fn write_from(&self, name: &str, write: &WriteFn<'_>) -> Result<(), StoreError> {
        use std::io::{Seek, Write};
        let mut spool = Spool::default();
        write(&mut spool)
            .and_then(|()| spool.flush())
            .map_err(|e| self.io_error(format!("writing {name}"), &e))?;
        let Some(out) = spool.out.take() else {
            return self.write(name, std::mem::take(&mut spool.bytes)).await;
        };
        let mut file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|mut file| file.rewind().map(|()| file))
            .map_err(|e| self.io_error(format!("writing {name}"), &e))?;
        self.write_blocks(name, &mut file).await
    }

    async fn append(&self, name: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let known = self
            .appendable
            .lock()
            .map(|s| s.contains(name))
            .unwrap_or(false);
        if !known {
            self.create_append_blob(name).await?;
            if let Ok(mut set) = self.appendable.lock() {
                set.insert(name.to_string());
            }
        }
        let blob = self.container.blob_client(name).append_blob_client();
        for chunk in data.chunks(MAX_APPEND_BLOCK) {
            let bytes = chunk.to_vec();
            blob.append_block(RequestContent::from(bytes), chunk.len() as u64, None)
                .await
                .map_err(|e| self.error(format!("appending to {name}"), &e))?;
        }
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        match self.container.blob_client(name).delete(None).await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(StatusCode::NotFound) => Ok(()),
            Err(e) => Err(self.error(format!("deleting {name}"), &e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_string()),
            ..Default::default()
        };
        let action = || format!("listing {prefix}");
        let mut pager = self
            .container
            .list_blobs(Some(options))
            .map_err(|e| self.error(action(), &e))?;
        let mut names = Vec::new();
        while let Some(item) = pager
            .try_next()
            .await
            .map_err(|e| self.error(action(), &e))?
        {
            if let Some(name) = item.name {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    async fn acquire(
        &self,
        name: &str,
        seconds: u32,
        holder: Vec<u8>,
    ) -> Result<Acquired, StoreError> {
        let blob = self.container.blob_client(name);
        // The lease blob must exist to be leased; create it empty unless it does.
        let create = BlobClientUploadOptions {
            if_none_match: Some("*".into()),
            ..Default::default()
        };
        match blob
            .upload(RequestContent::from(Vec::new()), Some(create))
            .await
        {
            Ok(_) => {}
            Err(e)
                if matches!(
                    status(&e),
                    Some(StatusCode::Conflict | StatusCode::PreconditionFailed)
                ) => {}
            Err(e) => return Err(self.error(format!("creating {name}"), &e)),
        }
        let seconds = i32::try_from(seconds).unwrap_or(60);
        let id = match blob.acquire_lease(seconds, None).await {
            Ok(response) => response
                .lease_id()
                .ok()
                .flatten()
                .ok_or_else(|| StoreError {
                    location: self.url.clone(),
                    action: format!("leasing {name}"),
                    error: "the answer carried no lease id".into(),
                    kind: StoreErrorKind::Storage,
                })?,
            Err(e) if status(&e) == Some(StatusCode::Conflict) => {
                return Ok(Acquired::Busy(self.read(name).await?));
            }
            Err(e) => return Err(self.error(format!("leasing {name}"), &e)),
        };
        let write = BlobClientUploadOptions {
            lease_id: Some(id.clone()),
            ..Default::default()
        };
        blob.upload(RequestContent::from(holder), Some(write))
            .await
            .map_err(|e| self.error(format!("writing {name}"), &e))?;
        Ok(Acquired::Held(LeaseHandle::Blob {
            name: name.to_string(),
            id,
        }))
    }

    async fn renew(&self, lease: &LeaseHandle) -> Result<(), StoreError> {
        let LeaseHandle::Blob { name, id } = lease else {
            return Ok(());
        };
        self.container
            .blob_client(name)
            .renew_lease(id.clone(), None)
            .await
            .map(|_| ())
            .map_err(|e| self.error(format!("renewing the lease on {name}"), &e))
    }

    async fn release(&self, lease: LeaseHandle) -> Result<(), StoreError> {
        let LeaseHandle::Blob { name, id } = lease else {
            return Ok(());
        };
        self.container
            .blob_client(&name)
            .release_lease(id, None)
            .await
            .map(|_| ())
            .map_err(|e| self.error(format!("releasing the lease on {name}"), &e))
    }

    async fn holder(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let blob = self.container.blob_client(name);
        let properties = match blob.get_properties(None).await {
            Ok(properties) => properties,
            Err(e) if status(&e) == Some(StatusCode::NotFound) => return Ok(None),
            Err(e) => return Err(self.error(format!("reading the lease on {name}"), &e)),
        };
        let leased = matches!(properties.lease_state(), Ok(Some(LeaseState::Leased)));
        if !leased {
            return Ok(None);
        }
        Ok(Some(self.read(name).await?.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn an_object_past_one_block_spills_to_a_temp_file_read_back_whole_and_removed() {
        let mut spool = Spool::default();
        spool.write_all(b"small").unwrap();
        assert!(spool.out.is_none(), "held in memory up to a block");
        let big = vec![7u8; STAGE_BLOCK];
        spool.write_all(&big).unwrap();
        spool.flush().unwrap();
        let out = spool.out.take().expect("spilled");
        let mut file = out.into_inner().map_err(|e| e.into_error()).unwrap();
        let path = file.path().to_path_buf();
        file.rewind().unwrap();
        let mut back = Vec::new();
        file.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), 5 + STAGE_BLOCK);
        assert_eq!(&back[..5], b"small");
        drop(file);
        assert!(!path.exists(), "removed when dropped");
    }
}
