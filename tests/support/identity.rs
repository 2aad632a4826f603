//! A local managed-identity endpoint, as App Service and Azure Functions provide one
//! (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), for the real azure_identity crate to call.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The header value the endpoint expects in `x-identity-header`.
pub const IDENTITY_HEADER: &str = "local-identity-header";
/// The Entra access token it issues.
pub const ENTRA_TOKEN: &str = "entra-access-token-for-tests";

/// The query parameters of every token request received.
type Log = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// A running identity endpoint.
pub struct IdentityEndpoint {
    /// `http://127.0.0.1:PORT/msi/token`.
    pub url: String,
    requests: Log,
    _server: tokio::task::JoinHandle<()>,
}

impl IdentityEndpoint {
    /// Starts the endpoint on a free loopback port.
    pub async fn start() -> IdentityEndpoint {
        let requests: Log = Arc::default();
        let app = Router::new()
            .route("/msi/token", get(token))
            .with_state(requests.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind identity endpoint");
        let addr = listener.local_addr().expect("local addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        IdentityEndpoint {
            url: format!("http://{addr}/msi/token"),
            requests,
            _server: server,
        }
    }

    /// The query parameters of every token request received.
    pub fn requests(&self) -> Vec<HashMap<String, String>> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The environment a Functions host gives the handler.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("IDENTITY_ENDPOINT", self.url.clone()),
            ("IDENTITY_HEADER", IDENTITY_HEADER.to_string()),
        ]
    }
}

async fn token(
    State(requests): State<Log>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, StatusCode> {
    if headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        != Some(IDENTITY_HEADER)
    {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let resource = query.get("resource").cloned().unwrap_or_default();
    if let Ok(mut list) = requests.lock() {
        list.push(query);
    }
    let expires_on = chrono::Utc::now().timestamp() + 3600;
    // Storage (Azurite) reads the token's claims; the other services take it as it is.
    let token = if resource.starts_with("https://storage.azure.com") {
        storage_token()
    } else {
        ENTRA_TOKEN.to_string()
    };
    Ok(Json(serde_json::json!({
        "access_token": token,
        "expires_on": expires_on.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    })))
}

/// An unsigned JWT with the claims Azurite's OAuth check reads (audience, issuer, validity).
pub fn storage_token() -> String {
    use base64::Engine;
    let now = chrono::Utc::now().timestamp();
    let encode = |value: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    let header = encode(serde_json::json!({"alg": "RS256", "typ": "JWT"}));
    let claims = encode(serde_json::json!({
        "aud": "https://storage.azure.com",
        "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000001/",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "oid": "00000000-0000-0000-0000-0000000000aa",
        "tid": "00000000-0000-0000-0000-000000000001",
    }));
    format!("{header}.{claims}.c2lnbmF0dXJl")
}
