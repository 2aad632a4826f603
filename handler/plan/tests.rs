//! One case per keep and delete reason, on small in-memory repositories: each names the
//! item it is about and the decision it must get. A reason without a case fails
//! `every_reason_has_a_case`, so a new reason arrives with its test.

use super::fixture::{Listing, Manifest, Time, cosign_tag_of};
use super::verdict::{every_delete_reason, every_keep_reason};
use super::{KeepReason, RepositoryPlan, Verdict};
use crate::policy::{Bounds, Filter, Policy, Rule, RuleSpec};
use chrono::Utc;
use std::collections::BTreeSet;

const DAY: i64 = 24 * 60;

/// The item a case is about.
enum Target {
    Tag(String),
    Manifest(&'static str),
}

struct Case {
    expect: &'static str,
    listing: Listing,
    policy: Policy,
    target: Target,
}

/// One rule: `filters`, `--ago` and the mode flags, as the command line would give them.
fn rule(filters: &[&str], ago: &str, keep: usize, untagged: bool, untagged_only: bool) -> Rule {
    let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
    Rule::build(RuleSpec {
        filters: &filters,
        ago: Some(ago),
        keep,
        untagged,
        untagged_only,
        include_locked: false,
        not_pulled_for: None,
        vulnerable_min: None,
        bounds: Default::default(),
    })
    .expect("a valid rule")
}

/// `rule` with count bounds, checked as the policy parser checks them.
fn bounded(mut rule: Rule, bounds: Bounds) -> Rule {
    rule.bounds = bounds;
    rule.validate().expect("valid bounds");
    rule
}

fn min_tags(n: usize) -> Bounds {
    Bounds {
        min_tags: Some(n),
        ..Bounds::default()
    }
}

fn max_tags(n: usize) -> Bounds {
    Bounds {
        max_tags: Some(n),
        ..Bounds::default()
    }
}

fn policy(rule: Rule) -> Policy {
    Policy {
        rules: vec![rule],
        protect: Vec::new(),
        ..Policy::default()
    }
}

/// Tags matching `r:.*` older than a day, and untagged manifests too.
fn purge_all() -> Policy {
    policy(rule(&["r:.*"], "1d", 0, true, false))
}

fn untagged_only() -> Policy {
    policy(rule(&[], "1d", 0, false, true))
}

fn tag(name: &str) -> Target {
    Target::Tag(name.to_string())
}

fn cases() -> Vec<Case> {
    let listing = || Listing::new(Utc::now());
    let case = |expect, listing, policy, target| Case {
        expect,
        listing,
        policy,
        target,
    };
    vec![
        // Deletions.
        case(
            "delete:matched",
            listing().with(Manifest::image("a").age(2 * DAY).tag("v1", 2 * DAY)),
            policy(rule(&["r:^v"], "1d", 0, false, false)),
            tag("v1"),
        ),
        case(
            "delete:untagged",
            listing().with(Manifest::image("a").age(2 * DAY)),
            untagged_only(),
            Target::Manifest("a"),
        ),
        case(
            "delete:signatureOfDeleted",
            listing().with(Manifest::image("img").age(2 * DAY)).with(
                Manifest::image("sig")
                    .age(10)
                    .tag(&cosign_tag_of("img"), 10),
            ),
            policy(rule(&["r:^nomatch$"], "1d", 0, true, false)),
            Target::Manifest("sig"),
        ),
        case(
            "delete:orphanReferrer",
            listing().with(Manifest::referrer("sbom", "gone").age(2 * DAY)),
            untagged_only(),
            Target::Manifest("sbom"),
        ),
        case(
            "cascade",
            listing()
                .with(Manifest::image("img").age(2 * DAY))
                .with(Manifest::referrer("sbom", "img").age(10)),
            untagged_only(),
            Target::Manifest("sbom"),
        ),
        // Keeps by the policy's own choice.
        case(
            "keep:notSelected",
            listing()
                .with(Manifest::image("img").age(2 * DAY).tag("v1", 10))
                .with(
                    Manifest::image("sig")
                        .age(2 * DAY)
                        .tag(&cosign_tag_of("img"), 10),
                )
                .with(Manifest::image("loose").age(2 * DAY)),
            policy(rule(&["r:^nomatch$"], "1d", 0, false, false)),
            Target::Manifest("loose"),
        ),
        case(
            "keep:noFilterMatch",
            listing().with(Manifest::image("a").age(2 * DAY).tag("v1", 2 * DAY)),
            policy(rule(&["r:^x"], "1d", 0, false, false)),
            tag("v1"),
        ),
        case(
            "keep:tooYoung",
            listing().with(Manifest::image("a").age(10).tag("v1", 10)),
            purge_all(),
            tag("v1"),
        ),
        case(
            "keep:keptByKeep",
            listing()
                .with(Manifest::image("a").age(2 * DAY).tag("new", 2 * DAY))
                .with(Manifest::image("b").age(3 * DAY).tag("old", 3 * DAY)),
            policy(rule(&["r:.*"], "1d", 1, false, false)),
            tag("new"),
        ),
        case(
            "delete:beyondMaxTags",
            listing()
                .with(Manifest::image("a").age(10).tag("v1", 10))
                .with(Manifest::image("b").age(20).tag("v2", 20))
                .with(Manifest::image("c").age(30).tag("v3", 30)),
            policy(bounded(rule(&["r:.*"], "1d", 0, false, false), max_tags(2))),
            tag("v3"),
        ),
        case(
            "keep:keptByMinTags",
            listing()
                .with(Manifest::image("a").age(2 * DAY).tag("v1", 2 * DAY))
                .with(Manifest::image("b").age(3 * DAY).tag("v2", 3 * DAY)),
            policy(bounded(rule(&["r:.*"], "1d", 0, false, false), min_tags(1))),
            tag("v1"),
        ),
        case(
            "delete:beyondMaxUntagged",
            listing()
                .with(Manifest::image("a").age(10))
                .with(Manifest::image("b").age(20))
                .with(Manifest::image("c").age(30)),
            policy(bounded(
                rule(&[], "1d", 0, false, true),
                Bounds {
                    max_untagged: Some(2),
                    ..Bounds::default()
                },
            )),
            Target::Manifest("c"),
        ),
        case(
            "keep:keptByMinUntagged",
            listing()
                .with(Manifest::image("a").age(2 * DAY))
                .with(Manifest::image("b").age(3 * DAY)),
            policy(bounded(
                rule(&[], "1d", 0, false, true),
                Bounds {
                    min_untagged: Some(1),
                    ..Bounds::default()
                },
            )),
            Target::Manifest("a"),
        ),
        case(
            "keep:tagged",
            listing().with(Manifest::image("a").age(2 * DAY).tag("v1", 10)),
            purge_all(),
            Target::Manifest("a"),
        ),
        // Keeps for safety.
        case(
            "keep:timestampMissing",
            listing().with(
                Manifest::image("a")
                    .age(2 * DAY)
                    .tag_with("v1", Time::Missing, false),
            ),
            purge_all(),
            tag("v1"),
        ),
        case(
            "keep:timestampUnreadable",
            listing()
                .with(Manifest::image("a").updated(Time::Raw("2020-01-01 00:00:00Z".to_string()))),
            untagged_only(),
            Target::Manifest("a"),
        ),
        case(
            "keep:locked",
            listing().with(Manifest::image("a").age(2 * DAY).locked_tag("v1", 2 * DAY)),
            purge_all(),
            tag("v1"),
        ),
        case(
            "keep:protected",
            listing().with(Manifest::image("a").age(2 * DAY).tag("prod", 2 * DAY)),
            Policy {
                protect: vec![Filter::parse("r:^prod$").expect("filter")],
                ..purge_all()
            },
            tag("prod"),
        ),
        case(
            "keep:signatureOfKept",
            listing()
                .with(Manifest::image("img").age(10).tag("v1", 10))
                .with(
                    Manifest::image("sig")
                        .age(2 * DAY)
                        .tag(&cosign_tag_of("img"), 2 * DAY),
                ),
            purge_all(),
            Target::Tag(cosign_tag_of("img")),
        ),
        case(
            "keep:signatureManifestKept",
            listing().with(Manifest::image("img").age(2 * DAY)).with(
                Manifest::image("sig")
                    .age(2 * DAY)
                    .locked()
                    .tag(&cosign_tag_of("img"), 2 * DAY),
            ),
            policy(rule(&["r:^nomatch$"], "1d", 0, true, false)),
            Target::Tag(cosign_tag_of("img")),
        ),
        case(
            "keep:signatureLocked",
            listing().with(Manifest::image("img").age(2 * DAY)).with(
                Manifest::image("sig")
                    .age(2 * DAY)
                    .locked_tag(&cosign_tag_of("img"), 2 * DAY),
            ),
            policy(rule(&["r:^nomatch$"], "1d", 0, true, false)),
            Target::Manifest("img"),
        ),
        case(
            "keep:indexChild",
            listing()
                .with(Manifest::image("amd64").age(2 * DAY))
                .with(Manifest::index("multi", &["amd64"]).age(10).tag("v1", 10)),
            purge_all(),
            Target::Manifest("amd64"),
        ),
        case(
            "keep:referrer",
            listing()
                .with(Manifest::image("img").age(10).tag("v1", 10))
                .with(Manifest::referrer("sbom", "img").age(2 * DAY)),
            purge_all(),
            Target::Manifest("sbom"),
        ),
        case(
            "keep:keptReferrer",
            listing()
                .with(Manifest::image("img").age(2 * DAY))
                .with(Manifest::referrer("sbom", "img").age(2 * DAY).locked()),
            untagged_only(),
            Target::Manifest("img"),
        ),
        case(
            "keep:noMediaType",
            listing().with(Manifest::untyped("a").age(2 * DAY)),
            untagged_only(),
            Target::Manifest("a"),
        ),
        case(
            "keep:bodyUnavailable",
            listing().with(Manifest::image("a").age(2 * DAY).body_missing()),
            untagged_only(),
            Target::Manifest("a"),
        ),
    ]
}

/// `delete:<reason>`, `keep:<reason>` or `cascade`.
fn decision(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Delete { reason } => format!("delete:{}", reason.name()),
        Verdict::Keep { reason } => format!("keep:{}", reason.name()),
        Verdict::Cascade { .. } => "cascade".to_string(),
    }
}

fn verdict_of<'p>(plan: &'p RepositoryPlan, listing: &Listing, target: &Target) -> &'p Verdict {
    match target {
        Target::Tag(name) => {
            &plan
                .tags
                .iter()
                .find(|t| &t.name == name)
                .unwrap_or_else(|| panic!("tag {name} is in the plan"))
                .verdict
        }
        Target::Manifest(name) => {
            &plan
                .manifests
                .iter()
                .find(|m| listing.name_of(&m.digest) == Some(name))
                .unwrap_or_else(|| panic!("manifest {name} is in the plan"))
                .verdict
        }
    }
}

#[test]
fn each_reason_decides_its_case() {
    for case in cases() {
        let plan = case
            .listing
            .plan("r", &case.policy)
            .expect("filters evaluate")
            .expect("the policy covers r");
        let got = decision(verdict_of(&plan, &case.listing, &case.target));
        assert_eq!(got, case.expect, "{plan:#?}");
    }
}

#[test]
fn every_reason_has_a_case() {
    let covered: BTreeSet<String> = cases().iter().map(|c| c.expect.to_string()).collect();
    let mut wanted: BTreeSet<String> = every_keep_reason()
        .iter()
        .map(|r| format!("keep:{}", r.name()))
        .collect();
    wanted.extend(
        every_delete_reason()
            .iter()
            .map(|r| format!("delete:{}", r.name())),
    );
    wanted.insert("cascade".to_string());
    // Decided when a saved plan is applied, not by the planner: `saved::reconcile`'s tests.
    wanted.remove("keep:drift");
    // Decided by the blast-radius guard over a finished plan: `plan::guard`'s tests.
    wanted.remove("keep:overDeletionLimit");
    wanted.remove("keep:overRunDeletionLimit");
    wanted.remove("keep:notInPlan");
    // Decided from Azure's evidence (in use, deployed, pulled): `plan::evidence`'s tests.
    for name in [
        "inUse",
        "recentlyDeployed",
        "inUseGrace",
        "recentlyPulled",
        "pullsUnknown",
        "notVulnerable",
        "findingsUnknown",
    ] {
        wanted.remove(&format!("keep:{name}"));
    }
    let missing: Vec<&String> = wanted.difference(&covered).collect();
    assert!(missing.is_empty(), "reasons without a case: {missing:?}");
}

#[test]
fn keep_never_counts_referrers() {
    // acr purge keeps the two most recent images; a fresher orphan signature must not
    // take one of their slots.
    let listing = Listing::new(Utc::now())
        .with(Manifest::referrer("orphan", "gone").age(2 * 60))
        .with(Manifest::image("a").age(3 * 60))
        .with(Manifest::image("b").age(5 * 60))
        .with(Manifest::image("c").age(9 * 60));
    let plan = listing
        .plan("r", &policy(rule(&[], "1h", 2, false, true)))
        .expect("plan")
        .expect("covered");
    let deleted: BTreeSet<&str> = plan
        .manifests_to_delete()
        .filter_map(|m| listing.name_of(&m.digest))
        .collect();
    assert_eq!(deleted, BTreeSet::from(["c", "orphan"]));
}

/// Plans `r` and returns each tag's decision as `delete:<reason>` / `keep:<reason>`.
fn tag_decisions(listing: &Listing, policy: &Policy) -> Vec<(String, String)> {
    let plan = listing.plan("r", policy).expect("plan").expect("covered");
    plan.tags
        .iter()
        .map(|t| (t.name.to_string(), decision(&t.verdict)))
        .collect()
}

fn expect(rows: &[(&str, &str)]) -> Vec<(String, String)> {
    rows.iter()
        .map(|(n, d)| (n.to_string(), d.to_string()))
        .collect()
}

#[test]
fn the_order_of_ago_keep_min_and_max() {
    // The README's table: `--ago 1d --keep 1 --min-tags 2 --max-tags 3` over six tags.
    let hour = 60;
    let listing = Listing::new(Utc::now())
        .with(Manifest::image("a").tag("a", hour))
        .with(Manifest::image("b").tag("b", 2 * hour))
        .with(Manifest::image("c").tag("c", 3 * hour))
        .with(Manifest::image("d").tag("d", 2 * DAY))
        .with(Manifest::image("e").locked_tag("e", 3 * DAY))
        .with(Manifest::image("f").tag("f", 4 * DAY));
    let bounds = Bounds {
        min_tags: Some(2),
        max_tags: Some(3),
        ..Bounds::default()
    };
    let busy = policy(bounded(rule(&["r:.*"], "1d", 1, false, false), bounds));
    assert_eq!(
        tag_decisions(&listing, &busy),
        expect(&[
            ("a", "keep:tooYoung"),
            ("b", "keep:tooYoung"),
            ("c", "keep:tooYoung"),
            // Eligible and first for --keep, but ranked 4th: beyond maxTags 3.
            ("d", "delete:beyondMaxTags"),
            // Ranked 5th, but locked: protections win over maxTags (it still takes a rank).
            ("e", "keep:locked"),
            // Eligible and beyond --keep: acr purge's own decision.
            ("f", "delete:matched"),
        ])
    );
    // A quiet repository: every tag is old; minTags keeps the two most recent, whatever
    // --keep says.
    let listing = Listing::new(Utc::now())
        .with(Manifest::image("g").tag("g", 40 * DAY))
        .with(Manifest::image("h").tag("h", 50 * DAY))
        .with(Manifest::image("i").tag("i", 60 * DAY));
    let quiet = policy(bounded(
        rule(&["r:.*"], "30d", 1, false, false),
        min_tags(2),
    ));
    assert_eq!(
        tag_decisions(&listing, &quiet),
        expect(&[
            ("g", "keep:keptByKeep"),
            ("h", "keep:keptByMinTags"),
            ("i", "delete:matched"),
        ])
    );
}

#[test]
fn tags_with_the_same_time_rank_by_name_whatever_the_server_order() {
    let now = Utc::now();
    let listing = Listing::new(now)
        .with(Manifest::image("a").tag("y", 2 * DAY))
        .with(Manifest::image("b").tag("x", 2 * DAY));
    let keep_one = policy(bounded(rule(&["r:.*"], "1d", 0, false, false), min_tags(1)));
    let mut snapshot = listing.snapshot();
    for _ in 0..2 {
        let plan = snapshot
            .plan("r", &keep_one, now)
            .expect("plan")
            .expect("covered");
        let got: BTreeSet<(String, String)> = plan
            .tags
            .iter()
            .map(|t| (t.name.to_string(), decision(&t.verdict)))
            .collect();
        let want: BTreeSet<(String, String)> =
            expect(&[("x", "keep:keptByMinTags"), ("y", "delete:matched")])
                .into_iter()
                .collect();
        assert_eq!(got, want);
        // The same with the registry listing the tied tags the other way round.
        snapshot.tags.reverse();
    }
}

#[test]
fn min_tags_of_one_rule_wins_over_another_rule_deleting() {
    let listing = Listing::new(Utc::now())
        .with(Manifest::image("a").tag("v1", 2 * DAY))
        .with(Manifest::image("b").tag("v2", 3 * DAY))
        .with(Manifest::image("c").tag("dev", 4 * DAY));
    let both = Policy {
        rules: vec![
            bounded(rule(&["r:^v"], "1d", 0, false, false), min_tags(1)),
            rule(&["r:.*"], "1d", 0, false, false),
        ],
        ..Policy::default()
    };
    assert_eq!(
        tag_decisions(&listing, &both),
        expect(&[
            ("v1", "keep:keptByMinTags"),
            ("v2", "delete:matched"),
            ("dev", "delete:matched"),
        ])
    );
}

#[test]
fn max_tags_never_overrides_a_protection_and_protected_tags_take_ranks() {
    let listing = Listing::new(Utc::now())
        .with(Manifest::image("a").tag("prod", 10))
        .with(Manifest::image("b").tag("v2", 20))
        .with(Manifest::image("c").tag("v3", 30));
    let guarded = Policy {
        protect: vec![Filter::parse("r:^prod$").expect("filter")],
        ..policy(bounded(rule(&["r:.*"], "1d", 0, false, false), max_tags(1)))
    };
    assert_eq!(
        tag_decisions(&listing, &guarded),
        expect(&[
            ("prod", "keep:protected"),
            ("v2", "delete:beyondMaxTags"),
            ("v3", "delete:beyondMaxTags"),
        ])
    );
}

#[test]
fn max_untagged_spares_index_children_and_keep_does_not_save_from_it() {
    // Untagged images (two young, one old) and a tagged index whose old child is untagged
    // too: ranked a, b, c, child.
    let listing = Listing::new(Utc::now())
        .with(Manifest::image("child").age(3 * DAY))
        .with(Manifest::index("multi", &["child"]).age(5).tag("v1", 5))
        .with(Manifest::image("a").age(10))
        .with(Manifest::image("b").age(20))
        .with(Manifest::image("c").age(2 * DAY));
    let bounds = Bounds {
        max_untagged: Some(2),
        ..Bounds::default()
    };
    let plan = listing
        .plan(
            "r",
            &policy(bounded(rule(&[], "1d", 1, false, true), bounds)),
        )
        .expect("plan")
        .expect("covered");
    let got: BTreeSet<(&str, String)> = plan
        .manifests
        .iter()
        .map(|m| {
            let name = listing.name_of(&m.digest).unwrap_or("?");
            (name, decision(&m.verdict))
        })
        .collect();
    let want: BTreeSet<(&str, String)> = [
        // Ranked 4th, beyond the maximum, but an index child: protections win.
        ("child", "keep:indexChild"),
        ("multi", "keep:tagged"),
        ("a", "keep:tooYoung"),
        ("b", "keep:tooYoung"),
        // Old and first for --keep 1, but ranked 3rd: beyond the maximum.
        ("c", "delete:beyondMaxUntagged"),
    ]
    .into_iter()
    .map(|(n, d)| (n, d.to_string()))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn a_manifest_keeping_all_its_tags_shares_them_with_kept_tags() {
    let listing = Listing::new(Utc::now())
        .with(
            Manifest::image("whole")
                .age(2 * DAY)
                .tag("keep-a", 2 * DAY)
                .tag("keep-b", 2 * DAY),
        )
        .with(
            Manifest::image("part")
                .age(2 * DAY)
                .tag("keep-c", 2 * DAY)
                .tag("old", 2 * DAY),
        );
    let plan = listing
        .plan("r", &policy(rule(&["r:^old$"], "1d", 0, true, false)))
        .expect("filters evaluate")
        .expect("the policy covers r");
    let kept = |name: &str| {
        let manifest = plan
            .manifests
            .iter()
            .find(|m| listing.name_of(&m.digest) == Some(name))
            .expect("in the plan");
        match &manifest.verdict {
            Verdict::Keep {
                reason: KeepReason::Tagged { tags },
            } => (manifest.tags.clone(), tags.clone()),
            other => panic!("{name}: {other:?}"),
        }
    };
    let (listed, kept_tags) = kept("whole");
    assert_eq!(kept_tags, listed);
    assert!(kept_tags.shares(&listed), "one allocation for both");
    let (listed, kept_tags) = kept("part");
    assert_eq!(listed.len(), 2);
    assert_eq!(
        kept_tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        ["keep-c"]
    );
    assert!(!kept_tags.shares(&listed));
}
