//! Saved plans: what a dry run decided, written for review (`--plan-out plan.json`) and
//! applied later exactly (`handler apply plan.json`, or the webhook's `{"apply": digest}`).
//!
//! A saved plan holds the registry, the policy (as a policy document, so `apply` decides by
//! the very same rules), the time ages were measured from, and every tag and manifest of
//! every repository with its decision, its reason and the attributes it was decided on
//! (digest, tags, `lastUpdateTime`, lock). Its `digest` is the SHA-256 of the plan's own
//! canonical JSON without the `digest` field: any edit of a decision, a digest, a tag or a
//! time changes it, and [`SavedPlan::parse`] refuses the plan. The digest detects edits,
//! not an adversary who recomputes it: the run store records every plan a dry run saved,
//! and `apply` checks the plan against that record when a store is available.
//!
//! Applying a plan ([`reconcile`]) lists each repository that has planned deletions again,
//! plans it again by the saved policy at the saved time, and deletes only what both plans
//! delete with identical attributes, together with nothing the saved plan did not remove;
//! everything else planned is reported as drift.

mod reconcile;

pub use reconcile::reconcile;

use crate::plan::{ManifestDecision, TagDecision};
use crate::policy::{PolicyDocument, PolicyError};
use crate::report::StorageFreed;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The format name written in every saved plan.
pub const FORMAT: &str = "acr-purge/plan/v1";

/// The age past which `apply` refuses a plan unless told otherwise (`--max-age`).
pub const DEFAULT_MAX_AGE: TimeDelta = TimeDelta::hours(24);

/// A plan saved by a dry run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedPlan {
    /// Always [`FORMAT`].
    pub format: String,
    /// The registry's login server.
    pub registry: String,
    /// When the dry run made it.
    pub created_at: DateTime<Utc>,
    /// The time ages were measured from.
    pub reference_time: DateTime<Utc>,
    /// The policy, as a policy document's `rules` and `protect`.
    pub policy: serde_json::Value,
    /// What the plan frees, as the dry run counted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageFreed>,
    /// Every repository planned, by name.
    pub repositories: Vec<SavedRepository>,
    /// `sha256:` + hex SHA-256 of the plan's canonical JSON without this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// One repository of a saved plan: every tag and manifest with its decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedRepository {
    /// Repository name.
    pub repository: String,
    /// Every tag considered, with its decision.
    pub tags: Vec<TagDecision>,
    /// Every manifest considered, with its decision.
    pub manifests: Vec<ManifestDecision>,
}

impl SavedRepository {
    /// The decisions of a repository's report (its outcomes are not kept).
    pub fn from_report(repo: &crate::report::RepositoryReport) -> SavedRepository {
        SavedRepository {
            repository: repo.repository.clone(),
            tags: repo.tags.iter().map(|t| t.decision.clone()).collect(),
            manifests: repo.manifests.iter().map(|m| m.decision.clone()).collect(),
        }
    }

    /// Whether the plan deletes anything here.
    pub fn deletes_anything(&self) -> bool {
        self.tags.iter().any(|t| t.verdict.is_delete())
            || self.manifests.iter().any(|m| m.verdict.is_delete())
    }
}

/// Why a saved plan is refused. Nothing is contacted or deleted for a refused plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavedPlanError {
    /// Not a saved plan's JSON.
    #[error("not a saved plan: {0}")]
    Unreadable(String),
    /// Another format or version.
    #[error("unsupported plan format {0:?} (this handler reads {FORMAT:?})")]
    Format(String),
    /// No digest, or one that does not match the content.
    #[error(
        "the plan was changed after it was made: its digest {found} does not match its content ({computed}); make a new plan with --dry-run --plan-out"
    )]
    Tampered {
        /// The digest written in the plan.
        found: String,
        /// The digest of its content.
        computed: String,
    },
    /// Made for another registry.
    #[error("the plan is for registry {planned}, not {target}")]
    OtherRegistry {
        /// The plan's registry.
        planned: String,
        /// The registry it was applied to.
        target: String,
    },
    /// Older than the maximum age.
    #[error(
        "the plan was made at {created_at}, more than {max_age} ago; make a new plan or raise --max-age"
    )]
    TooOld {
        /// When it was made.
        created_at: String,
        /// The maximum age, as written.
        max_age: String,
    },
    /// Made in the future (a clock or an edit).
    #[error("the plan claims to be made at {0}, which is in the future")]
    FromTheFuture(String),
    /// Its policy does not validate.
    #[error("the plan's policy: {0}")]
    Policy(PolicyError),
}

impl SavedPlan {
    /// A plan of `repositories` (sorted here by name), sealed with its digest.
    pub fn seal(
        registry: &str,
        reference_time: DateTime<Utc>,
        policy: &crate::policy::Policy,
        storage: Option<StorageFreed>,
        mut repositories: Vec<SavedRepository>,
    ) -> SavedPlan {
        repositories.sort_by(|a, b| a.repository.cmp(&b.repository));
        let mut plan = SavedPlan {
            format: FORMAT.to_string(),
            registry: registry.to_string(),
            created_at: Utc::now(),
            reference_time,
            policy: policy.to_document(),
            storage,
            repositories,
            digest: None,
        };
        plan.digest = Some(plan.content_digest());
        plan
    }

    /// The digest of the content (everything but `digest`, which is set aside meanwhile:
    /// a plan can be large, so it is not copied).
    fn content_digest(&mut self) -> String {
        let sealed = self.digest.take();
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        self.digest = sealed;
        let hash = Sha256::digest(&bytes);
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// The sealed digest.
    pub fn digest(&self) -> &str {
        self.digest.as_deref().unwrap_or_default()
    }

    /// The plan as pretty JSON, as written to `--plan-out`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a plan and checks its format and digest.
    pub fn parse(text: &str) -> Result<SavedPlan, SavedPlanError> {
        let mut reader = serde_json::Deserializer::from_str(text);
        let mut plan: SavedPlan = serde_path_to_error::deserialize(&mut reader)
            .map_err(|e| SavedPlanError::Unreadable(format!("at {}: {}", e.path(), e.inner())))?;
        if plan.format != FORMAT {
            return Err(SavedPlanError::Format(plan.format));
        }
        if !plan
            .repositories
            .windows(2)
            .all(|w| w[0].repository < w[1].repository)
        {
            return Err(SavedPlanError::Unreadable(
                "repositories are not sorted by name or repeat one".to_string(),
            ));
        }
        let computed = plan.content_digest();
        match &plan.digest {
            Some(found) if *found == computed => Ok(plan),
            found => Err(SavedPlanError::Tampered {
                found: found.clone().unwrap_or_else(|| "(none)".to_string()),
                computed,
            }),
        }
    }

    /// Checks that the plan may be applied to `registry` now: the same login server
    /// (case-insensitive), made at most `max_age` ago and not in the future; returns its
    /// policy.
    pub fn check(
        &self,
        registry: &str,
        max_age: TimeDelta,
        now: DateTime<Utc>,
    ) -> Result<crate::policy::Policy, SavedPlanError> {
        if !self.registry.eq_ignore_ascii_case(registry) {
            return Err(SavedPlanError::OtherRegistry {
                planned: self.registry.clone(),
                target: registry.to_string(),
            });
        }
        let stamp = || self.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        // A minute of clock skew between the machine that planned and this one.
        if self.created_at > now + TimeDelta::minutes(1) {
            return Err(SavedPlanError::FromTheFuture(stamp()));
        }
        if now - self.created_at > max_age {
            return Err(SavedPlanError::TooOld {
                created_at: stamp(),
                max_age: crate::policy::Ago {
                    duration: max_age,
                    capped: false,
                }
                .to_string(),
            });
        }
        let document =
            PolicyDocument::parse(&self.policy.to_string()).map_err(SavedPlanError::Policy)?;
        Ok(document.policy)
    }

    /// The repositories in which the plan deletes something.
    pub fn repositories_with_deletions(&self) -> impl Iterator<Item = &SavedRepository> {
        self.repositories.iter().filter(|r| r.deletes_anything())
    }

    /// The plan of one repository.
    pub fn repository(&self, name: &str) -> Option<&SavedRepository> {
        self.repositories
            .binary_search_by(|r| r.repository.as_str().cmp(name))
            .ok()
            .map(|i| &self.repositories[i])
    }
}

#[cfg(test)]
mod tests;
