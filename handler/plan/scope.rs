//! Which rules cover one repository, with cut-offs resolved against the run's start, and
//! the one eligibility ladder every deletion decision goes through.

use super::{KeepReason, cosign_subject};
use crate::policy::{MatchError, Policy, Rule, TagMatcher};
use crate::registry::model::TagAttributes;
use chrono::{DateTime, Utc};

/// How the policy's rules apply to one repository, with cut-offs resolved against `now`.
#[derive(Debug, Clone)]
pub struct Scope {
    pub(super) rules: Vec<RuleScope>,
    pub(super) protect: Vec<crate::policy::Filter>,
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
    /// Whether an item with this timestamp and lock is old enough and unlocked enough for
    /// this rule, or the reason it is not: an unreadable age first, then too young, then
    /// locked without `--include-locked`. The one eligibility ladder for tags and manifests.
    pub fn eligibility(
        &self,
        time: &Result<DateTime<Utc>, KeepReason>,
        locked: bool,
    ) -> Result<(), KeepReason> {
        match time {
            Err(reason) => Err(reason.clone()),
            Ok(t) if *t >= self.cutoff => Err(KeepReason::TooYoung {
                cutoff: self.cutoff,
            }),
            Ok(_) if locked && !self.include_locked => Err(KeepReason::Locked),
            Ok(_) => Ok(()),
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
        }
    }
}

/// Parses a timestamp into a keep reason when it is missing or unreadable.
pub(super) fn timestamp(value: Option<&str>) -> Result<DateTime<Utc>, KeepReason> {
    match value {
        None => Err(KeepReason::TimestampMissing),
        Some(text) => crate::registry::model::parse_time(text).ok_or_else(|| {
            KeepReason::TimestampUnreadable {
                value: text.to_string(),
            }
        }),
    }
}
