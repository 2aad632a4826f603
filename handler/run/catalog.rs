//! The run's work over the whole catalog: which repositories the policy covers (before
//! any is read), and, for `--exact-storage`, the blobs of the repositories the run did not
//! read.

use super::RunOptions;
use crate::plan::Scope;
use crate::policy::Policy;
use crate::registry::{RegistryClient, RegistryError};
use crate::report::{RunError, RunReport};
use chrono::Utc;
use futures::StreamExt;
use std::collections::HashSet;

/// Lists the catalog and decides which repositories the policy covers; every repository
/// regex is evaluated here, before any repository is read. Applying a saved plan covers
/// its repositories with deletions, and lists the catalog only for `--exact-storage`.
/// Also returns the catalog (empty when not listed).
pub(super) async fn covered_repositories(
    client: &RegistryClient,
    policy: &Policy,
    options: &RunOptions,
) -> Result<(Vec<(String, Scope)>, Vec<String>), RunError> {
    let now = options.reference_time.unwrap_or_else(Utc::now);
    let catalog = match (&options.applying, options.exact_storage) {
        (Some(_), false) => Vec::new(),
        _ => client
            .catalog(options.repository_page_size)
            .await
            .map_err(RunError::Catalog)?,
    };
    let candidates: Vec<String> = match &options.applying {
        Some(saved) => saved
            .repositories_with_deletions()
            .map(|r| r.repository.clone())
            .collect(),
        None => catalog.clone(),
    };
    let mut covered = Vec::new();
    for name in candidates {
        if options
            .only
            .as_ref()
            .is_some_and(|only| !only.contains(&name))
        {
            continue;
        }
        if options.done.contains(&name) {
            continue;
        }
        if let Some(scope) = Scope::new(policy, &name, now).map_err(RunError::Filter)? {
            covered.push((name, scope));
        }
    }
    let names: Vec<String> = covered.iter().map(|(n, _)| n.clone()).collect();
    client.plan_token_batches(&names);
    options.tracker.covering(names.len());
    Ok((covered, catalog))
}

/// The blobs of every repository of `catalog` whose blobs the run did not read
/// (`--exact-storage`): their manifests are listed and every body read.
pub(super) async fn untouched_blobs(
    client: &RegistryClient,
    report: &RunReport,
    catalog: &[String],
    concurrency: usize,
) -> Result<Vec<crate::model::BlobKey>, RegistryError> {
    let read: HashSet<&str> = report
        .repositories
        .iter()
        .filter(|r| r.storage.is_some())
        .map(|r| r.repository.as_str())
        .collect();
    let mut blobs = Vec::new();
    for name in catalog.iter().filter(|n| !read.contains(n.as_str())) {
        let Some(manifests) = client.list_manifests(name).await? else {
            continue;
        };
        let digests: Vec<_> = manifests.into_iter().filter_map(|m| m.digest).collect();
        let bodies: Vec<Option<crate::model::ManifestBody>> = futures::stream::iter(digests)
            .map(|digest| async move { client.manifest_body(name, &digest).await })
            .buffer_unordered(concurrency.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        for body in bodies.into_iter().flatten() {
            blobs.extend(
                body.blob_sizes()
                    .map(|(b, _)| crate::model::BlobKey::new(b)),
            );
        }
    }
    Ok(blobs)
}
