//! The registry model: repositories, manifests, tags, and the sorted indexes that keep
//! every request O(log n + page) (each page is a B-tree range scan, never a re-sort or
//! a scan of the repository), with digests, names and timestamps shared, not copied.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The changeable attributes of a tag or manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attributes {
    /// Deletion allowed.
    pub delete_enabled: bool,
    /// Overwrite allowed (false also blocks deletion, like ACR).
    pub write_enabled: bool,
    /// Pull allowed.
    pub read_enabled: bool,
    /// Listing allowed.
    pub list_enabled: bool,
}

impl Attributes {
    /// True when deletion is refused (`deleteEnabled` or `writeEnabled` false).
    pub fn locked(&self) -> bool {
        !self.delete_enabled || !self.write_enabled
    }

    /// Applies a PATCH body.
    pub(crate) fn apply(&mut self, patch: &AttributesPatch) {
        let fields = [
            (&mut self.delete_enabled, patch.delete_enabled),
            (&mut self.write_enabled, patch.write_enabled),
            (&mut self.read_enabled, patch.read_enabled),
            (&mut self.list_enabled, patch.list_enabled),
        ];
        for (field, value) in fields {
            if let Some(v) = value {
                *field = v;
            }
        }
    }
}

/// A partial `changeableAttributes` object (PATCH body).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttributesPatch {
    pub delete_enabled: Option<bool>,
    pub write_enabled: Option<bool>,
    pub read_enabled: Option<bool>,
    pub list_enabled: Option<bool>,
}

/// Shared, immutable text: digests, names and timestamps are stored once and referenced
/// from the maps and indexes (a large registry holds millions of them).
pub(crate) type Text = Arc<str>;

/// A stored manifest.
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    pub alias: Option<String>,
    pub digest: Text,
    pub media_type: Option<Text>,
    pub body: Bytes,
    pub created_time: Option<Text>,
    pub last_update_time: Option<Text>,
    pub attrs: Attributes,
    pub subject: Option<Text>,
    pub children: Vec<String>,
    pub artifact_type: Option<String>,
    pub config_media_type: Option<String>,
    pub architecture: Option<Text>,
    pub os: Option<Text>,
    pub image_size: u64,
    /// Names of the tags pointing here, sorted (kept by [`Repo`]; empty when built).
    pub tags: Vec<Text>,
}

/// A stored tag.
#[derive(Debug, Clone)]
pub(crate) struct Tag {
    pub name: Text,
    pub digest: Text,
    pub created_time: Option<Text>,
    pub last_update_time: Option<Text>,
    pub attrs: Attributes,
}

/// Listing order (`orderby`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// By name (tags) or lexical digest (manifests).
    Default,
    /// By lastUpdateTime ascending, ties by name/digest.
    TimeAsc,
    /// The exact reverse of `TimeAsc`.
    TimeDesc,
}

impl Order {
    /// Parses `orderby`; unknown values mean the default order.
    pub fn parse(value: Option<&str>) -> Order {
        match value {
            Some("timedesc") => Order::TimeDesc,
            Some("timeasc") => Order::TimeAsc,
            _ => Order::Default,
        }
    }
}

/// Why a mutation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotFound,
    Locked,
}

type TimeKey = (Option<DateTime<Utc>>, Text);

/// Parses a served timestamp for sorting; unparseable or null sorts as oldest.
pub(crate) fn parse_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn time_key(time: &Option<Text>, name: &Text) -> TimeKey {
    (parse_time(time.as_deref()), name.clone())
}

/// A multiset of strings, for the repository's earliest and latest timestamps.
#[derive(Debug, Default)]
struct Counted(BTreeMap<Text, usize>);

impl Counted {
    fn add(&mut self, value: &Option<Text>) {
        if let Some(v) = value {
            *self.0.entry(v.clone()).or_default() += 1;
        }
    }

    fn remove(&mut self, value: &Option<Text>) {
        if let Some(v) = value
            && let Some(count) = self.0.get_mut(v)
        {
            *count -= 1;
            if *count == 0 {
                self.0.remove(v);
            }
        }
    }

    fn min(&self) -> Option<&Text> {
        self.0.keys().next()
    }

    fn max(&self) -> Option<&Text> {
        self.0.keys().next_back()
    }
}

/// One repository. Every request is served from the maps and indexes below in
/// O(log n + page); nothing is scanned or sorted per request.
#[derive(Debug, Default)]
pub(crate) struct Repo {
    pub manifests: BTreeMap<Text, Manifest>,
    pub tags: BTreeMap<Text, Tag>,
    referrers: HashMap<Text, BTreeSet<Text>>,
    tag_times: BTreeSet<TimeKey>,
    manifest_times: BTreeSet<TimeKey>,
    created_times: Counted,
    updated_times: Counted,
}

/// Takes up to `n` items and reports whether more remain.
fn take_page<T>(mut iter: impl Iterator<Item = T>, n: usize) -> (Vec<T>, bool) {
    let page: Vec<T> = iter.by_ref().take(n).collect();
    let more = iter.next().is_some();
    (page, more)
}

/// Iterates a time index in `order`, strictly after `start`.
fn time_iter<'a>(
    index: &'a BTreeSet<TimeKey>,
    order: Order,
    start: Option<TimeKey>,
) -> Box<dyn Iterator<Item = &'a str> + 'a> {
    let names = |k: &'a TimeKey| &*k.1;
    match (order, start) {
        (Order::TimeDesc, Some(k)) => Box::new(
            index
                .range((Bound::Unbounded, Bound::Excluded(k)))
                .rev()
                .map(names),
        ),
        (Order::TimeDesc, None) => Box::new(index.iter().rev().map(names)),
        (_, Some(k)) => Box::new(
            index
                .range((Bound::Excluded(k), Bound::Unbounded))
                .map(names),
        ),
        (_, None) => Box::new(index.iter().map(names)),
    }
}

impl Repo {
    /// Adds a manifest (replacing none; the loader checks duplicates).
    pub fn insert_manifest(&mut self, manifest: Manifest) {
        self.manifest_times
            .insert(time_key(&manifest.last_update_time, &manifest.digest));
        self.created_times.add(&manifest.created_time);
        self.updated_times.add(&manifest.last_update_time);
        if let Some(subject) = &manifest.subject {
            self.referrers
                .entry(subject.clone())
                .or_default()
                .insert(manifest.digest.clone());
        }
        self.manifests.insert(manifest.digest.clone(), manifest);
    }

    /// Adds a tag of a manifest already inserted (the loader checks both).
    pub fn insert_tag(&mut self, tag: Tag) {
        self.tag_times
            .insert(time_key(&tag.last_update_time, &tag.name));
        if let Some(m) = self.manifests.get_mut(&tag.digest)
            && let Err(at) = m.tags.binary_search(&tag.name)
        {
            m.tags.insert(at, tag.name.clone());
        }
        self.tags.insert(tag.name.clone(), tag);
    }

    fn remove_tag(&mut self, name: &str) -> Option<Tag> {
        let tag = self.tags.remove(name)?;
        self.tag_times
            .remove(&time_key(&tag.last_update_time, &tag.name));
        if let Some(m) = self.manifests.get_mut(&tag.digest)
            && let Ok(at) = m.tags.binary_search_by(|t| (**t).cmp(name))
        {
            m.tags.remove(at);
        }
        Some(tag)
    }

    /// Points `name` at `digest` as a push would: created, or moved (keeping nothing of
    /// the old tag), with both timestamps `now`. The manifest must exist.
    pub fn push_tag(&mut self, name: &str, digest: &str, now: &str) -> Result<(), Refusal> {
        let digest = self
            .manifests
            .get_key_value(digest)
            .map(|(d, _)| d.clone())
            .ok_or(Refusal::NotFound)?;
        self.remove_tag(name);
        let now: Text = now.into();
        self.insert_tag(Tag {
            name: name.into(),
            digest,
            created_time: Some(now.clone()),
            last_update_time: Some(now),
            attrs: Attributes {
                delete_enabled: true,
                write_enabled: true,
                read_enabled: true,
                list_enabled: true,
            },
        });
        Ok(())
    }

    /// Untags (`DELETE /acr/v1/{repo}/_tags/{tag}`).
    pub fn delete_tag(&mut self, name: &str) -> Result<(), Refusal> {
        let tag = self.tags.get(name).ok_or(Refusal::NotFound)?;
        if tag.attrs.locked() {
            return Err(Refusal::Locked);
        }
        self.remove_tag(name);
        Ok(())
    }

    /// Deletes a manifest, its tags and (recursively) its referrers.
    /// Returns the deleted digests and tag names.
    pub fn delete_manifest(&mut self, digest: &str) -> Result<(Vec<Text>, Vec<Text>), Refusal> {
        let manifest = self.manifests.get(digest).ok_or(Refusal::NotFound)?;
        if manifest.attrs.locked() {
            return Err(Refusal::Locked);
        }
        let mut queue = vec![manifest.digest.clone()];
        let mut digests = Vec::new();
        let mut tags = Vec::new();
        while let Some(next) = queue.pop() {
            if let Some(refs) = self.referrers.remove(&next) {
                queue.extend(refs);
            }
            tags.extend(self.remove_manifest(&next));
            digests.push(next);
        }
        Ok((digests, tags))
    }

    /// Removes one manifest and its tags, returning the tag names.
    fn remove_manifest(&mut self, digest: &str) -> Vec<Text> {
        let names = self.tags_of(digest);
        for name in &names {
            self.remove_tag(name);
        }
        if let Some(m) = self.manifests.remove(digest) {
            self.manifest_times
                .remove(&time_key(&m.last_update_time, &m.digest));
            self.created_times.remove(&m.created_time);
            self.updated_times.remove(&m.last_update_time);
            if let Some(subject) = &m.subject
                && let Some(set) = self.referrers.get_mut(subject)
            {
                set.remove(digest);
            }
        }
        names
    }

    /// The manifest a tag or digest points to.
    pub fn resolve(&self, reference: &str) -> Option<&Manifest> {
        if reference.contains(':') {
            return self.manifests.get(reference);
        }
        let tag = self.tags.get(reference)?;
        self.manifests.get(&tag.digest)
    }

    /// Tag names of a manifest, sorted.
    pub fn tags_of(&self, digest: &str) -> Vec<Text> {
        self.manifests
            .get(digest)
            .map(|m| m.tags.clone())
            .unwrap_or_default()
    }

    /// The earliest `createdTime` and the latest `lastUpdateTime` of the manifests, as
    /// served (compared as strings; null ones ignored).
    pub fn time_span(&self) -> (Option<&Text>, Option<&Text>) {
        (self.created_times.min(), self.updated_times.max())
    }

    /// Manifests whose subject is `digest`.
    pub fn referrers_of(&self, digest: &str) -> Vec<&Manifest> {
        self.referrers
            .get(digest)
            .into_iter()
            .flatten()
            .filter_map(|d| self.manifests.get(d))
            .collect()
    }

    /// One page of tags. In a time order, a `last` that is not a current tag gives
    /// an empty page (the cursor position is unknown). With `digest`, only that
    /// manifest's tags are visited (none when it does not exist).
    pub fn tag_page(
        &self,
        order: Order,
        n: usize,
        last: Option<&str>,
        digest: Option<&str>,
    ) -> (Vec<&Tag>, bool) {
        if let Some(d) = digest {
            return self.tag_page_of(d, order, n, last);
        }
        if order == Order::Default {
            let start = last.map_or(Bound::Unbounded, Bound::Excluded);
            let iter = self.tags.range::<str, _>((start, Bound::Unbounded));
            return take_page(iter.map(|(_, t)| t), n);
        }
        let start = match last {
            None => None,
            Some(name) => match self.tags.get(name) {
                Some(t) => Some(time_key(&t.last_update_time, &t.name)),
                None => return (Vec::new(), false),
            },
        };
        let iter = time_iter(&self.tag_times, order, start).filter_map(|n| self.tags.get(n));
        take_page(iter, n)
    }

    /// [`Repo::tag_page`] restricted to the tags of one manifest: O(its tags).
    fn tag_page_of(
        &self,
        digest: &str,
        order: Order,
        n: usize,
        last: Option<&str>,
    ) -> (Vec<&Tag>, bool) {
        let Some(m) = self.manifests.get(digest) else {
            return (Vec::new(), false);
        };
        let tags = m.tags.iter().filter_map(|name| self.tags.get(name));
        if order == Order::Default {
            return take_page(tags.filter(|t| last.is_none_or(|l| &*t.name > l)), n);
        }
        let start = match last {
            None => None,
            Some(name) => match self.tags.get(name) {
                Some(t) => Some(time_key(&t.last_update_time, &t.name)),
                None => return (Vec::new(), false),
            },
        };
        let mut keyed: Vec<(TimeKey, &Tag)> = tags
            .map(|t| (time_key(&t.last_update_time, &t.name), t))
            .filter(|(k, _)| match (&start, order) {
                (None, _) => true,
                (Some(s), Order::TimeDesc) => k < s,
                (Some(s), _) => k > s,
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        if order == Order::TimeDesc {
            keyed.reverse();
        }
        take_page(keyed.into_iter().map(|(_, t)| t), n)
    }

    /// One page of manifests; `last` is a digest (same cursor rule as tags).
    pub fn manifest_page(
        &self,
        order: Order,
        n: usize,
        last: Option<&str>,
    ) -> (Vec<&Manifest>, bool) {
        if order == Order::Default {
            let start = last.map_or(Bound::Unbounded, Bound::Excluded);
            let iter = self.manifests.range::<str, _>((start, Bound::Unbounded));
            return take_page(iter.map(|(_, m)| m), n);
        }
        let start = match last {
            None => None,
            Some(d) => match self.manifests.get(d) {
                Some(m) => Some(time_key(&m.last_update_time, &m.digest)),
                None => return (Vec::new(), false),
            },
        };
        let iter =
            time_iter(&self.manifest_times, order, start).filter_map(|d| self.manifests.get(d));
        take_page(iter, n)
    }
}

/// The whole registry.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub repos: BTreeMap<String, Repo>,
}

impl Registry {
    /// One page of repository names after `last`.
    pub fn catalog_page(&self, n: usize, last: Option<&str>) -> (Vec<String>, bool) {
        let start = last.map_or(Bound::Unbounded, Bound::Excluded);
        let iter = self.repos.range::<str, _>((start, Bound::Unbounded));
        take_page(iter.map(|(name, _)| name.clone()), n)
    }

    /// Deletes a manifest; drops the repository when it becomes empty.
    pub fn delete_manifest(
        &mut self,
        repo: &str,
        digest: &str,
    ) -> Result<(Vec<Text>, Vec<Text>), Refusal> {
        let r = self.repos.get_mut(repo).ok_or(Refusal::NotFound)?;
        let deleted = r.delete_manifest(digest)?;
        if r.manifests.is_empty() {
            self.repos.remove(repo);
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Attributes {
        Attributes {
            delete_enabled: true,
            write_enabled: true,
            read_enabled: true,
            list_enabled: true,
        }
    }

    fn manifest(digest: &str, subject: Option<&str>) -> Manifest {
        Manifest {
            alias: None,
            digest: digest.into(),
            media_type: None,
            body: Bytes::new(),
            created_time: None,
            last_update_time: None,
            attrs: attrs(),
            subject: subject.map(Text::from),
            children: Vec::new(),
            artifact_type: None,
            config_media_type: None,
            architecture: None,
            os: None,
            image_size: 0,
            tags: Vec::new(),
        }
    }

    fn tag(name: &str, digest: &str, time: &str) -> Tag {
        Tag {
            name: name.into(),
            digest: digest.into(),
            created_time: None,
            last_update_time: Some(time.into()),
            attrs: attrs(),
        }
    }

    fn repo() -> Repo {
        let mut r = Repo::default();
        r.insert_manifest(manifest("sha256:a", None));
        r.insert_manifest(manifest("sha256:sig", Some("sha256:a")));
        r.insert_manifest(manifest("sha256:sbom-sig", Some("sha256:sig")));
        r.insert_tag(tag("v1", "sha256:a", "2024-01-01T00:00:00Z"));
        r.insert_tag(tag("v2", "sha256:a", "2024-01-03T00:00:00Z"));
        r.insert_tag(tag("v3", "sha256:sig", "2024-01-02T00:00:00Z"));
        r
    }

    #[test]
    fn time_pages_follow_cursor() {
        let r = repo();
        let names = |p: (Vec<&Tag>, bool)| -> (Vec<String>, bool) {
            (p.0.iter().map(|t| t.name.to_string()).collect(), p.1)
        };
        assert_eq!(
            names(r.tag_page(Order::TimeDesc, 2, None, None)),
            (vec!["v2".into(), "v3".into()], true)
        );
        assert_eq!(
            names(r.tag_page(Order::TimeDesc, 2, Some("v3"), None)),
            (vec!["v1".into()], false)
        );
        assert_eq!(
            names(r.tag_page(Order::TimeAsc, 1, Some("v1"), None)),
            (vec!["v3".into()], true)
        );
        assert_eq!(
            names(r.tag_page(Order::TimeDesc, 2, Some("gone"), None)),
            (vec![], false)
        );
        assert_eq!(
            names(r.tag_page(Order::Default, 5, Some("v1"), Some("sha256:a"))),
            (vec!["v2".into()], false)
        );
    }

    #[test]
    fn digest_filtered_pages_visit_only_that_manifest() {
        let mut r = repo();
        r.insert_tag(tag("v0", "sha256:a", "2024-01-05T00:00:00Z"));
        let names = |p: (Vec<&Tag>, bool)| -> (Vec<String>, bool) {
            (p.0.iter().map(|t| t.name.to_string()).collect(), p.1)
        };
        let a = Some("sha256:a");
        assert_eq!(
            names(r.tag_page(Order::TimeDesc, 2, None, a)),
            (vec!["v0".into(), "v2".into()], true)
        );
        assert_eq!(
            names(r.tag_page(Order::TimeDesc, 2, Some("v2"), a)),
            (vec!["v1".into()], false)
        );
        // A cursor on another manifest's tag places the page by its time.
        assert_eq!(
            names(r.tag_page(Order::TimeAsc, 5, Some("v3"), a)),
            (vec!["v2".into(), "v0".into()], false)
        );
        assert_eq!(
            names(r.tag_page(Order::Default, 5, None, Some("sha256:none"))),
            (vec![], false)
        );
        assert_eq!(
            names(r.tag_page(Order::TimeDesc, 5, Some("gone"), a)),
            (vec![], false)
        );
    }

    #[test]
    fn time_span_follows_deletions() {
        let mut r = Repo::default();
        for (d, t) in [("sha256:x", "2024-01-02"), ("sha256:y", "2024-01-01")] {
            let mut m = manifest(d, None);
            m.created_time = Some(t.into());
            m.last_update_time = Some(t.into());
            r.insert_manifest(m);
        }
        let span = |r: &Repo| {
            let (c, u) = r.time_span();
            (c.map(|t| t.to_string()), u.map(|t| t.to_string()))
        };
        assert_eq!(
            span(&r),
            (Some("2024-01-01".into()), Some("2024-01-02".into()))
        );
        assert!(r.delete_manifest("sha256:y").is_ok());
        assert_eq!(
            span(&r),
            (Some("2024-01-02".into()), Some("2024-01-02".into()))
        );
    }

    #[test]
    fn manifest_delete_cascades_to_referrers_recursively() {
        let mut r = repo();
        let (digests, tags) = r.delete_manifest("sha256:a").unwrap();
        assert_eq!(digests.len(), 3);
        assert_eq!(tags.len(), 3);
        assert!(r.manifests.is_empty() && r.tags.is_empty() && r.tag_times.is_empty());
    }

    #[test]
    fn locked_tag_is_refused() {
        let mut r = repo();
        if let Some(t) = r.tags.get_mut("v1") {
            t.attrs.write_enabled = false;
        }
        assert_eq!(r.delete_tag("v1"), Err(Refusal::Locked));
        assert_eq!(r.delete_tag("nope"), Err(Refusal::NotFound));
        assert_eq!(r.delete_tag("v2"), Ok(()));
        assert_eq!(r.tags_of("sha256:a"), vec![Text::from("v1")]);
    }
}
