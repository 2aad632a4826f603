//! What Azure knows about a repository's images besides the registry, handed to the
//! planner: which tags and digests workloads run (in-use protection), which digests were
//! deployed most recently (`keepDeployed`), and when items were last pulled
//! (`notPulledFor`). The run gathers it (`run::gather`); here it is only read.
//!
//! Safety: every gap counts against deletion. A digest or tag in use is kept; pull times
//! that are unknown, or logs that do not reach back over a rule's whole window, make an
//! item count as pulled, never as unpulled.

use super::KeepReason;
use crate::model::Timestamp;
use crate::policy::Severity;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// When workloads were last seen running each digest, per repository, and through which
/// tags: what `keepDeployed` ranks by, and what keeps a digest deployed by tag protected
/// after the tag moved on, while a workload still refers to that tag. The run store keeps
/// it per registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployHistory {
    /// Repository → digest → when and how it was last seen in use.
    pub repositories: BTreeMap<String, BTreeMap<String, Deployed>>,
}

/// One digest seen in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployed {
    /// The last run that saw a workload running it.
    pub last_seen: DateTime<Utc>,
    /// The tags workloads referred to it by (empty: by digest).
    pub via_tags: BTreeSet<String>,
}

impl DeployHistory {
    /// Records that `digest` of `repository` was in use at `at`, through `via_tags`.
    pub fn seen(&mut self, repository: &str, digest: &str, via_tags: &[&str], at: DateTime<Utc>) {
        let entry = self
            .repositories
            .entry(repository.to_string())
            .or_default()
            .entry(digest.to_string())
            .or_insert_with(|| Deployed {
                last_seen: at,
                via_tags: BTreeSet::new(),
            });
        entry.last_seen = entry.last_seen.max(at);
        entry
            .via_tags
            .extend(via_tags.iter().map(|t| t.to_string()));
    }
}

/// The evidence about one repository.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// In-use protection, when it is on.
    pub in_use: Option<InUse>,
    /// Digest → when a workload was last seen running it (the run store's history).
    pub deployed_at: HashMap<String, DateTime<Utc>>,
    /// Digest → the tags workloads ran it by, when it was last seen in use: it stays in
    /// use while a workload still refers to one of them (running replicas may not have
    /// pulled the tag's new digest yet).
    pub deployed_via: HashMap<String, Vec<String>>,
    /// `keepDeployed`: how many of the most recently deployed digests stay.
    pub keep_deployed: usize,
    /// Pull times, when some rule has `notPulledFor`.
    pub pulls: Option<Pulls>,
    /// With in-use protection on and a non-zero `inUseGrace`: items updated after this
    /// stay ([`KeepReason::InUseGrace`]).
    pub fresh_after: Option<DateTime<Utc>>,
    /// Defender for Cloud's findings, when some rule targets `vulnerable` images.
    pub findings: Option<Findings>,
}

/// Defender for Cloud's unresolved findings on this repository's images.
#[derive(Debug, Clone)]
pub enum Findings {
    /// Digest → the most severe unresolved finding on it (a digest with none is absent).
    Known(HashMap<String, Severity>),
    /// The findings could not be read.
    Unknown(String),
}

/// What workloads run from this repository.
#[derive(Debug, Clone, Default)]
pub struct InUse {
    /// Tag → the resource id of a workload referring to it by tag.
    pub tags: HashMap<String, String>,
    /// Digest → the resource id of a workload referring to it by digest.
    pub digests: HashMap<String, String>,
}

/// The last pulls of this repository's items, as the pull logs know them.
#[derive(Debug, Clone)]
pub enum Pulls {
    /// The logs hold the registry's events from `since` on.
    Known {
        /// The oldest event the logs still hold (`None`: none in the window).
        since: Option<DateTime<Utc>>,
        /// Digest → last pull.
        by_digest: HashMap<String, DateTime<Utc>>,
        /// Tag → last pull.
        by_tag: HashMap<String, DateTime<Utc>>,
    },
    /// The logs could not be read.
    Unknown(String),
}

/// Digest → the workload that runs it through a tag pointing to it now
/// ([`Evidence::in_use_by_tag`]).
pub(super) type InUseByTag<'a> = HashMap<&'a str, &'a String>;

impl Evidence {
    /// The `keepDeployed` most recently deployed of the `present` digests, ranked (1 = the
    /// latest): those running now first, then the history's, newest first.
    pub(super) fn deployed_ranks<'a>(
        &self,
        present: impl Iterator<Item = &'a str>,
        tags_now: &InUseByTag<'_>,
    ) -> HashMap<String, usize> {
        if self.keep_deployed == 0 {
            return HashMap::new();
        }
        let mut seen: Vec<(DateTime<Utc>, &str)> = present
            .filter_map(|digest| {
                let now = self
                    .in_use(digest, tags_now)
                    .map(|_| DateTime::<Utc>::MAX_UTC);
                now.or_else(|| self.deployed_at.get(digest).copied())
                    .map(|at| (at, digest))
            })
            .collect();
        seen.sort_by(|a, b| b.cmp(a));
        seen.into_iter()
            .take(self.keep_deployed)
            .enumerate()
            .map(|(i, (_, digest))| (digest.to_string(), i + 1))
            .collect()
    }

    /// The digests that a tag pointing to them now (`tags_now`: tag, digest, in server
    /// order) has a workload run: digest → the workload of its first such tag. One pass
    /// over the tags, so that each manifest is then looked up, not matched against every
    /// tag (a repository of 100,000 images would take 10¹⁰ comparisons).
    pub(super) fn in_use_by_tag<'t>(
        &'t self,
        tags_now: impl Iterator<Item = (&'t str, &'t str)>,
    ) -> InUseByTag<'t> {
        let Some(in_use) = self.in_use.as_ref().filter(|u| !u.tags.is_empty()) else {
            return InUseByTag::new();
        };
        let mut found = InUseByTag::new();
        for (tag, digest) in tags_now {
            if let Some(resource) = in_use.tags.get(tag) {
                found.entry(digest).or_insert(resource);
            }
        }
        found
    }

    /// The workload running `digest`, by digest or by a tag that points to it now.
    fn in_use<'s>(&'s self, digest: &str, tags_now: &InUseByTag<'s>) -> Option<&'s String> {
        let in_use = self.in_use.as_ref()?;
        in_use
            .digests
            .get(digest)
            .or_else(|| tags_now.get(digest).copied())
            .or_else(|| {
                self.deployed_via
                    .get(digest)?
                    .iter()
                    .find_map(|t| in_use.tags.get(t))
            })
    }

    /// Why a digest must stay because a workload runs it (by digest, or by a tag that
    /// points to it now), because it is among `ranks` (the most recently deployed), or
    /// because it was `updated` within the in-use grace.
    pub(super) fn keeps_digest(
        &self,
        digest: &str,
        updated: Option<&Timestamp>,
        tags_now: &InUseByTag<'_>,
        ranks: &HashMap<String, usize>,
    ) -> Option<KeepReason> {
        if let Some(resource) = self.in_use(digest, tags_now) {
            return Some(KeepReason::InUse {
                resource: resource.as_str().into(),
            });
        }
        ranks
            .get(digest)
            .map(|&rank| KeepReason::RecentlyDeployed { rank })
            .or_else(|| self.fresh(updated))
    }

    /// Why a tag must stay because a workload refers to it by name, or because it was
    /// `updated` within the in-use grace.
    pub(super) fn keeps_tag(&self, tag: &str, updated: Option<&Timestamp>) -> Option<KeepReason> {
        match self.in_use.as_ref().and_then(|u| u.tags.get(tag)) {
            Some(resource) => Some(KeepReason::InUse {
                resource: resource.as_str().into(),
            }),
            None => self.fresh(updated),
        }
    }

    /// [`KeepReason::InUseGrace`] when `updated` is after the grace's cut-off. A missing or
    /// unreadable time is not fresh here: the eligibility ladder keeps it for that.
    fn fresh(&self, updated: Option<&Timestamp>) -> Option<KeepReason> {
        let cutoff = self.fresh_after?;
        let at = updated?.instant()?;
        (at > cutoff).then_some(KeepReason::InUseGrace { cutoff })
    }

    /// Whether the image `digest` carries an unresolved finding at least `min` severe, or
    /// why it is not eligible under a `vulnerable` rule: none that severe, or findings that
    /// are unknown (never read as "no findings").
    pub(super) fn vulnerable(&self, min: Severity, digest: &str) -> Result<(), KeepReason> {
        match &self.findings {
            None => Err(KeepReason::FindingsUnknown {
                why: "no findings were read".into(),
            }),
            Some(Findings::Unknown(why)) => Err(KeepReason::FindingsUnknown {
                why: why.as_str().into(),
            }),
            Some(Findings::Known(worst)) => match worst.get(digest) {
                Some(severity) if *severity >= min => Ok(()),
                _ => Err(KeepReason::NotVulnerable { min }),
            },
        }
    }

    /// Whether an item (its tags and digest) was not pulled since `window_start`, or why
    /// it counts as pulled.
    pub(super) fn unpulled_since(
        &self,
        window_start: DateTime<Utc>,
        tags: &[&str],
        digest: &str,
    ) -> Result<(), KeepReason> {
        let unknown = |why: &str| Err(KeepReason::PullsUnknown { why: why.into() });
        match &self.pulls {
            None => unknown("no pull logs were read"),
            Some(Pulls::Unknown(why)) => unknown(why),
            Some(Pulls::Known {
                since,
                by_digest,
                by_tag,
            }) => {
                match since {
                    None => {
                        return unknown(
                            "the pull logs hold no event of the registry in the window",
                        );
                    }
                    Some(since) if *since > window_start => {
                        return unknown(&format!(
                            "the pull logs start at {}, after the window's start {}",
                            since.format("%Y-%m-%dT%H:%M:%SZ"),
                            window_start.format("%Y-%m-%dT%H:%M:%SZ")
                        ));
                    }
                    Some(_) => {}
                }
                let last = tags
                    .iter()
                    .filter_map(|t| by_tag.get(*t))
                    .chain(by_digest.get(digest))
                    .max();
                match last {
                    Some(at) if *at >= window_start => Err(KeepReason::RecentlyPulled { at: *at }),
                    _ => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixture::{Listing, Manifest, digest_of};
    use crate::plan::{RepositoryPlan, Verdict};
    use crate::policy::PolicyDocument;
    use chrono::TimeDelta;
    use std::collections::BTreeSet;

    const DAY: i64 = 24 * 60;

    fn policy(text: &str) -> crate::policy::Policy {
        PolicyDocument::parse(text).expect("policy").policy
    }

    /// Tags of `r` older than a day, and untagged manifests.
    fn by_age() -> crate::policy::Policy {
        policy(
            r#"{"rules":[{"filter":["r:.*"],"ago":"1d","untagged":true}],"protectInUse":["sub-1"],"keepDeployed":0}"#,
        )
    }

    fn by_pull() -> crate::policy::Policy {
        policy(r#"{"rules":[{"filter":["r:.*"],"ago":"0d","untagged":true,"notPulledFor":"30d"}]}"#)
    }

    fn listing() -> Listing {
        Listing::new(Utc::now())
            .with(Manifest::image("a").age(90 * DAY).tag("a", 90 * DAY))
            .with(Manifest::image("b").age(80 * DAY).tag("b", 80 * DAY))
            .with(Manifest::image("c").age(70 * DAY))
            .with(Manifest::image("d").age(60 * DAY).tag("d", 60 * DAY))
    }

    fn plan(
        listing: &Listing,
        policy: &crate::policy::Policy,
        evidence: Evidence,
    ) -> RepositoryPlan {
        listing
            .plan_with("r", policy, evidence)
            .expect("plan")
            .expect("covered")
    }

    fn removed(listing: &Listing, plan: &RepositoryPlan) -> BTreeSet<String> {
        plan.manifests
            .iter()
            .filter(|m| m.verdict.is_removed())
            .filter_map(|m| listing.name_of(&m.digest))
            .map(str::to_string)
            .collect()
    }

    fn reason(plan: &RepositoryPlan, name: &str) -> Option<&'static str> {
        let digest = digest_of(name);
        plan.manifests
            .iter()
            .find(|m| m.digest == digest)
            .and_then(|m| match &m.verdict {
                Verdict::Keep { reason } => Some(reason.name()),
                _ => None,
            })
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn what_runs_by_digest_or_by_tag_is_kept_with_its_workload() {
        let listing = listing();
        let in_use = InUse {
            tags: HashMap::from([("b".to_string(), "/apps/web".to_string())]),
            digests: HashMap::from([(digest_of("c"), "/jobs/nightly".to_string())]),
        };
        let evidence = Evidence {
            in_use: Some(in_use),
            ..Evidence::default()
        };
        let plan = plan(&listing, &by_age(), evidence);
        assert_eq!(removed(&listing, &plan), set(&["a", "d"]));
        assert_eq!(reason(&plan, "b"), Some("inUse"));
        assert_eq!(reason(&plan, "c"), Some("inUse"));
        let tag_b = plan.tags.iter().find(|t| t.name == "b").expect("tag b");
        assert!(
            matches!(&tag_b.verdict, Verdict::Keep { reason: KeepReason::InUse { resource } } if &**resource == "/apps/web"),
            "{tag_b:?}"
        );
        // Without the evidence, all four go: the protection is what keeps them.
        let bare = plan_without(&listing);
        assert_eq!(removed(&listing, &bare), set(&["a", "b", "c", "d"]));
    }

    fn plan_without(listing: &Listing) -> RepositoryPlan {
        plan(listing, &by_age(), Evidence::default())
    }

    #[test]
    fn a_digest_deployed_by_a_tag_that_moved_stays_while_the_tag_is_referred_to() {
        // `a` ran as r:prod; prod now points to `d`, and a workload still refers to prod.
        let listing = Listing::new(Utc::now())
            .with(Manifest::image("a").age(90 * DAY))
            .with(Manifest::image("d").age(60 * DAY).tag("prod", 2 * DAY));
        let evidence = Evidence {
            in_use: Some(InUse {
                tags: HashMap::from([("prod".to_string(), "/apps/web".to_string())]),
                digests: HashMap::new(),
            }),
            deployed_via: HashMap::from([(digest_of("a"), vec!["prod".to_string()])]),
            ..Evidence::default()
        };
        let kept = plan(&listing, &by_age(), evidence.clone());
        assert_eq!(removed(&listing, &kept), BTreeSet::new());
        assert_eq!(reason(&kept, "a"), Some("inUse"));
        // Once no workload refers to prod, `a` may go.
        let moved_on = Evidence {
            in_use: Some(InUse::default()),
            ..evidence
        };
        let plan = plan(&listing, &by_age(), moved_on);
        assert!(removed(&listing, &plan).contains("a"));
    }

    #[test]
    fn keep_deployed_keeps_the_most_recently_deployed_digests() {
        let listing = listing();
        let now = Utc::now();
        let evidence = Evidence {
            in_use: Some(InUse::default()),
            deployed_at: HashMap::from([
                (digest_of("a"), now - TimeDelta::days(3)),
                (digest_of("c"), now - TimeDelta::days(1)),
                (digest_of("d"), now - TimeDelta::days(9)),
            ]),
            keep_deployed: 2,
            ..Evidence::default()
        };
        let plan = plan(&listing, &by_age(), evidence);
        assert_eq!(reason(&plan, "c"), Some("recentlyDeployed"));
        assert_eq!(reason(&plan, "a"), Some("recentlyDeployed"));
        assert_eq!(removed(&listing, &plan), set(&["b", "d"]));
    }

    #[test]
    fn the_in_use_grace_keeps_what_was_updated_within_it() {
        let now = Utc::now();
        let listing = Listing::new(now)
            .with(Manifest::image("a").age(90 * DAY).tag("a", 90 * DAY))
            .with(Manifest::image("fresh").age(3 * 60).tag("new", 60))
            .with(Manifest::image("untagged").age(5 * 60));
        let evidence = |fresh_after| Evidence {
            in_use: Some(InUse::default()),
            fresh_after,
            ..Evidence::default()
        };
        let zero_ago = policy(
            r#"{"rules":[{"filter":["r:.*"],"ago":"0d","untagged":true}],"protectInUse":["s"]}"#,
        );
        let kept = plan(
            &listing,
            &zero_ago,
            evidence(Some(now - TimeDelta::hours(48))),
        );
        assert_eq!(removed(&listing, &kept), set(&["a"]));
        assert_eq!(reason(&kept, "fresh"), Some("inUseGrace"));
        assert_eq!(reason(&kept, "untagged"), Some("inUseGrace"));
        let tag = kept.tags.iter().find(|t| t.name == "new").expect("tag new");
        assert!(
            matches!(
                &tag.verdict,
                Verdict::Keep {
                    reason: KeepReason::InUseGrace { .. }
                }
            ),
            "{tag:?}"
        );
        // A grace shorter than their age, or none: they go.
        let short = plan(
            &listing,
            &zero_ago,
            evidence(Some(now - TimeDelta::minutes(30))),
        );
        assert_eq!(removed(&listing, &short), set(&["a", "fresh", "untagged"]));
        let none = plan(&listing, &zero_ago, evidence(None));
        assert_eq!(removed(&listing, &none), set(&["a", "fresh", "untagged"]));
    }

    #[test]
    fn the_grace_defaults_to_48_hours_with_in_use_protection_only() {
        let on = policy(r#"{"rules":[{"filter":["r:.*"],"ago":"1d"}],"protectInUse":["s"]}"#);
        assert_eq!(on.in_use_grace(), Some(TimeDelta::hours(48)));
        assert_eq!(
            crate::policy::Ago::parse(crate::policy::DEFAULT_IN_USE_GRACE)
                .expect("default")
                .duration,
            TimeDelta::hours(48)
        );
        let set_to = policy(
            r#"{"rules":[{"filter":["r:.*"],"ago":"1d"}],"protectInUse":["s"],"inUseGrace":"0h"}"#,
        );
        assert_eq!(set_to.in_use_grace(), Some(TimeDelta::zero()));
        assert_eq!(by_pull().in_use_grace(), None);
    }

    #[test]
    fn a_recent_pull_keeps_an_image_and_an_old_one_does_not() {
        let listing = listing();
        let now = Utc::now();
        let pulls = Pulls::Known {
            since: Some(now - TimeDelta::days(60)),
            by_digest: HashMap::from([(digest_of("c"), now - TimeDelta::days(7))]),
            by_tag: HashMap::from([
                ("a".to_string(), now - TimeDelta::days(2)),
                ("b".to_string(), now - TimeDelta::days(45)),
            ]),
        };
        let evidence = Evidence {
            pulls: Some(pulls),
            ..Evidence::default()
        };
        let plan = plan(&listing, &by_pull(), evidence);
        assert_eq!(removed(&listing, &plan), set(&["b", "d"]));
        assert_eq!(reason(&plan, "c"), Some("recentlyPulled"));
        let tag_a = plan.tags.iter().find(|t| t.name == "a").expect("tag a");
        assert!(matches!(
            &tag_a.verdict,
            Verdict::Keep {
                reason: KeepReason::RecentlyPulled { .. }
            }
        ));
    }

    #[test]
    fn logs_that_do_not_cover_the_window_or_cannot_be_read_keep_everything() {
        let listing = listing();
        let now = Utc::now();
        for pulls in [
            Pulls::Known {
                since: Some(now - TimeDelta::days(10)),
                by_digest: HashMap::new(),
                by_tag: HashMap::new(),
            },
            Pulls::Known {
                since: None,
                by_digest: HashMap::new(),
                by_tag: HashMap::new(),
            },
            Pulls::Unknown("the query failed".to_string()),
        ] {
            let evidence = Evidence {
                pulls: Some(pulls.clone()),
                ..Evidence::default()
            };
            let plan = plan(&listing, &by_pull(), evidence);
            assert_eq!(removed(&listing, &plan), BTreeSet::new(), "{pulls:?}");
            assert!(
                plan.tags.iter().all(|t| !t.verdict.is_removed()),
                "{pulls:?}"
            );
            assert_eq!(reason(&plan, "c"), Some("pullsUnknown"));
        }
        // No evidence at all (the run read no logs): the same.
        let plan = plan(&listing, &by_pull(), Evidence::default());
        assert_eq!(removed(&listing, &plan), BTreeSet::new());
    }

    fn by_vulnerability() -> crate::policy::Policy {
        policy(
            r#"{"rules":[{"filter":["r:.*"],"ago":"1d","untagged":true,"vulnerable":{"minSeverity":"High"}}]}"#,
        )
    }

    #[test]
    fn a_vulnerable_rule_selects_only_images_with_findings_that_severe() {
        let listing = listing();
        let findings = Findings::Known(HashMap::from([
            (digest_of("a"), Severity::Critical),
            (digest_of("b"), Severity::Medium),
            (digest_of("c"), Severity::High),
        ]));
        let evidence = Evidence {
            findings: Some(findings),
            ..Evidence::default()
        };
        let plan = plan(&listing, &by_vulnerability(), evidence);
        assert_eq!(removed(&listing, &plan), set(&["a", "c"]));
        // b and d stay because their tags do, which the rule does not select.
        assert_eq!(reason(&plan, "b"), Some("tagged"));
        assert_eq!(reason(&plan, "d"), Some("tagged"));
        let tag_b = plan.tags.iter().find(|t| t.name == "b").expect("tag b");
        assert!(matches!(
            &tag_b.verdict,
            Verdict::Keep {
                reason: KeepReason::NotVulnerable {
                    min: Severity::High
                }
            }
        ));
    }

    #[test]
    fn findings_that_cannot_be_read_select_nothing() {
        let listing = listing();
        for findings in [Some(Findings::Unknown("HTTP 500".to_string())), None] {
            let evidence = Evidence {
                findings,
                ..Evidence::default()
            };
            let plan = plan(&listing, &by_vulnerability(), evidence);
            assert_eq!(removed(&listing, &plan), BTreeSet::new());
            assert!(plan.tags.iter().all(|t| !t.verdict.is_removed()));
            assert_eq!(reason(&plan, "c"), Some("findingsUnknown"));
        }
    }

    #[test]
    fn protections_still_win_over_a_vulnerable_rule() {
        let listing = listing();
        let evidence = Evidence {
            findings: Some(Findings::Known(HashMap::from([
                (digest_of("a"), Severity::Critical),
                (digest_of("c"), Severity::Critical),
            ]))),
            in_use: Some(InUse {
                tags: HashMap::new(),
                digests: HashMap::from([(digest_of("c"), "/apps/web".to_string())]),
            }),
            ..Evidence::default()
        };
        let with_in_use = policy(
            r#"{"rules":[{"filter":["r:.*"],"ago":"1d","untagged":true,"vulnerable":{"minSeverity":"High"}}],"protect":["r:^a$"],"protectInUse":["s"],"inUseGrace":"0h"}"#,
        );
        let plan = plan(&listing, &with_in_use, evidence);
        assert_eq!(removed(&listing, &plan), BTreeSet::new());
        assert_eq!(reason(&plan, "c"), Some("inUse"));
    }

    #[test]
    fn age_and_pulls_must_both_hold() {
        // notPulledFor with an ago: an unpulled image younger than the ago stays.
        let listing = listing();
        let now = Utc::now();
        let both = policy(
            r#"{"rules":[{"filter":["r:.*"],"ago":"65d","untagged":true,"notPulledFor":"30d"}]}"#,
        );
        let evidence = Evidence {
            pulls: Some(Pulls::Known {
                since: Some(now - TimeDelta::days(100)),
                by_digest: HashMap::new(),
                by_tag: HashMap::new(),
            }),
            ..Evidence::default()
        };
        let plan = plan(&listing, &both, evidence);
        assert_eq!(removed(&listing, &plan), set(&["a", "b", "c"]));
        assert_eq!(reason(&plan, "d"), Some("tagged"));
    }
}
