//! The registry model: repositories, manifests, tags, and the sorted indexes that keep
//! paged listings linear (each page is a B-tree range scan, never a re-sort).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

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

/// A stored manifest.
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    pub alias: Option<String>,
    pub digest: String,
    pub media_type: Option<String>,
    pub body: Bytes,
    pub created_time: Option<String>,
    pub last_update_time: Option<String>,
    pub attrs: Attributes,
    pub subject: Option<String>,
    pub children: Vec<String>,
    pub artifact_type: Option<String>,
    pub config_media_type: Option<String>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    pub image_size: u64,
}

/// A stored tag.
#[derive(Debug, Clone)]
pub(crate) struct Tag {
    pub name: String,
    pub digest: String,
    pub created_time: Option<String>,
    pub last_update_time: Option<String>,
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

type TimeKey = (Option<DateTime<Utc>>, String);

/// Parses a served timestamp for sorting; unparseable or null sorts as oldest.
pub(crate) fn parse_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// One repository.
#[derive(Debug, Default)]
pub(crate) struct Repo {
    pub manifests: BTreeMap<String, Manifest>,
    pub tags: BTreeMap<String, Tag>,
    tags_by_digest: HashMap<String, BTreeSet<String>>,
    referrers: HashMap<String, BTreeSet<String>>,
    tag_times: BTreeSet<TimeKey>,
    manifest_times: BTreeSet<TimeKey>,
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
    let names = |k: &'a TimeKey| k.1.as_str();
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
        let key = (
            parse_time(manifest.last_update_time.as_deref()),
            manifest.digest.clone(),
        );
        self.manifest_times.insert(key);
        if let Some(subject) = &manifest.subject {
            self.referrers
                .entry(subject.clone())
                .or_default()
                .insert(manifest.digest.clone());
        }
        self.manifests.insert(manifest.digest.clone(), manifest);
    }

    /// Adds a tag.
    pub fn insert_tag(&mut self, tag: Tag) {
        let key = (
            parse_time(tag.last_update_time.as_deref()),
            tag.name.clone(),
        );
        self.tag_times.insert(key);
        self.tags_by_digest
            .entry(tag.digest.clone())
            .or_default()
            .insert(tag.name.clone());
        self.tags.insert(tag.name.clone(), tag);
    }

    fn remove_tag(&mut self, name: &str) -> Option<Tag> {
        let tag = self.tags.remove(name)?;
        let key = (
            parse_time(tag.last_update_time.as_deref()),
            tag.name.clone(),
        );
        self.tag_times.remove(&key);
        if let Some(names) = self.tags_by_digest.get_mut(&tag.digest) {
            names.remove(name);
            if names.is_empty() {
                self.tags_by_digest.remove(&tag.digest);
            }
        }
        Some(tag)
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
    pub fn delete_manifest(&mut self, digest: &str) -> Result<(Vec<String>, Vec<String>), Refusal> {
        let manifest = self.manifests.get(digest).ok_or(Refusal::NotFound)?;
        if manifest.attrs.locked() {
            return Err(Refusal::Locked);
        }
        let mut queue = vec![digest.to_string()];
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
    fn remove_manifest(&mut self, digest: &str) -> Vec<String> {
        let names: Vec<String> = self
            .tags_by_digest
            .get(digest)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for name in &names {
            self.remove_tag(name);
        }
        if let Some(m) = self.manifests.remove(digest) {
            let key = (parse_time(m.last_update_time.as_deref()), m.digest.clone());
            self.manifest_times.remove(&key);
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
    pub fn tags_of(&self, digest: &str) -> Vec<String> {
        self.tags_by_digest
            .get(digest)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
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
    /// an empty page (the cursor position is unknown).
    pub fn tag_page(
        &self,
        order: Order,
        n: usize,
        last: Option<&str>,
        digest: Option<&str>,
    ) -> (Vec<&Tag>, bool) {
        let keep = |t: &&Tag| digest.is_none_or(|d| t.digest == d);
        if order == Order::Default {
            let start = last.map_or(Bound::Unbounded, Bound::Excluded);
            let iter = self.tags.range::<str, _>((start, Bound::Unbounded));
            return take_page(iter.map(|(_, t)| t).filter(keep), n);
        }
        let start = match last {
            None => None,
            Some(name) => match self.tags.get(name) {
                Some(t) => Some((parse_time(t.last_update_time.as_deref()), t.name.clone())),
                None => return (Vec::new(), false),
            },
        };
        let iter = time_iter(&self.tag_times, order, start).filter_map(|n| self.tags.get(n));
        take_page(iter.filter(keep), n)
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
                Some(m) => Some((parse_time(m.last_update_time.as_deref()), m.digest.clone())),
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
    ) -> Result<(Vec<String>, Vec<String>), Refusal> {
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
            subject: subject.map(str::to_string),
            children: Vec::new(),
            artifact_type: None,
            config_media_type: None,
            architecture: None,
            os: None,
            image_size: 0,
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
            (p.0.iter().map(|t| t.name.clone()).collect(), p.1)
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
        assert_eq!(r.tags_of("sha256:a"), vec!["v1".to_string()]);
    }
}
