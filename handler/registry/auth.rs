//! Signing in to the registry.
//!
//! Order, as in the issue and acr purge: `-u/-p` (HTTP Basic; an empty username or the zero
//! GUID means the password is an ACR refresh token); otherwise, when the registry answers
//! `/v2/` with a Bearer challenge, an Azure credential (managed identity, workload identity,
//! or developer tools) whose Entra token is exchanged at `/oauth2/exchange` for an ACR
//! refresh token, then at `/oauth2/token` for access tokens. A registry that answers `/v2/`
//! with 200 is used anonymously (local registries).
//!
//! Access tokens are cached per scope and renewed before they expire. When the refresh token
//! itself expires (ABAC refresh tokens live 3 h, acr-cli#641) it is exchanged again instead of
//! failing. ABAC registries (refresh token with an `aad_identity` claim) ignore
//! `repository:*:*`, so per-repository scopes are requested in batches.

use super::Endpoint;
use super::error::{RegistryError, error_chain, short_body};
use super::transport::{Route, Transport};
use azure_core::credentials::TokenCredential;
use base64::Engine;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The Entra scope of ACR's data plane.
pub const ACR_SCOPE: &str = "https://containerregistry.azure.net/.default";
/// The username that marks the password as an ACR refresh token.
pub const ZERO_GUID: &str = "00000000-0000-0000-0000-000000000000";
/// Actions requested per repository on ABAC registries.
const ABAC_ACTIONS: &str = "pull,delete,metadata_read,metadata_write";

/// How to sign in.
#[derive(Clone)]
pub enum Credentials {
    /// No credentials (only for registries that do not ask for any).
    Anonymous,
    /// HTTP Basic: admin user, scope-map token, or service principal.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// An ACR refresh token (e.g. from `az acr login --expose-token`).
    RefreshToken(String),
    /// An Entra credential, exchanged for ACR tokens.
    Entra(Arc<dyn TokenCredential>),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Credentials::Anonymous => "Anonymous",
            Credentials::Basic { .. } => "Basic",
            Credentials::RefreshToken(_) => "RefreshToken",
            Credentials::Entra(_) => "Entra",
        };
        write!(f, "Credentials::{kind}")
    }
}

impl Credentials {
    /// Credentials from `-u/-p`, as acr purge reads them. `None` when neither is given.
    pub fn from_flags(
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<Option<Credentials>, String> {
        match (username, password) {
            (None, None) => Ok(None),
            (_, None) | (_, Some("")) => {
                Err("unable to resolve authentication, missing identity token or password".into())
            }
            (None | Some("") | Some(ZERO_GUID), Some(token)) => {
                Ok(Some(Credentials::RefreshToken(token.to_string())))
            }
            (Some(user), Some(password)) => Ok(Some(Credentials::Basic {
                username: user.to_string(),
                password: password.to_string(),
            })),
        }
    }

    /// The Azure credential of this environment: managed identity when `IDENTITY_ENDPOINT`
    /// is set (user-assigned when `AZURE_CLIENT_ID` is set), workload identity when
    /// `AZURE_FEDERATED_TOKEN_FILE` is set, else developer tools (az / azd login).
    pub fn from_environment() -> Result<Credentials, RegistryError> {
        Ok(Credentials::Entra(crate::outbound::azure_credential()?))
    }
}

/// What a request needs access to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TokenScope {
    /// The repository catalog.
    Catalog,
    /// One repository (read, delete, metadata).
    Repository(String),
}

/// Produces `Authorization` headers.
pub(crate) struct Authenticator {
    kind: Kind,
}

enum Kind {
    Anonymous,
    Basic(String),
    Bearer(Box<Bearer>),
}

struct Bearer {
    endpoint: Endpoint,
    service: String,
    source: RefreshSource,
    refresh: tokio::sync::Mutex<Option<Jwt>>,
    access: tokio::sync::Mutex<HashMap<String, Jwt>>,
    batches: std::sync::Mutex<HashMap<String, String>>,
    abac: AtomicBool,
}

enum RefreshSource {
    Fixed(String),
    Entra(Arc<dyn TokenCredential>),
}

impl Authenticator {
    pub fn new(credentials: Credentials, endpoint: &Endpoint, service: Option<String>) -> Self {
        let bearer = |source| {
            Kind::Bearer(Box::new(Bearer {
                endpoint: endpoint.clone(),
                service: service.unwrap_or_else(|| endpoint.host().to_string()),
                source,
                refresh: Default::default(),
                access: Default::default(),
                batches: Default::default(),
                abac: AtomicBool::new(false),
            }))
        };
        let kind = match credentials {
            Credentials::Anonymous => Kind::Anonymous,
            Credentials::Basic { username, password } => {
                let raw = format!("{username}:{password}");
                Kind::Basic(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
            Credentials::RefreshToken(token) => bearer(RefreshSource::Fixed(token)),
            Credentials::Entra(credential) => bearer(RefreshSource::Entra(credential)),
        };
        Authenticator { kind }
    }

    /// The `Authorization` header for a request needing `scope`, if any.
    pub async fn header(
        &self,
        transport: &Transport,
        scope: &TokenScope,
    ) -> Result<Option<String>, RegistryError> {
        match &self.kind {
            Kind::Anonymous => Ok(None),
            Kind::Basic(header) => Ok(Some(header.clone())),
            Kind::Bearer(bearer) => Ok(Some(format!(
                "Bearer {}",
                bearer.access_token(transport, scope).await?
            ))),
        }
    }

    /// Whether a 401 might be cured by fetching a new token.
    pub fn can_refresh(&self) -> bool {
        matches!(self.kind, Kind::Bearer(_))
    }

    /// Drops cached tokens after a 401, so the next request fetches new ones.
    pub async fn invalidate(&self, scope: &TokenScope) {
        if let Kind::Bearer(bearer) = &self.kind {
            let key = bearer.scope_string(scope);
            bearer.access.lock().await.remove(&key);
        }
    }

    /// Whether the registry uses ABAC repository permissions (known after the first token).
    pub fn is_abac(&self) -> bool {
        matches!(&self.kind, Kind::Bearer(b) if b.abac.load(Ordering::Relaxed))
    }

    /// Groups repositories into token batches of `size` (ABAC registries only need it).
    pub fn set_batches(&self, repositories: &[String], size: usize) {
        if let Kind::Bearer(bearer) = &self.kind
            && let Ok(mut batches) = bearer.batches.lock()
        {
            for chunk in repositories.chunks(size.max(1)) {
                let scope = chunk
                    .iter()
                    .map(|r| format!("repository:{r}:{ABAC_ACTIONS}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                for repo in chunk {
                    batches.insert(repo.clone(), scope.clone());
                }
            }
        }
    }
}

impl Bearer {
    fn scope_string(&self, scope: &TokenScope) -> String {
        if !self.abac.load(Ordering::Relaxed) {
            return "registry:catalog:* repository:*:*".to_string();
        }
        match scope {
            TokenScope::Catalog => "registry:catalog:*".to_string(),
            TokenScope::Repository(repo) => self
                .batches
                .lock()
                .ok()
                .and_then(|b| b.get(repo).cloned())
                .unwrap_or_else(|| format!("repository:{repo}:{ABAC_ACTIONS}")),
        }
    }

    async fn access_token(
        &self,
        transport: &Transport,
        scope: &TokenScope,
    ) -> Result<String, RegistryError> {
        // The refresh token tells whether the registry is ABAC, which shapes the scope.
        self.refresh_token(transport, false).await?;
        let key = self.scope_string(scope);
        let mut cache = self.access.lock().await;
        if let Some(token) = cache.get(&key).filter(|t| !t.expires_soon()) {
            return Ok(token.raw.clone());
        }
        let refresh = self.refresh_token(transport, false).await?;
        let token = match self.request_access(transport, &refresh, &key).await {
            Err(RegistryError::Denied { .. }) if matches!(self.source, RefreshSource::Entra(_)) => {
                // The refresh token expired or was revoked: exchange again once.
                let refresh = self.refresh_token(transport, true).await?;
                self.request_access(transport, &refresh, &key).await?
            }
            other => other?,
        };
        cache.insert(key, token.clone());
        Ok(token.raw)
    }

    async fn refresh_token(
        &self,
        transport: &Transport,
        force: bool,
    ) -> Result<String, RegistryError> {
        let mut slot = self.refresh.lock().await;
        if let Some(token) = slot.as_ref().filter(|t| !force && !t.expires_soon()) {
            return Ok(token.raw.clone());
        }
        let token = match &self.source {
            RefreshSource::Fixed(raw) => Jwt::decode(raw),
            RefreshSource::Entra(credential) => {
                let entra = credential
                    .get_token(&[ACR_SCOPE], None)
                    .await
                    .map_err(|e| {
                        RegistryError::Auth(format!("Azure credential: {}", error_chain(&e)))
                    })?;
                self.exchange(transport, entra.token.secret()).await?
            }
        };
        if token.abac {
            self.abac.store(true, Ordering::Relaxed);
        }
        let raw = token.raw.clone();
        *slot = Some(token);
        Ok(raw)
    }

    async fn exchange(&self, transport: &Transport, entra: &str) -> Result<Jwt, RegistryError> {
        let url = self.endpoint.url("/oauth2/exchange");
        let form = [
            ("grant_type", "access_token"),
            ("service", self.service.as_str()),
            ("access_token", entra),
        ];
        let response = transport
            .execute(
                Route {
                    method: "POST",
                    template: "/oauth2/exchange",
                    host: self.endpoint.host(),
                },
                "exchanging the Entra token at /oauth2/exchange",
                || transport.http.post(&url).form(&form),
            )
            .await?;
        let token = token_field(response, "refresh_token", "/oauth2/exchange").await?;
        Ok(Jwt::decode(&token))
    }

    async fn request_access(
        &self,
        transport: &Transport,
        refresh: &str,
        scope: &str,
    ) -> Result<Jwt, RegistryError> {
        let url = self.endpoint.url("/oauth2/token");
        let form = [
            ("grant_type", "refresh_token"),
            ("service", self.service.as_str()),
            ("scope", scope),
            ("refresh_token", refresh),
        ];
        let response = transport
            .execute(
                Route {
                    method: "POST",
                    template: "/oauth2/token",
                    host: self.endpoint.host(),
                },
                "requesting an access token at /oauth2/token",
                || transport.http.post(&url).form(&form),
            )
            .await?;
        let token = token_field(response, "access_token", "/oauth2/token").await?;
        Ok(Jwt::decode(&token))
    }
}

async fn token_field(
    response: reqwest::Response,
    field: &str,
    path: &str,
) -> Result<String, RegistryError> {
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(RegistryError::Denied {
            context: format!("{path} refused the credential"),
            status: status.as_u16(),
        });
    }
    if !status.is_success() {
        return Err(RegistryError::Status {
            context: path.to_string(),
            status: status.as_u16(),
            body: short_body(response).await,
        });
    }
    let body: serde_json::Value = response.json().await.map_err(|e| RegistryError::Protocol {
        context: path.to_string(),
        problem: error_chain(&e),
    })?;
    body.get(field)
        .and_then(|v| v.as_str())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| RegistryError::Protocol {
            context: path.to_string(),
            problem: format!("the answer has no {field}"),
        })
}

/// A token and the claims that matter: expiry and the ABAC marker. The signature is not
/// checked (the registry checks it); the claims only drive caching.
#[derive(Clone)]
struct Jwt {
    raw: String,
    expires_at: Option<i64>,
    issued_at: Option<i64>,
    abac: bool,
}

impl Jwt {
    fn decode(raw: &str) -> Jwt {
        let claims = raw
            .split('.')
            .nth(1)
            .and_then(|payload| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload.trim_end_matches('='))
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .unwrap_or_default();
        Jwt {
            raw: raw.to_string(),
            expires_at: claims.get("exp").and_then(|v| v.as_i64()),
            issued_at: claims.get("iat").and_then(|v| v.as_i64()),
            abac: claims.get("aad_identity").is_some(),
        }
    }

    /// True within the renewal margin before expiry: five minutes, or a fifth of the
    /// token's lifetime when that is shorter, and never under one second, since `exp` is in
    /// whole seconds and a token read late in a second may have almost none of its last one.
    fn expires_soon(&self) -> bool {
        let Some(exp) = self.expires_at else {
            return false;
        };
        let lifetime = self.issued_at.map_or(i64::MAX, |iat| exp - iat);
        let margin = 300.min(lifetime / 5).max(1);
        chrono::Utc::now().timestamp() + margin >= exp
    }
}

/// Parses `Bearer realm="…",service="…"` into its parameters (lower-case keys).
pub(crate) fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            after.split_once(',').unwrap_or((after, ""))
        };
        params.insert(key, value.to_string());
        rest = remainder.trim_start_matches([',', ' ']);
    }
    (scheme.to_ascii_lowercase(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_select_basic_or_refresh_token() {
        assert!(Credentials::from_flags(None, None).unwrap().is_none());
        assert!(matches!(
            Credentials::from_flags(Some(ZERO_GUID), Some("tok")),
            Ok(Some(Credentials::RefreshToken(t))) if t == "tok"
        ));
        assert!(matches!(
            Credentials::from_flags(Some(""), Some("tok")),
            Ok(Some(Credentials::RefreshToken(_)))
        ));
        assert!(matches!(
            Credentials::from_flags(Some("admin"), Some("pw")),
            Ok(Some(Credentials::Basic { .. }))
        ));
        assert!(Credentials::from_flags(Some("admin"), None).is_err());
    }

    #[test]
    fn jwt_claims_drive_expiry_and_abac() {
        let encode = |claims: &str| {
            format!(
                "h.{}.s",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims)
            )
        };
        let now = chrono::Utc::now().timestamp();
        let fresh = Jwt::decode(&encode(&format!(r#"{{"exp":{},"iat":{now}}}"#, now + 3600)));
        assert!(!fresh.expires_soon());
        assert!(!fresh.abac);
        let stale = Jwt::decode(&encode(&format!(
            r#"{{"exp":{},"iat":{}}}"#,
            now + 10,
            now - 90
        )));
        assert!(stale.expires_soon(), "10 s left of a 100 s lifetime");
        let long = Jwt::decode(&encode(&format!(r#"{{"exp":{},"iat":{now}}}"#, now + 100)));
        assert!(!long.expires_soon(), "100 s left of a 100 s lifetime");
        let abac = Jwt::decode(&encode(&format!(
            r#"{{"exp":{},"aad_identity":"x"}}"#,
            now + 3600
        )));
        assert!(abac.abac);
        assert!(!Jwt::decode("opaque").expires_soon());
    }

    #[test]
    fn parses_bearer_challenges() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://r.azurecr.io/oauth2/token",service="r.azurecr.io",scope="repository:a:pull""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(params["realm"], "https://r.azurecr.io/oauth2/token");
        assert_eq!(params["service"], "r.azurecr.io");
        assert_eq!(params["scope"], "repository:a:pull");
        let (scheme, params) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(scheme, "basic");
        assert_eq!(params["realm"], "Registry Realm");
    }
}
