//! The plan's items as JSON and in memory: every reason writes exactly what it wrote before
//! its payloads were boxed and shared (`items.golden.jsonl`, written by the code before that
//! change), items written then read back the same, and each item's size is pinned.

use super::verdict::{every_delete_reason, every_keep_reason};
use super::{KeepReason, ManifestDecision, TagDecision, Verdict};
use serde_json::json;
use std::mem::size_of;

const GOLDEN: &str = include_str!("items.golden.jsonl");

fn golden() -> Vec<&'static str> {
    GOLDEN.lines().collect()
}

/// A tagged manifest with an `after`, its verdict replaced by each reason's in turn (the
/// last one keeps its own, a cascade).
fn every_verdict_on_a_manifest() -> Vec<ManifestDecision> {
    let base: ManifestDecision = serde_json::from_value(json!({
        "digest": "sha256:m",
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "tags": ["v1", "v2"],
        "lastUpdateTime": "2024-01-02T03:04:05.678Z",
        "imageSize": 5,
        "locked": false,
        "unlock": false,
        "decision": "cascade",
        "via": "sha256:s",
        "after": ["sha256:p"],
    }))
    .expect("a manifest decision");
    let mut verdicts: Vec<Verdict> = every_keep_reason()
        .into_iter()
        .map(|reason| Verdict::Keep { reason })
        .collect();
    verdicts.extend(
        every_delete_reason()
            .into_iter()
            .map(|reason| Verdict::Delete { reason }),
    );
    verdicts.push(base.verdict.clone());
    verdicts
        .into_iter()
        .map(|verdict| ManifestDecision {
            verdict,
            ..base.clone()
        })
        .collect()
}

#[test]
fn every_reason_writes_the_json_it_wrote_before() {
    let golden = golden();
    let manifests = every_verdict_on_a_manifest();
    assert_eq!(golden.len(), manifests.len() + 2, "one line an item");
    for (manifest, want) in manifests.iter().zip(&golden) {
        assert_eq!(serde_json::to_string(manifest).expect("json"), *want);
    }
}

#[test]
fn items_written_before_read_back_and_write_the_same() {
    let golden = golden();
    let (manifests, tag) = golden.split_at(golden.len() - 1);
    for line in manifests {
        let read: ManifestDecision = serde_json::from_str(line).expect(line);
        assert_eq!(serde_json::to_string(&read).expect("json"), *line);
    }
    let read: TagDecision = serde_json::from_str(tag[0]).expect("a tag decision");
    assert_eq!(serde_json::to_string(&read).expect("json"), tag[0]);
    // The untagged line has neither tags nor `after`: both stay unallocated.
    let bare: ManifestDecision =
        serde_json::from_str(manifests[manifests.len() - 1]).expect("bare");
    assert!(bare.tags.is_empty() && bare.after.is_empty());
    let limit: ManifestDecision = serde_json::from_str(
        golden
            .iter()
            .find(|l| l.contains("overRunDeletionLimit"))
            .expect("a run limit line"),
    )
    .expect("read");
    match limit.verdict {
        Verdict::Keep {
            reason: KeepReason::OverRunDeletionLimit(over),
        } => assert_eq!(
            (over.limit.as_str(), over.count, over.total),
            ("50%", 9, 10)
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn plan_items_stay_small() {
    // Issue 26: a repository may hold a million of these for the whole run.
    assert!(size_of::<Verdict>() <= 32, "{}", size_of::<Verdict>());
    assert!(
        size_of::<TagDecision>() <= 88,
        "{}",
        size_of::<TagDecision>()
    );
    assert!(
        size_of::<ManifestDecision>() <= 128,
        "{}",
        size_of::<ManifestDecision>()
    );
}
