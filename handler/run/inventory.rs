//! Reading one repository: its tags, its manifests and the manifest bodies the plan needs,
//! all before anything is deleted, so listings are never paged with a cursor this run has
//! deleted and the plan sees the whole graph.
//!
//! When the plan removes a manifest, the storage figures ([`crate::report::storage`]) need
//! the blobs of every manifest of the repository. Only the removed manifests' bodies are
//! read here, before anything is deleted (after, they are gone); the bodies of the
//! manifests that stay are read once the repository's deletions are done
//! ([`read_kept_blobs`]), so a run short of time spends its reads on deletions first, and
//! skips these reads when it is stopping. Bodies the plan read already are reused.
//! Repositories where only tags are deleted free nothing and cost no extra read;
//! `--no-storage` skips these reads.

use crate::plan::{Body, Draft, ReferrerSource, RepositoryPlan, Scope};
use crate::registry::{RateCard, RegistryClient, RegistryError};
use crate::report::{BlobIndex, PlanError};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;

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

/// The blobs of the manifests the plan removes, reading the bodies the plan did not read
/// (an index, read for the plan already, has no blobs of its own); every body the plan read
/// counts too. The other manifests are left in [`BlobIndex::unread`].
async fn blob_index(
    client: &RegistryClient,
    repository: &str,
    plan: &RepositoryPlan,
    mut bodies: HashMap<String, Body>,
    concurrency: usize,
) -> Result<BlobIndex, RegistryError> {
    let (removed, kept): (Vec<_>, Vec<_>) = plan
        .manifests
        .iter()
        .filter(|m| !bodies.contains_key(&m.digest))
        .partition(|m| m.verdict.is_removed());
    let missing = removed.into_iter().map(|m| m.digest.clone()).collect();
    bodies.extend(read_bodies(client, repository, missing, concurrency).await?);
    let mut index = BlobIndex::default();
    add_bodies(&mut index, bodies);
    index.unread = kept.into_iter().map(|m| m.digest.clone()).collect();
    Ok(index)
}

/// Reads the bodies of the manifests left in `index.unread` (the manifests that stay) and
/// adds their blobs. A read that fails leaves the whole rest unread: the figure then counts
/// their blobs as freed, and says how many manifests it could not see.
pub async fn read_kept_blobs(
    client: &RegistryClient,
    repository: &str,
    index: &mut BlobIndex,
    concurrency: usize,
) {
    let digests: Vec<String> = index.unread.iter().cloned().collect();
    match read_bodies(client, repository, digests, concurrency).await {
        Ok(bodies) => {
            index.unread.clear();
            add_bodies(index, bodies);
        }
        Err(error) => {
            tracing::warn!(%error, repository, "reading the kept manifests for the storage figures failed");
        }
    }
}

fn add_bodies(index: &mut BlobIndex, bodies: HashMap<String, Body>) {
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
}

/// How many reads the rate card allows for one referrers call.
fn reads_per_referrers_call(card: &RateCard) -> f64 {
    match (card.read, card.referrers) {
        (Some(read), Some(referrers)) => read / referrers,
        (None, Some(_)) => f64::INFINITY,
        (_, None) => 0.0,
    }
}
