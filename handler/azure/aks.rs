//! The images an AKS cluster's pods run, read from the cluster's Kubernetes API server:
//! `GET https://{properties.fqdn}/api/v1/pods` (every namespace), paged with `limit` and
//! `continue` ("API Concepts", "Retrieving large results sets in chunks",
//! kubernetes.io/docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks:
//! a page carries `metadata.continue` while more follow; the next request sends it back).
//!
//! Signed in with a Microsoft Entra token for the AKS server application
//! ([`AKS_SCOPE`]), through the same Azure credential as the other clients: the cluster must
//! be integrated with Microsoft Entra ID, and the identity needs a role that lists pods
//! (*Azure Kubernetes Service RBAC Reader* with Azure RBAC).
//!
//! Per pod, the image strings of `spec.containers[]`, `spec.initContainers[]` and
//! `spec.ephemeralContainers[]`, and the `imageID` of every `status.containerStatuses[]`,
//! `status.initContainerStatuses[]` and `status.ephemeralContainerStatuses[]` (the digest
//! the container runs, which a moved tag no longer names), with the runtime's
//! `docker-pullable://` style prefix removed. Pods of every phase count.
//!
//! Fails closed: a cluster without a public `fqdn` (private API server), one that is not
//! integrated with Microsoft Entra ID (local accounts only), a TLS or connection failure,
//! a 401/403, a page that is not a `PodList`, or more than [`MAX_PAGES`] pages is a
//! [`ClusterError`], never a shorter list. Requests go through [`super::http`] (its retry
//! policy and answer-size cap).

use super::http::Caller;
use azure_core::credentials::TokenCredential;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The token scope of the AKS Microsoft Entra server application (the same in every
/// cloud): "Use kubelogin with AKS", learn.microsoft.com/azure/aks/kubelogin-authentication.
pub const AKS_SCOPE: &str = "6dae42f8-4368-4678-94ff-3960e28e3630/.default";
/// Pods asked for per page.
pub const PAGE_LIMIT: usize = 500;
/// The most pages of one cluster followed (a million pods).
pub const MAX_PAGES: usize = 2_000;

/// Why a cluster's pods could not be listed whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The cluster's properties say an Entra token cannot reach its API server.
    #[error("{0}")]
    Unreachable(String),
    /// No token for [`AKS_SCOPE`].
    #[error("no {0}")]
    Token(String),
    /// A page that could not be had or read.
    #[error("GET {server}api/v1/pods (page {page}): {detail}")]
    Request {
        /// The API server's URL.
        server: String,
        /// The page, from 1.
        page: usize,
        /// What failed.
        detail: String,
    },
    /// A page that is not what the Kubernetes API documents, or too many pages.
    #[error("{0}")]
    Paging(String),
}

/// A reader of AKS clusters' pods.
#[derive(Clone)]
pub struct ClusterReader {
    caller: Caller,
}

impl std::fmt::Debug for ClusterReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterReader").finish_non_exhaustive()
    }
}

impl ClusterReader {
    /// A reader signing in with `credential` for [`AKS_SCOPE`].
    pub fn new(credential: Arc<dyn TokenCredential>, http: reqwest::Client) -> ClusterReader {
        ClusterReader {
            caller: Caller::new(credential, http, Duration::from_secs(60)),
        }
    }

    /// Every image string the pods of the cluster described by `properties` (its
    /// Resource Graph row) run, or why they cannot be read.
    pub async fn images(&self, properties: &Value) -> Result<Vec<String>, ClusterError> {
        let server = api_server(properties).map_err(ClusterError::Unreachable)?;
        let token = self
            .caller
            .token_for_scope(AKS_SCOPE)
            .await
            .map_err(|e| ClusterError::Token(e.to_string()))?;
        let mut images = Vec::new();
        let mut next: Option<String> = None;
        for page in 1..=MAX_PAGES {
            let mut url = server.clone();
            url.set_path("/api/v1/pods");
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("limit", &PAGE_LIMIT.to_string());
                if let Some(token) = &next {
                    query.append_pair("continue", token);
                }
            }
            let list = self
                .get(&token, &url)
                .await
                .map_err(|detail| ClusterError::Request {
                    server: server.to_string(),
                    page,
                    detail,
                })?;
            let paging = ClusterError::Paging;
            if list.get("kind").and_then(Value::as_str) != Some("PodList") {
                return Err(paging(format!("page {page} is not a PodList")));
            }
            let items = list
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| paging(format!("page {page}: no `items` array")))?;
            for pod in items {
                images.extend(pod_images(pod));
            }
            match list.pointer("/metadata/continue") {
                None | Some(Value::Null) => return Ok(images),
                Some(Value::String(t)) if t.is_empty() => return Ok(images),
                Some(Value::String(t)) if next.as_deref() == Some(t.as_str()) => {
                    return Err(paging(format!(
                        "page {page}: the same continue token came twice"
                    )));
                }
                Some(Value::String(t)) => next = Some(t.clone()),
                Some(other) => return Err(paging(format!("page {page}: continue is {other}"))),
            }
        }
        Err(ClusterError::Paging(format!(
            "more than {MAX_PAGES} pages of pods"
        )))
    }

    /// One page; a Kubernetes `Status` answer's reason and message make a failure's text.
    async fn get(&self, token: &str, url: &Url) -> Result<Value, String> {
        let answer = self
            .caller
            .get(url, token)
            .await
            .map_err(|e| e.to_string())?;
        if !answer.is_success() {
            let parsed: Option<Value> = serde_json::from_str(&answer.body).ok();
            let message = parsed
                .as_ref()
                .and_then(|v| {
                    let reason = v.get("reason").and_then(Value::as_str).unwrap_or("");
                    let message = v.get("message").and_then(Value::as_str)?;
                    Some(format!("{reason}: {message}"))
                })
                .unwrap_or_else(|| answer.body.chars().take(300).collect());
            return Err(format!("HTTP {}: {message}", answer.status));
        }
        answer.json()
    }
}

/// The API server of a cluster, from its Resource Graph `properties`, or why it cannot be
/// reached with an Entra token.
fn api_server(properties: &Value) -> Result<Url, String> {
    let aad = properties.get("aadProfile").filter(|a| !a.is_null());
    if aad.is_none() {
        return Err(
            "not integrated with Microsoft Entra ID (local accounts only): an Entra token cannot list its pods"
                .to_string(),
        );
    }
    let fqdn = properties
        .get("fqdn")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|f| !f.is_empty());
    let Some(fqdn) = fqdn else {
        let private = properties
            .pointer("/apiServerAccessProfile/enablePrivateCluster")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        return Err(match private {
            true => "a private API server (no public fqdn) cannot be reached from here".to_string(),
            false => "no `fqdn` in its properties".to_string(),
        });
    };
    if fqdn.contains(['/', '@', '?', '#']) {
        return Err(format!("fqdn {fqdn:?} is not a host name"));
    }
    Url::parse(&format!("https://{fqdn}/")).map_err(|e| format!("fqdn {fqdn:?}: {e}"))
}

/// The image strings of one pod: its containers' images and the image IDs (digests) the
/// runtime reports for them.
pub fn pod_images(pod: &Value) -> Vec<String> {
    let mut images = Vec::new();
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(containers) = pod
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
        {
            images.extend(
                containers
                    .iter()
                    .filter_map(|c| c.get("image").and_then(Value::as_str))
                    .map(str::to_string),
            );
        }
    }
    for list in [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ] {
        if let Some(statuses) = pod
            .pointer(&format!("/status/{list}"))
            .and_then(Value::as_array)
        {
            images.extend(
                statuses
                    .iter()
                    .filter_map(|s| s.get("imageID").and_then(Value::as_str))
                    .map(strip_runtime_prefix)
                    .filter(|id| !id.is_empty())
                    .map(str::to_string),
            );
        }
    }
    images
}

/// An `imageID` without its runtime's scheme (`docker-pullable://`, `docker://`).
fn strip_runtime_prefix(id: &str) -> &str {
    match id.split_once("://") {
        Some((_, rest)) => rest,
        None => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_names_its_images_and_the_digests_it_runs() {
        let pod = json!({
            "spec": {
                "containers": [{"name": "a", "image": "r.io/app:v1"}],
                "initContainers": [{"name": "i", "image": "r.io/init:1"}]
            },
            "status": {
                "containerStatuses": [{"name": "a", "imageID": "docker-pullable://r.io/app@sha256:aa"}],
                "initContainerStatuses": [{"name": "i", "imageID": "r.io/init@sha256:bb"}]
            }
        });
        assert_eq!(
            pod_images(&pod),
            [
                "r.io/app:v1",
                "r.io/init:1",
                "r.io/app@sha256:aa",
                "r.io/init@sha256:bb"
            ]
        );
        let pulling = json!({"spec": {"containers": [{"image": "r.io/x"}]}, "status": {"containerStatuses": [{"imageID": ""}]}});
        assert_eq!(pod_images(&pulling), ["r.io/x"]);
    }

    #[test]
    fn clusters_that_an_entra_token_cannot_read_are_named() {
        let aad = json!({"managed": true});
        assert!(
            api_server(&json!({"fqdn": "c.hcp.westeurope.azmk8s.io", "aadProfile": aad})).is_ok()
        );
        let local = api_server(&json!({"fqdn": "c.hcp.westeurope.azmk8s.io", "aadProfile": null}));
        assert!(local.unwrap_err().contains("local accounts"));
        let private = api_server(&json!({"privateFqdn": "c.privatelink", "aadProfile": aad,
            "apiServerAccessProfile": {"enablePrivateCluster": true}}));
        assert!(private.unwrap_err().contains("private API server"));
        assert!(api_server(&json!({"fqdn": "evil.com/x", "aadProfile": aad})).is_err());
    }
}
