//! The images Azure workloads run, from Azure Resource Graph
//! (`POST {arm}/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01`).
//!
//! One query, [`IN_USE_QUERY`], over the `Resources` table, paged with `$skipToken` until
//! the last page. What it reads, per resource type (Resource Graph's lowercase names):
//!
//! | type | image strings |
//! |---|---|
//! | `microsoft.app/containerapps`, `microsoft.app/jobs` | `properties.template.containers[].image`, `properties.template.initContainers[].image` |
//! | `microsoft.app/sessionpools` (custom-container session pools) | `properties.customContainerTemplate.containers[].image` |
//! | `microsoft.containerinstance/containergroups`, `microsoft.containerinstance/containergroupprofiles` | `properties.containers[].properties.image`, `properties.initContainers[].properties.image` |
//! | `microsoft.web/sites`, `microsoft.web/sites/slots` | `LinuxFxVersion` / `WindowsFxVersion` from `properties.siteProperties.properties[]` (where Resource Graph holds them; `properties.siteConfig` is usually null there) or `properties.siteConfig`: `DOCKER\|image`, and every `image:` of a `COMPOSE\|base64` Compose file |
//!
//! And through ARM ([`super::arm`]), what Resource Graph does not hold: the sidecars of an
//! app or slot whose `LinuxFxVersion` is `sitecontainers` (`…/sitecontainers`), every active
//! revision of a Container App that may serve more than its latest template (`…/revisions`:
//! multiple-revision mode, traffic by revision name or label, a latest revision that is not
//! the latest ready one), and the running executions of a job (`…/executions`, whose image
//! may be overridden). And for every AKS cluster (`microsoft.containerservice/managedclusters`)
//! the images its pods run, from the cluster's API server ([`super::aks`]); a cluster that
//! cannot be read is [`InUseError::Cluster`], unless it is excluded
//! ([`InUseClient::with_excluded_clusters`]).
//!
//! Scopes first: Resource Graph leaves out, **without an error**, every subscription the
//! identity cannot read (it answers 403 only when none is), so an unreadable subscription
//! would look empty. Before any workload is read, [`SUBSCRIPTIONS_QUERY`] over the same
//! scopes lists the readable subscriptions; a subscription of `protectInUse` missing from
//! it, or a management group showing none, is [`InUseError::ScopesUnreadable`], naming
//! them. A management group's subscriptions the identity cannot read cannot be told from
//! subscriptions it does not hold, so for management groups only "none readable" is
//! detected. Subscriptions are sent in batches of at most [`MAX_SUBSCRIPTIONS_PER_REQUEST`].
//!
//! A page refused as too large (400 `ResponsePayloadTooLarge`) is asked again with half the
//! rows (`$top`), down to one.
//!
//! Fails closed: a failed page (after the retries of [`crate::azure::http`]),
//! `resultTruncated`, fewer rows than `totalRecords`, `x-ms-tenant-subscription-limit-hit:
//! true`, an unreadable answer or an unparseable image of this registry is an
//! [`InUseError`], never a shorter list.
//!
//! Its parts, one job each: `query` (the queries sent), `scopes` (the readable-scopes check
//! and the batches of subscriptions), `paging` (Resource Graph's pages and result formats),
//! `rows` (the image strings a row names), `follow_ups` (the lists read besides a row),
//! `image_ref` (the image references of this registry) and `error` ([`InUseError`]); this
//! file holds the client and what it finds per row.

mod error;
mod follow_ups;
mod image_ref;
mod paging;
mod query;
mod rows;
mod scopes;

pub use error::InUseError;
pub use image_ref::{ImageRefError, ImageReference, parse_image};
pub use paging::ResultFormat;
pub use query::{
    API_VERSION, IN_USE_QUERY, MAX_SUBSCRIPTIONS_PER_REQUEST, PAGE_ROWS, PROJECTED,
    SUBSCRIPTIONS_QUERY, WORKLOAD_TYPES,
};
pub use scopes::InUseScope;

use super::aks::ClusterReader;
use super::arm::ArmReader;
use super::http::Caller;
use azure_core::credentials::TokenCredential;
use image_ref::normalize_login_server;
use rows::{image_strings, projected_properties};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// One image of the registry a workload references.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageUse {
    /// The repository, e.g. `team/app`.
    pub repository: String,
    /// The tag or digest.
    pub reference: ImageReference,
    /// The workload's resource id.
    pub resource_id: String,
    /// The workload's resource type, lowercase (e.g. `microsoft.app/containerapps`).
    pub resource_type: String,
}

/// A Resource Graph client for the images workloads run.
#[derive(Clone)]
pub struct InUseClient {
    endpoint: Url,
    caller: Caller,
    format: ResultFormat,
    page_size: Option<u32>,
    arm: ArmReader,
    clusters: ClusterReader,
    excluded_clusters: BTreeSet<String>,
}

impl std::fmt::Debug for InUseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InUseClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("format", &self.format)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl InUseClient {
    /// A client of Resource Graph at `arm_endpoint` (e.g. `https://management.azure.com`),
    /// signing in for `{scheme}://{host}/.default`.
    pub fn new(
        arm_endpoint: Url,
        credential: Arc<dyn TokenCredential>,
        http: reqwest::Client,
    ) -> InUseClient {
        InUseClient {
            arm: ArmReader::new(arm_endpoint.clone(), credential.clone(), http.clone()),
            clusters: ClusterReader::new(credential.clone(), http.clone()),
            excluded_clusters: BTreeSet::new(),
            caller: Caller::new(credential, http, Duration::from_secs(60)),
            endpoint: arm_endpoint,
            format: ResultFormat::default(),
            page_size: Some(PAGE_ROWS),
        }
    }

    /// Leaves these AKS clusters (resource ids, any case) unread: the images only their
    /// pods run are not protected.
    pub fn with_excluded_clusters<'a>(
        mut self,
        clusters: impl IntoIterator<Item = &'a str>,
    ) -> InUseClient {
        self.excluded_clusters = clusters
            .into_iter()
            .map(|c| c.trim().trim_end_matches('/').to_ascii_lowercase())
            .collect();
        self
    }

    /// Asks for this result format.
    pub fn with_result_format(mut self, format: ResultFormat) -> InUseClient {
        self.format = format;
        self
    }

    /// Asks for pages of at most `rows` rows (`$top`, 1 to 1000; [`PAGE_ROWS`] unless set).
    pub fn with_page_size(mut self, rows: u32) -> InUseClient {
        self.page_size = Some(rows.clamp(1, 1000));
        self
    }

    /// Every image of `login_server` (case-insensitive host) referenced by a workload in
    /// `scopes`, sorted and without duplicates.
    pub async fn images(
        &self,
        login_server: &str,
        scopes: &[InUseScope],
    ) -> Result<Vec<ImageUse>, InUseError> {
        let login_server = normalize_login_server(login_server);
        let mut found = BTreeSet::new();
        for row in self.query_rows(scopes, IN_USE_QUERY).await? {
            self.images_of_row(&row, &login_server, &mut found).await?;
        }
        Ok(found.into_iter().collect())
    }

    /// The images of this registry one row's workload runs: from the row, and from the
    /// resource provider's lists Resource Graph does not hold (`follow_ups`).
    async fn images_of_row(
        &self,
        row: &Map<String, Value>,
        login_server: &str,
        found: &mut BTreeSet<ImageUse>,
    ) -> Result<(), InUseError> {
        let text = |key: &str| row.get(key).and_then(Value::as_str).unwrap_or_default();
        let resource_id = text("id");
        let resource_type = text("type").to_ascii_lowercase();
        if resource_id.is_empty() {
            return Err(InUseError::Unreadable {
                scope: "a row".into(),
                page: 0,
                detail: format!("a row has no id: {}", Value::Object(row.clone())),
            });
        }
        let properties = projected_properties(row);
        let mut images =
            image_strings(&resource_type, &properties).map_err(|(image, detail)| {
                InUseError::Image {
                    resource_id: resource_id.to_string(),
                    image,
                    detail,
                }
            })?;
        if resource_type == "microsoft.containerservice/managedclusters" {
            if self
                .excluded_clusters
                .contains(&resource_id.to_ascii_lowercase())
            {
                tracing::warn!(
                    cluster = resource_id,
                    "AKS cluster excluded (inUseExcludeClusters): the images only its pods run are not protected"
                );
            } else {
                images.extend(self.clusters.images(&properties).await.map_err(|error| {
                    InUseError::Cluster {
                        cluster: resource_id.to_string(),
                        error,
                    }
                })?);
            }
        }
        images.extend(
            self.follow_up_images(resource_id, &resource_type, &properties)
                .await?,
        );
        for image in images {
            match parse_image(&image, login_server) {
                None => {}
                Some(Ok((repository, reference))) => {
                    found.insert(ImageUse {
                        repository,
                        reference,
                        resource_id: resource_id.to_string(),
                        resource_type: resource_type.clone(),
                    });
                }
                Some(Err(error)) => {
                    return Err(InUseError::Image {
                        resource_id: resource_id.to_string(),
                        image,
                        detail: error.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}
