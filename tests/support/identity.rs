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
    Ok(Json(serde_json::json!({
        "access_token": ENTRA_TOKEN,
        "expires_on": expires_on.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    })))
}
