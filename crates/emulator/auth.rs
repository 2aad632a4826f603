//! Authentication: the ACR OAuth2 endpoints (`/oauth2/exchange`, `/oauth2/token`),
//! token minting, and per-request authorization (anonymous, Basic, Bearer).
//!
//! Tokens are well-formed JWTs (`header.payload.signature`, base64url). The signature
//! is an emulator-private SHA-256 over a per-instance secret, so clients can decode the
//! claims (`exp`, `iat`, `access`, `aad_identity`) while forged tokens are refused.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Shared;
use super::http::{ApiError, base_and_host, json_response};
use super::seed::{AuthMode, TokenAuth};

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Need {
    /// `GET /v2/`: any valid credential.
    Ping,
    /// `_catalog`.
    Catalog,
    /// An action on a repository.
    Repo(String, Action),
}

/// A repository action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// GET/HEAD (`pull` or `metadata_read`).
    Read,
    /// DELETE.
    Delete,
    /// PATCH (`metadata_write`).
    MetadataWrite,
}

impl Action {
    fn scope_action(self) -> &'static str {
        match self {
            Action::Read => "pull",
            Action::Delete => "delete",
            Action::MetadataWrite => "metadata_write",
        }
    }

    fn granted_by(self, action: &str) -> bool {
        match self {
            Action::Read => matches!(action, "*" | "pull" | "metadata_read"),
            Action::Delete => matches!(action, "*" | "delete"),
            Action::MetadataWrite => matches!(action, "*" | "metadata_write"),
        }
    }
}

const KNOWN_ACTIONS: [&str; 6] = [
    "*",
    "pull",
    "push",
    "delete",
    "metadata_read",
    "metadata_write",
];

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn signature(secret: &str, signing_input: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(secret.as_bytes());
    hasher.update(b".");
    hasher.update(signing_input.as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

/// Mints a JWT carrying `claims`.
pub(crate) fn make_jwt(secret: &str, claims: &Value) -> String {
    let header = json!({ "alg": "RS256", "typ": "JWT", "kid": "acr-emulator" });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = signature(secret, &input);
    format!("{input}.{sig}")
}

/// Verifies a JWT minted by this emulator and returns its claims.
pub(crate) fn parse_jwt(secret: &str, token: &str) -> Option<Value> {
    let (input, sig) = token.rsplit_once('.')?;
    if signature(secret, input) != sig {
        return None;
    }
    let (_, payload) = input.split_once('.')?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Claims of a valid, unexpired token of kind `token_use`.
fn valid_claims(secret: &str, token: &str, token_use: &str) -> Option<Value> {
    let claims = parse_jwt(secret, token)?;
    let exp = claims.get("exp")?.as_i64()?;
    let kind_ok = claims.get("token_use").and_then(Value::as_str) == Some(token_use);
    (kind_ok && exp > now_secs()).then_some(claims)
}

fn base_claims(host: &str, ttl: u64, token_use: &str) -> Value {
    let now = now_secs();
    json!({
        "jti": format!("{:016x}", rand::random::<u64>()),
        "sub": "emulator-identity",
        "iss": "Azure Container Registry",
        "aud": host,
        "version": "1.0",
        "iat": now,
        "nbf": now,
        "exp": now + i64::try_from(ttl).unwrap_or(i64::MAX / 2),
        "token_use": token_use,
    })
}

fn form(body: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn form_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

fn token_config(shared: &Shared) -> Result<TokenAuth, ApiError> {
    match shared.auth() {
        AuthMode::Token(cfg) => Ok(cfg),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "the token service is disabled: the emulator is not in token mode",
        )),
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
}

/// `POST /oauth2/exchange`: Entra access token → ACR refresh token.
pub(crate) async fn exchange(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    exchange_inner(&shared, &headers, &body).unwrap_or_else(IntoResponse::into_response)
}

fn exchange_inner(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let cfg = token_config(shared)?;
    let pairs = form(body);
    let grant = form_value(&pairs, "grant_type");
    if grant != Some("access_token") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!("unsupported grant_type {grant:?}; use access_token"),
        ));
    }
    let Some(aad_token) = form_value(&pairs, "access_token") else {
        return Err(unauthorized("access_token is required"));
    };
    if cfg
        .required_access_token
        .as_deref()
        .is_some_and(|t| t != aad_token)
    {
        return Err(unauthorized("the access token was not accepted"));
    }
    let (_, host) = base_and_host(headers);
    let mut claims = base_claims(&host, cfg.refresh_token_ttl_seconds, "refresh");
    claims["grant_type"] = json!("refresh_token");
    if let Some(tenant) = form_value(&pairs, "tenant") {
        claims["tenant"] = json!(tenant);
    }
    if cfg.abac {
        claims["aad_identity"] = json!({ "oid": "00000000-0000-0000-0000-0000000abac0" });
    }
    let token = make_jwt(&shared.secret, &claims);
    Ok(json_response(
        StatusCode::OK,
        &json!({ "refresh_token": token }),
    ))
}

/// `POST /oauth2/token`: ACR refresh token + scopes → ACR access token.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token_inner(&shared, &headers, &body).unwrap_or_else(IntoResponse::into_response)
}

fn token_inner(shared: &Shared, headers: &HeaderMap, body: &Bytes) -> Result<Response, ApiError> {
    let cfg = token_config(shared)?;
    let pairs = form(body);
    let grant = form_value(&pairs, "grant_type");
    if grant != Some("refresh_token") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!("unsupported grant_type {grant:?}; use refresh_token"),
        ));
    }
    let refresh = form_value(&pairs, "refresh_token").unwrap_or_default();
    if valid_claims(&shared.secret, refresh, "refresh").is_none() {
        return Err(unauthorized("the refresh token is invalid or expired"));
    }
    let scopes: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split_whitespace())
        .collect();
    let (_, host) = base_and_host(headers);
    let mut claims = base_claims(&host, cfg.access_token_ttl_seconds, "access");
    claims["grant_type"] = json!("refresh_token");
    claims["access"] = Value::Array(grant_scopes(&scopes, &cfg));
    let token = make_jwt(&shared.secret, &claims);
    Ok(json_response(
        StatusCode::OK,
        &json!({ "access_token": token }),
    ))
}

/// The `access` entries granted for requested scopes.
pub(crate) fn grant_scopes(scopes: &[&str], cfg: &TokenAuth) -> Vec<Value> {
    scopes
        .iter()
        .filter_map(|scope| grant_one(scope, cfg))
        .collect()
}

fn grant_one(scope: &str, cfg: &TokenAuth) -> Option<Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions
        .split(',')
        .filter(|a| KNOWN_ACTIONS.contains(a))
        .collect();
    let allowed = match kind {
        "registry" => name == "catalog",
        "repository" if name == "*" => !cfg.abac,
        "repository" => !cfg.deny_repositories.iter().any(|d| d == name),
        _ => false,
    };
    (allowed && !actions.is_empty())
        .then(|| json!({ "type": kind, "name": name, "actions": actions }))
}

fn token_allows(claims: &Value, need: &Need, cfg: &TokenAuth) -> bool {
    let entries = claims.get("access").and_then(Value::as_array);
    let entries = entries.map(Vec::as_slice).unwrap_or_default();
    let field = |e: &Value, k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let actions = |e: &Value| -> Vec<String> {
        e.get("actions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    match need {
        Need::Ping => true,
        Need::Catalog => entries
            .iter()
            .any(|e| field(e, "type") == "registry" && field(e, "name") == "catalog"),
        Need::Repo(repo, action) => {
            !cfg.deny_repositories.iter().any(|d| d == repo)
                && entries.iter().any(|e| {
                    let name = field(e, "name");
                    field(e, "type") == "repository"
                        && (name == *repo || name == "*")
                        && actions(e).iter().any(|a| action.granted_by(a))
                })
        }
    }
}

fn challenge_scope(need: &Need) -> Option<String> {
    match need {
        Need::Ping => None,
        Need::Catalog => Some("registry:catalog:*".to_string()),
        Need::Repo(repo, action) => Some(format!("repository:{repo}:{}", action.scope_action())),
    }
}

fn challenge(mode: &AuthMode, headers: &HeaderMap, need: &Need) -> String {
    let (base, host) = base_and_host(headers);
    match mode {
        AuthMode::Basic { .. } => format!("Basic realm=\"{base}\""),
        _ => {
            let mut value = format!("Bearer realm=\"{base}/oauth2/token\",service=\"{host}\"");
            if let Some(scope) = challenge_scope(need) {
                value.push_str(&format!(",scope=\"{scope}\""));
            }
            value
        }
    }
}

fn credential<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

fn basic_ok(headers: &HeaderMap, username: &str, password: &str) -> bool {
    let Some(encoded) = credential(headers, "Basic") else {
        return false;
    };
    let decoded = STANDARD.decode(encoded).ok();
    let text = decoded.and_then(|b| String::from_utf8(b).ok());
    text.is_some_and(|t| t == format!("{username}:{password}"))
}

/// Checks the request's credentials for `need`; the error carries the challenge.
pub(crate) fn authorize(shared: &Shared, headers: &HeaderMap, need: &Need) -> Result<(), ApiError> {
    let mode = shared.auth();
    let (ok, message) = match &mode {
        AuthMode::Anonymous => (true, ""),
        AuthMode::Basic { username, password } => (
            basic_ok(headers, username, password),
            "basic authentication required",
        ),
        AuthMode::Token(cfg) => {
            let claims = credential(headers, "Bearer")
                .and_then(|t| valid_claims(&shared.secret, t, "access"));
            match claims {
                None => (
                    false,
                    "authentication required: missing, invalid or expired access token",
                ),
                Some(c) => (
                    token_allows(&c, need, cfg),
                    "the access token does not grant this operation",
                ),
            }
        }
    };
    if ok {
        return Ok(());
    }
    let detail = match need {
        Need::Repo(repo, action) => {
            json!([{ "Type": "repository", "Name": repo, "Action": action.scope_action() }])
        }
        Need::Catalog => json!([{ "Type": "registry", "Name": "catalog", "Action": "*" }]),
        Need::Ping => Value::Null,
    };
    Err(unauthorized(message)
        .with_detail(detail)
        .with_header(header::WWW_AUTHENTICATE, challenge(&mode, headers, need)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_round_trip_and_tamper() {
        let token = make_jwt("s", &json!({ "exp": 1, "a": "b" }));
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(parse_jwt("s", &token).unwrap()["a"], "b");
        assert!(parse_jwt("other", &token).is_none());
        assert!(parse_jwt("s", "a.b").is_none());
    }

    #[test]
    fn scopes_in_abac_mode() {
        let cfg = TokenAuth {
            abac: true,
            deny_repositories: vec!["secret".into()],
            ..TokenAuth::default()
        };
        let granted = grant_scopes(
            &[
                "repository:*:*",
                "repository:team/app:pull,delete",
                "repository:secret:pull",
                "registry:catalog:*",
            ],
            &cfg,
        );
        assert_eq!(
            granted,
            vec![
                json!({"type": "repository", "name": "team/app", "actions": ["pull", "delete"]}),
                json!({"type": "registry", "name": "catalog", "actions": ["*"]}),
            ]
        );
        let claims = json!({ "access": granted });
        assert!(token_allows(
            &claims,
            &Need::Repo("team/app".into(), Action::Delete),
            &cfg
        ));
        assert!(!token_allows(
            &claims,
            &Need::Repo("team/app".into(), Action::MetadataWrite),
            &cfg
        ));
        assert!(token_allows(&claims, &Need::Catalog, &cfg));
    }
}
