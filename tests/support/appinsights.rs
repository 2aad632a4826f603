//! A fake Application Insights ingestion endpoint (`POST /v2/track`, gzip JSON envelopes)
//! over TLS, as the exporter insists on https.

use super::tls::TlsServer;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use std::io::Read;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Received {
    envelopes: Vec<serde_json::Value>,
    authorizations: Vec<Option<String>>,
    raw: Vec<String>,
}

/// A running ingestion endpoint.
pub struct Ingestion {
    server: TlsServer,
    received: Arc<Mutex<Received>>,
}

impl Ingestion {
    /// Starts the endpoint.
    pub async fn start() -> Ingestion {
        let received: Arc<Mutex<Received>> = Arc::default();
        let app = Router::new()
            .route("/v2/track", post(track))
            .with_state(received.clone());
        Ingestion {
            server: TlsServer::start(app).await,
            received,
        }
    }

    /// A connection string pointing at this endpoint.
    pub fn connection_string(&self) -> String {
        format!(
            "InstrumentationKey=00000000-0000-0000-0000-0000000000aa;IngestionEndpoint={}/",
            self.server.url
        )
    }

    /// The certificate to trust.
    pub fn cert_path(&self) -> String {
        self.server.cert_path()
    }

    /// Every envelope received.
    pub fn envelopes(&self) -> Vec<serde_json::Value> {
        self.received.lock().expect("lock").envelopes.clone()
    }

    /// The `Authorization` header of every upload.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.received.lock().expect("lock").authorizations.clone()
    }

    /// Every body received (decompressed), for searching.
    pub fn raw_text(&self) -> String {
        self.received.lock().expect("lock").raw.join("\n")
    }
}

async fn track(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::Json<serde_json::Value> {
    let mut text = String::new();
    if headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        == Some("gzip")
    {
        let _ = flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text);
    } else {
        text = String::from_utf8_lossy(&body).into_owned();
    }
    let envelopes: Vec<serde_json::Value> = serde_json::from_str(&text)
        .or_else(|_| {
            text.lines()
                .map(serde_json::from_str)
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_default();
    let count = envelopes.len();
    if let Ok(mut r) = received.lock() {
        r.envelopes.extend(envelopes);
        r.authorizations.push(
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        );
        r.raw.push(text);
    }
    axum::Json(serde_json::json!({"itemsReceived": count, "itemsAccepted": count, "errors": []}))
}
