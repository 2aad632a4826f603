//! The ACR data-plane client: catalog, tag and manifest listings, manifest bodies, lock
//! attributes and deletions, over HTTP with sign-in, retries and throttling.

mod auth;
mod endpoint;
mod error;
pub mod pacing;
mod paging;
mod transport;

pub use auth::{ACR_SCOPE, Credentials, ZERO_GUID};
pub use endpoint::{Endpoint, EndpointError};
pub use error::RegistryError;
pub use pacing::{Category, RateCard, RateCardError};
pub use transport::{
    ByCategory, CategoryCounts, Checked, Precheck, RequestStats, RetryPolicy, StatsSnapshot,
    no_check,
};

use crate::model::{
    self, CatalogPage, Interner, ManifestAttributes, ManifestBody, ManifestPage, SingleManifest,
    SingleTag, TagAttributes, TagPage,
};
use crate::outbound::{self, OutboundError};
use auth::{Authenticator, TokenScope};
use error::{decode, error_chain, short_body, unexpected};
use reqwest::{Method, Response, StatusCode};
use transport::Transport;

/// Tags and manifests are listed in pages of this size (acr purge's hard-coded value).
pub const LIST_PAGE_SIZE: usize = 100;

/// How a delete request ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DeleteStatus {
    /// 200/202: deleted.
    Deleted,
    /// 404: already gone (counted as deleted, as acr purge does).
    NotFound,
    /// 405: the registry refused (locked); skipped, not counted.
    NotAllowed,
}

/// Requests of each rate-card category in flight at most: `--concurrency` and the policy's
/// `concurrency`, 1 to [`Concurrency::MAX`] (ACR's recommended maximum of parallel deletes),
/// default [`Concurrency::DEFAULT`]. The one definition of both numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency(usize);

impl Concurrency {
    /// The default, 8.
    pub const DEFAULT: Concurrency = Concurrency(8);
    /// The largest accepted, 32.
    pub const MAX: Concurrency = Concurrency(32);

    /// `n` when it is within 1 to [`Concurrency::MAX`].
    pub fn new(n: usize) -> Option<Concurrency> {
        (1..=Concurrency::MAX.0)
            .contains(&n)
            .then_some(Concurrency(n))
    }

    /// The number.
    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency::DEFAULT
    }
}

/// Connection options.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Maximum requests in flight.
    pub concurrency: usize,
    /// Retry and throttling behaviour.
    pub retry: RetryPolicy,
    /// Repositories per token on ABAC registries (`ABAC_BATCH_SIZE`, default 10).
    pub abac_batch_size: usize,
    /// Extra trusted root certificates (PEM), besides the system roots and `SSL_CERT_FILE`.
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// The per-identity request budgets to pace to (`--rate-card`, default Standard).
    pub rate_card: RateCard,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            concurrency: Concurrency::DEFAULT.get(),
            retry: RetryPolicy::default(),
            abac_batch_size: 10,
            extra_roots_pem: Vec::new(),
            rate_card: RateCard::default(),
        }
    }
}

/// A signed-in client of one registry.
pub struct RegistryClient {
    endpoint: Endpoint,
    transport: Transport,
    auth: Authenticator,
    abac_batch_size: usize,
}

impl RegistryClient {
    /// Probes `/v2/` and signs in. `credentials` is `None` when no `-u/-p` was given: then
    /// the registry's challenge decides (200: anonymous; Bearer: the Azure credential of the
    /// environment; Basic: an error asking for `-u/-p`).
    pub async fn connect(
        endpoint: Endpoint,
        credentials: Option<Credentials>,
        options: ClientOptions,
    ) -> Result<RegistryClient, RegistryError> {
        let http = build_http(&options)?;
        let transport = Transport::new(
            http,
            options.retry.clone(),
            options.concurrency,
            options.rate_card,
        );
        let url = endpoint.url("/v2/");
        let probe = transport
            .execute(
                transport::Route {
                    method: "GET",
                    template: "/v2/",
                    host: endpoint.host(),
                },
                &format!("reaching registry {}", endpoint.host()),
                || transport.http.get(&url),
            )
            .await?;
        let status = probe.status();
        let challenge = probe
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(auth::parse_challenge);
        let service = challenge
            .as_ref()
            .and_then(|(_, params)| params.get("service").cloned());
        let credentials = match (credentials, status) {
            (Some(credentials), _) => credentials,
            (None, s) if s.is_success() => Credentials::Anonymous,
            (None, StatusCode::UNAUTHORIZED) => match challenge {
                Some((scheme, _)) if scheme == "bearer" => Credentials::from_environment()?,
                _ => {
                    return Err(RegistryError::Auth(format!(
                        "registry {} asks for a username and password (-u/-p)",
                        endpoint.host()
                    )));
                }
            },
            (None, status) => {
                return Err(RegistryError::Status {
                    context: format!("probing {url}"),
                    status: status.as_u16(),
                    body: short_body(probe).await,
                });
            }
        };
        let auth = Authenticator::new(credentials, &endpoint, service);
        Ok(RegistryClient {
            endpoint,
            transport,
            auth,
            abac_batch_size: options.abac_batch_size,
        })
    }

    /// The registry endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The rate card this client paces to.
    pub fn rate_card(&self) -> RateCard {
        self.transport.rate_card()
    }

    /// Reads this client allows in flight at once: `--concurrency` times the card's reads
    /// per delete (at most ten), so bulk reads are sized by the card, not by the deletes.
    pub fn read_concurrency(&self) -> usize {
        self.transport.read_concurrency()
    }

    /// What the transport has done so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.transport.stats.snapshot()
    }

    /// The live request counters (a progress display polls them).
    pub fn stats_handle(&self) -> std::sync::Arc<RequestStats> {
        self.transport.stats.clone()
    }

    /// Whether the registry turned out to use ABAC repository permissions.
    pub fn is_abac(&self) -> bool {
        self.auth.is_abac()
    }

    /// Announces the repositories the run will touch, so that ABAC tokens cover them in
    /// batches instead of one token per repository.
    pub fn plan_token_batches(&self, repositories: &[String]) {
        self.auth.set_batches(repositories, self.abac_batch_size);
    }

    /// All repository names, sorted, from `/v2/_catalog` in pages of `page_size`.
    pub async fn catalog(&self, page_size: usize) -> Result<Vec<String>, RegistryError> {
        let first = format!("/v2/_catalog?n={page_size}");
        let pages = paging::Pager::new(first, page_size, "listing the repository catalog");
        let mut names = pages
            .collect(
                self,
                &TokenScope::Catalog,
                |bytes| {
                    let page: CatalogPage = serde_json::from_slice(bytes)?;
                    Ok(page.repositories.unwrap_or_default())
                },
                |name| name.as_str(),
            )
            .await?
            .unwrap_or_default();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Every tag of `repository`, newest `lastUpdateTime` first (server order). `None` when
    /// the repository does not exist.
    pub async fn list_tags(
        &self,
        repository: &str,
    ) -> Result<Option<Vec<TagAttributes>>, RegistryError> {
        let first = format!(
            "/acr/v1/{}/_tags?n={LIST_PAGE_SIZE}&orderby=timedesc",
            encode_repo(repository)
        );
        self.tag_pages(repository, first, &format!("listing tags of {repository}"))
            .await
    }

    /// The tags on manifest `digest` now (`_tags?digest=`), with their attributes: the one
    /// read that verifies an image before it is deleted whole. `None` on 404.
    pub async fn tags_of_manifest(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<Vec<TagAttributes>>, RegistryError> {
        let first = format!(
            "/acr/v1/{}/_tags?n={LIST_PAGE_SIZE}&digest={}",
            encode_repo(repository),
            encode_segment(digest)
        );
        let context = format!("reading the tags of {repository}@{digest}");
        let tags = self.tag_pages(repository, first, &context).await?;
        // Only the tags on `digest`: the filter is a query parameter of the first page, and
        // a next-page Link need not carry it (the emulator's does not), so later pages may
        // list the repository's other tags. Taking those for tags of this manifest would
        // keep an image for a tag it never had, depending on whether another job had
        // deleted that tag yet. A tag without a digest is kept in: it may be on it.
        Ok(tags.map(|tags| {
            tags.into_iter()
                .filter(|t| t.digest.is_empty() || t.digest == digest)
                .collect()
        }))
    }

    /// Every tag of the tag listing starting at `first`.
    async fn tag_pages(
        &self,
        repository: &str,
        first: String,
        context: &str,
    ) -> Result<Option<Vec<TagAttributes>>, RegistryError> {
        paging::Pager::new(first, LIST_PAGE_SIZE, context)
            .collect(
                self,
                &TokenScope::Repository(repository.to_string()),
                |bytes| {
                    let page: TagPage = serde_json::from_slice(bytes)?;
                    Ok(page.tags.unwrap_or_default())
                },
                |tag| tag.name.as_str(),
            )
            .await
    }

    /// Every manifest of `repository`, in digest order. `None` when the repository does not
    /// exist.
    pub async fn list_manifests(
        &self,
        repository: &str,
    ) -> Result<Option<Vec<ManifestAttributes>>, RegistryError> {
        self.list_manifests_sharing(repository, None).await
    }

    /// [`RegistryClient::list_manifests`], each manifest holding the digest and tag names
    /// `shared` holds (the tag listing's, [`crate::model::share_tags`]) instead of copies,
    /// as each page arrives.
    pub async fn list_manifests_sharing(
        &self,
        repository: &str,
        mut shared: Option<&mut Interner>,
    ) -> Result<Option<Vec<ManifestAttributes>>, RegistryError> {
        let first = format!(
            "/acr/v1/{}/_manifests?n={LIST_PAGE_SIZE}",
            encode_repo(repository)
        );
        paging::Pager::new(
            first,
            LIST_PAGE_SIZE,
            &format!("listing manifests of {repository}"),
        )
        .collect(
            self,
            &TokenScope::Repository(repository.to_string()),
            |bytes| {
                let page: ManifestPage = serde_json::from_slice(bytes)?;
                let mut manifests = page.manifests.unwrap_or_default();
                if let Some(shared) = shared.as_deref_mut() {
                    for manifest in &mut manifests {
                        model::share_manifest(shared, manifest);
                    }
                }
                Ok(manifests)
            },
            |m| m.digest.as_deref().unwrap_or_default(),
        )
        .await
    }

    /// The body of manifest `digest`, reduced to children and subject. `None` on 404.
    pub async fn manifest_body(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<ManifestBody>, RegistryError> {
        let context = format!("reading manifest {repository}@{digest}");
        let path = manifest_path(repository, digest);
        self.get_json(&path, repository, &context, Some(model::MANIFEST_ACCEPT))
            .await
    }

    /// The digests of the manifests whose `subject` is `digest` (OCI referrers API). The
    /// registry deletes these together with `digest`.
    pub async fn referrers(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let context = format!("listing referrers of {repository}@{digest}");
        let path = format!(
            "/v2/{}/referrers/{}",
            encode_repo(repository),
            encode_segment(digest)
        );
        let index: Option<ManifestBody> = self
            .get_json(&path, repository, &context, Some(model::OCI_INDEX))
            .await?;
        Ok(index
            .map(|i| i.manifests.into_iter().map(|d| d.digest).collect())
            .unwrap_or_default())
    }

    /// The current attributes of one tag. `None` on 404.
    pub async fn tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<TagAttributes>, RegistryError> {
        let context = format!("reading tag {repository}:{tag}");
        let single: Option<SingleTag> = self
            .get_json(&tag_path(repository, tag), repository, &context, None)
            .await?;
        Ok(single.map(|s| s.tag))
    }

    /// The current attributes of one manifest. `None` on 404.
    pub async fn manifest(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<ManifestAttributes>, RegistryError> {
        let context = format!("reading manifest attributes {repository}@{digest}");
        let path = manifest_attributes_path(repository, digest);
        let single: Option<SingleManifest> =
            self.get_json(&path, repository, &context, None).await?;
        Ok(single.map(|s| s.manifest))
    }

    /// Unlocks a tag (`deleteEnabled` and `writeEnabled` set to true).
    pub async fn unlock_tag(&self, repository: &str, tag: &str) -> Result<(), RegistryError> {
        let context = format!("unlocking tag {repository}:{tag}");
        self.unlock(&tag_path(repository, tag), repository, &context)
            .await
    }

    /// Unlocks a manifest (`deleteEnabled` and `writeEnabled` set to true).
    pub async fn unlock_manifest(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<(), RegistryError> {
        let context = format!("unlocking manifest {repository}@{digest}");
        let path = manifest_attributes_path(repository, digest);
        self.unlock(&path, repository, &context).await
    }

    /// Deletes (untags) one tag; the manifest stays. `check` verifies the tag before every
    /// attempt, once the delete's rate-card slot is taken (see [`Precheck`]); when it
    /// aborts, nothing is deleted and its value is returned.
    pub async fn delete_tag<'c, T>(
        &self,
        repository: &str,
        tag: &str,
        check: impl FnMut() -> Checked<'c, T>,
    ) -> Result<Result<DeleteStatus, T>, RegistryError> {
        let context = format!("deleting tag {repository}:{tag}");
        self.delete(&tag_path(repository, tag), repository, &context, check)
            .await
    }

    /// Deletes one manifest by digest, with all its tags (and, on ACR, its referrers),
    /// verified by `check` as [`RegistryClient::delete_tag`] is.
    pub async fn delete_manifest<'c, T>(
        &self,
        repository: &str,
        digest: &str,
        check: impl FnMut() -> Checked<'c, T>,
    ) -> Result<Result<DeleteStatus, T>, RegistryError> {
        let context = format!("deleting manifest {repository}@{digest}");
        self.delete(
            &manifest_path(repository, digest),
            repository,
            &context,
            check,
        )
        .await
    }

    /// GETs a JSON document; `None` on a registry 404.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        repository: &str,
        context: &str,
        accept: Option<&str>,
    ) -> Result<Option<T>, RegistryError> {
        let response = self
            .send(Method::GET, path, repository, context, accept, None)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => paging::not_found(response, context).await,
            s if s.is_success() => Ok(Some(decode(response, context).await?)),
            _ => Err(unexpected(response, context).await),
        }
    }

    async fn unlock(
        &self,
        path: &str,
        repository: &str,
        context: &str,
    ) -> Result<(), RegistryError> {
        let body = serde_json::json!({"deleteEnabled": true, "writeEnabled": true});
        let response = self
            .send(Method::PATCH, path, repository, context, None, Some(&body))
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(unexpected(response, context).await)
        }
    }

    async fn delete<'c, T>(
        &self,
        path: &str,
        repository: &str,
        context: &str,
        mut check: impl FnMut() -> Checked<'c, T>,
    ) -> Result<Result<DeleteStatus, T>, RegistryError> {
        let scope = TokenScope::Repository(repository.to_string());
        let request = Request {
            method: Method::DELETE,
            path,
            scope: &scope,
            context,
            accept: None,
            json: None,
        };
        let response = match self.send_checked(request, &mut check).await? {
            Ok(response) => response,
            Err(aborted) => return Ok(Err(aborted)),
        };
        Ok(Ok(match response.status() {
            s if s.is_success() => DeleteStatus::Deleted,
            StatusCode::NOT_FOUND => DeleteStatus::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => DeleteStatus::NotAllowed,
            _ => return Err(unexpected(response, context).await),
        }))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        repository: &str,
        context: &str,
        accept: Option<&str>,
        json: Option<&serde_json::Value>,
    ) -> Result<Response, RegistryError> {
        self.send_scoped(
            method,
            path,
            &TokenScope::Repository(repository.to_string()),
            context,
            accept,
            json,
        )
        .await
    }

    /// Sends an authorised request; a 401 is answered once by fetching fresh tokens, a second
    /// 401 (or a 403) is a permission error.
    async fn send_scoped(
        &self,
        method: Method,
        path: &str,
        scope: &TokenScope,
        context: &str,
        accept: Option<&str>,
        json: Option<&serde_json::Value>,
    ) -> Result<Response, RegistryError> {
        let request = Request {
            method,
            path,
            scope,
            context,
            accept,
            json,
        };
        match self.send_checked(request, &mut no_check).await? {
            Ok(response) => Ok(response),
            Err(never) => match never {},
        }
    }

    /// [`RegistryClient::send_scoped`] with `check` run before each attempt, after the
    /// request's rate-card slot ([`Transport::execute_checked`]).
    async fn send_checked<'c, T>(
        &self,
        request: Request<'_>,
        check: &mut impl FnMut() -> Checked<'c, T>,
    ) -> Result<Result<Response, T>, RegistryError> {
        let Request {
            method,
            path,
            scope,
            context,
            accept,
            json,
        } = request;
        let url = self.endpoint.url(path);
        let template = route_template(path, scope);
        let mut refreshed = false;
        loop {
            let header = self.auth.header(&self.transport, scope).await?;
            let sent = self
                .transport
                .execute_checked(
                    transport::Route {
                        method: method.as_str(),
                        template: &template,
                        host: self.endpoint.host(),
                    },
                    context,
                    || {
                        let mut request = self.transport.http.request(method.clone(), &url);
                        if let Some(value) = &header {
                            request = request.header(reqwest::header::AUTHORIZATION, value);
                        }
                        if let Some(accept) = accept {
                            request = request.header(reqwest::header::ACCEPT, accept);
                        }
                        if let Some(json) = json {
                            request = request.json(json);
                        }
                        request
                    },
                    check,
                )
                .await?;
            let response = match sent {
                Ok(response) => response,
                Err(aborted) => return Ok(Err(aborted)),
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !refreshed && self.auth.can_refresh() {
                refreshed = true;
                self.auth.invalidate(scope).await;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(RegistryError::Denied {
                    context: context.to_string(),
                    status: status.as_u16(),
                });
            }
            return Ok(Ok(response));
        }
    }
}

/// One request to send: what [`RegistryClient::send_checked`] needs besides its check.
struct Request<'a> {
    method: Method,
    path: &'a str,
    scope: &'a TokenScope,
    context: &'a str,
    accept: Option<&'a str>,
    json: Option<&'a serde_json::Value>,
}

fn build_http(options: &ClientOptions) -> Result<reqwest::Client, RegistryError> {
    let builder = outbound::http_client_builder(&options.extra_roots_pem)?;
    builder
        .pool_max_idle_per_host(options.concurrency.max(1))
        .build()
        .map_err(|e| RegistryError::Setup(OutboundError::Tls(error_chain(&e))))
}

/// The path as a low-cardinality template for telemetry: the repository and the item are
/// replaced by placeholders and the query is dropped.
fn route_template(path: &str, scope: &TokenScope) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let mut route = match scope {
        TokenScope::Repository(repository) => path.replacen(
            &format!("/{}/", encode_repo(repository)),
            "/{repository}/",
            1,
        ),
        TokenScope::Catalog => path.to_string(),
    };
    for (marker, placeholder) in [
        ("/manifests/", "{reference}"),
        ("/_tags/", "{tag}"),
        ("/_manifests/", "{digest}"),
        ("/referrers/", "{digest}"),
    ] {
        if let Some(at) = route.find(marker) {
            route.truncate(at + marker.len());
            route.push_str(placeholder);
            break;
        }
    }
    route
}

/// `/v2/{repo}/manifests/{digest}`.
fn manifest_path(repository: &str, digest: &str) -> String {
    format!(
        "/v2/{}/manifests/{}",
        encode_repo(repository),
        encode_segment(digest)
    )
}

/// `/acr/v1/{repo}/_manifests/{digest}`.
fn manifest_attributes_path(repository: &str, digest: &str) -> String {
    format!(
        "/acr/v1/{}/_manifests/{}",
        encode_repo(repository),
        encode_segment(digest)
    )
}

/// `/acr/v1/{repo}/_tags/{tag}`.
fn tag_path(repository: &str, tag: &str) -> String {
    format!(
        "/acr/v1/{}/_tags/{}",
        encode_repo(repository),
        encode_segment(tag)
    )
}

/// Percent-encodes a repository name for a path, keeping its `/` separators.
fn encode_repo(repository: &str) -> String {
    repository
        .split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes one path segment (tags, digests); `:` is kept, as ACR expects it raw.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_templates_hide_names() {
        let repo = TokenScope::Repository("team/app".to_string());
        assert_eq!(
            route_template("/acr/v1/team/app/_tags?n=100&orderby=timedesc", &repo),
            "/acr/v1/{repository}/_tags"
        );
        assert_eq!(
            route_template("/v2/team/app/manifests/sha256:abc", &repo),
            "/v2/{repository}/manifests/{reference}"
        );
        assert_eq!(
            route_template("/acr/v1/team/app/_tags/v1", &repo),
            "/acr/v1/{repository}/_tags/{tag}"
        );
        assert_eq!(
            route_template("/v2/_catalog?n=100", &TokenScope::Catalog),
            "/v2/_catalog"
        );
    }

    #[test]
    fn encodes_paths() {
        assert_eq!(encode_repo("team/app"), "team/app");
        assert_eq!(encode_segment("sha256:ab"), "sha256:ab");
        assert_eq!(encode_segment("a b&c"), "a%20b%26c");
    }
}
