//! [`ApiError`]: every refusal the HTTP routes answer, as `{"error": message, "status":
//! code}` with that status. One constructor per refusal more than one handler gives.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::fmt::Display;

/// A refused request: answered `{"error": message, "status": code}`, with the fields added
/// by [`ApiError::with`] after those two.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    fields: Vec<(&'static str, Value)>,
    allow: Option<&'static str>,
}

impl ApiError {
    /// A refusal with `status` saying `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            fields: Vec::new(),
            allow: None,
        }
    }

    /// The same refusal with one more field in its body.
    pub fn with(mut self, name: &'static str, value: impl Into<Value>) -> ApiError {
        self.fields.push((name, value.into()));
        self
    }

    /// `405` naming the method the route takes (also in `Allow`).
    pub fn method_not_allowed(allow: &'static str) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("use {allow} on this route"),
        );
        error.allow = Some(allow);
        error
    }

    /// `503`: the run store cannot be read, so a run request is refused (`refused` and the
    /// store's `error` go to the logs, not to the caller).
    pub fn store_unavailable(refused: &str, error: &dyn Display) -> ApiError {
        tracing::error!("{refused}: {error}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the run store is unavailable (see the logs); retry later",
        )
    }

    /// `503`: the run store cannot be read, so a run's status cannot be told (the store's
    /// `error` goes to the logs).
    pub fn status_unavailable(error: &dyn Display) -> ApiError {
        tracing::error!("run status unavailable: {error}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the run store is unavailable (see the logs)",
        )
    }

    /// The status answered.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What the caller is told.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A route's refusal as its status and message (`route`, the apply flow).
impl From<(StatusCode, String)> for ApiError {
    fn from((status, message): (StatusCode, String)) -> ApiError {
        ApiError::new(status, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.message, "status": self.status.as_u16()});
        for (name, value) in self.fields {
            body[name] = value;
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(allow) = self.allow
            && let Ok(value) = HeaderValue::from_str(allow)
        {
            response.headers_mut().insert(header::ALLOW, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(error: ApiError) -> (StatusCode, Option<String>, String) {
        let response = error.into_response();
        let status = response.status();
        let allow = response
            .headers()
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        (status, allow, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn a_refusal_is_its_message_and_status_then_its_fields() {
        let (status, allow, text) =
            body(ApiError::new(StatusCode::CONFLICT, "held").with("runId", "r1")).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(allow, None);
        assert_eq!(text, r#"{"error":"held","runId":"r1","status":409}"#);
        let (status, allow, text) = body(ApiError::method_not_allowed("GET")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(allow.as_deref(), Some("GET"));
        assert_eq!(text, r#"{"error":"use GET on this route","status":405}"#);
    }
}
