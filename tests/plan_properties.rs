//! Property test of the planner over random registries: multi-arch indexes (with children
//! shared between indexes), referrers, cosign signature tags, locks, odd timestamps and
//! random rules. Whatever the input, nothing that a kept item depends on is deleted.

use acr_purge::plan::fixture::{Listing, Manifest, Time, cosign_tag_of, digest_of};
use acr_purge::plan::{KeepReason, RepositoryPlan, Verdict};
use acr_purge::policy::{Ago, Filter, Policy, Rule};
use acr_purge::registry::model::{ManifestAttributes, TagAttributes};
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
    )
        .prop_map(|(filters, ago, keep, mode, include_locked)| Rule {
            filters: filters.iter().map(|f| Filter::parse(f).unwrap()).collect(),
            ago: Ago::parse(ago).unwrap(),
            keep,
            untagged: mode == 1,
            untagged_only: mode == 2,
            include_locked,
            not_pulled_for: None,
        })
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
            .map(|t| t.digest.clone())
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
                for child in registry.children.get(&m.digest).into_iter().flatten() {
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
            let parsed = source.last_update_time.as_deref().and_then(acr_purge::registry::model::parse_time);
            prop_assert!(parsed.is_some() || matches!(m.verdict, Verdict::Delete { reason: acr_purge::plan::DeleteReason::SignatureOfDeleted { .. } }),
                "{} with unknown age deleted", m.digest);
            prop_assert!(source.media_type.is_some(), "{} without media type deleted", m.digest);
            // 6. Old enough for at least one rule that deletes manifests.
            if let (Some(t), Verdict::Delete { reason: acr_purge::plan::DeleteReason::Untagged { .. } }) = (parsed, &m.verdict) {
                prop_assert!(rules.iter().any(|r| r.purges_manifests() && t < now - r.ago.duration));
            }
            // 7. A referrer of a manifest that stays is never deleted.
            if let Some(subject) = registry.subjects.get(&m.digest) {
                prop_assert!(!verdict.contains_key(subject.as_str()) || removed(subject), "referrer {} of kept {subject} deleted", m.digest);
            }
            // 8. Deleted parents come first.
            for (parent, list) in &registry.children {
                if list.contains(&m.digest) && verdict.get(parent.as_str()).is_some_and(|v| v.is_delete()) {
                    prop_assert!(m.after.contains(parent), "{} not ordered after parent {parent}", m.digest);
                }
            }
        }

        for tag in &plan.tags {
            let source = registry.tags.iter().find(|t| t.name == tag.name).unwrap();
            if let Verdict::Delete { .. } = tag.verdict {
                // 9. Deleted tags are old enough for some tag rule, unlocked or include-locked,
                //    not protected, and never a cosign tag of a manifest that stays.
                let t = acr_purge::registry::model::parse_time(source.last_update_time.as_deref().unwrap()).unwrap();
                prop_assert!(rules.iter().any(|r| !r.untagged_only && t < now - r.ago.duration));
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
    }
}
