//! `POST /api/purge`: the release webhook (forwarded raw by the host). The caller is
//! authenticated (a bearer token before the body is read, a signature after), the body read
//! within bounds and parsed, the registry routed, the request checked to only narrow the
//! policy, and the run queued (`queue`) on this instance's turn.

use super::auth::{check, configured};
use super::lease::free_here;
use super::running::{answer, work};
use super::{
    ApiError, AppState, BODY_READ_TIMEOUT, LOGGED_CHARS, LOGGED_NAMES, apply, invocation_id,
};
use crate::functions::proof;
use crate::functions::queue::{MAX_PENDING_REPOSITORIES, QueueScope};
use crate::functions::queued;
use crate::functions::route;
use crate::functions::runner;
use crate::functions::webhook::{self, MAX_BODY, WebhookRequest, quoted};
use crate::telemetry::{RunContext, Trigger};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `POST /api/purge`: the release webhook (forwarded raw by the host).
pub(super) async fn webhook(
    State(state): State<AppState>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if method != Method::POST {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let (config, secret) = configured(&state)?;
    let proof = proof::proof(&headers)?;
    // A bearer token is checked before the body is read; a signature needs the body.
    if !proof::covers_body(proof) {
        check(secret, |s| proof::verify(proof, s, b"")).await?;
    }
    let body = read_body(&state, &headers, body).await?;
    if proof::covers_body(proof) {
        check(secret, |s| proof::verify(proof, s, &body)).await?;
    }
    let bad_request = |e: webhook::BodyError| ApiError::new(StatusCode::BAD_REQUEST, e.to_string());
    let request = webhook::parse(&headers, &body).map_err(bad_request)?;
    let parameter = webhook::registry_parameter(uri.query()).map_err(bad_request)?;
    let (repositories, dry_run, source, named) = match request {
        WebhookRequest::Ping => {
            return Ok((StatusCode::OK, Json(json!({"pong": true}))).into_response());
        }
        WebhookRequest::Ignored(why) => {
            tracing::info!("webhook ignored: {why}");
            return Ok((StatusCode::OK, Json(json!({"ignored": why}))).into_response());
        }
        WebhookRequest::Run {
            repositories,
            dry_run,
            source,
            registry,
        } => (repositories, dry_run, source, registry),
        WebhookRequest::Apply { digest, dry_run } => {
            route::applies_home(&config, parameter.as_deref())?;
            return apply::apply(state, config, &headers, digest, dry_run).await;
        }
    };
    let member = route::member(&config, parameter.as_deref(), named.as_deref())?;
    let host = member.registry.host().to_string();
    if let Some(names) = &repositories {
        narrows(&member.policy.policy, names)?;
    }
    let dry_run = dry_run || config.force_dry_run || member.policy.dry_run;
    if !dry_run {
        free_here(&state, &config, &host).await?;
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
    let admitted = state
        .queue
        .submit(dry_run, QueueScope::of(repositories), context, || {
            state.runs.queue()
        })
        .map_err(|full| ApiError::new(StatusCode::TOO_MANY_REQUESTS, full.to_string()))?;
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
            queued::record(store, &admitted.id, &host, dry_run).await;
        }
        tokio::spawn(work(state.clone(), config.clone(), host, dry_run));
    }
    Ok(answer(&state, admitted, config.http_deadline).await)
}

/// Checks that the request only narrows the policy: 400 for too many names, 422 for a name
/// no rule covers or a policy that cannot be evaluated against them.
fn narrows(policy: &crate::policy::Policy, names: &[String]) -> Result<(), ApiError> {
    if names.len() > MAX_PENDING_REPOSITORIES {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("a request names at most {MAX_PENDING_REPOSITORIES} repositories"),
        ));
    }
    match runner::uncovered(policy, names) {
        Ok(None) => Ok(()),
        Ok(Some(name)) => Err(ApiError::new(
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
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the policy could not be evaluated against the repositories named (see the logs)",
            ))
        }
    }
}

/// Reads at most [`MAX_BODY`] bytes within [`BODY_READ_TIMEOUT`], at most
/// [`super::MAX_CONCURRENT_BODY_READS`] bodies at once.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
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
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        )),
    }
}
