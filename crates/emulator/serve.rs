//! Serving the Azure API emulators (Resource Graph, Log Analytics) on loopback, and what
//! they share: the bearer check and Azure's `{"error":{"code","message"}}` answers.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A served emulator (the registry's inside [`crate::RunningEmulator`],
/// [`crate::ResourceGraphEmulator`], [`crate::LogAnalyticsEmulator`]); stops when dropped or on [`RunningServer::shutdown`].
#[derive(Debug)]
pub struct RunningServer {
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Bound address.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Stops serving and waits (up to 5 s) for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Serves `router` on `127.0.0.1` with an ephemeral port.
pub(crate) async fn serve(router: Router, what: &str) -> anyhow::Result<RunningServer> {
    serve_on(router, SocketAddr::from(([127, 0, 0, 1], 0)), what).await
}

/// Serves `router` on `addr`.
pub(crate) async fn serve_on(
    router: Router,
    addr: SocketAddr,
    what: &str,
) -> anyhow::Result<RunningServer> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the {what} emulator to {addr}"))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let what = what.to_string();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!("{what} emulator stopped: {e}");
        }
    });
    Ok(RunningServer {
        url: format!("http://{addr}"),
        addr,
        stop: Some(tx),
        task: Some(task),
    })
}

/// Azure's error answer: `{"error":{"code","message"}}` plus any extra fields of `error`.
pub(crate) fn azure_error(status: StatusCode, code: &str, message: &str, extra: Value) -> Response {
    let mut error = json!({ "code": code, "message": message });
    if let (Some(object), Value::Object(more)) = (error.as_object_mut(), extra) {
        object.extend(more);
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

/// `Some(401 answer)` unless the request carries `Authorization: Bearer <token>` with the
/// expected token (any non-empty token when `expected` is `None`).
pub(crate) fn check_bearer(headers: &HeaderMap, expected: Option<&str>) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let message = match (given, expected) {
        (None, _) => {
            "Authentication failed. The 'Authorization' header is missing or is not a bearer token."
        }
        (Some(token), Some(want)) if token != want => "The access token is invalid.",
        _ => return None,
    };
    let mut response = azure_error(
        StatusCode::UNAUTHORIZED,
        "AuthenticationFailed",
        message,
        Value::Null,
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    Some(response)
}
