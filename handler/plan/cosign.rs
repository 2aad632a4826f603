//! Cosign tag-schema artifacts: a tag `sha256-<hex>.sig|.att|.sbom` belongs to the manifest
//! `sha256:<hex>`. Such a tag is never deleted while that manifest stays, even when a filter
//! matches it (acr purge would delete a live image's signature); when this run deletes the
//! manifest, the signature's manifest goes with it, after it.

use super::{Body, DeleteReason, KeepReason, ManifestDecision, TagDecision, Verdict};
use crate::model::Digest;
use std::collections::HashMap;

/// The manifest a cosign-style tag belongs to (`sha256-<hex>.sig` → `sha256:<hex>`).
pub fn cosign_subject(tag: &str) -> Option<String> {
    let (stem, suffix) = tag.rsplit_once('.')?;
    if !matches!(suffix, "sig" | "att" | "sbom") {
        return None;
    }
    let hex = stem.strip_prefix("sha256-")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| format!("sha256:{hex}"))
}

/// Settles the cosign tags left pending by the tag step (their subject exists): with the
/// subject removed, the signature manifest is deleted after it (when nothing else keeps it);
/// otherwise the tag is kept. Repeated until nothing changes, since a signature can itself
/// be signed.
pub(super) fn settle(
    tags: &mut [TagDecision],
    pending: &[usize],
    manifests: &mut [ManifestDecision],
    bodies: &HashMap<String, Body>,
    referrers: &HashMap<String, Vec<String>>,
) {
    let index: HashMap<Digest, usize> = manifests
        .iter()
        .enumerate()
        .map(|(i, m)| (m.digest.clone(), i))
        .collect();
    // Which indexes list each digest as a child (bodies do not change while settling).
    let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (digest, body) in bodies {
        if let Body::Found(body) = body {
            for child in &body.manifests {
                parents
                    .entry(child.digest.as_str())
                    .or_default()
                    .push(digest.as_str());
            }
        }
    }
    let removed = |manifests: &[ManifestDecision], digest: &str| {
        index
            .get(digest)
            .is_some_and(|&i| manifests[i].verdict.is_removed())
    };
    loop {
        let mut changed = false;
        for &t in pending {
            if matches!(tags[t].verdict, Verdict::Cascade { .. }) {
                continue;
            }
            let Some(subject) = cosign_subject(&tags[t].name) else {
                continue;
            };
            if !removed(manifests, &subject) {
                continue;
            }
            let signature = tags[t].digest.clone();
            let Some(&m) = index.get(&signature) else {
                continue;
            };
            let refers_to_kept = match bodies.get(signature.as_str()) {
                Some(Body::Found(body)) => body.subject.as_ref().is_some_and(|s| {
                    index.contains_key(s.digest.as_str()) && !removed(manifests, &s.digest)
                }),
                _ => false,
            };
            let child_of_kept = parents.get(signature.as_str()).is_some_and(|list| {
                list.iter()
                    .any(|p| index.contains_key(*p) && !removed(manifests, p))
            });
            let has_kept_referrer = referrers.get(signature.as_str()).is_some_and(|list| {
                list.iter().any(|r| {
                    index
                        .get(r.as_str())
                        .is_some_and(|&i| match &manifests[i].verdict {
                            Verdict::Keep { reason } => reason.must_survive_subject(),
                            _ => false,
                        })
                })
            });
            if refers_to_kept
                || child_of_kept
                || has_kept_referrer
                || !can_follow_subject(&manifests[m])
            {
                continue;
            }
            let decision = &mut manifests[m];
            if !decision.verdict.is_delete() {
                decision.verdict = Verdict::Delete {
                    reason: DeleteReason::SignatureOfDeleted {
                        subject: Digest::from(&subject),
                    },
                };
            }
            if !decision.after.iter().any(|a| *a == subject) {
                decision.after.push(Digest::from(subject));
            }
            tags[t].verdict = Verdict::Cascade {
                via: Digest::from(signature),
            };
            changed = true;
        }
        if !changed {
            break;
        }
    }
    for &t in pending {
        if matches!(tags[t].verdict, Verdict::Cascade { .. }) {
            continue;
        }
        let Some(subject) = cosign_subject(&tags[t].name) else {
            continue;
        };
        tags[t].verdict = Verdict::keep(if removed(manifests, &subject) {
            KeepReason::SignatureManifestKept {
                manifest: tags[t].digest.clone(),
            }
        } else {
            KeepReason::SignatureOfKept {
                subject: subject.into(),
            }
        });
    }
}

/// A signature manifest may follow its subject when it is kept only because of its cosign
/// tags (known media type, not locked, not a child or referrer of something kept, no other
/// tag).
fn can_follow_subject(signature: &ManifestDecision) -> bool {
    if signature.media_type.is_none() || (signature.locked && !signature.unlock) {
        return false;
    }
    match &signature.verdict {
        Verdict::Delete { .. } => true,
        Verdict::Keep {
            reason: KeepReason::Tagged { tags },
        } => tags.iter().all(|t| cosign_subject(t).is_some()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::cosign_subject;

    #[test]
    fn recognises_cosign_tags() {
        let hex = "a".repeat(64);
        assert_eq!(
            cosign_subject(&format!("sha256-{hex}.sig")),
            Some(format!("sha256:{hex}"))
        );
        assert!(cosign_subject(&format!("sha256-{hex}.att")).is_some());
        assert!(cosign_subject(&format!("sha256-{hex}.sbom")).is_some());
        assert!(cosign_subject(&format!("sha256-{hex}.txt")).is_none());
        assert!(cosign_subject("sha256-abc.sig").is_none());
        assert!(cosign_subject("v1.sig").is_none());
    }
}
