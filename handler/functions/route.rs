//! Which registry a webhook purges. A request names its registry by `?registry=<login
//! server>` in its URL (a GitHub release's payload URL, or any body) or, for an ACR event,
//! by the event's `request.host` (the login server the push addressed). The named registry
//! must be one of this app's (a fleet member, or `PURGE_REGISTRY`), compared without case,
//! and runs with its own policy; a request that names none runs the home registry (the
//! fleet's first, or `PURGE_REGISTRY`). A registry outside the app, or a URL and an event
//! that name two registries, is refused with 422 before anything is read or run.

use super::config::Config;
use super::fleet::Member;
use super::webhook::quoted;
use axum::http::StatusCode;

/// The status and message a refused route is answered with.
pub type Refused = (StatusCode, String);

/// The member a run request goes to: `parameter` (`?registry=`) or `event` (an ACR event's
/// `request.host`), else the home registry.
pub fn member(
    config: &Config,
    parameter: Option<&str>,
    event: Option<&str>,
) -> Result<Member, Refused> {
    let named = match (parameter, event) {
        (Some(url), Some(event)) if !url.eq_ignore_ascii_case(event) => {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "the URL names registry {} but the event comes from {}; nothing was run",
                    quoted(url),
                    quoted(event)
                ),
            ));
        }
        (url, event) => url.or(event),
    };
    let Some(named) = named else {
        return Ok(config.home());
    };
    config.member(named).cloned().ok_or_else(|| outside(named))
}

/// A saved plan is applied through the webhook on the home registry only (its plans are
/// the ones the webhook's dry runs save); naming another registry is refused.
pub fn applies_home(config: &Config, parameter: Option<&str>) -> Result<(), Refused> {
    match parameter {
        None => Ok(()),
        Some(named) if config.home().registry.host().eq_ignore_ascii_case(named) => Ok(()),
        Some(named) if config.member(named).is_some() => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the webhook applies saved plans of the home registry only, not of {}; use handler apply",
                quoted(named)
            ),
        )),
        Some(named) => Err(outside(named)),
    }
}

fn outside(named: &str) -> Refused {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        format!(
            "registry {} is not one of this app's registries (PURGE_FLEET or PURGE_REGISTRY); nothing was run",
            quoted(named)
        ),
    )
}
