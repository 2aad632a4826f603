//! A Kubernetes API server emulator for what in-use protection reads of an AKS cluster:
//! `GET /api/v1/pods` (pods of every namespace), over TLS with a fresh self-signed
//! certificate for `localhost`, behind a bearer token check.
//!
//! As the Kubernetes API documents it:
//! - the list and its items: "Pod v1 core", `List Pod` of all namespaces
//!   (kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#list-list-or-watch-objects-of-kind-pod-1):
//!   a `PodList` `{"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion",
//!   "continue"?}, "items": [...]}`; each pod's `spec.containers[].image`,
//!   `spec.initContainers[].image` and `status.containerStatuses[].imageID`;
//! - paging: "API Concepts", "Retrieving large results sets in chunks"
//!   (kubernetes.io/docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks):
//!   `?limit=N` answers at most N items and, when more follow, an opaque
//!   `metadata.continue` token that the next request sends as `?continue=…` with the same
//!   query; the last page has no `continue`. A token the server no longer honours answers
//!   410 Gone, reason `Expired`;
//! - errors: a `Status` object `{"kind": "Status", "apiVersion": "v1", "status":
//!   "Failure", "message", "reason", "code"}` ("API Concepts", "Kubernetes API terminology"
//!   and the `Status` kind); 401 `Unauthorized` without a valid bearer token (AKS with
//!   Microsoft Entra ID takes the Entra access token as the bearer token: "Use Kubernetes
//!   RBAC with Microsoft Entra integration", learn.microsoft.com/azure/aks/azure-ad-rbac),
//!   403 `Forbidden` for an identity without a role that lists pods.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_server::tls_rustls::RustlsConfig;
use serde_json::{Value, json};

/// A request the emulator received.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeRequest {
    /// The path, as sent.
    pub path: String,
    /// The `limit` query parameter.
    pub limit: Option<usize>,
    /// The `continue` query parameter.
    pub continue_token: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug)]
struct KubeState {
    pods: Vec<Value>,
    expected_token: Option<String>,
    /// Answered instead of any list (e.g. 403 for an identity without a role).
    failing: Option<u16>,
    /// The most items a page holds when the request asks for more, or sets no `limit`.
    page_size: usize,
    requests: Vec<KubeRequest>,
}

/// A Kubernetes API server emulator of pods; cheap to clone (clones share the state).
#[derive(Debug, Clone)]
pub struct KubernetesEmulator {
    state: Arc<Mutex<KubeState>>,
}

impl Default for KubernetesEmulator {
    fn default() -> Self {
        KubernetesEmulator::new()
    }
}

/// A [`KubernetesEmulator`] served over TLS; stops when dropped.
pub struct RunningKubernetes {
    /// `https://localhost:PORT`.
    pub url: String,
    /// `localhost:PORT`: what an AKS cluster's `properties.fqdn` holds (a host name; here
    /// with the port).
    pub fqdn: String,
    /// The server's self-signed certificate (PEM), for clients to trust (`SSL_CERT_FILE`).
    pub cert_pem: String,
    handle: axum_server::Handle<std::net::SocketAddr>,
}

impl Drop for RunningKubernetes {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl std::fmt::Debug for RunningKubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningKubernetes")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl KubernetesEmulator {
    /// An emulator with no pods: pages of at most 500, any bearer token accepted.
    pub fn new() -> KubernetesEmulator {
        KubernetesEmulator {
            state: Arc::new(Mutex::new(KubeState {
                pods: Vec::new(),
                expected_token: None,
                failing: None,
                page_size: 500,
                requests: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, KubeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Requires this bearer token (`None`: any non-empty one).
    pub fn set_expected_token(&self, token: Option<&str>) {
        self.lock().expected_token = token.map(str::to_string);
    }

    /// Answers every list with this status (401, 403, …) as a `Status` object; `None`
    /// serves again.
    pub fn set_failing(&self, status: Option<u16>) {
        self.lock().failing = status;
    }

    /// The most pods a page holds (a smaller `limit` wins).
    pub fn set_page_size(&self, pods: usize) {
        self.lock().page_size = pods.max(1);
    }

    /// Adds a running pod in `namespace` whose containers run `images` (name, image,
    /// imageID as the kubelet reports it: `None` while it is being pulled).
    pub fn add_pod(&self, namespace: &str, name: &str, containers: &[(&str, &str, Option<&str>)]) {
        let spec: Vec<Value> = containers
            .iter()
            .map(|(container, image, _)| json!({"name": container, "image": image}))
            .collect();
        let statuses: Vec<Value> = containers
            .iter()
            .map(|(container, image, id)| {
                json!({"name": container, "image": image, "imageID": id.unwrap_or(""), "ready": id.is_some()})
            })
            .collect();
        self.add_pod_object(json!({
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": spec},
            "status": {"phase": "Running", "containerStatuses": statuses}
        }));
    }

    /// Adds a pod as given (its `spec` and `status` as the API holds them).
    pub fn add_pod_object(&self, pod: Value) {
        self.lock().pods.push(pod);
    }

    /// Every request received.
    pub fn requests(&self) -> Vec<KubeRequest> {
        self.lock().requests.clone()
    }

    /// The routes, for serving elsewhere.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/pods", get(list_pods))
            .fallback(not_found)
            .with_state(self.clone())
    }

    /// Serves over TLS on `127.0.0.1` with a fresh self-signed certificate for `localhost`.
    pub async fn start_tls(&self) -> anyhow::Result<RunningKubernetes> {
        use anyhow::Context;
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .context("self-signed certificate")?;
        let cert_pem = certified.cert.pem();
        let key_pem = certified.signing_key.serialize_pem();
        let config = RustlsConfig::from_pem(cert_pem.clone().into_bytes(), key_pem.into_bytes())
            .await
            .context("TLS configuration")?;
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("bind the Kubernetes emulator")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, config)
            .context("TLS server")?
            .handle(handle.clone());
        let app = self.router();
        tokio::spawn(async move {
            if let Err(e) = server.serve(app.into_make_service()).await {
                tracing::warn!("Kubernetes emulator stopped: {e}");
            }
        });
        Ok(RunningKubernetes {
            url: format!("https://localhost:{port}"),
            fqdn: format!("localhost:{port}"),
            cert_pem,
            handle,
        })
    }
}

/// A Kubernetes `Status` failure.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

async fn not_found() -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// The `continue` token of the page starting at `offset` (opaque to clients).
fn continue_token(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{{\"start\":{offset}}}"))
}

fn offset_of(token: &str) -> Option<usize> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("start")?.as_u64().map(|n| n as usize)
}

async fn list_pods(
    State(emulator): State<KubernetesEmulator>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let limit = param("limit").and_then(|l| l.parse::<usize>().ok());
    let continue_param = param("continue").filter(|c| !c.is_empty());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut state = emulator.lock();
    let token = authorization
        .as_deref()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let authorized = match (&state.expected_token, token) {
        (_, None) => false,
        (Some(want), Some(given)) => want == given,
        (None, Some(_)) => true,
    };
    let response = if !authorized {
        status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    } else if let Some(code) = state.failing {
        let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let reason = match code.as_u16() {
            401 => "Unauthorized",
            403 => "Forbidden",
            _ => "InternalError",
        };
        status(
            code,
            reason,
            "pods is forbidden: User cannot list resource \"pods\" in API group \"\" at the cluster scope",
        )
    } else {
        let start = match continue_param.as_deref().map(offset_of) {
            None => Some(0),
            Some(Some(start)) if start <= state.pods.len() => Some(start),
            Some(_) => None,
        };
        match start {
            None => status(
                StatusCode::GONE,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result.",
            ),
            Some(start) => {
                let size = limit
                    .filter(|l| *l > 0)
                    .unwrap_or(usize::MAX)
                    .min(state.page_size);
                let end = (start + size).min(state.pods.len());
                let mut metadata = json!({"resourceVersion": "1000"});
                if end < state.pods.len() {
                    metadata["continue"] = json!(continue_token(end));
                }
                let items = state.pods[start..end].to_vec();
                (
                    StatusCode::OK,
                    axum::Json(json!({"kind": "PodList", "apiVersion": "v1", "metadata": metadata, "items": items})),
                )
                    .into_response()
            }
        }
    };
    state.requests.push(KubeRequest {
        path: "/api/v1/pods".to_string(),
        limit,
        continue_token: continue_param,
        authorization,
        status: response.status().as_u16(),
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_read_back() {
        assert_eq!(offset_of(&continue_token(3)), Some(3));
        assert_eq!(offset_of("not a token"), None);
    }
}
