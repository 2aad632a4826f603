//! A real webhook run (or apply) is refused while another instance's run holds the
//! registry's lease; this instance's own run queues the request instead.

use super::{ApiError, AppState};
use crate::functions::config::Config;
use axum::http::StatusCode;

/// `Err(409)` with the holder's run id and status URL when another instance's run holds
/// the registry. A store that cannot be read is `Err(503)`: no run starts without its lease
/// anyway.
pub(super) async fn free_here(
    state: &AppState,
    config: &Config,
    host: &str,
) -> Result<(), ApiError> {
    let store = state
        .durability
        .store(config)
        .await
        .map_err(|e| ApiError::store_unavailable("webhook refused", &e))?;
    let holder = store
        .holder(host)
        .await
        .map_err(|e| ApiError::store_unavailable("webhook refused", &e))?;
    let Some(holder) = holder else {
        return Ok(());
    };
    let run_id = holder.as_ref().map(|h| h.run_id.clone());
    if run_id
        .as_deref()
        .is_some_and(|id| state.durability.is_running_here(id))
    {
        return Ok(());
    }
    let mut error = ApiError::new(
        StatusCode::CONFLICT,
        format!("another run is purging {host} now"),
    );
    if let Some(id) = run_id {
        error = error
            .with("runId", id.clone())
            .with("statusUrl", format!("/api/purge/{id}"));
    }
    Err(error)
}
