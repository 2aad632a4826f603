//! One purge run: catalog → plan every repository → execute (unless dry run) → report.
//!
//! Every repository is planned before anything is deleted, so a bad filter or a missing
//! permission found while planning deletes nothing at all. A repository whose listing fails
//! for another reason is reported failed (nothing deleted in it) and the others go on.

use crate::events::{DeletionEvents, MAX_DELETION_EVENTS};
use crate::execute::{Lines, execute};
use crate::inventory::plan_repository;
use crate::plan::Scope;
use crate::policy::Policy;
use crate::registry::RegistryClient;
use crate::report::{RepositoryReport, RepositoryStatus, RunReport, Summary};
use chrono::Utc;
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Instrument;

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
            concurrency: 8,
            repository_page_size: 100,
            only: None,
            stop: StopSignal::default(),
        }
    }
}

/// The dry-run banner, as acr purge prints it.
pub const DRY_RUN_BANNER: &str = "DRY RUN: The following output shows what WOULD be deleted if the purge command was executed. Nothing is deleted.";

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
        out(DRY_RUN_BANNER.to_string());
        for repo in &report.repositories {
            print_dry_run(client.endpoint().host(), repo, out);
            events.repository(repo, true);
        }
        // A preview that could not see every repository is incomplete, as a real run
        // would be: it fails the same way (exit 1, HTTP 500).
        let failures = listing_failures(&report.repositories);
        if !failures.is_empty() {
            report.error = Some(format!("partial dry run: {}", failures.join("; ")));
        }
    } else {
        report.error =
            execute_all(client, options, &mut report.repositories, &mut events, out).await;
    }
    events.finish();
    report.finished_at = Utc::now();
    report.summarize(client.stats());
    for line in report.summary_lines() {
        out(line);
    }
    if let Some(error) = &report.error {
        out(format!("Failed to complete purge: {error}"));
    }
    report
}

/// Lists the catalog and plans every covered repository into `report.repositories`.
async fn plan_all(
    client: &RegistryClient,
    policy: &Policy,
    options: &RunOptions,
    report: &mut RunReport,
) -> Result<(), String> {
    let now = Utc::now();
    let catalog = client
        .catalog(options.repository_page_size)
        .await
        .map_err(|e| e.to_string())?;
    let mut covered = Vec::new();
    for name in catalog {
        if options
            .only
            .as_ref()
            .is_some_and(|only| !only.contains(&name))
        {
            continue;
        }
        if let Some(scope) = Scope::new(policy, &name, now).map_err(|e| e.to_string())? {
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
                if error.is_fatal() && fatal.is_none() {
                    fatal = Some(format!("planning {name}: {error}"));
                }
                RepositoryReport::empty(
                    &name,
                    RepositoryStatus::Failed {
                        error: error.to_string(),
                    },
                )
            }
        };
        report.repositories.push(repo);
    }
    if let Some(error) = fatal {
        return Err(format!("{error}; nothing was deleted"));
    }
    let failures = listing_failures(&report.repositories);
    if !failures.is_empty() && failures.len() == report.repositories.len() {
        return Err(format!(
            "every repository failed to list: {}",
            failures.join("; ")
        ));
    }
    Ok(())
}

/// `repository: error` for every repository whose listing or planning failed.
fn listing_failures(repositories: &[RepositoryReport]) -> Vec<String> {
    repositories
        .iter()
        .filter_map(|r| match &r.status {
            RepositoryStatus::Failed { error } => Some(format!("{}: {error}", r.repository)),
            _ => None,
        })
        .collect()
}

/// Executes every planned repository in name order; returns the run's error, if any.
async fn execute_all(
    client: &RegistryClient,
    options: &RunOptions,
    repositories: &mut [RepositoryReport],
    events: &mut DeletionEvents,
    out: Lines<'_>,
) -> Option<String> {
    let mut completed = Vec::new();
    let mut problems = Vec::new();
    for index in 0..repositories.len() {
        if options.stop.is_stopped() {
            let remaining = mark_not_reached(&mut repositories[index..]);
            return Some(format!(
                "stopped before completion (shutting down); completed: [{}]; not reached: [{}]",
                completed.join(", "),
                remaining.join(", ")
            ));
        }
        let repo = &mut repositories[index];
        match &repo.status {
            RepositoryStatus::NotFound => {
                out(format!("{} repository not found", repo.repository));
                continue;
            }
            RepositoryStatus::Failed { error } => {
                problems.push(format!("{}: {error}", repo.repository));
                continue;
            }
            _ => {}
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
            let remaining = mark_not_reached(&mut repositories[index + 1..]);
            let why = if error.is_denied() {
                "insufficient permissions to purge repository"
            } else {
                "stopped while purging repository"
            };
            return Some(format!(
                "{why} {:?}: {error}; completed: [{}]; remaining: [{}]",
                repositories[index].repository,
                completed.join(", "),
                remaining.join(", ")
            ));
        }
        let repo = &repositories[index];
        let failed = repo
            .tags
            .iter()
            .filter_map(|t| t.outcome.as_ref())
            .chain(repo.manifests.iter().filter_map(|m| m.outcome.as_ref()))
            .filter(|o| matches!(o, crate::report::Outcome::Failed { .. }))
            .count();
        if failed > 0 {
            problems.push(format!("{}: {failed} deletion(s) failed", repo.repository));
        }
        completed.push(repo.repository.clone());
    }
    (!problems.is_empty()).then(|| format!("partial purge: {}", problems.join("; ")))
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
            out(format!("{name} repository not found"));
            return;
        }
        RepositoryStatus::Failed { error } => {
            out(format!("Failed to plan repository {name}: {error}"));
            return;
        }
        _ => {}
    }
    let tags: Vec<_> = repo
        .tags
        .iter()
        .filter(|t| t.decision.verdict.is_delete())
        .collect();
    if !tags.is_empty() {
        out(format!("Would delete tags for repository: {name}"));
        for tag in tags {
            out(format!("Would delete: {host}/{name}:{}", tag.decision.name));
        }
    }
    let manifests: Vec<_> = repo
        .manifests
        .iter()
        .filter(|m| m.decision.verdict.is_delete())
        .collect();
    if !manifests.is_empty() {
        out(format!("Would delete manifests for repository: {name}"));
        for manifest in manifests {
            out(format!(
                "Would delete: {host}/{name}@{}",
                manifest.decision.digest
            ));
        }
    }
}
