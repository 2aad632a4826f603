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

use super::Lines;
use crate::plan::Verdict;
use crate::registry::{DeleteStatus, RegistryClient, RegistryError};
use crate::report::text::{ItemName, Kind, Line, Reference};
use crate::report::{Item, ManifestReport, Outcome, RepositoryReport, TagReport};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};

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
        out(Line::DeletingIn(Kind::Tags, &repo).to_string());
    }
    let tags = &report.tags;
    let (done, fatal) = attempt_all(
        jobs,
        concurrency,
        |i| delete_tag(client, &repo, &tags[i]),
        |i| Item::Tag(&tags[i]).reference(&host, &repo),
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
    out(Line::DeletingIn(Kind::Manifests, &repo).to_string());
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
                    let reference = Reference {
                        host: &host,
                        repository: &repo,
                        item: ItemName::Digest(&m.digest),
                    };
                    out(Line::Skipped(reference, &why).to_string());
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
            |i| Item::Manifest(&manifests[i]).reference(&host, &repo),
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
/// about `reference(job)`. Returns the outcomes and the error that must stop the run, if any.
async fn attempt_all<'r, F, Fut>(
    jobs: Vec<usize>,
    concurrency: usize,
    attempt: F,
    reference: impl Fn(usize) -> Reference<'r>,
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
    while let Some((i, attempt)) = results.next().await {
        attempt.print(reference(i), out);
        if fatal.is_none() && attempt.error.as_ref().is_some_and(RegistryError::stops_run) {
            fatal = attempt.error;
        }
        done.push((i, attempt.outcome));
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

/// What one deletion attempt did.
struct Attempt {
    /// The unlock sent first (`--include-locked`) and how it went.
    unlock: Option<Result<(), RegistryError>>,
    /// How it ended.
    outcome: Outcome,
    /// The error behind a failed outcome, to tell whether it stops the run.
    error: Option<RegistryError>,
}

impl Attempt {
    fn ended(outcome: Outcome) -> Attempt {
        Attempt {
            unlock: None,
            outcome,
            error: None,
        }
    }

    fn failed(error: RegistryError) -> Attempt {
        Attempt {
            unlock: None,
            outcome: Outcome::Failed {
                error: error.to_string(),
            },
            error: Some(error),
        }
    }

    fn skipped(why: &str) -> Attempt {
        Attempt::ended(Outcome::Skipped {
            why: why.to_string(),
        })
    }

    /// Sends the delete (after `unlock`, if one was sent) and records how it ended.
    fn finish(
        unlock: Option<Result<(), RegistryError>>,
        result: Result<DeleteStatus, RegistryError>,
    ) -> Attempt {
        let attempt = match result {
            Ok(DeleteStatus::Deleted) => Attempt::ended(Outcome::Deleted),
            Ok(DeleteStatus::NotFound) => Attempt::ended(Outcome::AlreadyGone),
            Ok(DeleteStatus::NotAllowed) => Attempt::ended(Outcome::NotAllowed),
            Err(error) => Attempt::failed(error),
        };
        Attempt { unlock, ..attempt }
    }

    /// acr purge's lines for this attempt: the unlock, then the outcome.
    fn print(&self, reference: Reference<'_>, out: Lines<'_>) {
        match &self.unlock {
            Some(Ok(())) => out(Line::Unlocked(reference).to_string()),
            Some(Err(error)) => out(Line::UnlockFailed(reference, &error.to_string()).to_string()),
            None => {}
        }
        out(Line::outcome(reference, &self.outcome).to_string());
    }
}

async fn delete_tag(client: &RegistryClient, repo: &str, tag: &TagReport) -> Attempt {
    let planned = &tag.decision;
    let mut unlock = None;
    match client.tag(repo, &planned.name).await {
        Err(error) => return Attempt::failed(error),
        Ok(None) => return Attempt::ended(Outcome::AlreadyGone),
        Ok(Some(now)) => {
            if now.digest != planned.digest || now.last_update_time != planned.last_update_time {
                return Attempt::skipped("it changed since it was listed");
            }
            if now.changeable_attributes.is_locked() {
                if !planned.unlock {
                    return Attempt::skipped("it was locked since it was listed");
                }
                unlock = Some(client.unlock_tag(repo, &planned.name).await);
            }
        }
    }
    Attempt::finish(unlock, client.delete_tag(repo, &planned.name).await)
}

async fn delete_manifest(
    client: &RegistryClient,
    repo: &str,
    manifest: &ManifestReport,
    tags: &[TagReport],
) -> Attempt {
    let planned = &manifest.decision;
    let mut unlock = None;
    // Tags that may still be on it: those removed with it (cosign signatures).
    let expected: HashSet<&str> = tags
        .iter()
        .filter(|t| t.decision.digest == planned.digest)
        .filter(|t| matches!(t.decision.verdict, Verdict::Cascade { .. }))
        .map(|t| t.decision.name.as_str())
        .collect();
    match client.manifest(repo, &planned.digest).await {
        Err(error) => return Attempt::failed(error),
        Ok(None) => return Attempt::ended(Outcome::AlreadyGone),
        Ok(Some(now)) => {
            if let Some(tag) = now
                .tag_names()
                .iter()
                .find(|t| !expected.contains(t.as_str()))
            {
                return Attempt::skipped(&format!("it was tagged {tag} since it was listed"));
            }
            if now.changeable_attributes.is_locked() {
                if !planned.unlock {
                    return Attempt::skipped("it was locked since it was listed");
                }
                unlock = Some(client.unlock_manifest(repo, &planned.digest).await);
            }
        }
    }
    Attempt::finish(unlock, client.delete_manifest(repo, &planned.digest).await)
}
