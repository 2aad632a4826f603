//! Deciding, for one repository, what is deleted and why — a pure function of the listings,
//! the manifest bodies and the policy, so a dry run shows exactly what a real run does.
//!
//! Planning has two steps because some decisions need manifest bodies: [`Draft::new`] decides
//! the tags and which manifests are deletion candidates, [`Draft::bodies_needed`] names the
//! bodies to fetch (every index, every manifest of unknown type, every candidate that may
//! be a referrer), and [`Draft::finish`] walks the graph and returns the [`RepositoryPlan`].

mod cosign;
mod manifests;
mod tags;

pub use cosign::cosign_subject;

use crate::policy::{MatchError, Policy, Rule, TagMatcher};
use crate::registry::model::{ManifestAttributes, ManifestBody, TagAttributes};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// The fate of one tag or manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "camelCase")]
pub enum Verdict {
    /// This run deletes it.
    Delete {
        /// Why.
        #[serde(flatten)]
        reason: DeleteReason,
    },
    /// This run keeps it.
    Keep {
        /// Why.
        #[serde(flatten)]
        reason: KeepReason,
    },
    /// It goes away as a consequence of deleting something else (a tag on a deleted
    /// manifest; a referrer that the registry deletes with its subject).
    Cascade {
        /// The manifest whose deletion removes it.
        via: String,
    },
}

impl Verdict {
    /// Whether this run sends a delete request for the item.
    pub fn is_delete(&self) -> bool {
        matches!(self, Verdict::Delete { .. })
    }

    /// Whether the item is gone after the run (deleted or cascaded).
    pub fn is_removed(&self) -> bool {
        !matches!(self, Verdict::Keep { .. })
    }

    fn keep(reason: KeepReason) -> Verdict {
        Verdict::Keep { reason }
    }
}

/// Why an item is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "reason",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum DeleteReason {
    /// A tag matched a rule's filter, is older than its cut-off, and is not among its `--keep`.
    Matched {
        /// The rule (1-based).
        rule: usize,
        /// The filter that matched.
        filter: String,
    },
    /// A manifest has no tag left, is older than the cut-off and nothing references it.
    Untagged {
        /// The rule (1-based).
        rule: usize,
    },
    /// A cosign-style signature (`sha256-<hex>.sig` tag) of a manifest this run deletes:
    /// swept with it even when no filter matches the signature or it is younger than the
    /// cut-off.
    SignatureOfDeleted {
        /// The signed manifest.
        subject: String,
    },
    /// An untagged referrer (signature, SBOM, attestation) whose subject is not in the
    /// repository, older than the rule's cut-off: swept as untagged (acr purge never
    /// deletes referrers); it never takes a `--keep` slot.
    OrphanReferrer {
        /// The rule (1-based).
        rule: usize,
        /// The absent subject.
        subject: String,
    },
}

/// Why an item is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "reason",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum KeepReason {
    /// No rule covers the item.
    NotSelected,
    /// The tag matches no filter.
    NoFilterMatch,
    /// Newer than the cut-off.
    TooYoung {
        /// The cut-off the item had to be older than.
        cutoff: DateTime<Utc>,
    },
    /// The timestamp is missing, so the age is unknown.
    TimestampMissing,
    /// The timestamp cannot be parsed, so the age is unknown.
    TimestampUnreadable {
        /// The value as received.
        value: String,
    },
    /// Locked (`deleteEnabled` or `writeEnabled` false) and `--include-locked` not given.
    Locked,
    /// Among the `--keep` most recent eligible items.
    KeptByKeep {
        /// The rule (1-based).
        rule: usize,
        /// 1 for the most recent.
        rank: usize,
    },
    /// The tag matches a `protect` pattern.
    Protected {
        /// The pattern.
        pattern: String,
    },
    /// A cosign-style signature tag of a manifest that stays.
    SignatureOfKept {
        /// The signed manifest.
        subject: String,
    },
    /// A cosign-style signature tag whose own manifest stays (locked, referenced, or
    /// tagged otherwise) although the signed manifest is deleted.
    SignatureManifestKept {
        /// The signature's manifest.
        manifest: String,
    },
    /// A cosign-style signature tag of this manifest is locked: the tag is never deleted
    /// (not even with its manifest), so the manifest it signs stays too.
    SignatureLocked {
        /// The locked signature tag.
        tag: String,
    },
    /// The manifest still has tags after this run.
    Tagged {
        /// The tags it keeps.
        tags: Vec<String>,
    },
    /// A child of an index that stays.
    IndexChild {
        /// The index.
        parent: String,
    },
    /// A referrer (signature, SBOM, attestation) of a manifest that stays.
    Referrer {
        /// The manifest it refers to.
        subject: String,
    },
    /// A referrer of this manifest must stay, and deleting a manifest deletes its referrers.
    KeptReferrer {
        /// The referrer that stays.
        referrer: String,
    },
    /// The listing reports no media type, so its kind is unknown (as acr purge).
    NoMediaType,
    /// The manifest body could not be read (404), so its references are unknown.
    BodyUnavailable,
}

/// The decision on one tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagDecision {
    /// Tag name.
    pub name: String,
    /// The manifest it points to.
    pub digest: String,
    /// Its `lastUpdateTime` as received.
    pub last_update_time: Option<String>,
    /// Whether it was locked when listed.
    pub locked: bool,
    /// Whether it must be unlocked before deletion (`--include-locked`).
    pub unlock: bool,
    /// The decision.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The decision on one manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDecision {
    /// Digest.
    pub digest: String,
    /// Media type from the listing.
    pub media_type: Option<String>,
    /// Tags on it when listed.
    pub tags: Vec<String>,
    /// Its `lastUpdateTime` as received.
    pub last_update_time: Option<String>,
    /// Whether it was locked when listed.
    pub locked: bool,
    /// Whether it must be unlocked before deletion (`--include-locked`).
    pub unlock: bool,
    /// The decision.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Manifests that must be deleted before this one (parent indexes, signed subjects).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

/// Everything decided for one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryPlan {
    /// Repository name.
    pub repository: String,
    /// Every tag considered, newest first.
    pub tags: Vec<TagDecision>,
    /// Every manifest considered (only when manifests were listed), by digest.
    pub manifests: Vec<ManifestDecision>,
    /// Whether any rule deletes tags here.
    pub purges_tags: bool,
    /// Whether any rule deletes untagged manifests here.
    pub purges_manifests: bool,
}

impl RepositoryPlan {
    /// Tags this run deletes.
    pub fn tags_to_delete(&self) -> impl Iterator<Item = &TagDecision> {
        self.tags.iter().filter(|t| t.verdict.is_delete())
    }

    /// Manifests this run deletes.
    pub fn manifests_to_delete(&self) -> impl Iterator<Item = &ManifestDecision> {
        self.manifests.iter().filter(|m| m.verdict.is_delete())
    }
}

/// How the policy's rules apply to one repository, with cut-offs resolved against `now`.
#[derive(Debug, Clone)]
pub struct Scope {
    rules: Vec<RuleScope>,
    protect: Vec<crate::policy::Filter>,
}

#[derive(Debug, Clone)]
struct RuleScope {
    number: usize,
    cutoff: DateTime<Utc>,
    keep: usize,
    include_locked: bool,
    /// Present when the rule deletes tags here.
    tags: Option<TagMatcher>,
    /// Whether the rule deletes untagged manifests here.
    manifests: bool,
}

impl Scope {
    /// The rules of `policy` that cover `repository`; `None` when none does.
    pub fn new(
        policy: &Policy,
        repository: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Scope>, MatchError> {
        let mut rules = Vec::new();
        for (index, rule) in policy.rules.iter().enumerate() {
            if let Some(coverage) = rule.coverage(repository)? {
                rules.push(RuleScope::new(index + 1, rule, coverage.tags, now));
            }
        }
        let mut protect = Vec::new();
        for pattern in &policy.protect {
            if pattern.matches_repository(repository)? {
                protect.push(pattern.clone());
            }
        }
        Ok((!rules.is_empty()).then_some(Scope { rules, protect }))
    }

    /// Whether the tag listing is needed (some rule deletes tags here).
    pub fn needs_tags(&self) -> bool {
        self.rules.iter().any(|r| r.tags.is_some())
    }

    /// Whether some rule deletes untagged manifests here.
    pub fn purges_manifests(&self) -> bool {
        self.rules.iter().any(|r| r.manifests)
    }
}

impl RuleScope {
    fn new(number: usize, rule: &Rule, tags: Option<TagMatcher>, now: DateTime<Utc>) -> Self {
        RuleScope {
            number,
            cutoff: now - rule.ago.duration,
            keep: rule.keep,
            include_locked: rule.include_locked,
            tags: if rule.untagged_only { None } else { tags },
            manifests: rule.purges_manifests(),
        }
    }
}

/// A manifest body as fetched: found, or 404.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The body's children and subject.
    Found(ManifestBody),
    /// The registry answered 404.
    Missing,
}

/// A plan whose tag decisions are made and whose manifest decisions wait for bodies.
#[derive(Debug)]
pub struct Draft {
    repository: String,
    scope: Scope,
    tags: Vec<TagDecision>,
    manifests: Vec<ManifestAttributes>,
    candidates: HashMap<String, manifests::Candidate>,
    cosign_pending: Vec<usize>,
}

impl Draft {
    /// Decides the tags and the manifest candidates. `tags` come newest first (server
    /// order); `manifests` is `None` when they were not listed.
    pub fn new(
        repository: &str,
        scope: Scope,
        tags: Vec<TagAttributes>,
        manifests: Option<Vec<ManifestAttributes>>,
    ) -> Result<Draft, MatchError> {
        let manifests = manifests.unwrap_or_default();
        let known: std::collections::HashSet<String> = manifests
            .iter()
            .filter_map(|m| m.digest.clone())
            .chain(tags.iter().map(|t| t.digest.clone()))
            .collect();
        let (tags, cosign_pending) = tags::decide(repository, &scope, tags, &known)?;
        let deleted: std::collections::HashSet<&str> = tags
            .iter()
            .filter(|t| t.verdict.is_delete())
            .map(|t| t.name.as_str())
            .collect();
        let candidates = manifests::candidates(&scope, &manifests, &deleted);
        Ok(Draft {
            repository: repository.to_string(),
            scope,
            tags,
            manifests,
            candidates,
            cosign_pending,
        })
    }

    /// Digests whose bodies [`Draft::finish`] needs.
    pub fn bodies_needed(&self) -> Vec<String> {
        let mut needed = manifests::bodies_needed(&self.manifests, &self.candidates);
        // Signature manifests may follow their subject: check that they refer to nothing else.
        for &t in &self.cosign_pending {
            let digest = &self.tags[t].digest;
            if !needed.contains(digest) {
                needed.push(digest.clone());
            }
        }
        needed
    }

    /// Digests whose referrers [`Draft::finish`] needs (deletion candidates and signature
    /// manifests that may follow their subject): the registry deletes a manifest's
    /// referrers with it.
    pub fn referrers_needed(&self) -> Vec<String> {
        let mut needed: Vec<String> = self.candidates.keys().cloned().collect();
        needed.sort();
        for &t in &self.cosign_pending {
            let digest = &self.tags[t].digest;
            if !needed.contains(digest) {
                needed.push(digest.clone());
            }
        }
        needed
    }

    /// Walks the manifest graph and completes the plan. `referrers` maps each digest of
    /// [`Draft::referrers_needed`] to the digests of its referrers.
    pub fn finish(
        self,
        bodies: &HashMap<String, Body>,
        referrers: &HashMap<String, Vec<String>>,
    ) -> RepositoryPlan {
        let Draft {
            repository,
            scope,
            mut tags,
            manifests,
            candidates,
            cosign_pending,
        } = self;
        let locked_signatures = locked_signatures(&tags, &cosign_pending);
        let mut decisions = manifests::decide(
            &scope,
            &manifests,
            &tags,
            candidates,
            bodies,
            referrers,
            &locked_signatures,
        );
        // Referrers go with their subjects and signatures with theirs; each can enable the
        // other, so settle both until nothing more is removed.
        loop {
            let removed = decisions.iter().filter(|d| d.verdict.is_removed()).count();
            manifests::cascade(&mut decisions);
            cosign::settle(
                &mut tags,
                &cosign_pending,
                &mut decisions,
                bodies,
                referrers,
            );
            if decisions.iter().filter(|d| d.verdict.is_removed()).count() == removed {
                break;
            }
        }
        manifests::order(&mut decisions, bodies);
        RepositoryPlan {
            repository,
            tags,
            manifests: decisions,
            purges_tags: scope.needs_tags(),
            purges_manifests: scope.purges_manifests(),
        }
    }
}

/// Signed manifest → a locked cosign signature tag of it (first one, in server order).
fn locked_signatures(tags: &[TagDecision], pending: &[usize]) -> HashMap<String, String> {
    let mut found = HashMap::new();
    for &t in pending {
        let tag = &tags[t];
        if let Some(subject) = cosign_subject(&tag.name).filter(|_| tag.locked) {
            found.entry(subject).or_insert_with(|| tag.name.clone());
        }
    }
    found
}

/// Parses a timestamp into a keep reason when it is missing or unreadable.
fn timestamp(value: Option<&str>) -> Result<DateTime<Utc>, KeepReason> {
    match value {
        None => Err(KeepReason::TimestampMissing),
        Some(text) => crate::registry::model::parse_time(text).ok_or_else(|| {
            KeepReason::TimestampUnreadable {
                value: text.to_string(),
            }
        }),
    }
}
