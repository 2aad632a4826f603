//! Lists of Azure Resource Manager child resources the in-use lookup reads where Resource
//! Graph does not hold them: App Service sidecars (`…/sites/{site}/sitecontainers`),
//! Container Apps revisions (`…/containerApps/{app}/revisions`) and job executions
//! (`…/jobs/{job}/executions`).
//!
//! `GET {arm}{collection path}?api-version=…`, answered `{"value": [...], "nextLink"?}`;
//! every `nextLink` is followed, and only when it points at the same endpoint (scheme, host
//! and port: the token is never sent elsewhere). Fails closed: a failed page (after the
//! retries of [`super::http`]), an unreadable answer or more than [`MAX_PAGES`] pages is an
//! [`ArmError`], never a shorter list.

use super::http::{Caller, HttpError};
use azure_core::credentials::TokenCredential;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The Microsoft.Web API version used for `sitecontainers` (they exist from 2023-12-01).
pub const WEB_API_VERSION: &str = "2024-04-01";
/// The Microsoft.App API version used for revisions and job executions.
pub const APP_API_VERSION: &str = "2024-03-01";
/// The most pages of one collection followed.
pub const MAX_PAGES: usize = 1_000;

/// Why a collection could not be listed whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArmError {
    /// No token, or an endpoint a token must not be sent to.
    #[error("{0}")]
    Token(String),
    /// A page that could not be had or read.
    #[error("GET {path} (page {page}): {detail}")]
    Page {
        /// The collection's path.
        path: String,
        /// The page, from 1.
        page: usize,
        /// What failed.
        detail: String,
    },
    /// More pages than [`MAX_PAGES`], or a `nextLink` that is not a string.
    #[error("GET {path}: {detail}")]
    Paging {
        /// The collection's path.
        path: String,
        /// What was wrong.
        detail: String,
    },
}

/// A reader of ARM collections at one endpoint.
#[derive(Clone)]
pub struct ArmReader {
    endpoint: Url,
    caller: Caller,
}

impl std::fmt::Debug for ArmReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmReader")
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl ArmReader {
    /// A reader of `arm_endpoint` (e.g. `https://management.azure.com`), signing in for its
    /// audience.
    pub fn new(
        arm_endpoint: Url,
        credential: Arc<dyn TokenCredential>,
        http: reqwest::Client,
    ) -> ArmReader {
        ArmReader {
            endpoint: arm_endpoint,
            caller: Caller::new(credential, http, Duration::from_secs(60)),
        }
    }

    /// Every item of the collection at `path` (a resource id and the child type, e.g.
    /// `/subscriptions/…/providers/Microsoft.Web/sites/web/sitecontainers`).
    pub async fn list(&self, path: &str, api_version: &str) -> Result<Vec<Value>, ArmError> {
        let token = self
            .caller
            .token_for(&self.endpoint)
            .await
            .map_err(|e| ArmError::Token(e.to_string()))?;
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        url.set_query(Some(&format!("api-version={api_version}")));
        let mut items = Vec::new();
        let mut next = Some(url);
        let mut page = 0;
        while let Some(url) = next.take() {
            page += 1;
            if page > MAX_PAGES {
                return Err(ArmError::Paging {
                    path: path.to_string(),
                    detail: format!("more than {MAX_PAGES} pages"),
                });
            }
            let page_error = |detail: String| ArmError::Page {
                path: path.to_string(),
                page,
                detail,
            };
            let answer = self.get(&token, &url).await.map_err(page_error)?;
            let value = answer
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| page_error("no `value` array".to_string()))?;
            items.extend(value.iter().cloned());
            next = match answer.get("nextLink") {
                None | Some(Value::Null) => None,
                Some(Value::String(link)) if link.is_empty() => None,
                Some(Value::String(link)) => Some(self.same_endpoint(link).map_err(page_error)?),
                Some(other) => {
                    return Err(ArmError::Paging {
                        path: path.to_string(),
                        detail: format!("nextLink is {other}"),
                    });
                }
            };
        }
        Ok(items)
    }

    /// `link` when it points at this endpoint (scheme, host, port), else why not.
    fn same_endpoint(&self, link: &str) -> Result<Url, String> {
        let url = Url::parse(link).map_err(|e| format!("nextLink {link:?}: {e}"))?;
        let same = url.scheme() == self.endpoint.scheme()
            && url.host_str() == self.endpoint.host_str()
            && url.port_or_known_default() == self.endpoint.port_or_known_default();
        match same {
            true => Ok(url),
            false => Err(format!(
                "nextLink {link:?} leaves {}; the token is not sent there",
                self.endpoint
            )),
        }
    }

    /// One page, asked again as [`super::http`] says.
    async fn get(&self, token: &str, url: &Url) -> Result<Value, String> {
        let answer = self
            .caller
            .get(url, token)
            .await
            .map_err(|e: HttpError| e.to_string())?;
        if !answer.is_success() {
            return Err(format!("HTTP {}: {}", answer.status, answer.error_text()));
        }
        answer.json()
    }
}
