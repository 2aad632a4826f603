//! The HTTP server the Functions host talks to: readiness on `GET /`, the timer at
//! `POST /PurgeTimer`, the fleet queue at `POST /PurgeQueue`, the forwarded webhook at
//! `/api/purge` and run status at `/api/purge/{runId}`. Handlers are thin; the work is in
//! the sibling modules.
//!
//! Every run goes through the run queue (`queue`: one at a time, the timer first, webhook
//! runs coalesced) and runs in a task of its own: if that task dies (a panic), the turn is
//! given back, the timer is answered 500 with the invocation
//! envelope and a webhook run is marked `failed`. Configuration errors go to the logs (and
//! the timer's `Logs`, which the host logs); webhook callers only learn that the
//! configuration is invalid, and Key Vault errors are answered generically.
//!
//! The server's parts, one job each:
//! - this module: the shared state ([`AppState`]), the routes and serving;
//! - `host`: the host's invocations (`PurgeTimer`, `PurgeQueue`), answered with the
//!   invocation envelope;
//! - `purge`: the webhook (`POST /api/purge`): authenticate, read, route, queue;
//! - `apply`: the webhook's `{"apply": digest}`, a saved plan applied on the turn;
//! - `status`: `GET /api/purge/{runId}`;
//! - `auth`: the configuration and the caller's proof, which both webhook routes check;
//! - `lease`: refusing a real run while another instance's run holds the registry;
//! - `running`: a run's task, how it ended, and the answer within the deadline;
//! - `error`: [`ApiError`], every `{"error", "status"}` answer.

mod apply;
mod auth;
mod error;
mod host;
mod lease;
mod purge;
mod running;
mod status;

pub use error::ApiError;

use super::applies::Applies;
use super::config::{Config, ConfigError};
use super::listener;
use super::queue::RunQueue;
use super::run_status::RunStatuses;
use super::runner::{self, Durability, Job, RunFinished};
use super::secret::WebhookSecret;
use crate::run::StopSignal;
use crate::telemetry::RunContext;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, get, post};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long shutdown waits, in all, for requests and the run in flight to stop.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// How long a webhook body may take to arrive, in all.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// The most webhook bodies read (buffered) at once; a request waits for a slot within
/// [`BODY_READ_TIMEOUT`], else it is answered 503.
pub const MAX_CONCURRENT_BODY_READS: usize = 8;

/// How many repository names a log line lists (the count is always logged).
pub const LOGGED_NAMES: usize = 5;

/// The most characters of a text that quotes a caller's input written in one log line.
pub const LOGGED_CHARS: usize = 160;

/// What callers are told when the configuration is invalid (the details are in the logs).
pub const INVALID_CONFIGURATION: &str = "invalid configuration (see the logs)";

/// What callers are told when the webhook secret cannot be read.
pub const SECRET_UNAVAILABLE: &str =
    "the webhook secret cannot be read right now (see the logs); retry later";

/// What a run's task dying is reported as.
pub const RUN_DIED: &str = "the run stopped unexpectedly (see the logs)";

/// Runs one purge: the configured policy, narrowed to some repositories, with a stop signal,
/// under a telemetry context. The real one is [`runner::run`].
pub type Runner = Arc<
    dyn Fn(Arc<Config>, Job, StopSignal, RunContext) -> BoxFuture<'static, RunFinished>
        + Send
        + Sync,
>;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    config: Result<Arc<Config>, ConfigError>,
    secret: Option<Arc<WebhookSecret>>,
    runs: Arc<RunStatuses>,
    queue: Arc<RunQueue>,
    applies: Arc<Applies>,
    body_reads: Arc<Semaphore>,
    stop: StopSignal,
    runner: Runner,
    durability: Arc<Durability>,
}

impl AppState {
    /// State for `config` (an invalid configuration is kept to fail every invocation).
    pub fn new(config: Result<Config, ConfigError>) -> AppState {
        let secret = config
            .as_ref()
            .ok()
            .and_then(|c| c.webhook_secret.clone().ok())
            .map(|source| Arc::new(WebhookSecret::new(source)));
        let durability = Arc::new(Durability::default());
        let shared = durability.clone();
        AppState {
            config: config.map(Arc::new),
            secret,
            runs: Arc::default(),
            queue: Arc::default(),
            applies: Arc::default(),
            body_reads: Arc::new(Semaphore::new(MAX_CONCURRENT_BODY_READS)),
            stop: StopSignal::default(),
            runner: Arc::new(move |config, job, stop, context| {
                let durability = shared.clone();
                Box::pin(async move { runner::run(&config, &durability, job, stop, context).await })
            }),
            durability,
        }
    }

    /// The same state running purges with `runner` (tests use it to make a run die).
    #[cfg(test)]
    pub(crate) fn with_runner(mut self, runner: Runner) -> AppState {
        self.runner = runner;
        self
    }
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(ready))
        .route("/PurgeTimer", post(host::timer))
        .route("/PurgeQueue", post(host::queue_message))
        .route("/api/purge", any(purge::webhook))
        .route("/api/purge/{run_id}", any(status::status))
        .fallback(not_found)
        .with_state(state)
}

/// Serves on `127.0.0.1:port` until SIGTERM or Ctrl-C, then stops the run in flight cleanly
/// within [`SHUTDOWN_GRACE`].
pub async fn serve(port: u16) -> anyhow::Result<()> {
    let config = Config::from_env();
    if let Err(error) = &config {
        tracing::error!("invalid configuration, every invocation will fail: {error}");
    }
    let state = AppState::new(config);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!("acr-purge handler listening on 127.0.0.1:{port}");
    let stop = state.stop.clone();
    serve_until(listener, state, shutdown_signal(stop), SHUTDOWN_GRACE).await;
    Ok(())
}

/// Serves until `shutdown`, then waits at most `grace` in all for the requests and the run in
/// flight (a run answered 202 goes on after its request) to stop.
async fn serve_until(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let queue = state.queue.clone();
    let stop = state.stop.clone();
    let shutdown = async move {
        shutdown.await;
        stop.stop();
    };
    let signalled = listener::serve(listener, router(state), shutdown, grace).await;
    let left = grace.saturating_sub(signalled.elapsed());
    if tokio::time::timeout(left, queue.idle()).await.is_err() {
        tracing::warn!(
            "shutdown: the run in flight did not stop within {} s",
            grace.as_secs()
        );
    }
}

async fn shutdown_signal(stop: StopSignal) {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: the run in flight stops before its next repository");
    stop.stop();
}

async fn ready() -> &'static str {
    "acr-purge handler ready"
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such function or route")
}

/// The host's invocation id; a value that is not a UUID is not the host's, and is dropped
/// (it would otherwise reach telemetry and logs as the caller wrote it).
fn invocation_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-azure-functions-invocationid")
        .and_then(|v| v.to_str().ok())
        .filter(|v| uuid::Uuid::try_parse(v).is_ok())
        .map(str::to_string)
}

/// Whether `text` has the form of the handler's run ids (the store's one rule,
/// [`crate::store::run_id::check`]).
pub fn is_run_id(text: &str) -> bool {
    crate::store::run_id::check(text).is_ok()
}

/// The status answered for a finished run: 200, or what its error asks for.
fn report_status(report: &crate::report::RunReport) -> StatusCode {
    report.error.as_ref().map_or(StatusCode::OK, |error| {
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    })
}

#[cfg(test)]
mod tests;
