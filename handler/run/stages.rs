//! One repository's stages: listed and planned ([`plan_stage`], the repository guard
//! applied), then recorded and executed ([`execute_stage`]).

use super::execute::execute;
use super::gather;
use super::inventory::{self, Adding, plan_repository};
use super::printer::{print_drift, print_dry_run};
use super::tally::{Ending, refusal_of};
use super::{Journal, JournalError, Lines, RunOptions};
use crate::model::Digest;
use crate::plan::Scope;
use crate::registry::RegistryClient;
use crate::report::text::Line;
use crate::report::{Outcome, RepositoryReport, RepositoryStatus};
use crate::saved::reconcile;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use tracing::Instrument;

/// What every repository's processing shares.
pub(super) struct Stages<'a> {
    pub(super) client: &'a RegistryClient,
    pub(super) options: &'a RunOptions,
    pub(super) journal: &'a dyn Journal,
    pub(super) gathered: &'a gather::Gathered,
    /// The reference time.
    pub(super) now: DateTime<Utc>,
}

impl Stages<'_> {
    pub(super) fn past_deadline(&self) -> bool {
        self.options
            .deadline
            .is_some_and(|d| tokio::time::Instant::now() >= d)
    }
}

/// Lists, plans and (unless dry run) executes one repository; also returns the span its
/// deletions ran in (their audit events belong there).
pub(super) async fn process(
    stages: &Stages<'_>,
    name: &str,
    scope: Scope,
    stopping: &(dyn Fn() -> bool + Sync),
    out: Lines<'_>,
) -> (RepositoryReport, Ending, Option<tracing::Span>) {
    match plan_stage(stages, name, scope, stopping, out).await {
        Staged::Ended(repo, ending) => (repo, ending, None),
        Staged::Planned(ready) => execute_stage(stages, ready, stopping, out).await,
    }
}

/// A repository after its first stage.
pub(super) enum Staged {
    /// Nothing more to do in it (not reached, not found, not planned).
    Ended(RepositoryReport, Ending),
    /// Planned (the repository guard applied): to record and execute.
    Planned(Ready),
}

/// A repository's plan waiting to be recorded and executed.
pub(super) struct Ready {
    pub(super) plan: crate::plan::RepositoryPlan,
    pub(super) blobs: Option<crate::report::BlobIndex>,
}

/// Lists and plans one repository, and applies the repository guard.
pub(super) async fn plan_stage(
    stages: &Stages<'_>,
    name: &str,
    scope: Scope,
    stopping: &(dyn Fn() -> bool + Sync),
    out: Lines<'_>,
) -> Staged {
    if stopping() {
        let repo = RepositoryReport::empty(name, RepositoryStatus::NotReached);
        return Staged::Ended(repo, Ending::NotReached);
    }
    let (client, options, journal) = (stages.client, stages.options, stages.journal);
    let scope = scope.with_evidence(stages.gathered.for_repository(name));
    let span = tracing::info_span!("plan repository", purge.repository = name);
    let known_blobs = async {
        match options.count_storage {
            true => journal.known_blobs(name).await,
            false => inventory::KnownBlobs::new(),
        }
    };
    let planning = plan_repository(
        client,
        name,
        scope,
        options.concurrency,
        options.count_storage,
        options.exact_storage,
        known_blobs,
    )
    .instrument(span);
    let planned = match options.deadline {
        None => planning.await,
        Some(deadline) => tokio::select! {
            planned = planning => planned,
            () = tokio::time::sleep_until(deadline) => {
                let repo = RepositoryReport::empty(name, RepositoryStatus::NotReached);
                return Staged::Ended(repo, Ending::NotReached);
            }
        },
    };
    match planned {
        Ok(Some(planned)) => {
            let mut plan = match &options.applying {
                None => planned.plan,
                Some(saved) => {
                    let fresh = planned.plan;
                    let applied = saved
                        .repository(name)
                        .map(|planned| reconcile(planned, fresh.clone()));
                    applied.unwrap_or(fresh)
                }
            };
            if let Some(limit) = options.max_deletions
                && let Some(reason) = crate::plan::guard::enforce(&mut plan, limit)
                && let Some(refusal) = refusal_of(name, &reason)
            {
                out(Line::Refused(&refusal).to_string());
            }
            Staged::Planned(Ready {
                plan,
                blobs: planned.blobs,
            })
        }
        Ok(None) => {
            out(Line::RepositoryNotFound(name).to_string());
            let repo = RepositoryReport::empty(name, RepositoryStatus::NotFound);
            let ending = match record(journal, &repo, true).await {
                Ok(()) => Ending::Completed,
                Err(error) => Ending::Unrecorded(error),
            };
            Staged::Ended(repo, ending)
        }
        Err(error) => {
            if options.dry_run {
                out(Line::FailedToPlan(name, &error.to_string()).to_string());
            }
            let status = RepositoryStatus::Failed {
                error: error.to_string(),
            };
            let ending = Ending::NotPlanned {
                denied: error.is_denied(),
                fatal: error.is_fatal().then_some(error),
            };
            Staged::Ended(RepositoryReport::empty(name, status), ending)
        }
    }
}

/// Records one planned repository and (unless dry run) executes it; also returns the span
/// its deletions ran in.
pub(super) async fn execute_stage(
    stages: &Stages<'_>,
    ready: Ready,
    stopping: &(dyn Fn() -> bool + Sync),
    out: Lines<'_>,
) -> (RepositoryReport, Ending, Option<tracing::Span>) {
    let (client, options, journal) = (stages.client, stages.options, stages.journal);
    let mut repo = RepositoryReport::planned(ready.plan);
    repo.blobs = ready.blobs;
    let name = repo.repository.clone();
    let name = name.as_str();
    if options.applying.is_some() {
        print_drift(client.endpoint().host(), &repo, out);
    }
    if let Err(error) = journal.planned(&repo).await {
        let status = RepositoryStatus::Failed {
            error: format!("its plan could not be recorded, so nothing in it was deleted: {error}"),
        };
        let repo = RepositoryReport::empty(name, status);
        return (repo, Ending::Unrecorded(error), None);
    }
    if options.dry_run {
        print_dry_run(client.endpoint().host(), &repo, out);
        read_unread(stages, &mut repo, stopping).await;
        let ending = match journal.ended(&repo, true).await {
            Ok(()) => Ending::Completed,
            Err(error) => Ending::Unrecorded(error),
        };
        return (repo, ending, None);
    }
    let span = tracing::info_span!("purge repository", purge.repository = name);
    let result = execute(client, &mut repo, options.concurrency, stopping, out)
        .instrument(span.clone())
        .await;
    let interrupted = repo
        .items()
        .any(|i| matches!(i.outcome(), Some(Outcome::Stopped)));
    let ending = match result {
        Err(error) => Ending::Stopped(error),
        Ok(()) if interrupted => Ending::Interrupted,
        Ok(()) => Ending::Completed,
    };
    let completed = matches!(ending, Ending::Completed);
    read_unread(stages, &mut repo, stopping).await;
    if let Err(error) = journal.ended(&repo, completed).await {
        return (repo, Ending::Unrecorded(error), Some(span));
    }
    (repo, ending, Some(span))
}

/// Reads, for the storage figures, the bodies still unread of the manifests that are still
/// there, once the repository's deletions are done, unless the run is stopping (time goes
/// to deletions); then tells the journal the blobs of what stays, for the next run.
///
/// The removed manifests' bodies come first (a dry run's: a real run read them before each
/// DELETE), then those of the manifests that stay, of which only the blobs shared with the
/// removed ones are held (all of them under `--exact-storage`).
async fn read_unread(
    stages: &Stages<'_>,
    repo: &mut RepositoryReport,
    stopping: &(dyn Fn() -> bool + Sync),
) {
    let (dry_run, exact) = (stages.options.dry_run, stages.options.exact_storage);
    let Some(index) = repo.blobs.as_mut() else {
        return;
    };
    // What the figures count as removed: planned (dry run) or deleted (real run).
    let removed = crate::report::storage::removed_manifests(&repo.manifests, dry_run);
    // In a real run what is removed is gone: it cannot be read any more and is not
    // remembered. A dry run removed nothing.
    let nothing = HashSet::new();
    let gone = if dry_run { &nothing } else { &removed };
    let name = repo.repository.as_str();
    if !stopping() {
        // Moved, not copied: a repository may have a million bodies to read.
        let mut rest = std::mem::take(&mut index.unread);
        index.unread = rest.extract_if(|d| gone.contains(d.as_str())).collect();
        let first: HashSet<Digest> = rest
            .extract_if(|d| exact || removed.contains(d.as_str()))
            .collect();
        let client = stages.client;
        if inventory::read_unread_blobs(client, name, index, &first, Adding::Held).await {
            let removed_blobs = index.removed_blobs(|d| removed.contains(d));
            let staying = Adding::Staying(&removed_blobs);
            inventory::read_unread_blobs(client, name, index, &rest, staying).await;
        } else {
            index.unread.extend(rest);
        }
    }
    // Borrowed from the index, not copied: a repository may keep a million lists.
    let staying = inventory::Staying::new(index, gone);
    stages.journal.remember_blobs(name, staying).await;
}

/// Records a repository with nothing to delete (planned and ended at once).
async fn record(
    journal: &dyn Journal,
    repo: &RepositoryReport,
    completed: bool,
) -> Result<(), JournalError> {
    journal.planned(repo).await?;
    journal.ended(repo, completed).await
}
