//! What a run did: the JSON contract read by the command line, the Functions handler and
//! telemetry. Per repository every tag and manifest with its decision and, in a real run,
//! its outcome; the summary; and why the run failed, as a [`RunError`]. acr purge's text
//! lines are in [`text`].

mod error;
pub mod findings;
pub mod storage;
pub mod text;

pub use error::{
    EXIT_RESUMABLE, Extent, ListingFailure, PlanError, Problem, Progress, Refusal, RunError,
    RunRefusal,
};
pub use storage::{BlobIndex, StorageFreed};

use crate::model::filter_map_shrinking;
use crate::plan::{ManifestDecision, RepositoryPlan, TagDecision, Verdict};
use crate::registry::StatsSnapshot;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use text::{ItemName, Kind, Line, Reference};

/// How one deletion attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Deleted (HTTP 200/202).
    Deleted,
    /// Already gone (HTTP 404); counted as deleted, as acr purge does.
    AlreadyGone,
    /// The registry refused (HTTP 405, locked); not counted.
    NotAllowed,
    /// Not attempted because something changed or an earlier step failed.
    Skipped {
        /// Why (boxed, as `error`: rare, and every item's outcome slot stays 16 bytes).
        why: Box<String>,
    },
    /// Not attempted because the run or its repository was stopping (shutdown, deadline, a
    /// registry that stopped answering). Reported as skipped, with [`Outcome::STOPPED`] as
    /// the reason; no line is printed and nothing is audited for it.
    Stopped,
    /// The request failed.
    Failed {
        /// The error.
        error: Box<String>,
    },
}

impl Outcome {
    /// Why a [`Outcome::Stopped`] item was not attempted, as the report says it.
    pub const STOPPED: &'static str = "not attempted: the purge stopped first";

    /// Whether the item is gone (deleted now or already).
    pub fn is_gone(&self) -> bool {
        matches!(self, Outcome::Deleted | Outcome::AlreadyGone)
    }

    /// The camelCase name, as in the JSON report (`status`) and the audit events.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Deleted => "deleted",
            Outcome::AlreadyGone => "alreadyGone",
            Outcome::NotAllowed => "notAllowed",
            Outcome::Skipped { .. } | Outcome::Stopped => "skipped",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// The JSON of an [`Outcome`]: a stopped item is skipped, with [`Outcome::STOPPED`] as why.
#[derive(Serialize)]
#[serde(
    tag = "status",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
enum OutcomeJson<'a> {
    Deleted,
    AlreadyGone,
    NotAllowed,
    Skipped { why: &'a str },
    Failed { error: &'a str },
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let json = match self {
            Outcome::Deleted => OutcomeJson::Deleted,
            Outcome::AlreadyGone => OutcomeJson::AlreadyGone,
            Outcome::NotAllowed => OutcomeJson::NotAllowed,
            Outcome::Skipped { why } => OutcomeJson::Skipped { why },
            Outcome::Stopped => OutcomeJson::Skipped {
                why: Outcome::STOPPED,
            },
            Outcome::Failed { error } => OutcomeJson::Failed { error },
        };
        json.serialize(serializer)
    }
}

/// A tag decision and, in a real run, its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagReport {
    /// The decision.
    #[serde(flatten)]
    pub decision: TagDecision,
    /// What happened (real runs, deleted items only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// A manifest decision and, in a real run, its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestReport {
    /// The decision.
    #[serde(flatten)]
    pub decision: ManifestDecision,
    /// What happened (real runs, deleted items only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// How a repository's processing ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "status",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum RepositoryStatus {
    /// Planned (and executed, in a real run).
    Done,
    /// The repository does not exist.
    NotFound,
    /// Listing or planning failed; nothing was deleted in it.
    Failed {
        /// The error.
        error: String,
    },
    /// Not processed because the run stopped first.
    NotReached,
}

/// One repository in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryReport {
    /// Repository name.
    pub repository: String,
    /// How it ended.
    #[serde(flatten)]
    pub status: RepositoryStatus,
    /// Every tag considered.
    pub tags: Vec<TagReport>,
    /// Every manifest considered.
    pub manifests: Vec<ManifestReport>,
    /// Items left out of `tags` and `manifests` to bound the run's memory (see
    /// [`RunReport::MAX_ITEMS`]); `--output json` streamed them as the repository finished.
    #[serde(skip_serializing_if = "is_zero")]
    pub items_omitted: u64,
    /// The storage its deletions free (or would free); absent when no manifest is removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageFreed>,
    /// The blobs of its manifests, read for [`RepositoryReport::storage`] while it is
    /// purged; dropped once it is counted.
    #[serde(skip)]
    pub blobs: Option<BlobIndex>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl RepositoryReport {
    /// A report of a plan with no outcomes yet.
    pub fn planned(plan: RepositoryPlan) -> RepositoryReport {
        RepositoryReport {
            repository: plan.repository,
            status: RepositoryStatus::Done,
            tags: filter_map_shrinking(plan.tags, |decision| {
                Some(TagReport {
                    decision,
                    outcome: None,
                })
            }),
            manifests: filter_map_shrinking(plan.manifests, |decision| {
                Some(ManifestReport {
                    decision,
                    outcome: None,
                })
            }),
            items_omitted: 0,
            storage: None,
            blobs: None,
        }
    }

    /// Drops the items (their counts are in the summary already), keeping how many there
    /// were; frees their memory.
    pub fn omit_items(&mut self) {
        self.items_omitted += (self.tags.len() + self.manifests.len()) as u64;
        self.tags = Vec::new();
        self.manifests = Vec::new();
    }

    /// Every tag, then every manifest.
    pub fn items(&self) -> impl Iterator<Item = Item<'_>> {
        let tags = self.tags.iter().map(Item::Tag);
        tags.chain(self.manifests.iter().map(Item::Manifest))
    }

    /// A repository with no items and the given status.
    pub fn empty(repository: &str, status: RepositoryStatus) -> RepositoryReport {
        RepositoryReport {
            repository: repository.to_string(),
            status,
            tags: Vec::new(),
            manifests: Vec::new(),
            items_omitted: 0,
            storage: None,
            blobs: None,
        }
    }
}

/// Counts over the whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Tags deleted (real run: 200/202/404) or to be deleted (dry run).
    pub tags_deleted: u64,
    /// Manifests deleted (real run: 200/202/404) or to be deleted (dry run).
    pub manifests_deleted: u64,
    /// Items the policy keeps, by reason (`tooYoung`, `keptByKeep`, `tagged`, …).
    pub kept: BTreeMap<String, u64>,
    /// Items kept for safety, by reason (`locked`, `indexChild`, `referrer`,
    /// `signatureOfKept`, `protected`, `timestampUnreadable`, …).
    pub protected: BTreeMap<String, u64>,
    /// Deletions that failed.
    pub failed: u64,
    /// Deletions skipped at execution time (changed since listed, 405, failed dependency).
    pub skipped: u64,
    /// Repositories planned.
    pub repositories: u64,
    /// Repositories that failed.
    pub repositories_failed: u64,
    /// Request counters (throttling, retries).
    pub requests: StatsSnapshot,
    /// The storage freed (real run) or that would be freed (dry run).
    pub storage: StorageFreed,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// The registry's login server.
    pub registry: String,
    /// Whether nothing was meant to be deleted.
    pub dry_run: bool,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Per repository, sorted by name.
    pub repositories: Vec<RepositoryReport>,
    /// Counts.
    pub summary: Summary,
    /// Why the run failed or is partial, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// The saved plan this dry run recorded, or the one this run applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    /// What the run does to Defender for Cloud's findings, when the policy reads them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<findings::FindingsReport>,
}

impl RunReport {
    /// The most items (tags and manifests) a run's report keeps: a repository whose items
    /// would pass it keeps only its counts ([`RepositoryReport::items_omitted`]), so a run
    /// over a million tags holds one repository's plan at a time, not the registry's.
    pub const MAX_ITEMS: usize = 10_000;

    /// A run that failed before it could list anything (bad configuration, unreachable
    /// registry, failed sign-in).
    pub fn failed(registry: &str, dry_run: bool, error: RunError) -> RunReport {
        let now = chrono::Utc::now();
        RunReport {
            registry: registry.to_string(),
            dry_run,
            started_at: now,
            finished_at: now,
            repositories: Vec::new(),
            summary: Summary::default(),
            error: Some(error),
            plan_digest: None,
            findings: None,
        }
    }

    /// Whether the run did everything it planned.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    /// Adds a finished repository: counts it into the summary, then keeps its items if the
    /// report has room for them ([`RunReport::MAX_ITEMS`]), else only their count.
    pub fn add(&mut self, mut repo: RepositoryReport) {
        self.summary.add(&repo, self.dry_run);
        let held: usize = self
            .repositories
            .iter()
            .map(|r| r.tags.len() + r.manifests.len())
            .sum();
        if held + repo.tags.len() + repo.manifests.len() > RunReport::MAX_ITEMS {
            repo.omit_items();
        }
        self.repositories.push(repo);
    }

    /// acr purge's closing lines.
    pub fn summary_lines(&self) -> [Line<'static>; 3] {
        let count = |kind, count| Line::Count {
            kind,
            dry_run: self.dry_run,
            count,
        };
        [
            Line::Blank,
            count(Kind::Tags, self.summary.tags_deleted),
            count(Kind::Manifests, self.summary.manifests_deleted),
        ]
    }
}

impl Summary {
    /// Counts one repository's items in.
    pub fn add(&mut self, repo: &RepositoryReport, dry_run: bool) {
        match repo.status {
            RepositoryStatus::Done => self.repositories += 1,
            RepositoryStatus::Failed { .. } => self.repositories_failed += 1,
            RepositoryStatus::NotFound | RepositoryStatus::NotReached => {}
        }
        if let Some(storage) = &repo.storage {
            self.storage.add(storage);
        }
        for item in repo.items() {
            let (verdict, outcome) = (item.verdict(), item.outcome());
            count(self, dry_run, verdict, outcome);
            if removed(dry_run, verdict, outcome) {
                match item.kind() {
                    Kind::Tags => self.tags_deleted += 1,
                    Kind::Manifests => self.manifests_deleted += 1,
                }
            }
        }
    }
}

/// Whether a deletion counts: planned (dry run) or done (real run, 404 included).
fn removed(dry_run: bool, verdict: &Verdict, outcome: Option<&Outcome>) -> bool {
    if dry_run {
        verdict.is_delete()
    } else {
        outcome.is_some_and(Outcome::is_gone)
    }
}

fn count(summary: &mut Summary, dry_run: bool, verdict: &Verdict, outcome: Option<&Outcome>) {
    match verdict {
        Verdict::Keep { reason } => {
            let counts = if reason.is_protection() {
                &mut summary.protected
            } else {
                &mut summary.kept
            };
            *counts.entry(reason.name().to_string()).or_default() += 1;
        }
        Verdict::Delete { .. } if !dry_run => match outcome {
            Some(Outcome::Failed { .. }) => summary.failed += 1,
            Some(Outcome::Skipped { .. } | Outcome::Stopped | Outcome::NotAllowed) | None => {
                summary.skipped += 1
            }
            Some(Outcome::Deleted | Outcome::AlreadyGone) => {}
        },
        Verdict::Delete { .. } | Verdict::Cascade { .. } => {}
    }
}

/// One tag or manifest of a repository's report, for code that treats both alike.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    /// A tag.
    Tag(&'a TagReport),
    /// A manifest.
    Manifest(&'a ManifestReport),
}

impl<'a> Item<'a> {
    /// Tags or manifests.
    pub fn kind(self) -> Kind {
        match self {
            Item::Tag(_) => Kind::Tags,
            Item::Manifest(_) => Kind::Manifests,
        }
    }

    /// The decision.
    pub fn verdict(self) -> &'a Verdict {
        match self {
            Item::Tag(t) => &t.decision.verdict,
            Item::Manifest(m) => &m.decision.verdict,
        }
    }

    /// What happened, in a real run.
    pub fn outcome(self) -> Option<&'a Outcome> {
        match self {
            Item::Tag(t) => t.outcome.as_ref(),
            Item::Manifest(m) => m.outcome.as_ref(),
        }
    }

    /// The manifest digest (for a tag, the one it points to).
    pub fn digest(self) -> &'a str {
        match self {
            Item::Tag(t) => &t.decision.digest,
            Item::Manifest(m) => &m.decision.digest,
        }
    }

    /// The tags it carries: a tag's own name, a manifest's tags when listed.
    pub fn tags(self) -> &'a [crate::model::TagName] {
        match self {
            Item::Tag(t) => std::slice::from_ref(&t.decision.name),
            Item::Manifest(m) => &m.decision.tags,
        }
    }

    /// `host/repository:tag` or `host/repository@digest`, for output lines.
    pub fn reference(self, host: &'a str, repository: &'a str) -> Reference<'a> {
        let item = match self {
            Item::Tag(t) => ItemName::Tag(&t.decision.name),
            Item::Manifest(m) => ItemName::Digest(&m.decision.digest),
        };
        Reference {
            host,
            repository,
            item,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_items_stay_small() {
        // Issue 26: every listed item is one of these for the whole run (at most 400 bytes
        // an item at peak, everything included); a field that grows them shows here.
        use std::mem::size_of;
        assert_eq!(size_of::<Option<Outcome>>(), 16);
        assert!(size_of::<TagReport>() <= 104, "{}", size_of::<TagReport>());
        assert!(
            size_of::<ManifestReport>() <= 144,
            "{}",
            size_of::<ManifestReport>()
        );
    }

    #[test]
    fn outcome_names_are_their_serde_tags() {
        for outcome in [
            Outcome::Deleted,
            Outcome::AlreadyGone,
            Outcome::NotAllowed,
            Outcome::Skipped {
                why: Box::new("w".into()),
            },
            Outcome::Stopped,
            Outcome::Failed {
                error: Box::new("e".into()),
            },
        ] {
            let value = serde_json::to_value(&outcome).unwrap();
            assert_eq!(value["status"], outcome.name());
        }
    }

    #[test]
    fn outcomes_serialize_as_before_the_stopped_variant() {
        let json = |outcome: &Outcome| serde_json::to_string(outcome).unwrap();
        assert_eq!(
            json(&Outcome::Stopped),
            r#"{"status":"skipped","why":"not attempted: the purge stopped first"}"#
        );
        assert_eq!(
            json(&Outcome::Skipped {
                why: Box::new("w".into())
            }),
            r#"{"status":"skipped","why":"w"}"#
        );
        assert_eq!(
            json(&Outcome::Failed {
                error: Box::new("e".into())
            }),
            r#"{"status":"failed","error":"e"}"#
        );
        assert_eq!(json(&Outcome::AlreadyGone), r#"{"status":"alreadyGone"}"#);
    }
}
