//! Deciding, for one repository, what is deleted and why — a pure function of the listings,
//! the manifest bodies and the policy, so a dry run shows exactly what a real run does.
//!
//! Planning has two steps because some decisions need manifest bodies: [`Draft::new`] decides
//! the tags and which manifests are deletion candidates, [`Draft::bodies_needed`] names the
//! bodies to fetch (every index, every manifest of unknown type, every candidate that may
//! be a referrer), and [`Draft::finish`] walks the graph and returns the [`RepositoryPlan`].
//! [`Draft::referrer_source`] says how the referrers the walk needs are learned at the
//! least cost to the rate card: from the listing, from bodies, or from the referrers API.
//!
//! Per rule, acr purge's `--ago` and `--keep` decide first; then the count bounds: items
//! ranked beyond `maxTags` / `maxUntaggedManifests` are deleted whatever their age (never
//! over a protection), then items ranked within any rule's `minTags` /
//! `minUntaggedManifests` are kept (see `tags` and `manifests`). [`guard`] then refuses a
//! whole repository's plan that takes away too many of its tagged images.

mod cosign;
pub mod evidence;
pub mod fixture;
pub mod guard;
mod manifests;
mod scope;
mod states;
mod tags;
#[cfg(test)]
mod tests;
mod verdict;
#[cfg(test)]
mod wire_tests;

pub use cosign::cosign_subject;
pub use evidence::Evidence;
pub use scope::Scope;
pub use verdict::{DeleteReason, KeepReason, OverLimit, Verdict};

use crate::model::{
    Digest, ManifestAttributes, ManifestBody, MediaType, RareList, TagAttributes, TagList, TagName,
    Timestamp,
};
use crate::policy::MatchError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The decision on one tag: 88 bytes, pinned by a unit test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagDecision {
    /// Tag name.
    pub name: TagName,
    /// The manifest it points to.
    pub digest: Digest,
    /// Its `lastUpdateTime` as received.
    pub last_update_time: Option<Timestamp>,
    /// Whether it was locked when listed.
    pub locked: bool,
    /// Whether it must be unlocked before deletion (`--include-locked`).
    pub unlock: bool,
    /// The decision.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The decision on one manifest: 128 bytes, pinned by a unit test (a repository may hold a
/// million of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDecision {
    /// Digest.
    pub digest: Digest,
    /// Media type from the listing.
    pub media_type: Option<MediaType>,
    /// Tags on it when listed (shared with its `keptTags` when it keeps them all).
    pub tags: TagList,
    /// Its `lastUpdateTime` as received.
    pub last_update_time: Option<Timestamp>,
    /// Its `imageSize` as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u64>,
    /// Whether it was locked when listed.
    pub locked: bool,
    /// Whether it must be unlocked before deletion (`--include-locked`).
    pub unlock: bool,
    /// The decision.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Manifests that must be deleted before this one (parent indexes, signed subjects).
    #[serde(default, skip_serializing_if = "<[Digest]>::is_empty")]
    pub after: RareList<Digest>,
}

/// Everything decided for one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryPlan {
    /// Repository name.
    pub repository: String,
    /// Every tag considered, newest first.
    pub tags: Vec<TagDecision>,
    /// Every manifest considered (only when manifests were listed), by digest.
    pub manifests: Vec<ManifestDecision>,
    /// Whether any rule deletes tags here.
    pub purges_tags: bool,
    /// Whether any rule deletes untagged manifests here.
    pub purges_manifests: bool,
}

impl RepositoryPlan {
    /// Tags this run deletes.
    pub fn tags_to_delete(&self) -> impl Iterator<Item = &TagDecision> {
        self.tags.iter().filter(|t| t.verdict.is_delete())
    }

    /// Manifests this run deletes.
    pub fn manifests_to_delete(&self) -> impl Iterator<Item = &ManifestDecision> {
        self.manifests.iter().filter(|m| m.verdict.is_delete())
    }
}

/// A manifest body as fetched: found, or 404.
#[allow(clippy::large_enum_variant)] // held briefly, one per manifest read
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The body's children and subject.
    Found(ManifestBody),
    /// The registry answered 404.
    Missing,
}

/// Where the referrers a plan needs come from ([`Draft::referrer_source`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferrerSource {
    /// Nothing needed, or the listing shows that nothing has referrers: no request.
    None,
    /// Read these bodies as well (every other one that could be a referrer is read for the
    /// plan anyway), then [`Draft::referrers_from_bodies`].
    Bodies(Vec<String>),
    /// Ask the referrers API for each of these digests.
    Api(Vec<String>),
}

/// A plan whose tag decisions are made and whose manifest decisions wait for bodies.
#[derive(Debug)]
pub struct Draft {
    repository: String,
    /// Whether the manifests were listed (else only tags were).
    listed: bool,
    scope: Scope,
    tags: Vec<TagDecision>,
    manifests: Vec<ManifestAttributes>,
    candidates: HashMap<Digest, manifests::Candidate>,
    cosign_pending: Vec<usize>,
}

impl Draft {
    /// Decides the tags and the manifest candidates. `tags` come newest first (server
    /// order); `manifests` is `None` when they were not listed.
    pub fn new(
        repository: &str,
        scope: Scope,
        tags: Vec<TagAttributes>,
        manifests: Option<Vec<ManifestAttributes>>,
    ) -> Result<Draft, MatchError> {
        let listed = manifests.is_some();
        let manifests = manifests.unwrap_or_default();
        // The manifests known to exist: those listed, and those tags point to (looked up by
        // position, not copied: a repository may hold a million of them).
        let in_listing = states::ByDigest::new(&manifests);
        let unlisted: std::collections::HashSet<Digest> = tags
            .iter()
            .filter(|t| !in_listing.contains(t.digest.as_str()))
            .map(|t| t.digest.clone())
            .collect();
        let known = |digest: &str| in_listing.contains(digest) || unlisted.contains(digest);
        let (tags, cosign_pending) = tags::decide(repository, &scope, tags, &known)?;
        drop(in_listing);
        let deleted: std::collections::HashSet<&str> = tags
            .iter()
            .filter(|t| t.verdict.is_delete())
            .map(|t| t.name.as_str())
            .collect();
        let candidates = manifests::candidates(&scope, &manifests, &deleted);
        Ok(Draft {
            repository: repository.to_string(),
            listed,
            scope,
            tags,
            manifests,
            candidates,
            cosign_pending,
        })
    }

    /// Digests whose bodies [`Draft::finish`] needs.
    pub fn bodies_needed(&self) -> Vec<String> {
        let needed = manifests::bodies_needed(&self.manifests, &self.candidates);
        // Signature manifests may follow their subject: check that they refer to nothing else.
        self.with_signature_manifests(needed)
    }

    /// Digests whose referrers [`Draft::finish`] needs (deletion candidates and signature
    /// manifests that may follow their subject): the registry deletes a manifest's
    /// referrers with it.
    pub fn referrers_needed(&self) -> Vec<String> {
        let mut needed: Vec<String> = self.candidates.keys().map(|d| d.to_string()).collect();
        needed.sort();
        self.with_signature_manifests(needed)
    }

    /// `needed` followed by the manifests of the pending cosign signature tags that it does
    /// not hold yet, in tag order. A set answers "held yet?" (a repository whose every image
    /// is signed has as many signatures as images: a scan of the list for each would be
    /// quadratic).
    fn with_signature_manifests(&self, mut needed: Vec<String>) -> Vec<String> {
        let mut held: std::collections::HashSet<String> = needed.iter().cloned().collect();
        for &t in &self.cosign_pending {
            let digest = self.tags[t].digest.as_str();
            if held.insert(digest.to_string()) {
                needed.push(digest.to_string());
            }
        }
        needed
    }

    /// How to learn the referrers of [`Draft::referrers_needed`] at the least cost to the
    /// rate card; `reads_per_referrers_call` is how many reads the budget allows for one
    /// referrers call (20 on Standard; infinite when reads are unlimited, 0 when referrers
    /// calls are).
    ///
    /// The rule: a referrer of a manifest is a manifest of the same repository whose body
    /// names it as `subject`. So when the manifests were listed, the listing decides:
    /// - no listed manifest could be a referrer (every one is a Docker schema 2 manifest or
    ///   list, which cannot carry a `subject`): nothing has referrers, no request at all;
    /// - else reading the bodies of every manifest that could be a referrer (those not read
    ///   for the plan anyway) tells the same as the referrers API, and costs reads, which
    ///   the rate card allows far more of: bodies are read when there are at most
    ///   `needed × (reads_per_referrers_call + 1)` of them to read, otherwise the API is
    ///   asked (each call also spends a read).
    ///
    /// Only without a manifest listing (tags-only rules, for cosign signatures) is the API
    /// always asked. A referrer pushed after the listing is missed by both ways alike.
    pub fn referrer_source(&self, reads_per_referrers_call: f64) -> ReferrerSource {
        let needed = self.referrers_needed();
        if needed.is_empty() {
            return ReferrerSource::None;
        }
        if !self.listed {
            return ReferrerSource::Api(needed);
        }
        let read_anyway: std::collections::HashSet<String> =
            self.bodies_needed().into_iter().collect();
        let mut could_be = 0usize;
        let mut extra = Vec::new();
        for manifest in &self.manifests {
            let Some(digest) = &manifest.digest else {
                continue;
            };
            if crate::model::could_be_referrer(manifest.media_type.as_deref()) {
                could_be += 1;
                if !read_anyway.contains(digest.as_str()) {
                    extra.push(digest.to_string());
                }
            }
        }
        if could_be == 0 {
            return ReferrerSource::None;
        }
        let allowance = needed.len() as f64 * (reads_per_referrers_call.max(0.0) + 1.0);
        if extra.len() as f64 <= allowance {
            ReferrerSource::Bodies(extra)
        } else {
            ReferrerSource::Api(needed)
        }
    }

    /// The referrers of [`Draft::referrers_needed`] as the listed manifests' bodies tell
    /// them (for [`ReferrerSource::Bodies`]; `bodies` must hold every listed manifest that
    /// could be a referrer). The same map the referrers API would give.
    pub fn referrers_from_bodies(
        &self,
        bodies: &HashMap<String, Body>,
    ) -> HashMap<String, Vec<String>> {
        let needed: std::collections::HashSet<String> =
            self.referrers_needed().into_iter().collect();
        let mut found: HashMap<String, Vec<String>> = HashMap::new();
        for manifest in &self.manifests {
            let Some(digest) = &manifest.digest else {
                continue;
            };
            if let Some(Body::Found(body)) = bodies.get(digest.as_str())
                && let Some(subject) = &body.subject
                && needed.contains(&subject.digest)
            {
                found
                    .entry(subject.digest.clone())
                    .or_default()
                    .push(digest.to_string());
            }
        }
        for list in found.values_mut() {
            list.sort();
        }
        found
    }

    /// Walks the manifest graph and completes the plan. `referrers` maps each digest of
    /// [`Draft::referrers_needed`] to the digests of its referrers.
    pub fn finish(
        self,
        bodies: &HashMap<String, Body>,
        referrers: &HashMap<String, Vec<String>>,
    ) -> RepositoryPlan {
        let Draft {
            repository,
            listed: _,
            scope,
            mut tags,
            manifests,
            candidates,
            cosign_pending,
        } = self;
        let locked_signatures = locked_signatures(&tags, &cosign_pending);
        let mut decisions = manifests::decide(
            &scope,
            manifests,
            &tags,
            candidates,
            bodies,
            referrers,
            &locked_signatures,
        );
        // Referrers go with their subjects and signatures with theirs; each can enable the
        // other, so settle both until nothing more is removed.
        loop {
            let removed = decisions.iter().filter(|d| d.verdict.is_removed()).count();
            manifests::cascade(&mut decisions, referrers);
            cosign::settle(
                &mut tags,
                &cosign_pending,
                &mut decisions,
                bodies,
                referrers,
            );
            if decisions.iter().filter(|d| d.verdict.is_removed()).count() == removed {
                break;
            }
        }
        manifests::order(&mut decisions, bodies);
        RepositoryPlan {
            repository,
            tags,
            manifests: decisions,
            purges_tags: scope.needs_tags(),
            purges_manifests: scope.purges_manifests(),
        }
    }
}

/// Signed manifest → a locked cosign signature tag of it (first one, in server order).
fn locked_signatures(tags: &[TagDecision], pending: &[usize]) -> HashMap<String, TagName> {
    let mut found = HashMap::new();
    for &t in pending {
        let tag = &tags[t];
        if let Some(subject) = cosign_subject(&tag.name).filter(|_| tag.locked) {
            found.entry(subject).or_insert_with(|| tag.name.clone());
        }
    }
    found
}
