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

use crate::model::{BlobDigest, Digest, ManifestBody};
use crate::plan::{Body, Draft, ReferrerSource, RepositoryPlan, Scope};
use crate::registry::{RateCard, RegistryClient, RegistryError};
use crate::report::storage::{Blob, Mark, append_list};
use crate::report::{BlobIndex, PlanError};
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
        true => Some(blob_index(&plan, bodies, known_blobs.await)),
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
/// a manifest, see [`Staying::write_lines`]), held as compactly as the
/// storage figures' index: manifest digests as [`BlobDigest`]s (no text allocation), every
/// list in one vector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownBlobs {
    /// Each manifest with where its blobs are in `blobs` (start, end); sorted by manifest
    /// before it is looked up (a sorted vector is half the memory of a map of a million).
    lists: Vec<(BlobDigest, u32, u32)>,
    blobs: Vec<Blob>,
    sorted: bool,
}

impl KnownBlobs {
    /// None known.
    pub fn new() -> KnownBlobs {
        KnownBlobs::default()
    }

    /// Adds (or replaces) a manifest's blobs; past 2³² blobs in all, it is left out (read
    /// again).
    pub fn insert(&mut self, manifest: &str, blobs: impl IntoIterator<Item = Blob>) {
        if let Some((start, end)) = append_list(&mut self.blobs, blobs) {
            self.lists.push((BlobDigest::new(manifest), start, end));
            self.sorted = false;
        }
    }

    /// Sorts the lists by manifest for look-ups, keeping only the latest of a manifest's.
    fn sort(&mut self) {
        if !self.sorted {
            // Latest first within a manifest (a stable sort keeps that), then the others out.
            self.lists.reverse();
            self.lists.sort_by(|a, b| a.0.cmp(&b.0));
            self.lists.dedup_by(|later, first| later.0 == first.0);
            self.sorted = true;
        }
    }

    /// The blobs of `manifest`, when known.
    pub fn get(&mut self, manifest: &str) -> Option<&[Blob]> {
        self.sort();
        let (start, end) = find(&self.lists, manifest)?;
        self.blobs.get(start as usize..end as usize)
    }

    /// The lists, sorted by manifest ([`find`]), and the blobs they point into.
    fn into_parts(mut self) -> (Vec<(BlobDigest, u32, u32)>, Vec<Blob>) {
        self.sort();
        (self.lists, self.blobs)
    }

    /// Adds the manifest of one line the run store remembered ([`Staying::write_lines`]).
    pub fn read_line(&mut self, line: &[u8]) -> Result<(), serde_json::Error> {
        let (manifest, blobs): (std::borrow::Cow<'_, str>, Vec<Blob>) =
            serde_json::from_slice(line)?;
        self.insert(&manifest, blobs);
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

/// Where the blobs of `manifest` are (start, end) in lists sorted by manifest.
fn find(lists: &[(BlobDigest, u32, u32)], manifest: &str) -> Option<(u32, u32)> {
    let key = BlobDigest::new(manifest);
    let at = lists.binary_search_by(|(m, _, _)| m.cmp(&key)).ok()?;
    lists.get(at).map(|&(_, start, end)| (start, end))
}

/// The blobs of the manifests that stay, borrowed from the storage figures' index for the
/// run store: written as the lines [`KnownBlobs`] reads, without a copy of the index's lists.
pub struct Staying<'a> {
    /// Every manifest the index read, with its blobs.
    index: &'a BlobIndex,
    /// The manifests that are gone (deleted, or removed with one), left out.
    gone: &'a HashSet<String>,
}

impl<'a> Staying<'a> {
    /// The manifests of `index` that are not `gone`.
    pub fn new(index: &'a BlobIndex, gone: &'a HashSet<String>) -> Staying<'a> {
        Staying { index, gone }
    }

    /// The staying manifests and their blobs.
    pub fn iter(&self) -> impl Iterator<Item = (&'a Digest, &'a [Blob])> + '_ {
        self.index
            .iter()
            .filter(|(digest, _)| !self.gone.contains(digest.as_str()))
    }

    /// Writes one line a manifest, `["<digest>",[["<blob digest>",<size>],…]]`, for
    /// [`KnownBlobs::read_line`].
    pub fn write_lines(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        for entry in self.iter() {
            serde_json::to_writer(&mut *out, &entry)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// The storage figures' index at planning time: the blobs of the bodies the plan read (an
/// index has none of its own) and those `known` from an earlier run; every other manifest
/// of the plan is left in [`BlobIndex::unread`].
fn blob_index(
    plan: &RepositoryPlan,
    bodies: HashMap<String, Body>,
    known: KnownBlobs,
) -> BlobIndex {
    // The remembered lists become the index's own, not copies: each manifest of the plan
    // that an earlier run read points into them.
    let (lists, blobs) = known.into_parts();
    let mut index = BlobIndex::adopting(blobs);
    let mut read = HashSet::with_capacity(bodies.len());
    for (digest, body) in bodies {
        let digest = Digest::from(digest);
        match body {
            Body::Found(body) => index.insert(digest.clone(), blob_list(&body)),
            Body::Missing => {
                index.unknown.insert(digest.clone());
            }
        }
        read.insert(digest);
    }
    for manifest in &plan.manifests {
        let digest = &manifest.digest;
        if read.contains(digest) {
            continue;
        }
        match find(&lists, digest) {
            Some((start, end)) => index.point(digest.clone(), start, end),
            None => {
                index.unread.insert(digest.clone());
            }
        }
    }
    index
}

/// Reads the bodies of `digests` for the storage figures and adds their blobs to `index`.
/// A read that fails leaves them unread (the figures say what they could not see).
pub async fn read_unread_blobs(
    client: &RegistryClient,
    repository: &str,
    index: &mut BlobIndex,
    digests: Vec<Digest>,
) {
    let concurrency = client.read_concurrency();
    // Each body is reduced to its blobs and joins the index as it arrives (a repository may
    // have a hundred thousand to read: no list of them all is held on the side); a failed
    // read takes back what this call added, so that all or none of them join.
    let mark = index.mark();
    let mut reads = futures::stream::iter(digests.iter().cloned())
        .map(|digest| async move {
            let body = client.manifest_body(repository, &digest).await?;
            Ok::<_, RegistryError>((digest, body.map(|body| blob_list(&body))))
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(read) = reads.next().await {
        match read {
            Ok((digest, blobs)) => add_blobs(index, digest, blobs),
            Err(error) => {
                drop(reads);
                unread_again(index, mark, &digests);
                tracing::warn!(%error, repository, "reading manifests for the storage figures failed");
                return;
            }
        }
    }
}

/// Takes back what a failed [`read_unread_blobs`] added since `mark`: `digests` (every one
/// unread when it began) are unread again.
fn unread_again(index: &mut BlobIndex, mark: Mark, digests: &[Digest]) {
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

/// A body's blobs.
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
        Some(blobs) => index.insert(digest, blobs),
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

    #[test]
    fn a_failed_read_leaves_every_manifest_of_the_call_unread() {
        let digests: Vec<Digest> = ["sha256:a", "sha256:b", "sha256:c"]
            .map(Digest::from)
            .to_vec();
        let mut index = BlobIndex::default();
        index.insert(Digest::from("sha256:kept"), [(BlobDigest::from("blob"), 1)]);
        index.unread.extend(digests.iter().cloned());
        let mark = index.mark();
        // Two reads arrived (one body, one gone) before the third failed.
        add_blobs(
            &mut index,
            digests[0].clone(),
            Some(vec![(BlobDigest::from("blob"), 1)]),
        );
        add_blobs(&mut index, digests[1].clone(), None);
        assert_eq!(index.len(), 2);
        unread_again(&mut index, mark, &digests);
        assert_eq!(index.unread, digests.iter().cloned().collect());
        assert!(index.unknown.is_empty());
        let read: Vec<&str> = index.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(read, ["sha256:kept"], "what an earlier call read stays");
    }

    #[test]
    fn a_manifest_read_twice_joins_the_index_once() {
        let mut index = BlobIndex::default();
        let digest = Digest::from("sha256:a");
        index.unread.insert(digest.clone());
        let blobs = vec![(BlobDigest::from("blob"), 1)];
        add_blobs(&mut index, digest.clone(), Some(blobs.clone()));
        add_blobs(&mut index, digest, Some(blobs));
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn known_blobs_read_the_lines_the_run_store_writes() {
        let blob = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let mut index = BlobIndex::default();
        index.insert(Digest::from("sha256:m1"), [(BlobDigest::from(blob), 7)]);
        index.insert(
            Digest::from("sha256:m2"),
            [
                (BlobDigest::from("odd:blob"), 1),
                (BlobDigest::from(blob), 7),
            ],
        );
        index.insert(Digest::from("sha256:gone"), [(BlobDigest::from("x"), 3)]);
        let gone = HashSet::from(["sha256:gone".to_string()]);
        let mut written = Vec::new();
        Staying::new(&index, &gone)
            .write_lines(&mut written)
            .unwrap();
        let text = String::from_utf8(written).unwrap();
        assert_eq!(
            text.lines().next(),
            Some(format!(r#"["sha256:m1",[["{blob}",7]]]"#).as_str())
        );
        let mut known = KnownBlobs::new();
        for line in text.lines() {
            known.read_line(line.as_bytes()).unwrap();
        }
        assert!(known.read_line(b"{not a line").is_err());
        assert_eq!(known.len(), 2);
        // A manifest remembered twice: the later list is the one read.
        known.insert("sha256:m1", [(BlobDigest::from("newer"), 9)]);
        assert_eq!(known.get("sha256:m1").map(|b| b[0].1), Some(9));
        assert_eq!(known.len(), 2);
        let m2: Vec<(String, u64)> = known
            .get("sha256:m2")
            .unwrap()
            .iter()
            .map(|(b, s)| (b.to_string(), *s))
            .collect();
        assert_eq!(m2, [("odd:blob".to_string(), 1), (blob.to_string(), 7)]);
        assert_eq!(known.get("sha256:m1").map(<[Blob]>::len), Some(1));
        assert!(known.get("sha256:gone").is_none());
    }
}
