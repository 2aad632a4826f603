//! Tag decisions, exactly as acr purge's `purgeTags` per rule: a tag is eligible for a rule
//! when one of the rule's filters matches it, it is older than the rule's cut-off, and it is
//! unlocked (or `--include-locked`); the rule keeps its `--keep` first eligible tags in server
//! (`timedesc`) order and deletes the rest. A tag is deleted when some rule deletes it and
//! it is not protected. Differences: a missing or unreadable timestamp keeps the tag (acr
//! purge aborts), `protect` patterns keep tags before any rule counts them, and cosign tags
//! of a manifest in the repository wait for that manifest's fate.

use super::cosign::cosign_subject;
use super::scope::{Item, timestamp};
use super::{DeleteReason, KeepReason, Scope, TagDecision, Verdict};
use crate::policy::MatchError;
use crate::registry::model::TagAttributes;

/// Decides every tag; also returns the indexes of cosign tags left pending.
pub(super) fn decide(
    repository: &str,
    scope: &Scope,
    tags: Vec<TagAttributes>,
    known_manifest: &dyn Fn(&str) -> bool,
) -> Result<(Vec<TagDecision>, Vec<usize>), MatchError> {
    let mut ranks = vec![0usize; scope.rules.len()];
    let mut decisions = Vec::with_capacity(tags.len());
    let mut pending = Vec::new();
    for tag in tags {
        let locked = tag.changeable_attributes.is_locked();
        let mut unlock = false;
        let verdict = if let Some(pattern) = protecting(scope, repository, &tag.name)? {
            Verdict::keep(KeepReason::Protected { pattern })
        } else if let Some(reason) = scope
            .evidence
            .keeps_tag(&tag.name, tag.last_update_time.as_deref())
        {
            Verdict::keep(reason)
        } else if let Some(subject) = cosign_subject(&tag.name).filter(|s| known_manifest(s)) {
            pending.push(decisions.len());
            Verdict::keep(KeepReason::SignatureOfKept { subject })
        } else {
            let (verdict, needs_unlock) = evaluate(scope, &tag, locked, &mut ranks)?;
            unlock = needs_unlock;
            verdict
        };
        decisions.push(TagDecision {
            name: tag.name,
            digest: tag.digest,
            last_update_time: tag.last_update_time,
            locked,
            unlock,
            verdict,
        });
    }
    Ok((decisions, pending))
}

fn protecting(scope: &Scope, repository: &str, tag: &str) -> Result<Option<String>, MatchError> {
    for pattern in &scope.protect {
        if pattern.matches_repository(repository)? && pattern.matches_tag(tag)? {
            return Ok(Some(pattern.as_str().to_string()));
        }
    }
    Ok(None)
}

/// Every rule judges the tag (each advancing its own keep count); the first deleting rule
/// wins, otherwise the keep reason closest to deletion is reported.
fn evaluate(
    scope: &Scope,
    tag: &TagAttributes,
    locked: bool,
    ranks: &mut [usize],
) -> Result<(Verdict, bool), MatchError> {
    let mut delete = None;
    let mut keep = KeepReason::NotSelected;
    let time = timestamp(tag.last_update_time.as_deref());
    let names = [tag.name.as_str()];
    let item = Item {
        evidence: &scope.evidence,
        tags: &names,
        digest: &tag.digest,
    };
    for (i, rule) in scope.rules.iter().enumerate() {
        let Some(matcher) = &rule.tags else {
            continue;
        };
        let reason = match matcher.first_match(&tag.name)? {
            None => KeepReason::NoFilterMatch,
            Some(filter) => match rule.eligibility(&time, locked, item) {
                Err(reason) => reason,
                Ok(()) => {
                    ranks[i] += 1;
                    if ranks[i] <= rule.keep {
                        KeepReason::KeptByKeep {
                            rule: rule.number,
                            rank: ranks[i],
                        }
                    } else {
                        if delete.is_none() {
                            delete = Some((
                                DeleteReason::Matched {
                                    rule: rule.number,
                                    filter: filter.as_str().to_string(),
                                },
                                locked,
                            ));
                        }
                        continue;
                    }
                }
            },
        };
        if reason.closeness() > keep.closeness() {
            keep = reason;
        }
    }
    Ok(match delete {
        Some((reason, unlock)) => (Verdict::Delete { reason }, unlock),
        None => (Verdict::keep(keep), false),
    })
}
