//! Reading one repository: its tags, its manifests and the manifest bodies the plan needs,
//! all before anything is deleted, so listings are never paged with a cursor this run has
//! deleted and the plan sees the whole graph.
//!
//! When the plan removes a manifest, the bodies of every other image manifest of the
//! repository are read too (one read each, bodies the plan read already are reused), so
//! that the storage figures know which blobs stay referenced
//! ([`crate::report::storage`]). Repositories where only tags are deleted free nothing
//! and cost no extra read; `--no-storage` skips these reads.

use crate::plan::{Body, Draft, ReferrerSource, RepositoryPlan, Scope};
use crate::registry::{RateCard, RegistryClient, RegistryError};
use crate::report::{BlobIndex, PlanError};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;

/// A repository's plan and, when it removes manifests, the blobs of its manifests.
pub struct Planned {
    /// The plan.
    pub plan: RepositoryPlan,
    /// The blobs of every manifest, when the plan removes any.
    pub blobs: Option<BlobIndex>,
}

/// Lists `repository` and plans it. `Ok(None)` when the repository does not exist.
pub async fn plan_repository(
    client: &RegistryClient,
    repository: &str,
    scope: Scope,
    concurrency: usize,
    count_storage: bool,
) -> Result<Option<Planned>, PlanError> {
    let tags = if scope.needs_tags() {
        match client.list_tags(repository).await? {
            Some(tags) => tags,
            None => return Ok(None),
        }
    } else {
        Vec::new()
    };
    let manifests = if scope.needs_manifests(&tags) {
        match client.list_manifests(repository).await? {
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
        true => Some(blob_index(client, repository, &plan, bodies, concurrency).await?),
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

/// The blobs of every manifest of the plan, reading the bodies the plan did not read
/// (an index, read for the plan already, has no blobs of its own).
async fn blob_index(
    client: &RegistryClient,
    repository: &str,
    plan: &RepositoryPlan,
    mut bodies: HashMap<String, Body>,
    concurrency: usize,
) -> Result<BlobIndex, RegistryError> {
    let missing: Vec<String> = plan
        .manifests
        .iter()
        .filter(|m| !bodies.contains_key(&m.digest))
        .map(|m| m.digest.clone())
        .collect();
    bodies.extend(read_bodies(client, repository, missing, concurrency).await?);
    let mut index = BlobIndex::default();
    for (digest, body) in bodies {
        match body {
            Body::Found(body) => {
                let blobs = body
                    .blob_sizes()
                    .map(|(blob, size)| (blob.to_string(), size))
                    .collect();
                index.blobs.insert(digest, blobs);
            }
            Body::Missing => {
                index.unknown.insert(digest);
            }
        }
    }
    Ok(index)
}

/// How many reads the rate card allows for one referrers call.
fn reads_per_referrers_call(card: &RateCard) -> f64 {
    match (card.read, card.referrers) {
        (Some(read), Some(referrers)) => read / referrers,
        (None, Some(_)) => f64::INFINITY,
        (_, None) => 0.0,
    }
}
