//! Applying a saved plan exactly: the fresh plan of a repository, restricted to what the
//! saved plan deleted and what is still exactly as it was planned.
//!
//! An item stays deleted when, and only when:
//! * the saved plan deletes it and the fresh plan (the same policy at the same reference
//!   time, on today's listing) deletes it too;
//! * it is unchanged: a tag points to the same digest with the same `lastUpdateTime` and
//!   lock; a manifest has the same `lastUpdateTime` and lock, and no tag it was not listed
//!   with;
//! * everything its deletion needs first is deleted too (a parent index or signed subject
//!   in `after`; for a manifest, each of its tags), and everything the registry removes
//!   with it (its referrers, the tags on it) was removed in the saved plan as well.
//!
//! The last rule is applied until nothing changes. Every other item the saved plan deleted
//! is kept as [`KeepReason::Drift`] with what changed; anything the fresh plan alone would
//! delete is kept as [`KeepReason::NotInPlan`]. The result is a plan that deletes a subset
//! of both plans and is as consistent as the fresh one.

use super::SavedRepository;
use crate::model::{Digest, TagName, Timestamp};
use crate::plan::{KeepReason, ManifestDecision, RepositoryPlan, TagDecision, Verdict};
use std::collections::{HashMap, HashSet};

/// The fresh plan of a repository, keeping only the deletions the saved plan makes exactly.
pub fn reconcile(saved: &SavedRepository, mut fresh: RepositoryPlan) -> RepositoryPlan {
    let saved_tags: HashMap<&str, &TagDecision> =
        saved.tags.iter().map(|t| (t.name.as_str(), t)).collect();
    let saved_manifests: HashMap<&str, &ManifestDecision> = saved
        .manifests
        .iter()
        .map(|m| (m.digest.as_str(), m))
        .collect();

    // Why each fresh item may not be deleted; absent = allowed so far.
    let mut tag_block: HashMap<usize, Block> = HashMap::new();
    let mut manifest_block: HashMap<usize, Block> = HashMap::new();
    for (i, tag) in fresh.tags.iter().enumerate() {
        if let Verdict::Keep { reason } = &tag.verdict {
            if saved_tags
                .get(tag.name.as_str())
                .is_some_and(|planned| planned.verdict.is_removed())
            {
                tag_block.insert(i, Block::Drift(format!("now {}", reason.explain())));
            }
            continue;
        }
        let block = match saved_tags.get(tag.name.as_str()) {
            None => Some(Block::NotInPlan),
            Some(planned) if !planned.verdict.is_removed() => Some(Block::NotInPlan),
            Some(planned) => tag_change(planned, tag).map(Block::Drift),
        };
        if let Some(block) = block {
            tag_block.insert(i, block);
        }
    }
    for (i, manifest) in fresh.manifests.iter().enumerate() {
        if let Verdict::Keep { reason } = &manifest.verdict {
            if saved_manifests
                .get(manifest.digest.as_str())
                .is_some_and(|planned| planned.verdict.is_removed())
            {
                let detail = manifest_change(saved_manifests[manifest.digest.as_str()], manifest)
                    .unwrap_or_else(|| format!("now {}", reason.explain()));
                manifest_block.insert(i, Block::Drift(detail));
            }
            continue;
        }
        let block = match saved_manifests.get(manifest.digest.as_str()) {
            None => Some(Block::NotInPlan),
            Some(planned) if !planned.verdict.is_removed() => Some(Block::NotInPlan),
            Some(planned) => manifest_change(planned, manifest).map(Block::Drift),
        };
        if let Some(block) = block {
            manifest_block.insert(i, block);
        }
    }

    // Propagate until stable: a manifest whose prerequisites or companions are blocked is
    // blocked; what goes with a blocked manifest stays.
    let manifest_at: HashMap<Digest, usize> = fresh
        .manifests
        .iter()
        .enumerate()
        .map(|(i, m)| (m.digest.clone(), i))
        .collect();
    let tag_at: HashMap<TagName, usize> = fresh
        .tags
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    loop {
        let mut changed = false;
        for (i, manifest) in fresh.manifests.iter().enumerate() {
            if !manifest.verdict.is_removed() || manifest_block.contains_key(&i) {
                continue;
            }
            if let Verdict::Cascade { via } = &manifest.verdict
                && manifest_at
                    .get(via.as_str())
                    .is_some_and(|m| manifest_block.contains_key(m))
            {
                let why = format!("{via}, which it would be removed with, is kept");
                manifest_block.insert(i, Block::Drift(why));
                changed = true;
                continue;
            }
            let why = blocked_by(
                manifest,
                &fresh,
                &manifest_at,
                &tag_at,
                |kind, j| match kind {
                    Kind::Tag => tag_block.contains_key(&j),
                    Kind::Manifest => manifest_block.contains_key(&j),
                },
            );
            if let Some(why) = why {
                manifest_block.insert(i, Block::Drift(why));
                changed = true;
            }
        }
        for (i, tag) in fresh.tags.iter().enumerate() {
            if let Verdict::Cascade { via } = &tag.verdict
                && !tag_block.contains_key(&i)
                && manifest_at
                    .get(via.as_str())
                    .is_some_and(|m| manifest_block.contains_key(m))
            {
                tag_block.insert(
                    i,
                    Block::Drift(format!("its manifest {via} is not deleted")),
                );
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    for (i, block) in tag_block {
        fresh.tags[i].verdict = Verdict::Keep {
            reason: block.reason(),
        };
    }
    for (i, block) in manifest_block {
        let manifest = &mut fresh.manifests[i];
        manifest.verdict = Verdict::Keep {
            reason: block.reason(),
        };
        manifest.after.clear();
    }
    fresh
}

/// Why an item the fresh plan removes is kept.
enum Block {
    /// The saved plan does not remove it.
    NotInPlan,
    /// It changed, or something it depends on is kept.
    Drift(String),
}

impl Block {
    fn reason(self) -> KeepReason {
        match self {
            Block::NotInPlan => KeepReason::NotInPlan,
            Block::Drift(detail) => KeepReason::Drift {
                detail: detail.into(),
            },
        }
    }
}

enum Kind {
    Tag,
    Manifest,
}

/// What changed in a tag since it was planned.
fn tag_change(planned: &TagDecision, now: &TagDecision) -> Option<String> {
    if planned.digest != now.digest {
        return Some(format!(
            "it moved from {} to {}",
            planned.digest, now.digest
        ));
    }
    time_or_lock_change(
        "it was pushed again",
        (&planned.last_update_time, planned.locked),
        (&now.last_update_time, now.locked),
    )
}

/// What changed in a manifest since it was planned.
fn manifest_change(planned: &ManifestDecision, now: &ManifestDecision) -> Option<String> {
    if let Some(tag) = now.tags.iter().find(|t| !planned.tags.contains(t)) {
        return Some(format!("it was tagged {tag}"));
    }
    time_or_lock_change(
        "it was updated",
        (&planned.last_update_time, planned.locked),
        (&now.last_update_time, now.locked),
    )
}

/// A changed `lastUpdateTime` (described as `updated`), else a changed lock.
fn time_or_lock_change(
    updated: &str,
    (planned_time, planned_locked): (&Option<Timestamp>, bool),
    (now_time, now_locked): (&Option<Timestamp>, bool),
) -> Option<String> {
    let shown = |time: &Option<Timestamp>| {
        time.as_ref()
            .map_or_else(|| "none".to_string(), Timestamp::to_string)
    };
    if planned_time != now_time {
        return Some(format!(
            "{updated} (lastUpdateTime {} → {})",
            shown(planned_time),
            shown(now_time)
        ));
    }
    match (planned_locked == now_locked, now_locked) {
        (true, _) => None,
        (false, true) => Some("it was locked".to_string()),
        (false, false) => Some("it was unlocked".to_string()),
    }
}

/// Whether a removed manifest must stay because of another item: one it must follow, one
/// of its tags, or something removed with it, that is not removed.
fn blocked_by(
    manifest: &ManifestDecision,
    fresh: &RepositoryPlan,
    manifest_at: &HashMap<Digest, usize>,
    tag_at: &HashMap<TagName, usize>,
    blocked: impl Fn(Kind, usize) -> bool,
) -> Option<String> {
    for digest in &manifest.after {
        if manifest_at
            .get(digest)
            .is_some_and(|&j| blocked(Kind::Manifest, j))
        {
            return Some(format!("{digest}, which must be deleted first, is kept"));
        }
    }
    let own_tags: HashSet<&str> = manifest.tags.iter().map(|t| t.as_str()).collect();
    for name in &own_tags {
        if let Some(&j) = tag_at.get(*name)
            && (blocked(Kind::Tag, j) || !fresh.tags[j].verdict.is_removed())
            && fresh.tags[j].digest == manifest.digest
        {
            return Some(format!("its tag {name} is kept"));
        }
    }
    for (j, other) in fresh.manifests.iter().enumerate() {
        if let Verdict::Cascade { via } = &other.verdict
            && *via == manifest.digest
            && blocked(Kind::Manifest, j)
        {
            return Some(format!(
                "deleting it would also delete {}, which the plan keeps",
                other.digest
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests;
