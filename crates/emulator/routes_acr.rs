//! The ACR metadata API under `/acr/v1/` (catalog, tags, manifests, attributes).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Shared;
use super::auth::{Action, Need, authorize};
use super::http::{
    ApiError, ApiResult, Query, base_and_host, json_response, percent_decode, with_next_link,
};
use super::state::{AttributesPatch, Manifest, Order, Refusal, Repo, Tag};

/// A parsed `/acr/v1/...` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AcrRoute {
    Catalog,
    Repo(String),
    Tags(String),
    Tag(String, String),
    Manifests(String),
    Manifest(String, String),
}

impl AcrRoute {
    fn repo(&self) -> Option<&str> {
        match self {
            AcrRoute::Catalog => None,
            AcrRoute::Repo(r)
            | AcrRoute::Tags(r)
            | AcrRoute::Tag(r, _)
            | AcrRoute::Manifests(r)
            | AcrRoute::Manifest(r, _) => Some(r),
        }
    }
}

/// Parses the raw path after `/acr/v1/`; repository names may contain raw `/` or `%2F`.
pub(crate) fn parse_acr(rest: &str) -> Option<AcrRoute> {
    let rest = rest.trim_end_matches('/');
    if rest == "_catalog" {
        return Some(AcrRoute::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let repo = |k: usize| {
        let name = percent_decode(&segs[..k].join("/"));
        (!name.is_empty()).then_some(name)
    };
    if n >= 3 {
        let item = percent_decode(segs[n - 1]);
        match segs[n - 2] {
            "_tags" => return Some(AcrRoute::Tag(repo(n - 2)?, item)),
            "_manifests" => return Some(AcrRoute::Manifest(repo(n - 2)?, item)),
            _ => {}
        }
    }
    match segs[n - 1] {
        "_tags" => Some(AcrRoute::Tags(repo(n - 1)?)),
        "_manifests" => Some(AcrRoute::Manifests(repo(n - 1)?)),
        _ => Some(AcrRoute::Repo(repo(n)?)),
    }
}

/// Request context shared by the handlers.
struct Ctx<'a> {
    shared: &'a Shared,
    host: String,
    query: Query,
    body: Bytes,
}

/// Entry point for `/acr/v1/{*rest}`.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rest = uri.path().strip_prefix("/acr/v1/").unwrap_or_default();
    let Some(route) = parse_acr(rest) else {
        return ApiError::not_found(uri.path()).into_response();
    };
    let ctx = Ctx {
        shared: &shared,
        host: base_and_host(&headers).1,
        query: Query::parse(uri.query()),
        body,
    };
    let need = match (&route, route.repo()) {
        (_, None) => Need::Catalog,
        (_, Some(repo)) => Need::Repo(repo.to_string(), action_for(&method)),
    };
    if let Err(e) = authorize(&shared, &headers, &need) {
        return e.into_response();
    }
    dispatch(&ctx, &method, route).unwrap_or_else(IntoResponse::into_response)
}

fn action_for(method: &Method) -> Action {
    match *method {
        Method::DELETE => Action::Delete,
        Method::PATCH => Action::MetadataWrite,
        _ => Action::Read,
    }
}

fn dispatch(ctx: &Ctx<'_>, method: &Method, route: AcrRoute) -> ApiResult {
    match (method.clone(), route) {
        (Method::GET, AcrRoute::Catalog) => {
            super::routes_v2::catalog(ctx.shared, &ctx.query, "/acr/v1/_catalog")
        }
        (Method::GET, AcrRoute::Repo(repo)) => repo_attributes(ctx, &repo),
        (Method::DELETE, AcrRoute::Repo(repo)) => delete_repo(ctx, &repo),
        (Method::GET, AcrRoute::Tags(repo)) => list_tags(ctx, &repo),
        (Method::GET, AcrRoute::Tag(repo, tag)) => get_tag(ctx, &repo, &tag),
        (Method::PATCH, AcrRoute::Tag(repo, tag)) => patch_tag(ctx, &repo, &tag),
        (Method::DELETE, AcrRoute::Tag(repo, tag)) => delete_tag(ctx, &repo, &tag),
        (Method::GET, AcrRoute::Manifests(repo)) => list_manifests(ctx, &repo),
        (Method::GET, AcrRoute::Manifest(repo, digest)) => get_manifest(ctx, &repo, &digest),
        (Method::PATCH, AcrRoute::Manifest(repo, digest)) => patch_manifest(ctx, &repo, &digest),
        (m, _) => Err(ApiError::unsupported(m.as_str())),
    }
}

/// A tag as the ACR API shows it.
pub(crate) fn tag_json(tag: &Tag) -> Value {
    json!({
        "name": &*tag.name,
        "digest": &*tag.digest,
        "createdTime": tag.created_time.as_deref(),
        "lastUpdateTime": tag.last_update_time.as_deref(),
        "signed": false,
        "changeableAttributes": tag.attrs,
    })
}

/// A manifest as the ACR API shows it (`tags` omitted when untagged).
pub(crate) fn manifest_json(m: &Manifest) -> Value {
    let mut obj = Map::new();
    obj.insert("digest".into(), json!(&*m.digest));
    obj.insert("imageSize".into(), json!(m.image_size));
    obj.insert("createdTime".into(), json!(m.created_time.as_deref()));
    obj.insert(
        "lastUpdateTime".into(),
        json!(m.last_update_time.as_deref()),
    );
    let optional = [
        ("architecture", m.architecture.as_deref()),
        ("os", m.os.as_deref()),
        ("mediaType", m.media_type.as_deref()),
        ("configMediaType", m.config_media_type.as_deref()),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            obj.insert(key.into(), json!(v));
        }
    }
    if !m.tags.is_empty() {
        let tags: Vec<&str> = m.tags.iter().map(|t| &**t).collect();
        obj.insert("tags".into(), json!(tags));
    }
    obj.insert("changeableAttributes".into(), json!(m.attrs));
    Value::Object(obj)
}

fn with_repo<T>(
    ctx: &Ctx<'_>,
    name: &str,
    f: impl FnOnce(&Repo) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let registry = ctx.shared.registry_read();
    let repo = registry
        .repos
        .get(name)
        .ok_or_else(|| ApiError::name_unknown(name))?;
    f(repo)
}

fn with_repo_mut<T>(
    ctx: &Ctx<'_>,
    name: &str,
    f: impl FnOnce(&mut Repo) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut registry = ctx.shared.registry_write();
    let repo = registry
        .repos
        .get_mut(name)
        .ok_or_else(|| ApiError::name_unknown(name))?;
    f(repo)
}

fn repo_attributes(ctx: &Ctx<'_>, name: &str) -> ApiResult {
    with_repo(ctx, name, |repo| {
        let (created, updated) = repo.time_span();
        let (created, updated) = (created.map(|t| &**t), updated.map(|t| &**t));
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "registry": ctx.host,
                "imageName": name,
                "createdTime": created,
                "lastUpdateTime": updated,
                "manifestCount": repo.manifests.len(),
                "tagCount": repo.tags.len(),
                "changeableAttributes": {
                    "deleteEnabled": true, "writeEnabled": true, "readEnabled": true, "listEnabled": true,
                },
            }),
        ))
    })
}

fn delete_repo(ctx: &Ctx<'_>, name: &str) -> ApiResult {
    let mut registry = ctx.shared.registry_write();
    let repo = registry
        .repos
        .remove(name)
        .ok_or_else(|| ApiError::name_unknown(name))?;
    let manifests: Vec<&str> = repo.manifests.keys().map(|d| &**d).collect();
    let tags: Vec<&str> = repo.tags.keys().map(|t| &**t).collect();
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({ "manifestsDeleted": manifests, "tagsDeleted": tags }),
    ))
}

fn list_tags(ctx: &Ctx<'_>, name: &str) -> ApiResult {
    let n = ctx.shared.page_size(ctx.query.page_size()?);
    let orderby = ctx.query.get("orderby");
    let order = Order::parse(orderby);
    with_repo(ctx, name, |repo| {
        let (page, more) = repo.tag_page(order, n, ctx.query.get("last"), ctx.query.get("digest"));
        let last = page.last().map(|t| t.name.to_string()).unwrap_or_default();
        let tags: Vec<Value> = page.into_iter().map(tag_json).collect();
        let body = json!({ "registry": ctx.host, "imageName": name, "tags": tags });
        let path = format!("/acr/v1/{name}/_tags");
        Ok(link_page(
            json_response(StatusCode::OK, &body),
            more,
            &path,
            &last,
            n,
            orderby,
        ))
    })
}

/// The next page's Link carries `last`, `n` and `orderby`, not a `digest` filter: a client
/// that asked for one manifest's tags must not take the tags of later pages for that
/// manifest's (the acr-cli reads `last` alone from the Link; whether ACR repeats the filter
/// is not documented, so the emulator takes the case a client must survive).
fn link_page(
    response: Response,
    more: bool,
    path: &str,
    last: &str,
    n: usize,
    orderby: Option<&str>,
) -> Response {
    let n_text = n.to_string();
    let mut params = vec![("last", last), ("n", n_text.as_str())];
    if let Some(ob) = orderby {
        params.push(("orderby", ob));
    }
    with_next_link(response, more, path, &params)
}

fn list_manifests(ctx: &Ctx<'_>, name: &str) -> ApiResult {
    let n = ctx.shared.page_size(ctx.query.page_size()?);
    let orderby = ctx.query.get("orderby");
    with_repo(ctx, name, |repo| {
        let (page, more) = repo.manifest_page(Order::parse(orderby), n, ctx.query.get("last"));
        let last = page
            .last()
            .map(|m| m.digest.to_string())
            .unwrap_or_default();
        let items: Vec<Value> = page.into_iter().map(manifest_json).collect();
        let body = json!({ "registry": ctx.host, "imageName": name, "manifests": items });
        let path = format!("/acr/v1/{name}/_manifests");
        Ok(link_page(
            json_response(StatusCode::OK, &body),
            more,
            &path,
            &last,
            n,
            orderby,
        ))
    })
}

fn tag_response(ctx: &Ctx<'_>, repo: &str, tag: &Tag) -> Response {
    json_response(
        StatusCode::OK,
        &json!({ "registry": ctx.host, "imageName": repo, "tag": tag_json(tag) }),
    )
}

fn get_tag(ctx: &Ctx<'_>, name: &str, tag: &str) -> ApiResult {
    with_repo(ctx, name, |repo| {
        let t = repo
            .tags
            .get(tag)
            .ok_or_else(|| ApiError::tag_unknown(tag))?;
        Ok(tag_response(ctx, name, t))
    })
}

fn parse_patch(body: &Bytes) -> Result<AttributesPatch, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!("invalid attributes body: {e}"),
        )
    })
}

fn patch_tag(ctx: &Ctx<'_>, name: &str, tag: &str) -> ApiResult {
    let patch = parse_patch(&ctx.body)?;
    with_repo_mut(ctx, name, |repo| {
        let t = repo
            .tags
            .get_mut(tag)
            .ok_or_else(|| ApiError::tag_unknown(tag))?;
        t.attrs.apply(&patch);
        Ok(tag_response(ctx, name, t))
    })
}

fn delete_tag(ctx: &Ctx<'_>, name: &str, tag: &str) -> ApiResult {
    with_repo_mut(ctx, name, |repo| match repo.delete_tag(tag) {
        Ok(()) => Ok(StatusCode::ACCEPTED.into_response()),
        Err(Refusal::NotFound) => Err(ApiError::tag_unknown(tag)),
        Err(Refusal::Locked) => Err(ApiError::locked(&format!("tag {tag}"))),
    })
}

fn manifest_response(ctx: &Ctx<'_>, name: &str, repo: &Repo, digest: &str) -> ApiResult {
    let m = repo
        .manifests
        .get(digest)
        .ok_or_else(|| ApiError::manifest_unknown(digest))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "registry": ctx.host, "imageName": name, "manifest": manifest_json(m) }),
    ))
}

fn get_manifest(ctx: &Ctx<'_>, name: &str, digest: &str) -> ApiResult {
    with_repo(ctx, name, |repo| manifest_response(ctx, name, repo, digest))
}

fn patch_manifest(ctx: &Ctx<'_>, name: &str, digest: &str) -> ApiResult {
    let patch = parse_patch(&ctx.body)?;
    with_repo_mut(ctx, name, |repo| {
        let m = repo
            .manifests
            .get_mut(digest)
            .ok_or_else(|| ApiError::manifest_unknown(digest))?;
        m.attrs.apply(&patch);
        manifest_response(ctx, name, repo, digest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_raw_and_encoded_repository_names() {
        let tags = Some(AcrRoute::Tags("team/app".into()));
        assert_eq!(parse_acr("team/app/_tags"), tags);
        assert_eq!(parse_acr("team%2Fapp/_tags"), tags);
        assert_eq!(parse_acr("team%2fapp/_tags/"), tags);
        assert_eq!(
            parse_acr("a/_manifests/sha256%3Aab"),
            Some(AcrRoute::Manifest("a".into(), "sha256:ab".into()))
        );
        assert_eq!(
            parse_acr("a/_tags/_tags"),
            Some(AcrRoute::Tag("a".into(), "_tags".into()))
        );
        assert_eq!(parse_acr("_catalog"), Some(AcrRoute::Catalog));
        assert_eq!(
            parse_acr("team/app"),
            Some(AcrRoute::Repo("team/app".into()))
        );
        assert_eq!(parse_acr("_tags"), None);
    }
}
