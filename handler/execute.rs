//! Carrying out one repository's plan: tags first, then manifests in waves (a parent index
//! or a signed subject before what depends on it), each deletion concurrent up to the
//! client's limit.
//!
//! Every deletion is checked against the registry just before it is sent: a tag that moved
//! to another digest or was re-pushed, or a manifest that gained a tag since it was listed,
//! is skipped, not deleted. A tag deletion that did not succeed keeps its manifest; a
//! parent whose deletion did not succeed keeps its children. A permission error, or a
//! registry that stopped answering (the transport's circuit breaker), stops the run; any
//! other failure fails just that item.

use crate::plan::Verdict;
use crate::registry::{DeleteStatus, RegistryClient, RegistryError};
use crate::report::{ManifestReport, Outcome, RepositoryReport, TagReport};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};

/// Where execution lines go (acr purge's `Deleted …`, `Skipped …` lines).
pub type Lines<'a> = &'a mut (dyn FnMut(String) + Send);

/// Executes the deletions of `report` (a planned repository) and records their outcomes.
/// Returns the error that must stop the run (see [`RegistryError::stops_run`]), if one
/// occurred.
pub async fn execute(
    client: &RegistryClient,
    report: &mut RepositoryReport,
    concurrency: usize,
    out: Lines<'_>,
) -> Result<(), RegistryError> {
    let host = client.endpoint().host().to_string();
    let repo = report.repository.clone();
    let jobs: Vec<usize> = (0..report.tags.len())
        .filter(|&i| report.tags[i].decision.verdict.is_delete())
        .collect();
    if !jobs.is_empty() {
        out(format!("Deleting tags for repository: {repo}"));
    }
    let tags = &report.tags;
    let (done, fatal) = attempt_all(
        jobs,
        concurrency,
        |i| delete_tag(client, &repo, &tags[i]),
        |i| format!("{host}/{repo}:{}", tags[i].decision.name),
        out,
    )
    .await;
    for (i, outcome) in done {
        report.tags[i].outcome = Some(outcome);
    }
    if let Some(error) = fatal {
        return Err(error);
    }

    let mut pending: Vec<usize> = (0..report.manifests.len())
        .filter(|&i| report.manifests[i].decision.verdict.is_delete())
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    out(format!("Deleting manifests for repository: {repo}"));
    let untag_failures = untag_failures(&report.tags);
    let mut finished: HashMap<String, bool> = HashMap::new();
    while !pending.is_empty() {
        let waiting: HashSet<&str> = pending
            .iter()
            .map(|&i| report.manifests[i].decision.digest.as_str())
            .collect();
        let (ready, later): (Vec<usize>, Vec<usize>) = pending.iter().partition(|&&i| {
            report.manifests[i]
                .decision
                .after
                .iter()
                .all(|d| finished.contains_key(d) || !waiting.contains(d.as_str()))
        });
        drop(waiting);
        if ready.is_empty() {
            for i in later {
                report.manifests[i].outcome = Some(Outcome::Skipped {
                    why: "its dependencies form a cycle".to_string(),
                });
            }
            break;
        }
        let mut runnable = Vec::new();
        for i in ready {
            let m = &report.manifests[i].decision;
            let blocker = m
                .after
                .iter()
                .find(|d| finished.get(*d) == Some(&false))
                .map(|d| format!("{d} was not deleted"))
                .or_else(|| {
                    untag_failures
                        .get(m.digest.as_str())
                        .map(|t| format!("tag {t} was not deleted"))
                });
            match blocker {
                Some(why) => {
                    out(format!("Skipped {host}/{repo}@{}, {why}", m.digest));
                    finished.insert(m.digest.clone(), false);
                    report.manifests[i].outcome = Some(Outcome::Skipped { why });
                }
                None => runnable.push(i),
            }
        }
        let (manifests, tags) = (&report.manifests, &report.tags);
        let (done, fatal) = attempt_all(
            runnable,
            concurrency,
            |i| delete_manifest(client, &repo, &manifests[i], tags),
            |i| format!("{host}/{repo}@{}", manifests[i].decision.digest),
            out,
        )
        .await;
        for (i, outcome) in done {
            finished.insert(
                report.manifests[i].decision.digest.clone(),
                outcome.is_gone(),
            );
            report.manifests[i].outcome = Some(outcome);
        }
        if let Some(error) = fatal {
            return Err(error);
        }
        pending = later;
    }
    Ok(())
}

/// Runs `attempt` for every job, `concurrency` at a time, printing each attempt's lines
/// with `{ref}` replaced by `reference(job)`. Returns the outcomes and the permission error
/// that must stop the run, if any.
async fn attempt_all<F, Fut>(
    jobs: Vec<usize>,
    concurrency: usize,
    attempt: F,
    reference: impl Fn(usize) -> String,
    out: Lines<'_>,
) -> (Vec<(usize, Outcome)>, Option<RegistryError>)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Attempt>,
{
    let mut results = futures::stream::iter(jobs)
        .map(|i| {
            let future = attempt(i);
            async move { (i, future.await) }
        })
        .buffer_unordered(concurrency.max(1));
    let mut done = Vec::new();
    let mut fatal = None;
    while let Some((i, (outcome, lines, error))) = results.next().await {
        let name = reference(i);
        for line in lines {
            out(line.replace("{ref}", &name));
        }
        if fatal.is_none() && error.as_ref().is_some_and(RegistryError::stops_run) {
            fatal = error;
        }
        done.push((i, outcome));
    }
    (done, fatal)
}

/// Digest → a tag on it whose planned deletion did not happen.
fn untag_failures(tags: &[TagReport]) -> HashMap<&str, &str> {
    tags.iter()
        .filter(|t| t.decision.verdict.is_delete())
        .filter(|t| !t.outcome.as_ref().is_some_and(Outcome::is_gone))
        .map(|t| (t.decision.digest.as_str(), t.decision.name.as_str()))
        .collect()
}

/// Lines use `{ref}` for `host/repo:tag` or `host/repo@digest`, filled in by the caller.
type Attempt = (Outcome, Vec<String>, Option<RegistryError>);

async fn delete_tag(client: &RegistryClient, repo: &str, tag: &TagReport) -> Attempt {
    let planned = &tag.decision;
    let mut lines = Vec::new();
    match client.tag(repo, &planned.name).await {
        Err(error) => return failed(error, lines),
        Ok(None) => return gone(lines),
        Ok(Some(now)) => {
            if now.digest != planned.digest || now.last_update_time != planned.last_update_time {
                return skipped("it changed since it was listed", lines);
            }
            if now.changeable_attributes.is_locked() {
                if !planned.unlock {
                    return skipped("it was locked since it was listed", lines);
                }
                unlock(client.unlock_tag(repo, &planned.name).await, &mut lines);
            }
        }
    }
    finish(client.delete_tag(repo, &planned.name).await, lines)
}

async fn delete_manifest(
    client: &RegistryClient,
    repo: &str,
    manifest: &ManifestReport,
    tags: &[TagReport],
) -> Attempt {
    let planned = &manifest.decision;
    let mut lines = Vec::new();
    // Tags that may still be on it: those removed with it (cosign signatures).
    let expected: HashSet<&str> = tags
        .iter()
        .filter(|t| t.decision.digest == planned.digest)
        .filter(|t| matches!(t.decision.verdict, Verdict::Cascade { .. }))
        .map(|t| t.decision.name.as_str())
        .collect();
    match client.manifest(repo, &planned.digest).await {
        Err(error) => return failed(error, lines),
        Ok(None) => return gone(lines),
        Ok(Some(now)) => {
            if let Some(tag) = now
                .tag_names()
                .iter()
                .find(|t| !expected.contains(t.as_str()))
            {
                return skipped(&format!("it was tagged {tag} since it was listed"), lines);
            }
            if now.changeable_attributes.is_locked() {
                if !planned.unlock {
                    return skipped("it was locked since it was listed", lines);
                }
                unlock(
                    client.unlock_manifest(repo, &planned.digest).await,
                    &mut lines,
                );
            }
        }
    }
    finish(client.delete_manifest(repo, &planned.digest).await, lines)
}

fn unlock(result: Result<(), RegistryError>, lines: &mut Vec<String>) {
    match result {
        Ok(()) => lines.push("Unlocked {ref}".to_string()),
        Err(error) => lines.push(format!(
            "Warning: Failed to unlock {{ref}}, error: {error}. Will attempt deletion anyway."
        )),
    }
}

fn finish(result: Result<DeleteStatus, RegistryError>, mut lines: Vec<String>) -> Attempt {
    match result {
        Ok(DeleteStatus::Deleted) => {
            lines.push("Deleted {ref}".to_string());
            (Outcome::Deleted, lines, None)
        }
        Ok(DeleteStatus::NotFound) => gone(lines),
        Ok(DeleteStatus::NotAllowed) => {
            lines.push("Skipped {ref}, operation not allowed, HTTP status: 405".to_string());
            (Outcome::NotAllowed, lines, None)
        }
        Err(error) => failed(error, lines),
    }
}

fn gone(mut lines: Vec<String>) -> Attempt {
    lines.push("Skipped {ref}, HTTP status: 404".to_string());
    (Outcome::AlreadyGone, lines, None)
}

fn skipped(why: &str, mut lines: Vec<String>) -> Attempt {
    lines.push(format!("Skipped {{ref}}, {why}"));
    (
        Outcome::Skipped {
            why: why.to_string(),
        },
        lines,
        None,
    )
}

fn failed(error: RegistryError, mut lines: Vec<String>) -> Attempt {
    lines.push(format!("Failed to delete {{ref}}, error: {error}"));
    (
        Outcome::Failed {
            error: error.to_string(),
        },
        lines,
        Some(error),
    )
}
