//! An Azure Resource Graph emulator: `POST /providers/Microsoft.ResourceGraph/resources`
//! (api-version 2021-03-01, 2022-10-01 or 2024-04-01) over real HTTP.
//!
//! Request (as documented): `{"subscriptions":[…], "managementGroups":[…], "query": "…",
//! "options": {"$top", "$skip", "$skipToken", "resultFormat": "objectArray"|"table"}}`.
//! Response: `{"totalRecords", "count", "resultTruncated": "true"|"false", "$skipToken"?,
//! "facets": [], "data"}`, `data` an array of objects (the default, `objectArray`) or
//! `{"columns":[{"name","type"}],"rows":[[…]]}` (`table`). Errors are Azure's
//! `{"error":{"code","message"}}`.
//!
//! What it evaluates: the KQL subset of the crate's `kql` module (`where`, `project`,
//! `order by`; no `summarize`) over the table `Resources` (any case), whose columns are
//! `id`, `name`, `type` (lowercased, as Resource Graph reports it), `kind`, `location`,
//! `resourceGroup`, `subscriptionId`, `tags` and `properties`. Anything else answers 400
//! `BadRequest` with a message saying what it did not understand.
//!
//! Tables: `Resources`, `ResourceContainers` (the tenant's subscriptions, type
//! `microsoft.resources/subscriptions`, and their resource groups,
//! `microsoft.resources/subscriptions/resourcegroups`) and `securityresources` (Microsoft
//! Defender for Cloud's sub-assessments, type `microsoft.security/assessments/subassessments`,
//! [`SubAssessment`]), with the same columns.
//!
//! Scopes: `subscriptions` restricts to those subscriptions; `managementGroups` to the
//! subscriptions configured for those groups ([`ResourceGraphEmulator::set_management_group`];
//! an unknown group answers 400); both are a union; neither is the whole tenant (every
//! resource held). The tenant's subscriptions are those added
//! ([`ResourceGraphEmulator::add_subscription`]), those holding a resource and those of a
//! management group.
//!
//! Access, as the service behaves: a subscription the caller cannot read
//! ([`ResourceGraphEmulator::set_unreadable`]) or that does not exist is **silently left
//! out** of the answer, which is still a 200 ("Resource Graph ... returns only the
//! resources the caller has at least read access to; without read permission results
//! aren't returned", Azure Resource Graph overview, "Permissions in Azure Resource Graph",
//! learn.microsoft.com/azure/governance/resource-graph/overview#permissions-in-azure-resource-graph);
//! only when **none** of the given subscriptions is readable does it answer 403
//! `AccessDenied` ("Access is denied to the requested resource. The user might not have
//! enough permission.", the response recorded in Azure/azure-sdk-for-java#29924). More
//! than 1,000 subscriptions in one request answer 400 ("The REST API for Azure Resource
//! Graph accepts a maximum number of subscriptions ... batch requests ... within the
//! 1,000 subscription limit", Troubleshoot errors using Azure Resource Graph, "Too many
//! subscriptions", learn.microsoft.com/azure/governance/resource-graph/troubleshoot/general).
//!
//! Paging: pages hold `$top` rows, 100 without it (the service's default; `$top` goes up to
//! 1000: "Working with large Azure resource data sets",
//! learn.microsoft.com/azure/governance/resource-graph/concepts/work-with-data), and never
//! more than the page size set ([`ResourceGraphEmulator::set_page_size`], default 1000).
//! When more rows follow, the answer carries a `$skipToken`
//! (opaque, bound to the query and the scopes: a token sent with another query or scope
//! answers 400). Every answer carries `x-ms-user-quota-remaining` and
//! `x-ms-user-quota-resets-after` (`hh:mm:ss`).
//!
//! User quota ([`ResourceGraphEmulator::set_user_quota`]): as "Guidance for throttled
//! requests in Azure Resource Graph"
//! (learn.microsoft.com/azure/governance/resource-graph/concepts/guidance-for-throttled-requests)
//! describes it, each user has a quota of queries per time window (by default 15 per 5
//! seconds); every answer says how many remain (`x-ms-user-quota-remaining`) and when the
//! window resets (`x-ms-user-quota-resets-after`, here rounded up to whole seconds), and a
//! query beyond the quota answers 429 until the reset. Without it set, every answer says 14
//! remain and the quota resets after 5 seconds, and nothing is throttled.
//!
//! Faults ([`GraphFault`]): `resultTruncated: "true"` without a token, a failing page, and
//! throttling (429 with `Retry-After` and the quota headers at 0), and an oversized answer
//! (`oversize`).

use super::oversize::Oversize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use crate::arm::ArmEmulator;
use crate::kql;
use crate::serve::{RunningServer, azure_error, check_bearer, serve};

/// The API versions the emulator answers.
pub const RESOURCE_GRAPH_API_VERSIONS: &[&str] = &["2021-03-01", "2022-10-01", "2024-04-01"];

/// A resource the emulator holds (one row of the `Resources` table).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphResource {
    /// The resource id, `/subscriptions/…/resourceGroups/…/providers/…`.
    pub id: String,
    /// The resource type, e.g. `Microsoft.App/containerApps` (served lowercased).
    pub resource_type: String,
    /// The resource name.
    pub name: String,
    /// The subscription id.
    pub subscription_id: String,
    /// The resource group.
    pub resource_group: String,
    /// The location.
    pub location: String,
    /// The `properties` object, as Resource Graph serves it.
    pub properties: Value,
}

impl GraphResource {
    /// A resource of `resource_type` named `name` in `subscription_id`/`resource_group`,
    /// with its id built as Azure builds it.
    pub fn new(
        subscription_id: &str,
        resource_group: &str,
        resource_type: &str,
        name: &str,
        properties: Value,
    ) -> GraphResource {
        GraphResource {
            id: format!(
                "/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/{resource_type}/{name}"
            ),
            resource_type: resource_type.to_string(),
            name: name.to_string(),
            subscription_id: subscription_id.to_string(),
            resource_group: resource_group.to_string(),
            location: "westeurope".to_string(),
            properties,
        }
    }
}

impl GraphResource {
    /// An AKS cluster (`Microsoft.ContainerService/managedClusters`) whose API server is
    /// at `fqdn` (a [`crate::RunningKubernetes::fqdn`]), integrated with Microsoft Entra ID
    /// and Azure RBAC, as Resource Graph holds a cluster's `properties` (the "Managed
    /// Clusters - Get" shape, learn.microsoft.com/rest/api/aks/managed-clusters/get:
    /// `fqdn`, `aadProfile`, `apiServerAccessProfile`, `disableLocalAccounts`).
    pub fn managed_cluster(
        subscription_id: &str,
        resource_group: &str,
        name: &str,
        fqdn: &str,
    ) -> GraphResource {
        GraphResource::new(
            subscription_id,
            resource_group,
            "Microsoft.ContainerService/managedClusters",
            name,
            json!({
                "provisioningState": "Succeeded",
                "powerState": {"code": "Running"},
                "kubernetesVersion": "1.31.2",
                "fqdn": fqdn,
                "aadProfile": {"managed": true, "enableAzureRBAC": true},
                "apiServerAccessProfile": {"enablePrivateCluster": false},
                "disableLocalAccounts": true
            }),
        )
    }
}

/// The assessment key of Defender's registry-image vulnerability sub-assessments powered by
/// Microsoft Defender Vulnerability Management ("Container vulnerability assessments REST
/// API", learn.microsoft.com/azure/defender-for-cloud/subassessment-rest-api).
pub const ACR_ASSESSMENT_KEY: &str = "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5";

/// The newer assessment key of the recommendation "[Preview] Container images in Azure
/// registry should have vulnerability findings resolved" (Defender for Cloud's "Container
/// recommendations" reference, learn.microsoft.com/azure/defender-for-cloud/
/// recommendations-reference-container); its rows are served in the same shape.
pub const ACR_ASSESSMENT_KEY_NEW: &str = "33422d8f-ab1e-42be-bc9a-38685bb567b9";

/// One row of the `securityresources` table: a vulnerability sub-assessment of a registry
/// image, in the shape of the documented query result ("Container vulnerability assessments
/// REST API", learn.microsoft.com/azure/defender-for-cloud/subassessment-rest-api, "Query
/// Result": `id` under the registry's `…/providers/Microsoft.Security/assessments/{key}/subassessments/{id}`,
/// `properties.id` the CVE, `properties.status.{code,severity}`,
/// `properties.additionalData.{assessedResourceType, vulnerabilityDetails.{severity,cveId},
/// artifactDetails.{registryHost, repositoryName, digest, tags}}`).
#[derive(Debug, Clone, PartialEq)]
pub struct SubAssessment {
    /// The sub-assessment's id.
    pub id: String,
    /// The subscription holding the registry.
    pub subscription_id: String,
    /// The registry's resource group.
    pub resource_group: String,
    /// `properties`, as served.
    pub properties: Value,
}

impl SubAssessment {
    /// A finding `cve` of `severity` (`Low`, `Medium`, `High`, `Critical`) with status
    /// `code` (`Unhealthy`; `Healthy` or `NotApplicable` when it no longer applies) on the
    /// image `digest` of `repository`, which carries `tags`, in the registry `registry`
    /// (`{name}.azurecr.io`) of `subscription_id`/`resource_group`, under `assessment_key`.
    #[allow(clippy::too_many_arguments)]
    pub fn registry_finding(
        subscription_id: &str,
        resource_group: &str,
        registry: &str,
        assessment_key: &str,
        repository: &str,
        digest: &str,
        tags: &[&str],
        cve: &str,
        severity: &str,
        code: &str,
    ) -> SubAssessment {
        let name = registry.split('.').next().unwrap_or(registry);
        let hex = digest.trim_start_matches("sha256:");
        let short = &hex[..hex.len().min(12)];
        let sub_id = format!("{}-{short}-{}", cve.to_lowercase(), tags.len());
        SubAssessment {
            id: format!(
                "/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.ContainerRegistry/registries/{name}/providers/Microsoft.Security/assessments/{assessment_key}/subassessments/{sub_id}"
            ),
            subscription_id: subscription_id.to_string(),
            resource_group: resource_group.to_string(),
            properties: json!({
                "id": cve,
                "displayName": cve,
                "additionalData": {
                    "assessedResourceType": "AzureContainerRegistryVulnerability",
                    "vulnerabilityDetails": {"severity": severity, "cveId": cve},
                    "artifactDetails": {
                        "registryHost": registry,
                        "repositoryName": repository,
                        "artifactType": "ContainerImage",
                        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                        "digest": digest,
                        "tags": tags,
                    },
                    "softwareDetails": {"fixStatus": "FixAvailable"}
                },
                "resourceDetails": {
                    "id": format!("/repositories/{repository}/images/{digest}"),
                    "source": "Azure"
                },
                "timeGenerated": "2024-05-01T00:00:00Z",
                "status": {"code": code, "severity": severity}
            }),
        }
    }
}

/// A fault the emulator injects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphFault {
    /// Every answer says `resultTruncated: "true"` and carries no `$skipToken` (what Azure
    /// answers when it cannot page, e.g. for a query with `limit`).
    Truncate,
    /// The `page`-th page (1 = the first) of any query answers `status` with an Azure error
    /// body, every time it is asked for.
    FailPage {
        /// The page, from 1.
        page: usize,
        /// The HTTP status (e.g. 500, 503, 429).
        status: u16,
    },
    /// The next `count` requests answer 429 `RateLimiting` with `Retry-After` and the quota
    /// headers at 0.
    Throttle {
        /// How many requests are throttled.
        count: usize,
        /// The `Retry-After` value, in seconds.
        retry_after_seconds: u64,
    },
    /// Every successful answer is padded to at least this size (see `oversize`).
    Oversized(Oversize),
    /// Every successful answer carries `x-ms-tenant-subscription-limit-hit: true`: the
    /// service queried only part of the scope's subscriptions ("Working with large Azure
    /// resource data sets", learn.microsoft.com/azure/governance/resource-graph/concepts/work-with-data).
    SubscriptionLimitHit,
    /// A page of more than `rows` rows answers 400 `ResponsePayloadTooLarge` (the service's
    /// answer to a page over its payload limit, as issue 22 records it; the remedy is a
    /// smaller `$top`).
    PayloadCap {
        /// The most rows a page may hold.
        rows: usize,
    },
}

/// The most subscriptions one request may name (see the module documentation).
pub const MAX_SUBSCRIPTIONS_PER_REQUEST: usize = 1000;

/// A request the emulator received.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphRequest {
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
    /// The `api-version` query parameter.
    pub api_version: Option<String>,
    /// The JSON body (`Null` when it was not JSON).
    pub body: Value,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug)]
struct State0 {
    resources: Vec<GraphResource>,
    security: Vec<SubAssessment>,
    management_groups: Vec<(String, Vec<String>)>,
    subscriptions: Vec<String>,
    unreadable: Vec<String>,
    expected_token: Option<String>,
    page_size: usize,
    faults: Vec<GraphFault>,
    requests: Vec<GraphRequest>,
    quota: Option<UserQuota>,
}

/// The caller's query quota: `limit` queries per `window`, counted from the window's first
/// query.
#[derive(Debug)]
struct UserQuota {
    limit: u32,
    window: std::time::Duration,
    started: Option<std::time::Instant>,
    used: u32,
}

impl UserQuota {
    /// Counts one query: `Ok((remaining, resets after))`, or `Err(resets after)` when the
    /// quota is spent (the query is refused).
    fn take(&mut self) -> Result<(u32, std::time::Duration), std::time::Duration> {
        let now = std::time::Instant::now();
        let started = match self.started {
            Some(at) if now.duration_since(at) < self.window => at,
            _ => {
                self.used = 0;
                self.started = Some(now);
                now
            }
        };
        let resets = self.window.saturating_sub(now.duration_since(started));
        if self.used >= self.limit {
            return Err(resets);
        }
        self.used += 1;
        Ok((self.limit - self.used, resets))
    }
}

/// A Resource Graph emulator; cheap to clone (clones share the state). It serves ARM's
/// endpoint, so it also answers ARM's collection reads with its [`ArmEmulator`]
/// ([`ResourceGraphEmulator::arm`]).
#[derive(Debug, Clone)]
pub struct ResourceGraphEmulator {
    state: Arc<Mutex<State0>>,
    arm: ArmEmulator,
}

impl Default for ResourceGraphEmulator {
    fn default() -> Self {
        ResourceGraphEmulator::new()
    }
}

impl ResourceGraphEmulator {
    /// An empty emulator: no resources, pages of 100 rows unless `$top` says otherwise, any bearer token accepted.
    pub fn new() -> ResourceGraphEmulator {
        ResourceGraphEmulator {
            state: Arc::new(Mutex::new(State0 {
                resources: Vec::new(),
                security: Vec::new(),
                management_groups: Vec::new(),
                subscriptions: Vec::new(),
                unreadable: Vec::new(),
                expected_token: None,
                page_size: 1000,
                faults: Vec::new(),
                requests: Vec::new(),
                quota: None,
            })),
            arm: ArmEmulator::new(),
        }
    }

    /// The ARM emulator answering on the same endpoint (every path but Resource Graph's).
    pub fn arm(&self) -> &ArmEmulator {
        &self.arm
    }

    fn lock(&self) -> MutexGuard<'_, State0> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Requires `Authorization: Bearer <token>` with exactly this token (`None`: any
    /// non-empty bearer token); other requests answer 401. ARM's reads too.
    pub fn set_expected_token(&self, token: Option<&str>) {
        self.lock().expected_token = token.map(str::to_string);
        self.arm.set_expected_token(token);
    }

    /// Adds a resource (ARM knows it too: its child collections exist).
    pub fn add(&self, resource: GraphResource) {
        self.arm.add_resource(&resource.id);
        self.lock().resources.push(resource);
    }

    /// Adds a row to the `securityresources` table (its subscription joins the tenant).
    pub fn add_sub_assessment(&self, row: SubAssessment) {
        self.lock().security.push(row);
    }

    /// Every row of the `securityresources` table.
    pub fn sub_assessments(&self) -> Vec<SubAssessment> {
        self.lock().security.clone()
    }

    /// Adds a subscription to the tenant (one holding a resource is there already).
    pub fn add_subscription(&self, id: &str) {
        self.lock().subscriptions.push(id.to_string());
    }

    /// Makes these subscriptions unreadable by the caller: left out of every answer, or
    /// 403 when a request names no readable one.
    pub fn set_unreadable(&self, subscriptions: &[&str]) {
        self.lock().unreadable = subscriptions.iter().map(|s| s.to_string()).collect();
    }

    /// Declares management group `name` as holding these subscriptions.
    pub fn set_management_group(&self, name: &str, subscriptions: &[&str]) {
        let mut state = self.lock();
        state.management_groups.retain(|(n, _)| n != name);
        state.management_groups.push((
            name.to_string(),
            subscriptions.iter().map(|s| s.to_string()).collect(),
        ));
    }

    /// Gives the caller a quota of `queries` per `window` (see the module documentation):
    /// answers count down `x-ms-user-quota-remaining`, and a query beyond it answers 429.
    pub fn set_user_quota(&self, queries: u32, window: std::time::Duration) {
        self.lock().quota = Some(UserQuota {
            limit: queries,
            window,
            started: None,
            used: 0,
        });
    }

    /// Sets the largest page the emulator answers (1 to 1000).
    pub fn set_page_size(&self, rows: usize) {
        self.lock().page_size = rows.clamp(1, 1000);
    }

    /// Adds a fault.
    pub fn inject(&self, fault: GraphFault) {
        self.lock().faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<GraphRequest> {
        self.lock().requests.clone()
    }

    /// The axum router serving the API.
    pub fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    /// Serves on `127.0.0.1` with an ephemeral port.
    pub async fn start(&self) -> anyhow::Result<RunningServer> {
        serve(self.router(), "Resource Graph").await
    }
}

fn bad_request(message: impl Into<String>) -> Box<Response> {
    Box::new(azure_error(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &message.into(),
        Value::Null,
    ))
}

fn quota_headers(response: &mut Response, remaining: u32) {
    quota_headers_resetting(response, remaining, std::time::Duration::from_secs(5));
}

/// The quota headers: `remaining` queries, reset after `resets` (rounded up to seconds, so a
/// client waiting that long finds the quota reset).
fn quota_headers_resetting(response: &mut Response, remaining: u32, resets: std::time::Duration) {
    let seconds = resets.as_secs() + u64::from(resets.subsec_nanos() > 0);
    let headers = response.headers_mut();
    headers.insert("x-ms-user-quota-remaining", HeaderValue::from(remaining));
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )) {
        headers.insert("x-ms-user-quota-resets-after", value);
    }
}

async fn handle(
    State(emulator): State<ResourceGraphEmulator>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !uri
        .path()
        .trim_end_matches('/')
        .eq_ignore_ascii_case("/providers/Microsoft.ResourceGraph/resources")
    {
        return emulator
            .arm
            .answer(&method, uri.path(), uri.query(), &headers);
    }
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let api_version = uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "api-version")
            .map(|(_, v)| v.into_owned())
    });
    let response = answer(
        &emulator,
        &method,
        uri.path(),
        &headers,
        &json_body,
        api_version.as_deref(),
    );
    let oversized = emulator.lock().faults.iter().find_map(|f| match f {
        GraphFault::Oversized(o) => Some(*o),
        _ => None,
    });
    let response = match oversized {
        Some(oversize) => super::oversize::pad(response, oversize).await,
        None => response,
    };
    emulator.lock().requests.push(GraphRequest {
        authorization: headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        api_version,
        body: json_body,
        status: response.status().as_u16(),
    });
    response
}

fn answer(
    emulator: &ResourceGraphEmulator,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Value,
    api_version: Option<&str>,
) -> Response {
    if !path
        .trim_end_matches('/')
        .eq_ignore_ascii_case("/providers/Microsoft.ResourceGraph/resources")
    {
        return azure_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "the emulator serves only POST /providers/Microsoft.ResourceGraph/resources, not {path}"
            ),
            Value::Null,
        );
    }
    if method != Method::POST {
        return azure_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{method} is not allowed; POST a query"),
            Value::Null,
        );
    }
    let expected = emulator.lock().expected_token.clone();
    if let Some(denied) = check_bearer(headers, expected.as_deref()) {
        return denied;
    }
    match api_version {
        None => {
            return azure_error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
                Value::Null,
            );
        }
        Some(v) if !RESOURCE_GRAPH_API_VERSIONS.contains(&v) => {
            return azure_error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                &format!(
                    "The api-version '{v}' is invalid. The supported versions are '{}'.",
                    RESOURCE_GRAPH_API_VERSIONS.join(",")
                ),
                Value::Null,
            );
        }
        Some(_) => {}
    }
    let quota = {
        let mut state = emulator.lock();
        match state.quota.as_mut().map(UserQuota::take) {
            Some(Err(resets)) => {
                let mut response = azure_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "RateLimiting",
                    "Please provide below info when asking for support: the user quota of queries is spent.",
                    Value::Null,
                );
                quota_headers_resetting(&mut response, 0, resets);
                let seconds = resets.as_secs() + u64::from(resets.subsec_nanos() > 0);
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(seconds));
                return response;
            }
            Some(Ok(left)) => Some(left),
            None => None,
        }
    };
    {
        let mut state = emulator.lock();
        if let Some(at) = state
            .faults
            .iter()
            .position(|f| matches!(f, GraphFault::Throttle { count, .. } if *count > 0))
        {
            let mut retry = 0;
            if let GraphFault::Throttle {
                count,
                retry_after_seconds,
            } = &mut state.faults[at]
            {
                *count -= 1;
                retry = *retry_after_seconds;
            }
            let mut response = azure_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RateLimiting",
                "Please provide below info when asking for support: the request was throttled.",
                Value::Null,
            );
            quota_headers(&mut response, 0);
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(retry));
            return response;
        }
    }
    match query(emulator, body) {
        Ok(mut response) => {
            match quota {
                Some((remaining, resets)) => {
                    quota_headers_resetting(&mut response, remaining, resets)
                }
                None => quota_headers(&mut response, 14),
            }
            if emulator
                .lock()
                .faults
                .contains(&GraphFault::SubscriptionLimitHit)
            {
                response.headers_mut().insert(
                    "x-ms-tenant-subscription-limit-hit",
                    HeaderValue::from_static("true"),
                );
            }
            response
        }
        Err(response) => *response,
    }
}

fn strings(body: &Value, field: &str) -> Result<Option<Vec<String>>, Box<Response>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad_request(format!("`{field}` must be an array of strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad_request(format!(
            "`{field}` must be an array of strings"
        ))),
    }
}

fn query(emulator: &ResourceGraphEmulator, body: &Value) -> Result<Response, Box<Response>> {
    let Some(text) = body.get("query").and_then(Value::as_str) else {
        return Err(bad_request(
            "the body must be a JSON object with a `query` string",
        ));
    };
    let subscriptions = strings(body, "subscriptions")?;
    let groups = strings(body, "managementGroups")?;
    let options = body.get("options").cloned().unwrap_or(Value::Null);
    let format = match options.get("resultFormat").and_then(Value::as_str) {
        None | Some("objectArray") => "objectArray",
        Some("table") => "table",
        Some(other) => {
            return Err(bad_request(format!(
                "resultFormat `{other}` is not one of table, objectArray"
            )));
        }
    };
    if let Some(subs) = &subscriptions
        && subs.len() > MAX_SUBSCRIPTIONS_PER_REQUEST
    {
        return Err(bad_request(format!(
            "{} subscriptions were given; a request may name at most {MAX_SUBSCRIPTIONS_PER_REQUEST} (batch them)",
            subs.len()
        )));
    }
    let parsed = kql::parse(text).map_err(|e| bad_request(format!("query not understood: {e}")))?;
    let (containers, security) = if parsed.table.eq_ignore_ascii_case("resources") {
        (false, false)
    } else if parsed.table.eq_ignore_ascii_case("resourcecontainers") {
        (true, false)
    } else if parsed.table.eq_ignore_ascii_case("securityresources") {
        (false, true)
    } else {
        return Err(bad_request(format!(
            "the emulator holds only the `Resources`, `ResourceContainers` and `securityresources` tables, not `{}`",
            parsed.table
        )));
    };
    let state = emulator.lock();
    // The subscriptions asked for (None: the whole tenant).
    let mut scope: Option<Vec<String>> = subscriptions.clone();
    if let Some(groups) = &groups {
        let mut subs = scope.take().unwrap_or_default();
        for group in groups {
            match state.management_groups.iter().find(|(n, _)| n == group) {
                Some((_, members)) => subs.extend(members.iter().cloned()),
                None => {
                    return Err(bad_request(format!(
                        "management group `{group}` was not found (the emulator knows {:?})",
                        state
                            .management_groups
                            .iter()
                            .map(|(n, _)| n)
                            .collect::<Vec<_>>()
                    )));
                }
            }
        }
        scope = Some(subs);
    }
    // The tenant's subscriptions the caller can read; the others are left out silently.
    let mut readable: Vec<String> = Vec::new();
    let tenant = state
        .subscriptions
        .iter()
        .chain(state.resources.iter().map(|r| &r.subscription_id))
        .chain(state.security.iter().map(|r| &r.subscription_id))
        .chain(state.management_groups.iter().flat_map(|(_, m)| m.iter()));
    for sub in tenant {
        let denied = state.unreadable.iter().any(|u| u.eq_ignore_ascii_case(sub));
        if !denied && !readable.iter().any(|r| r.eq_ignore_ascii_case(sub)) {
            readable.push(sub.clone());
        }
    }
    let in_scope: Vec<String> = match &scope {
        None => readable,
        Some(asked) => {
            let visible: Vec<String> = readable
                .into_iter()
                .filter(|r| asked.iter().any(|a| a.eq_ignore_ascii_case(r)))
                .collect();
            if visible.is_empty() && !asked.is_empty() {
                return Err(Box::new(azure_error(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "Please provide below info when asking for support: the caller cannot read any of the subscriptions.",
                    json!({"details": [{"code": "AccessDenied", "message": "Access is denied to the requested resource. The user might not have enough permission."}]}),
                )));
            }
            visible
        }
    };
    let visible = |sub: &str| in_scope.iter().any(|s| s.eq_ignore_ascii_case(sub));
    let columns: Vec<(String, &'static str)> = [
        ("id", "string"),
        ("name", "string"),
        ("type", "string"),
        ("kind", "string"),
        ("location", "string"),
        ("resourceGroup", "string"),
        ("subscriptionId", "string"),
        ("tags", "object"),
        ("properties", "object"),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect();
    let rows: Vec<Vec<Value>> = if security {
        state
            .security
            .iter()
            .filter(|r| visible(&r.subscription_id))
            .map(|r| {
                vec![
                    json!(r.id),
                    json!(r.id.rsplit('/').next().unwrap_or_default()),
                    json!("microsoft.security/assessments/subassessments"),
                    json!(""),
                    json!("global"),
                    json!(r.resource_group.to_lowercase()),
                    json!(r.subscription_id),
                    Value::Null,
                    r.properties.clone(),
                ]
            })
            .collect()
    } else if containers {
        let mut rows = Vec::new();
        for sub in &in_scope {
            rows.push(vec![
                json!(format!("/subscriptions/{sub}")),
                json!(sub),
                json!("microsoft.resources/subscriptions"),
                json!(""),
                json!(""),
                json!(""),
                json!(sub),
                json!({}),
                json!({"state": "Enabled"}),
            ]);
            let mut groups: Vec<String> = state
                .resources
                .iter()
                .filter(|r| r.subscription_id.eq_ignore_ascii_case(sub))
                .map(|r| r.resource_group.to_lowercase())
                .collect();
            groups.sort();
            groups.dedup();
            for group in groups {
                rows.push(vec![
                    json!(format!("/subscriptions/{sub}/resourceGroups/{group}")),
                    json!(group),
                    json!("microsoft.resources/subscriptions/resourcegroups"),
                    json!(""),
                    json!("westeurope"),
                    json!(group),
                    json!(sub),
                    json!({}),
                    json!({"provisioningState": "Succeeded"}),
                ]);
            }
        }
        rows
    } else {
        state
            .resources
            .iter()
            .filter(|r| visible(&r.subscription_id))
            .map(|r| {
                vec![
                    json!(r.id),
                    json!(r.name),
                    json!(r.resource_type.to_lowercase()),
                    json!(""),
                    json!(r.location),
                    json!(r.resource_group.to_lowercase()),
                    json!(r.subscription_id),
                    json!({}),
                    r.properties.clone(),
                ]
            })
            .collect()
    };
    let table = kql::evaluate(&parsed, kql::Table { columns, rows }, false)
        .map_err(|e| bad_request(format!("query not understood: {e}")))?;

    // Paging.
    let context =
        json!({ "query": text, "subscriptions": subscriptions, "managementGroups": groups });
    let total = table.rows.len();
    let top = match options.get("$top") {
        None | Some(Value::Null) => 100,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=1000) => n as usize,
            _ => return Err(bad_request("`$top` must be an integer from 1 to 1000")),
        },
    };
    let page_size = top.min(state.page_size);
    let offset = match options.get("$skipToken").and_then(Value::as_str) {
        Some(token) => decode_token(token, &context)?,
        None => match options.get("$skip") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| bad_request("`$skip` must be a non-negative integer"))?,
        },
    };
    let page = offset / page_size + 1;
    if let Some(status) = state.faults.iter().find_map(|f| match f {
        GraphFault::FailPage { page: p, status } if *p == page => Some(*status),
        _ => None,
    }) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Err(Box::new(azure_error(
            status,
            "ServiceError",
            &format!("page {page} failed (injected fault)"),
            Value::Null,
        )));
    }
    let truncated = state.faults.contains(&GraphFault::Truncate);
    let end = (offset + page_size).min(total);
    let rows: Vec<Vec<Value>> = table.rows.get(offset..end).unwrap_or_default().to_vec();
    if let Some(cap) = state.faults.iter().find_map(|f| match f {
        GraphFault::PayloadCap { rows } => Some(*rows),
        _ => None,
    }) && rows.len() > cap
    {
        return Err(Box::new(azure_error(
            StatusCode::BAD_REQUEST,
            "ResponsePayloadTooLarge",
            &format!(
                "Response payload size is {} rows, and has exceeded the limit. Please consider querying less data at a time and make paginated call if needed.",
                rows.len()
            ),
            Value::Null,
        )));
    }
    let data = if format == "table" {
        json!({
            "columns": table.columns.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
            "rows": rows,
        })
    } else {
        Value::Array(
            rows.iter()
                .map(|row| {
                    Value::Object(
                        table
                            .columns
                            .iter()
                            .zip(row)
                            .map(|((n, _), v)| (n.clone(), v.clone()))
                            .collect(),
                    )
                })
                .collect(),
        )
    };
    let mut answer = json!({
        "totalRecords": total,
        "count": rows.len(),
        "resultTruncated": if truncated { "true" } else { "false" },
        "facets": [],
        "data": data,
    });
    if end < total && !truncated {
        answer["$skipToken"] = json!(encode_token(end, &context));
    }
    Ok((StatusCode::OK, axum::Json(answer)).into_response())
}

fn encode_token(offset: usize, context: &Value) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(json!({ "offset": offset, "context": context }).to_string())
}

fn decode_token(token: &str, context: &Value) -> Result<usize, Box<Response>> {
    let invalid = || bad_request("the $skipToken is invalid for this query and these scopes");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if value.get("context") != Some(context) {
        return Err(invalid());
    }
    value
        .get("offset")
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .ok_or_else(invalid)
}
