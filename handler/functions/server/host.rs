//! The host's invocations: `PurgeTimer` (the schedule; in a fleet, the fan-out) and
//! `PurgeQueue` (one registry of the fleet), answered with the custom-handler invocation
//! envelope, which the host logs and whose `Outputs` it enqueues. A failed invocation
//! ([`InvocationFailure`]) is answered 500 with that envelope too.

use super::running::supervise;
use super::{AppState, invocation_id, report_status};
use crate::functions::config::Config;
use crate::functions::fanout;
use crate::functions::protocol::{InvocationResult, TimerInvocation};
use crate::functions::runner::{Job, RunFinished};
use crate::functions::webhook::{self, quoted};
use crate::report::RunError;
use crate::telemetry::{self, RunContext, Trigger};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// `POST /PurgeTimer`: runs the whole policy, before any queued webhook run.
pub(super) async fn timer(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, InvocationFailure> {
    let config = host_config(&state)?;
    let invocation: TimerInvocation = serde_json::from_slice(&body)
        .map_err(|e| InvocationFailure(format!("unreadable timer invocation: {e}")))?;
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
        return Ok((
            StatusCode::OK,
            Json(
                InvocationResult::new(notes, Some(value)).with_outputs(fanout::outputs(&messages)),
            ),
        )
            .into_response());
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
        Err(died) => return Ok(run_died(notes, &registry, dry_run, died)),
    };
    // A skipped occurrence (another instance's run holds the registry) is not a failure.
    // Every other ending answers what its error asks for (`RunError::http_status`).
    let status = if let Some(busy @ RunError::Busy { .. }) = &report.error {
        notes.push(format!("PurgeTimer occurrence skipped: {busy}"));
        StatusCode::OK
    } else {
        report_status(&report)
    };
    let continuation = continuation(&report);
    notes.extend(lines);
    let result = InvocationResult::new(notes, Some(report)).with_outputs(continuation);
    Ok((status, Json(result)).into_response())
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
pub(super) async fn queue_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, InvocationFailure> {
    let config = host_config(&state)?;
    let invocation: fanout::QueueInvocation = serde_json::from_slice(&body)
        .map_err(|e| InvocationFailure(format!("unreadable queue invocation: {e}")))?;
    let dequeue_count = invocation.dequeue_count();
    let message = invocation
        .message()
        .map_err(|e| InvocationFailure(format!("PurgeQueue message refused: {e}")))?;
    let Some(member) = config.member(&message.registry).cloned() else {
        return Err(InvocationFailure(format!(
            "PurgeQueue message refused: registry {} is not one of the fleet's",
            quoted(&message.registry)
        )));
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
        Err(died) => return Ok(run_died(notes, &host, dry_run, died)),
    };
    let status = match &report.error {
        None => StatusCode::OK,
        Some(RunError::Busy { .. }) if dequeue_count <= 1 => {
            notes.push(format!(
                "PurgeQueue skipped {host}: another run holds it and goes on by itself"
            ));
            StatusCode::OK
        }
        Some(RunError::Busy { .. }) => {
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
    Ok((status, Json(result)).into_response())
}

/// `500` with the envelope for a run whose task died: no report exists, so the value says
/// which run it was and why it has none.
fn run_died(mut notes: Vec<String>, registry: &str, dry_run: bool, why: String) -> Response {
    notes.push(why.clone());
    let value = json!({"registry": registry, "dryRun": dry_run, "error": why});
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(InvocationResult::new(notes, Some(value))),
    )
        .into_response()
}

/// The configuration; an invalid one fails every invocation (the error in its `Logs`).
fn host_config(state: &AppState) -> Result<Arc<Config>, InvocationFailure> {
    match &state.config {
        Ok(config) => Ok(config.clone()),
        Err(e) => Err(InvocationFailure(format!("invalid configuration: {e}"))),
    }
}

/// A failed invocation: answered `500` with the envelope whose `Logs` say why (also logged).
pub(super) struct InvocationFailure(String);

impl IntoResponse for InvocationFailure {
    fn into_response(self) -> Response {
        tracing::error!("{}", self.0);
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(InvocationResult::<()>::new(vec![self.0], None)),
        )
            .into_response()
    }
}
