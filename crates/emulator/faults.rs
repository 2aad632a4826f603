//! Fault injection, latency and request recording, applied by one middleware in front
//! of every route.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Shared;
use super::http::ApiError;

/// How a fault rule matches the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Every path.
    Any,
    /// The raw path contains this text.
    Contains(String),
    /// The raw path starts with this text.
    Prefix(String),
}

/// What a matching fault rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this status (distribution error body), optionally with `Retry-After`.
    Respond {
        /// HTTP status code.
        status: u16,
        /// `Retry-After` header value, sent as given (seconds, a date, or nonsense).
        retry_after: Option<String>,
    },
    /// Delay the request, then handle it normally.
    Delay(Duration),
}

/// A fault rule. Build with [`Fault::status`], [`Fault::throttle`] or [`Fault::delay`],
/// then narrow it with the matchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// HTTP method to match (any if `None`), case-insensitive.
    pub method: Option<String>,
    /// Path matcher (raw, still percent-encoded path).
    pub path: PathMatch,
    /// Substring of the raw query string to match.
    pub query: Option<String>,
    /// How many more times the rule fires (`None` = always).
    pub times: Option<u32>,
    /// What happens.
    pub action: FaultAction,
}

impl Fault {
    /// Respond with `status` to every request (narrow it with the matchers).
    pub fn status(status: u16) -> Fault {
        Fault {
            method: None,
            path: PathMatch::Any,
            query: None,
            times: None,
            action: FaultAction::Respond {
                status,
                retry_after: None,
            },
        }
    }

    /// 429 `TOOMANYREQUESTS` with `Retry-After: <seconds>`.
    pub fn throttle(retry_after_seconds: u64) -> Fault {
        Fault::status(429).retry_after(retry_after_seconds)
    }

    /// Add latency before normal handling.
    pub fn delay(latency: Duration) -> Fault {
        Fault {
            action: FaultAction::Delay(latency),
            ..Fault::status(0)
        }
    }

    /// Only this method.
    pub fn method(mut self, method: &str) -> Fault {
        self.method = Some(method.to_string());
        self
    }

    /// Only paths containing `text`.
    pub fn path_contains(mut self, text: &str) -> Fault {
        self.path = PathMatch::Contains(text.to_string());
        self
    }

    /// Only paths starting with `prefix`.
    pub fn path_prefix(mut self, prefix: &str) -> Fault {
        self.path = PathMatch::Prefix(prefix.to_string());
        self
    }

    /// Only queries containing `text` (e.g. `last=latest`).
    pub fn query_contains(mut self, text: &str) -> Fault {
        self.query = Some(text.to_string());
        self
    }

    /// Fire at most `n` times.
    pub fn times(mut self, n: u32) -> Fault {
        self.times = Some(n);
        self
    }

    /// Add `Retry-After: <seconds>` to a status fault.
    pub fn retry_after(self, seconds: u64) -> Fault {
        self.retry_after_value(&seconds.to_string())
    }

    /// Add a `Retry-After` header with this exact value (`1e30`, an HTTP date, …).
    pub fn retry_after_value(mut self, value: &str) -> Fault {
        if let FaultAction::Respond { retry_after, .. } = &mut self.action {
            *retry_after = Some(value.to_string());
        }
        self
    }

    fn matches(&self, method: &str, path: &str, query: &str) -> bool {
        let method_ok = self
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method));
        let path_ok = match &self.path {
            PathMatch::Any => true,
            PathMatch::Contains(text) => path.contains(text.as_str()),
            PathMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
        };
        let query_ok = self.query.as_deref().is_none_or(|q| query.contains(q));
        method_ok && path_ok && query_ok && self.times != Some(0)
    }

    fn consume(&mut self) {
        if let Some(n) = &mut self.times {
            *n = n.saturating_sub(1);
        }
    }
}

/// One request as received, with the status it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Raw path (percent-encoding kept).
    pub path: String,
    /// Raw query string (empty when none).
    pub query: String,
    /// Status returned (0 while the request is in flight).
    pub status: u16,
}

/// The effect of the fault rules on one request.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub delay: Duration,
    pub respond: Option<(u16, Option<String>)>,
}

/// Applies the rules in order: delays add up, the first matching status answers.
pub(crate) fn evaluate(rules: &mut [Fault], method: &str, path: &str, query: &str) -> Verdict {
    let mut verdict = Verdict::default();
    for rule in rules.iter_mut() {
        if !rule.matches(method, path, query) {
            continue;
        }
        match &rule.action {
            FaultAction::Delay(d) => verdict.delay += *d,
            FaultAction::Respond {
                status,
                retry_after,
            } => {
                if verdict.respond.is_some() {
                    continue;
                }
                verdict.respond = Some((*status, retry_after.clone()));
            }
        }
        rule.consume();
    }
    verdict
}

fn fault_response(status: u16, retry_after: Option<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut error = ApiError::for_status(status);
    if let Some(value) = retry_after {
        error = error.with_header(header::RETRY_AFTER, value);
    }
    error.into_response()
}

/// Middleware: record, apply global latency and fault rules, then handle.
pub(crate) async fn middleware(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str();
    let path = request.uri().path();
    let query = request.uri().query().unwrap_or_default();
    let index = shared.recording().then(|| {
        shared.record_start(RecordedRequest {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            status: 0,
        })
    });
    let verdict = shared.evaluate_faults(method, path, query);
    let delay = shared.latency() + verdict.delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let throttled = match verdict.respond {
        Some(_) => None,
        None => shared.admit(method, path, authorization),
    };
    let response = match (verdict.respond, throttled) {
        (Some((status, retry_after)), _) => fault_response(status, retry_after),
        (None, Some(seconds)) => fault_response(429, Some(seconds.to_string())),
        (None, None) => next.run(request).await,
    };
    if let Some(index) = index {
        shared.record_status(index, response.status().as_u16());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_fire_the_given_number_of_times() {
        let mut rules = vec![
            Fault::throttle(3)
                .method("get")
                .path_contains("/_tags")
                .query_contains("last=latest")
                .times(2),
            Fault::delay(Duration::from_millis(5)).path_prefix("/acr/"),
        ];
        let hit =
            |rules: &mut Vec<Fault>| evaluate(rules, "GET", "/acr/v1/r/_tags", "n=3&last=latest");
        assert_eq!(hit(&mut rules).respond, Some((429, Some("3".to_string()))));
        assert_eq!(hit(&mut rules).respond, Some((429, Some("3".to_string()))));
        let third = hit(&mut rules);
        assert_eq!(third.respond, None);
        assert_eq!(third.delay, Duration::from_millis(5));
        assert!(
            evaluate(&mut rules, "DELETE", "/v2/r/manifests/x", "")
                .respond
                .is_none()
        );
        assert!(
            evaluate(&mut rules, "GET", "/acr/v1/r/_tags", "n=3")
                .respond
                .is_none()
        );
    }
}
