//! Which rules cover one repository, with cut-offs resolved against the run's start, and
//! the one eligibility ladder every deletion decision goes through.

use super::evidence::Evidence;
use super::{KeepReason, cosign_subject};
use crate::model::{TagAttributes, Timestamp};
use crate::policy::{MatchError, Policy, Rule, TagMatcher};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// How the policy's rules apply to one repository, with cut-offs resolved against `now`.
#[derive(Debug, Clone)]
pub struct Scope {
    pub(super) rules: Vec<RuleScope>,
    pub(super) protect: Vec<crate::policy::Filter>,
    /// What Azure knows of the repository's images (in use, deployed, pulled).
    pub(super) evidence: Arc<Evidence>,
}

/// One rule as it applies to one repository.
#[derive(Debug, Clone)]
pub(super) struct RuleScope {
    /// The rule's number (1-based), for reasons.
    pub number: usize,
    /// Items must be older than this.
    pub cutoff: DateTime<Utc>,
    /// `--keep`.
    pub keep: usize,
    /// `--include-locked`.
    pub include_locked: bool,
    /// Present when the rule deletes tags here.
    pub tags: Option<TagMatcher>,
    /// Whether the rule deletes untagged manifests here.
    pub manifests: bool,
    /// With `notPulledFor`: items must not have been pulled since this.
    pub unpulled_since: Option<DateTime<Utc>>,
    /// With `vulnerable`: only images with a finding at least this severe are eligible.
    pub vulnerable_min: Option<crate::policy::Severity>,
    /// `minTags`, `maxTags` and the untagged-manifest bounds.
    pub bounds: crate::policy::Bounds,
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
        Ok((!rules.is_empty()).then_some(Scope {
            rules,
            protect,
            evidence: Arc::default(),
        }))
    }

    /// The same scope deciding with `evidence` (in use, deployed, pulled).
    pub fn with_evidence(mut self, evidence: Evidence) -> Scope {
        self.evidence = Arc::new(evidence);
        self
    }

    /// Whether the tag listing is needed (some rule deletes tags here).
    pub fn needs_tags(&self) -> bool {
        self.rules.iter().any(|r| r.tags.is_some())
    }

    /// Whether the manifest listing is needed, given the tag listing: some rule deletes
    /// untagged manifests here, or a cosign signature tag may follow its subject.
    pub fn needs_manifests(&self, tags: &[TagAttributes]) -> bool {
        self.purges_manifests() || tags.iter().any(|t| cosign_subject(&t.name).is_some())
    }

    /// Whether some rule deletes untagged manifests here.
    pub fn purges_manifests(&self) -> bool {
        self.rules.iter().any(|r| r.manifests)
    }
}

impl RuleScope {
    /// Whether an item with this timestamp and lock is old enough, unpulled long enough
    /// and unlocked enough for this rule, or the reason it is not: an unreadable age first,
    /// then too young, then pulled within `notPulledFor` (or pulls unknown), then without
    /// a finding as severe as `vulnerable` asks (or findings unknown), then locked
    /// without `--include-locked`. The one eligibility ladder for tags and manifests.
    pub fn eligibility(
        &self,
        time: &Result<DateTime<Utc>, KeepReason>,
        locked: bool,
        item: Item<'_>,
    ) -> Result<(), KeepReason> {
        match time {
            Err(reason) => return Err(reason.clone()),
            Ok(t) if *t >= self.cutoff => {
                return Err(KeepReason::TooYoung {
                    cutoff: self.cutoff,
                });
            }
            Ok(_) => {}
        }
        self.eligibility_regardless_of_age(time, locked, item)
    }

    /// [`RuleScope::eligibility`] without the cut-off (for `maxTags` and
    /// `maxUntaggedManifests`, which delete younger items too): an unknown age, pulls and
    /// locks still keep the item.
    pub fn eligibility_regardless_of_age(
        &self,
        time: &Result<DateTime<Utc>, KeepReason>,
        locked: bool,
        item: Item<'_>,
    ) -> Result<(), KeepReason> {
        if let Err(reason) = time {
            return Err(reason.clone());
        }
        if let Some(window_start) = self.unpulled_since {
            item.evidence
                .unpulled_since(window_start, item.tags, item.digest)?;
        }
        if let Some(min) = self.vulnerable_min {
            item.evidence.vulnerable(min, item.digest)?;
        }
        match locked && !self.include_locked {
            true => Err(KeepReason::Locked),
            false => Ok(()),
        }
    }

    fn new(number: usize, rule: &Rule, tags: Option<TagMatcher>, now: DateTime<Utc>) -> Self {
        RuleScope {
            number,
            cutoff: now - rule.ago.duration,
            keep: rule.keep,
            include_locked: rule.include_locked,
            tags: if rule.untagged_only { None } else { tags },
            manifests: rule.purges_manifests(),
            unpulled_since: rule.not_pulled_for.map(|window| now - window.duration),
            vulnerable_min: rule.vulnerable_min,
            bounds: rule.bounds,
        }
    }
}

/// The item an eligibility question is about: its tags and digest, and the evidence to
/// look its pulls up in.
#[derive(Clone, Copy)]
pub(super) struct Item<'a> {
    pub evidence: &'a Evidence,
    pub tags: &'a [&'a str],
    pub digest: &'a str,
}

/// Parses a timestamp into a keep reason when it is missing or unreadable.
pub(super) fn timestamp(value: Option<&Timestamp>) -> Result<DateTime<Utc>, KeepReason> {
    match value {
        None => Err(KeepReason::TimestampMissing),
        Some(time) => time
            .instant()
            .ok_or_else(|| KeepReason::TimestampUnreadable {
                value: time.to_string().into(),
            }),
    }
}

/// Ranks items newest first for the count bounds: an unknown time first (its age is
/// unknown and it stays anyway), then by time, newest first, then by `name` ascending
/// (ties). Returns each item's 1-based rank, in the order given.
pub(super) fn rank_newest_first(items: &[(Option<DateTime<Utc>>, &str)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        let (ta, na) = items[a];
        let (tb, nb) = items[b];
        let key =
            |t: Option<DateTime<Utc>>| std::cmp::Reverse(t.map_or(DateTime::<Utc>::MAX_UTC, |t| t));
        key(ta).cmp(&key(tb)).then_with(|| na.cmp(nb))
    });
    let mut ranks = vec![0; items.len()];
    for (position, index) in order.into_iter().enumerate() {
        ranks[index] = position + 1;
    }
    ranks
}
