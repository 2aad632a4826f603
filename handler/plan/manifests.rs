//! Manifest decisions: acr purge's `purgeDanglingManifests`, made safe by walking the graph.
//!
//! A manifest is a candidate for a rule that deletes untagged manifests when every tag on it
//! is deleted by this run, it is older than the rule's cut-off and unlocked (or
//! `--include-locked`). Candidates are then kept when they have no media type, when their
//! body cannot be read, or when they are referrers of a manifest that exists; everything
//! reachable from a kept manifest through index children stays too (locked and `--keep`
//! indexes included: acr purge deletes the children of both); `--keep` keeps the rule's most
//! recent remaining candidates. The rest is deleted, parents before their children.
//!
//! The count bounds rank the repository's untagged manifests (those without a tag once this
//! run's tag deletions are done; [`rank_newest_first`], digest as the tie-break): one ranked
//! beyond a rule's `maxUntaggedManifests` becomes a candidate even when younger than the
//! cut-off (never when locked, of unknown age or pulled within `notPulledFor`), goes
//! through the same screening (referrers, index children, unknown types stay), and is not
//! saved by `--keep`; then a candidate ranked within a rule's `minUntaggedManifests` stays.

use super::scope::{Item, rank_newest_first, timestamp};
use super::states::States;
use super::{Body, DeleteReason, KeepReason, ManifestDecision, Scope, TagDecision, Verdict};
use crate::model::{self, Digest, ManifestAttributes, TagList, TagName};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

/// A manifest that some rules may delete.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    /// Indexes into the scope's rules that select it by age.
    rules: Vec<usize>,
    /// Rules (index, rank, max) that select it for being beyond their
    /// `maxUntaggedManifests`, whatever its age; `--keep` does not save it from them.
    beyond: Vec<(usize, usize, usize)>,
    time: DateTime<Utc>,
    unlock: bool,
    /// The absent subject, when the candidate is an orphan referrer (its body names a
    /// subject that is not in the repository). Orphans never take a `--keep` slot.
    orphan_of: Option<String>,
}

/// The deletion candidates, by digest.
pub(super) fn candidates(
    scope: &Scope,
    manifests: &[ManifestAttributes],
    deleted_tags: &HashSet<&str>,
) -> HashMap<Digest, Candidate> {
    let mut found = HashMap::new();
    let untagged = untagged_ranks(scope, manifests, deleted_tags);
    for manifest in manifests {
        let Some(digest) = &manifest.digest else {
            continue;
        };
        if has_remaining_tags(manifest, deleted_tags) {
            continue;
        }
        let time = timestamp(manifest.last_update_time.as_ref());
        let locked = manifest.changeable_attributes.is_locked();
        let names: Vec<&str> = manifest.tag_names().iter().map(|t| t.as_str()).collect();
        let item = Item {
            evidence: &scope.evidence,
            tags: &names,
            digest,
        };
        let rules: Vec<usize> = scope
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.manifests && r.eligibility(&time, locked, item).is_ok())
            .map(|(i, _)| i)
            .collect();
        let beyond: Vec<(usize, usize, usize)> = scope
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let max = r.bounds.max_untagged?;
                let rank = *untagged[i].as_ref()?.get(digest.as_str())?;
                let ok = r.manifests && rank > max;
                (ok && r.eligibility_regardless_of_age(&time, locked, item).is_ok())
                    .then_some((i, rank, max))
            })
            .collect();
        let Ok(time) = time else {
            continue;
        };
        if !rules.is_empty() || !beyond.is_empty() {
            found.insert(
                digest.clone(),
                Candidate {
                    rules,
                    beyond,
                    time,
                    unlock: locked,
                    orphan_of: None,
                },
            );
        }
    }
    found
}

/// For each rule with `minUntaggedManifests` or `maxUntaggedManifests`: the rank of each
/// manifest left without a tag by this run's tag deletions, by digest.
fn untagged_ranks<'m>(
    scope: &Scope,
    manifests: &'m [ManifestAttributes],
    deleted_tags: &HashSet<&str>,
) -> Vec<Option<HashMap<&'m str, usize>>> {
    let bounded = |r: &super::scope::RuleScope| {
        r.manifests && (r.bounds.min_untagged.is_some() || r.bounds.max_untagged.is_some())
    };
    if !scope.rules.iter().any(bounded) {
        // No bound: rank nothing (a repository may hold a million manifests).
        return vec![None; scope.rules.len()];
    }
    let dangling: Vec<(Option<DateTime<Utc>>, &str)> = manifests
        .iter()
        .filter(|m| !has_remaining_tags(m, deleted_tags))
        .filter_map(|m| {
            let digest = m.digest.as_deref()?;
            Some((timestamp(m.last_update_time.as_ref()).ok(), digest))
        })
        .collect();
    let ranks = rank_newest_first(&dangling);
    let by_digest: HashMap<&str, usize> = dangling
        .iter()
        .zip(ranks)
        .map(|((_, digest), rank)| (*digest, rank))
        .collect();
    scope
        .rules
        .iter()
        .map(|r| bounded(r).then(|| by_digest.clone()))
        .collect()
}

fn has_remaining_tags(manifest: &ManifestAttributes, deleted_tags: &HashSet<&str>) -> bool {
    manifest
        .tag_names()
        .iter()
        .any(|t| !deleted_tags.contains(t.as_str()))
}

/// Bodies needed: every index or manifest of unknown type (for children), and every
/// candidate that may carry a `subject`.
pub(super) fn bodies_needed(
    manifests: &[ManifestAttributes],
    candidates: &HashMap<Digest, Candidate>,
) -> Vec<String> {
    manifests
        .iter()
        .filter_map(|m| {
            let digest = m.digest.as_ref()?;
            let needed = match m.media_type.as_deref() {
                None => true,
                Some(t) if model::is_index(t) => true,
                Some(t) => model::may_have_subject(t) && candidates.contains_key(digest),
            };
            needed.then(|| digest.to_string())
        })
        .collect()
}

/// Where a manifest's decision stands.
pub(super) enum State {
    /// Kept, for this reason.
    Keep(KeepReason),
    /// Still to delete, unless something keeps it. Boxed: one manifest in ten may be a
    /// candidate, and every manifest has a state.
    Candidate(Box<Candidate>),
}

/// Decides every listed manifest. `locked_signatures` maps a manifest to a locked cosign
/// signature tag of it: such a manifest stays (the tag may not go, and its signature must
/// keep something to sign).
pub(super) fn decide(
    scope: &Scope,
    manifests: Vec<ManifestAttributes>,
    tags: &[TagDecision],
    mut candidates: HashMap<Digest, Candidate>,
    bodies: &HashMap<String, Body>,
    referrers: &HashMap<String, Vec<String>>,
    locked_signatures: &HashMap<String, TagName>,
) -> Vec<ManifestDecision> {
    let deleted_tags: HashSet<&str> = tags
        .iter()
        .filter(|t| t.verdict.is_delete())
        .map(|t| t.name.as_str())
        .collect();
    let tags_now = scope
        .evidence
        .in_use_by_tag(tags.iter().map(|t| (t.name.as_str(), t.digest.as_str())));
    let mut states = States::new(&manifests);
    let ranks = scope
        .evidence
        .deployed_ranks(states.by_digest.digests(), &tags_now);
    for (position, manifest) in manifests.iter().enumerate() {
        let Some(digest) = manifest
            .digest
            .as_ref()
            .filter(|_| states.by_digest.decides_at(position))
        else {
            continue;
        };
        if let Some(reason) = scope.evidence.keeps_digest(
            digest,
            manifest.last_update_time.as_ref(),
            &tags_now,
            &ranks,
        ) {
            candidates.remove(digest);
            states.set(position, State::Keep(reason));
            continue;
        }
        let state = match (
            candidates.remove(digest),
            locked_signatures.get(digest.as_str()),
        ) {
            (Some(_), Some(tag)) => State::Keep(KeepReason::SignatureLocked { tag: tag.clone() }),
            (Some(candidate), None) => screen(manifest, candidate, bodies, &states),
            (None, _) => State::Keep(keep_reason(scope, manifest, &deleted_tags)),
        };
        states.set(position, state);
    }
    let kept: Vec<Digest> = kept_digests(&states);
    protect_children(&mut states, bodies, kept);
    keep_subjects_of_kept_referrers(&mut states, bodies, referrers);
    let by_keep = apply_keep(scope, &mut states);
    protect_children(&mut states, bodies, by_keep);
    keep_subjects_of_kept_referrers(&mut states, bodies, referrers);
    let by_min = apply_min(scope, &mut states, &manifests, &deleted_tags);
    protect_children(&mut states, bodies, by_min);
    keep_subjects_of_kept_referrers(&mut states, bodies, referrers);

    let mut states = states.into_vec();
    model::filter_map_shrinking(manifests, |manifest| {
        // Mapped from the last manifest to the first: each takes its own state.
        let state = states.pop().flatten();
        let digest = manifest.digest?;
        let (verdict, unlock) = match state? {
            State::Keep(reason) => (Verdict::keep(reason), false),
            State::Candidate(c) => {
                let by_age = c.rules.first().map(|&r| scope.rules[r].number);
                let beyond = c.beyond.first().map(|&(r, rank, max)| {
                    let rule = scope.rules[r].number;
                    (rule, DeleteReason::BeyondMaxUntagged { rule, rank, max })
                });
                let reason = match (c.orphan_of, by_age, beyond) {
                    (Some(subject), Some(rule), _) | (Some(subject), None, Some((rule, _))) => {
                        DeleteReason::OrphanReferrer {
                            rule,
                            subject: subject.into(),
                        }
                    }
                    (None, Some(rule), _) => DeleteReason::Untagged { rule },
                    (None, None, Some((_, reason))) => reason,
                    // A candidate is selected by some rule (see `candidates`).
                    (_, None, None) => return None,
                };
                (Verdict::Delete { reason }, c.unlock)
            }
        };
        let tags = listed_tags(manifest.tags, &verdict);
        Some(ManifestDecision {
            digest,
            media_type: manifest.media_type,
            tags,
            last_update_time: manifest.last_update_time,
            image_size: manifest.image_size,
            locked: manifest.changeable_attributes.is_locked(),
            unlock,
            verdict,
            after: Default::default(),
        })
    })
}

/// A manifest's listed tags, as one allocation shared with its `keptTags` when it keeps
/// them all (the common case: one allocation a tagged manifest, not two).
fn listed_tags(listed: Option<Vec<TagName>>, verdict: &Verdict) -> TagList {
    match verdict {
        Verdict::Keep {
            reason: KeepReason::Tagged { tags: kept },
        } if **kept == *listed.as_deref().unwrap_or_default() => kept.clone(),
        _ => TagList::from(listed),
    }
}

/// Keeps candidates that cannot be deleted safely: unknown type, unreadable body, or a
/// referrer whose subject exists. A referrer whose subject is absent from the repository
/// (an orphan: its subject was deleted without it, or it was pushed before its subject)
/// stays a candidate and is swept as untagged by the rule, but takes no `--keep` slot.
fn screen(
    manifest: &ManifestAttributes,
    candidate: Candidate,
    bodies: &HashMap<String, Body>,
    states: &States<'_>,
) -> State {
    let Some(media_type) = manifest.media_type.as_deref() else {
        return State::Keep(KeepReason::NoMediaType);
    };
    if !model::may_have_subject(media_type) {
        return State::Candidate(Box::new(candidate));
    }
    let digest = manifest.digest.as_deref().unwrap_or_default();
    match bodies.get(digest) {
        Some(Body::Found(body)) => match &body.subject {
            Some(subject) if states.by_digest.contains(subject.digest.as_str()) => {
                State::Keep(KeepReason::Referrer {
                    subject: Digest::from(&subject.digest),
                })
            }
            Some(subject) => State::Candidate(Box::new(Candidate {
                orphan_of: Some(subject.digest.clone()),
                ..candidate
            })),
            None => State::Candidate(Box::new(candidate)),
        },
        _ => State::Keep(KeepReason::BodyUnavailable),
    }
}

/// Why a non-candidate manifest stays.
fn keep_reason(
    scope: &Scope,
    manifest: &ManifestAttributes,
    deleted_tags: &HashSet<&str>,
) -> KeepReason {
    let remaining: TagList = manifest
        .tag_names()
        .iter()
        .filter(|t| !deleted_tags.contains(t.as_str()))
        .cloned()
        .collect();
    if !remaining.is_empty() {
        // Kept for the whole run (`keptTags`), held at its length; the manifest's own
        // `tags` share it when it keeps them all (`listed_tags`).
        return KeepReason::Tagged { tags: remaining };
    }
    let time = timestamp(manifest.last_update_time.as_ref());
    let locked = manifest.changeable_attributes.is_locked();
    let names: Vec<&str> = manifest.tag_names().iter().map(|t| t.as_str()).collect();
    let item = Item {
        evidence: &scope.evidence,
        tags: &names,
        digest: manifest.digest.as_deref().unwrap_or_default(),
    };
    let mut best = KeepReason::NotSelected;
    for rule in scope.rules.iter().filter(|r| r.manifests) {
        if let Err(reason) = rule.eligibility(&time, locked, item)
            && reason.closeness() > best.closeness()
        {
            best = reason;
        }
    }
    best
}

fn kept_digests(states: &States<'_>) -> Vec<Digest> {
    let mut kept: Vec<Digest> = states
        .iter()
        .filter(|(_, s)| matches!(s, State::Keep(_)))
        .map(|(d, _)| d.clone())
        .collect();
    kept.sort();
    kept
}

/// Keeps every candidate reachable from `start` through index children. A child kept only
/// for a weak reason (a referrer, its age) is marked as an index child, so that deleting its
/// subject cannot take it away.
fn protect_children(
    states: &mut States<'_>,
    bodies: &HashMap<String, Body>,
    mut work: Vec<Digest>,
) {
    while let Some(parent) = work.pop() {
        let Some(Body::Found(body)) = bodies.get(parent.as_str()) else {
            continue;
        };
        for child in &body.manifests {
            let Some(state) = states.get_mut(child.digest.as_str()) else {
                continue;
            };
            let weak = match state {
                State::Candidate(_) => true,
                State::Keep(reason) => !reason.must_survive_subject(),
            };
            if weak {
                *state = State::Keep(KeepReason::IndexChild {
                    parent: parent.clone(),
                });
                work.push(Digest::from(child.digest.as_str()));
            }
        }
    }
}

/// Deleting a manifest makes the registry delete its referrers too, so a candidate with a
/// referrer that must stay (tagged, locked, an index child, kept by `--keep`…) stays as well,
/// and so do its children. Repeated until nothing changes.
fn keep_subjects_of_kept_referrers(
    states: &mut States<'_>,
    bodies: &HashMap<String, Body>,
    referrers: &HashMap<String, Vec<String>>,
) {
    loop {
        let blocked: Vec<(Digest, String)> = states
            .iter()
            .filter(|(_, s)| matches!(s, State::Candidate(_)))
            .filter_map(|(subject, _)| {
                let referrer = referrers.get(subject.as_str())?.iter().find(
                    |r| matches!(states.get(r.as_str()), Some(State::Keep(reason)) if reason.must_survive_subject()),
                )?;
                Some((subject.clone(), referrer.clone()))
            })
            .collect();
        if blocked.is_empty() {
            return;
        }
        let mut kept = Vec::new();
        for (subject, referrer) in blocked {
            if let Some(state) = states.get_mut(&subject) {
                *state = State::Keep(KeepReason::KeptReferrer {
                    referrer: referrer.into(),
                });
            }
            kept.push(subject);
        }
        kept.sort();
        protect_children(states, bodies, kept);
    }
}

/// Applies each rule's `--keep` to its remaining candidates (newest first, digest as the
/// tie-break). Referrers never count: acr purge never considers them, so an orphan
/// signature must not push a real image out of its slot. A candidate stays when every rule
/// that selects it keeps it. Returns the digests newly kept.
fn apply_keep(scope: &Scope, states: &mut States<'_>) -> Vec<Digest> {
    let mut kept_by: HashMap<Digest, Vec<(usize, usize)>> = HashMap::new();
    for (r, rule) in scope.rules.iter().enumerate().filter(|(_, r)| r.keep > 0) {
        let mut mine: Vec<(&Digest, DateTime<Utc>)> = states
            .iter()
            .filter_map(|(d, s)| match s {
                State::Candidate(c) if c.rules.contains(&r) && c.orphan_of.is_none() => {
                    Some((d, c.time))
                }
                _ => None,
            })
            .collect();
        mine.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        for (rank, (digest, _)) in mine.into_iter().take(rule.keep).enumerate() {
            kept_by
                .entry(digest.clone())
                .or_default()
                .push((r, rank + 1));
        }
    }
    let mut newly_kept = Vec::new();
    for (digest, keeps) in kept_by {
        if let Some(state) = states.get_mut(&digest)
            && let State::Candidate(c) = state
            && c.rules.iter().all(|r| keeps.iter().any(|(k, _)| k == r))
        {
            if !c.beyond.is_empty() {
                // `--keep` would keep it, `maxUntaggedManifests` deletes it: it goes for
                // being beyond the maximum.
                c.rules.clear();
                continue;
            }
            let (r, rank) = keeps[0];
            *state = State::Keep(KeepReason::KeptByKeep {
                rule: scope.rules[r].number,
                rank,
            });
            newly_kept.push(digest);
        }
    }
    newly_kept.sort();
    newly_kept
}

/// Keeps each candidate ranked within a rule's `minUntaggedManifests`, whichever rule
/// selects it. Returns the digests newly kept.
fn apply_min(
    scope: &Scope,
    states: &mut States<'_>,
    manifests: &[ManifestAttributes],
    deleted_tags: &HashSet<&str>,
) -> Vec<Digest> {
    let ranks = untagged_ranks(scope, manifests, deleted_tags);
    let mut newly_kept = Vec::new();
    for (rule, ranks) in scope.rules.iter().zip(&ranks) {
        let (Some(min), Some(ranks)) = (rule.bounds.min_untagged, ranks) else {
            continue;
        };
        for (digest, &rank) in ranks.iter().filter(|(_, r)| **r <= min) {
            if let Some(state) = states.get_mut(digest)
                && matches!(state, State::Candidate(_))
            {
                *state = State::Keep(KeepReason::KeptByMinUntagged {
                    rule: rule.number,
                    rank,
                });
                newly_kept.push(Digest::from(*digest));
            }
        }
    }
    newly_kept.sort();
    newly_kept
}

/// Marks referrers of removed manifests as removed with them (the registry deletes them):
/// those kept only for being referrers, and those kept for a reason that does not stop
/// their subject's deletion (their age, no rule), found through the referrers listing.
pub(super) fn cascade(
    decisions: &mut [ManifestDecision],
    referrers: &HashMap<String, Vec<String>>,
) {
    loop {
        let removed: HashSet<Digest> = decisions
            .iter()
            .filter(|d| d.verdict.is_removed())
            .map(|d| d.digest.clone())
            .collect();
        let mut via: HashMap<&str, &Digest> = HashMap::new();
        for subject in &removed {
            for referrer in referrers.get(subject.as_str()).into_iter().flatten() {
                via.entry(referrer.as_str()).or_insert(subject);
            }
        }
        let mut changed = false;
        for decision in decisions.iter_mut() {
            let Verdict::Keep { reason } = &decision.verdict else {
                continue;
            };
            let subject = match reason {
                KeepReason::Referrer { subject } if removed.contains(subject.as_str()) => {
                    Some(subject.clone())
                }
                reason if !reason.must_survive_subject() => {
                    via.get(decision.digest.as_str()).map(|&s| s.clone())
                }
                _ => None,
            };
            if let Some(subject) = subject {
                decision.verdict = Verdict::Cascade { via: subject };
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

/// Records, for each deleted manifest, the deleted indexes that list it: they go first.
pub(super) fn order(decisions: &mut [ManifestDecision], bodies: &HashMap<String, Body>) {
    let deleted: HashSet<Digest> = decisions
        .iter()
        .filter(|d| d.verdict.is_delete())
        .map(|d| d.digest.clone())
        .collect();
    let mut parents: HashMap<&str, Vec<Digest>> = HashMap::new();
    for parent in &deleted {
        if let Some(Body::Found(body)) = bodies.get(parent.as_str()) {
            for child in &body.manifests {
                parents
                    .entry(child.digest.as_str())
                    .or_default()
                    .push(parent.clone());
            }
        }
    }
    for decision in decisions.iter_mut().filter(|d| d.verdict.is_delete()) {
        if let Some(list) = parents.get(decision.digest.as_str()) {
            for parent in list {
                if !decision.after.contains(parent) {
                    decision.after.push(parent.clone());
                }
            }
            decision.after.sort();
        }
    }
}
