//! Point-in-time copies of the emulator state, for assertions.

use std::collections::BTreeMap;

use serde::Serialize;

use super::state::{Attributes, Registry, Text};

fn text(value: &Option<Text>) -> Option<String> {
    value.as_deref().map(str::to_string)
}

/// The whole registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Repositories by name.
    pub repositories: BTreeMap<String, RepoSnapshot>,
}

/// One repository.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RepoSnapshot {
    /// Manifests by digest.
    pub manifests: BTreeMap<String, ManifestSnapshot>,
    /// Tags by name.
    pub tags: BTreeMap<String, TagSnapshot>,
}

/// One manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestSnapshot {
    /// `sha256:...`.
    pub digest: String,
    /// Seed alias, if any.
    pub alias: Option<String>,
    /// Media type (`None`: not reported).
    pub media_type: Option<String>,
    /// Tag names, sorted.
    pub tags: Vec<String>,
    /// Lock attributes.
    pub attributes: Attributes,
    /// `createdTime` as served.
    pub created_time: Option<String>,
    /// `lastUpdateTime` as served.
    pub last_update_time: Option<String>,
    /// Subject digest (referrers).
    pub subject: Option<String>,
    /// Child digests (indexes).
    pub children: Vec<String>,
    /// `artifactType`.
    pub artifact_type: Option<String>,
    /// The body's blobs (config, layers, artifact blobs): digest → size.
    pub blobs: BTreeMap<String, u64>,
}

/// One tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagSnapshot {
    /// Tag name.
    pub name: String,
    /// Manifest digest.
    pub digest: String,
    /// Lock attributes.
    pub attributes: Attributes,
    /// `createdTime` as served.
    pub created_time: Option<String>,
    /// `lastUpdateTime` as served.
    pub last_update_time: Option<String>,
}

/// The blobs a manifest body references, read from its JSON.
fn blobs_of(body: &[u8]) -> BTreeMap<String, u64> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return BTreeMap::new();
    };
    let config = value.get("config").into_iter();
    let lists = ["layers", "blobs"]
        .into_iter()
        .filter_map(|k| value.get(k).and_then(serde_json::Value::as_array))
        .flatten();
    config
        .chain(lists)
        .filter_map(|d| {
            let digest = d.get("digest")?.as_str()?.to_string();
            Some((
                digest,
                d.get("size")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0),
            ))
        })
        .collect()
}

impl Snapshot {
    /// Copies the registry.
    pub(crate) fn of(registry: &Registry) -> Snapshot {
        let repositories = registry
            .repos
            .iter()
            .map(|(name, repo)| {
                let manifests = repo
                    .manifests
                    .values()
                    .map(|m| {
                        let snap = ManifestSnapshot {
                            digest: m.digest.to_string(),
                            alias: m.alias.clone(),
                            media_type: text(&m.media_type),
                            tags: m.tags.iter().map(|t| t.to_string()).collect(),
                            attributes: m.attrs,
                            created_time: text(&m.created_time),
                            last_update_time: text(&m.last_update_time),
                            subject: text(&m.subject),
                            children: m.children.clone(),
                            artifact_type: m.artifact_type.clone(),
                            blobs: blobs_of(&m.body),
                        };
                        (m.digest.to_string(), snap)
                    })
                    .collect();
                let tags = repo
                    .tags
                    .values()
                    .map(|t| {
                        let snap = TagSnapshot {
                            name: t.name.to_string(),
                            digest: t.digest.to_string(),
                            attributes: t.attrs,
                            created_time: text(&t.created_time),
                            last_update_time: text(&t.last_update_time),
                        };
                        (t.name.to_string(), snap)
                    })
                    .collect();
                (name.clone(), RepoSnapshot { manifests, tags })
            })
            .collect();
        Snapshot { repositories }
    }

    /// Repository names, sorted.
    pub fn repository_names(&self) -> Vec<String> {
        self.repositories.keys().cloned().collect()
    }

    /// Tag names of a repository, sorted (empty if it does not exist).
    pub fn tag_names(&self, repo: &str) -> Vec<String> {
        self.repositories
            .get(repo)
            .map(|r| r.tags.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Manifest digests of a repository, sorted.
    pub fn digests(&self, repo: &str) -> Vec<String> {
        self.repositories
            .get(repo)
            .map(|r| r.manifests.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the repository holds this manifest.
    pub fn has_manifest(&self, repo: &str, digest: &str) -> bool {
        self.repositories
            .get(repo)
            .is_some_and(|r| r.manifests.contains_key(digest))
    }

    /// Whether the repository holds this tag.
    pub fn has_tag(&self, repo: &str, tag: &str) -> bool {
        self.repositories
            .get(repo)
            .is_some_and(|r| r.tags.contains_key(tag))
    }

    /// The manifest with this seed alias, if still present.
    pub fn manifest_by_alias(&self, repo: &str, alias: &str) -> Option<&ManifestSnapshot> {
        self.repositories
            .get(repo)?
            .manifests
            .values()
            .find(|m| m.alias.as_deref() == Some(alias))
    }
}
