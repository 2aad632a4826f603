//! The images Azure workloads run, from Azure Resource Graph
//! (`POST {arm}/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01`).
//!
//! One query, [`IN_USE_QUERY`], over the `Resources` table, paged with `$skipToken` until
//! the last page. What it reads, per resource type (Resource Graph's lowercase names):
//!
//! | type | image strings |
//! |---|---|
//! | `microsoft.app/containerapps`, `microsoft.app/jobs` | `properties.template.containers[].image`, `properties.template.initContainers[].image` |
//! | `microsoft.containerinstance/containergroups` | `properties.containers[].properties.image`, `properties.initContainers[].properties.image` |
//! | `microsoft.web/sites`, `microsoft.web/sites/slots` | `properties.siteConfig.linuxFxVersion` / `windowsFxVersion` and `properties.siteProperties.properties[]` named `LinuxFxVersion` / `WindowsFxVersion`, when they are `DOCKER\|image` |
//!
//! Not covered, because Resource Graph's `Resources` table does not hold them (its table
//! reference lists neither `microsoft.app/containerapps/revisions` nor
//! `microsoft.web/sites/sitecontainers`): older revisions still active in a Container App in
//! multiple-revision mode, and App Service sidecar containers (`linuxFxVersion` is then
//! `sitecontainers`); nor `COMPOSE|…` apps or AKS pods. Those need the resource providers'
//! own APIs.
//!
//! Fails closed: a failed page (after three tries of a 429), `resultTruncated`, fewer rows
//! than `totalRecords`, `x-ms-tenant-subscription-limit-hit: true`, an unreadable answer or
//! an unparseable image of this registry is an [`InUseError`], never a shorter list.

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
    "microsoft.containerinstance/containergroups",
    "microsoft.web/sites",
    "microsoft.web/sites/slots",
];

/// The query sent (ordered by `id`, which paging needs to be stable).
pub const IN_USE_QUERY: &str = "Resources | where type in~ ('microsoft.app/containerapps', 'microsoft.app/jobs', 'microsoft.containerinstance/containergroups', 'microsoft.web/sites', 'microsoft.web/sites/slots') | project id, type, properties | order by id asc";

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
            endpoint: arm_endpoint,
            credential,
            http,
            format: ResultFormat::default(),
            page_size: None,
        }
    }

    /// Asks for this result format.
    pub fn with_result_format(mut self, format: ResultFormat) -> InUseClient {
        self.format = format;
        self
    }

    /// Asks for pages of at most `rows` rows (`$top`, 1 to 1000; Resource Graph's own page
    /// size otherwise).
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
        let login_server = normalize_login_server(login_server);
        let mut found = BTreeSet::new();
        for (field, ids) in [
            ("subscriptions", subscriptions),
            ("managementGroups", groups),
        ] {
            if ids.is_empty() {
                continue;
            }
            for row in self.rows(field, &ids).await? {
                images_of_row(&row, &login_server, &mut found)?;
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Every row of the query in these scopes, through every page.
    async fn rows(&self, field: &str, ids: &[&str]) -> Result<Vec<Map<String, Value>>, InUseError> {
        let scope = format!("{field} {}", ids.join(", "));
        let token = bearer(self.credential.as_ref(), &self.endpoint)
            .await
            .map_err(|detail| InUseError::Credential {
                endpoint: self.endpoint.to_string(),
                detail,
            })?;
        let mut rows = Vec::new();
        let mut skip_token: Option<String> = None;
        let mut seen_tokens = BTreeSet::new();
        for page in 1..=MAX_PAGES {
            let mut options = Map::new();
            options.insert(
                "resultFormat".into(),
                json!(match self.format {
                    ResultFormat::ObjectArray => "objectArray",
                    ResultFormat::Table => "table",
                }),
            );
            if let Some(top) = self.page_size {
                options.insert("$top".into(), json!(top));
            }
            if let Some(t) = &skip_token {
                options.insert("$skipToken".into(), json!(t));
            }
            let body = json!({ field: ids, "query": IN_USE_QUERY, "options": options });
            let answer = self.post(&token, &body, &scope, page).await?;
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

/// How long a 429 asks to wait: `Retry-After` seconds, else `x-ms-user-quota-resets-after`
/// (`hh:mm:ss`), else 1 s; at most 10 s.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
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

/// The image strings of one row, by its type.
fn image_strings(resource_type: &str, properties: &Value) -> Vec<String> {
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
    match resource_type {
        "microsoft.app/containerapps" | "microsoft.app/jobs" => {
            let template = properties.get("template");
            let mut images = strings_at(template.and_then(|t| t.get("containers")), "/image");
            images.extend(strings_at(
                template.and_then(|t| t.get("initContainers")),
                "/image",
            ));
            images
        }
        "microsoft.containerinstance/containergroups" => {
            let mut images = strings_at(properties.get("containers"), "/properties/image");
            images.extend(strings_at(
                properties.get("initContainers"),
                "/properties/image",
            ));
            images
        }
        "microsoft.web/sites" | "microsoft.web/sites/slots" => {
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
                .into_iter()
                .filter(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("DOCKER|"))
                .collect()
        }
        _ => Vec::new(),
    }
}

fn images_of_row(
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
    let properties = row.get("properties").cloned().unwrap_or(Value::Null);
    for image in image_strings(&resource_type, &properties) {
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
            image_strings("microsoft.app/containerapps", &app),
            ["a", "b"]
        );
        assert_eq!(image_strings("microsoft.app/jobs", &app), ["a", "b"]);
        let aci = json!({"containers": [{"properties": {"image": "c"}}], "initContainers": [{"properties": {"image": "d"}}]});
        assert_eq!(
            image_strings("microsoft.containerinstance/containergroups", &aci),
            ["c", "d"]
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
            image_strings("microsoft.web/sites", &site),
            ["DOCKER|e", "DOCKER|f"]
        );
        assert!(image_strings("microsoft.storage/storageaccounts", &app).is_empty());
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
