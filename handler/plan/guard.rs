//! The blast-radius guard: a repository's plan that would take away more of its tagged
//! images than `--max-deletions` allows deletes nothing at all.
//!
//! A tagged image is a digest some listed tag points to; the plan takes it away when every
//! tag on it is removed (deleted, or gone with its manifest), whether or not the manifest
//! itself is deleted: an image no tag names can no longer be rolled back to by tag.
//! Untagged manifests (`--untagged`) never count: they are what a purge is for.
//!
//! The limit ([`DeletionLimit`], parsed by `crate::policy::LimitSetting`) is a count or a
//! share rounded down; scheduled and webhook runs default to
//! [`crate::policy::SCHEDULED_DEFAULT`] (50%), the command line to none. The run applies it
//! to each repository's finished plan (`crate::run`, after a saved plan is reconciled, before
//! the plan is recorded): a refused repository is reported completed with nothing deleted,
//! prints `Refused to purge repository …`, and makes the run fail with
//! `RunError::OverDeletionLimit` (exit 1, HTTP 500, an error span: the failed-run alert
//! fires), or be `Partial` when other problems occurred too. A dry run fails the same way.

use super::{KeepReason, OverLimit, RepositoryPlan, Verdict};
use crate::policy::DeletionLimit;
use std::collections::BTreeMap;

/// How many of the repository's tagged images the plan takes away, and how many it holds.
pub fn taken_away(plan: &RepositoryPlan) -> (u64, u64) {
    let mut images: BTreeMap<&str, bool> = BTreeMap::new();
    for tag in &plan.tags {
        let removed = images.entry(tag.digest.as_str()).or_insert(true);
        *removed &= tag.verdict.is_removed();
    }
    let count = images.values().filter(|removed| **removed).count() as u64;
    (count, images.len() as u64)
}

/// Applies `limit` to `plan`: when the plan takes away more tagged images than allowed,
/// every deletion in it (and every removal with one) becomes a keep, with
/// [`KeepReason::OverDeletionLimit`] as the reason. Returns that reason when it did.
pub fn enforce(plan: &mut RepositoryPlan, limit: DeletionLimit) -> Option<KeepReason> {
    let (count, total) = taken_away(plan);
    if count <= limit.allowed(total) {
        return None;
    }
    let reason = KeepReason::OverDeletionLimit(Box::new(OverLimit {
        limit: limit.to_string(),
        count,
        total,
    }));
    refuse(plan, &reason);
    Some(reason)
}

/// The run's count against `--max-run-deletions`: the tagged images its plans take away and
/// the tagged images they hold, each with `before` added (what earlier invocations of a
/// resumed run took away, from its audit log: their repositories are not listed again, so
/// a share is measured against fewer images and can only be stricter).
pub fn run_taken_away<'p>(
    plans: impl IntoIterator<Item = &'p RepositoryPlan>,
    before: u64,
) -> (u64, u64) {
    plans
        .into_iter()
        .map(taken_away)
        .fold((before, before), |(count, total), (c, t)| {
            (count + c, total + t)
        })
}

/// Decides `limit` over a whole run: when the run's plans together take away more tagged
/// images than allowed, returns the reason every removal of every plan is to be kept with
/// ([`refuse`]); `None` when the run may go on. `images` is the total a share is measured
/// against: [`run_taken_away`]'s, or a resumed run's first total when larger.
pub fn over_run_limit<'p>(
    plans: impl IntoIterator<Item = &'p RepositoryPlan>,
    before: u64,
    images: u64,
    limit: DeletionLimit,
) -> Option<KeepReason> {
    let (count, _) = run_taken_away(plans, before);
    let total = images;
    (count > limit.allowed(total)).then(|| {
        KeepReason::OverRunDeletionLimit(Box::new(OverLimit {
            limit: limit.to_string(),
            count,
            total,
        }))
    })
}

/// Keeps every deletion in `plan` (and every removal with one), with `reason`.
pub fn refuse(plan: &mut RepositoryPlan, reason: &KeepReason) {
    for tag in plan.tags.iter_mut().filter(|t| t.verdict.is_removed()) {
        tag.verdict = Verdict::keep(reason.clone());
        tag.unlock = false;
    }
    for manifest in plan.manifests.iter_mut().filter(|m| m.verdict.is_removed()) {
        manifest.verdict = Verdict::keep(reason.clone());
        manifest.unlock = false;
        manifest.after.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixture::{Listing, Manifest};
    use crate::policy::{Policy, PolicyDocument};
    use chrono::Utc;

    const DAY: i64 = 24 * 60;

    fn policy(text: &str) -> Policy {
        PolicyDocument::parse(text).expect("policy").policy
    }

    /// Ten single-tag images, nine of them older than a day; `extra` adds a second tag to
    /// the first old image, which stays young.
    fn ten(extra: bool) -> Listing {
        let mut listing = Listing::new(Utc::now());
        for i in 0..10 {
            let age = if i == 0 { 10 } else { 2 * DAY + i };
            let mut image = Manifest::image(&format!("m{i}"))
                .age(age)
                .tag(&format!("v{i}"), age);
            if extra && i == 1 {
                image = image.tag("stable", 10);
            }
            listing.push(image);
        }
        listing
    }

    fn plan(listing: &Listing) -> RepositoryPlan {
        let broad = policy(r#"{"rules":[{"filter":"r:.*","ago":"1d","untagged":true}]}"#);
        listing.plan("r", &broad).expect("plan").expect("covered")
    }

    #[test]
    fn counts_tagged_images_that_lose_every_tag() {
        assert_eq!(taken_away(&plan(&ten(false))), (9, 10));
        // m1 keeps its young `stable` tag: its image stays reachable by tag.
        assert_eq!(taken_away(&plan(&ten(true))), (8, 10));
    }

    #[test]
    fn over_the_limit_nothing_in_the_repository_is_deleted() {
        let mut refused = plan(&ten(false));
        assert!(refused.manifests_to_delete().count() > 0);
        let reason = enforce(&mut refused, DeletionLimit::Percent(50)).expect("refused");
        assert_eq!(reason.name(), "overDeletionLimit");
        assert!(
            reason.explain().contains("9 of the repository's 10"),
            "{}",
            reason.explain()
        );
        assert!(refused.tags.iter().all(|t| !t.verdict.is_removed()));
        assert!(refused.manifests.iter().all(|m| !m.verdict.is_removed()));
        let kept_by_guard = refused
            .tags
            .iter()
            .filter(|t| matches!(&t.verdict, Verdict::Keep { reason: r } if *r == reason))
            .count();
        assert_eq!(kept_by_guard, 9);
    }

    #[test]
    fn at_or_under_the_limit_the_plan_is_unchanged() {
        for limit in [DeletionLimit::Count(9), DeletionLimit::Percent(90)] {
            let mut allowed = plan(&ten(false));
            let before = allowed.clone();
            assert_eq!(enforce(&mut allowed, limit), None, "{limit}");
            assert_eq!(allowed, before);
        }
        let mut over = plan(&ten(false));
        assert!(enforce(&mut over, DeletionLimit::Count(8)).is_some());
    }

    #[test]
    fn a_run_counts_every_plan_and_what_earlier_invocations_took_away() {
        // Two repositories: 9 of 10 and 8 of 10 tagged images taken away.
        let (a, b) = (plan(&ten(false)), plan(&ten(true)));
        assert_eq!(run_taken_away([&a, &b], 0), (17, 20));
        assert_eq!(run_taken_away([&a, &b], 3), (20, 23));
        assert_eq!(
            over_run_limit([&a, &b], 0, 20, DeletionLimit::Count(17)),
            None
        );
        let reason = over_run_limit([&a, &b], 0, 20, DeletionLimit::Count(16)).expect("over");
        assert_eq!(reason.name(), "overRunDeletionLimit");
        assert!(
            reason.explain().contains("17 of the 20"),
            "{}",
            reason.explain()
        );
        // 85% of 20 is 17: allowed; what a resumed run already took away counts.
        let percent = DeletionLimit::Percent;
        assert_eq!(over_run_limit([&a, &b], 0, 20, percent(85)), None);
        assert!(over_run_limit([&a, &b], 1, 21, percent(85)).is_some());
        // A resumed run measures against its first total: 18 of 30 is within 60%.
        assert_eq!(over_run_limit([&a, &b], 1, 30, percent(60)), None);
        assert!(over_run_limit([&a, &b], 1, 21, percent(60)).is_some());
        let mut refused = a.clone();
        refuse(&mut refused, &reason);
        assert!(refused.tags.iter().all(|t| !t.verdict.is_removed()));
        assert!(refused.manifests.iter().all(|m| !m.verdict.is_removed()));
    }
}
