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
//! The deployment history `keepDeployed` ranks by goes in with the options
//! ([`RunOptions::deploy_history`]) and comes back updated with what the run saw in use
//! ([`RunOutput`]), for the durable run to store.
//!
//! Memory stays bounded: a repository's plan is released once it is executed and reported;
//! the run's report keeps counts and at most [`RunReport::MAX_ITEMS`] items.

pub mod audit;
mod catalog;
pub mod execute;
pub mod gather;
mod history;
pub mod inventory;
pub mod journal;
mod options;
mod pipeline;
mod printer;
mod stages;
mod stop;
mod tally;
pub mod tracker;

use crate::policy::Policy;
use crate::registry::RegistryClient;
use crate::report::storage::ExactStorage;
use crate::report::text::Line;
use crate::report::{RepositoryReport, RunReport, Summary};
use catalog::{covered_repositories, untouched_blobs};
use chrono::Utc;
pub use journal::{Journal, JournalError, NoJournal};
pub use options::RunOptions;
use pipeline::pipeline;
use printer::Printer;
use stages::Stages;
use std::sync::Mutex;
pub use stop::StopSignal;
pub use tally::DENIED_REPOSITORIES_TO_STOP;
pub use tracker::{Tracked, Tracker};

/// Where acr purge's text lines go ([`Line`]s, rendered).
pub type Lines<'a> = &'a mut (dyn FnMut(String) + Send);

/// Called with each repository's full report as it finishes, before the run's report
/// trims it (`--output json` streams from here).
pub type OnRepositoryDone<'a> = &'a mut (dyn FnMut(&RepositoryReport) + Send);

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
    finished: OnRepositoryDone<'_>,
) -> RunReport {
    run_journaled(client, policy, options, out, finished, &NoJournal)
        .await
        .report
}

/// What a run returns: its report, and the deployment history it started from
/// ([`RunOptions::deploy_history`]) updated with what it saw in use (a durable run stores
/// it back).
#[derive(Debug)]
pub struct RunOutput {
    /// What the run did.
    pub report: RunReport,
    /// The deployment history after the run.
    pub deploy_history: gather::DeployHistory,
}

/// [`run_with`], recording its progress in `journal`; also returns the updated deployment
/// history.
pub async fn run_journaled(
    client: &RegistryClient,
    policy: &Policy,
    options: &RunOptions,
    out: Lines<'_>,
    finished: OnRepositoryDone<'_>,
    journal: &dyn Journal,
) -> RunOutput {
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
    let mut deploy_history = gather::DeployHistory::clone(&options.deploy_history);
    match covered_repositories(client, policy, options).await {
        Err(error) => report.error = Some(error),
        Ok((covered, catalog)) => 'run: {
            let now = options.reference_time.unwrap_or(started_at);
            let gathered = match gather::gather(
                client.endpoint().host(),
                policy,
                options.sources.as_deref(),
                std::sync::Arc::clone(&options.deploy_history),
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
                gather::FindingsRead::Known(_) => crate::report::findings::FindingsReport::read(),
                gather::FindingsRead::Unknown(why) => {
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
                &mut deploy_history,
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
    RunOutput {
        report,
        deploy_history,
    }
}
