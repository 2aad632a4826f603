//! A run started by a handler: its own task holding the turn ([`supervise`]), how it ended
//! ([`settle`]), and what the caller is answered within the deadline ([`answer`]).

use super::{ApiError, AppState, RUN_DIED, report_status};
use crate::functions::config::Config;
use crate::functions::queue::{Admitted, SharedResult, Turn};
use crate::functions::queued;
use crate::functions::run_status::RunState;
use crate::functions::runner::{Job, RunFinished};
use crate::telemetry::{self, RunContext};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Runs a purge in a task of its own holding `turn`; a task that dies gives the turn back and
/// is reported as [`RUN_DIED`] (the panic goes to the logs).
pub(super) async fn supervise(
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

/// Runs the pending webhook run of this registry and dry-run flag once it has the turn.
pub(super) async fn work(state: AppState, config: Arc<Config>, registry: String, dry_run: bool) {
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
pub(super) async fn settle(
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
        queued::close(store, id, &why).await;
    }
    telemetry::flush().await;
    outcome
}

/// The run's report if it ends within the deadline, else `202` with the run id.
pub(super) async fn answer(state: &AppState, admitted: Admitted, deadline: Duration) -> Response {
    let Admitted {
        id,
        joined,
        outcome,
    } = admitted;
    match tokio::time::timeout(deadline, outcome).await {
        Ok(Ok(outcome)) => finished(&outcome, &id),
        // Still going at the deadline, or its pending run went without a word.
        Err(_) | Ok(Err(_)) => accepted_later(state, &id, joined),
    }
}

/// The answer for a run that ended: its report, or 500 with why it has none.
pub(super) fn finished(outcome: &SharedResult, id: &str) -> Response {
    match outcome.as_ref() {
        Ok(report) => (report_status(report), Json(report)).into_response(),
        Err(why) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, why.clone())
            .with("runId", id)
            .into_response(),
    }
}

/// `202` for a run still queued or running at the deadline, with its status URL.
pub(super) fn accepted_later(state: &AppState, id: &str, joined: bool) -> Response {
    let status = match state.runs.get(id) {
        Some(RunState::Queued) => "queued",
        Some(RunState::Running | RunState::Finished { .. } | RunState::Failed { .. }) | None => {
            "running"
        }
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
