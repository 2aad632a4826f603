//! Runs that survive their process: single flight per registry, records, checkpoints and
//! resumption, on the run store ([`crate::store`]). The command line and the Functions
//! handler both go through [`begin`] → [`DurableRun::options`] → the engine with
//! [`DurableRun`] as its journal → [`DurableRun::finish`].
//!
//! - **Single flight.** A real run holds its registry's lease from [`begin`] to
//!   [`DurableRun::finish`]; a second real run of the same registry is refused with the
//!   holder's run id ([`Begun::Busy`]) and recorded as `skipped`. Dry runs change nothing
//!   and take no lease. A lease that cannot be renewed makes the journal refuse to go on
//!   (nothing more is planned for deletion; the lease still has most of its minute).
//! - **Checkpoints.** A real run writes its registry's checkpoint when it starts and each
//!   time a repository completes. The next real run of the same policy resumes it (unless
//!   told to start over): it does not list completed repositories again, and measures ages
//!   from the first invocation's start, so it decides what the uninterrupted run would.
//!   Another policy starts a new run, and the old one is recorded as abandoned.
//! - **Exactly one outcome per deletion.** Each repository's plan is stored before anything
//!   in it is deleted, and its attempts are appended to the audit log when it ends. An
//!   invocation killed in between leaves deletions unrecorded; the resuming run, when it
//!   lists that repository again, records every item of the stored plan that was to be
//!   deleted, has no outcome in the log and is gone from the registry as `deleted`
//!   (`reconciled: true`). Items still there are planned afresh. A killed run that is
//!   abandoned instead (another policy, `--new-run`) is not reconciled: its stored plans
//!   still name what it was about to delete.
//! - **The audit log is the truth.** A real run's counts of deletions and failures are its
//!   audit log's (read when it resumes, then every line it appends), not the sum of its
//!   invocations' reports: a killed invocation's report is lost. An invocation the resuming
//!   run finds recorded `running` died without saying: it is recorded `interrupted` with the
//!   counts of its audit lines. (Before that, readers show it so from the lease:
//!   `RunStore::as_it_stands`.) The checkpoint is written before the record, so a run killed
//!   while starting is resumed rather than left recorded `running`.
//! - **Dry runs** are recorded (record and plans) but not checkpointed: a dry run cut off by
//!   its deadline starts over next time.
//!
//! Naming: `crate::run::journal` is the engine's side (the [`crate::run::Journal`] trait it
//! reports to); this module's `recording` is the durable run's side (what it writes to the
//! store as the engine reports). What a caller asks for is a [`RunRequest`], whose
//! [`Trigger`] the store records by [`Trigger::as_str`].

mod recording;

use crate::report::{RunError, RunReport, Summary};
use crate::run::RunOptions;
use crate::store::{
    Checkpoint, Counts, Holder, Invocation, Lease, RunRecord, RunStatus, RunStore, StoreError,
};
use crate::telemetry::Trigger;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;

/// What run to begin.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The registry's login server.
    pub registry: String,
    /// [`policy_digest`] of what the run does.
    pub policy_digest: String,
    /// Whether it deletes nothing.
    pub dry_run: bool,
    /// What started it; the store records [`Trigger::as_str`] (`cli`, `timer`, `webhook`,
    /// `queue`). Records written before the trigger was typed may say `http` for the
    /// webhook: they are read as written (the record's trigger is text).
    pub trigger: Trigger,
    /// Start a new run even if a checkpoint of the same policy could be resumed.
    pub new_run: bool,
    /// The id the caller already gave the run (the webhook's `runId`): a new run takes it; a
    /// resumed run keeps its own, and this id is recorded as naming it.
    pub request_id: Option<String>,
}

/// The digest that identifies what a run does: the policy as parsed, the repositories it
/// is narrowed to, and whether it is a dry run.
pub fn policy_digest(
    policy: &impl std::fmt::Debug,
    only: Option<&[String]>,
    dry_run: bool,
) -> String {
    let canonical = format!("{policy:?}|{only:?}|{dry_run}");
    let digest = Sha256::digest(canonical.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// How [`begin`] went.
#[allow(clippy::large_enum_variant)] // one per run
pub enum Begun {
    /// The run goes on (new, or resumed from its checkpoint).
    Started(Box<DurableRun>),
    /// Another run holds the registry; this one is recorded as skipped.
    Busy {
        /// The skipped run's record.
        record: RunRecord,
        /// The run holding the registry, if its lease could be read.
        holder: Option<Holder>,
    },
}

/// A run under way, recorded in the store; also the engine's journal.
pub struct DurableRun {
    store: RunStore,
    lease: Option<Lease>,
    record: RunRecord,
    invocation: u32,
    checkpoint: Option<tokio::sync::Mutex<Checkpoint>>,
    /// (repository, item) of every outcome already in the audit log for repositories not
    /// completed, when resuming: what reconciliation must not record twice.
    recorded: Mutex<HashSet<(String, String)>>,
    /// What the audit log holds of the run, counted ([`Counts::add_audit`]): read when
    /// resuming, then every line this invocation appends.
    audited: Mutex<Counts>,
    /// Tagged images the run's audit log says earlier invocations took away, for
    /// `--max-run-deletions` ([`tagged_image_taken`]).
    taken_before: u64,
    resuming: bool,
}

/// Begins a run: takes the registry's lease (real runs), resumes its checkpoint or starts
/// a new one, and writes the record. Nothing is purged without this succeeding.
pub async fn begin(store: &RunStore, request: RunRequest) -> Result<Begun, StoreError> {
    let now = Utc::now();
    let existing = match request.dry_run {
        true => None,
        false => store.checkpoint(&request.registry).await?,
    };
    let resumable = existing
        .as_ref()
        .filter(|c| c.policy_digest == request.policy_digest && !request.new_run);
    let new_id = || {
        request
            .request_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    };
    let id = resumable.map(|c| c.run_id.clone()).unwrap_or_else(new_id);
    let lease = if request.dry_run {
        None
    } else {
        let holder = Holder {
            run_id: id.clone(),
            trigger: request.trigger.as_str().to_string(),
            since: now,
        };
        match store.acquire(&request.registry, &holder).await? {
            Ok(lease) => Some(lease),
            Err(holder) => {
                let skipped_id = new_id();
                let record = skipped(&skipped_id, &request, now, holder.as_ref());
                store.write_record(&record).await?;
                return Ok(Begun::Busy { record, holder });
            }
        }
    };
    // Under the lease now: read the checkpoint again (another run may have ended since).
    let checkpoint = match request.dry_run {
        true => None,
        false => store.checkpoint(&request.registry).await?,
    };
    let resume = checkpoint
        .filter(|c| c.policy_digest == request.policy_digest && !request.new_run && c.run_id == id);
    if resume.is_none()
        && let Some(old) = existing.filter(|c| c.run_id != id)
    {
        abandon(store, &old.run_id, &id).await?;
    }
    let invocation = Invocation {
        trigger: request.trigger.as_str().to_string(),
        started_at: now,
        ended_at: None,
        resumed_from: resume.as_ref().map(|c| c.written_at),
        status: RunStatus::Running,
        counts: Counts::default(),
        error: None,
    };
    let mut record = match &resume {
        Some(_) => store
            .record(&id)
            .await?
            .unwrap_or_else(|| fresh(&id, &request, now)),
        None => fresh(&id, &request, now),
    };
    // Resuming: the audit log is the truth of what the run did. Invocations that died
    // without recording their end are marked interrupted with what the log says they did,
    // and the run's counts are taken from the log (a killed invocation's report was lost).
    let mut recorded = HashSet::new();
    let mut audited = Counts::default();
    let mut taken: HashSet<(String, String)> = HashSet::new();
    if let Some(checkpoint) = &resume {
        let mut per_invocation: BTreeMap<u32, Counts> = BTreeMap::new();
        store
            .audit_each(&id, |line| {
                if !checkpoint.completed.contains(&line.repository) {
                    recorded.insert(line.key());
                }
                audited.add_audit(&line);
                if tagged_image_taken(&line) {
                    taken.insert((line.repository.clone(), line.digest.clone()));
                }
                if !line.reconciled {
                    per_invocation
                        .entry(line.invocation)
                        .or_default()
                        .add_audit(&line);
                }
            })
            .await?;
        let resumed_by = record.invocations.len() + 1;
        for (number, invocation) in (1u32..).zip(record.invocations.iter_mut()) {
            if invocation.status == RunStatus::Running {
                invocation.status = RunStatus::Interrupted;
                invocation.counts = per_invocation.remove(&number).unwrap_or_default();
                invocation.error = Some(format!(
                    "{}; invocation {resumed_by} resumed the run",
                    crate::store::INTERRUPTED
                ));
            }
        }
        record.summary = from_audit(&audited, &record.invocations, checkpoint);
    }
    // The checkpoint is written before the record: a run killed in between is resumed
    // (its record written afresh), never left recorded `running` with nothing to resume it.
    let checkpoint = match request.dry_run {
        true => None,
        false => {
            let checkpoint = resume.clone().unwrap_or(Checkpoint {
                run_id: id.clone(),
                policy_digest: request.policy_digest.clone(),
                reference_time: now,
                completed: BTreeSet::new(),
                written_at: now,
                run_images: None,
            });
            store
                .write_checkpoint(&request.registry, &checkpoint)
                .await?;
            Some(tokio::sync::Mutex::new(checkpoint))
        }
    };
    record.status = RunStatus::Running;
    record.ended_at = None;
    record.error = None;
    record.invocations.push(invocation);
    let number = record.invocations.len() as u32;
    store.write_record(&record).await?;
    if let Some(alias) = request.request_id.as_ref().filter(|a| **a != id) {
        store.write_alias(alias, &id).await?;
    }
    Ok(Begun::Started(Box::new(DurableRun {
        store: store.clone(),
        lease,
        record,
        invocation: number,
        checkpoint,
        recorded: Mutex::new(recorded),
        audited: Mutex::new(audited),
        taken_before: taken.len() as u64,
        resuming: resume.is_some(),
    })))
}

/// Whether an audit line took a tagged image away, for the run's guard: a tag deleted, or a
/// manifest deleted with its tags. Counted once per (repository, digest); an image that
/// lost only some of its tags counts too (the count errs on the strict side).
fn tagged_image_taken(line: &crate::store::AuditLine) -> bool {
    line.outcome == "deleted" && (line.tag.is_some() || !line.tags.is_empty())
}

/// A real run's counts: deletions and failures as its audit log records them (`audited`),
/// skips as its invocations counted them (the log has no line for an item not attempted),
/// repositories as its checkpoint lists them completed.
fn from_audit(audited: &Counts, invocations: &[Invocation], checkpoint: &Checkpoint) -> Counts {
    Counts {
        tags_deleted: audited.tags_deleted,
        manifests_deleted: audited.manifests_deleted,
        failed: audited.failed,
        skipped: invocations.iter().map(|i| i.counts.skipped).sum(),
        repositories: checkpoint.completed.len() as u64,
    }
}

fn fresh(id: &str, request: &RunRequest, now: DateTime<Utc>) -> RunRecord {
    RunRecord {
        id: id.to_string(),
        registry: request.registry.clone(),
        trigger: request.trigger.as_str().to_string(),
        policy_digest: request.policy_digest.clone(),
        dry_run: request.dry_run,
        started_at: now,
        ended_at: None,
        status: RunStatus::Running,
        summary: Counts::default(),
        error: None,
        held_by: None,
        invocations: Vec::new(),
    }
}

fn skipped(
    id: &str,
    request: &RunRequest,
    now: DateTime<Utc>,
    holder: Option<&Holder>,
) -> RunRecord {
    let held_by = holder.map(|h| h.run_id.clone());
    let why = match &held_by {
        Some(run) => format!("run {run} is purging {} now", request.registry),
        None => format!("another run is purging {} now", request.registry),
    };
    let mut record = fresh(id, request, now);
    record.status = RunStatus::Skipped;
    record.ended_at = Some(now);
    record.error = Some(why.clone());
    record.held_by = held_by;
    record.invocations.push(Invocation {
        trigger: request.trigger.as_str().to_string(),
        started_at: now,
        ended_at: Some(now),
        resumed_from: None,
        status: RunStatus::Skipped,
        counts: Counts::default(),
        error: Some(why),
    });
    record
}

/// Marks a run whose checkpoint a new run replaces as failed (abandoned).
async fn abandon(store: &RunStore, old: &str, new: &str) -> Result<(), StoreError> {
    if let Some(mut record) = store.record(old).await?
        && matches!(
            record.status,
            RunStatus::Running | RunStatus::Incomplete | RunStatus::Interrupted
        )
    {
        record.mark_interrupted(crate::store::INTERRUPTED);
        record.status = RunStatus::Failed;
        record.ended_at = Some(Utc::now());
        record.error = Some(format!(
            "abandoned: run {new} started over with another policy or --new-run"
        ));
        store.write_record(&record).await?;
    }
    Ok(())
}

impl DurableRun {
    /// The run id.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// Which invocation of the run this is (1 for a new run).
    pub fn invocation(&self) -> u32 {
        self.invocation
    }

    /// Whether it resumed a checkpoint.
    pub fn is_resumed(&self) -> bool {
        self.resuming
    }

    /// The store it records in.
    pub fn store(&self) -> &RunStore {
        &self.store
    }

    /// Sets what a resumed run needs on `options`: the repositories done, the reference
    /// time, and focus ([`RunOptions::focus`]) once an earlier invocation of the run made
    /// no progress (it completed no repository and deleted nothing, or it died): from then
    /// on the run goes one repository at a time.
    pub async fn options(&self, options: &mut RunOptions) {
        if let Some(checkpoint) = &self.checkpoint {
            let checkpoint = checkpoint.lock().await;
            options.done = checkpoint.completed.clone();
            options.reference_time = Some(checkpoint.reference_time);
            options.run_images = checkpoint.run_images;
        }
        options.focus = self.resuming && self.an_earlier_invocation_made_no_progress();
        options.taken_before = self.taken_before;
    }

    /// Whether an invocation before this one ended without completing a repository or
    /// deleting anything (a killed invocation records nothing, so it counts as none).
    fn an_earlier_invocation_made_no_progress(&self) -> bool {
        let invocations = &self.record.invocations;
        let earlier = &invocations[..invocations.len().saturating_sub(1)];
        earlier.iter().any(|i| {
            let counts = &i.counts;
            counts.repositories + counts.tags_deleted + counts.manifests_deleted == 0
        })
    }

    /// Ends this invocation: records how it went, keeps the checkpoint when the run is to
    /// be resumed (deadline, shutdown, a store failure) and clears it otherwise, and
    /// releases the lease.
    pub async fn finish(mut self, report: &RunReport) -> Result<RunRecord, StoreError> {
        let now = Utc::now();
        let resumable = matches!(
            report.error,
            Some(RunError::Deadline(_) | RunError::Shutdown(_) | RunError::Unrecorded { .. })
        );
        let status = match &report.error {
            None => RunStatus::Succeeded,
            Some(_) if resumable && !self.record.dry_run => RunStatus::Incomplete,
            Some(_) => RunStatus::Failed,
        };
        let counts = counts(&report.summary);
        let error = report.error.as_ref().map(ToString::to_string);
        if let Some(invocation) = self.record.invocations.last_mut() {
            invocation.ended_at = Some(now);
            invocation.status = status;
            invocation.counts = counts.clone();
            invocation.error = error.clone();
        }
        self.record.summary.add(&counts);
        if let Some(checkpoint) = &self.checkpoint {
            // A real run: the audit log is the truth (it has what killed invocations did).
            let audited = self.audited.lock().map(|a| a.clone()).unwrap_or_default();
            let checkpoint = checkpoint.lock().await;
            self.record.summary = from_audit(&audited, &self.record.invocations, &checkpoint);
        }
        self.record.status = status;
        self.record.error = error;
        self.record.ended_at = (status != RunStatus::Incomplete).then_some(now);
        let registry = self.record.registry.clone();
        let mut result = self.store.write_record(&self.record).await;
        if let Some(checkpoint) = self.checkpoint.take() {
            let mut checkpoint = checkpoint.into_inner();
            let kept = if status == RunStatus::Incomplete {
                checkpoint.written_at = now;
                self.store.write_checkpoint(&registry, &checkpoint).await
            } else {
                self.store.clear_checkpoint(&registry).await
            };
            result = result.and(kept);
        }
        if let Some(lease) = self.lease.take() {
            result = result.and(lease.release().await);
        }
        result.map(|()| self.record)
    }
}

/// A report's summary as the record's counts.
fn counts(summary: &Summary) -> Counts {
    Counts {
        tags_deleted: summary.tags_deleted,
        manifests_deleted: summary.manifests_deleted,
        failed: summary.failed,
        skipped: summary.skipped,
        repositories: summary.repositories,
    }
}

#[cfg(test)]
mod tests;

/// How long before a deadline a run stops starting work: a tenth of the time allowed,
/// between 1 s and 2 min, so deletions in flight and the final records fit before it.
pub fn stop_margin(allowed: std::time::Duration) -> std::time::Duration {
    (allowed / 10).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(120),
    )
}

/// When a run allowed `allowed` from `start` must stop starting work.
pub fn stop_at(start: tokio::time::Instant, allowed: std::time::Duration) -> tokio::time::Instant {
    start + allowed.saturating_sub(stop_margin(allowed))
}

/// How [`drive`] went.
#[allow(clippy::large_enum_variant)] // one per run
pub enum Driven {
    /// The run ran (to its end, or to its deadline).
    Ran {
        /// The engine's report of this invocation.
        report: RunReport,
        /// The run id.
        run_id: String,
        /// Which invocation of the run this was.
        invocation: u32,
        /// The record as finished, or why it could not be written.
        record: Result<RunRecord, StoreError>,
    },
    /// Another run holds the registry; nothing was done.
    Busy {
        /// The skipped run's record.
        record: RunRecord,
        /// Who holds the registry.
        holder: Option<Holder>,
    },
}

/// Where a durable invocation's output goes.
pub struct Hooks<'a> {
    /// acr purge's lines.
    pub out: crate::run::Lines<'a>,
    /// Each repository's full report as it finishes.
    pub finished: crate::run::OnRepositoryDone<'a>,
    /// Hears the run (its id, whether it resumed) before the engine starts.
    pub started: &'a mut (dyn FnMut(&DurableRun) + Send),
}

/// One durable invocation, start to end: [`begin`], the engine with this run as its
/// journal, [`DurableRun::finish`]. `started` hears the run id before the engine starts.
pub async fn drive(
    store: &RunStore,
    request: RunRequest,
    client: &crate::registry::RegistryClient,
    policy: &crate::policy::Policy,
    mut options: RunOptions,
    hooks: Hooks<'_>,
) -> Result<Driven, StoreError> {
    // The caller's run span learns which run and invocation this is, and how it ended.
    let span = tracing::Span::current();
    let run = match begin(store, request).await? {
        Begun::Busy { record, holder } => {
            crate::telemetry::record_durable(&span, &record.id, 1);
            crate::telemetry::record_run_status(&span, record.status.name());
            return Ok(Driven::Busy { record, holder });
        }
        Begun::Started(run) => run,
    };
    crate::telemetry::record_durable(&span, run.id(), run.invocation());
    run.options(&mut options).await;
    // In-use protection remembers what it saw running (keepDeployed, moved tags).
    let remembers = !policy.protect_in_use.is_empty();
    let registry = client.endpoint().host().to_string();
    if remembers {
        let history = store.deploy_history(&registry).await?.unwrap_or_default();
        options.deploy_history = std::sync::Arc::new(history);
    }
    (hooks.started)(&run);
    let crate::run::RunOutput {
        report,
        deploy_history,
    } = crate::run::run_journaled(
        client,
        policy,
        &options,
        hooks.out,
        hooks.finished,
        run.as_ref(),
    )
    .await;
    if remembers && let Err(error) = store.write_deploy_history(&registry, &deploy_history).await {
        tracing::error!(%error, "the deployment history could not be saved");
    }
    let (run_id, invocation) = (run.id().to_string(), run.invocation());
    let record = run.finish(&report).await;
    if let Ok(record) = &record {
        crate::telemetry::record_run_status(&span, record.status.name());
    }
    Ok(Driven::Ran {
        report,
        run_id,
        invocation,
        record,
    })
}
