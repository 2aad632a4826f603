//! Who may call the webhook routes: a valid configuration with a webhook secret, and a
//! proof (bearer token or body signature) that matches it.

use super::{ApiError, AppState, INVALID_CONFIGURATION, SECRET_UNAVAILABLE};
use crate::functions::config::Config;
use crate::functions::proof::ProofError;
use crate::functions::secret::{SignatureCheck, WebhookSecret};
use axum::http::StatusCode;
use std::sync::Arc;

/// The configuration and the webhook secret; when the configuration is invalid (the
/// details logged), `500` saying only [`INVALID_CONFIGURATION`].
pub(super) fn configured(state: &AppState) -> Result<(Arc<Config>, &WebhookSecret), ApiError> {
    let invalid = || ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, INVALID_CONFIGURATION);
    let config = match &state.config {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("webhook refused, invalid configuration: {e}");
            return Err(invalid());
        }
    };
    if let Err(e) = &config.webhook_secret {
        tracing::error!("webhook refused, invalid configuration: {e}");
        return Err(invalid());
    }
    let Some(secret) = state.secret.as_deref() else {
        tracing::error!("webhook refused: no webhook secret");
        return Err(invalid());
    };
    Ok((config.clone(), secret))
}

/// 401 when the proof does not verify, 503 when the secret cannot be read.
pub(super) async fn check(
    secret: &WebhookSecret,
    matches: impl Fn(&str) -> bool,
) -> Result<(), ApiError> {
    match secret.check(matches).await {
        SignatureCheck::Accepted => Ok(()),
        SignatureCheck::Rejected => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the signature or token does not match the webhook secret",
        )),
        SignatureCheck::Unavailable(e) => {
            tracing::error!("webhook refused: {e}");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                SECRET_UNAVAILABLE,
            ))
        }
    }
}

/// A missing proof is 401, a proof given twice 400.
impl From<ProofError> for ApiError {
    fn from(e: ProofError) -> ApiError {
        let status = match e {
            ProofError::Missing => StatusCode::UNAUTHORIZED,
            ProofError::Duplicate(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    }
}
