//! Carrying out one repository's plan: tags first, then manifests in waves (a parent index
//! or a signed subject before what depends on it). Twice `concurrency` deletions are under
//! way at once, so that while `concurrency` deletes are in flight (the client's limit per
//! category) the next ones are being verified.
//!
//! Request economy: an image whose every tag is deleted and which the rule then deletes as
//! untagged is removed with one manifest DELETE (the registry removes its tags with it)
//! instead of untagging each tag first. It is verified with one read just before, and its
//! lines, counts and report still name each tag as deleted, as acr purge reports them. Only
//! images that nothing must precede (no parent index deleted in this run) and that need no
//! unlocking are deleted whole; the others go the long way.
//!
//! Every deletion is checked against the registry just before it is sent, and "just
//! before" holds under any rate card: a job first waits for its DELETE's slot in the
//! pacer, then reads the item, then sends the DELETE at once (no second wait in between;
//! [`RegistryClient::delete_tag`] runs the check after the slot, and again before any
//! retry). Waiting for the slot after the read instead would leave a push that lands during
//! the wait (seconds under the Standard card) to be deleted with the image. A tag that moved
//! to another digest or was re-pushed, or a manifest that gained a tag since it was listed,
//! is skipped, not deleted (an image deleted whole is skipped entirely when any of its tags
//! changed). A tag deletion that did not succeed keeps its manifest; a parent whose
//! deletion did not succeed keeps its children. A permission error, or a registry that
//! stopped answering (the transport's circuit breaker), ends the repository and is returned;
//! any other failure fails just that item. Once `stop` is set, no further deletion starts.

use super::{Lines, StopSignal};

/// Whether the run is stopping (checked before each deletion starts).
pub type Stopping<'a> = &'a (dyn Fn() -> bool + Sync);
use super::inventory::add_bodies;
use crate::model::Digest;
use crate::plan::{Body, Verdict};
use crate::registry::{DeleteStatus, Precheck, RegistryClient, RegistryError};
use crate::report::text::{ItemName, Kind, Line, Reference};
use crate::report::{BlobIndex, Item, ManifestReport, Outcome, RepositoryReport, TagReport};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

/// Executes the deletions of `report` (a planned repository) and records their outcomes.
/// Returns the error that must stop the repository (see [`RegistryError::stops_run`]), if
/// one occurred.
pub async fn execute(
    client: &RegistryClient,
    report: &mut RepositoryReport,
    concurrency: usize,
    stop: Stopping<'_>,
    out: Lines<'_>,
) -> Result<(), RegistryError> {
    let host = client.endpoint().host().to_string();
    let repo = report.repository.clone();
    let whole = images_deleted_whole(report);
    let folded_tags: HashSet<usize> = whole.values().flatten().copied().collect();
    let mut jobs: Vec<Job> = (0..report.tags.len())
        .filter(|i| report.tags[*i].decision.verdict.is_delete() && !folded_tags.contains(i))
        .map(Job::Tag)
        .collect();
    let mut images: Vec<(&usize, &Vec<usize>)> = whole.iter().collect();
    images.sort();
    jobs.extend(
        images
            .into_iter()
            .map(|(&m, tags)| Job::Image(m, tags.clone())),
    );
    if !jobs.is_empty() {
        out(Line::DeletingIn(Kind::Tags, &repo).to_string());
    }
    let reads = storage_reads(report);
    let (tags, manifests, reads) = (&report.tags, &report.manifests, &reads);
    let name = repo.as_str();
    let (done, fatal) = attempt_all(
        jobs,
        concurrency,
        stop,
        |job| async move {
            match job {
                Job::Tag(t) => delete_tag(client, name, &tags[t], stop).await,
                Job::Image(m, ts) => {
                    let manifest = &manifests[m];
                    let bodies = read_for_storage(client, name, reads, manifest).await;
                    let planned: Vec<&TagReport> = ts.iter().map(|&t| &tags[t]).collect();
                    let attempt = delete_image(client, name, manifest, &planned, stop).await;
                    Attempt { bodies, ..attempt }
                }
            }
        },
        |job, attempt| match job {
            Job::Tag(t) => attempt.print(Item::Tag(&tags[*t]).reference(&host, &repo), out),
            Job::Image(_, ts) => {
                for (&t, outcome) in ts.iter().zip(&attempt.tag_outcomes) {
                    let reference = Item::Tag(&tags[t]).reference(&host, &repo);
                    out(Line::outcome(reference, outcome).to_string());
                }
            }
        },
    )
    .await;
    let mut finished: HashMap<Digest, bool> = HashMap::new();
    let mut whole_done = Vec::new();
    for (job, mut attempt) in done {
        add_read_bodies(&mut report.blobs, &mut attempt);
        match job {
            Job::Tag(t) => report.tags[t].outcome = Some(attempt.outcome),
            Job::Image(m, ts) => {
                for (t, outcome) in ts.into_iter().zip(attempt.tag_outcomes) {
                    report.tags[t].outcome = Some(outcome);
                }
                let manifest = &mut report.manifests[m];
                finished.insert(manifest.decision.digest.clone(), attempt.outcome.is_gone());
                manifest.outcome = Some(attempt.outcome);
                whole_done.push(m);
            }
        }
    }
    if let Some(error) = fatal {
        return Err(error);
    }

    let mut pending: Vec<usize> = (0..report.manifests.len())
        .filter(|&i| report.manifests[i].decision.verdict.is_delete())
        .filter(|&i| report.manifests[i].outcome.is_none())
        .collect();
    if pending.is_empty() && whole_done.is_empty() {
        return Ok(());
    }
    out(Line::DeletingIn(Kind::Manifests, &repo).to_string());
    whole_done.sort();
    for m in whole_done {
        let manifest = &report.manifests[m];
        if let Some(outcome) = &manifest.outcome {
            let reference = Item::Manifest(manifest).reference(&host, &repo);
            out(Line::outcome(reference, outcome).to_string());
        }
    }
    let untag_failures = untag_failures(&report.tags);
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
                    why: Box::new("its dependencies form a cycle".to_string()),
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
                    let why = Box::new(why);
                    report.manifests[i].outcome = Some(Outcome::Skipped { why });
                }
                None => runnable.push(i),
            }
        }
        let (manifests, tags, reads) = (&report.manifests, &report.tags, &reads);
        let name = repo.as_str();
        let (done, fatal) = attempt_all(
            runnable,
            concurrency,
            stop,
            |i| async move {
                let manifest = &manifests[i];
                let bodies = read_for_storage(client, name, reads, manifest).await;
                let attempt = delete_manifest(client, name, manifest, tags, stop).await;
                Attempt { bodies, ..attempt }
            },
            |&i, attempt| attempt.print(Item::Manifest(&manifests[i]).reference(&host, &repo), out),
        )
        .await;
        for (i, mut attempt) in done {
            add_read_bodies(&mut report.blobs, &mut attempt);
            finished.insert(
                report.manifests[i].decision.digest.clone(),
                attempt.outcome.is_gone(),
            );
            report.manifests[i].outcome = Some(attempt.outcome);
        }
        if let Some(error) = fatal {
            return Err(error);
        }
        pending = later;
    }
    Ok(())
}

/// One deletion of the tag phase.
#[derive(Debug, Clone)]
enum Job {
    /// Untag the tag at this index.
    Tag(usize),
    /// Delete the manifest at this index whole, with the tags at these indexes.
    Image(usize, Vec<usize>),
}

/// Manifest index → tag indexes, for every image that is deleted whole: a manifest the plan
/// deletes as untagged once all its tags are deleted, that must not wait for another
/// deletion (`after` is empty), and where neither it nor any of its tags is locked (the
/// long way unlocks each one).
fn images_deleted_whole(report: &RepositoryReport) -> HashMap<usize, Vec<usize>> {
    let by_name: HashMap<&str, usize> = report
        .tags
        .iter()
        .enumerate()
        .map(|(i, t)| (t.decision.name.as_str(), i))
        .collect();
    let mut whole = HashMap::new();
    for (m, manifest) in report.manifests.iter().enumerate() {
        let d = &manifest.decision;
        if !d.verdict.is_delete()
            || !d.after.is_empty()
            || d.locked
            || d.unlock
            || d.tags.is_empty()
        {
            continue;
        }
        let tags: Option<Vec<usize>> = d
            .tags
            .iter()
            .map(|name| {
                let &t = by_name.get(name.as_str())?;
                let tag = &report.tags[t].decision;
                let ok =
                    tag.verdict.is_delete() && tag.digest == d.digest && !tag.locked && !tag.unlock;
                ok.then_some(t)
            })
            .collect();
        if let Some(tags) = tags {
            whole.insert(m, tags);
        }
    }
    whole
}

/// Runs `attempt` for every job, `concurrency` at a time, calling `print` as each ends.
/// Once `stop` is set, the jobs not yet started are skipped. Returns the outcomes and the
/// error that must stop the repository, if any (jobs after it are skipped too).
async fn attempt_all<J: Clone, F, Fut>(
    jobs: Vec<J>,
    concurrency: usize,
    stop: Stopping<'_>,
    attempt: F,
    mut print: impl FnMut(&J, &Attempt),
) -> (Vec<(J, Attempt)>, Option<RegistryError>)
where
    F: Fn(J) -> Fut,
    Fut: std::future::Future<Output = Attempt>,
{
    let halted = StopSignal::default();
    // Each job is a read then a delete: twice the jobs keep both kinds of request busy.
    let concurrency = concurrency.max(1) * 2;
    let attempt = &attempt;
    let halted_ref = &halted;
    let mut results = futures::stream::iter(jobs)
        .map(|job| async move {
            let result = if stop() || halted_ref.is_stopped() {
                Attempt::ended(Outcome::Stopped)
            } else {
                attempt(job.clone()).await
            };
            (job, result)
        })
        .buffer_unordered(concurrency.max(1));
    let mut done = Vec::new();
    let mut fatal = None;
    while let Some((job, attempt)) = results.next().await {
        if !attempt.was_stopped() {
            print(&job, &attempt);
        }
        if fatal.is_none() && attempt.error.as_ref().is_some_and(RegistryError::stops_run) {
            fatal = attempt.error.clone();
            halted.stop();
        }
        done.push((job, attempt));
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
    /// For an image deleted whole: how each of its tags ended, in the job's order.
    tag_outcomes: Vec<Outcome>,
    /// The error behind a failed outcome, to tell whether it stops the run.
    error: Option<RegistryError>,
    /// Bodies read for the storage figures before the DELETE.
    bodies: HashMap<String, Body>,
}

impl Attempt {
    fn ended(outcome: Outcome) -> Attempt {
        Attempt {
            unlock: None,
            outcome,
            tag_outcomes: Vec::new(),
            error: None,
            bodies: HashMap::new(),
        }
    }

    fn failed(error: RegistryError) -> Attempt {
        Attempt {
            error: Some(error.clone()),
            ..Attempt::ended(Outcome::Failed {
                error: Box::new(error.to_string()),
            })
        }
    }

    /// Whether it was not attempted because the run or repository was stopping (no line
    /// is printed for those).
    fn was_stopped(&self) -> bool {
        matches!(self.outcome, Outcome::Stopped)
    }

    fn skipped(why: &str) -> Attempt {
        Attempt::ended(Outcome::Skipped {
            why: Box::new(why.to_string()),
        })
    }

    /// How a verified delete ended: the check's own outcome when it sent nothing, else the
    /// DELETE's (after `unlock`, if one was sent).
    fn settle(
        unlock: Option<Result<(), RegistryError>>,
        sent: Result<Result<DeleteStatus, Attempt>, RegistryError>,
    ) -> Attempt {
        let attempt = match sent {
            Ok(Err(aborted)) => aborted,
            Ok(Ok(DeleteStatus::Deleted)) => Attempt::ended(Outcome::Deleted),
            Ok(Ok(DeleteStatus::NotFound)) => Attempt::ended(Outcome::AlreadyGone),
            Ok(Ok(DeleteStatus::NotAllowed)) => Attempt::ended(Outcome::NotAllowed),
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

/// Untags one tag: verified (unchanged, and unlocked first when the plan says so) once its
/// delete slot is taken, then deleted at once.
async fn delete_tag(
    client: &RegistryClient,
    repo: &str,
    tag: &TagReport,
    stop: Stopping<'_>,
) -> Attempt {
    let planned = &tag.decision;
    let unlock = Mutex::new(None);
    let unlocked = &unlock;
    let sent = client
        .delete_tag(repo, &planned.name, move || {
            Box::pin(async move {
                if stop() {
                    return Ok(Precheck::Abort(Attempt::ended(Outcome::Stopped)));
                }
                let Some(now) = client.tag(repo, &planned.name).await? else {
                    return Ok(Precheck::Abort(Attempt::ended(Outcome::AlreadyGone)));
                };
                if now.digest != planned.digest || now.last_update_time != planned.last_update_time
                {
                    let why = "it changed since it was listed";
                    return Ok(Precheck::Abort(Attempt::skipped(why)));
                }
                if now.changeable_attributes.is_locked() {
                    if !planned.unlock {
                        let why = "it was locked since it was listed";
                        return Ok(Precheck::Abort(Attempt::skipped(why)));
                    }
                    let result = client.unlock_tag(repo, &planned.name).await;
                    *lock(unlocked) = Some(result);
                }
                Ok(Precheck::Send)
            })
        })
        .await;
    Attempt::settle(
        unlock.into_inner().unwrap_or_else(PoisonError::into_inner),
        sent,
    )
}

/// Deletes an image whole: once its delete slot is taken, one read of the tags on its
/// manifest (each must be one of `tags`, unchanged and unlocked; a planned tag that is gone
/// already counts as gone), then at once one manifest DELETE. The tags share the
/// manifest's outcome.
async fn delete_image(
    client: &RegistryClient,
    repo: &str,
    manifest: &ManifestReport,
    tags: &[&TagReport],
    stop: Stopping<'_>,
) -> Attempt {
    let digest = &manifest.decision.digest;
    let planned: HashMap<&str, &TagReport> = tags
        .iter()
        .map(|t| (t.decision.name.as_str(), *t))
        .collect();
    let present = Mutex::new(HashSet::new());
    let (seen, planned) = (&present, &planned);
    let sent = client
        .delete_manifest(repo, digest, move || {
            Box::pin(async move {
                if stop() {
                    return Ok(Precheck::Abort(Attempt::ended(Outcome::Stopped)));
                }
                let now = client.tags_of_manifest(repo, digest).await?;
                let mut names = HashSet::new();
                for tag in now.unwrap_or_default() {
                    let why = match planned.get(tag.name.as_str()) {
                        None => Some(format!("it was tagged {} since it was listed", tag.name)),
                        Some(p) if p.decision.last_update_time != tag.last_update_time => {
                            Some(format!("its tag {} changed since it was listed", tag.name))
                        }
                        Some(_) if tag.changeable_attributes.is_locked() => Some(format!(
                            "its tag {} was locked since it was listed",
                            tag.name
                        )),
                        Some(_) => None,
                    };
                    if let Some(why) = why {
                        return Ok(Precheck::Abort(Attempt::skipped(&why)));
                    }
                    names.insert(tag.name);
                }
                *lock(seen) = names;
                Ok(Precheck::Send)
            })
        })
        .await;
    let sent_delete = matches!(sent, Ok(Ok(_)));
    let present = present.into_inner().unwrap_or_else(PoisonError::into_inner);
    let attempt = Attempt::settle(None, sent);
    let present: HashSet<usize> = tags
        .iter()
        .enumerate()
        .filter(|(_, t)| sent_delete && present.contains(&t.decision.name))
        .map(|(i, _)| i)
        .collect();
    attempt.for_tags(tags.len(), &present)
}

impl Attempt {
    /// Gives `count` tags of an image deleted whole their outcomes: the manifest's, except
    /// that a tag already gone before the delete (not in `present`) counts as already gone,
    /// as a 404 on its own delete would.
    fn for_tags(mut self, count: usize, present: &HashSet<usize>) -> Attempt {
        self.tag_outcomes = (0..count)
            .map(|i| {
                if self.outcome.is_gone() && !present.contains(&i) {
                    Outcome::AlreadyGone
                } else {
                    self.outcome.clone()
                }
            })
            .collect();
        self
    }
}

/// Deletes one manifest: verified (no tag but those removed with it, and unlocked first
/// when the plan says so) once its delete slot is taken, then deleted at once.
async fn delete_manifest(
    client: &RegistryClient,
    repo: &str,
    manifest: &ManifestReport,
    tags: &[TagReport],
    stop: Stopping<'_>,
) -> Attempt {
    let planned = &manifest.decision;
    let unlock = Mutex::new(None);
    let unlocked = &unlock;
    // Tags that may still be on it: those removed with it (cosign signatures).
    let expected: HashSet<&str> = tags
        .iter()
        .filter(|t| t.decision.digest == planned.digest)
        .filter(|t| matches!(t.decision.verdict, Verdict::Cascade { .. }))
        .map(|t| t.decision.name.as_str())
        .collect();
    let expected = &expected;
    let sent = client
        .delete_manifest(repo, &planned.digest, move || {
            Box::pin(async move {
                if stop() {
                    return Ok(Precheck::Abort(Attempt::ended(Outcome::Stopped)));
                }
                let Some(now) = client.manifest(repo, &planned.digest).await? else {
                    return Ok(Precheck::Abort(Attempt::ended(Outcome::AlreadyGone)));
                };
                if let Some(tag) = now
                    .tag_names()
                    .iter()
                    .find(|t| !expected.contains(t.as_str()))
                {
                    let why = format!("it was tagged {tag} since it was listed");
                    return Ok(Precheck::Abort(Attempt::skipped(&why)));
                }
                if now.changeable_attributes.is_locked() {
                    if !planned.unlock {
                        let why = "it was locked since it was listed";
                        return Ok(Precheck::Abort(Attempt::skipped(why)));
                    }
                    let result = client.unlock_manifest(repo, &planned.digest).await;
                    *lock(unlocked) = Some(result);
                }
                Ok(Precheck::Send)
            })
        })
        .await;
    Attempt::settle(
        unlock.into_inner().unwrap_or_else(PoisonError::into_inner),
        sent,
    )
}

/// For the storage figures: each manifest a job deletes → the bodies not read yet that it
/// must read before its DELETE (its own, and those of the manifests the registry removes
/// with it, transitively). Empty when the figures are not counted.
fn storage_reads(report: &RepositoryReport) -> HashMap<String, Vec<String>> {
    let Some(index) = &report.blobs else {
        return HashMap::new();
    };
    let mut removed_with: HashMap<&str, Vec<&str>> = HashMap::new();
    for m in &report.manifests {
        if let Verdict::Cascade { via } = &m.decision.verdict {
            removed_with
                .entry(via.as_str())
                .or_default()
                .push(m.decision.digest.as_str());
        }
    }
    let mut reads = HashMap::new();
    for m in report
        .manifests
        .iter()
        .filter(|m| m.decision.verdict.is_delete())
    {
        let mut seen = HashSet::new();
        let mut queue = vec![m.decision.digest.as_str()];
        let mut digests = Vec::new();
        while let Some(digest) = queue.pop() {
            if !seen.insert(digest) {
                continue;
            }
            if index.unread.contains(digest) {
                digests.push(digest.to_string());
            }
            queue.extend(removed_with.get(digest).into_iter().flatten().copied());
        }
        if !digests.is_empty() {
            reads.insert(m.decision.digest.to_string(), digests);
        }
    }
    reads
}

/// Reads the bodies `manifest`'s deletion removes, for the storage figures, before its
/// deletion waits for its slot (a body never changes for its digest, so reading it early is
/// safe; reads are plentiful beside deletes). A failed read leaves the body unread.
async fn read_for_storage(
    client: &RegistryClient,
    repo: &str,
    reads: &HashMap<String, Vec<String>>,
    manifest: &ManifestReport,
) -> HashMap<String, Body> {
    let Some(digests) = reads.get(manifest.decision.digest.as_str()) else {
        return HashMap::new();
    };
    let bodies = digests
        .iter()
        .map(|digest| async move { (digest.clone(), client.manifest_body(repo, digest).await) });
    let mut read = HashMap::new();
    for (digest, body) in futures::future::join_all(bodies).await {
        match body {
            Ok(body) => {
                read.insert(digest, body.map_or(Body::Missing, Body::Found));
            }
            Err(error) => {
                tracing::warn!(%error, repo, "reading a manifest for the storage figures failed")
            }
        }
    }
    read
}

/// Adds the bodies an attempt read to the repository's storage index.
fn add_read_bodies(blobs: &mut Option<BlobIndex>, attempt: &mut Attempt) {
    if let Some(index) = blobs.as_mut() {
        add_bodies(index, std::mem::take(&mut attempt.bodies));
    }
}

/// Locks what a check records; a poisoned lock still holds the value last written.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
