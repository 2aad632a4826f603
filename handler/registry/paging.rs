//! Listing everything behind a paged endpoint.
//!
//! The next page is the `Link: <…>; rel="next"` target when the server sends one; once a
//! server has sent a Link, a page without one is the last (no request for an empty page
//! after it). From a server that sends none, a full page continues with `last=<last item>`
//! (what acr purge does for catalog and manifests); an empty or short page ends the
//! listing. A page that brings nothing new
//! is an error rather than an endless loop.

use super::RegistryClient;
use super::auth::TokenScope;
use super::error::{RegistryError, error_chain, unexpected};
use reqwest::{Method, StatusCode};
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

pub(crate) struct Pager {
    first: String,
    page_size: usize,
    context: String,
}

impl Pager {
    pub fn new(first: String, page_size: usize, context: &str) -> Pager {
        Pager {
            first,
            page_size,
            context: context.to_string(),
        }
    }

    /// All items of all pages, in server order; `None` when the first page is a 404.
    pub async fn collect<T>(
        &self,
        client: &RegistryClient,
        scope: &TokenScope,
        mut parse: impl FnMut(&[u8]) -> serde_json::Result<Vec<T>>,
        key: impl Fn(&T) -> &str,
    ) -> Result<Option<Vec<T>>, RegistryError> {
        let mut items = Vec::new();
        // Items seen, as two independent 64-bit fingerprints rather than names, so that a
        // listing of a million tags does not hold a second copy of every name (the odds
        // that two of a million items collide are about 1 in 10^27).
        let mut seen: HashSet<(u64, u64)> = HashSet::new();
        let fingerprints = (RandomState::new(), RandomState::new());
        let mut next = Some(self.first.clone());
        let mut follows_links = false;
        while let Some(path) = next.take() {
            let response = client
                .send_scoped(Method::GET, &path, scope, &self.context, None, None)
                .await?;
            if response.status() == StatusCode::NOT_FOUND && items.is_empty() && path == self.first
            {
                return not_found(response, &self.context).await;
            }
            if !response.status().is_success() {
                return Err(unexpected(response, &self.context).await);
            }
            let link = response
                .headers()
                .get_all(reqwest::header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link);
            let bytes = response
                .bytes()
                .await
                .map_err(|e| RegistryError::Transport {
                    context: self.context.clone(),
                    message: error_chain(&e),
                })?;
            let page = parse(&bytes).map_err(|e| RegistryError::Protocol {
                context: self.context.clone(),
                problem: format!("unexpected JSON: {e}"),
            })?;
            if page.is_empty() {
                break;
            }
            let count = page.len();
            let mut last_key = String::new();
            let mut fresh = 0;
            for item in page {
                let item_key = key(&item);
                let fingerprint = (
                    fingerprints.0.hash_one(item_key),
                    fingerprints.1.hash_one(item_key),
                );
                last_key.clear();
                last_key.push_str(item_key);
                if seen.insert(fingerprint) {
                    fresh += 1;
                    items.push(item);
                }
            }
            if fresh == 0 {
                return Err(RegistryError::Protocol {
                    context: self.context.clone(),
                    problem: format!("the page after {path} repeated earlier items"),
                });
            }
            next = match link {
                Some(target) => {
                    follows_links = true;
                    Some(client_path(client, &target, &self.context)?)
                }
                // A server that pages with `Link` ends with a page without one, full or not.
                None if count >= self.page_size && !follows_links => Some(format!(
                    "{}&last={}",
                    self.first,
                    url::form_urlencoded::byte_serialize(last_key.as_bytes()).collect::<String>()
                )),
                None => None,
            };
        }
        items.shrink_to_fit();
        Ok(Some(items))
    }
}

/// A 404 on a first page: `None` when the registry says the repository is unknown (a
/// distribution error body), an error when the endpoint itself does not exist (a registry
/// without ACR's `/acr/v1` API answers a plain-text 404).
pub(crate) async fn not_found<T>(
    response: reqwest::Response,
    context: &str,
) -> Result<Option<T>, RegistryError> {
    let body = response.bytes().await.unwrap_or_default();
    let is_registry_error = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .is_some_and(|v| v.get("errors").is_some_and(|e| e.is_array()));
    if is_registry_error {
        return Ok(None);
    }
    Err(RegistryError::Protocol {
        context: context.to_string(),
        problem: format!(
            "HTTP 404 without a registry error body ({:?}): the registry does not serve this API (ACR's /acr/v1 API is required)",
            String::from_utf8_lossy(&body[..body.len().min(100)])
        ),
    })
}

/// The target of a `rel="next"` link in one `Link` header value.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_string())
    })
}

/// A Link target as a path on this registry; links to another host are refused.
fn client_path(
    client: &RegistryClient,
    target: &str,
    context: &str,
) -> Result<String, RegistryError> {
    let base = client.endpoint().base();
    let url = base.join(target).map_err(|e| RegistryError::Protocol {
        context: context.to_string(),
        problem: format!("bad Link target {target:?}: {e}"),
    })?;
    if url.origin() != base.origin() {
        return Err(RegistryError::Protocol {
            context: context.to_string(),
            problem: format!("Link target {target:?} points to another host"),
        });
    }
    Ok(match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn finds_the_next_link() {
        assert_eq!(
            next_link(r#"</acr/v1/r/_tags?last=latest&n=3&orderby=timedesc>; rel="next""#)
                .as_deref(),
            Some("/acr/v1/r/_tags?last=latest&n=3&orderby=timedesc")
        );
        assert_eq!(
            next_link(r#"</a?x=1>; rel="prev", </b?last=z>; rel="next""#).as_deref(),
            Some("/b?last=z")
        );
        assert_eq!(next_link(r#"</a>; rel="prev""#), None);
    }
}
