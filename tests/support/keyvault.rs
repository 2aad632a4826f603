//! A local Key Vault secrets endpoint over TLS, answering the real
//! azure_security_keyvault_secrets client: a first unauthenticated request gets the 401
//! challenge, the retry carries the managed identity's bearer token. It can be degraded:
//! answer every authorised request 500, or never answer it.

use super::identity::ENTRA_TOKEN;
use super::tls::TlsServer;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::{Arc, Mutex};

/// How the vault answers authorised requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// With the secret (or 404).
    #[default]
    Healthy,
    /// 500, every time.
    Failing,
    /// Never (the request hangs until the client gives up).
    Hanging,
}

#[derive(Default)]
struct Vault {
    secrets: Mutex<std::collections::HashMap<String, String>>,
    reads: Mutex<usize>,
    attempts: Mutex<usize>,
    mode: Mutex<Mode>,
}

/// A running fake vault.
pub struct KeyVault {
    server: TlsServer,
    vault: Arc<Vault>,
}

impl KeyVault {
    /// Starts a vault holding `name = value`.
    pub async fn start(name: &str, value: &str) -> KeyVault {
        let vault = Arc::new(Vault::default());
        vault
            .secrets
            .lock()
            .expect("lock")
            .insert(name.to_string(), value.to_string());
        let app = Router::new()
            .route("/secrets/{name}", get(read))
            .route("/secrets/{name}/", get(read))
            .with_state(vault.clone());
        KeyVault {
            server: TlsServer::start(app).await,
            vault,
        }
    }

    /// `https://localhost:PORT/`.
    pub fn url(&self) -> String {
        format!("{}/", self.server.url)
    }

    /// The certificate to trust.
    pub fn cert_path(&self) -> String {
        self.server.cert_path()
    }

    /// Rotates a secret.
    pub fn set(&self, name: &str, value: &str) {
        self.vault
            .secrets
            .lock()
            .expect("lock")
            .insert(name.to_string(), value.to_string());
    }

    /// How many authorised reads were served.
    pub fn reads(&self) -> usize {
        *self.vault.reads.lock().expect("lock")
    }

    /// How many authorised requests arrived, whatever they were answered (or not).
    pub fn attempts(&self) -> usize {
        *self.vault.attempts.lock().expect("lock")
    }

    /// Sets how authorised requests are answered from now on.
    pub fn set_mode(&self, mode: Mode) {
        *self.vault.mode.lock().expect("lock") = mode;
    }
}

async fn read(
    State(vault): State<Arc<Vault>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let authorised = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {ENTRA_TOKEN}").as_str());
    if !authorised {
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                r#"Bearer authorization="https://login.microsoftonline.com/tenant", resource="https://vault.azure.net""#,
            )],
        )
            .into_response();
    }
    *vault.attempts.lock().expect("lock") += 1;
    let mode = *vault.mode.lock().expect("lock");
    match mode {
        Mode::Healthy => {}
        Mode::Failing => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({"error": {"code": "InternalError", "message": "vault down"}})),
            )
                .into_response();
        }
        Mode::Hanging => std::future::pending::<()>().await,
    }
    let value = vault.secrets.lock().expect("lock").get(&name).cloned();
    match value {
        Some(value) => {
            *vault.reads.lock().expect("lock") += 1;
            Json(serde_json::json!({
                "value": value,
                "id": format!("https://localhost/secrets/{name}/1"),
                "attributes": {"enabled": true},
            }))
            .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": {"code": "SecretNotFound", "message": name}})),
        )
            .into_response(),
    }
}
