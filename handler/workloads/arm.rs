//! Lists of Azure Resource Manager child resources the in-use lookup reads where Resource
//! Graph does not hold them: App Service sidecars (`…/sites/{site}/sitecontainers`),
//! Container Apps revisions (`…/containerApps/{app}/revisions`) and job executions
//! (`…/jobs/{job}/executions`).
//!
//! `GET {arm}{collection path}?api-version=…`, answered `{"value": [...], "nextLink"?}`;
//! every `nextLink` is followed, and only when it points at the same endpoint (scheme, host
//! and port: the token is never sent elsewhere). Fails closed: a failed page (after three
//! tries of a 429), an unreadable answer or more than [`MAX_PAGES`] pages is an error,
//! never a shorter list.

use super::{bearer, error_text};
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
const TRIES_WHEN_THROTTLED: usize = 3;

/// A reader of ARM collections at one endpoint.
#[derive(Clone)]
pub struct ArmReader {
    endpoint: Url,
    credential: Arc<dyn TokenCredential>,
    http: reqwest::Client,
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
            credential,
            http,
        }
    }

    /// Every item of the collection at `path` (a resource id and the child type, e.g.
    /// `/subscriptions/…/providers/Microsoft.Web/sites/web/sitecontainers`).
    pub async fn list(&self, path: &str, api_version: &str) -> Result<Vec<Value>, String> {
        let token = bearer(self.credential.as_ref(), &self.endpoint).await?;
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
                return Err(format!("GET {path}: more than {MAX_PAGES} pages"));
            }
            let answer = self
                .get(&token, &url)
                .await
                .map_err(|e| format!("GET {path} (page {page}): {e}"))?;
            let value = answer
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("GET {path} (page {page}): no `value` array"))?;
            items.extend(value.iter().cloned());
            next = match answer.get("nextLink") {
                None | Some(Value::Null) => None,
                Some(Value::String(link)) if link.is_empty() => None,
                Some(Value::String(link)) => Some(
                    self.same_endpoint(link)
                        .map_err(|e| format!("GET {path} (page {page}): {e}"))?,
                ),
                Some(other) => return Err(format!("GET {path}: nextLink is {other}")),
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

    /// One page, retrying a 429 up to three times after its `Retry-After` (at most 10 s).
    async fn get(&self, token: &str, url: &Url) -> Result<Value, String> {
        let mut tries = 0;
        loop {
            tries += 1;
            let response = self
                .http
                .get(url.clone())
                .bearer_auth(token)
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .map_err(|e| format!("request failed: {}", crate::outbound::error_chain(&e)))?;
            let status = response.status();
            if status.as_u16() == 429 && tries < TRIES_WHEN_THROTTLED {
                tokio::time::sleep(super::in_use::retry_after(response.headers())).await;
                continue;
            }
            let text = super::read_capped(response, super::MAX_ANSWER_BYTES).await?;
            if !status.is_success() {
                return Err(format!("HTTP {}: {}", status.as_u16(), error_text(&text)));
            }
            return serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"));
        }
    }
}
