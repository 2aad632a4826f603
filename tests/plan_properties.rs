//! Property test of the planner over random registries: multi-arch indexes (with children
//! shared between indexes), referrers, cosign signature tags, locks, odd timestamps and
//! random rules (with random `minTags`/`maxTags` and untagged-manifest bounds). Whatever
//! the input, nothing that a kept item depends on is deleted, no protection is overridden,
//! and the tags each rule's filter matches stay within its bounds.

use acr_purge::model::{ManifestAttributes, TagAttributes};
use acr_purge::plan::fixture::{Listing, Manifest, Time, cosign_tag_of, digest_of};
use acr_purge::plan::{KeepReason, RepositoryPlan, Verdict};
use acr_purge::policy::{Ago, Bounds, Filter, Policy, Rule};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use std::collections::{BTreeSet, HashMap, HashSet};

#[derive(Debug, Clone)]
enum Kind {
    Image { docker: bool },
    Index { children: Vec<usize> },
    Referrer { subject: usize },
    Unknown,
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    age_minutes: Option<i64>,
    unreadable: bool,
    locked: bool,
    tags: Vec<(String, i64, bool)>,
    signed: bool,
}

const TAG_NAMES: &[&str] = &[
    "latest", "v1", "v2", "v1.1", "dev-1", "dev-2", "prod", "build-7",
];
const FILTERS: &[&str] = &[
    "r:.*",
    "r:^v",
    "r:dev",
    "r:latest",
    "r:^(?!prod).*$",
    "r:build",
];
const AGES: &[&str] = &["0d", "30m", "1d", "7d", "30d"];

fn node() -> impl Strategy<Value = Node> {
    (
        0..10u8,
        prop::collection::vec(0..64usize, 0..4),
        0..64usize,
        prop::option::weighted(0.9, 1..200_000i64),
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.15),
        prop::collection::vec(
            (
                prop::sample::select(TAG_NAMES),
                1..200_000i64,
                prop::bool::weighted(0.1),
            ),
            0..3,
        ),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(kind, children, subject, age, unreadable, locked, tags, signed)| Node {
                kind: match kind {
                    0..=4 => Kind::Image { docker: kind == 0 },
                    5..=7 => Kind::Index { children },
                    8 => Kind::Referrer { subject },
                    _ => Kind::Unknown,
                },
                age_minutes: age,
                unreadable,
                locked,
                tags: tags
                    .into_iter()
                    .map(|(n, a, l)| (n.to_string(), a, l))
                    .collect(),
                signed,
            },
        )
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        prop::collection::vec(prop::sample::select(FILTERS), 1..3),
        prop::sample::select(AGES),
        0..4usize,
        0..3u8,
        any::<bool>(),
        prop::option::weighted(0.4, 0..4usize),
        prop::option::weighted(0.4, 1..6usize),
        prop::option::weighted(0.3, 0..4usize),
        prop::option::weighted(0.3, 1..6usize),
    )
        .prop_map(
            |(filters, ago, keep, mode, include_locked, min_t, max_t, min_u, max_u)| {
                // A minimum never above its maximum (the policy refuses that), tag bounds
                // only on rules deleting tags, manifest bounds only on rules deleting
                // untagged manifests.
                let pair = |min: Option<usize>, max: Option<usize>| match (min, max) {
                    (Some(n), Some(x)) => (Some(n.min(x)), Some(x)),
                    other => other,
                };
                let (min_tags, max_tags) = match mode {
                    2 => (None, None),
                    _ => pair(min_t, max_t),
                };
                let (min_untagged, max_untagged) = match mode {
                    0 => (None, None),
                    _ => pair(min_u, max_u),
                };
                let rule = Rule {
                    filters: filters.iter().map(|f| Filter::parse(f).unwrap()).collect(),
                    ago: Ago::parse(ago).unwrap(),
                    keep,
                    untagged: mode == 1,
                    untagged_only: mode == 2,
                    include_locked,
                    not_pulled_for: None,
                    vulnerable_min: None,
                    bounds: Bounds {
                        min_tags,
                        max_tags,
                        min_untagged,
                        max_untagged,
                    },
                };
                rule.validate().expect("a rule the policy accepts");
                rule
            },
        )
}

/// Each tag's rank among the tags `filter` matches, computed independently of the planner:
/// an unknown time first, then newest first, then by name; cosign signature tags of a
/// manifest in the repository are not ranked (they follow their manifest).
fn ranks(registry: &Registry, filter: &Filter) -> HashMap<String, usize> {
    let present: HashSet<&str> = registry
        .manifests
        .iter()
        .filter_map(|m| m.digest.as_deref())
        .collect();
    let mut matched: Vec<(Option<DateTime<Utc>>, &str)> = registry
        .tags
        .iter()
        .filter(|t| {
            !acr_purge::plan::cosign_subject(&t.name).is_some_and(|s| present.contains(s.as_str()))
        })
        .filter(|t| filter.matches_tag(&t.name).unwrap())
        .map(|t| {
            let time = t
                .last_update_time
                .as_ref()
                .and_then(acr_purge::model::Timestamp::instant);
            (time, t.name.as_str())
        })
        .collect();
    matched.sort_by(|a, b| match (a.0, b.0) {
        (None, None) => a.1.cmp(b.1),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x).then_with(|| a.1.cmp(b.1)),
    });
    matched
        .into_iter()
        .enumerate()
        .map(|(i, (_, name))| (name.to_string(), i + 1))
        .collect()
}

fn name(i: usize) -> String {
    format!("m{i}")
}

/// A random repository, built with the planner's own fixture builder, plus the graph the
/// invariants check against.
struct Registry {
    listing: Listing,
    tags: Vec<TagAttributes>,
    manifests: Vec<ManifestAttributes>,
    children: HashMap<String, Vec<String>>,
    subjects: HashMap<String, String>,
}

fn build(nodes: &[Node], now: DateTime<Utc>) -> Registry {
    let n = nodes.len();
    let mut listing = Listing::new(now);
    let mut children = HashMap::new();
    let mut subjects = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let me = name(i);
        let mut manifest = match &node.kind {
            Kind::Image { docker: true } => Manifest::docker(&me),
            Kind::Image { docker: false } => Manifest::image(&me),
            Kind::Index { children: c } => {
                // Children only point "down" (lower index → no cycles), like real content addressing.
                let list: Vec<String> = c
                    .iter()
                    .filter(|&&c| i > 0 && c % i != i)
                    .map(|&c| name(c % i.max(1)))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let names: Vec<&str> = list.iter().map(String::as_str).collect();
                children.insert(digest_of(&me), list.iter().map(|c| digest_of(c)).collect());
                Manifest::index(&me, &names)
            }
            Kind::Referrer { subject } if subject % n != i => {
                subjects.insert(digest_of(&me), digest_of(&name(subject % n)));
                Manifest::referrer(&me, &name(subject % n))
            }
            Kind::Referrer { .. } => Manifest::image(&me),
            Kind::Unknown => Manifest::untyped(&me),
        };
        manifest = manifest.updated(match (node.unreadable, node.age_minutes) {
            (true, _) => Time::Raw("date".to_string()),
            (false, Some(minutes)) => Time::MinutesAgo(minutes),
            (false, None) => Time::Missing,
        });
        if node.locked {
            manifest = manifest.locked();
        }
        let mut used = HashSet::new();
        for (tag, age, locked) in &node.tags {
            let tag = format!("{tag}-{i}");
            if used.insert(tag.clone()) {
                manifest = manifest.tag_with(&tag, Time::MinutesAgo(*age), *locked);
            }
        }
        if i > 0 && nodes[i - 1].signed {
            // This manifest is the previous one's cosign signature.
            manifest = manifest.tag(&cosign_tag_of(&name(i - 1)), 100_000);
        }
        listing.push(manifest);
    }
    Registry {
        tags: listing.tags(),
        manifests: listing.manifests(),
        listing,
        children,
        subjects,
    }
}

fn plan(registry: &Registry, policy: &Policy) -> RepositoryPlan {
    registry
        .listing
        .plan("r", policy)
        .expect("filters evaluate")
        .expect("filters cover r")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 768, ..ProptestConfig::default() })]

    #[test]
    fn nothing_a_kept_item_depends_on_is_deleted(
        nodes in prop::collection::vec(node(), 1..24),
        rules in prop::collection::vec(rule(), 1..3),
        protect in prop::bool::weighted(0.3),
    ) {
        let now = Utc::now();
        let registry = build(&nodes, now);
        let policy = Policy {
            rules: rules.clone(),
            protect: if protect { vec![Filter::parse("r:^latest").unwrap()] } else { vec![] },
            ..Policy::default()
        };
        let plan = plan(&registry, &policy);
        let verdict: HashMap<&str, &Verdict> =
            plan.manifests.iter().map(|m| (m.digest.as_str(), &m.verdict)).collect();
        let removed = |d: &str| verdict.get(d).is_some_and(|v| v.is_removed());

        // 1. Everything reachable from a kept tag stays (index children, transitively).
        let mut stack: Vec<String> = plan
            .tags
            .iter()
            .filter(|t| !t.verdict.is_removed())
            .map(|t| t.digest.to_string())
            .collect();
        let mut seen = HashSet::new();
        while let Some(d) = stack.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            prop_assert!(!removed(&d), "{d} is reachable from a kept tag but removed");
            stack.extend(registry.children.get(&d).cloned().unwrap_or_default());
        }

        for m in &plan.manifests {
            let source = registry.manifests.iter().find(|x| x.digest.as_deref() == Some(&m.digest)).unwrap();
            // 2. A kept manifest keeps all its children.
            if !m.verdict.is_removed() {
                for child in registry.children.get(m.digest.as_str()).into_iter().flatten() {
                    prop_assert!(!removed(child), "child {child} of kept {} removed", m.digest);
                }
            }
            if !m.verdict.is_delete() {
                continue;
            }
            // 3. Deleted manifests: every tag on them is deleted or goes with them.
            for tag in plan.tags.iter().filter(|t| t.digest == m.digest) {
                prop_assert!(tag.verdict.is_removed(), "tag {} kept on deleted {}", tag.name, m.digest);
            }
            // 4. Locked only with --include-locked.
            if source.changeable_attributes.is_locked() {
                prop_assert!(rules.iter().any(|r| r.include_locked), "locked {} deleted", m.digest);
                prop_assert!(m.unlock);
            }
            // 5. Unknown age or type never deleted.
            let parsed = source.last_update_time.as_ref().and_then(acr_purge::model::Timestamp::instant);
            prop_assert!(parsed.is_some() || matches!(m.verdict, Verdict::Delete { reason: acr_purge::plan::DeleteReason::SignatureOfDeleted { .. } }),
                "{} with unknown age deleted", m.digest);
            prop_assert!(source.media_type.is_some(), "{} without media type deleted", m.digest);
            // 6. Old enough for at least one rule that deletes manifests.
            if let (Some(t), Verdict::Delete { reason: acr_purge::plan::DeleteReason::Untagged { .. } }) = (parsed, &m.verdict) {
                prop_assert!(rules.iter().any(|r| r.purges_manifests() && t < now - r.ago.duration));
            }
            // 7. A referrer of a manifest that stays is never deleted.
            if let Some(subject) = registry.subjects.get(m.digest.as_str()) {
                prop_assert!(!verdict.contains_key(subject.as_str()) || removed(subject), "referrer {} of kept {subject} deleted", m.digest);
            }
            // 8. Deleted parents come first.
            for (parent, list) in &registry.children {
                if list.iter().any(|d| *d == m.digest) && verdict.get(parent.as_str()).is_some_and(|v| v.is_delete()) {
                    prop_assert!(m.after.iter().any(|a| a == parent), "{} not ordered after parent {parent}", m.digest);
                }
            }
        }

        for tag in &plan.tags {
            let source = registry.tags.iter().find(|t| t.name == tag.name).unwrap();
            if let Verdict::Delete { reason } = &tag.verdict {
                // 9. Deleted tags are old enough for some tag rule (or beyond its maxTags),
                //    unlocked or include-locked, not protected, and never a cosign tag of a
                //    manifest that stays.
                let t = source.last_update_time.as_ref().unwrap().instant().unwrap();
                let beyond_max = matches!(reason, acr_purge::plan::DeleteReason::BeyondMaxTags { .. });
                prop_assert!(beyond_max || rules.iter().any(|r| !r.untagged_only && t < now - r.ago.duration));
                prop_assert!(!source.changeable_attributes.is_locked() || rules.iter().any(|r| r.include_locked));
                prop_assert!(!(protect && tag.name.starts_with("latest")));
                if let Some(subject) = acr_purge::plan::cosign_subject(&tag.name) {
                    prop_assert!(!verdict.contains_key(subject.as_str()) || removed(&subject));
                }
            }
            if let Verdict::Keep { reason: KeepReason::SignatureOfKept { subject } } = &tag.verdict {
                prop_assert!(!removed(subject));
            }
        }

        // 10. Count bounds, per rule, over the tags its filters match (ranked as documented):
        //     those within minTags all stay; those beyond maxTags stay only for a protection
        //     (or another rule's minTags), never for their age or --keep.
        for (number, rule) in rules.iter().enumerate().map(|(i, r)| (i + 1, r)) {
            let b = rule.bounds;
            if rule.untagged_only || (b.min_tags.is_none() && b.max_tags.is_none()) {
                continue;
            }
            // The rule's filters for `r`, joined as the planner joins them (acr purge's `|`).
            let tags = rule
                .filters
                .iter()
                .map(|f| format!("(?:{})", f.to_string().split_once(':').unwrap().1))
                .collect::<Vec<_>>()
                .join("|");
            let rank = ranks(&registry, &Filter::parse(&format!("r:{tags}")).unwrap());
            let mut left = 0usize;
            for tag in &plan.tags {
                let Some(&r) = rank.get(tag.name.as_str()) else { continue };
                let kept = !tag.verdict.is_removed();
                left += usize::from(kept);
                if let Some(min) = b.min_tags.filter(|m| r <= *m) {
                    prop_assert!(kept, "rule {number}: tag {} ranked {r} within minTags {min} removed: {:?}", tag.name, tag.verdict);
                }
                if let (Some(max), Verdict::Keep { reason }) = (b.max_tags.filter(|m| r > *m), &tag.verdict) {
                    // The reason shown may be another rule's (the closest to deletion), so
                    // what stops this rule is checked on the tag itself: its lock without
                    // this rule's --include-locked, or its unknown age.
                    let source = registry.tags.iter().find(|t| t.name == tag.name).unwrap();
                    let locked = source.changeable_attributes.is_locked() && !rule.include_locked;
                    let unknown_age = source.last_update_time.as_ref().and_then(acr_purge::model::Timestamp::instant).is_none();
                    prop_assert!(
                        reason.is_protection() || matches!(reason, KeepReason::KeptByMinTags { .. }) || locked || unknown_age,
                        "rule {number}: tag {} ranked {r} beyond maxTags {max} kept for {}", tag.name, reason.name()
                    );
                }
            }
            if let Some(min) = b.min_tags {
                prop_assert!(left >= min.min(rank.len()), "rule {number}: {left} tags left, minTags {min}");
            }
        }
    }
}
