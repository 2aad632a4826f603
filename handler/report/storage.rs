//! Storage a purge frees. ACR stores each blob (config, layer) once however many manifests
//! reference it, so deleting an image frees only the blobs that nothing left references:
//! here, the blobs referenced by removed manifests and by no manifest that stays in the
//! same repository. A blob shared with another repository is counted as freed unless
//! `--exact-storage` reads every repository ([`ExactStorage`]). The listing's `imageSize`
//! of the removed manifests is the upper bound. Manifest bodies themselves (a few KiB) are
//! not counted.
//!
//! Blobs are told apart by their 64-bit fingerprints ([`BlobKey`]: 16 bytes a blob with its
//! size, where the digest took 48), not their digests: a repository of a million images
//! holds a few million. The trade is deliberate: these figures are a report, never a
//! deletion decision, and two different blobs sharing a fingerprint (a chance of about
//! n²/2⁶⁵ among n blobs, under one in a million for millions) could only make one removed
//! blob count as shared, so not freed. The full lists, which the run store remembers for
//! the next run, wait on local disk ([`LineSpool`]), not in memory.

use super::{ManifestReport, Outcome, RepositoryReport};
use crate::model::{BlobDigest, BlobKey, Digest};
use crate::plan::Verdict;
use crate::store::spool::LineSpool;
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

/// One blob a manifest references, as read and remembered: its digest and size in bytes.
pub type Blob = (BlobDigest, u64);

/// One blob as the index holds it: its fingerprint and size in bytes (16 bytes where a
/// [`Blob`] takes 48).
pub type KeyedBlob = (BlobKey, u64);

/// The blobs of one repository's manifests, read for the storage figures: each read
/// manifest's digest (shared with the plan) and where its blobs are in one vector of them
/// all, as fingerprints (16 bytes a blob, 28 a manifest; a repository may have a million).
/// A list an earlier run remembered is pointed into where it was read, not copied.
///
/// The full lists (blob digests as text, for the run store to remember) are not held: each
/// list joins a [`LineSpool`] on disk as the line the run store will hold, and
/// [`BlobIndex::write_lines`] copies those of the manifests wanted.
///
/// The manifests that stay, read once what is removed is known (most of a repository), are
/// not held either ([`BlobIndex::add_staying`]): only their line number, and which of the
/// removed manifests' blobs they reference. A million kept images held 60 bytes each here.
///
/// Two indexes are equal when they hold the same manifests with the same blobs (by
/// fingerprint) and the same unknown and unread ones; their spooled lines are not compared.
/// A clone shares the spool.
#[derive(Debug, Clone, Default)]
pub struct BlobIndex {
    /// Each manifest read, in the order read, with where its blobs are in `blobs` (start,
    /// end).
    read: Vec<(Digest, u32, u32)>,
    /// The line of `lists` each manifest of `read` is spooled as, in the same order.
    lines: Vec<u32>,
    /// The blobs of the read manifests (and of remembered ones no longer listed).
    blobs: Vec<KeyedBlob>,
    /// The full lists, one line a manifest (more than the index holds: lists remembered for
    /// manifests no longer listed, and reads taken back).
    lists: LineSpool,
    /// Manifests whose body could not be read.
    pub unknown: HashSet<Digest>,
    /// Manifests whose bodies were not read yet: a removed one left unread counts by its
    /// `imageSize` only, a kept one lets the blobs it shares with removed ones count as
    /// freed.
    pub unread: HashSet<Digest>,
    /// The lines of `lists` of the manifests added by [`BlobIndex::add_staying`]: they stay,
    /// so they are remembered, but their blobs are not held.
    staying: Vec<u32>,
    /// The removed manifests' blobs that a manifest of `staying` references (not freed),
    /// each with the position in `staying` of the first that did (to take reads back).
    shared: HashMap<BlobKey, u32>,
}

impl PartialEq for BlobIndex {
    fn eq(&self, other: &BlobIndex) -> bool {
        self.iter().eq(other.iter())
            && self.unknown == other.unknown
            && self.unread == other.unread
            && self.staying.len() == other.staying.len()
            && self.shared.keys().collect::<HashSet<_>>() == other.shared.keys().collect()
    }
}

impl Eq for BlobIndex {}

/// Appends `list` to `blobs`, the one vector that holds many manifests' lists, and says
/// where it went (start, end); past 2³² blobs in all, nothing is appended (`None`).
pub fn append_list(blobs: &mut Vec<KeyedBlob>, list: &[Blob]) -> Option<(u32, u32)> {
    let start = blobs.len();
    blobs.extend(list.iter().map(|(blob, size)| (BlobKey::from(blob), *size)));
    match (u32::try_from(start), u32::try_from(blobs.len())) {
        (Ok(start), Ok(end)) => Some((start, end)),
        _ => {
            blobs.truncate(start);
            None
        }
    }
}

/// Appends the line the run store remembers `manifest`'s `blobs` as,
/// `["<manifest>",[["<blob digest>",<size>],…]]`, to `lists`, and says its number (`None`
/// past 2³² lines).
pub fn spool_list(lists: &LineSpool, manifest: &str, blobs: &[Blob]) -> Option<u32> {
    let line = lists
        .push(|out| serde_json::to_writer(out, &(manifest, blobs)).map_err(std::io::Error::from));
    u32::try_from(line).ok()
}

/// Where a remembered list is: its blobs at `start..end` of the index's vector, and its
/// `line` of the spool (start, end, line).
pub type Spooled = (u32, u32, u32);

/// The blobs at `start..end` of `blobs`, when that range and `line` of `lists` are within
/// bounds.
fn located<'b>(
    blobs: &'b [KeyedBlob],
    lists: &LineSpool,
    (start, end, line): Spooled,
) -> Option<&'b [KeyedBlob]> {
    let blobs = blobs.get(start as usize..end as usize)?;
    ((line as usize) < lists.len()).then_some(blobs)
}

/// Records a manifest that stays, as its spooled `line`, and which of `removed` its `blobs`
/// reference (in `shared`, with its position in `staying`); `false` past 2³² of them.
fn stay(
    staying: &mut Vec<u32>,
    shared: &mut HashMap<BlobKey, u32>,
    line: u32,
    blobs: impl Iterator<Item = BlobKey>,
    removed: &HashSet<BlobKey>,
) -> bool {
    let Ok(at) = u32::try_from(staying.len()) else {
        return false;
    };
    staying.push(line);
    for blob in blobs.filter(|blob| removed.contains(blob)) {
        shared.entry(blob).or_insert(at);
    }
    true
}

/// How far a [`BlobIndex`] had read, to take back what was added since
/// ([`BlobIndex::truncate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    read: usize,
    blobs: usize,
    staying: usize,
}

impl BlobIndex {
    /// An index whose blob vector starts as `blobs` and whose spool as `lists` (lists
    /// remembered by an earlier run, for [`BlobIndex::point`]).
    pub fn adopting(blobs: Vec<KeyedBlob>, lists: LineSpool) -> BlobIndex {
        BlobIndex {
            blobs,
            lists,
            ..BlobIndex::default()
        }
    }

    /// Adds a manifest's blobs (their fingerprints here, their list to the spool); past 2³²
    /// blobs or lines in all, it is left unread instead.
    pub fn insert(&mut self, manifest: Digest, blobs: &[Blob]) {
        let added = append_list(&mut self.blobs, blobs).and_then(|(start, end)| {
            match spool_list(&self.lists, &manifest, blobs) {
                Some(line) => Some((start, end, line)),
                None => {
                    self.blobs.truncate(start as usize);
                    None
                }
            }
        });
        match added {
            Some((start, end, line)) => {
                self.read.push((manifest, start, end));
                self.lines.push(line);
            }
            None => {
                self.unread.insert(manifest);
            }
        }
    }

    /// The fingerprints of the blobs of the manifests read that `removed` says are removed.
    pub fn removed_blobs(&self, removed: impl Fn(&str) -> bool) -> HashSet<BlobKey> {
        self.iter()
            .filter(|(digest, _)| removed(digest.as_str()))
            .flat_map(|(_, blobs)| blobs.iter().map(|(blob, _)| *blob))
            .collect()
    }

    /// Adds a manifest that stays, read once what is removed was known: its list goes to the
    /// spool (to be remembered), and of its blobs only which of `removed` (the removed
    /// manifests' blobs, [`BlobIndex::removed_blobs`]) it references is held. Past 2³² lines
    /// it is left unread instead. Not for `--exact-storage`, whose registry-wide figures need
    /// every blob of what stays ([`BlobIndex::insert`]).
    pub fn add_staying(&mut self, manifest: Digest, blobs: &[Blob], removed: &HashSet<BlobKey>) {
        let keys = blobs.iter().map(|(blob, _)| BlobKey::from(blob));
        let stays = spool_list(&self.lists, &manifest, blobs)
            .is_some_and(|line| stay(&mut self.staying, &mut self.shared, line, keys, removed));
        if !stays {
            self.unread.insert(manifest);
        }
    }

    /// Adds a manifest that stays whose list an earlier run remembered, at `at` (blobs
    /// `start..end` of the vector, `line` of the spool), as [`BlobIndex::add_staying`] adds one read:
    /// its line remembered again, and only which of `removed` it references held. A range
    /// or line out of bounds leaves it unread.
    pub fn point_staying(&mut self, manifest: Digest, at: Spooled, removed: &HashSet<BlobKey>) {
        let stays = located(&self.blobs, &self.lists, at).is_some_and(|blobs| {
            let keys = blobs.iter().map(|(blob, _)| *blob);
            stay(&mut self.staying, &mut self.shared, at.2, keys, removed)
        });
        if !stays {
            self.unread.insert(manifest);
        }
    }

    /// Drops the blobs that no manifest held points into (remembered lists of manifests
    /// that stay, or no longer listed), keeping the rest in order.
    pub fn compact(&mut self) {
        let held: usize = self
            .read
            .iter()
            .map(|(_, start, end)| end.saturating_sub(*start) as usize)
            .sum();
        if u32::try_from(held).is_err() {
            return;
        }
        let mut blobs = Vec::with_capacity(held);
        for (_, start, end) in &mut self.read {
            let list = self
                .blobs
                .get(*start as usize..*end as usize)
                .unwrap_or(&[]);
            // Both within 2³²: `held` is.
            *start = blobs.len() as u32;
            blobs.extend_from_slice(list);
            *end = blobs.len() as u32;
        }
        self.blobs = blobs;
    }

    /// Adds a manifest whose blobs are already in the vector, at `start..end`, and whose
    /// list is line `line` of the spool; out of bounds, it is left unread.
    pub fn point(&mut self, manifest: Digest, at: Spooled) {
        match located(&self.blobs, &self.lists, at) {
            Some(_) => {
                let (start, end, line) = at;
                self.read.push((manifest, start, end));
                self.lines.push(line);
            }
            None => {
                self.unread.insert(manifest);
            }
        }
    }

    /// Every manifest read, with its blobs' fingerprints, in the order read.
    pub fn iter(&self) -> impl Iterator<Item = (&Digest, &[KeyedBlob])> {
        self.read.iter().map(|(digest, start, end)| {
            let blobs = self.blobs.get(*start as usize..*end as usize);
            (digest, blobs.unwrap_or(&[]))
        })
    }

    /// Writes the spooled line of each manifest read that `keep` keeps, once, in the order
    /// spooled: `["<manifest>",[["<blob digest>",<size>],…]]` and a newline.
    pub fn write_lines(
        &self,
        keep: impl Fn(&str) -> bool,
        out: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        let mut wanted = vec![false; self.lists.len()];
        for ((digest, _, _), line) in self.read.iter().zip(&self.lines) {
            if keep(digest.as_str())
                && let Some(want) = wanted.get_mut(*line as usize)
            {
                *want = true;
            }
        }
        for line in &self.staying {
            if let Some(want) = wanted.get_mut(*line as usize) {
                *want = true;
            }
        }
        self.lists
            .each_line(|number, line| match wanted.get(number) {
                Some(true) => {
                    out.write_all(line)?;
                    out.write_all(b"\n")
                }
                _ => Ok(()),
            })
    }

    /// Where the full lists are spooled, once one is.
    #[cfg(test)]
    pub(crate) fn spool_path(&self) -> Option<std::path::PathBuf> {
        self.lists.path()
    }

    /// How many manifests were read (those added by [`BlobIndex::add_staying`] included).
    pub fn len(&self) -> usize {
        self.read.len() + self.staying.len()
    }

    /// Whether no manifest was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the index stands now.
    pub fn mark(&self) -> Mark {
        Mark {
            read: self.read.len(),
            blobs: self.blobs.len(),
            staying: self.staying.len(),
        }
    }

    /// Forgets the manifests read since `mark` (their spooled lines stay, unused: they are
    /// never written).
    pub fn truncate(&mut self, mark: Mark) {
        self.read.truncate(mark.read);
        self.lines.truncate(mark.read);
        self.blobs.truncate(mark.blobs);
        self.staying.truncate(mark.staying);
        self.shared.retain(|_, at| (*at as usize) < mark.staying);
    }
}

/// The removed and remaining blobs of one repository, for [`ExactStorage`].
#[derive(Debug, Clone, Default)]
pub struct BlobSplit {
    /// Blobs of removed manifests that no remaining manifest here references.
    pub removed: HashMap<BlobKey, u64>,
    /// Blobs of the manifests that stay (only gathered for `--exact-storage`).
    pub remaining: HashSet<BlobKey>,
}

/// Whether a manifest is gone after the run: planned removed (dry run), or deleted (or
/// removed with a manifest that was deleted) in a real run.
pub(crate) fn removed_manifests(manifests: &[ManifestReport], dry_run: bool) -> HashSet<&str> {
    let mut gone: HashSet<&str> = manifests
        .iter()
        .filter(|m| match dry_run {
            true => m.decision.verdict.is_removed(),
            false => m.outcome.as_ref().is_some_and(Outcome::is_gone),
        })
        .map(|m| m.decision.digest.as_str())
        .collect();
    // Cascades follow their manifest, transitively (a referrer of a referrer).
    loop {
        let more: Vec<&str> = manifests
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
    let gone = removed_manifests(&repo.manifests, dry_run);
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
            split.removed.extend(blobs.iter().copied());
        }
    }
    for (digest, blobs) in index.iter() {
        if gone.contains(digest.as_str()) {
            continue;
        }
        for (blob, _) in blobs {
            split.removed.remove(blob);
            if exact {
                split.remaining.insert(*blob);
            }
        }
    }
    for blob in index.shared.keys() {
        split.removed.remove(blob);
    }
    storage.freed_bytes = split.removed.values().sum();
    (storage, split)
}

/// Registry-wide accounting (`--exact-storage`): a blob counts as freed only when no
/// manifest left in any repository references it.
#[derive(Debug, Default)]
pub struct ExactStorage {
    removed: HashMap<BlobKey, u64>,
    remaining: HashSet<BlobKey>,
}

impl ExactStorage {
    /// Adds a purged repository's split.
    pub fn add(&mut self, split: BlobSplit) {
        self.removed.extend(split.removed);
        self.remaining.extend(split.remaining);
    }

    /// Adds the blobs of a repository nothing was removed from.
    pub fn add_untouched(&mut self, blobs: impl IntoIterator<Item = BlobKey>) {
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

    fn blob(text: &str, size: u64) -> Blob {
        (BlobDigest::from(text), size)
    }

    /// A lowercase `sha256:` digest, of `n` (a real hash, as a registry's digests are).
    fn sha(n: u64) -> String {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(n.to_le_bytes());
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// What `index` writes for the manifests not in `gone`, a line each.
    fn written(index: &BlobIndex, gone: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        index.write_lines(|d| !gone.contains(&d), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_blob_takes_16_bytes_in_the_index() {
        assert_eq!(std::mem::size_of::<KeyedBlob>(), 16);
        assert_eq!(std::mem::size_of::<Blob>(), 48, "as read, before");
        // A manifest: its entry and its spooled line's number.
        assert_eq!(std::mem::size_of::<(Digest, u32, u32)>() + 4, 28);
    }

    #[test]
    fn remembered_lists_are_pointed_into_and_a_bad_range_leaves_the_manifest_unread() {
        // An earlier run's lists: line 0 (blobs 0..1), line 1 (blobs 1..3).
        let lists = LineSpool::new();
        let mut blobs = Vec::new();
        for (manifest, list) in [
            ("sha256:m0", vec![blob("a", 1)]),
            ("sha256:m2", vec![blob("b", 2), blob("c", 3)]),
        ] {
            append_list(&mut blobs, &list);
            spool_list(&lists, manifest, &list);
        }
        let mut index = BlobIndex::adopting(blobs, lists);
        index.point(Digest::from("sha256:m2"), (1, 3, 1));
        index.insert(Digest::from("sha256:m1"), &[blob("d", 4)]);
        index.point(Digest::from("sha256:bad"), (2, 9, 0));
        index.point(Digest::from("sha256:badline"), (0, 1, 9));
        let lists: Vec<(&str, Vec<u64>)> = index
            .iter()
            .map(|(d, blobs)| (d.as_str(), blobs.iter().map(|(_, s)| *s).collect()))
            .collect();
        assert_eq!(lists, [("sha256:m2", vec![2, 3]), ("sha256:m1", vec![4])]);
        assert!(index.unread.contains("sha256:bad"));
        assert!(index.unread.contains("sha256:badline"));
        assert_eq!(
            written(&index, &[]),
            [
                r#"["sha256:m2",[["b",2],["c",3]]]"#,
                r#"["sha256:m1",[["d",4]]]"#
            ],
            "the lines in use, in the order spooled; m0's is not"
        );
    }

    #[test]
    fn a_read_taken_back_is_never_written() {
        let mut index = BlobIndex::default();
        index.insert(Digest::from("sha256:m1"), &[blob("a", 1)]);
        let mark = index.mark();
        index.insert(Digest::from("sha256:m3"), &[blob("e", 5)]);
        index.truncate(mark);
        assert_eq!(index.len(), 1);
        // Read again later (a second call): the new line is written, once.
        index.insert(Digest::from("sha256:m3"), &[blob("f", 6)]);
        assert_eq!(
            written(&index, &[]),
            [r#"["sha256:m1",[["a",1]]]"#, r#"["sha256:m3",[["f",6]]]"#]
        );
    }

    #[test]
    fn gone_manifests_are_left_out_and_digests_are_written_as_read() {
        let mut index = BlobIndex::default();
        let (b1, b2) = (sha(1), sha(2));
        index.insert(
            Digest::from("sha256:kept"),
            &[blob(&b1, 7), blob("odd:Blob", 1)],
        );
        index.insert(Digest::from("sha256:gone"), &[blob(&b2, 3)]);
        index.insert(Digest::from("sha256:empty"), &[]);
        assert_eq!(
            written(&index, &["sha256:gone"]),
            [
                format!(r#"["sha256:kept",[["{b1}",7],["odd:Blob",1]]]"#),
                r#"["sha256:empty",[]]"#.to_string()
            ]
        );
    }

    #[test]
    fn indexes_with_the_same_lists_are_equal_and_a_clone_shares_the_spool() {
        let (mut a, mut b) = (BlobIndex::default(), BlobIndex::default());
        a.insert(Digest::from("sha256:m"), &[blob("x", 1)]);
        b.insert(Digest::from("sha256:m"), &[blob("x", 1)]);
        assert_eq!(a, b);
        b.unread.insert(Digest::from("sha256:n"));
        assert_ne!(a, b);
        let mut clone = a.clone();
        clone.insert(Digest::from("sha256:c"), &[blob("y", 2)]);
        assert_eq!(written(&a, &[]), [r#"["sha256:m",[["x",1]]]"#]);
        assert_eq!(written(&clone, &[]).len(), 2);
    }

    /// The plan of `manifests` (digest, removed, image size) as a report.
    fn report(manifests: &[(&str, bool, u64)]) -> RepositoryReport {
        let manifests: Vec<serde_json::Value> = manifests
            .iter()
            .map(|(digest, removed, size)| {
                let mut item = serde_json::json!({
                    "digest": digest, "tags": [], "imageSize": size, "locked": false,
                    "unlock": false, "decision": "keep", "reason": "notSelected",
                });
                if *removed {
                    item["decision"] = "delete".into();
                    item["reason"] = "untagged".into();
                    item["rule"] = 1.into();
                }
                item
            })
            .collect();
        let plan = serde_json::json!({
            "repository": "r", "tags": [], "manifests": manifests,
            "purgesTags": false, "purgesManifests": true,
        });
        RepositoryReport::planned(serde_json::from_value(plan).unwrap())
    }

    #[test]
    fn fingerprints_give_the_freed_bytes_the_digests_gave() {
        // 300 images over shared bases: a removed image frees its own layer, not the base
        // it shares with one that stays; odd (non-sha256) digests too.
        let mut manifests = Vec::new();
        let mut lists = Vec::new();
        for image in 0..300u64 {
            let base = sha(1_000_000 + image % 7);
            let own = match image % 5 {
                0 => format!("odd:{image}"),
                _ => sha(image),
            };
            let removed = image % 3 == 0;
            manifests.push((sha(2_000_000 + image), removed, 1000));
            lists.push(vec![blob(&base, 100 + image % 7), blob(&own, image)]);
        }
        let items: Vec<(&str, bool, u64)> = manifests
            .iter()
            .map(|(digest, removed, size)| (digest.as_str(), *removed, *size))
            .collect();
        let mut repo = report(&items);
        let mut index = BlobIndex::default();
        for ((digest, _, _), list) in manifests.iter().zip(&lists) {
            index.insert(Digest::from(digest.as_str()), list);
        }
        repo.blobs = Some(index);
        // The reference: by digest, as before fingerprints.
        let mut removed: HashMap<&BlobDigest, u64> = HashMap::new();
        for ((_, gone, _), list) in manifests.iter().zip(&lists) {
            if *gone {
                removed.extend(list.iter().map(|(b, s)| (b, *s)));
            }
        }
        for ((_, gone, _), list) in manifests.iter().zip(&lists) {
            if !gone {
                for (b, _) in list {
                    removed.remove(b);
                }
            }
        }
        let reference: u64 = removed.values().sum();
        let (storage, split) = repository_storage(&repo, true, true);
        assert_eq!(storage.freed_bytes, reference);
        assert_eq!(storage.at_most_bytes, 100 * 1000);
        assert!(reference > 0 && !split.remaining.is_empty());
        let mut exact = ExactStorage::default();
        exact.add(split);
        assert_eq!(exact.freed_bytes(), reference);
    }

    #[test]
    fn manifests_that_stay_count_by_what_they_share_and_are_remembered() {
        // Two removed images and three that stay, over one shared base; the same freed
        // bytes whether what stays is held whole or only by what it shares.
        let base = sha(1);
        let lists = [
            (
                "sha256:gone1",
                true,
                vec![blob(&base, 100), blob(&sha(2), 20)],
            ),
            ("sha256:gone2", true, vec![blob(&sha(3), 30)]),
            (
                "sha256:stay1",
                false,
                vec![blob(&base, 100), blob(&sha(4), 40)],
            ),
            ("sha256:stay2", false, vec![blob(&sha(3), 30)]),
            ("sha256:stay3", false, vec![blob(&sha(5), 50)]),
        ];
        let items: Vec<(&str, bool, u64)> = lists.iter().map(|(d, r, _)| (*d, *r, 1)).collect();
        let freed = |index: BlobIndex| {
            let mut repo = report(&items);
            repo.blobs = Some(index);
            repository_storage(&repo, true, false).0.freed_bytes
        };
        let mut held = BlobIndex::default();
        for (digest, _, list) in &lists {
            held.insert(Digest::from(*digest), list);
        }
        let mut counted = BlobIndex::default();
        for (digest, _, list) in lists.iter().filter(|(_, removed, _)| *removed) {
            counted.insert(Digest::from(*digest), list);
        }
        let removed = counted.removed_blobs(|d| d.starts_with("sha256:gone"));
        assert_eq!(removed.len(), 3);
        counted.add_staying(Digest::from("sha256:stay1"), &lists[2].2, &removed);
        let mark = counted.mark();
        counted.add_staying(Digest::from("sha256:stay2"), &lists[3].2, &removed);
        // Only sha(2) is freed: the base and sha(3) stay referenced.
        assert_eq!(freed(held.clone()), 20);
        assert_eq!(freed(counted.clone()), 20);
        assert_eq!(counted.len(), 4);
        // stay2's read taken back: sha(3) counts as freed again, its line is not written.
        let mut taken_back = counted.clone();
        taken_back.truncate(mark);
        assert_eq!(freed(taken_back.clone()), 50);
        taken_back.add_staying(Digest::from("sha256:stay3"), &lists[4].2, &removed);
        assert_eq!(freed(taken_back.clone()), 50);
        let manifests: Vec<String> = written(&taken_back, &[])
            .iter()
            .map(|line| line[2..14].to_string())
            .collect();
        assert_eq!(
            manifests,
            [
                "sha256:gone1",
                "sha256:gone2",
                "sha256:stay1",
                "sha256:stay3"
            ]
        );
        assert_eq!(
            written(&counted, &[]),
            written(&held, &[])[..4].to_vec(),
            "the same lines as held whole"
        );
    }

    #[test]
    fn exact_storage_frees_only_blobs_nothing_references() {
        let mut exact = ExactStorage::default();
        let split = |removed: &[(&str, u64)], remaining: &[&str]| BlobSplit {
            removed: removed.iter().map(|(b, s)| (BlobKey::new(b), *s)).collect(),
            remaining: remaining.iter().map(|b| BlobKey::new(b)).collect(),
        };
        exact.add(split(&[("base", 100), ("a", 10)], &["x"]));
        exact.add(split(&[("b", 20)], &[]));
        exact.add_untouched([BlobKey::new("base")]);
        assert_eq!(exact.freed_bytes(), 30);
    }
}
