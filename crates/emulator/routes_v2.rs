//! The distribution API under `/v2/` (ping, catalog, manifests, tags list, referrers).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;
use super::auth::{Action, Need, authorize};
use super::body::content_type;
use super::http::{ApiError, ApiResult, Query, json_response, percent_decode, with_next_link};
use super::seed::OCI_INDEX;
use super::state::{Manifest, Order, Refusal, Repo};

/// A parsed `/v2/...` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum V2Route {
    Catalog,
    Manifest(String, String),
    TagsList(String),
    Referrers(String, String),
}

/// Parses the raw path after `/v2/`.
pub(crate) fn parse_v2(rest: &str) -> Option<V2Route> {
    let rest = rest.trim_end_matches('/');
    if rest == "_catalog" {
        return Some(V2Route::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    if n < 2 {
        return None;
    }
    let repo = percent_decode(&segs[..n - 2].join("/"));
    if repo.is_empty() {
        return None;
    }
    let item = percent_decode(segs[n - 1]);
    match (segs[n - 2], segs[n - 1]) {
        ("manifests", _) => Some(V2Route::Manifest(repo, item)),
        ("tags", "list") => Some(V2Route::TagsList(repo)),
        ("referrers", _) => Some(V2Route::Referrers(repo, item)),
        _ => None,
    }
}

/// `GET /v2/`: the API version check.
pub(crate) async fn ping(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    match authorize(&shared, &headers, &Need::Ping) {
        Ok(()) => json_response(StatusCode::OK, &json!({})),
        Err(e) => e.into_response(),
    }
}

/// Entry point for `/v2/{*rest}`.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let rest = uri.path().strip_prefix("/v2/").unwrap_or_default();
    let Some(route) = parse_v2(rest) else {
        return ApiError::not_found(uri.path()).into_response();
    };
    let need = match &route {
        V2Route::Catalog => Need::Catalog,
        V2Route::Manifest(repo, _) if method == Method::DELETE => {
            Need::Repo(repo.clone(), Action::Delete)
        }
        V2Route::Manifest(repo, _) | V2Route::TagsList(repo) | V2Route::Referrers(repo, _) => {
            Need::Repo(repo.clone(), Action::Read)
        }
    };
    if let Err(e) = authorize(&shared, &headers, &need) {
        return e.into_response();
    }
    let query = Query::parse(uri.query());
    dispatch(&shared, &method, route, &query).unwrap_or_else(IntoResponse::into_response)
}

fn dispatch(shared: &Shared, method: &Method, route: V2Route, query: &Query) -> ApiResult {
    match (method.clone(), route) {
        (Method::GET, V2Route::Catalog) => catalog(shared, query, "/v2/_catalog"),
        (Method::GET, V2Route::Manifest(repo, reference)) => {
            get_manifest(shared, &repo, &reference, false)
        }
        (Method::HEAD, V2Route::Manifest(repo, reference)) => {
            get_manifest(shared, &repo, &reference, true)
        }
        (Method::DELETE, V2Route::Manifest(repo, reference)) => {
            delete_manifest(shared, &repo, &reference)
        }
        (Method::GET, V2Route::TagsList(repo)) => tags_list(shared, &repo, query),
        (Method::GET, V2Route::Referrers(repo, digest)) => referrers(shared, &repo, &digest, query),
        (m, _) => Err(ApiError::unsupported(m.as_str())),
    }
}

/// One catalog page (served at `/v2/_catalog` and `/acr/v1/_catalog`, given as `path`).
pub(super) fn catalog(shared: &Shared, query: &Query, path: &str) -> ApiResult {
    let n = query.page_size()?;
    let (names, more) = shared.registry_read().catalog_page(n, query.get("last"));
    let last = names.last().cloned().unwrap_or_default();
    let response = json_response(StatusCode::OK, &json!({ "repositories": names }));
    let n_text = n.to_string();
    Ok(with_next_link(
        response,
        more,
        path,
        &[("last", &last), ("n", &n_text)],
    ))
}

fn with_repo<T>(
    shared: &Shared,
    name: &str,
    f: impl FnOnce(&Repo) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let registry = shared.registry_read();
    let repo = registry
        .repos
        .get(name)
        .ok_or_else(|| ApiError::name_unknown(name))?;
    f(repo)
}

fn manifest_content_type(m: &Manifest) -> &str {
    content_type(m.media_type.as_deref(), !m.children.is_empty())
}

fn get_manifest(shared: &Shared, name: &str, reference: &str, head: bool) -> ApiResult {
    with_repo(shared, name, |repo| {
        let m = repo
            .resolve(reference)
            .ok_or_else(|| ApiError::manifest_unknown(reference))?;
        let body = if head {
            Body::empty()
        } else {
            Body::from(m.body.clone())
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        let values = [
            (header::CONTENT_TYPE, manifest_content_type(m).to_string()),
            (header::CONTENT_LENGTH, m.body.len().to_string()),
            (
                header::HeaderName::from_static("docker-content-digest"),
                m.digest.to_string(),
            ),
        ];
        for (key, value) in values {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(key, v);
            }
        }
        Ok(response)
    })
}

fn delete_manifest(shared: &Shared, name: &str, reference: &str) -> ApiResult {
    if !reference.starts_with("sha256:") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "provided digest did not match uploaded content: delete by digest only",
        )
        .with_detail(json!({ "Reference": reference })));
    }
    let result = shared.registry_write().delete_manifest(name, reference);
    match result {
        Ok(_) => Ok(StatusCode::ACCEPTED.into_response()),
        Err(Refusal::Locked) => Err(ApiError::locked(&format!("manifest {reference}"))),
        Err(Refusal::NotFound) => {
            let repo_known = shared.registry_read().repos.contains_key(name);
            Err(if repo_known {
                ApiError::manifest_unknown(reference)
            } else {
                ApiError::name_unknown(name)
            })
        }
    }
}

fn tags_list(shared: &Shared, name: &str, query: &Query) -> ApiResult {
    let n = query.page_size()?;
    with_repo(shared, name, |repo| {
        let (page, more) = repo.tag_page(Order::Default, n, query.get("last"), None);
        let names: Vec<&str> = page.iter().map(|t| &*t.name).collect();
        let last = names.last().copied().unwrap_or_default();
        let response = json_response(StatusCode::OK, &json!({ "name": name, "tags": names }));
        let n_text = n.to_string();
        let path = format!("/v2/{name}/tags/list");
        Ok(with_next_link(
            response,
            more,
            &path,
            &[("last", last), ("n", &n_text)],
        ))
    })
}

fn referrer_descriptor(m: &Manifest) -> Value {
    let artifact_type = m
        .artifact_type
        .clone()
        .or_else(|| m.config_media_type.clone());
    json!({
        "mediaType": manifest_content_type(m),
        "digest": &*m.digest,
        "size": m.body.len(),
        "artifactType": artifact_type,
    })
}

fn referrers(shared: &Shared, name: &str, digest: &str, query: &Query) -> ApiResult {
    let filter = query.get("artifactType");
    with_repo(shared, name, |repo| {
        let descriptors: Vec<Value> = repo
            .referrers_of(digest)
            .into_iter()
            .map(referrer_descriptor)
            .filter(|d| filter.is_none_or(|f| d["artifactType"] == f))
            .collect();
        let body = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors });
        let mut response = json_response(StatusCode::OK, &body);
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
        if filter.is_some() {
            response.headers_mut().insert(
                "oci-filters-applied",
                HeaderValue::from_static("artifactType"),
            );
        }
        Ok(response)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v2_paths() {
        assert_eq!(
            parse_v2("team/app/manifests/latest"),
            Some(V2Route::Manifest("team/app".into(), "latest".into()))
        );
        assert_eq!(
            parse_v2("team%2Fapp/manifests/sha256:ab"),
            Some(V2Route::Manifest("team/app".into(), "sha256:ab".into()))
        );
        assert_eq!(
            parse_v2("manifests/manifests/x"),
            Some(V2Route::Manifest("manifests".into(), "x".into()))
        );
        assert_eq!(parse_v2("a/tags/list"), Some(V2Route::TagsList("a".into())));
        assert_eq!(
            parse_v2("a/referrers/sha256:ab"),
            Some(V2Route::Referrers("a".into(), "sha256:ab".into()))
        );
        assert_eq!(parse_v2("_catalog"), Some(V2Route::Catalog));
        assert_eq!(parse_v2("manifests/x"), None);
        assert_eq!(parse_v2("a/blobs/sha256:ab"), None);
    }
}
