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
//! Fails closed: a failed page (after three tries of a 429), `resultTruncated`, fewer rows
//! than `totalRecords`, `x-ms-tenant-subscription-limit-hit: true`, an unreadable answer or
//! an unparseable image of this registry is an [`InUseError`], never a shorter list.

use super::aks::ClusterReader;
use super::arm::{APP_API_VERSION, ArmReader, WEB_API_VERSION};
use super::{bearer, error_text, read_table};
use azure_core::credentials::TokenCredential;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The Resource Graph API version used.
pub const API_VERSION: &str = "2022-10-01";

/// The resource types whose images are read.
pub const WORKLOAD_TYPES: &[&str] = &[
    "microsoft.app/containerapps",
    "microsoft.app/jobs",
    "microsoft.app/sessionpools",
    "microsoft.containerinstance/containergroupprofiles",
    "microsoft.containerinstance/containergroups",
    "microsoft.containerservice/managedclusters",
    "microsoft.web/sites",
    "microsoft.web/sites/slots",
];

/// The members of a row's `properties` the decision needs, each projected as a column of
/// its own (column name, member path under `properties`): the image references and what
/// says where else to look, not whole `properties` (an App Service site's or an AKS
/// cluster's run to kilobytes of settings the purge never reads). The row's `properties`
/// is rebuilt from them ([`projected_properties`]), so the readers below see the shapes
/// Resource Graph holds.
pub const PROJECTED: &[(&str, &str)] = &[
    // Container Apps and jobs: the template, and whether older revisions may serve.
    ("appContainers", "template.containers"),
    ("appInitContainers", "template.initContainers"),
    ("revisionsMode", "configuration.activeRevisionsMode"),
    ("traffic", "configuration.ingress.traffic"),
    ("latestRevisionName", "latestRevisionName"),
    ("latestReadyRevisionName", "latestReadyRevisionName"),
    // Container Apps session pools with custom containers (Microsoft.App/sessionPools:
    // `customContainerTemplate.containers[].image`, Azure's resource type definitions).
    ("poolContainers", "customContainerTemplate.containers"),
    // Container Instances: container groups and container group profiles (the same
    // `containers[].properties.image` shape in both types' definitions).
    ("groupContainers", "containers"),
    ("groupInitContainers", "initContainers"),
    // App Service and Functions sites and slots.
    ("linuxFxVersion", "siteConfig.linuxFxVersion"),
    ("windowsFxVersion", "siteConfig.windowsFxVersion"),
    ("siteProperties", "siteProperties.properties"),
    // AKS: where the API server is, and whether an Entra token can read it.
    ("fqdn", "fqdn"),
    ("aadProfile", "aadProfile"),
    (
        "privateCluster",
        "apiServerAccessProfile.enablePrivateCluster",
    ),
];

/// The query sent (ordered by `id`, which paging needs to be stable): the columns of
/// [`PROJECTED`] besides `id` and `type` (a unit test holds the two in step).
pub const IN_USE_QUERY: &str = "Resources | where type in~ ('microsoft.app/containerapps', 'microsoft.app/jobs', 'microsoft.app/sessionpools', 'microsoft.containerinstance/containergroupprofiles', 'microsoft.containerinstance/containergroups', 'microsoft.containerservice/managedclusters', 'microsoft.web/sites', 'microsoft.web/sites/slots') | project id, type, appContainers = properties.template.containers, appInitContainers = properties.template.initContainers, revisionsMode = properties.configuration.activeRevisionsMode, traffic = properties.configuration.ingress.traffic, latestRevisionName = properties.latestRevisionName, latestReadyRevisionName = properties.latestReadyRevisionName, poolContainers = properties.customContainerTemplate.containers, groupContainers = properties.containers, groupInitContainers = properties.initContainers, linuxFxVersion = properties.siteConfig.linuxFxVersion, windowsFxVersion = properties.siteConfig.windowsFxVersion, siteProperties = properties.siteProperties.properties, fqdn = properties.fqdn, aadProfile = properties.aadProfile, privateCluster = properties.apiServerAccessProfile.enablePrivateCluster | order by id asc";

/// The rows asked for per page (`$top`): the most Resource Graph answers in one page; its
/// default without `$top` is 100 ("Working with large Azure resource data sets",
/// learn.microsoft.com/azure/governance/resource-graph/concepts/work-with-data).
pub const PAGE_ROWS: u32 = 1000;

/// The query that confirms the scopes are readable: the subscriptions Resource Graph
/// answers for (it leaves out, without an error, those the identity cannot read).
pub const SUBSCRIPTIONS_QUERY: &str = "ResourceContainers | where type == 'microsoft.resources/subscriptions' | project subscriptionId | order by subscriptionId asc";

/// The most subscriptions one request names; more are sent in batches ("Troubleshoot
/// errors using Azure Resource Graph", "Too many subscriptions").
pub const MAX_SUBSCRIPTIONS_PER_REQUEST: usize = 1000;

const MAX_PAGES: usize = 10_000;
const TRIES_WHEN_THROTTLED: usize = 3;

/// Where to look.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A subscription id.
    Subscription(String),
    /// A management group name (id).
    ManagementGroup(String),
}

/// How an image is referenced.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageReference {
    /// By digest, `sha256:…` (also when a tag is given too: the digest is what runs).
    Digest(String),
    /// By tag (`latest` when none is given).
    Tag(String),
}

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

/// The result format asked of Resource Graph (both are read whatever was asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultFormat {
    /// `data` as an array of objects (Resource Graph's default).
    #[default]
    ObjectArray,
    /// `data` as `{"columns", "rows"}`.
    Table,
}

/// Why the images in use are not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InUseError {
    /// No subscription or management group was given.
    #[error("in-use lookup: no subscription or management group to look in")]
    NoScope,
    /// No token, or an endpoint a token must not be sent to.
    #[error("in-use lookup at {endpoint}: {detail}")]
    Credential {
        /// The Resource Graph endpoint.
        endpoint: String,
        /// What failed.
        detail: String,
    },
    /// Scopes the identity cannot read: Resource Graph leaves them out of its answers
    /// without an error, so their workloads would count as absent.
    #[error(
        "in-use lookup: cannot read {}: Resource Graph leaves out what the identity cannot read, so their workloads would count as absent (grant Reader there, or remove them from protectInUse)",
        scopes.join(", ")
    )]
    ScopesUnreadable {
        /// The subscriptions (and management groups with no readable subscription).
        scopes: Vec<String>,
    },
    /// The request did not get an answer.
    #[error("in-use lookup, page {page} ({scope}): request failed: {detail}")]
    Request {
        /// The scopes of the query.
        scope: String,
        /// The page, from 1.
        page: usize,
        /// What failed.
        detail: String,
    },
    /// A non-2xx answer.
    #[error("in-use lookup, page {page} ({scope}): HTTP {status}: {detail}")]
    Status {
        /// The scopes of the query.
        scope: String,
        /// The page, from 1.
        page: usize,
        /// The HTTP status.
        status: u16,
        /// Azure's error code and message.
        detail: String,
    },
    /// Resource Graph said the result is truncated or limited, or returned fewer rows than
    /// it counted.
    #[error("in-use lookup, page {page} ({scope}): partial answer: {detail}")]
    Partial {
        /// The scopes of the query.
        scope: String,
        /// The page, from 1.
        page: usize,
        /// What was partial.
        detail: String,
    },
    /// An answer that is not what the API documents.
    #[error("in-use lookup, page {page} ({scope}): unreadable answer: {detail}")]
    Unreadable {
        /// The scopes of the query.
        scope: String,
        /// The page, from 1.
        page: usize,
        /// What was wrong.
        detail: String,
    },
    /// A resource provider's list (sidecars, revisions, executions) could not be read.
    #[error("in-use lookup: {resource_id}: {detail}")]
    Arm {
        /// The workload.
        resource_id: String,
        /// What failed.
        detail: String,
    },
    /// An AKS cluster whose pods cannot be listed: what it runs is unknown.
    #[error(
        "in-use lookup: cannot read the pods of AKS cluster {cluster}: {detail} (grant the identity Azure Kubernetes Service RBAC Reader there, or list the cluster under inUseExcludeClusters to leave its pods unprotected)"
    )]
    Cluster {
        /// The cluster's resource id.
        cluster: String,
        /// Why.
        detail: String,
    },
    /// An image of this registry that cannot be parsed, so it cannot be protected.
    #[error(
        "in-use lookup: {resource_id} runs {image:?}, an image of this registry that cannot be parsed: {detail}"
    )]
    Image {
        /// The workload.
        resource_id: String,
        /// The image string.
        image: String,
        /// Why it is not an image reference.
        detail: String,
    },
}

/// A Resource Graph client for the images workloads run.
#[derive(Clone)]
pub struct InUseClient {
    endpoint: Url,
    credential: Arc<dyn TokenCredential>,
    http: reqwest::Client,
    format: ResultFormat,
    page_size: Option<u32>,
    arm: ArmReader,
    clusters: ClusterReader,
    excluded_clusters: BTreeSet<String>,
    /// No request before this: the last answer said the user quota is spent
    /// (`x-ms-user-quota-remaining: 0`) until `x-ms-user-quota-resets-after`.
    quota_until: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
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
            quota_until: Arc::default(),
            endpoint: arm_endpoint,
            credential,
            http,
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

    fn url(&self) -> Url {
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!(
            "{base}/providers/Microsoft.ResourceGraph/resources"
        ));
        url.set_query(Some(&format!("api-version={API_VERSION}")));
        url
    }

    /// Every image of `login_server` (case-insensitive host) referenced by a workload in
    /// `scopes`, sorted and without duplicates.
    pub async fn images(
        &self,
        login_server: &str,
        scopes: &[Scope],
    ) -> Result<Vec<ImageUse>, InUseError> {
        let login_server = normalize_login_server(login_server);
        let mut found = BTreeSet::new();
        for row in self.query_rows(scopes, IN_USE_QUERY).await? {
            self.images_of_row(&row, &login_server, &mut found).await?;
        }
        Ok(found.into_iter().collect())
    }

    /// Every row `query` answers over `scopes`, after confirming they are readable (see the
    /// module documentation), through every page and batch; fails closed as
    /// [`InUseClient::images`] does.
    pub async fn query_rows(
        &self,
        scopes: &[Scope],
        query: &str,
    ) -> Result<Vec<Map<String, Value>>, InUseError> {
        let subscriptions: Vec<&str> = scopes
            .iter()
            .filter_map(|s| match s {
                Scope::Subscription(id) => Some(id.as_str()),
                Scope::ManagementGroup(_) => None,
            })
            .collect();
        let groups: Vec<&str> = scopes
            .iter()
            .filter_map(|s| match s {
                Scope::ManagementGroup(id) => Some(id.as_str()),
                Scope::Subscription(_) => None,
            })
            .collect();
        if subscriptions.is_empty() && groups.is_empty() {
            return Err(InUseError::NoScope);
        }
        self.check_scopes(&subscriptions, &groups).await?;
        let mut rows = Vec::new();
        let mut requests: Vec<(&str, &[&str])> = subscriptions
            .chunks(MAX_SUBSCRIPTIONS_PER_REQUEST)
            .map(|batch| ("subscriptions", batch))
            .collect();
        if !groups.is_empty() {
            requests.push(("managementGroups", groups.as_slice()));
        }
        for (field, ids) in requests {
            rows.extend(self.rows(field, ids, query).await?);
        }
        Ok(rows)
    }

    /// Confirms every subscription is readable ([`SUBSCRIPTIONS_QUERY`] over the same
    /// scopes, in batches), and every management group shows at least one subscription;
    /// else names those that are not.
    async fn check_scopes(
        &self,
        subscriptions: &[&str],
        groups: &[&str],
    ) -> Result<(), InUseError> {
        let mut unreadable = Vec::new();
        let readable = |rows: &[Map<String, Value>]| -> BTreeSet<String> {
            rows.iter()
                .filter_map(|r| r.get("subscriptionId").and_then(Value::as_str))
                .map(str::to_ascii_lowercase)
                .collect()
        };
        for batch in subscriptions.chunks(MAX_SUBSCRIPTIONS_PER_REQUEST) {
            match self.rows("subscriptions", batch, SUBSCRIPTIONS_QUERY).await {
                Ok(rows) => {
                    let seen = readable(&rows);
                    unreadable.extend(
                        batch
                            .iter()
                            .filter(|s| !seen.contains(&s.to_ascii_lowercase()))
                            .map(|s| format!("subscription {s}")),
                    );
                }
                Err(InUseError::Status { status: 403, .. }) => {
                    unreadable.extend(batch.iter().map(|s| format!("subscription {s}")));
                }
                Err(other) => return Err(other),
            }
        }
        for group in groups {
            let none = match self
                .rows("managementGroups", &[*group], SUBSCRIPTIONS_QUERY)
                .await
            {
                Ok(rows) => readable(&rows).is_empty(),
                Err(InUseError::Status { status: 403, .. }) => true,
                Err(other) => return Err(other),
            };
            if none {
                unreadable.push(format!(
                    "management group {group} (no subscription of it is readable)"
                ));
            }
        }
        match unreadable.is_empty() {
            true => Ok(()),
            false => Err(InUseError::ScopesUnreadable { scopes: unreadable }),
        }
    }

    /// Every row of the query in these scopes, through every page.
    async fn rows(
        &self,
        field: &str,
        ids: &[&str],
        query: &str,
    ) -> Result<Vec<Map<String, Value>>, InUseError> {
        let scope = match ids.len() {
            0..=3 => format!("{field} {}", ids.join(", ")),
            n => format!("{field} {}, … ({n} in all)", ids[..3].join(", ")),
        };
        let token = bearer(self.credential.as_ref(), &self.endpoint)
            .await
            .map_err(|detail| InUseError::Credential {
                endpoint: self.endpoint.to_string(),
                detail,
            })?;
        let mut rows = Vec::new();
        let mut skip_token: Option<String> = None;
        let mut seen_tokens = BTreeSet::new();
        let mut top = self.page_size;
        for page in 1..=MAX_PAGES {
            let answer = loop {
                match self
                    .page(
                        field,
                        ids,
                        query,
                        top,
                        skip_token.as_deref(),
                        &token,
                        &scope,
                        page,
                    )
                    .await
                {
                    // The page would be too large: ask again for half as many rows.
                    Err(InUseError::Status {
                        status: 400,
                        ref detail,
                        ..
                    }) if detail.contains("ResponsePayloadTooLarge") && top != Some(1) => {
                        let halved = top.unwrap_or(1000) / 2;
                        tracing::info!(
                            rows = halved,
                            "Resource Graph page too large: asking for half as many rows"
                        );
                        top = Some(halved.max(1));
                    }
                    other => break other?,
                }
            };
            let unreadable = |detail: String| InUseError::Unreadable {
                scope: scope.clone(),
                page,
                detail,
            };
            let truncated = match answer.get("resultTruncated") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                None | Some(Value::Null) => false,
                Some(other) => return Err(unreadable(format!("resultTruncated is {other}"))),
            };
            if truncated {
                return Err(InUseError::Partial {
                    scope,
                    page,
                    detail: "resultTruncated is true".into(),
                });
            }
            let total = answer.get("totalRecords").and_then(Value::as_u64);
            let data = answer
                .get("data")
                .ok_or_else(|| unreadable("no `data`".into()))?;
            rows.extend(data_rows(data).map_err(unreadable)?);
            match answer.get("$skipToken") {
                Some(Value::String(t)) if !t.is_empty() => {
                    if !seen_tokens.insert(t.clone()) {
                        return Err(unreadable("the same $skipToken came twice".into()));
                    }
                    skip_token = Some(t.clone());
                }
                None | Some(Value::Null) | Some(Value::String(_)) => {
                    if let Some(total) = total
                        && (rows.len() as u64) < total
                    {
                        return Err(InUseError::Partial {
                            scope,
                            page,
                            detail: format!(
                                "{} rows received of totalRecords {total}, and no $skipToken",
                                rows.len()
                            ),
                        });
                    }
                    return Ok(rows);
                }
                Some(other) => return Err(unreadable(format!("$skipToken is {other}"))),
            }
        }
        Err(InUseError::Partial {
            scope,
            page: MAX_PAGES,
            detail: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// One page of `query`: `$top` rows (`None`: the service's page), after `skip_token`.
    #[allow(clippy::too_many_arguments)]
    async fn page(
        &self,
        field: &str,
        ids: &[&str],
        query: &str,
        top: Option<u32>,
        skip_token: Option<&str>,
        token: &str,
        scope: &str,
        page: usize,
    ) -> Result<Value, InUseError> {
        let mut options = Map::new();
        options.insert(
            "resultFormat".into(),
            json!(match self.format {
                ResultFormat::ObjectArray => "objectArray",
                ResultFormat::Table => "table",
            }),
        );
        if let Some(top) = top {
            options.insert("$top".into(), json!(top));
        }
        if let Some(t) = skip_token {
            options.insert("$skipToken".into(), json!(t));
        }
        let body = json!({ field: ids, "query": query, "options": options });
        self.post(token, &body, scope, page).await
    }

    /// The images of this registry one row's workload runs: from the row, and from the
    /// resource provider's lists Resource Graph does not hold ([`FollowUp`]).
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
                images.extend(self.clusters.images(&properties).await.map_err(|detail| {
                    InUseError::Cluster {
                        cluster: resource_id.to_string(),
                        detail,
                    }
                })?);
            }
        }
        for follow_up in follow_ups(&resource_type, &properties) {
            let arm_error = |detail: String| InUseError::Arm {
                resource_id: resource_id.to_string(),
                detail,
            };
            let (child, version) = match follow_up {
                FollowUp::SiteContainers => ("sitecontainers", WEB_API_VERSION),
                FollowUp::Revisions => ("revisions", APP_API_VERSION),
                FollowUp::Executions => ("executions", APP_API_VERSION),
            };
            let items = self
                .arm
                .list(&format!("{resource_id}/{child}"), version)
                .await
                .map_err(arm_error)?;
            for item in &items {
                match follow_up {
                    FollowUp::SiteContainers => images.extend(
                        item.pointer("/properties/image")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    ),
                    FollowUp::Revisions if revision_serves(item) => {
                        images.extend(template_images(item.pointer("/properties/template")))
                    }
                    FollowUp::Executions if execution_runs(item) => {
                        images.extend(template_images(item.pointer("/properties/template")))
                    }
                    FollowUp::Revisions | FollowUp::Executions => {}
                }
            }
        }
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
                Some(Err(detail)) => {
                    return Err(InUseError::Image {
                        resource_id: resource_id.to_string(),
                        image,
                        detail,
                    });
                }
            }
        }
        Ok(())
    }

    /// One page, retrying a 429 up to three times after `Retry-After` (at most 10 s).
    async fn post(
        &self,
        token: &str,
        body: &Value,
        scope: &str,
        page: usize,
    ) -> Result<Value, InUseError> {
        let mut tries = 0;
        loop {
            tries += 1;
            self.wait_for_quota().await;
            let response = self
                .http
                .post(self.url())
                .bearer_auth(token)
                .json(body)
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .map_err(|e| InUseError::Request {
                    scope: scope.to_string(),
                    page,
                    detail: crate::outbound::error_chain(&e),
                })?;
            let status = response.status();
            // A 429 says how long to wait itself (`Retry-After`); an answer with no quota
            // left says when the next request may go.
            if status.is_success() {
                self.note_quota(response.headers());
            }
            if status.as_u16() == 429 && tries < TRIES_WHEN_THROTTLED {
                tokio::time::sleep(retry_after(response.headers())).await;
                continue;
            }
            let limit_hit = response
                .headers()
                .get("x-ms-tenant-subscription-limit-hit")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let text = super::read_capped(response, super::MAX_ANSWER_BYTES)
                .await
                .map_err(|detail| InUseError::Unreadable {
                    scope: scope.to_string(),
                    page,
                    detail,
                })?;
            if !status.is_success() {
                return Err(InUseError::Status {
                    scope: scope.to_string(),
                    page,
                    status: status.as_u16(),
                    detail: error_text(&text),
                });
            }
            if limit_hit {
                return Err(InUseError::Partial {
                    scope: scope.to_string(),
                    page,
                    detail: "x-ms-tenant-subscription-limit-hit: only the first 10,000 subscriptions were queried".into(),
                });
            }
            return serde_json::from_str(&text).map_err(|e| InUseError::Unreadable {
                scope: scope.to_string(),
                page,
                detail: format!("not JSON: {e}"),
            });
        }
    }
}

impl InUseClient {
    /// Waits while the user quota is spent, as the last answer said.
    async fn wait_for_quota(&self) {
        let until = *self
            .quota_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    /// Remembers when the next request may go: at once while quota remains, else after
    /// `x-ms-user-quota-resets-after` ("Guidance for throttled requests in Azure Resource
    /// Graph": a client that waits for the reset is not throttled).
    fn note_quota(&self, headers: &reqwest::header::HeaderMap) {
        let wait = quota_wait(headers);
        *self
            .quota_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            wait.map(|w| tokio::time::Instant::now() + w);
    }
}

/// How long to wait before the next request: `Some(resets-after)` (at most 60 s) when
/// `x-ms-user-quota-remaining` is 0, else `None`.
pub(crate) fn quota_wait(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let remaining: u64 = text("x-ms-user-quota-remaining")?.trim().parse().ok()?;
    if remaining > 0 {
        return None;
    }
    let seconds = text("x-ms-user-quota-resets-after")
        .and_then(hms_seconds)
        .unwrap_or(1);
    Some(Duration::from_secs(seconds.clamp(1, 60)))
}

/// `hh:mm:ss` as seconds.
fn hms_seconds(value: &str) -> Option<u64> {
    let parts: Vec<u64> = value
        .trim()
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match parts[..] {
        [h, m, s] => Some(h * 3600 + m * 60 + s),
        _ => None,
    }
}

/// How long a 429 asks to wait: `Retry-After` seconds, else `x-ms-user-quota-resets-after`
/// (`hh:mm:ss`), else 1 s; at most 10 s.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let seconds = text("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or_else(|| {
            text("x-ms-user-quota-resets-after").and_then(|v| {
                let parts: Vec<u64> = v.split(':').filter_map(|p| p.parse().ok()).collect();
                match parts[..] {
                    [h, m, s] => Some(h * 3600 + m * 60 + s),
                    _ => None,
                }
            })
        })
        .unwrap_or(1);
    Duration::from_secs(seconds.min(10))
}

/// A row's `properties` as Resource Graph holds them, rebuilt from the columns of
/// [`PROJECTED`] (a column that is missing or null leaves its member out), over the row's
/// own `properties` when it has one.
fn projected_properties(row: &Map<String, Value>) -> Value {
    let mut properties = match row.get("properties") {
        Some(Value::Object(members)) => members.clone(),
        _ => Map::new(),
    };
    for (column, path) in PROJECTED {
        let Some(value) = row.get(*column).filter(|v| !v.is_null()) else {
            continue;
        };
        let mut members = path.split('.').peekable();
        let mut at = &mut properties;
        while let Some(member) = members.next() {
            if members.peek().is_none() {
                at.insert(member.to_string(), value.clone());
                break;
            }
            let next = at
                .entry(member.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !next.is_object() {
                *next = Value::Object(Map::new());
            }
            let Value::Object(inner) = next else {
                break;
            };
            at = inner;
        }
    }
    Value::Object(properties)
}

/// The rows of `data`, as objects, from either result format.
fn data_rows(data: &Value) -> Result<Vec<Map<String, Value>>, String> {
    match data {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_object()
                    .cloned()
                    .ok_or_else(|| format!("a row of data is not an object: {item}"))
            })
            .collect(),
        Value::Object(_) => {
            let (columns, rows) = read_table(data)?;
            Ok(rows
                .into_iter()
                .map(|cells| columns.iter().cloned().zip(cells).collect())
                .collect())
        }
        other => Err(format!("data is neither an array nor a table: {other}")),
    }
}

/// The image strings of one row, by its type (a `COMPOSE|` value's images too); `Err` with
/// the value and why when a Compose file cannot be read.
fn image_strings(resource_type: &str, properties: &Value) -> Result<Vec<String>, (String, String)> {
    let strings_at = |list: Option<&Value>, path: &str| -> Vec<String> {
        list.and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|c| c.pointer(path).and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(match resource_type {
        "microsoft.app/containerapps" | "microsoft.app/jobs" => {
            let template = properties.get("template");
            let mut images = strings_at(template.and_then(|t| t.get("containers")), "/image");
            images.extend(strings_at(
                template.and_then(|t| t.get("initContainers")),
                "/image",
            ));
            images
        }
        "microsoft.app/sessionpools" => strings_at(
            properties
                .get("customContainerTemplate")
                .and_then(|t| t.get("containers")),
            "/image",
        ),
        "microsoft.containerinstance/containergroups"
        | "microsoft.containerinstance/containergroupprofiles" => {
            let mut images = strings_at(properties.get("containers"), "/properties/image");
            images.extend(strings_at(
                properties.get("initContainers"),
                "/properties/image",
            ));
            images
        }
        "microsoft.web/sites" | "microsoft.web/sites/slots" => {
            let mut images = Vec::new();
            for value in fx_values(properties) {
                match prefixed(&value, "DOCKER|") {
                    Some(_) => images.push(value),
                    None => {
                        if let Some(compose) = prefixed(&value, "COMPOSE|") {
                            images.extend(compose_images(compose).map_err(|detail| {
                                (
                                    format!("{}…", value.chars().take(40).collect::<String>()),
                                    detail,
                                )
                            })?);
                        }
                    }
                }
            }
            images
        }
        _ => Vec::new(),
    })
}

/// `value` after `prefix` (ignoring case), when it starts with it.
fn prefixed<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value[prefix.len()..].trim())
}

/// An App Service app's `LinuxFxVersion` / `WindowsFxVersion` values, from
/// `properties.siteConfig` (usually null in Resource Graph) and from
/// `properties.siteProperties.properties[]` (where Resource Graph holds them).
fn fx_values(properties: &Value) -> Vec<String> {
    let mut values: Vec<String> = ["linuxFxVersion", "windowsFxVersion"]
        .iter()
        .filter_map(|k| properties.pointer(&format!("/siteConfig/{k}")))
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if let Some(items) = properties
        .pointer("/siteProperties/properties")
        .and_then(Value::as_array)
    {
        values.extend(items.iter().filter_map(|item| {
            let name = item.get("name").and_then(Value::as_str)?;
            let fx = name.eq_ignore_ascii_case("LinuxFxVersion")
                || name.eq_ignore_ascii_case("WindowsFxVersion");
            fx.then(|| item.get("value").and_then(Value::as_str))
                .flatten()
                .map(str::to_string)
        }));
    }
    values
}

/// Every `image:` of a base64 Compose file (`COMPOSE|<base64>`), read line by line: a
/// key `image` (after an optional `- `), its value unquoted, a trailing ` #` comment
/// dropped. A value that is not base64 or not UTF-8 is an error: its images are unknown.
fn compose_images(encoded: &str) -> Result<Vec<String>, String> {
    use base64::Engine;
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("the Compose file is not base64: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "the Compose file is not UTF-8".to_string())?;
    let mut images = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix("- ").map(str::trim_start).unwrap_or(line);
        let Some(rest) = line.strip_prefix("image:") else {
            continue;
        };
        let mut value = rest.trim();
        if let Some((before, _)) = value.split_once(" #") {
            value = before.trim();
        }
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        if value.is_empty() {
            return Err("an `image:` without a value (a multi-line value is not read)".to_string());
        }
        images.push(value.to_string());
    }
    Ok(images)
}

/// A list a resource provider holds and Resource Graph does not, read for one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FollowUp {
    /// An App Service app or slot running sidecars (`LinuxFxVersion` `sitecontainers`).
    SiteContainers,
    /// A Container App that may serve more than its latest template.
    Revisions,
    /// A Container Apps job: running executions may run an overridden image.
    Executions,
}

/// What must be read besides the row for this workload.
fn follow_ups(resource_type: &str, properties: &Value) -> Vec<FollowUp> {
    match resource_type {
        "microsoft.web/sites" | "microsoft.web/sites/slots" => fx_values(properties)
            .iter()
            .any(|v| v.trim().eq_ignore_ascii_case("sitecontainers"))
            .then_some(FollowUp::SiteContainers)
            .into_iter()
            .collect(),
        "microsoft.app/containerapps" => may_serve_older_revisions(properties)
            .then_some(FollowUp::Revisions)
            .into_iter()
            .collect(),
        "microsoft.app/jobs" => vec![FollowUp::Executions],
        _ => Vec::new(),
    }
}

/// Whether a Container App may serve more than its latest template: multiple-revision
/// mode, traffic sent by revision name or label, or a latest revision that is not the
/// latest ready one (traffic then stays on an older revision).
fn may_serve_older_revisions(properties: &Value) -> bool {
    let text = |path: &str| properties.pointer(path).and_then(Value::as_str);
    let multiple = text("/configuration/activeRevisionsMode")
        .is_some_and(|m| !m.eq_ignore_ascii_case("single"));
    let by_revision = properties
        .pointer("/configuration/ingress/traffic")
        .and_then(Value::as_array)
        .is_some_and(|traffic| {
            traffic.iter().any(|t| {
                ["revisionName", "label"].iter().any(|k| {
                    t.get(*k)
                        .and_then(Value::as_str)
                        .is_some_and(|v| !v.is_empty())
                })
            })
        });
    let not_ready = text("/latestRevisionName") != text("/latestReadyRevisionName");
    multiple || by_revision || not_ready
}

/// The images of a template's `containers[]` and `initContainers[]`.
fn template_images(template: Option<&Value>) -> Vec<String> {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|k| template?.get(*k)?.as_array())
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// Whether a revision may serve: active, or given traffic (an item that says neither is
/// taken as serving).
fn revision_serves(revision: &Value) -> bool {
    let active = revision
        .pointer("/properties/active")
        .and_then(Value::as_bool);
    let weight = revision
        .pointer("/properties/trafficWeight")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    active != Some(false) || weight > 0
}

/// Whether a job execution may still run (not `Succeeded`, `Failed` or `Stopped`).
fn execution_runs(execution: &Value) -> bool {
    let status = execution
        .pointer("/properties/status")
        .and_then(Value::as_str)
        .unwrap_or("");
    !["Succeeded", "Failed", "Stopped"]
        .iter()
        .any(|done| status.eq_ignore_ascii_case(done))
}

fn normalize_login_server(login_server: &str) -> String {
    let text = login_server.trim();
    let text = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .unwrap_or(text);
    text.trim_end_matches('/').to_ascii_lowercase()
}

/// The repository and reference of `image` when it is an image of `login_server`
/// (`host/repo:tag`, `host/repo@sha256:…`, `host/repo:tag@sha256:…` where the digest wins,
/// `DOCKER|host/repo:tag`, no tag meaning `latest`); `None` for another registry's image,
/// `Some(Err)` for a string naming this registry that is not an image reference.
pub fn parse_image(
    image: &str,
    login_server: &str,
) -> Option<Result<(String, ImageReference), String>> {
    let login_server = normalize_login_server(login_server);
    let mut text = image.trim();
    if text.len() > 7 && text[..7].eq_ignore_ascii_case("DOCKER|") {
        text = text[7..].trim();
    }
    let (host, rest) = text.split_once('/')?;
    if !host.eq_ignore_ascii_case(&login_server) {
        return None;
    }
    Some(parse_path(rest))
}

fn parse_path(rest: &str) -> Result<(String, ImageReference), String> {
    let (name_tag, digest) = match rest.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (rest, None),
    };
    let (repository, tag) = match name_tag.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (name_tag, None),
    };
    let repository_ok = !repository.is_empty()
        && repository.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        });
    if !repository_ok {
        return Err(format!("{repository:?} is not a repository name"));
    }
    if let Some(tag) = tag {
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !tag_ok {
            return Err(format!("{tag:?} is not a tag"));
        }
    }
    let reference = match digest {
        Some(digest) => {
            let ok = digest.split_once(':').is_some_and(|(algorithm, hex)| {
                !algorithm.is_empty()
                    && algorithm
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && hex.len() >= 32
                    && hex
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            });
            if !ok {
                return Err(format!("{digest:?} is not a digest"));
            }
            ImageReference::Digest(digest.to_string())
        }
        None => ImageReference::Tag(tag.unwrap_or("latest").to_string()),
    };
    Ok((repository.to_string(), reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LS: &str = "myreg.azurecr.io";
    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn ok(image: &str) -> (String, ImageReference) {
        parse_image(image, LS).unwrap().unwrap()
    }

    #[test]
    fn the_query_projects_exactly_the_members_the_readers_need() {
        let project = IN_USE_QUERY
            .split("| project ")
            .nth(1)
            .and_then(|rest| rest.split(" | ").next())
            .expect("a project clause");
        let mut expected = vec!["id".to_string(), "type".to_string()];
        expected.extend(
            PROJECTED
                .iter()
                .map(|(column, path)| format!("{column} = properties.{path}")),
        );
        assert_eq!(project.split(", ").collect::<Vec<_>>(), expected);
        assert!(
            !project.split(", ").any(|c| c == "properties"),
            "not whole properties"
        );
    }

    #[test]
    fn projected_columns_rebuild_the_properties_the_readers_read() {
        let row = |value: Value| value.as_object().cloned().unwrap_or_default();
        let app = projected_properties(&row(json!({
            "id": "/a", "type": "microsoft.app/containerapps",
            "appContainers": [{"image": "r/app:1"}], "appInitContainers": null,
            "revisionsMode": "Multiple", "traffic": [{"revisionName": "r1", "weight": 100}],
            "latestRevisionName": "r2", "latestReadyRevisionName": "r1",
            "fqdn": null
        })));
        assert_eq!(
            app,
            json!({
                "template": {"containers": [{"image": "r/app:1"}]},
                "configuration": {"activeRevisionsMode": "Multiple",
                    "ingress": {"traffic": [{"revisionName": "r1", "weight": 100}]}},
                "latestRevisionName": "r2", "latestReadyRevisionName": "r1"
            })
        );
        assert!(may_serve_older_revisions(&app));
        let site = projected_properties(&row(json!({
            "siteProperties": [{"name": "LinuxFxVersion", "value": "DOCKER|r/web:2"}],
            "linuxFxVersion": null
        })));
        assert_eq!(fx_values(&site), ["DOCKER|r/web:2"]);
        let cluster = projected_properties(&row(json!({
            "fqdn": "c.hcp.westeurope.azmk8s.io", "aadProfile": {"managed": true},
            "privateCluster": false
        })));
        assert_eq!(
            cluster.pointer("/apiServerAccessProfile/enablePrivateCluster"),
            Some(&json!(false))
        );
        assert_eq!(cluster["fqdn"], "c.hcp.westeurope.azmk8s.io");
        // A row with whole `properties` (another query's) is read as it is.
        let whole = projected_properties(&row(
            json!({"properties": {"containers": [{"properties": {"image": "r/x"}}]}}),
        ));
        assert_eq!(
            whole.pointer("/containers/0/properties/image"),
            Some(&json!("r/x"))
        );
    }

    #[test]
    fn tags_digests_and_defaults() {
        assert_eq!(
            ok("myreg.azurecr.io/app:v1"),
            ("app".into(), ImageReference::Tag("v1".into()))
        );
        assert_eq!(
            ok("MyReg.AzureCR.io/team/app"),
            ("team/app".into(), ImageReference::Tag("latest".into()))
        );
        assert_eq!(
            ok(&format!("myreg.azurecr.io/app@{D}")),
            ("app".into(), ImageReference::Digest(D.into()))
        );
        assert_eq!(
            ok(&format!("myreg.azurecr.io/team/app:v2@{D}")),
            ("team/app".into(), ImageReference::Digest(D.into())),
            "the digest wins over the tag"
        );
        assert_eq!(
            ok("DOCKER|myreg.azurecr.io/web:2024.1"),
            ("web".into(), ImageReference::Tag("2024.1".into()))
        );
        assert_eq!(
            ok("docker|myreg.azurecr.io/web"),
            ("web".into(), ImageReference::Tag("latest".into()))
        );
    }

    #[test]
    fn other_registries_are_not_ours() {
        for image in [
            "nginx:latest",
            "library/nginx",
            "docker.io/library/nginx:1",
            "other.azurecr.io/app:v1",
            "myreg.azurecr.io.evil.com/app:v1",
            "mcr.microsoft.com/azuredocs/aci-helloworld",
            "DOCKER|mcr.microsoft.com/appsvc/staticsite:latest",
        ] {
            assert!(parse_image(image, LS).is_none(), "{image}");
        }
        assert_eq!(
            parse_image("myreg.azurecr.io:5000/app:v1", "myreg.azurecr.io:5000")
                .map(Result::unwrap),
            Some(("app".into(), ImageReference::Tag("v1".into())))
        );
        assert!(parse_image("myreg.azurecr.io:5000/app:v1", LS).is_none());
        assert!(parse_image("myreg.azurecr.io/app:v1", "https://MYREG.azurecr.io/").is_some());
    }

    #[test]
    fn malformed_images_of_this_registry_are_errors() {
        for image in [
            "myreg.azurecr.io/",
            "myreg.azurecr.io/App:v1",
            "myreg.azurecr.io/app:",
            "myreg.azurecr.io/app:-x",
            "myreg.azurecr.io/app@sha256:short",
            "myreg.azurecr.io/app@nodigest",
            "myreg.azurecr.io//app",
        ] {
            assert!(matches!(parse_image(image, LS), Some(Err(_))), "{image}");
        }
    }

    #[test]
    fn image_strings_by_type() {
        let app = json!({"template": {"containers": [{"image": "a"}, {"name": "no-image"}], "initContainers": [{"image": "b"}]}});
        assert_eq!(
            image_strings("microsoft.app/containerapps", &app).unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            image_strings("microsoft.app/jobs", &app).unwrap(),
            ["a", "b"]
        );
        let aci = json!({"containers": [{"properties": {"image": "c"}}], "initContainers": [{"properties": {"image": "d"}}]});
        assert_eq!(
            image_strings("microsoft.containerinstance/containergroups", &aci).unwrap(),
            ["c", "d"]
        );
        assert_eq!(
            image_strings("microsoft.containerinstance/containergroupprofiles", &aci).unwrap(),
            ["c", "d"]
        );
        let pool = json!({"customContainerTemplate": {"containers": [{"image": "p"}, {"name": "no-image"}]}});
        assert_eq!(
            image_strings("microsoft.app/sessionpools", &pool).unwrap(),
            ["p"]
        );
        let site = json!({
            "siteConfig": {"linuxFxVersion": "DOCKER|e", "windowsFxVersion": null},
            "siteProperties": {"properties": [
                {"name": "LinuxFxVersion", "value": "DOCKER|f"},
                {"name": "WindowsFxVersion", "value": "NODE|18"},
                {"name": "Other", "value": "DOCKER|g"}
            ]}
        });
        assert_eq!(
            image_strings("microsoft.web/sites", &site).unwrap(),
            ["DOCKER|e", "DOCKER|f"]
        );
        assert!(
            image_strings("microsoft.storage/storageaccounts", &app)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn compose_files_name_every_image() {
        use base64::Engine;
        let compose = "services:\n  web:\n    image: \"myreg.azurecr.io/web:v1\" # main\n  side:\n    image: 'myreg.azurecr.io/side@sha256:00'\n  - image: nginx\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(compose);
        assert_eq!(
            compose_images(&encoded).unwrap(),
            [
                "myreg.azurecr.io/web:v1",
                "myreg.azurecr.io/side@sha256:00",
                "nginx"
            ]
        );
        let site = json!({"siteConfig": null, "siteProperties": {"properties": [
            {"name": "LinuxFxVersion", "value": format!("COMPOSE|{encoded}")}
        ]}});
        assert_eq!(
            image_strings("microsoft.web/sites", &site).unwrap().len(),
            3
        );
        let broken = json!({"siteProperties": {"properties": [
            {"name": "LinuxFxVersion", "value": "COMPOSE|not base64!"}
        ]}});
        assert!(image_strings("microsoft.web/sites/slots", &broken).is_err());
        let empty =
            base64::engine::general_purpose::STANDARD.encode("services:\n  a:\n    image:\n");
        assert!(compose_images(&empty).is_err(), "an image: without a value");
    }

    #[test]
    fn what_is_read_besides_the_row() {
        let site = |fx: &str| json!({"siteConfig": null, "siteProperties": {"properties": [{"name": "LinuxFxVersion", "value": fx}]}});
        assert_eq!(
            follow_ups("microsoft.web/sites", &site("sitecontainers")),
            [FollowUp::SiteContainers]
        );
        assert_eq!(
            follow_ups("microsoft.web/sites/slots", &site("SITECONTAINERS")),
            [FollowUp::SiteContainers]
        );
        assert!(follow_ups("microsoft.web/sites", &site("DOCKER|x/y:1")).is_empty());
        let single = json!({"latestRevisionName": "a--2", "latestReadyRevisionName": "a--2",
            "configuration": {"activeRevisionsMode": "Single", "ingress": {"traffic": [{"latestRevision": true, "weight": 100}]}}});
        assert!(follow_ups("microsoft.app/containerapps", &single).is_empty());
        let mut multiple = single.clone();
        multiple["configuration"]["activeRevisionsMode"] = json!("Multiple");
        let mut by_name = single.clone();
        by_name["configuration"]["ingress"]["traffic"] =
            json!([{"revisionName": "a--1", "weight": 100}]);
        let mut by_label = single.clone();
        by_label["configuration"]["ingress"]["traffic"] =
            json!([{"label": "blue", "latestRevision": true, "weight": 100}]);
        let mut failed = single.clone();
        failed["latestRevisionName"] = json!("a--3");
        for app in [multiple, by_name, by_label, failed] {
            assert_eq!(
                follow_ups("microsoft.app/containerapps", &app),
                [FollowUp::Revisions],
                "{app}"
            );
        }
        assert_eq!(
            follow_ups("microsoft.app/jobs", &json!({})),
            [FollowUp::Executions]
        );
        assert!(revision_serves(
            &json!({"properties": {"active": true, "trafficWeight": 0}})
        ));
        assert!(revision_serves(
            &json!({"properties": {"active": false, "trafficWeight": 10}})
        ));
        assert!(!revision_serves(&json!({"properties": {"active": false}})));
        assert!(
            revision_serves(&json!({"properties": {}})),
            "unknown counts as serving"
        );
        assert!(execution_runs(
            &json!({"properties": {"status": "Running"}})
        ));
        assert!(!execution_runs(
            &json!({"properties": {"status": "Succeeded"}})
        ));
    }

    #[test]
    fn a_spent_quota_waits_for_its_reset() {
        use reqwest::header::{HeaderMap, HeaderValue};
        let headers = |remaining: &'static str, resets: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(
                "x-ms-user-quota-remaining",
                HeaderValue::from_static(remaining),
            );
            h.insert(
                "x-ms-user-quota-resets-after",
                HeaderValue::from_static(resets),
            );
            h
        };
        assert_eq!(quota_wait(&headers("14", "00:00:05")), None);
        assert_eq!(
            quota_wait(&headers("0", "00:00:05")),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            quota_wait(&headers("0", "01:00:00")),
            Some(Duration::from_secs(60)),
            "capped"
        );
        assert_eq!(
            quota_wait(&headers("0", "soon")),
            Some(Duration::from_secs(1))
        );
        assert_eq!(quota_wait(&HeaderMap::new()), None);
        assert_eq!(hms_seconds("00:01:30"), Some(90));
    }

    #[test]
    fn both_result_formats_read() {
        let objects = json!([{"id": "x", "type": "t", "properties": {}}]);
        let table = json!({"columns": [{"name": "id", "type": "string"}, {"name": "type", "type": "string"}, {"name": "properties", "type": "object"}], "rows": [["x", "t", {}]]});
        assert_eq!(data_rows(&objects).unwrap(), data_rows(&table).unwrap());
        assert!(data_rows(&json!({"columns": [{"name": "id"}], "rows": [["a", "b"]]})).is_err());
        assert!(data_rows(&json!("x")).is_err());
    }
}
