//! The repositories side by side: each listed, planned and executed, `--concurrency` at a
//! time (or, under `--max-run-deletions`, all planned before anything is deleted), and
//! reported as it finishes.

use super::audit::{DeletionEvents, MAX_DELETION_EVENTS};
use super::history::record_in_use;
use super::printer::Printer;
use super::stages::{Staged, Stages, execute_stage, plan_stage, process};
use super::tally::Tally;
use super::{OnRepositoryDone, StopSignal};
use crate::plan::{KeepReason, Scope};
use crate::report::storage::{ExactStorage, repository_storage};
use crate::report::text::Line;
use crate::report::{Outcome, RunError, RunRefusal, RunReport};
use futures::StreamExt;
use std::sync::Mutex;

/// Processes every covered repository, `concurrency` at a time, adding each to `report`
/// as it finishes. Returns the run's error, if any.
pub(super) async fn pipeline(
    stages: &Stages<'_>,
    covered: Vec<(String, Scope)>,
    printer: &Mutex<Printer<'_>>,
    report: &mut RunReport,
    finished: OnRepositoryDone<'_>,
    deploy_history: &mut super::gather::DeployHistory,
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
            let (storage, split) = repository_storage(&repo, options.dry_run, exact.is_some());
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
            record_in_use(deploy_history, &repo, &tags, stages.now);
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
        KeepReason::OverRunDeletionLimit(over) => {
            let crate::plan::OverLimit {
                limit,
                count,
                total,
            } = *over;
            Some(RunRefusal {
                limit,
                count,
                total,
            })
        }
        _ => None,
    };
    (staged, refusal, images)
}
