//! Applying a saved plan to a repository that changed since: each case plans `before`,
//! changes it into `after`, and checks exactly what reconciling deletes and why the rest
//! of the plan is kept.

use super::reconcile;
use crate::plan::fixture::{Listing, Manifest, digest_of};
use crate::plan::{KeepReason, RepositoryPlan, Verdict};
use crate::policy::{Filter, Policy, Rule, RuleSpec};
use crate::saved::SavedRepository;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

const DAY: i64 = 24 * 60;

/// One reference time for the plan and the changed registry (listing times are relative).
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
        .expect("time")
        .to_utc()
}

/// Tags of `r` older than a day, and untagged manifests older than a day.
fn policy() -> Policy {
    let filters = vec!["r:.*".to_string()];
    let rule = Rule::build(RuleSpec {
        filters: &filters,
        ago: Some("1d"),
        keep: 0,
        untagged: true,
        untagged_only: false,
        include_locked: false,
        not_pulled_for: None,
        vulnerable_min: None,
        bounds: Default::default(),
    })
    .expect("rule");
    Policy {
        rules: vec![rule],
        protect: Vec::<Filter>::new(),
        ..Policy::default()
    }
}

fn plan(listing: &Listing) -> RepositoryPlan {
    listing
        .plan("r", &policy())
        .expect("plan")
        .expect("covered")
}

fn saved(plan: &RepositoryPlan) -> SavedRepository {
    SavedRepository {
        repository: plan.repository.clone(),
        tags: plan.tags.clone(),
        manifests: plan.manifests.clone(),
    }
}

/// What a plan deletes: `tag:NAME` and `manifest:NAME` (fixture names).
fn deleted(listing: &Listing, plan: &RepositoryPlan) -> BTreeSet<String> {
    let tags = plan.tags_to_delete().map(|t| format!("tag:{}", t.name));
    let manifests = plan.manifests_to_delete().map(|m| {
        let name = listing.name_of(&m.digest).unwrap_or("?");
        format!("manifest:{name}")
    });
    tags.chain(manifests).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The keep reason of manifest `name` in `plan`.
fn manifest_reason(plan: &RepositoryPlan, name: &str) -> Option<KeepReason> {
    let digest = digest_of(name);
    plan.manifests
        .iter()
        .find(|m| m.digest == digest)
        .and_then(|m| match &m.verdict {
            Verdict::Keep { reason } => Some(reason.clone()),
            _ => None,
        })
}

fn tag_reason(plan: &RepositoryPlan, name: &str) -> Option<KeepReason> {
    plan.tags
        .iter()
        .find(|t| t.name == name)
        .and_then(|t| match &t.verdict {
            Verdict::Keep { reason } => Some(reason.clone()),
            _ => None,
        })
}

fn is_drift(reason: Option<KeepReason>) -> bool {
    matches!(reason, Some(KeepReason::Drift { .. }))
}

/// Two old images tagged `a` and `b`, one old untagged image `u`, and a fresh `new`.
fn before() -> Listing {
    Listing::new(now())
        .with(Manifest::image("a").age(3 * DAY).tag("a", 3 * DAY))
        .with(Manifest::image("b").age(4 * DAY).tag("b", 4 * DAY))
        .with(Manifest::image("u").age(5 * DAY))
        .with(Manifest::image("new").age(10).tag("new", 10))
}

#[test]
fn an_unchanged_registry_gets_exactly_the_saved_deletions() {
    let listing = before();
    let planned = plan(&listing);
    let applied = reconcile(&saved(&planned), plan(&listing));
    assert_eq!(deleted(&listing, &applied), deleted(&listing, &planned));
    assert_eq!(
        deleted(&listing, &applied),
        set(&["tag:a", "tag:b", "manifest:a", "manifest:b", "manifest:u"])
    );
}

#[test]
fn a_tag_pushed_onto_a_planned_image_keeps_the_image() {
    let planned = plan(&before());
    let after = Listing::new(now())
        .with(
            Manifest::image("a")
                .age(3 * DAY)
                .tag("a", 3 * DAY)
                .tag("hotfix", 1),
        )
        .with(Manifest::image("b").age(4 * DAY).tag("b", 4 * DAY))
        .with(Manifest::image("u").age(5 * DAY))
        .with(Manifest::image("new").age(10).tag("new", 10));
    let applied = reconcile(&saved(&planned), plan(&after));
    let got = deleted(&after, &applied);
    assert!(!got.contains("manifest:a"), "{got:?}");
    assert!(
        got.contains("tag:a"),
        "the tag itself is unchanged: {got:?}"
    );
    assert!(is_drift(manifest_reason(&applied, "a")));
    assert_eq!(
        tag_reason(&applied, "hotfix").map(|r| r.name()),
        Some("tooYoung")
    );
}

#[test]
fn a_pushed_tag_on_an_untagged_image_keeps_it() {
    let planned = plan(&before());
    let after = Listing::new(now())
        .with(Manifest::image("a").age(3 * DAY).tag("a", 3 * DAY))
        .with(Manifest::image("b").age(4 * DAY).tag("b", 4 * DAY))
        .with(Manifest::image("u").age(5 * DAY).tag("release", 2))
        .with(Manifest::image("new").age(10).tag("new", 10));
    let applied = reconcile(&saved(&planned), plan(&after));
    let got = deleted(&after, &applied);
    assert!(!got.contains("manifest:u"), "{got:?}");
    assert!(is_drift(manifest_reason(&applied, "u")));
    assert_eq!(
        got,
        set(&["tag:a", "tag:b", "manifest:a", "manifest:b"]),
        "the rest of the plan is still applied"
    );
}

#[test]
fn a_moved_tag_is_not_deleted_and_neither_image_is_deleted_through_it() {
    let planned = plan(&before());
    // Tag `b` now points to `a` (as old), so `b`'s image is untagged and stale: the fresh
    // plan would delete it, but the saved plan deleted the tag on another digest.
    let after = Listing::new(now())
        .with(
            Manifest::image("a")
                .age(3 * DAY)
                .tag("a", 3 * DAY)
                .tag("b", 4 * DAY),
        )
        .with(Manifest::image("b").age(4 * DAY))
        .with(Manifest::image("u").age(5 * DAY))
        .with(Manifest::image("new").age(10).tag("new", 10));
    let applied = reconcile(&saved(&planned), plan(&after));
    let got = deleted(&after, &applied);
    assert!(!got.contains("tag:b"), "{got:?}");
    assert!(is_drift(tag_reason(&applied, "b")));
    assert!(!got.contains("manifest:a"), "its tag b stays: {got:?}");
    assert!(
        got.contains("manifest:b"),
        "b was planned for deletion and is unchanged"
    );
}

#[test]
fn a_new_lock_keeps_the_item() {
    let planned = plan(&before());
    let after = Listing::new(now())
        .with(Manifest::image("a").age(3 * DAY).tag("a", 3 * DAY))
        .with(Manifest::image("b").age(4 * DAY).tag("b", 4 * DAY))
        .with(Manifest::image("u").age(5 * DAY).locked())
        .with(Manifest::image("new").age(10).tag("new", 10));
    let applied = reconcile(&saved(&planned), plan(&after));
    let got = deleted(&after, &applied);
    assert!(!got.contains("manifest:u"), "{got:?}");
    assert!(manifest_reason(&applied, "u").is_some());
}

#[test]
fn a_newer_push_is_no_longer_stale() {
    let planned = plan(&before());
    // `a` re-pushed after the plan was made (its tag's time is after the reference time).
    let after = Listing::new(now())
        .with(Manifest::image("a").age(3 * DAY).tag("a", -30))
        .with(Manifest::image("b").age(4 * DAY).tag("b", 4 * DAY))
        .with(Manifest::image("u").age(5 * DAY))
        .with(Manifest::image("new").age(10).tag("new", 10));
    let applied = reconcile(&saved(&planned), plan(&after));
    let got = deleted(&after, &applied);
    assert!(
        !got.contains("tag:a") && !got.contains("manifest:a"),
        "{got:?}"
    );
    assert!(is_drift(tag_reason(&applied, "a")));
    assert!(is_drift(manifest_reason(&applied, "a")));
    assert!(got.contains("manifest:b"));
}

#[test]
fn nothing_the_plan_keeps_is_deleted_even_when_stale_now() {
    let planned = plan(&before());
    // A stale untagged image appeared since (pushed with an old time, e.g. imported).
    let after = before().with(Manifest::image("imported").age(9 * DAY));
    let applied = reconcile(&saved(&planned), plan(&after));
    let got = deleted(&after, &applied);
    assert!(!got.contains("manifest:imported"), "{got:?}");
    assert_eq!(
        manifest_reason(&applied, "imported"),
        Some(KeepReason::NotInPlan)
    );
}

#[test]
fn a_new_referrer_keeps_its_subject() {
    let planned = plan(&before());
    // An SBOM of `u` was attached since: deleting `u` would delete it as well.
    let after = before().with(Manifest::referrer("sbom", "u").age(1));
    let fresh = plan(&after);
    let applied = reconcile(&saved(&planned), fresh);
    let got = deleted(&after, &applied);
    assert!(!got.contains("manifest:u"), "{got:?}");
    assert!(is_drift(manifest_reason(&applied, "u")));
    assert!(
        applied
            .manifests
            .iter()
            .all(|m| !m.verdict.is_removed() || listing_name(&after, &m.digest) != "sbom"),
        "the new SBOM is not removed"
    );
}

fn listing_name<'a>(listing: &'a Listing, digest: &str) -> &'a str {
    listing.name_of(digest).unwrap_or("?")
}

#[test]
fn a_child_claimed_by_a_new_index_stays_with_it() {
    let index_before = Listing::new(now())
        .with(Manifest::image("c1").age(5 * DAY))
        .with(
            Manifest::index("old", &["c1"])
                .age(5 * DAY)
                .tag("old", 5 * DAY),
        );
    let planned = plan(&index_before);
    assert!(deleted(&index_before, &planned).contains("manifest:c1"));
    let after = index_before
        .clone()
        .with(Manifest::index("kept", &["c1"]).age(1).tag("kept", 1));
    let applied = reconcile(&saved(&planned), plan(&after));
    let got = deleted(&after, &applied);
    assert!(!got.contains("manifest:c1"), "{got:?}");
    assert!(got.contains("manifest:old"), "{got:?}");
}

#[test]
fn the_result_deletes_only_what_both_plans_delete() {
    // Every change at once: the applied deletions are a subset of both plans.
    let listing = before();
    let planned = plan(&listing);
    let after = Listing::new(now())
        .with(Manifest::image("a").age(3 * DAY).tag("a", -5))
        .with(Manifest::image("b").age(4 * DAY))
        .with(Manifest::image("u").age(5 * DAY).tag("x", 1))
        .with(Manifest::image("z").age(8 * DAY))
        .with(Manifest::image("new").age(10).tag("new", 10));
    let fresh = plan(&after);
    let applied = reconcile(&saved(&planned), fresh.clone());
    let got = deleted(&after, &applied);
    let saved_set = deleted(&listing, &planned);
    let fresh_set = deleted(&after, &fresh);
    assert!(got.is_subset(&saved_set), "{got:?} ⊄ {saved_set:?}");
    assert!(got.is_subset(&fresh_set), "{got:?} ⊄ {fresh_set:?}");
    assert_eq!(got, set(&["manifest:b"]));
}
