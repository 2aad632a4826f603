//! One purge against a registry, the only stage that drives I/O: catalog → for each
//! repository, list and plan it ([`inventory`], then the pure [`crate::plan`]) and execute
//! the plan ([`execute`](mod@execute), unless dry run) → report, with an audit event per
//! deletion ([`audit`]).
//!
//! Repositories are pipelined: up to `--concurrency` of them are listed, planned and
//! executed side by side under the client's one request budget (its concurrency and its
//! rate-card pacing), so deletions start while later repositories are still being listed
//! and small repositories fill the budget together. Each repository is still planned whole
//! before anything in it is deleted, and every flag, filter and policy is checked before
//! the first request. Each repository's lines come out together: the first one to print
//! streams, the others wait their turn.
//!
//! Failures stay in their repository where that is safe: a repository whose listing fails,
//! whose filters cannot be evaluated, or where the identity lacks permission (an ABAC
//! registry, or a token scope map, without it) is skipped and reported, and the others are
//! purged (exit 1, partial). Permission errors in [`DENIED_REPOSITORIES_TO_STOP`]
//! repositories while nothing at all was deleted stop the run: the identity lacks the
//! rights everywhere. A registry that stops answering (the circuit breaker) stops the run.
//!
//! A durable run (see `crate::durable`) gives a [`Journal`] that records each repository's
//! plan before its deletions and its attempts after; a deadline ([`RunOptions::deadline`])
//! stops the run cleanly before it, between repositories or between deletions, and
//! abandons a listing still under way (nothing was deleted in it). A resumed run passes the
//! repositories already done ([`RunOptions::done`]) and the first invocation's time
//! ([`RunOptions::reference_time`]), so it decides as the uninterrupted run would have.
//!
//! Memory stays bounded: a repository's plan is released once it is executed and reported;
//! the run's report keeps counts and at most [`RunReport::MAX_ITEMS`] items.

pub mod audit;
pub mod evidence;
pub mod execute;
pub mod inventory;
pub mod journal;
pub mod tracker;

use crate::plan::{KeepReason, Scope, Verdict};
use crate::policy::Policy;
use crate::registry::{RegistryClient, RegistryError};
use crate::report::storage::{ExactStorage, repository_storage};
use crate::report::text::{Kind, Line};
use crate::report::{
    ListingFailure, Outcome, PlanError, Problem, Progress, Refusal, RepositoryReport,
    RepositoryStatus, RunError, RunRefusal, RunReport, Summary,
};
use crate::saved::{SavedPlan, reconcile};
use audit::{DeletionEvents, MAX_DELETION_EVENTS};
use chrono::{DateTime, Utc};
use execute::execute;
use futures::StreamExt;
use inventory::plan_repository;
pub use journal::{Journal, NoJournal};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tracing::Instrument;
pub use tracker::{Tracked, Tracker};

/// Where acr purge's text lines go ([`Line`]s, rendered).
pub type Lines<'a> = &'a mut (dyn FnMut(String) + Send);

/// Called with each repository's full report as it finishes, before the run's report
/// trims it (`--output json` streams from here).
pub type Finished<'a> = &'a mut (dyn FnMut(&RepositoryReport) + Send);

/// Repositories with permission errors, while nothing was deleted anywhere, that stop the
/// run.
pub const DENIED_REPOSITORIES_TO_STOP: usize = 5;

/// Asks a run to stop: no new repository and no new deletion starts (on shutdown).
/// Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    /// Asks every run holding this signal to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Plan only; send no DELETE or PATCH.
    pub dry_run: bool,
    /// Requests of each kind in flight at most (`--concurrency`); also how many repositories are
    /// processed side by side.
    pub concurrency: usize,
    /// Catalog page size (`--repository-page-size`).
    pub repository_page_size: usize,
    /// Only these repositories (the webhook narrows runs this way); `None` for all.
    pub only: Option<Vec<String>>,
    /// Stops the run cleanly: nothing new starts.
    pub stop: StopSignal,
    /// When the run must have stopped: from then on nothing new starts, and a listing
    /// under way is abandoned. The run then ends with [`RunError::Deadline`].
    pub deadline: Option<tokio::time::Instant>,
    /// Repositories an earlier invocation of this run completed: not listed again.
    pub done: BTreeSet<String>,
    /// The time ages are measured from (`None`: now). A resumed run passes its first
    /// invocation's.
    pub reference_time: Option<DateTime<Utc>>,
    /// A saved plan to apply: only its repositories with deletions are read, and only what
    /// it deletes exactly as planned is deleted ([`crate::saved::reconcile`]). The policy
    /// and reference time passed with it must be the plan's.
    pub applying: Option<Arc<SavedPlan>>,
    /// Read the bodies of every manifest of a repository where manifests are removed, to
    /// count the storage freed ([`crate::report::storage`]); off: `--no-storage`, acr
    /// purge's requests exactly.
    pub count_storage: bool,
    /// Count as freed only the blobs no repository of the registry references any more
    /// (`--exact-storage`): every other repository's manifests are read as well.
    pub exact_storage: bool,
    /// Progress counters, for a progress display.
    pub tracker: Tracker,
    /// One repository at a time instead of `concurrency` side by side, each finished
    /// (listed, planned, its deletions done) before the next is listed: a durable run whose
    /// previous invocation made no progress narrows to this, so that every invocation ends
    /// with more done than it started with, however short.
    pub focus: bool,
    /// Where in-use images and pulls are read, when the policy needs them.
    pub sources: Option<Arc<evidence::Sources>>,
    /// The deployment history `keepDeployed` ranks by: read before the run, and updated
    /// with what is in use now (a durable run stores it back).
    pub deploy_history: Arc<Mutex<evidence::DeployHistory>>,
    /// The blast-radius guard (`--max-deletions`): a repository whose plan takes away more
    /// tagged images than this deletes nothing, and the run fails naming it
    /// ([`crate::plan::guard`]). `None`: no limit.
    pub max_deletions: Option<crate::policy::DeletionLimit>,
    /// The guard over the whole run (`--max-run-deletions`): when set, every repository is
    /// planned before anything is deleted, and a run whose plans together take away more
    /// tagged images than this deletes nothing at all ([`crate::plan::guard::over_run_limit`]).
    /// `None`: no limit, and repositories are pipelined.
    pub max_run_deletions: Option<crate::policy::DeletionLimit>,
    /// Tagged images earlier invocations of a resumed run took away (from its audit log):
    /// counted against `max_run_deletions`.
    pub taken_before: u64,
    /// The tagged images a resumed run covered when its first invocation decided
    /// `max_run_deletions` (from its checkpoint): a share is measured against it.
    pub run_images: Option<u64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            dry_run: false,
            concurrency: crate::registry::Concurrency::DEFAULT.get(),
            repository_page_size: 100,
            only: None,
            stop: StopSignal::default(),
            deadline: None,
            done: BTreeSet::new(),
            reference_time: None,
            applying: None,
            count_storage: true,
            exact_storage: false,
            tracker: Tracker::default(),
            focus: false,
            sources: None,
            deploy_history: Arc::default(),
            max_deletions: None,
            max_run_deletions: None,
            taken_before: 0,
            run_images: None,
        }
    }
}

/// Runs `policy` against the registry behind `client`, sending acr purge's lines to `out`.
pub async fn run(
    client: &RegistryClient,
    policy: &Policy,
    options: &RunOptions,
    out: Lines<'_>,
) -> RunReport {
    run_with(client, policy, options, out, &mut |_| {}).await
}

/// [`run`], also handing each repository's full report to `finished` as it completes.
pub async fn run_with(
    client: &RegistryClient,
    policy: &Policy,
    options: &RunOptions,
    out: Lines<'_>,
    finished: Finished<'_>,
) -> RunReport {
    run_journaled(client, policy, options, out, finished, &NoJournal).await
}

/// [`run_with`], recording its progress in `journal`.
pub async fn run_journaled(
    client: &RegistryClient,
    policy: &Policy,
    options: &RunOptions,
    out: Lines<'_>,
    finished: Finished<'_>,
    journal: &dyn Journal,
) -> RunReport {
    let started_at = Utc::now();
    let mut report = RunReport {
        registry: client.endpoint().host().to_string(),
        dry_run: options.dry_run,
        started_at,
        finished_at: started_at,
        repositories: Vec::new(),
        summary: Summary::default(),
        error: None,
        plan_digest: options.applying.as_ref().map(|p| p.digest().to_string()),
        findings: None,
    };
    let printer = Mutex::new(Printer::new(out));
    match covered_repositories(client, policy, options).await {
        Err(error) => report.error = Some(error),
        Ok((covered, catalog)) => 'run: {
            let now = options.reference_time.unwrap_or(started_at);
            let history = options
                .deploy_history
                .lock()
                .map(|h| h.clone())
                .unwrap_or_default();
            let gathered = match evidence::gather(
                client.endpoint().host(),
                policy,
                options.sources.as_deref(),
                history,
                now,
            )
            .await
            {
                Ok(gathered) => gathered,
                Err(error) => {
                    report.error = Some(error);
                    break 'run;
                }
            };
            report.findings = gathered.findings().map(|read| match read {
                evidence::FindingsRead::Known(_) => crate::report::findings::FindingsReport::read(),
                evidence::FindingsRead::Unknown(why) => {
                    crate::report::findings::FindingsReport::unknown(why)
                }
            });
            if options.dry_run
                && let Ok(mut printer) = printer.lock()
            {
                printer.direct(Line::DryRunBanner.to_string());
            }
            let stages = Stages {
                client,
                options,
                journal,
                gathered: &gathered,
                now,
            };
            let mut exact = options.exact_storage.then(ExactStorage::default);
            report.error = pipeline(
                &stages,
                covered,
                &printer,
                &mut report,
                finished,
                exact.as_mut(),
            )
            .await;
            if let Some(exact) = exact.as_mut()
                && report.error.is_none()
            {
                match untouched_blobs(client, &report, &catalog, options.concurrency).await {
                    Ok(blobs) => {
                        exact.add_untouched(blobs);
                        report.summary.storage.freed_bytes = exact.freed_bytes();
                        report.summary.storage.exact = true;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "--exact-storage: reading the other repositories failed; the figure counts shared blobs as freed");
                    }
                }
            }
        }
    }
    report.finished_at = Utc::now();
    report.summary.requests = client.stats();
    report
        .repositories
        .sort_by(|a, b| a.repository.cmp(&b.repository));
    if let Ok(mut printer) = printer.lock() {
        for line in report.summary_lines() {
            printer.direct(line.to_string());
        }
        if report.summary.manifests_deleted > 0 {
            let storage = Line::Storage {
                dry_run: report.dry_run,
                storage: &report.summary.storage,
            };
            printer.direct(storage.to_string());
        }
        if let Some(findings) = &report.findings {
            printer.direct(findings.line(report.dry_run));
        }
        if let Some(error) = &report.error {
            printer.direct(Line::FailedToComplete(&error.to_string()).to_string());
        }
    }
    report
}

/// Lists the catalog and decides which repositories the policy covers; every repository
/// regex is evaluated here, before any repository is read. Applying a saved plan covers
/// its repositories with deletions, and lists the catalog only for `--exact-storage`.
/// Also returns the catalog (empty when not listed).
async fn covered_repositories(
    client: &RegistryClient,
    policy: &Policy,
    options: &RunOptions,
) -> Result<(Vec<(String, Scope)>, Vec<String>), RunError> {
    let now = options.reference_time.unwrap_or_else(Utc::now);
    let catalog = match (&options.applying, options.exact_storage) {
        (Some(_), false) => Vec::new(),
        _ => client
            .catalog(options.repository_page_size)
            .await
            .map_err(RunError::Catalog)?,
    };
    let candidates: Vec<String> = match &options.applying {
        Some(saved) => saved
            .repositories_with_deletions()
            .map(|r| r.repository.clone())
            .collect(),
        None => catalog.clone(),
    };
    let mut covered = Vec::new();
    for name in candidates {
        if options
            .only
            .as_ref()
            .is_some_and(|only| !only.contains(&name))
        {
            continue;
        }
        if options.done.contains(&name) {
            continue;
        }
        if let Some(scope) = Scope::new(policy, &name, now).map_err(RunError::Filter)? {
            covered.push((name, scope));
        }
    }
    let names: Vec<String> = covered.iter().map(|(n, _)| n.clone()).collect();
    client.plan_token_batches(&names);
    options.tracker.covering(names.len());
    Ok((covered, catalog))
}

/// The blobs of every repository of `catalog` whose blobs the run did not read
/// (`--exact-storage`): their manifests are listed and every body read.
async fn untouched_blobs(
    client: &RegistryClient,
    report: &RunReport,
    catalog: &[String],
    concurrency: usize,
) -> Result<Vec<String>, RegistryError> {
    let read: HashSet<&str> = report
        .repositories
        .iter()
        .filter(|r| r.storage.is_some())
        .map(|r| r.repository.as_str())
        .collect();
    let mut blobs = Vec::new();
    for name in catalog.iter().filter(|n| !read.contains(n.as_str())) {
        let Some(manifests) = client.list_manifests(name).await? else {
            continue;
        };
        let digests: Vec<_> = manifests.into_iter().filter_map(|m| m.digest).collect();
        let bodies: Vec<Option<crate::model::ManifestBody>> = futures::stream::iter(digests)
            .map(|digest| async move { client.manifest_body(name, &digest).await })
            .buffer_unordered(concurrency.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        for body in bodies.into_iter().flatten() {
            blobs.extend(body.blob_sizes().map(|(b, _)| b.to_string()));
        }
    }
    Ok(blobs)
}

/// How one repository ended, for the run's verdict.
enum Ending {
    /// Planned (and executed, in a real run) to the end.
    Completed,
    /// Not started: the run was stopping.
    NotReached,
    /// Started, but the run stopped before all its deletions were attempted.
    Interrupted,
    /// Listing or planning failed: skipped, nothing deleted in it.
    NotPlanned {
        denied: bool,
        fatal: Option<PlanError>,
    },
    /// Executing hit a permission error (its remaining deletions were not attempted) or
    /// a registry that stopped answering.
    Stopped(RegistryError),
    /// The journal could not record it (nothing in it was deleted if its plan was not
    /// recorded): the run stops.
    Unrecorded(String),
}

/// What every repository's processing shares.
struct Stages<'a> {
    client: &'a RegistryClient,
    options: &'a RunOptions,
    journal: &'a dyn Journal,
    gathered: &'a evidence::Gathered,
    /// The reference time.
    now: DateTime<Utc>,
}

impl Stages<'_> {
    fn past_deadline(&self) -> bool {
        self.options
            .deadline
            .is_some_and(|d| tokio::time::Instant::now() >= d)
    }
}

/// Processes every covered repository, `concurrency` at a time, adding each to `report`
/// as it finishes. Returns the run's error, if any.
async fn pipeline(
    stages: &Stages<'_>,
    covered: Vec<(String, Scope)>,
    printer: &Mutex<Printer<'_>>,
    report: &mut RunReport,
    finished: Finished<'_>,
    mut exact: Option<&mut ExactStorage>,
) -> Option<RunError> {
    let options = stages.options;
    let total = covered.len();
    let fatal = StopSignal::default();
    let stopping = || options.stop.is_stopped() || fatal.is_stopped() || stages.past_deadline();
    let stopping = &stopping;
    let width = match options.focus {
        true => 1,
        false => options.concurrency.max(1),
    };
    let mut tally = Tally::default();
    let mut stream = match options.max_run_deletions {
        None => futures::stream::iter(covered.into_iter().enumerate())
            .map(|(index, (name, scope))| async move {
                let mut lines = |line: String| {
                    if let Ok(mut p) = printer.lock() {
                        p.line(index, line);
                    }
                };
                let (repo, ending, span) =
                    process(stages, &name, scope, stopping, &mut lines).await;
                (index, repo, ending, span)
            })
            .buffer_unordered(width)
            .boxed(),
        Some(limit) => {
            let staged = plan_all(stages, covered, printer, stopping, width).await;
            let (staged, refusal, images) =
                decide_run(staged, options.taken_before, options.run_images, limit);
            if refusal.is_none()
                && let Err(error) = stages.journal.decided(images).await
            {
                // Nothing is deleted without the decision on record.
                tally.unrecorded = Some(error);
                fatal.stop();
            }
            if let Some(refusal) = &refusal
                && let Ok(mut printer) = printer.lock()
            {
                printer.direct(Line::RunRefused(refusal).to_string());
            }
            tally.run_refusal = refusal;
            futures::stream::iter(staged)
                .map(|(index, staged)| async move {
                    let mut lines = |line: String| {
                        if let Ok(mut p) = printer.lock() {
                            p.line(index, line);
                        }
                    };
                    let (repo, ending, span) = match staged {
                        Staged::Ended(repo, ending) => (repo, ending, None),
                        Staged::Planned(ready) => {
                            execute_stage(stages, ready, stopping, &mut lines).await
                        }
                    };
                    (index, repo, ending, span)
                })
                .buffer_unordered(width)
                .boxed()
        }
    };
    let mut events = DeletionEvents::new(MAX_DELETION_EVENTS);
    while let Some((index, mut repo, ending, span)) = stream.next().await {
        if let Ok(mut p) = printer.lock() {
            p.finish(index);
        }
        if repo.blobs.is_some() {
            let (storage, split) = repository_storage(&repo, options.dry_run);
            repo.storage = Some(storage);
            repo.blobs = None;
            if let Some(exact) = exact.as_deref_mut() {
                exact.add(split);
            }
        }
        match span {
            Some(span) => span.in_scope(|| events.repository(&repo, options.dry_run)),
            None => events.repository(&repo, options.dry_run),
        }
        let removed = repo
            .items()
            .filter(|i| match options.dry_run {
                true => i.verdict().is_delete(),
                false => i.outcome().is_some_and(Outcome::is_gone),
            })
            .count();
        options.tracker.finished(removed as u64);
        if let Some(tags) = stages.gathered.in_use_tags(&repo.repository) {
            record_in_use(&options.deploy_history, &repo, &tags, stages.now);
        }
        finished(&repo);
        let deleted_here = repo
            .items()
            .any(|i| i.outcome().is_some_and(|o| matches!(o, Outcome::Deleted)));
        tally.record(&repo, ending, deleted_here);
        if tally.must_stop() {
            fatal.stop();
        }
        if let Some(findings) = report.findings.as_mut() {
            let here = stages.gathered.findings_by_digest(&repo.repository);
            findings.add(&repo, &here, options.dry_run);
        }
        report.add(repo);
    }
    drop(stream);
    events.finish();
    tally.error(options.dry_run, total, stages.past_deadline())
}

/// The first pass of a run under `--max-run-deletions`: lists and plans every covered
/// repository, `width` at a time, before anything is deleted (the plans are held together
/// until the run is decided).
async fn plan_all(
    stages: &Stages<'_>,
    covered: Vec<(String, Scope)>,
    printer: &Mutex<Printer<'_>>,
    stopping: &(dyn Fn() -> bool + Sync),
    width: usize,
) -> Vec<(usize, Staged)> {
    let mut staged: Vec<(usize, Staged)> = futures::stream::iter(covered.into_iter().enumerate())
        .map(|(index, (name, scope))| async move {
            let mut lines = |line: String| {
                if let Ok(mut p) = printer.lock() {
                    p.line(index, line);
                }
            };
            (
                index,
                plan_stage(stages, &name, scope, stopping, &mut lines).await,
            )
        })
        .buffer_unordered(width)
        .collect()
        .await;
    staged.sort_by_key(|(index, _)| *index);
    staged
}

/// Decides the run's guard over every plan: over the limit, every removal of every plan is
/// kept ([`KeepReason::OverRunDeletionLimit`]), and the refusal is returned. Also returns
/// the tagged images the decision counted as covered (at least `run_images`, a resumed
/// run's first total).
fn decide_run(
    mut staged: Vec<(usize, Staged)>,
    taken_before: u64,
    run_images: Option<u64>,
    limit: crate::policy::DeletionLimit,
) -> (Vec<(usize, Staged)>, Option<RunRefusal>, u64) {
    let plans = || {
        staged.iter().filter_map(|(_, s)| match s {
            Staged::Planned(ready) => Some(&ready.plan),
            Staged::Ended(..) => None,
        })
    };
    let (_, seen) = crate::plan::guard::run_taken_away(plans(), taken_before);
    let images = seen.max(run_images.unwrap_or(0));
    let decision = crate::plan::guard::over_run_limit(plans(), taken_before, images, limit);
    let Some(reason) = decision else {
        return (staged, None, images);
    };
    for (_, s) in &mut staged {
        if let Staged::Planned(ready) = s {
            crate::plan::guard::refuse(&mut ready.plan, &reason);
        }
    }
    let refusal = match reason {
        KeepReason::OverRunDeletionLimit {
            limit,
            count,
            total,
        } => Some(RunRefusal {
            limit,
            count,
            total,
        }),
        _ => None,
    };
    (staged, refusal, images)
}

/// Lists, plans and (unless dry run) executes one repository; also returns the span its
/// deletions ran in (their audit events belong there).
async fn process(
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
enum Staged {
    /// Nothing more to do in it (not reached, not found, not planned).
    Ended(RepositoryReport, Ending),
    /// Planned (the repository guard applied): to record and execute.
    Planned(Ready),
}

/// A repository's plan waiting to be recorded and executed.
struct Ready {
    plan: crate::plan::RepositoryPlan,
    blobs: Option<crate::report::BlobIndex>,
}

/// Lists and plans one repository, and applies the repository guard.
async fn plan_stage(
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
    let known_blobs = match options.count_storage {
        true => journal.known_blobs(name).await,
        false => inventory::KnownBlobs::new(),
    };
    let planning = plan_repository(
        client,
        name,
        scope,
        options.concurrency,
        options.count_storage,
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
async fn execute_stage(
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
        .any(|i| matches!(i.outcome(), Some(Outcome::Skipped { why }) if why == execute::STOPPED));
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
async fn read_unread(
    stages: &Stages<'_>,
    repo: &mut RepositoryReport,
    stopping: &(dyn Fn() -> bool + Sync),
) {
    let dry_run = stages.options.dry_run;
    // In a real run, what it deleted (or the registry removed with it) cannot be read any
    // more and is not remembered; a dry run removed nothing.
    let gone: HashSet<String> = match dry_run {
        true => HashSet::new(),
        false => crate::report::storage::removed_manifests(repo, false)
            .into_iter()
            .map(str::to_string)
            .collect(),
    };
    let Some(index) = repo.blobs.as_mut() else {
        return;
    };
    let present: Vec<crate::model::Digest> = index
        .unread
        .iter()
        .filter(|d| !gone.contains(d.as_str()))
        .cloned()
        .collect();
    if !present.is_empty() && !stopping() {
        inventory::read_unread_blobs(stages.client, &repo.repository, index, present).await;
    }
    let staying: inventory::KnownBlobs = index
        .blobs
        .iter()
        .filter(|(digest, _)| !gone.contains(digest.as_str()))
        .map(|(digest, blobs)| (digest.clone(), blobs.clone()))
        .collect();
    stages
        .journal
        .remember_blobs(&repo.repository, staying)
        .await;
}

/// Records a repository with nothing to delete (planned and ended at once).
async fn record(
    journal: &dyn Journal,
    repo: &RepositoryReport,
    completed: bool,
) -> Result<(), String> {
    journal.planned(repo).await?;
    journal.ended(repo, completed).await
}

/// Tallies how the repositories ended and decides the run's error.
#[derive(Default)]
struct Tally {
    completed: Vec<String>,
    remaining: Vec<String>,
    problems: Vec<Problem>,
    listing_failures: Vec<ListingFailure>,
    refusals: Vec<Refusal>,
    /// The run's guard refused every plan (`--max-run-deletions`).
    run_refusal: Option<RunRefusal>,
    denied: usize,
    deleted_anything: bool,
    /// The first error that stops the run, with its repository.
    stopper: Option<(String, RunErrorKind, RegistryError)>,
    /// The journal's first failure, which stops the run.
    unrecorded: Option<String>,
}

#[derive(Clone, Copy)]
enum RunErrorKind {
    Denied,
    Gone,
}

impl Tally {
    fn record(&mut self, repo: &RepositoryReport, ending: Ending, deleted_here: bool) {
        let name = repo.repository.clone();
        self.deleted_anything |= deleted_here;
        if let Some(refusal) = repository_refusal(repo) {
            self.problems
                .push(Problem::OverDeletionLimit(refusal.clone()));
            self.refusals.push(refusal);
        }
        match ending {
            Ending::Completed => {
                let failed = repo
                    .items()
                    .filter(|i| matches!(i.outcome(), Some(Outcome::Failed { .. })))
                    .count() as u64;
                if failed > 0 {
                    self.problems.push(Problem::DeletionsFailed {
                        repository: name.clone(),
                        count: failed,
                    });
                }
                if matches!(repo.status, RepositoryStatus::Done) {
                    self.completed.push(name);
                }
            }
            Ending::NotReached | Ending::Interrupted => self.remaining.push(name),
            Ending::Unrecorded(error) => {
                self.remaining.push(name);
                self.unrecorded.get_or_insert(error);
            }
            Ending::NotPlanned { denied, fatal } => {
                if let RepositoryStatus::Failed { error } = &repo.status {
                    let failure = ListingFailure {
                        repository: name.clone(),
                        error: error.clone(),
                    };
                    self.listing_failures.push(failure.clone());
                    self.problems.push(Problem::ListingFailed(failure));
                }
                if denied {
                    self.denied += 1;
                }
                if let Some(PlanError::Registry(error)) = fatal {
                    self.stop_with(name, RunErrorKind::Gone, error);
                } else if denied && self.too_many_denials() {
                    let error = RegistryError::Auth(
                        "permission denied in every repository tried".to_string(),
                    );
                    self.stop_with(name, RunErrorKind::Denied, error);
                }
            }
            Ending::Stopped(error) => {
                if error.is_denied() {
                    self.denied += 1;
                    self.problems.push(Problem::Denied {
                        repository: name.clone(),
                        error: error.to_string(),
                    });
                    if self.too_many_denials() {
                        self.stop_with(name, RunErrorKind::Denied, error);
                    }
                } else {
                    self.stop_with(name, RunErrorKind::Gone, error);
                }
            }
        }
    }

    fn too_many_denials(&self) -> bool {
        self.denied >= DENIED_REPOSITORIES_TO_STOP && !self.deleted_anything
    }

    fn stop_with(&mut self, repository: String, kind: RunErrorKind, error: RegistryError) {
        if self.stopper.is_none() {
            self.stopper = Some((repository, kind, error));
        }
    }

    fn must_stop(&self) -> bool {
        self.stopper.is_some() || self.unrecorded.is_some()
    }

    fn error(self, dry_run: bool, total: usize, past_deadline: bool) -> Option<RunError> {
        let mut remaining = self.remaining;
        remaining.sort();
        let mut completed = self.completed;
        completed.sort();
        let progress = Progress {
            completed,
            remaining,
        };
        if let Some((repository, kind, error)) = self.stopper {
            return Some(match kind {
                RunErrorKind::Denied => RunError::Denied {
                    repository,
                    error,
                    progress,
                },
                RunErrorKind::Gone => RunError::RegistryGone {
                    repository,
                    error,
                    progress,
                },
            });
        }
        if let Some(error) = self.unrecorded {
            return Some(RunError::Unrecorded { error, progress });
        }
        if let Some(refusal) = self.run_refusal {
            // Nothing at all was deleted: this says why, whatever else went wrong.
            return Some(RunError::OverRunDeletionLimit(refusal));
        }
        if !progress.remaining.is_empty() {
            return Some(if past_deadline {
                RunError::Deadline(progress)
            } else {
                RunError::Shutdown(progress)
            });
        }
        let mut failures = self.listing_failures;
        failures.sort_by(|a, b| a.repository.cmp(&b.repository));
        if !failures.is_empty() && failures.len() == total {
            return Some(RunError::EveryRepositoryFailed(failures));
        }
        let mut refusals = self.refusals;
        refusals.sort_by(|a, b| a.repository.cmp(&b.repository));
        if dry_run {
            // A preview that could not see every repository is incomplete, as a real run
            // would be: it fails the same way (exit 1, HTTP 500). A preview the guard
            // refuses fails as the real run would.
            if !failures.is_empty() {
                return Some(RunError::PartialDryRun(failures));
            }
            return (!refusals.is_empty()).then_some(RunError::OverDeletionLimit(refusals));
        }
        let mut problems = self.problems;
        if problems.len() == refusals.len() && !refusals.is_empty() {
            return Some(RunError::OverDeletionLimit(refusals));
        }
        problems.sort_by_key(problem_repository);
        (!problems.is_empty()).then_some(RunError::Partial(problems))
    }
}

fn problem_repository(problem: &Problem) -> String {
    match problem {
        Problem::ListingFailed(failure) => failure.repository.clone(),
        Problem::Denied { repository, .. } | Problem::DeletionsFailed { repository, .. } => {
            repository.clone()
        }
        Problem::OverDeletionLimit(refusal) => refusal.repository.clone(),
    }
}

/// The guard's refusal of a repository, read from its items.
fn repository_refusal(repo: &RepositoryReport) -> Option<Refusal> {
    repo.items().find_map(|item| match item.verdict() {
        Verdict::Keep { reason } => refusal_of(&repo.repository, reason),
        _ => None,
    })
}

/// The refusal a [`KeepReason::OverDeletionLimit`] stands for.
fn refusal_of(repository: &str, reason: &KeepReason) -> Option<Refusal> {
    match reason {
        KeepReason::OverDeletionLimit {
            limit,
            count,
            total,
        } => Some(Refusal {
            repository: repository.to_string(),
            limit: limit.clone(),
            count: *count,
            total: *total,
        }),
        _ => None,
    }
}

/// Keeps each repository's lines together while repositories run side by side: the first
/// repository to print streams its lines; the others' lines wait, and come out whole, in
/// turn, as the streaming one finishes.
struct Printer<'o> {
    out: Lines<'o>,
    active: Option<usize>,
    waiting: BTreeMap<usize, Vec<String>>,
    finished: HashSet<usize>,
}

impl<'o> Printer<'o> {
    fn new(out: Lines<'o>) -> Printer<'o> {
        Printer {
            out,
            active: None,
            waiting: BTreeMap::new(),
            finished: HashSet::new(),
        }
    }

    /// A line of no repository (banner, summary).
    fn direct(&mut self, line: String) {
        (self.out)(line);
    }

    fn line(&mut self, repository: usize, line: String) {
        match self.active {
            None => {
                self.active = Some(repository);
                (self.out)(line);
            }
            Some(active) if active == repository => (self.out)(line),
            Some(_) => self.waiting.entry(repository).or_default().push(line),
        }
    }

    fn finish(&mut self, repository: usize) {
        if self.active != Some(repository) {
            self.finished.insert(repository);
            return;
        }
        self.active = None;
        while let Some((next, lines)) = self.waiting.pop_first() {
            for line in lines {
                (self.out)(line);
            }
            if !self.finished.remove(&next) {
                self.active = Some(next);
                return;
            }
        }
    }
}

/// Adds the digests kept as in use to the deployment history.
fn record_in_use(
    history: &Mutex<evidence::DeployHistory>,
    repo: &RepositoryReport,
    in_use_tags: &[&str],
    now: DateTime<Utc>,
) {
    let Ok(mut history) = history.lock() else {
        return;
    };
    for manifest in &repo.manifests {
        if let Verdict::Keep {
            reason: KeepReason::InUse { .. },
        } = &manifest.decision.verdict
        {
            let digest = &manifest.decision.digest;
            let via: Vec<&str> = repo
                .tags
                .iter()
                .filter(|t| t.decision.digest == *digest)
                .map(|t| t.decision.name.as_str())
                .filter(|t| in_use_tags.contains(t))
                .collect();
            history.seen(&repo.repository, digest, &via, now);
        }
    }
}

/// One line per item a saved plan deletes that is kept because it changed.
fn print_drift(host: &str, repo: &RepositoryReport, out: Lines<'_>) {
    for item in repo.items() {
        if let Verdict::Keep {
            reason: KeepReason::Drift { detail },
        } = item.verdict()
        {
            let reference = item.reference(host, &repo.repository);
            out(Line::Skipped(reference, &format!("drift: {detail}")).to_string());
        }
    }
}

fn print_dry_run(host: &str, repo: &RepositoryReport, out: Lines<'_>) {
    let name = &repo.repository;
    for kind in [Kind::Tags, Kind::Manifests] {
        let mut deleted = repo
            .items()
            .filter(|i| i.kind() == kind && i.verdict().is_delete())
            .peekable();
        if deleted.peek().is_some() {
            out(Line::WouldDeleteIn(kind, name).to_string());
        }
        for item in deleted {
            out(Line::WouldDelete(item.reference(host, name)).to_string());
        }
    }
}
