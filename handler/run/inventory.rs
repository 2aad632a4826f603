//! Reading one repository: its tags, its manifests and the manifest bodies the plan needs,
//! all before anything is deleted, so listings are never paged with a cursor this run has
//! deleted and the plan sees the whole graph.
//!
//! When the plan removes a manifest, the storage figures ([`crate::report::storage`]) need
//! the blobs of every manifest of the repository. None is read here: the index starts from
//! the bodies the plan read and the blobs an earlier run remembered (a manifest's blobs
//! never change for its digest), and every other manifest is left unread. Each deletion
//! reads the bodies it removes just before it waits for its slot (the execution stage), and
//! the bodies of what stays are read once the repository's deletions are done
//! ([`read_unread_blobs`]), and not at all once the run is stopping: reads never hold up
//! the first DELETE. Repositories where only tags are deleted free nothing and cost no
//! read; `--no-storage` skips them all.

use crate::model::{BlobDigest, BlobKey, Digest, ManifestBody};
use crate::plan::{Body, Draft, ReferrerSource, RepositoryPlan, Scope};
use crate::registry::{RateCard, RegistryClient, RegistryError};
use crate::report::storage::{Blob, KeyedBlob, Mark, Spooled, append_list, spool_list};
use crate::report::{BlobIndex, PlanError};
use crate::store::spool::LineSpool;
use futures::{StreamExt, TryStreamExt};
use std::collections::{HashMap, HashSet};

/// A repository's plan and, when it removes manifests, the blobs of its manifests read so
/// far (the kept manifests whose bodies are still to read are in [`BlobIndex::unread`]).
pub struct Planned {
    /// The plan.
    pub plan: RepositoryPlan,
    /// The blobs of the removed manifests (and of any other the plan read), when the plan
    /// removes any.
    pub blobs: Option<BlobIndex>,
}

/// Lists `repository` and plans it. `Ok(None)` when the repository does not exist.
/// `known_blobs` (what an earlier run remembered) is awaited only once the plan is made, and
/// only when it removes manifests: the remembered lists are never held beside the listing.
pub async fn plan_repository(
    client: &RegistryClient,
    repository: &str,
    scope: Scope,
    concurrency: usize,
    count_storage: bool,
    exact_storage: bool,
    known_blobs: impl std::future::Future<Output = KnownBlobs>,
) -> Result<Option<Planned>, PlanError> {
    let mut tags = if scope.needs_tags() {
        match client.list_tags(repository).await? {
            Some(tags) => tags,
            None => return Ok(None),
        }
    } else {
        Vec::new()
    };
    let manifests = if scope.needs_manifests(&tags) {
        // The manifests share the tags' digests and names (one copy of each in memory).
        let mut shared = crate::model::share_tags(&mut tags);
        match client
            .list_manifests_sharing(repository, Some(&mut shared))
            .await?
        {
            Some(manifests) => Some(manifests),
            None => return Ok(None),
        }
    } else {
        None
    };
    let draft = Draft::new(repository, scope, tags, manifests)?;
    let source = draft.referrer_source(reads_per_referrers_call(&client.rate_card()));
    let mut wanted = draft.bodies_needed();
    if let ReferrerSource::Bodies(extra) = &source {
        wanted.extend(extra.iter().cloned());
    }
    let bodies = read_bodies(client, repository, wanted, concurrency).await?;
    let referrers: HashMap<String, Vec<String>> = match source {
        ReferrerSource::None => HashMap::new(),
        ReferrerSource::Bodies(_) => draft.referrers_from_bodies(&bodies),
        ReferrerSource::Api(digests) => {
            futures::stream::iter(digests)
                .map(|digest| async move {
                    let list = client.referrers(repository, &digest).await?;
                    Ok::<_, RegistryError>((digest, list))
                })
                .buffer_unordered(concurrency.max(1))
                .try_collect()
                .await?
        }
    };
    let plan = draft.finish(&bodies, &referrers);
    let blobs = match count_storage && plan.manifests.iter().any(|m| m.verdict.is_removed()) {
        false => None,
        true => Some(blob_index(&plan, bodies, known_blobs.await, exact_storage)),
    };
    Ok(Some(Planned { plan, blobs }))
}

async fn read_bodies(
    client: &RegistryClient,
    repository: &str,
    digests: Vec<String>,
    concurrency: usize,
) -> Result<HashMap<String, Body>, RegistryError> {
    futures::stream::iter(digests)
        .map(|digest| async move {
            let body = client.manifest_body(repository, &digest).await?;
            Ok::<_, RegistryError>((digest, body.map_or(Body::Missing, Body::Found)))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await
}

/// The blobs of the manifests an earlier run read, as the run store remembers them (a line
/// a manifest, see [`Staying::write_lines`]), held as compactly as the storage figures'
/// index: manifest digests as [`BlobDigest`]s (exact: a manifest's look-up must be; no text
/// allocation), blobs as fingerprints in one vector, and each line, as read, in a
/// [`LineSpool`] on disk for the index to remember again.
#[derive(Debug, Clone, Default)]
pub struct KnownBlobs {
    /// Each manifest with where its blobs are in `blobs` (start, end) and its line in
    /// `lines`; sorted by manifest before it is looked up (a sorted vector is half the
    /// memory of a map of a million).
    lists: Vec<Remembered>,
    blobs: Vec<KeyedBlob>,
    lines: LineSpool,
    sorted: bool,
}

/// A remembered manifest and where its blobs are (start, end) and its line.
type Remembered = (BlobDigest, u32, u32, u32);

impl KnownBlobs {
    /// None known.
    pub fn new() -> KnownBlobs {
        KnownBlobs::default()
    }

    /// Adds (or replaces) a manifest's blobs; past 2³² blobs or lines in all, it is left out
    /// (read again).
    pub fn insert(&mut self, manifest: &str, blobs: &[Blob]) {
        let Some((start, end)) = append_list(&mut self.blobs, blobs) else {
            return;
        };
        match spool_list(&self.lines, manifest, blobs) {
            Some(line) => {
                self.lists
                    .push((BlobDigest::new(manifest), start, end, line));
                self.sorted = false;
            }
            None => self.blobs.truncate(start as usize),
        }
    }

    /// Sorts the lists by manifest for look-ups, keeping only the latest of a manifest's.
    fn sort(&mut self) {
        if !self.sorted {
            // Latest (the highest line) first within a manifest, then the others out. In
            // place: a stable sort's scratch space took 23 MB at a million lists.
            self.lists
                .sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.3.cmp(&a.3)));
            self.lists.dedup_by(|later, first| later.0 == first.0);
            self.sorted = true;
        }
    }

    /// The blobs of `manifest` (their fingerprints and sizes), when known.
    pub fn get(&mut self, manifest: &str) -> Option<&[KeyedBlob]> {
        self.sort();
        let (start, end, _) = find(&self.lists, manifest)?;
        self.blobs.get(start as usize..end as usize)
    }

    /// The lists, sorted by manifest ([`find`]), the blobs they point into and their lines.
    fn into_parts(mut self) -> (Vec<Remembered>, Vec<KeyedBlob>, LineSpool) {
        self.sort();
        (self.lists, self.blobs, self.lines)
    }

    /// Adds the manifest of one line the run store remembered ([`Staying::write_lines`]).
    pub fn read_line(&mut self, line: &[u8]) -> Result<(), serde_json::Error> {
        let (manifest, blobs): (std::borrow::Cow<'_, str>, Vec<Blob>) =
            serde_json::from_slice(line)?;
        self.insert(&manifest, &blobs);
        Ok(())
    }

    /// How many lists are held (a manifest remembered twice counts once after a look-up).
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

/// Where the blobs of `manifest` are (start, end) and its line, in lists sorted by manifest.
fn find(lists: &[Remembered], manifest: &str) -> Option<Spooled> {
    let key = BlobDigest::new(manifest);
    let at = lists.binary_search_by(|(m, ..)| m.cmp(&key)).ok()?;
    lists
        .get(at)
        .map(|&(_, start, end, line)| (start, end, line))
}

/// The blobs of the manifests that stay, for the run store: the index's spooled lines of
/// the manifests it read that are not gone, copied as the lines [`KnownBlobs`] reads.
pub struct Staying<'a> {
    /// Every manifest the index read, with its blobs.
    index: &'a BlobIndex,
    /// The manifests that are gone (deleted, or removed with one), left out.
    gone: &'a HashSet<&'a str>,
}

impl<'a> Staying<'a> {
    /// The manifests of `index` that are not `gone`.
    pub fn new(index: &'a BlobIndex, gone: &'a HashSet<&'a str>) -> Staying<'a> {
        Staying { index, gone }
    }

    /// Writes one line a staying manifest, `["<digest>",[["<blob digest>",<size>],…]]`, for
    /// [`KnownBlobs::read_line`]: the list the index holds for it (the latest of a manifest
    /// remembered twice; none of a read taken back).
    pub fn write_lines(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.index
            .write_lines(|digest| !self.gone.contains(digest), out)
            .map_err(|e| std::io::Error::new(e.kind(), format!("the storage figures' lists: {e}")))
    }
}

/// The storage figures' index at planning time: the blobs of the bodies the plan read (an
/// index has none of its own) and those `known` from an earlier run; every other manifest
/// of the plan is left in [`BlobIndex::unread`].
///
/// When the list of every manifest the plan removes is known (read now or remembered, as on
/// a scheduled run's second pass), the remembered lists of the manifests the plan keeps are
/// not held: only which of the removed manifests' blobs they reference
/// ([`BlobIndex::point_staying`]). The plan that runs removes no more than this one (a saved
/// plan applies a subset, the repository guard only refuses), so what it keeps stays.
/// Not under `--exact-storage` (`exact`), whose figures need every blob of what stays.
fn blob_index(
    plan: &RepositoryPlan,
    bodies: HashMap<String, Body>,
    known: KnownBlobs,
    exact: bool,
) -> BlobIndex {
    // The remembered lists become the index's own, not copies: each manifest of the plan
    // that an earlier run read points into them.
    let (lists, blobs, lines) = known.into_parts();
    let mut index = BlobIndex::adopting(blobs, lines);
    let mut read = HashSet::with_capacity(bodies.len());
    for (digest, body) in bodies {
        let digest = Digest::from(digest);
        match body {
            Body::Found(body) => index.insert(digest.clone(), &blob_list(&body)),
            Body::Missing => {
                index.unknown.insert(digest.clone());
            }
        }
        read.insert(digest);
    }
    let unread = |removed: bool| {
        plan.manifests
            .iter()
            .filter(move |m| m.verdict.is_removed() == removed)
            .map(|m| &m.digest)
            .filter(|digest| !read.contains(*digest))
    };
    let mut all_removed_known = true;
    for digest in unread(true) {
        match find(&lists, digest) {
            Some(found) => index.point(digest.clone(), found),
            None => {
                all_removed_known = false;
                index.unread.insert(digest.clone());
            }
        }
    }
    let removed_blobs = (all_removed_known && !exact).then(|| {
        let removed: HashSet<&str> = plan
            .manifests
            .iter()
            .filter(|m| m.verdict.is_removed())
            .map(|m| m.digest.as_str())
            .collect();
        index.removed_blobs(|digest| removed.contains(digest))
    });
    for digest in unread(false) {
        match (find(&lists, digest), &removed_blobs) {
            (Some(found), Some(removed)) => index.point_staying(digest.clone(), found, removed),
            (Some(found), None) => index.point(digest.clone(), found),
            (None, _) => {
                index.unread.insert(digest.clone());
            }
        }
    }
    index.compact();
    index
}

/// How [`read_unread_blobs`] adds the lists it reads to the index.
#[derive(Clone, Copy)]
pub enum Adding<'a> {
    /// Held whole ([`BlobIndex::insert`]): the removed manifests' own lists, and every list
    /// under `--exact-storage`.
    Held,
    /// Manifests that stay: only which of these removed manifests' blobs they reference is
    /// held ([`BlobIndex::add_staying`]).
    Staying(&'a HashSet<BlobKey>),
}

/// Reads the bodies of `digests` (none of them in [`BlobIndex::unread`] any more) for the
/// storage figures and adds their blobs to `index` as `adding` says. A read that fails
/// leaves them all unread (the figures say what they could not see); returns whether they
/// were all read.
pub async fn read_unread_blobs(
    client: &RegistryClient,
    repository: &str,
    index: &mut BlobIndex,
    digests: &HashSet<Digest>,
    adding: Adding<'_>,
) -> bool {
    let concurrency = client.read_concurrency();
    // Each body is reduced to its blobs and joins the index as it arrives (a repository may
    // have a million to read: no list of them all is held on the side); a failed read takes
    // back what this call added, so that all or none of them join.
    let mark = index.mark();
    let mut reads = futures::stream::iter(digests.iter().cloned())
        .map(|digest| async move {
            let body = client.manifest_body(repository, &digest).await?;
            Ok::<_, RegistryError>((digest, body.map(|body| blob_list(&body))))
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(read) = reads.next().await {
        match read {
            Ok((digest, Some(blobs))) => match adding {
                Adding::Held => index.insert(digest, &blobs),
                Adding::Staying(removed) => index.add_staying(digest, &blobs, removed),
            },
            Ok((digest, None)) => {
                index.unknown.insert(digest);
            }
            Err(error) => {
                drop(reads);
                unread_again(index, mark, digests);
                tracing::warn!(%error, repository, "reading manifests for the storage figures failed");
                return false;
            }
        }
    }
    true
}

/// Takes back what a failed [`read_unread_blobs`] added since `mark`: `digests` (every one
/// unread when it began) are unread again.
fn unread_again(index: &mut BlobIndex, mark: Mark, digests: &HashSet<Digest>) {
    index.truncate(mark);
    for digest in digests {
        index.unknown.remove(digest);
        index.unread.insert(digest.clone());
    }
}

/// Adds bodies read during the deletions to `index`: their blobs, or unknown when gone; no
/// longer unread.
pub fn add_bodies(index: &mut BlobIndex, bodies: HashMap<String, Body>) {
    for (digest, body) in bodies {
        let blobs = match body {
            Body::Found(body) => Some(blob_list(&body)),
            Body::Missing => None,
        };
        add_blobs(index, Digest::from(digest), blobs);
    }
}

/// A body's blobs, as read (for the index's fingerprints and the spooled line).
fn blob_list(body: &ManifestBody) -> Vec<Blob> {
    body.blob_sizes()
        .map(|(blob, size)| (BlobDigest::new(blob), size))
        .collect()
}

/// Adds one unread manifest to `index`: its blobs, or unknown when its body is gone
/// (`None`); no longer unread. A manifest that was not unread is already in (read twice):
/// it is not added again.
fn add_blobs(index: &mut BlobIndex, digest: Digest, blobs: Option<Vec<Blob>>) {
    if !index.unread.remove(&digest) {
        return;
    }
    match blobs {
        Some(blobs) => index.insert(digest, &blobs),
        None => {
            index.unknown.insert(digest);
        }
    }
}

/// How many reads the rate card allows for one referrers call.
fn reads_per_referrers_call(card: &RateCard) -> f64 {
    match (card.read, card.referrers) {
        (Some(read), Some(referrers)) => read / referrers,
        (None, Some(_)) => f64::INFINITY,
        (_, None) => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BlobKey;

    fn blob(text: &str, size: u64) -> Blob {
        (BlobDigest::from(text), size)
    }

    /// What `staying` writes, a line each.
    fn lines(staying: &Staying<'_>) -> Vec<String> {
        let mut written = Vec::new();
        staying.write_lines(&mut written).unwrap();
        String::from_utf8(written)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_failed_read_leaves_every_manifest_of_the_call_unread() {
        let digests: HashSet<Digest> = ["sha256:a", "sha256:b", "sha256:c"]
            .map(Digest::from)
            .into();
        let mut index = BlobIndex::default();
        index.insert(Digest::from("sha256:kept"), &[blob("blob", 1)]);
        index.unread.extend(digests.iter().cloned());
        let mark = index.mark();
        // Two reads arrived (one body, one gone) before the third failed.
        add_blobs(
            &mut index,
            Digest::from("sha256:a"),
            Some(vec![blob("blob", 1)]),
        );
        add_blobs(&mut index, Digest::from("sha256:b"), None);
        assert_eq!(index.len(), 2);
        unread_again(&mut index, mark, &digests);
        assert_eq!(index.unread, digests);
        assert!(index.unknown.is_empty());
        let read: Vec<&str> = index.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(read, ["sha256:kept"], "what an earlier call read stays");
        let gone = HashSet::new();
        assert_eq!(
            lines(&Staying::new(&index, &gone)),
            [r#"["sha256:kept",[["blob",1]]]"#],
            "the read taken back is not remembered"
        );
    }

    #[test]
    fn a_manifest_read_twice_joins_the_index_once() {
        let mut index = BlobIndex::default();
        let digest = Digest::from("sha256:a");
        index.unread.insert(digest.clone());
        add_blobs(&mut index, digest.clone(), Some(vec![blob("first", 1)]));
        add_blobs(&mut index, digest, Some(vec![blob("second", 1)]));
        assert_eq!(index.len(), 1);
        let gone = HashSet::new();
        assert_eq!(
            lines(&Staying::new(&index, &gone)),
            [r#"["sha256:a",[["first",1]]]"#]
        );
    }

    #[test]
    fn known_blobs_read_the_lines_the_run_store_writes() {
        let blob_text = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let mut index = BlobIndex::default();
        index.insert(Digest::from("sha256:m1"), &[blob(blob_text, 7)]);
        index.insert(
            Digest::from("sha256:m2"),
            &[blob("odd:blob", 1), blob(blob_text, 7)],
        );
        index.insert(Digest::from("sha256:gone"), &[blob("x", 3)]);
        let gone = HashSet::from(["sha256:gone"]);
        let text = lines(&Staying::new(&index, &gone));
        assert_eq!(
            text,
            [
                format!(r#"["sha256:m1",[["{blob_text}",7]]]"#),
                format!(r#"["sha256:m2",[["odd:blob",1],["{blob_text}",7]]]"#),
            ],
            "the gone manifest is left out"
        );
        let mut known = KnownBlobs::new();
        for line in &text {
            known.read_line(line.as_bytes()).unwrap();
        }
        assert!(known.read_line(b"{not a line").is_err());
        assert_eq!(known.len(), 2);
        // A manifest remembered twice: the later list is the one read.
        known.insert("sha256:m1", &[blob("newer", 9)]);
        assert_eq!(known.get("sha256:m1").map(|b| b[0].1), Some(9));
        assert_eq!(known.len(), 2);
        let m2 = known.get("sha256:m2").unwrap().to_vec();
        assert_eq!(
            m2,
            [(BlobKey::new("odd:blob"), 1), (BlobKey::new(blob_text), 7)]
        );
        assert_eq!(known.get("sha256:m1").map(<[KeyedBlob]>::len), Some(1));
        assert!(known.get("sha256:gone").is_none());
    }

    /// The plan of `manifests`, every one kept.
    fn plan(manifests: &[&str]) -> RepositoryPlan {
        plan_removing(manifests, &[])
    }

    /// The plan of `manifests`, those in `removed` deleted as untagged.
    fn plan_removing(manifests: &[&str], removed: &[&str]) -> RepositoryPlan {
        let manifests: Vec<serde_json::Value> = manifests
            .iter()
            .map(|digest| match removed.contains(digest) {
                true => serde_json::json!({
                    "digest": digest, "tags": [], "locked": false, "unlock": false,
                    "decision": "delete", "reason": "untagged", "rule": 1,
                }),
                false => serde_json::json!({
                    "digest": digest, "tags": [], "locked": false, "unlock": false,
                    "decision": "keep", "reason": "notSelected",
                }),
            })
            .collect();
        let plan = serde_json::json!({
            "repository": "r", "tags": [], "manifests": manifests,
            "purgesTags": false, "purgesManifests": true,
        });
        serde_json::from_value(plan).unwrap()
    }

    #[test]
    fn remembered_lines_are_written_again_once_the_latest_of_a_manifest_and_only_if_listed() {
        let mut known = KnownBlobs::new();
        // Written by an earlier run; m1 twice (the later line wins), m9 no longer listed,
        // m3's line spaced as an older writer may have (written back canonical).
        for line in [
            r#"["sha256:m1",[["old",1]]]"#,
            r#"["sha256:m9",[["nine",9]]]"#,
            r#"["sha256:m1",[["new",2]]]"#,
            r#"[ "sha256:m3", [ ["three", 3] ] ]"#,
        ] {
            known.read_line(line.as_bytes()).unwrap();
        }
        let plan = plan(&["sha256:m1", "sha256:m2", "sha256:m3", "sha256:m4"]);
        let bodies = HashMap::from([("sha256:m4".to_string(), Body::Missing)]);
        // Held whole (`--exact-storage`); see the next test for the lists of what stays.
        let mut index = blob_index(&plan, bodies, known, true);
        assert!(index.unread.contains("sha256:m2"));
        assert!(index.unknown.contains("sha256:m4"));
        // m2 read later.
        add_blobs(
            &mut index,
            Digest::from("sha256:m2"),
            Some(vec![blob("two", 5)]),
        );
        let sizes: Vec<(&str, u64)> = index
            .iter()
            .map(|(d, blobs)| (d.as_str(), blobs.iter().map(|(_, s)| s).sum()))
            .collect();
        assert_eq!(
            sizes,
            [("sha256:m1", 2), ("sha256:m3", 3), ("sha256:m2", 5)]
        );
        let gone = HashSet::new();
        assert_eq!(
            lines(&Staying::new(&index, &gone)),
            [
                r#"["sha256:m1",[["new",2]]]"#,
                r#"["sha256:m3",[["three",3]]]"#,
                r#"["sha256:m2",[["two",5]]]"#,
            ]
        );
        let gone = HashSet::from(["sha256:m1"]);
        assert_eq!(lines(&Staying::new(&index, &gone)).len(), 2);
    }

    /// The figures and the lines remembered again of `known` and `plan`, holding what stays
    /// whole (`exact`) or not, and how many blobs the index holds.
    fn figures(
        known: &[&str],
        plan: RepositoryPlan,
        exact: bool,
    ) -> (crate::report::StorageFreed, Vec<String>, usize) {
        let mut blobs = KnownBlobs::new();
        for line in known {
            blobs.read_line(line.as_bytes()).unwrap();
        }
        let index = blob_index(&plan, HashMap::new(), blobs, exact);
        let remembered = lines(&Staying::new(&index, &HashSet::new()));
        let held = index.iter().map(|(_, blobs)| blobs.len()).sum();
        let mut repo = crate::report::RepositoryReport::planned(plan);
        repo.blobs = Some(index);
        let freed = crate::report::storage::repository_storage(&repo, true, false).0;
        (freed, remembered, held)
    }

    #[test]
    fn remembered_lists_of_what_stays_count_by_what_they_share_once_every_removed_one_is_known() {
        let known = [
            r#"["sha256:gone",[["base",100],["own",7]]]"#,
            r#"["sha256:kept1",[["base",100],["k1",1]]]"#,
            r#"["sha256:kept2",[["k2",2]]]"#,
            r#"["sha256:old",[["old",9]]]"#,
        ];
        let digests = ["sha256:gone", "sha256:kept1", "sha256:kept2"];
        let plan = || plan_removing(&digests, &["sha256:gone"]);
        let (whole, whole_lines, whole_held) = figures(&known, plan(), true);
        let (counted, counted_lines, counted_held) = figures(&known, plan(), false);
        assert_eq!(whole.freed_bytes, 7, "the base stays with kept1");
        assert_eq!(counted, whole);
        assert_eq!(counted_lines, whole_lines);
        assert_eq!(counted_lines.len(), 3, "old is no longer listed");
        assert_eq!(
            (whole_held, counted_held),
            (5, 2),
            "only the removed list held"
        );
        // A removed manifest whose list is unknown (to read later): what stays is held
        // whole, to be matched against it once read.
        let digests = ["sha256:gone", "sha256:new", "sha256:kept1"];
        let plan = plan_removing(&digests, &["sha256:gone", "sha256:new"]);
        let (_, _, held) = figures(&known, plan, false);
        assert_eq!(held, 4);
    }

    #[test]
    fn the_remembered_lines_spool_is_removed_when_the_index_is_dropped() {
        let mut known = KnownBlobs::new();
        known.read_line(br#"["sha256:m1",[["a",1]]]"#).unwrap();
        let index = blob_index(&plan(&["sha256:m1"]), HashMap::new(), known, false);
        let path = index.spool_path().expect("spooled");
        assert!(path.exists());
        drop(index);
        assert!(!path.exists(), "removed with the index");
    }
}
