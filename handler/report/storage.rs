//! Storage a purge frees. ACR stores each blob (config, layer) once however many manifests
//! reference it, so deleting an image frees only the blobs that nothing left references:
//! here, the blobs referenced by removed manifests and by no manifest that stays in the
//! same repository. A blob shared with another repository is counted as freed unless
//! `--exact-storage` reads every repository ([`ExactStorage`]). The listing's `imageSize`
//! of the removed manifests is the upper bound. Manifest bodies themselves (a few KiB) are
//! not counted.

use super::{Outcome, RepositoryReport};
use crate::model::{BlobDigest, Digest};
use crate::plan::Verdict;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// What a purge frees, or would free.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageFreed {
    /// Bytes of the blobs that only removed manifests reference.
    pub freed_bytes: u64,
    /// The removed manifests' `imageSize` added up: what deleting them could free at most.
    pub at_most_bytes: u64,
    /// Whether blobs shared with other repositories were excluded (`--exact-storage`);
    /// otherwise they count as freed.
    pub exact: bool,
    /// Removed manifests whose body could not be read: only their `imageSize` counts.
    #[serde(default)]
    pub unknown_manifests: u64,
    /// Manifests that stay whose bodies were not read (the run stopped before reading
    /// them): blobs they share with removed manifests are counted as freed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kept_unread: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl StorageFreed {
    /// Adds another repository's figures.
    pub fn add(&mut self, other: &StorageFreed) {
        self.freed_bytes += other.freed_bytes;
        self.at_most_bytes += other.at_most_bytes;
        self.unknown_manifests += other.unknown_manifests;
        self.kept_unread += other.kept_unread;
    }
}

/// One blob a manifest references: its digest and size in bytes.
pub type Blob = (BlobDigest, u64);

/// The blobs of one repository's manifests, read for the storage figures: each read
/// manifest's digest (shared with the plan) and where its blobs are in one vector of them
/// all (48 bytes a blob, 24 a manifest; a repository may have a million). A list an
/// earlier run remembered is pointed into where it was read, not copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobIndex {
    /// Each manifest read, in the order read, with where its blobs are in `blobs` (start,
    /// end).
    read: Vec<(Digest, u32, u32)>,
    /// The blobs of the read manifests (and of remembered ones no longer listed).
    blobs: Vec<Blob>,
    /// Manifests whose body could not be read.
    pub unknown: HashSet<Digest>,
    /// Manifests whose bodies were not read yet: a removed one left unread counts by its
    /// `imageSize` only, a kept one lets the blobs it shares with removed ones count as
    /// freed.
    pub unread: HashSet<Digest>,
}

/// Appends `list` to `blobs`, the one vector that holds many manifests' lists, and says
/// where it went (start, end); past 2³² blobs in all, nothing is appended (`None`).
pub fn append_list(
    blobs: &mut Vec<Blob>,
    list: impl IntoIterator<Item = Blob>,
) -> Option<(u32, u32)> {
    let start = blobs.len();
    blobs.extend(list);
    match (u32::try_from(start), u32::try_from(blobs.len())) {
        (Ok(start), Ok(end)) => Some((start, end)),
        _ => {
            blobs.truncate(start);
            None
        }
    }
}

/// How far a [`BlobIndex`] had read, to take back what was added since
/// ([`BlobIndex::truncate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    read: usize,
    blobs: usize,
}

impl BlobIndex {
    /// An index whose blob vector starts as `blobs` (lists remembered by an earlier run, for
    /// [`BlobIndex::point`]).
    pub fn adopting(blobs: Vec<Blob>) -> BlobIndex {
        BlobIndex {
            blobs,
            ..BlobIndex::default()
        }
    }

    /// Adds a manifest's blobs; past 2³² blobs in all, it is left unread instead.
    pub fn insert(&mut self, manifest: Digest, blobs: impl IntoIterator<Item = Blob>) {
        match append_list(&mut self.blobs, blobs) {
            Some((start, end)) => self.read.push((manifest, start, end)),
            None => {
                self.unread.insert(manifest);
            }
        }
    }

    /// Adds a manifest whose blobs are already in the vector, at `start..end`.
    pub fn point(&mut self, manifest: Digest, start: u32, end: u32) {
        match (start as usize) <= (end as usize) && (end as usize) <= self.blobs.len() {
            true => self.read.push((manifest, start, end)),
            false => {
                self.unread.insert(manifest);
            }
        }
    }

    /// Every manifest read, with its blobs, in the order read.
    pub fn iter(&self) -> impl Iterator<Item = (&Digest, &[Blob])> {
        self.read.iter().map(|(digest, start, end)| {
            let blobs = self.blobs.get(*start as usize..*end as usize);
            (digest, blobs.unwrap_or(&[]))
        })
    }

    /// How many manifests were read.
    pub fn len(&self) -> usize {
        self.read.len()
    }

    /// Whether no manifest was read.
    pub fn is_empty(&self) -> bool {
        self.read.is_empty()
    }

    /// Where the index stands now.
    pub fn mark(&self) -> Mark {
        Mark {
            read: self.read.len(),
            blobs: self.blobs.len(),
        }
    }

    /// Forgets the manifests read since `mark`.
    pub fn truncate(&mut self, mark: Mark) {
        self.read.truncate(mark.read);
        self.blobs.truncate(mark.blobs);
    }
}

/// The removed and remaining blobs of one repository, for [`ExactStorage`].
#[derive(Debug, Clone, Default)]
pub struct BlobSplit {
    /// Blobs of removed manifests that no remaining manifest here references.
    pub removed: HashMap<BlobDigest, u64>,
    /// Blobs of the manifests that stay (only gathered for `--exact-storage`).
    pub remaining: HashSet<BlobDigest>,
}

/// Whether a manifest is gone after the run: planned removed (dry run), or deleted (or
/// removed with a manifest that was deleted) in a real run.
pub(crate) fn removed_manifests(repo: &RepositoryReport, dry_run: bool) -> HashSet<&str> {
    let mut gone: HashSet<&str> = repo
        .manifests
        .iter()
        .filter(|m| match dry_run {
            true => m.decision.verdict.is_removed(),
            false => m.outcome.as_ref().is_some_and(Outcome::is_gone),
        })
        .map(|m| m.decision.digest.as_str())
        .collect();
    // Cascades follow their manifest, transitively (a referrer of a referrer).
    loop {
        let more: Vec<&str> = repo
            .manifests
            .iter()
            .filter(|m| !gone.contains(m.decision.digest.as_str()))
            .filter(|m| matches!(&m.decision.verdict, Verdict::Cascade { via } if gone.contains(via.as_str())))
            .map(|m| m.decision.digest.as_str())
            .collect();
        if more.is_empty() {
            return gone;
        }
        gone.extend(more);
    }
}

/// The storage one repository frees, counting blobs shared with other repositories as
/// freed; also, for [`ExactStorage`] (`exact`), the split. Only the removed manifests'
/// blobs are gathered; each list of what stays is walked once, taking out what it shares.
pub fn repository_storage(
    repo: &RepositoryReport,
    dry_run: bool,
    exact: bool,
) -> (StorageFreed, BlobSplit) {
    let Some(index) = &repo.blobs else {
        return (StorageFreed::default(), BlobSplit::default());
    };
    let gone = removed_manifests(repo, dry_run);
    let mut storage = StorageFreed::default();
    for manifest in &repo.manifests {
        let digest = manifest.decision.digest.as_str();
        if gone.contains(digest) {
            storage.at_most_bytes += manifest.decision.image_size.unwrap_or(0);
            if index.unknown.contains(digest) || index.unread.contains(digest) {
                storage.unknown_manifests += 1;
            }
        } else if index.unread.contains(digest) {
            storage.kept_unread += 1;
        }
    }
    let mut split = BlobSplit::default();
    for (digest, blobs) in index.iter() {
        if gone.contains(digest.as_str()) {
            split.removed.extend(blobs.iter().cloned());
        }
    }
    for (digest, blobs) in index.iter() {
        if gone.contains(digest.as_str()) {
            continue;
        }
        for (blob, _) in blobs {
            split.removed.remove(blob);
            if exact {
                split.remaining.insert(blob.clone());
            }
        }
    }
    storage.freed_bytes = split.removed.values().sum();
    (storage, split)
}

/// Registry-wide accounting (`--exact-storage`): a blob counts as freed only when no
/// manifest left in any repository references it.
#[derive(Debug, Default)]
pub struct ExactStorage {
    removed: HashMap<BlobDigest, u64>,
    remaining: HashSet<BlobDigest>,
}

impl ExactStorage {
    /// Adds a purged repository's split.
    pub fn add(&mut self, split: BlobSplit) {
        self.removed.extend(split.removed);
        self.remaining.extend(split.remaining);
    }

    /// Adds the blobs of a repository nothing was removed from.
    pub fn add_untouched(&mut self, blobs: impl IntoIterator<Item = BlobDigest>) {
        self.remaining.extend(blobs);
    }

    /// Bytes of the removed blobs that nothing in the registry references any more.
    pub fn freed_bytes(&self) -> u64 {
        self.removed
            .iter()
            .filter(|(blob, _)| !self.remaining.contains(*blob))
            .map(|(_, size)| size)
            .sum()
    }
}

/// `12.4 GiB`, `512 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_reads_naturally() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(13_314_398_618), "12.4 GiB");
    }

    #[test]
    fn remembered_lists_are_pointed_into_and_a_bad_range_leaves_the_manifest_unread() {
        let blob = |b: &str, size| (BlobDigest::from(b), size);
        let mut index = BlobIndex::adopting(vec![blob("a", 1), blob("b", 2), blob("c", 3)]);
        index.point(Digest::from("sha256:m2"), 1, 3);
        index.insert(Digest::from("sha256:m1"), [blob("d", 4)]);
        index.point(Digest::from("sha256:bad"), 2, 9);
        let lists: Vec<(&str, Vec<u64>)> = index
            .iter()
            .map(|(d, blobs)| (d.as_str(), blobs.iter().map(|(_, s)| *s).collect()))
            .collect();
        assert_eq!(lists, [("sha256:m2", vec![2, 3]), ("sha256:m1", vec![4])]);
        assert!(index.unread.contains("sha256:bad"));
        let mark = index.mark();
        index.insert(Digest::from("sha256:m3"), [blob("e", 5)]);
        index.truncate(mark);
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn exact_storage_frees_only_blobs_nothing_references() {
        let mut exact = ExactStorage::default();
        let split = |removed: &[(&str, u64)], remaining: &[&str]| BlobSplit {
            removed: removed
                .iter()
                .map(|(b, s)| (BlobDigest::from(*b), *s))
                .collect(),
            remaining: remaining.iter().map(|b| BlobDigest::from(*b)).collect(),
        };
        exact.add(split(&[("base", 100), ("a", 10)], &["x"]));
        exact.add(split(&[("b", 20)], &[]));
        exact.add_untouched([BlobDigest::from("base")]);
        assert_eq!(exact.freed_bytes(), 30);
    }
}
