//! An Azure Resource Manager emulator for the child collections Resource Graph does not
//! hold, over real HTTP: `GET {resource id}/{child}?api-version=…` answering
//! `{"value": [...], "nextLink"?}`.
//!
//! The collections and their item shapes, as documented:
//! - `Microsoft.Web/sites/{site}/sitecontainers` and `…/sites/{site}/slots/{slot}/sitecontainers`
//!   ("Web Apps - List Site Containers" and "- List Site Containers Slot", REST reference
//!   learn.microsoft.com/rest/api/appservice/web-apps/list-site-containers; item
//!   `{"id", "name", "type": "Microsoft.Web/sites/sitecontainers", "properties": {"image",
//!   "targetPort", "isMain", …}}`, example `ListSiteContainers.json` of
//!   azure-rest-api-specs `specification/web/resource-manager/Microsoft.Web/stable/2024-04-01`);
//! - `Microsoft.App/containerApps/{app}/revisions` ("Container Apps Revisions - List
//!   Revisions", learn.microsoft.com/rest/api/containerapps/container-apps-revisions/list-revisions;
//!   item `properties`: `active`, `trafficWeight`, `template.containers[].image`, …,
//!   example `Revisions_List.json`);
//! - `Microsoft.App/jobs/{job}/executions` ("Jobs Executions - List",
//!   learn.microsoft.com/rest/api/containerapps/jobs-executions/list; item `properties`:
//!   `status` (`Running`, `Processing`, `Stopped`, `Degraded`, `Failed`, `Unknown`,
//!   `Succeeded`), `template.containers[].image`, example `Job_List_Executions.json`).
//!
//! Paging as ARM pages collections: a page of at most [`ArmEmulator::set_page_size`] items
//! and an absolute `nextLink` while more follow (Azure/azure-resource-manager-rpc,
//! `v1.0/resource-api-reference.md`, "Get Resource" of a collection). A
//! collection of a resource the emulator does not know answers 404 `ResourceNotFound`
//! (same contract, common error codes); a missing `api-version` 400
//! `MissingApiVersionParameter`; a wrong bearer token 401.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::serve::{RunningServer, azure_error, check_bearer, serve};

/// A request the emulator received.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmRequest {
    /// The path, as sent.
    pub path: String,
    /// The `api-version` query parameter.
    pub api_version: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug)]
struct ArmState {
    /// Lowercased collection path → items.
    collections: Vec<(String, Vec<Value>)>,
    /// Lowercased resource ids whose collections exist (empty when nothing was added).
    resources: Vec<String>,
    /// Lowercased collection path → status answered instead.
    failing: Vec<(String, u16)>,
    expected_token: Option<String>,
    page_size: usize,
    requests: Vec<ArmRequest>,
}

/// An ARM emulator of child collections; cheap to clone (clones share the state).
#[derive(Debug, Clone)]
pub struct ArmEmulator {
    state: Arc<Mutex<ArmState>>,
}

impl Default for ArmEmulator {
    fn default() -> Self {
        ArmEmulator::new()
    }
}

impl ArmEmulator {
    /// An empty emulator: page size 50, any bearer token accepted.
    pub fn new() -> ArmEmulator {
        ArmEmulator {
            state: Arc::new(Mutex::new(ArmState {
                collections: Vec::new(),
                resources: Vec::new(),
                failing: Vec::new(),
                expected_token: None,
                page_size: 50,
                requests: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ArmState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Requires this bearer token (`None`: any non-empty one).
    pub fn set_expected_token(&self, token: Option<&str>) {
        self.lock().expected_token = token.map(str::to_string);
    }

    /// Declares a resource: its child collections exist (empty until items are added).
    pub fn add_resource(&self, resource_id: &str) {
        let id = resource_id.trim_end_matches('/').to_ascii_lowercase();
        let mut state = self.lock();
        if !state.resources.contains(&id) {
            state.resources.push(id);
        }
    }

    /// Adds `item` (its `name` and `properties`) to the `child` collection of
    /// `resource_id`, filling in its `id` and `type` as ARM does.
    pub fn add_child(&self, resource_id: &str, child: &str, parent_type: &str, mut item: Value) {
        self.add_resource(resource_id);
        let name = item
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("item")
            .to_string();
        item["id"] = json!(format!(
            "{}/{child}/{name}",
            resource_id.trim_end_matches('/')
        ));
        item["type"] = json!(format!("{parent_type}/{child}"));
        let path = format!("{}/{child}", resource_id.trim_end_matches('/')).to_ascii_lowercase();
        let mut state = self.lock();
        match state.collections.iter_mut().find(|(p, _)| *p == path) {
            Some((_, items)) => items.push(item),
            None => state.collections.push((path, vec![item])),
        }
    }

    /// Answers `status` (with an Azure error body) for this collection.
    pub fn fail(&self, collection_path: &str, status: u16) {
        self.lock()
            .failing
            .push((collection_path.to_ascii_lowercase(), status));
    }

    /// Removes every failure.
    pub fn clear_failures(&self) {
        self.lock().failing.clear();
    }

    /// Sets the most items of a page (at least 1).
    pub fn set_page_size(&self, items: usize) {
        self.lock().page_size = items.max(1);
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<ArmRequest> {
        self.lock().requests.clone()
    }

    /// The axum router serving the API.
    pub fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    /// Serves on `127.0.0.1` with an ephemeral port.
    pub async fn start(&self) -> anyhow::Result<RunningServer> {
        serve(self.router(), "ARM").await
    }

    /// Answers one request (also called by the Resource Graph emulator, which serves the
    /// same endpoint as ARM does).
    pub(crate) fn answer(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Response {
        let api_version = query.and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "api-version")
                .map(|(_, v)| v.into_owned())
        });
        let response = self.respond(method, path, query, headers, api_version.as_deref());
        self.lock().requests.push(ArmRequest {
            path: path.to_string(),
            api_version,
            authorization: headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            status: response.status().as_u16(),
        });
        response
    }

    fn respond(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        api_version: Option<&str>,
    ) -> Response {
        let expected = self.lock().expected_token.clone();
        if let Some(denied) = check_bearer(headers, expected.as_deref()) {
            return denied;
        }
        if method != Method::GET {
            return azure_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                &format!("the emulator answers GET of collections, not {method}"),
                Value::Null,
            );
        }
        if api_version.is_none() {
            return azure_error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
                Value::Null,
            );
        }
        let key = path.trim_end_matches('/').to_ascii_lowercase();
        let state = self.lock();
        if let Some((_, status)) = state.failing.iter().find(|(p, _)| *p == key) {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return azure_error(
                status,
                if status == StatusCode::FORBIDDEN {
                    "AuthorizationFailed"
                } else {
                    "InternalServerError"
                },
                &format!("{key}: failed (injected)"),
                Value::Null,
            );
        }
        let items = state
            .collections
            .iter()
            .find(|(p, _)| *p == key)
            .map(|(_, items)| items.clone());
        let parent = key.rsplit_once('/').map(|(p, _)| p).unwrap_or_default();
        let items = match items {
            Some(items) => items,
            None if state.resources.iter().any(|r| r == parent) => Vec::new(),
            None => {
                return azure_error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    &format!("The Resource '{parent}' was not found."),
                    Value::Null,
                );
            }
        };
        let skip = query
            .and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "$skiptoken")
                    .and_then(|(_, v)| v.parse::<usize>().ok())
            })
            .unwrap_or(0);
        let end = (skip + state.page_size).min(items.len());
        let page: Vec<Value> = items.get(skip..end).unwrap_or_default().to_vec();
        let mut body = json!({ "value": page });
        if end < items.len() {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("127.0.0.1");
            body["nextLink"] = json!(format!(
                "http://{host}{path}?api-version={}&$skiptoken={end}",
                api_version.unwrap_or_default()
            ));
        }
        (StatusCode::OK, axum::Json(body)).into_response()
    }
}

async fn handle(
    State(emulator): State<ArmEmulator>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    emulator.answer(&method, uri.path(), uri.query(), &headers)
}
