//! Cosign tag-schema artifacts: a tag `sha256-<hex>.sig|.att|.sbom` belongs to the manifest
//! `sha256:<hex>`. Such a tag is never deleted while that manifest stays, even when a filter
//! matches it (acr purge would delete a live image's signature); when this run deletes the
//! manifest, the signature's manifest goes with it, after it.

use super::{DeleteReason, KeepReason, ManifestDecision, TagDecision, Verdict};
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
/// subject deleted, the signature manifest is deleted after it (when nothing else keeps it);
/// otherwise the tag is kept.
pub(super) fn settle(
    tags: &mut [TagDecision],
    pending: &[usize],
    manifests: &mut [ManifestDecision],
) {
    let index: HashMap<String, usize> = manifests
        .iter()
        .enumerate()
        .map(|(i, m)| (m.digest.clone(), i))
        .collect();
    for &t in pending {
        let Some(subject) = cosign_subject(&tags[t].name) else {
            continue;
        };
        let subject_removed = index
            .get(&subject)
            .is_some_and(|&s| manifests[s].verdict.is_removed());
        if !subject_removed {
            tags[t].verdict = Verdict::keep(KeepReason::SignatureOfKept { subject });
            continue;
        }
        let signature = tags[t].digest.clone();
        match index.get(&signature) {
            Some(&m) if can_follow_subject(&manifests[m]) => {
                let decision = &mut manifests[m];
                if !decision.verdict.is_delete() {
                    decision.verdict = Verdict::Delete {
                        reason: DeleteReason::SignatureOfDeleted {
                            subject: subject.clone(),
                        },
                    };
                }
                if !decision.after.contains(&subject) {
                    decision.after.push(subject);
                }
                tags[t].verdict = Verdict::Cascade { via: signature };
            }
            _ => {
                tags[t].verdict = Verdict::keep(KeepReason::SignatureOfKept { subject });
            }
        }
    }
}

/// A signature manifest may follow its subject when it is kept only because of its cosign
/// tags (not locked, not a child or referrer of something kept, no other tag).
fn can_follow_subject(signature: &ManifestDecision) -> bool {
    if signature.locked && !signature.unlock {
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
