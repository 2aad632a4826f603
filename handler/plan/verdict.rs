//! Verdicts and their reasons, and every question about a reason: its name, whether it is a
//! safety protection, whether it survives its subject's deletion, how close it came to
//! deletion, and how it reads to a person. Each question is one exhaustive `match` with no
//! wildcard, so a new reason does not compile until someone has decided what it means for
//! safety.

use crate::model::{Digest, TagList, TagName};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The fate of one tag or manifest: 32 bytes (every reason's text is boxed or shared, and
/// the deletion limits are behind one pointer), pinned by a unit test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        via: Digest,
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

    pub(super) fn keep(reason: KeepReason) -> Verdict {
        Verdict::Keep { reason }
    }
}

/// Why an item is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        filter: Box<str>,
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
        subject: Digest,
    },
    /// An untagged referrer (signature, SBOM, attestation) whose subject is not in the
    /// repository, older than the rule's cut-off: swept as untagged (acr purge never
    /// deletes referrers); it never takes a `--keep` slot.
    OrphanReferrer {
        /// The rule (1-based).
        rule: usize,
        /// The absent subject.
        subject: Digest,
    },
    /// A tag the rule's filter matches, ranked beyond its `maxTags` most recent: deleted
    /// even when younger than the cut-off or among its `--keep`.
    BeyondMaxTags {
        /// The rule (1-based).
        rule: usize,
        /// Its rank among the tags the rule's filter matches (1 for the most recent).
        rank: usize,
        /// The rule's `maxTags`.
        max: usize,
    },
    /// An untagged manifest ranked beyond the rule's `maxUntaggedManifests` most recent:
    /// deleted even when younger than the cut-off or among its `--keep`.
    BeyondMaxUntagged {
        /// The rule (1-based).
        rule: usize,
        /// Its rank among the repository's untagged manifests (1 for the most recent).
        rank: usize,
        /// The rule's `maxUntaggedManifests`.
        max: usize,
    },
}

/// Why an item is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        value: Box<str>,
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
    /// Among the `minTags` most recent tags the rule's filter matches: kept even when old,
    /// whichever rule would delete it.
    KeptByMinTags {
        /// The rule (1-based).
        rule: usize,
        /// 1 for the most recent.
        rank: usize,
    },
    /// Among the `minUntaggedManifests` most recent untagged manifests: kept even when old,
    /// whichever rule would delete it.
    KeptByMinUntagged {
        /// The rule (1-based).
        rule: usize,
        /// 1 for the most recent.
        rank: usize,
    },
    /// The plan would take away more of the repository's tagged images than
    /// `--max-deletions` allows: nothing in the repository is deleted. `count` is the
    /// tagged images the plan would take away, `total` those in the repository.
    OverDeletionLimit(Box<OverLimit>),
    /// The run's plans together would take away more of the tagged images it covers than
    /// `--max-run-deletions` allows: nothing in the run is deleted. `count` is the tagged
    /// images the run's plans would take away (with what earlier invocations of a resumed
    /// run took away), `total` those the run covers.
    OverRunDeletionLimit(Box<OverLimit>),
    /// The tag matches a `protect` pattern.
    Protected {
        /// The pattern.
        pattern: Box<str>,
    },
    /// A cosign-style signature tag of a manifest that stays.
    SignatureOfKept {
        /// The signed manifest.
        subject: Digest,
    },
    /// A cosign-style signature tag whose own manifest stays (locked, referenced, or
    /// tagged otherwise) although the signed manifest is deleted.
    SignatureManifestKept {
        /// The signature's manifest.
        manifest: Digest,
    },
    /// A cosign-style signature tag of this manifest is locked: the tag is never deleted
    /// (not even with its manifest), so the manifest it signs stays too.
    SignatureLocked {
        /// The locked signature tag.
        tag: TagName,
    },
    /// The manifest still has tags after this run.
    Tagged {
        /// The tags it keeps (`keptTags`: a manifest's own `tags` are those it was listed
        /// with; the same allocation as those when it keeps them all).
        #[serde(rename = "keptTags")]
        tags: TagList,
    },
    /// A child of an index that stays.
    IndexChild {
        /// The index.
        parent: Digest,
    },
    /// A referrer (signature, SBOM, attestation) of a manifest that stays.
    Referrer {
        /// The manifest it refers to.
        subject: Digest,
    },
    /// A referrer of this manifest must stay, and deleting a manifest deletes its referrers.
    KeptReferrer {
        /// The referrer that stays.
        referrer: Digest,
    },
    /// The listing reports no media type, so its kind is unknown (as acr purge).
    NoMediaType,
    /// The manifest body could not be read (404), so its references are unknown.
    BodyUnavailable,
    /// An Azure workload runs it (in-use protection): by digest, or by a tag that points to
    /// it now.
    InUse {
        /// The workload's resource id.
        resource: Box<str>,
    },
    /// Among the repository's `keepDeployed` most recently deployed digests.
    RecentlyDeployed {
        /// 1 for the latest.
        rank: usize,
    },
    /// With in-use protection on, updated within `inUseGrace` (after `cutoff`): a
    /// deployment may be about to run it, and Resource Graph shows a new deployment only
    /// after a delay.
    InUseGrace {
        /// The item was updated after this.
        cutoff: DateTime<Utc>,
    },
    /// Pulled within the rule's `notPulledFor`.
    RecentlyPulled {
        /// The last pull.
        at: DateTime<Utc>,
    },
    /// Its pulls are unknown (the logs cannot be read, or do not reach back over the
    /// window), so it counts as pulled.
    PullsUnknown {
        /// Why.
        why: Box<str>,
    },
    /// A rule with `vulnerable` selects only images carrying a Defender for Cloud finding at
    /// least `min` severe, and this one carries none.
    NotVulnerable {
        /// The rule's minimum severity.
        min: crate::policy::Severity,
    },
    /// Defender's findings could not be read, so a rule with `vulnerable` selects nothing
    /// (an unread answer never means "no findings").
    FindingsUnknown {
        /// Why.
        why: Box<str>,
    },
    /// A saved plan being applied deletes it, but the registry changed since the plan was
    /// made (`handler apply`): it is kept and reported.
    Drift {
        /// What changed.
        detail: Box<str>,
    },
    /// The registry now holds it as deletable, but the saved plan being applied does not
    /// delete it (`handler apply` deletes nothing else).
    NotInPlan,
}

/// A deletion limit that a plan goes over and by how much (boxed in its rare [`KeepReason`]s, so that the
/// verdict every item holds stays small).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverLimit {
    /// The limit (`5`, `50%`).
    pub limit: String,
    /// Tagged images the plan (or the run's plans) would take away.
    pub count: u64,
    /// Tagged images in the repository (or the run).
    pub total: u64,
}

impl DeleteReason {
    /// The camelCase name, as in the JSON report (`matched`, `untagged`, …).
    pub fn name(&self) -> &'static str {
        match self {
            DeleteReason::Matched { .. } => "matched",
            DeleteReason::Untagged { .. } => "untagged",
            DeleteReason::SignatureOfDeleted { .. } => "signatureOfDeleted",
            DeleteReason::OrphanReferrer { .. } => "orphanReferrer",
            DeleteReason::BeyondMaxTags { .. } => "beyondMaxTags",
            DeleteReason::BeyondMaxUntagged { .. } => "beyondMaxUntagged",
        }
    }

    /// The rule that deletes the item (1-based), or `None` when it is swept with another
    /// item rather than selected by a rule.
    pub fn rule(&self) -> Option<usize> {
        match self {
            DeleteReason::Matched { rule, .. }
            | DeleteReason::Untagged { rule }
            | DeleteReason::OrphanReferrer { rule, .. }
            | DeleteReason::BeyondMaxTags { rule, .. }
            | DeleteReason::BeyondMaxUntagged { rule, .. } => Some(*rule),
            DeleteReason::SignatureOfDeleted { .. } => None,
        }
    }

    /// A one-line human explanation.
    pub fn explain(&self) -> String {
        match self {
            DeleteReason::Matched { rule, filter } => {
                format!("matches filter {filter:?} of rule {rule} and is older than its cut-off")
            }
            DeleteReason::Untagged { rule } => {
                format!(
                    "untagged, older than the cut-off of rule {rule}, referenced by nothing kept"
                )
            }
            DeleteReason::SignatureOfDeleted { subject } => {
                format!("cosign signature of {subject}, which is deleted (swept with it)")
            }
            DeleteReason::OrphanReferrer { rule, subject } => format!(
                "untagged referrer of {subject}, which is not in the repository; older than the cut-off of rule {rule}"
            ),
            DeleteReason::BeyondMaxTags { rule, rank, max } => format!(
                "most recent #{rank} of the tags rule {rule} matches, beyond its maxTags {max}"
            ),
            DeleteReason::BeyondMaxUntagged { rule, rank, max } => format!(
                "most recent #{rank} of the untagged manifests, beyond maxUntaggedManifests {max} of rule {rule}"
            ),
        }
    }
}

impl KeepReason {
    /// The camelCase name, as in the JSON report and the summary's counts.
    pub fn name(&self) -> &'static str {
        match self {
            KeepReason::NotSelected => "notSelected",
            KeepReason::NoFilterMatch => "noFilterMatch",
            KeepReason::TooYoung { .. } => "tooYoung",
            KeepReason::TimestampMissing => "timestampMissing",
            KeepReason::TimestampUnreadable { .. } => "timestampUnreadable",
            KeepReason::Locked => "locked",
            KeepReason::KeptByKeep { .. } => "keptByKeep",
            KeepReason::KeptByMinTags { .. } => "keptByMinTags",
            KeepReason::KeptByMinUntagged { .. } => "keptByMinUntagged",
            KeepReason::OverDeletionLimit(_) => "overDeletionLimit",
            KeepReason::OverRunDeletionLimit(_) => "overRunDeletionLimit",
            KeepReason::Protected { .. } => "protected",
            KeepReason::SignatureOfKept { .. } => "signatureOfKept",
            KeepReason::SignatureManifestKept { .. } => "signatureManifestKept",
            KeepReason::SignatureLocked { .. } => "signatureLocked",
            KeepReason::Tagged { .. } => "tagged",
            KeepReason::IndexChild { .. } => "indexChild",
            KeepReason::Referrer { .. } => "referrer",
            KeepReason::KeptReferrer { .. } => "keptReferrer",
            KeepReason::NoMediaType => "noMediaType",
            KeepReason::BodyUnavailable => "bodyUnavailable",
            KeepReason::InUse { .. } => "inUse",
            KeepReason::RecentlyDeployed { .. } => "recentlyDeployed",
            KeepReason::InUseGrace { .. } => "inUseGrace",
            KeepReason::RecentlyPulled { .. } => "recentlyPulled",
            KeepReason::PullsUnknown { .. } => "pullsUnknown",
            KeepReason::NotVulnerable { .. } => "notVulnerable",
            KeepReason::FindingsUnknown { .. } => "findingsUnknown",
            KeepReason::Drift { .. } => "drift",
            KeepReason::NotInPlan => "notInPlan",
        }
    }

    /// Whether the item is kept for safety rather than by the policy's own choice (the
    /// summary counts the two apart).
    pub fn is_protection(&self) -> bool {
        match self {
            KeepReason::NotSelected
            | KeepReason::NoFilterMatch
            | KeepReason::TooYoung { .. }
            | KeepReason::KeptByKeep { .. }
            | KeepReason::KeptByMinTags { .. }
            | KeepReason::KeptByMinUntagged { .. }
            | KeepReason::Tagged { .. }
            | KeepReason::RecentlyPulled { .. }
            | KeepReason::NotVulnerable { .. } => false,
            KeepReason::OverDeletionLimit(_)
            | KeepReason::FindingsUnknown { .. }
            | KeepReason::OverRunDeletionLimit(_)
            | KeepReason::InUse { .. }
            | KeepReason::RecentlyDeployed { .. }
            | KeepReason::InUseGrace { .. }
            | KeepReason::PullsUnknown { .. }
            | KeepReason::TimestampMissing
            | KeepReason::TimestampUnreadable { .. }
            | KeepReason::Locked
            | KeepReason::Protected { .. }
            | KeepReason::SignatureOfKept { .. }
            | KeepReason::SignatureManifestKept { .. }
            | KeepReason::SignatureLocked { .. }
            | KeepReason::IndexChild { .. }
            | KeepReason::Referrer { .. }
            | KeepReason::KeptReferrer { .. }
            | KeepReason::NoMediaType
            | KeepReason::BodyUnavailable
            | KeepReason::Drift { .. }
            | KeepReason::NotInPlan => true,
        }
    }

    /// Whether a referrer kept for this reason must survive its subject's deletion (which
    /// would delete it too), so that its subject must stay: anything but a referrer kept
    /// only for being one, or for its age, or because no rule looked at it.
    pub fn must_survive_subject(&self) -> bool {
        match self {
            KeepReason::Referrer { .. }
            | KeepReason::TooYoung { .. }
            | KeepReason::TimestampMissing
            | KeepReason::TimestampUnreadable { .. }
            | KeepReason::RecentlyPulled { .. }
            | KeepReason::PullsUnknown { .. }
            | KeepReason::NotVulnerable { .. }
            | KeepReason::FindingsUnknown { .. }
            | KeepReason::NotSelected => false,
            KeepReason::InUse { .. }
            | KeepReason::RecentlyDeployed { .. }
            | KeepReason::InUseGrace { .. }
            | KeepReason::NoFilterMatch
            | KeepReason::Locked
            | KeepReason::KeptByKeep { .. }
            | KeepReason::KeptByMinTags { .. }
            | KeepReason::KeptByMinUntagged { .. }
            | KeepReason::OverDeletionLimit(_)
            | KeepReason::OverRunDeletionLimit(_)
            | KeepReason::Protected { .. }
            | KeepReason::SignatureOfKept { .. }
            | KeepReason::SignatureManifestKept { .. }
            | KeepReason::SignatureLocked { .. }
            | KeepReason::Tagged { .. }
            | KeepReason::IndexChild { .. }
            | KeepReason::KeptReferrer { .. }
            | KeepReason::NoMediaType
            | KeepReason::BodyUnavailable
            | KeepReason::Drift { .. }
            | KeepReason::NotInPlan => true,
        }
    }

    /// How close the item came to deletion, to report the most telling of several rules'
    /// reasons (higher is closer).
    pub fn closeness(&self) -> u8 {
        match self {
            KeepReason::NotSelected => 0,
            KeepReason::NoFilterMatch => 1,
            KeepReason::TooYoung { .. }
            | KeepReason::RecentlyPulled { .. }
            | KeepReason::NotVulnerable { .. } => 2,
            KeepReason::Locked => 3,
            KeepReason::TimestampMissing
            | KeepReason::TimestampUnreadable { .. }
            | KeepReason::PullsUnknown { .. }
            | KeepReason::FindingsUnknown { .. } => 4,
            KeepReason::KeptByKeep { .. }
            | KeepReason::KeptByMinTags { .. }
            | KeepReason::KeptByMinUntagged { .. } => 5,
            KeepReason::OverDeletionLimit(_)
            | KeepReason::OverRunDeletionLimit(_)
            | KeepReason::Protected { .. }
            | KeepReason::InUse { .. }
            | KeepReason::RecentlyDeployed { .. }
            | KeepReason::InUseGrace { .. }
            | KeepReason::SignatureOfKept { .. }
            | KeepReason::SignatureManifestKept { .. }
            | KeepReason::SignatureLocked { .. }
            | KeepReason::Tagged { .. }
            | KeepReason::IndexChild { .. }
            | KeepReason::Referrer { .. }
            | KeepReason::KeptReferrer { .. }
            | KeepReason::NoMediaType
            | KeepReason::BodyUnavailable
            | KeepReason::Drift { .. }
            | KeepReason::NotInPlan => 6,
        }
    }

    /// A one-line human explanation.
    pub fn explain(&self) -> String {
        match self {
            KeepReason::NotSelected => "no rule selects it".to_string(),
            KeepReason::NoFilterMatch => "matches no filter".to_string(),
            KeepReason::TooYoung { cutoff } => format!(
                "newer than the cut-off {}",
                cutoff.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            KeepReason::TimestampMissing => "no lastUpdateTime: age unknown".to_string(),
            KeepReason::TimestampUnreadable { value } => {
                format!("unreadable lastUpdateTime {value:?}: age unknown")
            }
            KeepReason::Locked => "locked (deleteEnabled/writeEnabled false)".to_string(),
            KeepReason::KeptByKeep { rule, rank } => {
                format!("kept by --keep of rule {rule} (most recent #{rank})")
            }
            KeepReason::KeptByMinTags { rule, rank } => {
                format!("kept by minTags of rule {rule} (most recent #{rank} it matches)")
            }
            KeepReason::KeptByMinUntagged { rule, rank } => format!(
                "kept by minUntaggedManifests of rule {rule} (most recent #{rank} untagged)"
            ),
            KeepReason::OverDeletionLimit(over) => format!(
                "the plan would take away {} of the repository's {} tagged images, over --max-deletions {}: nothing here is deleted",
                over.count, over.total, over.limit
            ),
            KeepReason::OverRunDeletionLimit(over) => format!(
                "the run's plans would take away {} of the {} tagged images it covers, over --max-run-deletions {}: nothing in the run is deleted",
                over.count, over.total, over.limit
            ),
            KeepReason::Protected { pattern } => format!("protected by {pattern:?}"),
            KeepReason::SignatureOfKept { subject } => {
                format!("cosign signature of {subject}, which is kept")
            }
            KeepReason::SignatureManifestKept { manifest } => {
                format!("cosign signature whose manifest {manifest} stays")
            }
            KeepReason::SignatureLocked { tag } => {
                format!("its cosign signature tag {tag} is locked")
            }
            KeepReason::Tagged { tags } => format!("still tagged {}", tags.join(", ")),
            KeepReason::IndexChild { parent } => format!("child of kept index {parent}"),
            KeepReason::Referrer { subject } => format!("referrer of {subject}, which exists"),
            KeepReason::KeptReferrer { referrer } => {
                format!("its referrer {referrer} stays (deleting it would delete the referrer)")
            }
            KeepReason::NoMediaType => "no media type reported".to_string(),
            KeepReason::BodyUnavailable => "manifest body unavailable".to_string(),
            KeepReason::InUse { resource } => format!("in use by {resource}"),
            KeepReason::RecentlyDeployed { rank } => {
                format!("among the most recently deployed (#{rank}, keepDeployed)")
            }
            KeepReason::InUseGrace { cutoff } => format!(
                "updated after {}, within inUseGrace: a deployment may be about to run it",
                cutoff.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            KeepReason::RecentlyPulled { at } => format!(
                "pulled at {}, within notPulledFor",
                at.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            KeepReason::PullsUnknown { why } => format!("counts as pulled: {why}"),
            KeepReason::NotVulnerable { min } => {
                format!("carries no Defender finding of severity {min} or higher")
            }
            KeepReason::FindingsUnknown { why } => {
                format!("Defender's findings are unknown, so vulnerable selects nothing: {why}")
            }
            KeepReason::Drift { detail } => {
                format!("planned for deletion, but changed since the plan: {detail}")
            }
            KeepReason::NotInPlan => "not deleted by the plan being applied".to_string(),
        }
    }
}

impl Verdict {
    /// A one-line human explanation, for `--verbose` and the demo.
    pub fn explain(&self) -> String {
        match self {
            Verdict::Delete { reason } => reason.explain(),
            Verdict::Cascade { via } => format!("removed by the registry together with {via}"),
            Verdict::Keep { reason } => reason.explain(),
        }
    }
}

#[cfg(test)]
/// One value of every variant (tests): adding a variant without adding it here fails to
/// compile in the matches above, and this list is checked against them.
pub(super) fn every_keep_reason() -> Vec<KeepReason> {
    // A fixed instant, so that their JSON can be compared with `items.golden.jsonl`.
    let now = || DateTime::from_timestamp(1_700_000_000, 123_000_000).unwrap_or_default();
    fn t<T: From<&'static str>>() -> T {
        "x".into()
    }
    vec![
        KeepReason::NotSelected,
        KeepReason::NoFilterMatch,
        KeepReason::TooYoung { cutoff: now() },
        KeepReason::TimestampMissing,
        KeepReason::TimestampUnreadable { value: t() },
        KeepReason::Locked,
        KeepReason::KeptByKeep { rule: 1, rank: 1 },
        KeepReason::KeptByMinTags { rule: 1, rank: 1 },
        KeepReason::KeptByMinUntagged { rule: 1, rank: 1 },
        KeepReason::OverDeletionLimit(Box::new(OverLimit {
            limit: "50%".to_string(),
            count: 9,
            total: 10,
        })),
        KeepReason::OverRunDeletionLimit(Box::new(OverLimit {
            limit: "50%".to_string(),
            count: 9,
            total: 10,
        })),
        KeepReason::Protected { pattern: t() },
        KeepReason::SignatureOfKept { subject: t() },
        KeepReason::SignatureManifestKept { manifest: t() },
        KeepReason::SignatureLocked { tag: t() },
        KeepReason::Tagged {
            tags: TagList::from(vec![t()]),
        },
        KeepReason::IndexChild { parent: t() },
        KeepReason::Referrer { subject: t() },
        KeepReason::KeptReferrer { referrer: t() },
        KeepReason::NoMediaType,
        KeepReason::BodyUnavailable,
        KeepReason::InUse { resource: t() },
        KeepReason::RecentlyDeployed { rank: 1 },
        KeepReason::InUseGrace { cutoff: now() },
        KeepReason::RecentlyPulled { at: now() },
        KeepReason::PullsUnknown { why: t() },
        KeepReason::NotVulnerable {
            min: crate::policy::Severity::High,
        },
        KeepReason::FindingsUnknown { why: t() },
        KeepReason::Drift { detail: t() },
        KeepReason::NotInPlan,
    ]
}

#[cfg(test)]
pub(super) fn every_delete_reason() -> Vec<DeleteReason> {
    vec![
        DeleteReason::Matched {
            rule: 1,
            filter: "r:.*".into(),
        },
        DeleteReason::Untagged { rule: 1 },
        DeleteReason::SignatureOfDeleted {
            subject: "s".into(),
        },
        DeleteReason::OrphanReferrer {
            rule: 1,
            subject: "s".into(),
        },
        DeleteReason::BeyondMaxTags {
            rule: 1,
            rank: 2,
            max: 1,
        },
        DeleteReason::BeyondMaxUntagged {
            rule: 1,
            rank: 2,
            max: 1,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_name(value: impl Serialize) -> String {
        serde_json::to_value(value).unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn no_reason_field_shadows_an_item_field() {
        // Reasons are flattened into tag and manifest items: a shared key would be written
        // twice, and readers keep only one of them.
        const ITEM_FIELDS: &[&str] = &[
            "name",
            "digest",
            "mediaType",
            "tags",
            "lastUpdateTime",
            "imageSize",
            "locked",
            "unlock",
            "after",
            "decision",
            "outcome",
        ];
        let keep = every_keep_reason()
            .into_iter()
            .map(|r| serde_json::to_value(r).unwrap());
        let delete = every_delete_reason()
            .into_iter()
            .map(|r| serde_json::to_value(r).unwrap());
        for value in keep.chain(delete) {
            let fields = value.as_object().unwrap();
            for key in fields.keys() {
                assert!(!ITEM_FIELDS.contains(&key.as_str()), "{key} in {value}");
            }
        }
    }

    #[test]
    fn every_name_is_its_serde_tag_and_unique() {
        let keep = every_keep_reason();
        let mut names: Vec<&str> = keep.iter().map(KeepReason::name).collect();
        for reason in &keep {
            assert_eq!(reason.name(), serde_name(reason));
        }
        let delete = every_delete_reason();
        for reason in &delete {
            assert_eq!(reason.name(), serde_name(reason));
        }
        names.extend(delete.iter().map(DeleteReason::name));
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "names are unique");
    }

    #[test]
    fn the_policy_own_choices_are_not_protections() {
        let policy: Vec<&str> = every_keep_reason()
            .iter()
            .filter(|r| !r.is_protection())
            .map(KeepReason::name)
            .collect();
        assert_eq!(
            policy,
            [
                "notSelected",
                "noFilterMatch",
                "tooYoung",
                "keptByKeep",
                "keptByMinTags",
                "keptByMinUntagged",
                "tagged",
                "recentlyPulled",
                "notVulnerable"
            ]
        );
    }

    #[test]
    fn only_weak_referrers_may_go_with_their_subject() {
        let weak: Vec<&str> = every_keep_reason()
            .iter()
            .filter(|r| !r.must_survive_subject())
            .map(KeepReason::name)
            .collect();
        assert_eq!(
            weak,
            [
                "notSelected",
                "tooYoung",
                "timestampMissing",
                "timestampUnreadable",
                "referrer",
                "recentlyPulled",
                "pullsUnknown",
                "notVulnerable",
                "findingsUnknown"
            ]
        );
    }

    #[test]
    fn keep_and_lock_reasons_are_closer_to_deletion_than_age() {
        let c = |r: KeepReason| r.closeness();
        assert!(c(KeepReason::NotSelected) < c(KeepReason::NoFilterMatch));
        assert!(c(KeepReason::NoFilterMatch) < c(KeepReason::TooYoung { cutoff: Utc::now() }));
        assert!(c(KeepReason::TooYoung { cutoff: Utc::now() }) < c(KeepReason::Locked));
        assert!(c(KeepReason::Locked) < c(KeepReason::TimestampMissing));
        assert!(c(KeepReason::TimestampMissing) < c(KeepReason::KeptByKeep { rule: 1, rank: 1 }));
    }

    #[test]
    fn only_rules_select_what_they_delete() {
        let rules: Vec<Option<usize>> = every_delete_reason()
            .iter()
            .map(DeleteReason::rule)
            .collect();
        assert_eq!(rules, [Some(1), Some(1), None, Some(1), Some(1), Some(1)]);
    }
}
