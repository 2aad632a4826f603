//! The HTTP server the Functions host talks to: readiness on `GET /`, the timer at
//! `POST /PurgeTimer`, the forwarded webhook at `/api/purge` and run status at
//! `/api/purge/{runId}`. Handlers are thin; the work is in the sibling modules.
//!
//! Every run goes through the run queue (`queue`: one at a time, the timer first, webhook
//! runs coalesced) and runs in a task of its own: if that task dies (a panic), the turn is
//! given back, the timer is answered 500 with the invocation
//! envelope and a webhook run is marked `failed`. Configuration errors go to the logs (and
//! the timer's `Logs`, which the host logs); webhook callers only learn that the
//! configuration is invalid, and Key Vault errors are answered generically.

use super::applies::Applies;
use super::config::{Config, ConfigError};
use super::fanout;
use super::listener;
use super::proof::{self, ProofError};
use super::protocol::{InvocationResult, TimerInvocation};
use super::queue::{Admitted, MAX_PENDING_REPOSITORIES, QueueScope, RunQueue, SharedResult, Turn};
use super::route;
use super::run_status::{RunState, RunStatuses};
use super::runner::{self, Durability, Job, RunFinished};
use super::secret::{SignatureCheck, WebhookSecret};
use super::webhook::{self, MAX_BODY, WebhookRequest, quoted};
use crate::run::StopSignal;
use crate::saved::{DEFAULT_MAX_AGE, SavedPlan, SavedPlanError};
use crate::telemetry::{self, RunContext, Trigger};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde_json::json;
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
        .route("/PurgeTimer", post(timer))
        .route("/PurgeQueue", post(queue_message))
        .route("/api/purge", any(webhook))
        .route("/api/purge/{run_id}", any(status))
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

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such function or route")
}

/// `POST /PurgeTimer`: runs the whole policy, before any queued webhook run.
async fn timer(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let config = match &state.config {
        Ok(config) => config.clone(),
        Err(e) => return invocation_failure(format!("invalid configuration: {e}")),
    };
    let invocation: TimerInvocation = match serde_json::from_slice(&body) {
        Ok(invocation) => invocation,
        Err(e) => return invocation_failure(format!("unreadable timer invocation: {e}")),
    };
    let mut notes = Vec::new();
    let timer = invocation.data.timer.unwrap_or_default();
    if timer.is_past_due {
        notes.push("PurgeTimer is past due: running the missed occurrence now".to_string());
    }
    if let Some(next) = timer.schedule_status.and_then(|s| s.next) {
        notes.push(format!("PurgeTimer occurrence {next}"));
    }
    for note in &notes {
        tracing::info!("{note}");
    }
    if config.is_fleet {
        // Each registry due becomes one message of the fleet queue; PurgeQueue runs them,
        // spread over the instances.
        let messages = fanout::due(&config);
        let registries: Vec<&str> = messages.iter().map(|m| m.registry.as_str()).collect();
        notes.push(format!(
            "PurgeTimer enqueued {} registries: {}",
            registries.len(),
            registries.join(", ")
        ));
        tracing::info!(registries = registries.len(), "PurgeTimer: fleet enqueued");
        let value = json!({"enqueued": registries});
        return (
            StatusCode::OK,
            Json(
                InvocationResult::new(notes, Some(value)).with_outputs(fanout::outputs(&messages)),
            ),
        )
            .into_response();
    }
    let dry_run = config.force_dry_run || config.policy.dry_run;
    let context = RunContext {
        trigger: Trigger::Timer,
        invocation_id: invocation_id(&headers),
        function_name: Some("PurgeTimer".to_string()),
        registry: config.registry.host().to_string(),
        dry_run,
        parent: None,
        run_id: None,
    };
    let turn = state.queue.turn(true).await;
    let registry = config.registry.host().to_string();
    let finished = supervise(
        &state,
        Some(turn),
        config,
        Job::Purge { only: None },
        context,
    )
    .await;
    telemetry::flush().await;
    let RunFinished { report, lines } = match finished {
        Ok(finished) => finished,
        Err(died) => {
            notes.push(died.clone());
            // No report exists: the value says which run it was and why it has none.
            let value = json!({"registry": registry, "dryRun": dry_run, "error": died});
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(InvocationResult::new(notes, Some(value))),
            )
                .into_response();
        }
    };
    // A skipped occurrence (another instance's run holds the registry) is not a failure.
    let status = match &report.error {
        Some(crate::report::RunError::Busy { .. }) => {
            notes.push(format!(
                "PurgeTimer occurrence skipped: {}",
                report
                    .error
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ));
            StatusCode::OK
        }
        _ => report_status(&report),
    };
    let continuation = continuation(&report);
    notes.extend(lines);
    let result = InvocationResult::new(notes, Some(report)).with_outputs(continuation);
    (status, Json(result)).into_response()
}

/// `Outputs` enqueuing the continuation of a run that stopped before its deadline (or
/// at shutdown) and can be resumed: it goes on at once, not at the next occurrence.
fn continuation(report: &crate::report::RunReport) -> serde_json::Map<String, serde_json::Value> {
    let resumable = report
        .error
        .as_ref()
        .is_some_and(|e| e.exit_code() == crate::report::EXIT_RESUMABLE);
    if !resumable {
        return serde_json::Map::new();
    }
    tracing::info!(
        registry = report.registry,
        "enqueued the run's continuation"
    );
    fanout::outputs(&[fanout::Message {
        registry: report.registry.clone(),
        continuation: true,
    }])
}

/// `POST /PurgeQueue`: one registry of the fleet, named by the queue message.
///
/// - a run that ends (or is refused for good) is answered 200 and the message is deleted;
/// - a run that stops before its deadline is answered 200 with its continuation in
///   `Outputs` (it goes on at once, on whichever instance dequeues it);
/// - a failed run, an unreadable message or a registry outside the fleet is answered 500:
///   the host makes the message visible again after `visibilityTimeout` and, after
///   `maxDequeueCount` attempts, moves it to the poison queue, which the failed-run alert
///   watches;
/// - another run holding the registry: a first delivery is a duplicate (the holder goes on
///   by its own continuation) and is answered 200; a redelivery may be the message of an
///   instance that died mid-run, and is answered 500 so that it comes back after the dead
///   holder's lease has lapsed and resumes the run from its checkpoint.
///
/// Queue runs take no turn of this instance's run queue: the registry's lease keeps one
/// run per registry, and `batchSize` in host.json bounds the runs of one instance.
async fn queue_message(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let config = match &state.config {
        Ok(config) => config.clone(),
        Err(e) => return invocation_failure(format!("invalid configuration: {e}")),
    };
    let invocation: fanout::QueueInvocation = match serde_json::from_slice(&body) {
        Ok(invocation) => invocation,
        Err(e) => return invocation_failure(format!("unreadable queue invocation: {e}")),
    };
    let dequeue_count = invocation.dequeue_count();
    let message = match invocation.message() {
        Ok(message) => message,
        Err(e) => return invocation_failure(format!("PurgeQueue message refused: {e}")),
    };
    let Some(member) = config.member(&message.registry).cloned() else {
        return invocation_failure(format!(
            "PurgeQueue message refused: registry {} is not one of the fleet's",
            quoted(&message.registry)
        ));
    };
    let host = member.registry.host().to_string();
    let mut notes = vec![format!(
        "PurgeQueue {}{} (message {}, delivery {dequeue_count})",
        host,
        if message.continuation {
            ", continuation"
        } else {
            ""
        },
        invocation
            .id()
            .map(|id| webhook::clipped(id, 64))
            .unwrap_or_default(),
    )];
    tracing::info!("{}", notes[0]);
    let dry_run = config.force_dry_run || member.policy.dry_run;
    let context = RunContext {
        trigger: Trigger::Queue,
        invocation_id: invocation_id(&headers),
        function_name: Some("PurgeQueue".to_string()),
        registry: host.clone(),
        dry_run,
        parent: None,
        run_id: None,
    };
    let finished = supervise(&state, None, config, Job::Purge { only: None }, context).await;
    telemetry::flush().await;
    let RunFinished { report, lines } = match finished {
        Ok(finished) => finished,
        Err(died) => {
            notes.push(died.clone());
            let value = json!({"registry": host, "dryRun": dry_run, "error": died});
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(InvocationResult::new(notes, Some(value))),
            )
                .into_response();
        }
    };
    let status = match &report.error {
        None => StatusCode::OK,
        Some(crate::report::RunError::Busy { .. }) if dequeue_count <= 1 => {
            notes.push(format!(
                "PurgeQueue skipped {host}: another run holds it and goes on by itself"
            ));
            StatusCode::OK
        }
        Some(crate::report::RunError::Busy { .. }) => {
            notes.push(format!(
                "PurgeQueue: {host} is held by another run; delivery {dequeue_count} is retried after the visibility timeout, when a dead holder's lease has lapsed"
            ));
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Some(error) if error.exit_code() == crate::report::EXIT_RESUMABLE => StatusCode::OK,
        Some(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let outputs = continuation(&report);
    notes.extend(lines);
    let result = InvocationResult::new(notes, Some(report)).with_outputs(outputs);
    (status, Json(result)).into_response()
}

/// Runs a purge in a task of its own holding `turn`; a task that dies gives the turn back and
/// is reported as [`RUN_DIED`] (the panic goes to the logs).
async fn supervise(
    state: &AppState,
    turn: Option<Turn>,
    config: Arc<Config>,
    job: Job,
    context: RunContext,
) -> Result<RunFinished, String> {
    let run = (state.runner)(config, job, state.stop.clone(), context);
    let task = tokio::spawn(async move {
        let _turn = turn;
        run.await
    });
    task.await.map_err(|e| {
        tracing::error!("the run's task died: {e}");
        RUN_DIED.to_string()
    })
}

fn invocation_failure(message: String) -> Response {
    tracing::error!("{message}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(InvocationResult::<()>::new(vec![message], None)),
    )
        .into_response()
}

/// `POST /api/purge`: the release webhook (forwarded raw by the host).
async fn webhook(
    State(state): State<AppState>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method != Method::POST {
        return method_not_allowed("POST");
    }
    let Some((config, secret)) = configured(&state) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, INVALID_CONFIGURATION);
    };
    let proof = match proof::proof(&headers) {
        Ok(proof) => proof,
        Err(e) => return proof_error(e),
    };
    // A bearer token is checked before the body is read; a signature needs the body.
    if !proof::covers_body(proof)
        && let Err(response) = check(secret, |s| proof::verify(proof, s, b"")).await
    {
        return response;
    }
    let body = match read_body(&state, &headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if proof::covers_body(proof)
        && let Err(response) = check(secret, |s| proof::verify(proof, s, &body)).await
    {
        return response;
    }
    let request = match webhook::parse(&headers, &body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let parameter = match webhook::registry_parameter(uri.query()) {
        Ok(parameter) => parameter,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let (repositories, dry_run, source, named) = match request {
        WebhookRequest::Ping => {
            return (StatusCode::OK, Json(json!({"pong": true}))).into_response();
        }
        WebhookRequest::Ignored(why) => {
            tracing::info!("webhook ignored: {why}");
            return (StatusCode::OK, Json(json!({"ignored": why}))).into_response();
        }
        WebhookRequest::Run {
            repositories,
            dry_run,
            source,
            registry,
        } => (repositories, dry_run, source, registry),
        WebhookRequest::Apply { digest, dry_run } => {
            if let Err((status, message)) = route::applies_home(&config, parameter.as_deref()) {
                return error(status, &message);
            }
            return apply::apply(state, config, &headers, digest, dry_run).await;
        }
    };
    let member = match route::member(&config, parameter.as_deref(), named.as_deref()) {
        Ok(member) => member,
        Err((status, message)) => return error(status, &message),
    };
    let host = member.registry.host().to_string();
    if let Some(names) = &repositories
        && let Err((status, message)) = narrows(&member.policy.policy, names)
    {
        return error(status, &message);
    }
    let dry_run = dry_run || config.force_dry_run || member.policy.dry_run;
    if !dry_run && let Some(response) = held_elsewhere(&state, &config, &host).await {
        return response;
    }
    let context = RunContext {
        trigger: Trigger::Webhook,
        invocation_id: invocation_id(&headers),
        function_name: Some("PurgeHttp".to_string()),
        registry: host.clone(),
        dry_run,
        parent: Some(opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&opentelemetry_http::HeaderExtractor(&headers))
        })),
        run_id: None,
    };
    let count = repositories.as_ref().map_or(0, Vec::len);
    let first: Vec<String> = repositories
        .iter()
        .flatten()
        .take(LOGGED_NAMES)
        .map(|n| quoted(n))
        .collect();
    let admitted = match state
        .queue
        .submit(dry_run, QueueScope::of(repositories), context, || {
            state.runs.queue()
        }) {
        Ok(admitted) => admitted,
        Err(full) => return error(StatusCode::TOO_MANY_REQUESTS, &full.to_string()),
    };
    tracing::info!(
        source,
        repositories = count,
        first = ?first,
        dry_run,
        run_id = admitted.id,
        joined = admitted.joined,
        "webhook accepted"
    );
    if !admitted.joined {
        // Recorded before the run's task can begin it (which replaces the record).
        if let Ok(store) = state.durability.store(&config).await {
            super::queued::record(store, &admitted.id, &host, dry_run).await;
        }
        tokio::spawn(work(state.clone(), config.clone(), host, dry_run));
    }
    answer(&state, admitted, config.http_deadline).await
}

/// `409` with the holder's run id and status URL when another instance's run holds the
/// registry (this instance's own run queues the request instead). A store that cannot be
/// read answers `503`: no run starts without its lease anyway.
async fn held_elsewhere(state: &AppState, config: &Config, host: &str) -> Option<Response> {
    let store = match state.durability.store(config).await {
        Ok(store) => store,
        Err(e) => {
            tracing::error!("webhook refused: {e}");
            return Some(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the run store is unavailable (see the logs); retry later",
            ));
        }
    };
    let holder = match store.holder(host).await {
        Ok(holder) => holder?,
        Err(e) => {
            tracing::error!("webhook refused: {e}");
            return Some(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the run store is unavailable (see the logs); retry later",
            ));
        }
    };
    let run_id = holder.as_ref().map(|h| h.run_id.clone());
    if run_id
        .as_deref()
        .is_some_and(|id| state.durability.is_running_here(id))
    {
        return None;
    }
    let mut body = json!({
        "error": format!("another run is purging {host} now"),
        "status": 409,
    });
    if let Some(id) = run_id {
        body["runId"] = json!(id);
        body["statusUrl"] = json!(format!("/api/purge/{id}"));
    }
    Some((StatusCode::CONFLICT, Json(body)).into_response())
}

/// The configuration and the webhook secret; `None` (the details logged) when the
/// configuration is invalid, which callers only learn as [`INVALID_CONFIGURATION`].
fn configured(state: &AppState) -> Option<(Arc<Config>, &WebhookSecret)> {
    let config = match &state.config {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("webhook refused, invalid configuration: {e}");
            return None;
        }
    };
    if let Err(e) = &config.webhook_secret {
        tracing::error!("webhook refused, invalid configuration: {e}");
        return None;
    }
    let Some(secret) = state.secret.as_deref() else {
        tracing::error!("webhook refused: no webhook secret");
        return None;
    };
    Some((config.clone(), secret))
}

/// 401 when the proof does not verify, 503 when the secret cannot be read.
async fn check(secret: &WebhookSecret, matches: impl Fn(&str) -> bool) -> Result<(), Response> {
    match secret.check(matches).await {
        SignatureCheck::Accepted => Ok(()),
        SignatureCheck::Rejected => Err(error(
            StatusCode::UNAUTHORIZED,
            "the signature or token does not match the webhook secret",
        )),
        SignatureCheck::Unavailable(e) => {
            tracing::error!("webhook refused: {e}");
            Err(error(StatusCode::SERVICE_UNAVAILABLE, SECRET_UNAVAILABLE))
        }
    }
}

fn proof_error(e: ProofError) -> Response {
    match e {
        ProofError::Missing => error(StatusCode::UNAUTHORIZED, &e.to_string()),
        ProofError::Duplicate(_) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// Checks that the request only narrows the policy (422 otherwise): the status and message
/// to answer when it does not.
fn narrows(policy: &crate::policy::Policy, names: &[String]) -> Result<(), (StatusCode, String)> {
    if names.len() > MAX_PENDING_REPOSITORIES {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("a request names at most {MAX_PENDING_REPOSITORIES} repositories"),
        ));
    }
    match runner::uncovered(policy, names) {
        Ok(None) => Ok(()),
        Ok(Some(name)) => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "no rule of the policy covers repository {}; a webhook can only narrow the policy",
                quoted(&name)
            ),
        )),
        Err(e) => {
            // The error quotes the caller's repository name: logged clipped.
            tracing::warn!(
                "webhook refused: the policy could not be evaluated: {}",
                webhook::clipped(&e, LOGGED_CHARS)
            );
            Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                "the policy could not be evaluated against the repositories named (see the logs)"
                    .to_string(),
            ))
        }
    }
}

/// Runs the pending webhook run of this registry and dry-run flag once it has the turn.
async fn work(state: AppState, config: Arc<Config>, registry: String, dry_run: bool) {
    let turn = state.queue.turn(false).await;
    let Some(pending) = state.queue.take(&registry, dry_run) else {
        return;
    };
    if state.stop.is_stopped() {
        let why = "the instance shut down before the run started".to_string();
        let outcome = settle(&state, &config, &pending.id, Err(why)).await;
        pending.complete(outcome);
        return;
    }
    state.runs.set(&pending.id, RunState::Running);
    let only = pending.scope.clone().into_repositories();
    let mut context = pending.context.clone();
    context.run_id = Some(pending.id.clone());
    let result = supervise(
        &state,
        Some(turn),
        config.clone(),
        Job::Purge { only },
        context,
    )
    .await;
    let outcome = settle(&state, &config, &pending.id, result).await;
    pending.complete(outcome);
}

/// Records how run `id` ended (for its status URL, here and, if the run never began, in
/// its queued record) and flushes its telemetry.
async fn settle(
    state: &AppState,
    config: &Config,
    id: &str,
    result: Result<RunFinished, String>,
) -> SharedResult {
    let outcome: SharedResult = Arc::new(result.map(|finished| finished.report));
    let (run_state, failure) = match outcome.as_ref() {
        Ok(report) => (
            RunState::Finished {
                report: Box::new(report.clone()),
            },
            report.error.as_ref().map(ToString::to_string),
        ),
        Err(why) => (RunState::Failed { error: why.clone() }, Some(why.clone())),
    };
    state.runs.set(id, run_state);
    // A run that began replaced its queued record; only a failed one may not have.
    if let Some(why) = failure
        && let Ok(store) = state.durability.store(config).await
    {
        super::queued::close(store, id, &why).await;
    }
    telemetry::flush().await;
    outcome
}

/// The run's report if it ends within the deadline, else `202` with the run id.
async fn answer(state: &AppState, admitted: Admitted, deadline: Duration) -> Response {
    let Admitted {
        id,
        joined,
        outcome,
    } = admitted;
    match tokio::time::timeout(deadline, outcome).await {
        Ok(Ok(outcome)) => finished(&outcome, &id),
        _ => accepted_later(state, &id, joined),
    }
}

/// The answer for a run that ended: its report, or 500 with why it has none.
fn finished(outcome: &SharedResult, id: &str) -> Response {
    match outcome.as_ref() {
        Ok(report) => (report_status(report), Json(report)).into_response(),
        Err(why) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": why, "status": 500, "runId": id})),
        )
            .into_response(),
    }
}

/// `202` for a run still queued or running at the deadline, with its status URL.
fn accepted_later(state: &AppState, id: &str, joined: bool) -> Response {
    let status = match state.runs.get(id) {
        Some(RunState::Queued) => "queued",
        _ => "running",
    };
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "runId": id,
            "status": status,
            "joined": joined,
            "statusUrl": format!("/api/purge/{id}"),
        })),
    )
        .into_response()
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

/// `GET /api/purge/{runId}`: a background run's state (same authentication, empty body).
async fn status(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(run_id): Path<String>,
) -> Response {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    let Some((config, secret)) = configured(&state) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, INVALID_CONFIGURATION);
    };
    let proof = match proof::proof(&headers) {
        Ok(proof) => proof,
        Err(e) => return proof_error(e),
    };
    if let Err(response) = check(secret, |s| proof::verify(proof, s, b"")).await {
        return response;
    }
    // Nothing else is a run id: answered here, without a store request or a log line.
    if !is_run_id(&run_id) {
        return error(
            StatusCode::BAD_REQUEST,
            "not a run id: run ids are lowercase hyphenated UUIDs",
        );
    }
    if let Some(run) = state.runs.get(&run_id) {
        return (StatusCode::OK, Json(run)).into_response();
    }
    // Not started here: the run store knows every instance's runs.
    let store = match state.durability.store(&config).await {
        Ok(store) => store,
        Err(e) => {
            tracing::error!("run status unavailable: {e}");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the run store is unavailable (see the logs)",
            );
        }
    };
    match store.current(&run_id).await {
        Ok(Some(record)) => {
            let body =
                json!({"status": record.status.name(), "runId": record.id, "record": record});
            (StatusCode::OK, Json(body)).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such run"),
        // Not an id the handler issues: it names no run (the store refused to look).
        Err(e) if e.kind == crate::store::StoreErrorKind::InvalidRunId => {
            error(StatusCode::NOT_FOUND, "no such run")
        }
        Err(e) => {
            tracing::error!("run status unavailable: {e}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the run store is unavailable (see the logs)",
            )
        }
    }
}

/// Reads at most [`MAX_BODY`] bytes within [`BODY_READ_TIMEOUT`], at most
/// [`MAX_CONCURRENT_BODY_READS`] bodies at once.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than 1 MiB",
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let read = async {
        let _slot = state.body_reads.acquire().await;
        axum::body::to_bytes(body, MAX_BODY).await
    };
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        )),
    }
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("use {allow} on this route"),
    );
    if let Ok(value) = allow.parse() {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": message, "status": status.as_u16()})),
    )
        .into_response()
}

#[path = "apply.rs"]
mod apply;

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

/// The status answered for a finished run: 200, or what its error asks for.
fn report_status(report: &crate::report::RunReport) -> StatusCode {
    report.error.as_ref().map_or(StatusCode::OK, |error| {
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    })
}
