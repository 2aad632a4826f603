//! The one way the Azure clients ([`super::in_use`], [`super::arm`], [`super::aks`],
//! [`super::pulls`]) call Azure: a bearer token from the Azure credential, a GET or POST
//! with a timeout, the same retry policy, and the answer read whole up to
//! [`MAX_ANSWER_BYTES`] (fail closed: never part of an answer).
//!
//! The retry policy ([`Caller::get`], [`Caller::post`]): an answer of 429, 408, 500, 502,
//! 503 or 504 is asked again, up to [`TRIES`] requests in all, after its `Retry-After` (or
//! Resource Graph's `x-ms-user-quota-resets-after`, else 1 s; at most
//! [`MAX_RETRY_WAIT`]). These are the statuses Azure's SDKs retry (azure_core's default
//! retry policy, typespec_client_core 1.1: "retries 408/429/500/502/503/504; honors
//! `Retry-After`"); ARM asks for the wait in `Retry-After` ("Understand how Azure Resource
//! Manager throttles requests", learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling).
//! Every query here is a read, so asking again changes nothing. The last answer, whatever
//! its status, is the caller's to judge.
//!
//! And the user quota ("Guidance for throttled requests in Azure Resource Graph",
//! learn.microsoft.com/azure/governance/resource-graph/concepts/guidance-for-throttled-requests):
//! an answer with `x-ms-user-quota-remaining: 0` holds the caller's next request until
//! `x-ms-user-quota-resets-after` (`hh:mm:ss`, at most [`MAX_QUOTA_WAIT`]); a client that
//! waits for the reset is not throttled. Only Resource Graph sends these headers; each
//! [`Caller`] keeps its own wait.

use azure_core::credentials::TokenCredential;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// The most bytes read of one answer: a Resource Graph page or a Log Analytics query
/// result (16 MiB). A page of Resource Graph's 1,000 rows, or the pull log's one row per
/// image, is a few megabytes at most; a larger answer is refused unread (its
/// `Content-Length`) or as soon as it passes the cap, and the lookup fails closed.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The most requests sent for one answer (the first and two more).
pub const TRIES: usize = 3;

/// The longest wait before asking again.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

/// The longest wait for a spent user quota to reset.
pub const MAX_QUOTA_WAIT: Duration = Duration::from_secs(60);

/// Why a request got no answer to judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// No token, or an endpoint a token must not be sent to.
    #[error("{0}")]
    Token(String),
    /// The request was not answered (connection, TLS, timeout).
    #[error("request failed: {0}")]
    Request(String),
    /// The answer could not be read whole: a broken body, or more than the cap.
    #[error("{0}")]
    Body(String),
}

/// An answer: its status, headers and body (at most [`MAX_ANSWER_BYTES`]).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, or why not.
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_str(&self.body).map_err(|e| format!("not JSON: {e}"))
    }

    /// Azure's `{"error":{"code","message"}}` of the body, or the body's start.
    pub fn error_text(&self) -> String {
        error_text(&self.body)
    }

    /// Whether `name` is `true` (any case).
    pub fn header_is_true(&self, name: &str) -> bool {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// A caller of one Azure API: the credential, the HTTP client, the timeout of each request,
/// and the user-quota wait of its answers. Clones share the wait.
#[derive(Clone)]
pub struct Caller {
    credential: Arc<dyn TokenCredential>,
    http: reqwest::Client,
    timeout: Duration,
    /// No request before this: the last answer said the user quota is spent
    /// (`x-ms-user-quota-remaining: 0`) until `x-ms-user-quota-resets-after`.
    quota_until: Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Caller {
    /// A caller signing in with `credential`, each request given `timeout`.
    pub fn new(
        credential: Arc<dyn TokenCredential>,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Caller {
        Caller {
            credential,
            http,
            timeout,
            quota_until: Arc::default(),
        }
    }

    /// A bearer token for `endpoint`'s audience (`{scheme}://{host}/.default`), sent only
    /// over https or to loopback.
    pub async fn token_for(&self, endpoint: &Url) -> Result<String, HttpError> {
        check_endpoint(endpoint).map_err(HttpError::Token)?;
        self.token_for_scope(&audience(endpoint)).await
    }

    /// A bearer token for `scope`.
    pub async fn token_for_scope(&self, scope: &str) -> Result<String, HttpError> {
        self.credential
            .get_token(&[scope], None)
            .await
            .map(|token| token.token.secret().to_string())
            .map_err(|e| {
                HttpError::Token(format!(
                    "token for {scope}: {}",
                    crate::outbound::error_chain(&e)
                ))
            })
    }

    /// `GET url` with `token`, under the retry policy.
    pub async fn get(&self, url: &Url, token: &str) -> Result<Answer, HttpError> {
        self.send(|| self.http.get(url.clone()).bearer_auth(token))
            .await
    }

    /// `POST url` of the JSON `body` with `token`, under the retry policy.
    pub async fn post(&self, url: &Url, token: &str, body: &Value) -> Result<Answer, HttpError> {
        self.send(|| self.http.post(url.clone()).bearer_auth(token).json(body))
            .await
    }

    async fn send(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Answer, HttpError> {
        let mut tries = 0;
        loop {
            tries += 1;
            self.wait_for_quota().await;
            let response = request()
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| HttpError::Request(crate::outbound::error_chain(&e)))?;
            let status = response.status().as_u16();
            // A 429 says how long to wait itself (`Retry-After`); an answer with no quota
            // left says when the next request may go.
            if response.status().is_success() {
                self.note_quota(response.headers());
            }
            if retried(status) && tries < TRIES {
                tokio::time::sleep(retry_after(response.headers())).await;
                continue;
            }
            let headers = response.headers().clone();
            let body = read_capped(response, MAX_ANSWER_BYTES)
                .await
                .map_err(HttpError::Body)?;
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
    }

    /// Waits while the user quota is spent, as the last answer said.
    async fn wait_for_quota(&self) {
        let until = *self
            .quota_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    /// Remembers when the next request may go: at once while quota remains, else after
    /// `x-ms-user-quota-resets-after`.
    fn note_quota(&self, headers: &HeaderMap) {
        let wait = quota_wait(headers);
        *self
            .quota_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = wait.map(|w| Instant::now() + w);
    }
}

/// Whether an answer of `status` is asked again (see the module documentation).
fn retried(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// How long to wait before the next request: `Some(resets-after)` (at most
/// [`MAX_QUOTA_WAIT`]) when `x-ms-user-quota-remaining` is 0, else `None`.
pub(crate) fn quota_wait(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let remaining: u64 = text("x-ms-user-quota-remaining")?.trim().parse().ok()?;
    if remaining > 0 {
        return None;
    }
    let seconds = text("x-ms-user-quota-resets-after")
        .and_then(hms_seconds)
        .unwrap_or(1);
    Some(Duration::from_secs(
        seconds.clamp(1, MAX_QUOTA_WAIT.as_secs()),
    ))
}

/// `hh:mm:ss` as seconds.
fn hms_seconds(value: &str) -> Option<u64> {
    let parts: Vec<u64> = value
        .trim()
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match parts[..] {
        [h, m, s] => Some(h * 3600 + m * 60 + s),
        _ => None,
    }
}

/// How long an answer asks to wait: `Retry-After` seconds, else
/// `x-ms-user-quota-resets-after` (`hh:mm:ss`), else 1 s; at most [`MAX_RETRY_WAIT`].
pub(crate) fn retry_after(headers: &HeaderMap) -> Duration {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let seconds = text("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or_else(|| text("x-ms-user-quota-resets-after").and_then(hms_seconds))
        .unwrap_or(1);
    Duration::from_secs(seconds).min(MAX_RETRY_WAIT)
}

/// Reads `response`'s body as text, at most `limit` bytes of it, chunk by chunk (never more
/// than `limit` held). An answer that declares or sends more is refused, with its size.
async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<String, String> {
    let too_large = |size: String| {
        format!(
            "the answer is {size}, more than the {} MiB read of one answer; nothing is decided on part of it",
            limit / (1024 * 1024)
        )
    };
    if let Some(declared) = response.content_length().filter(|n| *n > limit as u64) {
        return Err(too_large(format!("{declared} bytes (Content-Length)")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer: {}", crate::outbound::error_chain(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large(format!("over {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The token scope of an endpoint: `{scheme}://{host}/.default`.
pub fn audience(endpoint: &Url) -> String {
    format!(
        "{}://{}/.default",
        endpoint.scheme(),
        endpoint.host_str().unwrap_or_default()
    )
}

/// Why a token must not be sent to `endpoint`: not https, unless http to loopback.
fn check_endpoint(endpoint: &Url) -> Result<(), String> {
    let loopback = match endpoint.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => return Err(format!("{endpoint} has no host")),
    };
    match endpoint.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        other => Err(format!(
            "{endpoint}: a bearer token is sent only over https (or http to loopback), not {other}"
        )),
    }
}

/// Azure's `{"error":{"code","message"}}` of a body, or the body's start.
pub(crate) fn error_text(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    match error {
        Some(e) => {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("?");
            let message = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            let inner = e
                .pointer("/innererror/message")
                .and_then(|m| m.as_str())
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            format!("{code}: {message}{inner}")
        }
        None => body.chars().take(300).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn audience_follows_the_endpoint() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            audience(&url("https://management.azure.com")),
            "https://management.azure.com/.default"
        );
        assert_eq!(
            audience(&url("https://management.usgovcloudapi.net/")),
            "https://management.usgovcloudapi.net/.default"
        );
        assert_eq!(
            audience(&url("http://127.0.0.1:8080/x")),
            "http://127.0.0.1/.default"
        );
        assert!(check_endpoint(&url("http://localhost:1")).is_ok());
        assert!(check_endpoint(&url("http://example.com")).is_err());
        assert!(check_endpoint(&url("https://example.com")).is_ok());
    }

    #[test]
    fn error_text_reads_azure_errors() {
        assert_eq!(
            error_text(r#"{"error":{"code":"BadRequest","message":"no"}}"#),
            "BadRequest: no"
        );
        assert_eq!(
            error_text(
                r#"{"error":{"code":"BadArgumentError","message":"bad","innererror":{"message":"why"}}}"#
            ),
            "BadArgumentError: bad (why)"
        );
        assert_eq!(error_text("plain"), "plain");
    }

    #[test]
    fn a_spent_quota_waits_for_its_reset() {
        let headers = |remaining: &'static str, resets: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(
                "x-ms-user-quota-remaining",
                HeaderValue::from_static(remaining),
            );
            h.insert(
                "x-ms-user-quota-resets-after",
                HeaderValue::from_static(resets),
            );
            h
        };
        assert_eq!(quota_wait(&headers("14", "00:00:05")), None);
        assert_eq!(
            quota_wait(&headers("0", "00:00:05")),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            quota_wait(&headers("0", "01:00:00")),
            Some(Duration::from_secs(60)),
            "capped"
        );
        assert_eq!(
            quota_wait(&headers("0", "soon")),
            Some(Duration::from_secs(1))
        );
        assert_eq!(quota_wait(&HeaderMap::new()), None);
        assert_eq!(hms_seconds("00:01:30"), Some(90));
    }

    #[test]
    fn throttled_and_failing_answers_are_asked_again_after_their_wait() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(retried(status), "{status}");
        }
        for status in [200, 400, 401, 403, 404, 501] {
            assert!(!retried(status), "{status}");
        }
        let header = |name: &'static str, value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(value));
            h
        };
        assert_eq!(
            retry_after(&header("retry-after", "3")),
            Duration::from_secs(3)
        );
        assert_eq!(
            retry_after(&header("retry-after", "3600")),
            MAX_RETRY_WAIT,
            "capped"
        );
        assert_eq!(
            retry_after(&header("x-ms-user-quota-resets-after", "00:00:04")),
            Duration::from_secs(4)
        );
        assert_eq!(retry_after(&HeaderMap::new()), Duration::from_secs(1));
    }
}
