//! What the run store keeps, as JSON: a record per run, the checkpoint of a registry's
//! unfinished run, one audit line per deletion attempt, and who holds a registry's lease.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunStatus {
    /// Accepted by the webhook and waiting for its instance's turn: nothing has begun (the
    /// run's own record replaces this one when it begins).
    Queued,
    /// An invocation is working on it.
    Running,
    /// Its invocation died without saying how it ended (killed, out of disk, its lease
    /// lost): recorded on the invocation when a later one resumes the run, and shown for
    /// the run while it has not been resumed (its lease is gone, see
    /// `RunStore::records`). The next real run of the same policy resumes it.
    Interrupted,
    /// It stopped before its deadline (or on shutdown) with a checkpoint; the next run of
    /// the same policy resumes it.
    Incomplete,
    /// Done, everything planned was carried out.
    Succeeded,
    /// Done, but it failed or was partial (its error says why).
    Failed,
    /// Not run: another run held the registry's lease.
    Skipped,
}

impl RunStatus {
    /// The camelCase name.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Incomplete => "incomplete",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
        }
    }
}

/// Counts of what a run (or one invocation of it) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Tags deleted (or to be deleted, in a dry run).
    pub tags_deleted: u64,
    /// Manifests deleted (or to be deleted, in a dry run).
    pub manifests_deleted: u64,
    /// Deletions that failed.
    pub failed: u64,
    /// Deletions skipped at execution (changed since listed, 405, failed dependency).
    pub skipped: u64,
    /// Repositories completed.
    pub repositories: u64,
}

impl Counts {
    /// Counts one audit line in: a deletion (`deleted`, `alreadyGone`) by its kind, a
    /// failure, or a skip (`skipped`, `notAllowed`).
    pub fn add_audit(&mut self, line: &AuditLine) {
        match (line.outcome.as_str(), line.kind.as_str()) {
            ("deleted" | "alreadyGone", "tag") => self.tags_deleted += 1,
            ("deleted" | "alreadyGone", _) => self.manifests_deleted += 1,
            ("failed", _) => self.failed += 1,
            _ => self.skipped += 1,
        }
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: &Counts) {
        self.tags_deleted += other.tags_deleted;
        self.manifests_deleted += other.manifests_deleted;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.repositories += other.repositories;
    }
}

/// One process's part of a run: the first, or one that resumed it from its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    /// What started it (`timer`, `webhook`, `cli`).
    pub trigger: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended (`None` while running, or if it died).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// The checkpoint it resumed from (when the previous invocation wrote it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<DateTime<Utc>>,
    /// How it ended.
    pub status: RunStatus,
    /// What it did.
    #[serde(default)]
    pub counts: Counts,
    /// Why it failed or stopped, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunRecord {
    /// Marks the invocations still `running` as [`RunStatus::Interrupted`], and the run too
    /// if it was `running`: their process is gone (the registry's lease says so).
    pub fn mark_interrupted(&mut self, why: &str) {
        for invocation in &mut self.invocations {
            if invocation.status == RunStatus::Running {
                invocation.status = RunStatus::Interrupted;
                invocation.error.get_or_insert_with(|| why.to_string());
            }
        }
        if self.status == RunStatus::Running {
            self.status = RunStatus::Interrupted;
            self.error.get_or_insert_with(|| why.to_string());
        }
    }
}

/// A run's record: `runs/{id}/record.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// The run id.
    pub id: String,
    /// The registry's login server.
    pub registry: String,
    /// What started the run (its first invocation's trigger).
    pub trigger: String,
    /// The digest of the policy it runs (a resumed run runs the same one).
    pub policy_digest: String,
    /// Whether it deletes nothing.
    pub dry_run: bool,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// How it stands.
    pub status: RunStatus,
    /// What all its invocations did together.
    #[serde(default)]
    pub summary: Counts,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a skipped run: the run that held the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// Its invocations, oldest first; the second and later resumed from a checkpoint.
    pub invocations: Vec<Invocation>,
}

/// Where an unfinished run stands: `registries/{registry}/checkpoint.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The run it belongs to.
    pub run_id: String,
    /// The policy that run runs; another policy starts a new run.
    pub policy_digest: String,
    /// The time the run's ages are measured from (its first invocation's start), so that a
    /// resumed run decides as the uninterrupted run would have.
    pub reference_time: DateTime<Utc>,
    /// Repositories done: never listed again by this run.
    pub completed: BTreeSet<String>,
    /// When it was written.
    pub written_at: DateTime<Utc>,
    /// The tagged images the run covered when it first decided its `--max-run-deletions`
    /// (its first invocation planned every repository): a resumed run measures a share
    /// against this, not against the repositories it still has to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_images: Option<u64>,
}

/// One deletion attempt: a line of `runs/{id}/audit.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditLine {
    /// When its outcome was known.
    pub time: DateTime<Utc>,
    /// The run.
    pub run: String,
    /// The invocation (1-based) that recorded it.
    pub invocation: u32,
    /// The repository.
    pub repository: String,
    /// `tag` or `manifest`.
    pub kind: String,
    /// The tag, for a tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The manifest digest (a tag's: the one it pointed to).
    pub digest: String,
    /// The tags it carried.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The rule (1-based) that selected it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
    /// Why it was deleted (the plan's reason, explained).
    pub reason: String,
    /// `deleted`, `alreadyGone`, `notAllowed`, `skipped` or `failed`.
    pub outcome: String,
    /// The error or the reason it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Recorded on resumption: the invocation that deleted it died before recording it,
    /// and the registry no longer has it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reconciled: bool,
}

impl AuditLine {
    /// What the line is about: (repository, `tag:NAME` or `manifest:DIGEST`).
    pub fn key(&self) -> (String, String) {
        let item = match &self.tag {
            Some(tag) => format!("tag:{tag}"),
            None => format!("manifest:{}", self.digest),
        };
        (self.repository.clone(), item)
    }
}

/// Who holds a registry's lease: written into the lease when it is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// The run.
    pub run_id: String,
    /// Its trigger.
    pub trigger: String,
    /// When it took the lease.
    pub since: DateTime<Utc>,
}
