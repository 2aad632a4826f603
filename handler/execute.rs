//! Carrying out one repository's plan: tags first, then manifests in waves (a parent index
//! or a signed subject before what depends on it), each deletion concurrent up to the
//! client's limit.
//!
//! Every deletion is checked against the registry just before it is sent: a tag that moved
//! to another digest or was re-pushed, or a manifest that gained a tag since it was listed,
//! is skipped, not deleted. A tag deletion that did not succeed keeps its manifest; a
//! parent whose deletion did not succeed keeps its children. A permission error stops the
//! run; any other failure fails just that item.

use crate::plan::Verdict;
use crate::registry::{DeleteStatus, RegistryClient, RegistryError};
use crate::report::{ManifestReport, Outcome, RepositoryReport, TagReport};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};

/// Where execution lines go (acr purge's `Deleted …`, `Skipped …` lines).
pub type Lines<'a> = &'a mut (dyn FnMut(String) + Send);

/// Executes the deletions of `report` (a planned repository) and records their outcomes.
/// Returns the permission error that must stop the run, if one occurred.
pub async fn execute(
    client: &RegistryClient,
    report: &mut RepositoryReport,
    concurrency: usize,
    out: Lines<'_>,
) -> Result<(), RegistryError> {
    let host = client.endpoint().host().to_string();
    let repo = report.repository.clone();
    let has_tag_work = report.tags.iter().any(|t| t.decision.verdict.is_delete());
    if has_tag_work {
        out(format!("Deleting tags for repository: {repo}"));
    }
    let mut fatal = None;
    let jobs: Vec<usize> = (0..report.tags.len())
        .filter(|&i| report.tags[i].decision.verdict.is_delete())
        .collect();
    let mut results = futures::stream::iter(jobs)
        .map(|i| {
            let tag = &report.tags[i];
            let repo = repo.as_str();
            async move { (i, delete_tag(client, repo, tag).await) }
        })
        .buffer_unordered(concurrency.max(1));
    let mut done = Vec::new();
    while let Some((i, (outcome, lines, error))) = results.next().await {
        let name = &report.tags[i].decision.name;
        for line in lines {
            out(line.replace("{ref}", &format!("{host}/{repo}:{name}")));
        }
        if error.as_ref().is_some_and(RegistryError::is_denied) {
            fatal = error;
        }
        done.push((i, outcome));
    }
    drop(results);
    for (i, outcome) in done {
        report.tags[i].outcome = Some(outcome);
    }
    if let Some(error) = fatal {
        return Err(error);
    }

    let deletions: Vec<usize> = (0..report.manifests.len())
        .filter(|&i| report.manifests[i].decision.verdict.is_delete())
        .collect();
    if deletions.is_empty() {
        return Ok(());
    }
    out(format!("Deleting manifests for repository: {repo}"));
    let untag_failures = untag_failures(&report.tags);
    let mut finished: HashMap<String, bool> = HashMap::new();
    let mut pending: Vec<usize> = deletions;
    while !pending.is_empty() {
        let (ready, later): (Vec<usize>, Vec<usize>) = pending.iter().partition(|&&i| {
            report.manifests[i]
                .decision
                .after
                .iter()
                .all(|d| finished.contains_key(d) || !is_pending(report, &pending, d))
        });
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
        let mut results = futures::stream::iter(runnable)
            .map(|i| {
                let manifest = &report.manifests[i];
                let tags = &report.tags;
                let repo = repo.as_str();
                async move { (i, delete_manifest(client, repo, manifest, tags).await) }
            })
            .buffer_unordered(concurrency.max(1));
        let mut done = Vec::new();
        while let Some((i, (outcome, lines, error))) = results.next().await {
            let digest = &report.manifests[i].decision.digest;
            for line in lines {
                out(line.replace("{ref}", &format!("{host}/{repo}@{digest}")));
            }
            if error.as_ref().is_some_and(RegistryError::is_denied) {
                fatal = error;
            }
            done.push((i, outcome));
        }
        drop(results);
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

fn is_pending(report: &RepositoryReport, pending: &[usize], digest: &str) -> bool {
    pending
        .iter()
        .any(|&i| report.manifests[i].decision.digest == digest)
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
