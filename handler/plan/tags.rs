//! Tag decisions, exactly as acr purge's `purgeTags` per rule: a tag is eligible for a rule
//! when one of the rule's filters matches it, it is older than the rule's cut-off, and it is
//! unlocked (or `--include-locked`); the rule keeps its `--keep` first eligible tags in server
//! (`timedesc`) order and deletes the rest. A tag is deleted when some rule deletes it and
//! it is not protected. Differences: a missing or unreadable timestamp keeps the tag (acr
//! purge aborts), `protect` patterns keep tags before any rule counts them, and cosign tags
//! of a manifest in the repository wait for that manifest's fate.
//!
//! The count bounds (`maxTags`, `minTags`) come after acr purge's decision, per rule: the
//! tags its filter matches are ranked ([`rank_newest_first`]; cosign signature tags that
//! wait for their manifest are not ranked); one ranked beyond `maxTags` is deleted even
//! when younger than `--ago` or among `--keep` (but never when protected, locked, of
//! unknown age or pulled within `notPulledFor`); then one ranked within any rule's
//! `minTags` is kept whichever rule deletes it.

use super::cosign::cosign_subject;
use super::scope::{Item, rank_newest_first, timestamp};
use super::{DeleteReason, KeepReason, Scope, TagDecision, Verdict};
use crate::model::TagAttributes;
use crate::policy::MatchError;

/// Decides every tag; also returns the indexes of cosign tags left pending.
pub(super) fn decide(
    repository: &str,
    scope: &Scope,
    tags: Vec<TagAttributes>,
    known_manifest: &dyn Fn(&str) -> bool,
) -> Result<(Vec<TagDecision>, Vec<usize>), MatchError> {
    let bound_ranks = bound_ranks(scope, &tags, known_manifest)?;
    let mut ranks = vec![0usize; scope.rules.len()];
    let mut decisions = Vec::with_capacity(tags.len());
    let mut pending = Vec::new();
    for (index, tag) in tags.into_iter().enumerate() {
        let locked = tag.changeable_attributes.is_locked();
        let mut unlock = false;
        let verdict = if let Some(pattern) = protecting(scope, repository, &tag.name)? {
            Verdict::keep(KeepReason::Protected {
                pattern: pattern.into(),
            })
        } else if let Some(reason) = scope
            .evidence
            .keeps_tag(&tag.name, tag.last_update_time.as_ref())
        {
            Verdict::keep(reason)
        } else if let Some(subject) = cosign_subject(&tag.name).filter(|s| known_manifest(s)) {
            pending.push(decisions.len());
            Verdict::keep(KeepReason::SignatureOfKept {
                subject: subject.into(),
            })
        } else {
            let bounds: Vec<Option<usize>> = bound_ranks
                .iter()
                .map(|r| r.as_ref().and_then(|r| r[index]))
                .collect();
            let (verdict, needs_unlock) = evaluate(scope, &tag, locked, &mut ranks, &bounds)?;
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
    apply_min_tags(scope, &mut decisions, &bound_ranks);
    Ok((decisions, pending))
}

/// For each rule with `minTags` or `maxTags`: each tag's rank among the tags its filter
/// matches (`None`: not matched, or a cosign signature waiting for its manifest).
fn bound_ranks(
    scope: &Scope,
    tags: &[TagAttributes],
    known_manifest: &dyn Fn(&str) -> bool,
) -> Result<Vec<Option<Vec<Option<usize>>>>, MatchError> {
    let mut all = Vec::with_capacity(scope.rules.len());
    for rule in &scope.rules {
        let bounded = rule.bounds.min_tags.is_some() || rule.bounds.max_tags.is_some();
        let Some(matcher) = rule.tags.as_ref().filter(|_| bounded) else {
            all.push(None);
            continue;
        };
        let mut ranked = Vec::new();
        let mut at = Vec::new();
        for (i, tag) in tags.iter().enumerate() {
            if cosign_subject(&tag.name).is_some_and(|s| known_manifest(&s)) {
                continue;
            }
            if matcher.first_match(&tag.name)?.is_some() {
                let time = timestamp(tag.last_update_time.as_ref()).ok();
                ranked.push((time, tag.name.as_str()));
                at.push(i);
            }
        }
        let mut ranks = vec![None; tags.len()];
        for (i, rank) in at.into_iter().zip(rank_newest_first(&ranked)) {
            ranks[i] = Some(rank);
        }
        all.push(Some(ranks));
    }
    Ok(all)
}

/// Keeps every tag a rule deletes that is ranked within some rule's `minTags`.
fn apply_min_tags(
    scope: &Scope,
    decisions: &mut [TagDecision],
    bound_ranks: &[Option<Vec<Option<usize>>>],
) {
    for (rule, ranks) in scope.rules.iter().zip(bound_ranks) {
        let (Some(min), Some(ranks)) = (rule.bounds.min_tags, ranks) else {
            continue;
        };
        for (decision, rank) in decisions.iter_mut().zip(ranks) {
            if let Some(rank) = rank.filter(|r| *r <= min)
                && decision.verdict.is_delete()
            {
                decision.verdict = Verdict::keep(KeepReason::KeptByMinTags {
                    rule: rule.number,
                    rank,
                });
                decision.unlock = false;
            }
        }
    }
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
/// wins, otherwise the keep reason closest to deletion is reported. `bound_ranks` is the
/// tag's rank under each rule with a count bound.
fn evaluate(
    scope: &Scope,
    tag: &TagAttributes,
    locked: bool,
    ranks: &mut [usize],
    bound_ranks: &[Option<usize>],
) -> Result<(Verdict, bool), MatchError> {
    let mut delete = None;
    let mut keep = KeepReason::NotSelected;
    let time = timestamp(tag.last_update_time.as_ref());
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
        let beyond_max = match (rule.bounds.max_tags, bound_ranks[i]) {
            (Some(max), Some(rank)) if rank > max => Some(DeleteReason::BeyondMaxTags {
                rule: rule.number,
                rank,
                max,
            }),
            _ => None,
        };
        let reason = match matcher.first_match(&tag.name)? {
            None => KeepReason::NoFilterMatch,
            Some(filter) => match rule.eligibility(&time, locked, item) {
                Err(KeepReason::TooYoung { cutoff }) => match (
                    &beyond_max,
                    rule.eligibility_regardless_of_age(&time, locked, item),
                ) {
                    (Some(reason), Ok(())) => {
                        delete.get_or_insert((reason.clone(), locked));
                        continue;
                    }
                    (Some(_), Err(reason)) => reason,
                    (None, _) => KeepReason::TooYoung { cutoff },
                },
                Err(reason) => reason,
                Ok(()) => {
                    ranks[i] += 1;
                    if ranks[i] <= rule.keep
                        && let Some(reason) = beyond_max
                    {
                        delete.get_or_insert((reason, locked));
                        continue;
                    } else if ranks[i] <= rule.keep {
                        KeepReason::KeptByKeep {
                            rule: rule.number,
                            rank: ranks[i],
                        }
                    } else {
                        if delete.is_none() {
                            delete = Some((
                                DeleteReason::Matched {
                                    rule: rule.number,
                                    filter: filter.as_str().into(),
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
