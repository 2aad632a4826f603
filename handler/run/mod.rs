//! One purge against a registry, the only stage that drives I/O: catalog → plan every
//! repository ([`inventory`], then the pure [`crate::plan`]) → execute ([`execute`](mod@execute), unless
//! dry run) → report, with an audit event per deletion ([`audit`]).
//!
//! Every repository is planned before anything is deleted, so a bad filter or a missing
//! permission found while planning deletes nothing at all. A repository whose listing fails
//! for another reason is reported failed (nothing deleted in it) and the others go on.

pub mod audit;
pub mod execute;
pub mod inventory;

use crate::plan::Scope;
use crate::policy::Policy;
use crate::registry::RegistryClient;
use crate::report::text::{Kind, Line};
use crate::report::{
    ListingFailure, Problem, Progress, RepositoryReport, RepositoryStatus, RunError, RunReport,
    Summary,
};
use audit::{DeletionEvents, MAX_DELETION_EVENTS};
use chrono::Utc;
use execute::execute;
use futures::StreamExt;
use inventory::plan_repository;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Instrument;

/// Where acr purge's text lines go ([`Line`]s, rendered).
pub type Lines<'a> = &'a mut (dyn FnMut(String) + Send);

/// Asks a run to stop before its next repository (on shutdown). Cloning shares the flag.
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
    /// Requests in flight at most (`--concurrency`).
    pub concurrency: usize,
    /// Catalog page size (`--repository-page-size`).
    pub repository_page_size: usize,
    /// Only these repositories (the webhook narrows runs this way); `None` for all.
    pub only: Option<Vec<String>>,
    /// Stops the run cleanly between repositories.
    pub stop: StopSignal,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            dry_run: false,
            concurrency: crate::registry::Concurrency::DEFAULT.get(),
            repository_page_size: 100,
            only: None,
            stop: StopSignal::default(),
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
    let started_at = Utc::now();
    let mut report = RunReport {
        registry: client.endpoint().host().to_string(),
        dry_run: options.dry_run,
        started_at,
        finished_at: started_at,
        repositories: Vec::new(),
        summary: Summary::default(),
        error: None,
    };
    let mut events = DeletionEvents::new(MAX_DELETION_EVENTS);
    if let Err(error) = plan_all(client, policy, options, &mut report).await {
        report.error = Some(error);
    } else if options.dry_run {
        out(Line::DryRunBanner.to_string());
        for repo in &report.repositories {
            print_dry_run(client.endpoint().host(), repo, out);
            events.repository(repo, true);
        }
        // A preview that could not see every repository is incomplete, as a real run
        // would be: it fails the same way (exit 1, HTTP 500).
        let failures = listing_failures(&report.repositories);
        if !failures.is_empty() {
            report.error = Some(RunError::PartialDryRun(failures));
        }
    } else {
        report.error =
            execute_all(client, options, &mut report.repositories, &mut events, out).await;
    }
    events.finish();
    report.finished_at = Utc::now();
    report.summarize(client.stats());
    for line in report.summary_lines() {
        out(line.to_string());
    }
    if let Some(error) = &report.error {
        out(Line::FailedToComplete(&error.to_string()).to_string());
    }
    report
}

/// Lists the catalog and plans every covered repository into `report.repositories`.
async fn plan_all(
    client: &RegistryClient,
    policy: &Policy,
    options: &RunOptions,
    report: &mut RunReport,
) -> Result<(), RunError> {
    let now = Utc::now();
    let catalog = client
        .catalog(options.repository_page_size)
        .await
        .map_err(RunError::Catalog)?;
    let mut covered = Vec::new();
    for name in catalog {
        if options
            .only
            .as_ref()
            .is_some_and(|only| !only.contains(&name))
        {
            continue;
        }
        if let Some(scope) = Scope::new(policy, &name, now).map_err(RunError::Filter)? {
            covered.push((name, scope));
        }
    }
    let names: Vec<String> = covered.iter().map(|(n, _)| n.clone()).collect();
    client.plan_token_batches(&names);
    let concurrency = options.concurrency.max(1);
    let mut planned = futures::stream::iter(covered)
        .map(|(name, scope)| async move {
            let span = tracing::info_span!("plan repository", purge.repository = name.as_str());
            let result = plan_repository(client, &name, scope, concurrency)
                .instrument(span)
                .await;
            (name, result)
        })
        .buffered(concurrency);
    let mut fatal = None;
    while let Some((name, result)) = planned.next().await {
        let repo = match result {
            Ok(Some(plan)) => RepositoryReport::planned(plan),
            Ok(None) => RepositoryReport::empty(&name, RepositoryStatus::NotFound),
            Err(error) => {
                let status = RepositoryStatus::Failed {
                    error: error.to_string(),
                };
                if error.is_fatal() && fatal.is_none() {
                    fatal = Some(RunError::PlanningStopped {
                        repository: name.clone(),
                        error,
                    });
                }
                RepositoryReport::empty(&name, status)
            }
        };
        report.repositories.push(repo);
    }
    if let Some(error) = fatal {
        return Err(error);
    }
    let failures = listing_failures(&report.repositories);
    if !failures.is_empty() && failures.len() == report.repositories.len() {
        return Err(RunError::EveryRepositoryFailed(failures));
    }
    Ok(())
}

/// Every repository whose listing or planning failed.
fn listing_failures(repositories: &[RepositoryReport]) -> Vec<ListingFailure> {
    repositories.iter().filter_map(listing_failure).collect()
}

fn listing_failure(repo: &RepositoryReport) -> Option<ListingFailure> {
    match &repo.status {
        RepositoryStatus::Failed { error } => Some(ListingFailure {
            repository: repo.repository.clone(),
            error: error.clone(),
        }),
        RepositoryStatus::Done | RepositoryStatus::NotFound | RepositoryStatus::NotReached => None,
    }
}

/// Executes every planned repository in name order; returns the run's error, if any.
async fn execute_all(
    client: &RegistryClient,
    options: &RunOptions,
    repositories: &mut [RepositoryReport],
    events: &mut DeletionEvents,
    out: Lines<'_>,
) -> Option<RunError> {
    let mut completed = Vec::new();
    let mut problems = Vec::new();
    for index in 0..repositories.len() {
        if options.stop.is_stopped() {
            let remaining = mark_not_reached(&mut repositories[index..]);
            return Some(RunError::Shutdown(Progress {
                completed,
                remaining,
            }));
        }
        let repo = &mut repositories[index];
        match &repo.status {
            RepositoryStatus::NotFound => {
                out(Line::RepositoryNotFound(&repo.repository).to_string());
                continue;
            }
            RepositoryStatus::Failed { .. } => {
                problems.extend(listing_failure(repo).map(Problem::ListingFailed));
                continue;
            }
            RepositoryStatus::Done | RepositoryStatus::NotReached => {}
        }
        let span = tracing::info_span!(
            "purge repository",
            purge.repository = repo.repository.as_str()
        );
        let result = execute(client, repo, options.concurrency, out)
            .instrument(span.clone())
            .await;
        span.in_scope(|| events.repository(repo, false));
        if let Err(error) = result {
            let repository = repositories[index].repository.clone();
            let progress = Progress {
                completed,
                remaining: mark_not_reached(&mut repositories[index + 1..]),
            };
            return Some(if error.is_denied() {
                RunError::Denied {
                    repository,
                    error,
                    progress,
                }
            } else {
                RunError::RegistryGone {
                    repository,
                    error,
                    progress,
                }
            });
        }
        let repo = &repositories[index];
        let failed = repo
            .items()
            .filter(|i| matches!(i.outcome(), Some(crate::report::Outcome::Failed { .. })))
            .count() as u64;
        if failed > 0 {
            problems.push(Problem::DeletionsFailed {
                repository: repo.repository.clone(),
                count: failed,
            });
        }
        completed.push(repo.repository.clone());
    }
    (!problems.is_empty()).then_some(RunError::Partial(problems))
}

/// Marks repositories as not reached; returns their names.
fn mark_not_reached(repositories: &mut [RepositoryReport]) -> Vec<String> {
    repositories
        .iter_mut()
        .map(|r| {
            r.status = RepositoryStatus::NotReached;
            r.repository.clone()
        })
        .collect()
}

fn print_dry_run(host: &str, repo: &RepositoryReport, out: Lines<'_>) {
    let name = &repo.repository;
    match &repo.status {
        RepositoryStatus::NotFound => {
            out(Line::RepositoryNotFound(name).to_string());
            return;
        }
        RepositoryStatus::Failed { error } => {
            out(Line::FailedToPlan(name, error).to_string());
            return;
        }
        RepositoryStatus::Done | RepositoryStatus::NotReached => {}
    }
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
