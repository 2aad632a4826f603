//! Small in-memory repositories for testing and measuring the planner without a registry:
//! the unit tests beside the decision code, the property test and the planner benchmark
//! build their listings here, and [`Listing::plan`] plans them exactly as a run does
//! (only the bodies and referrers that [`Draft`] asks for are handed over).
//!
//! Digests are derived from names (`image("a")` is `sha256` of `a`), ages are minutes
//! before the listing's `now`, and tags come back in ACR's server order (newest first).

use super::{Body, Draft, Evidence, RepositoryPlan, Scope};
use crate::model::{
    ChangeableAttributes, DOCKER_MANIFEST, Descriptor, ManifestAttributes, ManifestBody, MediaType,
    OCI_INDEX, OCI_MANIFEST, TagAttributes, TagName,
};
use crate::policy::{MatchError, Policy};
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The digest a fixture gives the manifest named `name`.
pub fn digest_of(name: &str) -> String {
    let hash = Sha256::digest(name.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The cosign signature tag of the manifest named `name` (`sha256-<hex>.sig`).
pub fn cosign_tag_of(name: &str) -> String {
    format!("{}.sig", digest_of(name).replace(':', "-"))
}

/// A timestamp as the listing reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Time {
    /// This many minutes before `now`.
    MinutesAgo(i64),
    /// Exactly this text (unreadable values).
    Raw(String),
    /// No timestamp at all.
    Missing,
}

/// One tag of a fixture manifest.
#[derive(Debug, Clone)]
pub struct TagFixture {
    name: String,
    updated: Time,
    locked: bool,
}

/// One manifest of a fixture repository, with its tags and body.
#[derive(Debug, Clone)]
pub struct Manifest {
    name: String,
    digest: String,
    media_type: Option<String>,
    updated: Time,
    locked: bool,
    tags: Vec<TagFixture>,
    children: Vec<String>,
    subject: Option<String>,
    body_missing: bool,
}

impl Manifest {
    fn new(name: &str, media_type: Option<&str>) -> Manifest {
        Manifest {
            name: name.to_string(),
            digest: digest_of(name),
            media_type: media_type.map(str::to_string),
            updated: Time::MinutesAgo(0),
            locked: false,
            tags: Vec::new(),
            children: Vec::new(),
            subject: None,
            body_missing: false,
        }
    }

    /// An OCI image manifest.
    pub fn image(name: &str) -> Manifest {
        Manifest::new(name, Some(OCI_MANIFEST))
    }

    /// A Docker schema 2 manifest (cannot carry a subject).
    pub fn docker(name: &str) -> Manifest {
        Manifest::new(name, Some(DOCKER_MANIFEST))
    }

    /// An OCI index listing the named manifests.
    pub fn index(name: &str, children: &[&str]) -> Manifest {
        Manifest {
            children: children.iter().map(|c| digest_of(c)).collect(),
            ..Manifest::new(name, Some(OCI_INDEX))
        }
    }

    /// An OCI manifest whose `subject` is the manifest named `subject` (which may be absent
    /// from the repository: an orphan).
    pub fn referrer(name: &str, subject: &str) -> Manifest {
        Manifest {
            subject: Some(digest_of(subject)),
            ..Manifest::new(name, Some(OCI_MANIFEST))
        }
    }

    /// A manifest the listing reports without a media type.
    pub fn untyped(name: &str) -> Manifest {
        Manifest::new(name, None)
    }

    /// Last updated `minutes` ago.
    pub fn age(mut self, minutes: i64) -> Manifest {
        self.updated = Time::MinutesAgo(minutes);
        self
    }

    /// Last updated as `time` says.
    pub fn updated(mut self, time: Time) -> Manifest {
        self.updated = time;
        self
    }

    /// Locked (`deleteEnabled: false`).
    pub fn locked(mut self) -> Manifest {
        self.locked = true;
        self
    }

    /// A tag on it, updated `minutes` ago.
    pub fn tag(self, name: &str, minutes: i64) -> Manifest {
        self.tag_with(name, Time::MinutesAgo(minutes), false)
    }

    /// A locked tag on it, updated `minutes` ago.
    pub fn locked_tag(self, name: &str, minutes: i64) -> Manifest {
        self.tag_with(name, Time::MinutesAgo(minutes), true)
    }

    /// A tag with any timestamp and lock.
    pub fn tag_with(mut self, name: &str, updated: Time, locked: bool) -> Manifest {
        self.tags.push(TagFixture {
            name: name.to_string(),
            updated,
            locked,
        });
        self
    }

    /// Its body cannot be read (404).
    pub fn body_missing(mut self) -> Manifest {
        self.body_missing = true;
        self
    }
}

/// A repository's listings and bodies, planned in memory.
#[derive(Debug, Clone)]
pub struct Listing {
    now: DateTime<Utc>,
    manifests: Vec<Manifest>,
}

impl Listing {
    /// An empty repository whose ages count back from `now`.
    pub fn new(now: DateTime<Utc>) -> Listing {
        Listing {
            now,
            manifests: Vec::new(),
        }
    }

    /// Adds a manifest.
    pub fn with(mut self, manifest: Manifest) -> Listing {
        self.manifests.push(manifest);
        self
    }

    /// Adds a manifest in place.
    pub fn push(&mut self, manifest: Manifest) {
        self.manifests.push(manifest);
    }

    fn text(&self, time: &Time) -> Option<String> {
        match time {
            Time::MinutesAgo(m) => Some(
                (self.now - TimeDelta::minutes(*m))
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ),
            Time::Raw(text) => Some(text.clone()),
            Time::Missing => None,
        }
    }

    /// The tag listing, newest first (ACR's `timedesc`), name as the tie-break.
    pub fn tags(&self) -> Vec<TagAttributes> {
        let mut tags: Vec<(Option<DateTime<Utc>>, TagAttributes)> = self
            .manifests
            .iter()
            .flat_map(|m| {
                m.tags.iter().map(|t| {
                    let sort = match t.updated {
                        Time::MinutesAgo(minutes) => Some(self.now - TimeDelta::minutes(minutes)),
                        Time::Raw(_) | Time::Missing => None,
                    };
                    let tag = TagAttributes {
                        name: t.name.as_str().into(),
                        digest: m.digest.as_str().into(),
                        last_update_time: self.text(&t.updated).map(|t| t.as_str().into()),
                        changeable_attributes: lock(t.locked),
                    };
                    (sort, tag)
                })
            })
            .collect();
        tags.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
        tags.into_iter().map(|(_, t)| t).collect()
    }

    /// The manifest listing, by digest.
    pub fn manifests(&self) -> Vec<ManifestAttributes> {
        let mut manifests: Vec<ManifestAttributes> = self
            .manifests
            .iter()
            .map(|m| {
                let tags: Vec<TagName> = m.tags.iter().map(|t| t.name.as_str().into()).collect();
                ManifestAttributes {
                    digest: Some(m.digest.as_str().into()),
                    image_size: None,
                    last_update_time: self.text(&m.updated).map(|t| t.as_str().into()),
                    media_type: m.media_type.as_deref().map(MediaType::from),
                    tags: (!tags.is_empty()).then_some(tags),
                    changeable_attributes: lock(m.locked),
                }
            })
            .collect();
        manifests.sort_by(|a, b| a.digest.cmp(&b.digest));
        manifests
    }

    /// The body of `digest` as a read would return it.
    pub fn body(&self, digest: &str) -> Body {
        match self.manifests.iter().find(|m| m.digest == digest) {
            Some(m) => body_of(m),
            None => Body::Missing,
        }
    }

    /// The referrers of `digest`, as the referrers API would list them.
    pub fn referrers(&self, digest: &str) -> Vec<String> {
        self.manifests
            .iter()
            .filter(|m| m.subject.as_deref() == Some(digest))
            .map(|m| m.digest.clone())
            .collect()
    }

    /// The name a digest was given.
    pub fn name_of(&self, digest: &str) -> Option<&str> {
        self.manifests
            .iter()
            .find(|m| m.digest == digest)
            .map(|m| m.name.as_str())
    }

    /// Plans repository `repository` under `policy`, as a run would. `Ok(None)` when no
    /// rule covers it.
    pub fn plan(
        &self,
        repository: &str,
        policy: &Policy,
    ) -> Result<Option<RepositoryPlan>, MatchError> {
        self.snapshot().plan(repository, policy, self.now)
    }

    /// [`Listing::plan`] deciding with `evidence` (in use, deployed, pulled).
    pub fn plan_with(
        &self,
        repository: &str,
        policy: &Policy,
        evidence: Evidence,
    ) -> Result<Option<RepositoryPlan>, MatchError> {
        self.snapshot()
            .into_plan_with(repository, policy, self.now, evidence)
    }

    /// The listings, bodies and referrers computed once (in one pass over the
    /// manifests), to plan repeatedly or to time the planner alone.
    pub fn snapshot(&self) -> Snapshot {
        let mut referrers: HashMap<String, Vec<String>> = HashMap::new();
        for m in &self.manifests {
            referrers.entry(m.digest.clone()).or_default();
            if let Some(subject) = &m.subject {
                referrers
                    .entry(subject.clone())
                    .or_default()
                    .push(m.digest.clone());
            }
        }
        Snapshot {
            tags: self.tags(),
            manifests: self.manifests(),
            bodies: self
                .manifests
                .iter()
                .map(|m| (m.digest.clone(), body_of(m)))
                .collect(),
            referrers,
        }
    }
}

/// A [`Listing`]'s listings, bodies and referrers, ready to plan.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The tag listing, newest first.
    pub tags: Vec<TagAttributes>,
    /// The manifest listing, by digest.
    pub manifests: Vec<ManifestAttributes>,
    /// Every manifest's body.
    pub bodies: HashMap<String, Body>,
    /// Every manifest's referrers.
    pub referrers: HashMap<String, Vec<String>>,
}

impl Snapshot {
    /// Plans `repository` as a run would: reads the listings the scope needs, then hands
    /// over only the bodies and referrers the draft asks for. `Ok(None)` when no rule
    /// covers it.
    pub fn plan(
        &self,
        repository: &str,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<Option<RepositoryPlan>, MatchError> {
        self.clone().into_plan(repository, policy, now)
    }

    /// [`Snapshot::plan`] without copying the listings.
    pub fn into_plan(
        self,
        repository: &str,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<Option<RepositoryPlan>, MatchError> {
        self.into_plan_with(repository, policy, now, Evidence::default())
    }

    /// [`Snapshot::into_plan`] deciding with `evidence` (in use, deployed, pulled).
    pub fn into_plan_with(
        self,
        repository: &str,
        policy: &Policy,
        now: DateTime<Utc>,
        evidence: Evidence,
    ) -> Result<Option<RepositoryPlan>, MatchError> {
        let Snapshot {
            tags,
            manifests,
            mut bodies,
            mut referrers,
        } = self;
        let Some(scope) = Scope::new(policy, repository, now)? else {
            return Ok(None);
        };
        let scope = scope.with_evidence(evidence);
        let tags = if scope.needs_tags() { tags } else { Vec::new() };
        let manifests = scope.needs_manifests(&tags).then_some(manifests);
        let draft = Draft::new(repository, scope, tags, manifests)?;
        // Hand over only what the draft asks for, as a run fetches only that.
        let bodies: HashMap<String, Body> = draft
            .bodies_needed()
            .into_iter()
            .map(|d| {
                let body = bodies.remove(&d).unwrap_or(Body::Missing);
                (d, body)
            })
            .collect();
        let referrers: HashMap<String, Vec<String>> = draft
            .referrers_needed()
            .into_iter()
            .map(|d| {
                let list = referrers.remove(&d).unwrap_or_default();
                (d, list)
            })
            .collect();
        Ok(Some(draft.finish(&bodies, &referrers)))
    }
}

fn body_of(m: &Manifest) -> Body {
    if m.body_missing {
        return Body::Missing;
    }
    Body::Found(ManifestBody {
        media_type: m.media_type.clone(),
        manifests: m.children.iter().map(|c| descriptor(c.clone())).collect(),
        subject: m.subject.clone().map(descriptor),
        artifact_type: None,
        ..ManifestBody::default()
    })
}

fn descriptor(digest: String) -> Descriptor {
    Descriptor {
        media_type: Some(OCI_MANIFEST.into()),
        digest,
        artifact_type: None,
        size: None,
    }
}

fn lock(locked: bool) -> ChangeableAttributes {
    ChangeableAttributes {
        delete_enabled: Some(!locked),
        write_enabled: Some(true),
        ..ChangeableAttributes::default()
    }
}
