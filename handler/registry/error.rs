//! What can go wrong talking to a registry, and the helpers that turn answers and
//! transport errors into a [`RegistryError`]; shared by the client and its parts (sign-in,
//! paging, transport), so that none of them reaches into another.

use crate::outbound::OutboundError;
pub(crate) use crate::outbound::error_chain;
use reqwest::Response;
use std::time::Duration;

/// A failed registry operation; every variant names the operation in `context`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// 401/403 after a fresh token: the identity lacks a permission.
    #[error("{context}: permission denied (HTTP {status})")]
    Denied {
        /// The operation.
        context: String,
        /// 401 or 403.
        status: u16,
    },
    /// Still throttled (429) after waiting `waited`.
    #[error("{context}: still throttled (HTTP 429) after waiting {waited:?}")]
    Throttled {
        /// The operation.
        context: String,
        /// Time spent waiting.
        waited: Duration,
    },
    /// An unexpected HTTP status.
    #[error("{context}: HTTP {status}: {body}")]
    Status {
        /// The operation.
        context: String,
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The registry could not be reached.
    #[error("{context}: {message}")]
    Transport {
        /// The operation.
        context: String,
        /// The transport error chain.
        message: String,
    },
    /// The answer did not have the expected shape.
    #[error("{context}: {problem}")]
    Protocol {
        /// The operation.
        context: String,
        /// What was wrong.
        problem: String,
    },
    /// Signing in failed.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The HTTP client or the Azure credential could not be set up (TLS roots, identity).
    #[error(transparent)]
    Setup(#[from] OutboundError),
    /// The circuit breaker is open: the registry stopped answering.
    #[error(
        "{context}: the registry stopped answering ({failures} requests in a row failed after all their retries)"
    )]
    Unavailable {
        /// The operation that was not sent.
        context: String,
        /// Requests in a row that failed.
        failures: u32,
    },
}

impl RegistryError {
    /// Whether this is a permission problem, which stops the whole run.
    pub fn is_denied(&self) -> bool {
        matches!(self, RegistryError::Denied { .. } | RegistryError::Auth(_))
    }

    /// Whether this error stops the whole run: a permission problem, or a registry that
    /// stopped answering (the circuit breaker is open).
    pub fn stops_run(&self) -> bool {
        self.is_denied() || matches!(self, RegistryError::Unavailable { .. })
    }
}

pub(super) async fn decode<T: serde::de::DeserializeOwned>(
    response: Response,
    context: &str,
) -> Result<T, RegistryError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| RegistryError::Transport {
            context: context.to_string(),
            message: error_chain(&e),
        })?;
    serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
        context: context.to_string(),
        problem: format!("unexpected JSON: {e}"),
    })
}

pub(super) async fn unexpected(response: Response, context: &str) -> RegistryError {
    let status = response.status().as_u16();
    RegistryError::Status {
        context: context.to_string(),
        status,
        body: short_body(response).await,
    }
}

/// The start of a response body, for error messages.
pub(super) async fn short_body(response: Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
