//! The run store: what outlives a run's process. Per run a record, the plan of each
//! repository (written before anything in it is deleted) and an append-only audit log
//! with one line per deletion attempt; per registry a lease (single flight) and the
//! checkpoint of its unfinished run. It lives in Azure Blob Storage (the function app's
//! own storage account, [`blob`]) or in a local directory ([`dir`], the command line's
//! default), behind one small [`Backend`] interface.
//!
//! Layout (names are relative to the container or directory; repository and registry
//! names are percent-encoded into one path segment):
//!
//! ```text
//! runs/{runId}/record.json              RunRecord
//! runs/{runId}/audit.jsonl              AuditLine per line (append blob)
//! runs/{runId}/plans/{repository}.json  the repository's plan, as in the JSON report
//! registries/{registry}/lease           the lease; its content is the Holder
//! registries/{registry}/checkpoint.json Checkpoint of the unfinished run, if any
//! ```

pub mod audit;
mod backend;
pub mod blob;
pub mod dir;
mod records;
pub mod run_id;
pub mod spool;

pub use audit::AuditReading;
pub use backend::{Acquired, Backend, CHUNK, Chunks, LeaseHandle, StoreError, StoreErrorKind};
pub use records::{AuditLine, Checkpoint, Counts, Holder, Invocation, RunRecord, RunStatus};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a lease lasts unrenewed: a dead holder blocks its registry this long at most.
pub const LEASE_SECONDS: u32 = 60;
/// How often a held lease is renewed.
pub const RENEW_EVERY: Duration = Duration::from_secs(15);
/// Why an invocation recorded `running` is `interrupted`.
pub const INTERRUPTED: &str = "interrupted: the invocation stopped without recording its end (killed, out of disk, or its lease lost)";
/// The blob container the Functions handler uses unless `PURGE_RUNS_CONTAINER` says.
pub const DEFAULT_CONTAINER: &str = "acr-purge-runs";

/// Characters kept as they are in a name segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A local directory.
    Dir(PathBuf),
    /// A blob container: `https://ACCOUNT.blob.core.windows.net/CONTAINER`.
    Blob(url::Url),
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Dir(path) => write!(f, "{}", path.display()),
            StoreLocation::Blob(url) => write!(f, "{url}"),
        }
    }
}

/// Every run's record, as [`RunStore::records`] lists them.
#[derive(Debug, Default)]
pub struct Records {
    /// The readable records, newest first.
    pub records: Vec<RunRecord>,
    /// Why each unreadable record could not be read (its name is in the error).
    pub unreadable: Vec<StoreError>,
}

/// The run store.
#[derive(Clone)]
pub struct RunStore {
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for RunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunStore({})", self.backend.location())
    }
}

impl RunStore {
    /// Opens the store at `location` (creating its container or directory), signing in to
    /// Blob Storage with `credential`.
    pub async fn open(
        location: &StoreLocation,
        credential: impl FnOnce() -> Result<Arc<dyn azure_core::credentials::TokenCredential>, String>,
    ) -> Result<RunStore, StoreError> {
        let backend: Arc<dyn Backend> = match location {
            StoreLocation::Dir(path) => Arc::new(dir::DirBackend::new(path.clone())),
            StoreLocation::Blob(url) => {
                let fail = |error: String| StoreError {
                    location: url.to_string(),
                    action: "setting up".into(),
                    error,
                    kind: StoreErrorKind::Storage,
                };
                let credential = credential().map_err(fail)?;
                let http = crate::outbound::http_client_builder(&[])
                    .map_err(|e| fail(e.to_string()))?
                    .build()
                    .map_err(|e| fail(crate::outbound::error_chain(&e)))?;
                Arc::new(blob::BlobBackend::new(url, credential, http)?)
            }
        };
        RunStore::with_backend(backend).await
    }

    /// A store on `backend`, prepared.
    pub async fn with_backend(backend: Arc<dyn Backend>) -> Result<RunStore, StoreError> {
        backend.prepare().await?;
        Ok(RunStore { backend })
    }

    /// Where it lives, for messages.
    pub fn location(&self) -> String {
        self.backend.location()
    }

    async fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.backend.read(name).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| self.corrupt(name, e)),
        }
    }

    async fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| self.corrupt(name, e))?;
        self.backend.write(name, bytes).await
    }

    /// [`Store::write_json`] streamed where the backend can: the JSON of a repository of a
    /// million images (its plan, its manifests' blobs) is not held whole beside them.
    async fn write_streamed(
        &self,
        name: &str,
        value: &(impl Serialize + Sync),
    ) -> Result<(), StoreError> {
        let write = |out: &mut dyn std::io::Write| {
            serde_json::to_writer_pretty(out, value).map_err(std::io::Error::from)
        };
        self.backend.write_from(name, &write).await
    }

    fn corrupt(&self, name: &str, error: serde_json::Error) -> StoreError {
        StoreError {
            location: self.location(),
            action: format!("reading {name}"),
            error: format!("not a valid object: {error}"),
            kind: StoreErrorKind::Corrupt,
        }
    }

    /// Records a saved plan (a dry run's, see [`crate::saved`]) under its digest, for the
    /// webhook's `{"apply": digest}`.
    pub async fn write_saved_plan(&self, plan: &crate::saved::SavedPlan) -> Result<(), StoreError> {
        let name = saved_plan_name(plan.digest());
        self.backend.write(&name, plan.to_json().into_bytes()).await
    }

    /// The bytes of the saved plan recorded under `digest` (`sha256:…`), if any. They are
    /// the caller's to check (UTF-8, [`crate::saved::SavedPlan::parse`]) like a file's: a
    /// plan that does not read is the plan's fault, not the store's.
    pub async fn saved_plan(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.read(&saved_plan_name(digest)).await
    }

    /// The registry's deployment history (what in-use protection saw running).
    pub async fn deploy_history(
        &self,
        registry: &str,
    ) -> Result<Option<crate::plan::evidence::DeployHistory>, StoreError> {
        self.read_json(&deployed_name(registry)).await
    }

    /// Writes the registry's deployment history.
    pub async fn write_deploy_history(
        &self,
        registry: &str,
        history: &crate::plan::evidence::DeployHistory,
    ) -> Result<(), StoreError> {
        self.write_json(&deployed_name(registry), history).await
    }

    /// The blobs of `repository`'s manifests that an earlier run read (digest → blobs):
    /// a manifest's blobs never change for its digest, so the storage figures read only the
    /// bodies not seen before.
    ///
    /// One manifest a line, read chunk by chunk (a repository of a million images remembers
    /// a quarter of a gigabyte of them: never held whole beside what they are read into;
    /// each line goes on to a spool on local disk, and only its blobs' fingerprints stay in
    /// memory). A line that does not read is left out (its manifest's body is read again),
    /// and said.
    pub async fn known_blobs(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<crate::run::inventory::KnownBlobs>, StoreError> {
        let name = blobs_name(registry, repository);
        let mut known = crate::run::inventory::KnownBlobs::new();
        let mut unread = 0u64;
        let mut take = |_, line: Option<&[u8]>, _| {
            if line.is_none_or(|line| known.read_line(line).is_err()) {
                unread += 1;
            }
        };
        if !self.each_line(&name, &mut take).await? {
            return Ok(None);
        }
        if unread > 0 {
            let location = self.location();
            tracing::warn!(
                "run store ({location}): {name}: {unread} lines did not read; their manifests are read again"
            );
        }
        Ok(Some(known))
    }

    /// Remembers the blobs of `repository`'s manifests (those that stay after a run), one
    /// manifest a line.
    pub async fn write_known_blobs(
        &self,
        registry: &str,
        repository: &str,
        blobs: &crate::run::inventory::Staying<'_>,
    ) -> Result<(), StoreError> {
        let write = |out: &mut dyn std::io::Write| blobs.write_lines(out);
        self.backend
            .write_from(&blobs_name(registry, repository), &write)
            .await
    }

    /// The name of object `tail` of run `run_id` (`runs/{runId}/{tail}`), once the id is
    /// checked: every operation on a run's objects goes through here.
    fn run_object(&self, run_id: &str, tail: &str) -> Result<String, StoreError> {
        self.check_run_id(run_id)?;
        Ok(format!("runs/{run_id}/{tail}"))
    }

    /// Refuses a run id the handler does not issue ([`run_id::check`]).
    fn check_run_id(&self, run_id: &str) -> Result<(), StoreError> {
        run_id::check(run_id).map_err(|e| StoreError {
            location: self.location(),
            action: "finding a run".into(),
            error: e.to_string(),
            kind: StoreErrorKind::InvalidRunId,
        })
    }

    /// A run's record.
    pub async fn record(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.read_json(&self.run_object(run_id, "record.json")?)
            .await
    }

    /// Writes a run's record.
    pub async fn write_record(&self, record: &RunRecord) -> Result<(), StoreError> {
        let name = self.run_object(&record.id, "record.json")?;
        self.write_json(&name, record).await
    }

    /// Records that the caller's id `alias` names run `run_id` (a webhook request that
    /// resumed an unfinished run).
    pub async fn write_alias(&self, alias: &str, run_id: &str) -> Result<(), StoreError> {
        self.check_run_id(run_id)?;
        let value = serde_json::json!({ "runId": run_id });
        self.write_json(&self.run_object(alias, "alias.json")?, &value)
            .await
    }

    /// The record of run `id`, or of the run that the id `id` names ([`RunStore::write_alias`]):
    /// a queued run that resumed another run when it began names that run.
    pub async fn resolve(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let own = self.record(id).await?;
        if let Some(record) = own.as_ref().filter(|r| r.status != RunStatus::Queued) {
            return Ok(Some(record.clone()));
        }
        let alias: Option<serde_json::Value> =
            self.read_json(&self.run_object(id, "alias.json")?).await?;
        match alias
            .as_ref()
            .and_then(|a| a.get("runId"))
            .and_then(|v| v.as_str())
        {
            Some(run) if run != id => match self.record(run).await? {
                Some(record) => Ok(Some(record)),
                None => Ok(own),
            },
            _ => Ok(own),
        }
    }

    /// The record of run `id` (or of the run it names, as [`RunStore::resolve`]) as it
    /// stands now: a real run recorded `running` whose registry's lease its run no longer
    /// holds is shown [`RunStatus::Interrupted`] (see [`RunStore::as_it_stands`]).
    pub async fn current(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        match self.resolve(id).await? {
            Some(record) => Ok(Some(self.as_it_stands(record).await)),
            None => Ok(None),
        }
    }

    /// `record` as it stands now. A real run holds its registry's lease while an
    /// invocation runs it; one recorded `running` whose lease is free (or held by another
    /// run) died without saying: it is shown `interrupted`, without writing anything (the
    /// next run of its policy resumes it and records that). The lease expires
    /// [`LEASE_SECONDS`] after its holder died (Blob Storage) or at once (a directory). A dry
    /// run takes no lease: it is shown as recorded. If the lease cannot be read, the record
    /// is shown as recorded.
    pub async fn as_it_stands(&self, mut record: RunRecord) -> RunRecord {
        if record.status != RunStatus::Running || record.dry_run {
            return record;
        }
        let alive = match self.holder(&record.registry).await {
            Ok(Some(Some(holder))) => holder.run_id == record.id,
            Ok(Some(None)) => true,
            Ok(None) => false,
            Err(error) => {
                tracing::warn!("{error}; run {} shown as recorded", record.id);
                true
            }
        };
        if !alive {
            record.mark_interrupted(INTERRUPTED);
        }
        record
    }

    /// Every run's readable record as it stands ([`RunStore::as_it_stands`]), newest first,
    /// and the records that are not (each named
    /// in its error, and logged as a warning): one corrupt record hides no other run.
    pub async fn records(&self) -> Result<Records, StoreError> {
        let mut listing = Records::default();
        for name in self.backend.list("runs/").await? {
            if !name.ends_with("/record.json") {
                continue;
            }
            match self.read_json::<RunRecord>(&name).await {
                Ok(Some(record)) => listing.records.push(self.as_it_stands(record).await),
                Ok(None) => {}
                Err(error) if error.kind == StoreErrorKind::Corrupt => {
                    tracing::warn!("{error}; the run is left out of the list");
                    listing.unreadable.push(error);
                }
                Err(error) => return Err(error),
            }
        }
        listing
            .records
            .sort_by_key(|r| std::cmp::Reverse(r.started_at));
        Ok(listing)
    }

    /// The checkpoint of `registry`'s unfinished run, if any (one naming a run id the
    /// handler does not issue is refused).
    pub async fn checkpoint(&self, registry: &str) -> Result<Option<Checkpoint>, StoreError> {
        let checkpoint: Option<Checkpoint> = self.read_json(&checkpoint_name(registry)).await?;
        if let Some(checkpoint) = &checkpoint {
            self.check_run_id(&checkpoint.run_id)?;
        }
        Ok(checkpoint)
    }

    /// Writes `registry`'s checkpoint.
    pub async fn write_checkpoint(
        &self,
        registry: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        self.check_run_id(&checkpoint.run_id)?;
        self.write_json(&checkpoint_name(registry), checkpoint)
            .await
    }

    /// Removes `registry`'s checkpoint (its run finished, or a new one starts).
    pub async fn clear_checkpoint(&self, registry: &str) -> Result<(), StoreError> {
        self.backend.delete(&checkpoint_name(registry)).await
    }

    /// Writes a repository's plan for a run.
    pub async fn write_plan(
        &self,
        run_id: &str,
        repository: &str,
        plan: &(impl Serialize + Sync),
    ) -> Result<(), StoreError> {
        let name = self.run_object(run_id, &plan_name(repository))?;
        self.write_streamed(&name, plan).await
    }

    /// A repository's plan in a run, if written.
    pub async fn plan<T: DeserializeOwned>(
        &self,
        run_id: &str,
        repository: &str,
    ) -> Result<Option<T>, StoreError> {
        self.read_json(&self.run_object(run_id, &plan_name(repository))?)
            .await
    }

    /// Appends lines to a run's audit log.
    pub async fn append_audit(&self, run_id: &str, lines: &[AuditLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        // Each batch starts on a line of its own: after a writer died mid-line, the torn
        // line stays alone (and is skipped) instead of swallowing the next one.
        let mut bytes = vec![b'\n'];
        for line in lines {
            serde_json::to_writer(&mut bytes, line).map_err(|e| self.corrupt("audit", e))?;
            bytes.push(b'\n');
        }
        let name = self.run_object(run_id, AUDIT)?;
        self.backend.append(&name, bytes).await
    }

    /// Reads a run's audit log line by line (bounded memory, see [`audit`]), handing each
    /// audit line to `each`, and says what it had to leave out (also logged: corrupt lines
    /// as a warning, torn ones as expected after a crash).
    pub async fn audit_each(
        &self,
        run_id: &str,
        mut each: impl FnMut(AuditLine) + Send,
    ) -> Result<AuditReading, StoreError> {
        let name = self.run_object(run_id, AUDIT)?;
        let mut reading = AuditReading::default();
        let mut take = |number, line: Option<&[u8]>, last| {
            if let Some(parsed) = reading.take(number, line, last) {
                each(parsed);
            }
        };
        if !self.each_line(&name, &mut take).await? {
            return Ok(reading);
        }
        if let Some(left_out) = reading.left_out() {
            let location = self.location();
            match reading.corrupt {
                0 => tracing::info!("run store ({location}): {name}: {left_out}"),
                _ => tracing::warn!("run store ({location}): {name}: {left_out}"),
            }
        }
        Ok(reading)
    }

    /// Hands each line of object `name` to `each` (its number, its bytes or `None` past
    /// [`audit::MAX_LINE`], and whether it is an unended last line), reading the object a
    /// chunk at a time; `false` when there is no such object.
    async fn each_line(
        &self,
        name: &str,
        each: &mut (impl FnMut(u64, Option<&[u8]>, bool) + Send),
    ) -> Result<bool, StoreError> {
        use futures::TryStreamExt;
        let Some(mut chunks) = self.backend.read_chunks(name).await? else {
            return Ok(false);
        };
        let mut lines = audit::Splitter::default();
        while let Some(chunk) = chunks.try_next().await? {
            lines.feed(&chunk, each);
        }
        lines.finish(each);
        Ok(true)
    }

    /// A run's audit lines, all of them in memory (for a run's own use: what it recorded).
    /// Lines that are not audit lines are left out as [`RunStore::audit_each`] says.
    pub async fn audit(&self, run_id: &str) -> Result<Vec<AuditLine>, StoreError> {
        let mut lines = Vec::new();
        self.audit_each(run_id, |line| lines.push(line)).await?;
        Ok(lines)
    }

    /// Takes `registry`'s lease for `holder`: a lease that renews itself until released,
    /// or, when someone else has it, its holder (if readable).
    pub async fn acquire(
        &self,
        registry: &str,
        holder: &Holder,
    ) -> Result<Result<Lease, Option<Holder>>, StoreError> {
        self.check_run_id(&holder.run_id)?;
        let name = lease_name(registry);
        let bytes = serde_json::to_vec(holder).map_err(|e| self.corrupt(&name, e))?;
        match self.backend.acquire(&name, LEASE_SECONDS, bytes).await? {
            Acquired::Held(handle) => Ok(Ok(Lease::start(self.backend.clone(), handle))),
            Acquired::Busy(bytes) => Ok(Err(bytes.and_then(|b| serde_json::from_slice(&b).ok()))),
        }
    }

    /// Who holds `registry`'s lease now, if anyone (`Some(None)`: held, holder unreadable).
    pub async fn holder(&self, registry: &str) -> Result<Option<Option<Holder>>, StoreError> {
        let name = lease_name(registry);
        Ok(self
            .backend
            .holder(&name)
            .await?
            .map(|bytes| serde_json::from_slice(&bytes).ok()))
    }
}

/// A held lease on a registry, renewed in the background until [`Lease::release`]. If a
/// renewal fails the lease may be lost: [`Lease::is_lost`] turns true and the run must stop.
pub struct Lease {
    backend: Arc<dyn Backend>,
    handle: Arc<tokio::sync::Mutex<Option<LeaseHandle>>>,
    lost: Arc<Mutex<Option<String>>>,
    renewal: tokio::task::JoinHandle<()>,
}

impl Lease {
    fn start(backend: Arc<dyn Backend>, handle: LeaseHandle) -> Lease {
        let handle = Arc::new(tokio::sync::Mutex::new(Some(handle)));
        let lost: Arc<Mutex<Option<String>>> = Arc::default();
        let renewal = tokio::spawn({
            let (backend, handle, lost) = (backend.clone(), handle.clone(), lost.clone());
            async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    let guard = handle.lock().await;
                    let Some(held) = guard.as_ref() else { return };
                    if let Err(error) = backend.renew(held).await {
                        tracing::error!("lost the registry's lease: {error}");
                        if let Ok(mut lost) = lost.lock() {
                            *lost = Some(error.to_string());
                        }
                        return;
                    }
                }
            }
        });
        Lease {
            backend,
            handle,
            lost,
            renewal,
        }
    }

    /// Why the lease may have been lost, if a renewal failed.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|l| l.clone())
    }

    /// Whether a renewal failed.
    pub fn is_lost(&self) -> bool {
        self.lost().is_some()
    }

    /// Stops renewing and gives the lease up.
    pub async fn release(self) -> Result<(), StoreError> {
        self.renewal.abort();
        let taken = self.handle.lock().await.take();
        match taken {
            Some(handle) => self.backend.release(handle).await,
            None => Ok(()),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

fn segment(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// A run's audit log, under its folder.
const AUDIT: &str = "audit.jsonl";

/// A repository's plan, under its run's folder.
fn plan_name(repository: &str) -> String {
    format!("plans/{}.json", segment(repository))
}

/// `saved-plans/{hex}.json`: kept by the lifecycle rule of `saved-plans/` (infra).
fn saved_plan_name(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("saved-plans/{}.json", segment(hex))
}

fn deployed_name(registry: &str) -> String {
    format!("registries/{}/deployed.json", segment(registry))
}

/// `registries/{registry}/blobs/{repository}.jsonl`: the storage figures' memory, a line
/// a manifest.
fn blobs_name(registry: &str, repository: &str) -> String {
    format!(
        "registries/{}/blobs/{}.jsonl",
        segment(registry),
        segment(repository)
    )
}

fn checkpoint_name(registry: &str) -> String {
    format!("registries/{}/checkpoint.json", segment(registry))
}

fn lease_name(registry: &str) -> String {
    format!("registries/{}/lease", segment(registry))
}

#[cfg(test)]
mod tests;
