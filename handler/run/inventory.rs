//! Reading one repository: its tags, its manifests and the manifest bodies the plan needs,
//! all before anything is deleted, so listings are never paged with a cursor this run has
//! deleted and the plan sees the whole graph.

use crate::plan::{Body, Draft, ReferrerSource, RepositoryPlan, Scope};
use crate::registry::{RateCard, RegistryClient, RegistryError};
use crate::report::PlanError;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;

/// Lists `repository` and plans it. `Ok(None)` when the repository does not exist.
pub async fn plan_repository(
    client: &RegistryClient,
    repository: &str,
    scope: Scope,
    concurrency: usize,
) -> Result<Option<RepositoryPlan>, PlanError> {
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
    let bodies: HashMap<String, Body> = futures::stream::iter(wanted)
        .map(|digest| async move {
            let body = client.manifest_body(repository, &digest).await?;
            Ok::<_, RegistryError>((digest, body.map_or(Body::Missing, Body::Found)))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
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
    Ok(Some(draft.finish(&bodies, &referrers)))
}

/// How many reads the rate card allows for one referrers call.
fn reads_per_referrers_call(card: &RateCard) -> f64 {
    match (card.read, card.referrers) {
        (Some(read), Some(referrers)) => read / referrers,
        (None, Some(_)) => f64::INFINITY,
        (_, None) => 0.0,
    }
}
