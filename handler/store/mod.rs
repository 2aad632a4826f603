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

mod backend;
pub mod blob;
pub mod dir;
mod records;

pub use backend::{Acquired, Backend, LeaseHandle, StoreError};
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

    fn corrupt(&self, name: &str, error: serde_json::Error) -> StoreError {
        StoreError {
            location: self.location(),
            action: format!("reading {name}"),
            error: format!("not a valid object: {error}"),
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

    /// A run's record.
    pub async fn record(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.read_json(&record_name(run_id)).await
    }

    /// Writes a run's record.
    pub async fn write_record(&self, record: &RunRecord) -> Result<(), StoreError> {
        self.write_json(&record_name(&record.id), record).await
    }

    /// Records that the caller's id `alias` names run `run_id` (a webhook request that
    /// resumed an unfinished run).
    pub async fn write_alias(&self, alias: &str, run_id: &str) -> Result<(), StoreError> {
        let value = serde_json::json!({ "runId": run_id });
        self.write_json(&alias_name(alias), &value).await
    }

    /// The record of run `id`, or of the run that the id `id` names ([`RunStore::write_alias`]):
    /// a queued run that resumed another run when it began names that run.
    pub async fn resolve(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let own = self.record(id).await?;
        if let Some(record) = own.as_ref().filter(|r| r.status != RunStatus::Queued) {
            return Ok(Some(record.clone()));
        }
        let alias: Option<serde_json::Value> = self.read_json(&alias_name(id)).await?;
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

    /// Every run's record, newest first.
    pub async fn records(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut records = Vec::new();
        for name in self.backend.list("runs/").await? {
            if name.ends_with("/record.json")
                && let Some(record) = self.read_json::<RunRecord>(&name).await?
            {
                records.push(record);
            }
        }
        records.sort_by_key(|r| std::cmp::Reverse(r.started_at));
        Ok(records)
    }

    /// The checkpoint of `registry`'s unfinished run, if any.
    pub async fn checkpoint(&self, registry: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.read_json(&checkpoint_name(registry)).await
    }

    /// Writes `registry`'s checkpoint.
    pub async fn write_checkpoint(
        &self,
        registry: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
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
        plan: &impl Serialize,
    ) -> Result<(), StoreError> {
        self.write_json(&plan_name(run_id, repository), plan).await
    }

    /// A repository's plan in a run, if written.
    pub async fn plan<T: DeserializeOwned>(
        &self,
        run_id: &str,
        repository: &str,
    ) -> Result<Option<T>, StoreError> {
        self.read_json(&plan_name(run_id, repository)).await
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
        self.backend.append(&audit_name(run_id), bytes).await
    }

    /// A run's audit log. A last line cut short (its writer died mid-write) is left out.
    pub async fn audit(&self, run_id: &str) -> Result<Vec<AuditLine>, StoreError> {
        let Some(bytes) = self.backend.read(&audit_name(run_id)).await? else {
            return Ok(Vec::new());
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Ok(parsed) = serde_json::from_str::<AuditLine>(line) {
                lines.push(parsed);
            }
        }
        Ok(lines)
    }

    /// Takes `registry`'s lease for `holder`: a lease that renews itself until released,
    /// or, when someone else has it, its holder (if readable).
    pub async fn acquire(
        &self,
        registry: &str,
        holder: &Holder,
    ) -> Result<Result<Lease, Option<Holder>>, StoreError> {
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

fn record_name(run_id: &str) -> String {
    format!("runs/{}/record.json", segment(run_id))
}

fn alias_name(alias: &str) -> String {
    format!("runs/{}/alias.json", segment(alias))
}

fn audit_name(run_id: &str) -> String {
    format!("runs/{}/audit.jsonl", segment(run_id))
}

fn plan_name(run_id: &str, repository: &str) -> String {
    format!(
        "runs/{}/plans/{}.json",
        segment(run_id),
        segment(repository)
    )
}

/// `saved-plans/{hex}.json`: kept by the lifecycle rule of `saved-plans/` (infra).
fn saved_plan_name(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("saved-plans/{}.json", segment(hex))
}

fn deployed_name(registry: &str) -> String {
    format!("registries/{}/deployed.json", segment(registry))
}

fn checkpoint_name(registry: &str) -> String {
    format!("registries/{}/checkpoint.json", segment(registry))
}

fn lease_name(registry: &str) -> String {
    format!("registries/{}/lease", segment(registry))
}

#[cfg(test)]
mod tests;
