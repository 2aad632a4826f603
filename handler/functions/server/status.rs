//! `GET /api/purge/{runId}`: a background run's state, from this instance's memory
//! (`run_status`) or, for a run another instance started, from the run store.

use super::auth::{check, configured};
use super::{ApiError, AppState, is_run_id};
use crate::functions::proof;
use crate::store::StoreErrorKind;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `GET /api/purge/{runId}`: a background run's state (same authentication, empty body).
pub(super) async fn status(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed("GET"));
    }
    let (config, secret) = configured(&state)?;
    let proof = proof::proof(&headers)?;
    check(secret, |s| proof::verify(proof, s, b"")).await?;
    // Nothing else is a run id: answered here, without a store request or a log line.
    if !is_run_id(&run_id) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "not a run id: run ids are lowercase hyphenated UUIDs",
        ));
    }
    if let Some(run) = state.runs.get(&run_id) {
        return Ok((StatusCode::OK, Json(run)).into_response());
    }
    // Not started here: the run store knows every instance's runs.
    let store = state
        .durability
        .store(&config)
        .await
        .map_err(|e| ApiError::status_unavailable(&e))?;
    let no_such_run = || ApiError::new(StatusCode::NOT_FOUND, "no such run");
    match store.current(&run_id).await {
        Ok(Some(record)) => {
            let body =
                json!({"status": record.status.name(), "runId": record.id, "record": record});
            Ok((StatusCode::OK, Json(body)).into_response())
        }
        Ok(None) => Err(no_such_run()),
        // Not an id the handler issues: it names no run (the store refused to look).
        Err(e) if e.kind == StoreErrorKind::InvalidRunId => Err(no_such_run()),
        Err(e) => Err(ApiError::status_unavailable(&e)),
    }
}
