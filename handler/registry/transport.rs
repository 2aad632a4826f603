//! Sending one request: bounded concurrency, retries, and throttling.
//!
//! A 429 slows the whole client down (every request waits out the `Retry-After`, or an
//! exponential backoff with jitter) and is retried for as long as
//! [`RetryPolicy::max_throttled_wait`] allows; it never aborts the run by itself. Transport
//! errors, 408 and 5xx answers are retried [`RetryPolicy::attempts`] times, then returned so
//! that the caller can fail just that one item.

use super::RegistryError;
use rand::Rng;
use reqwest::{RequestBuilder, Response, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument;

/// How requests are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts for transport errors, 408 and 5xx (the first try included).
    pub attempts: u32,
    /// First backoff delay; doubled on each retry, with jitter.
    pub base_delay: Duration,
    /// Largest single backoff delay.
    pub max_delay: Duration,
    /// The longest a single request may keep being throttled (429) before it fails.
    pub max_throttled_wait: Duration,
    /// Timeout of one HTTP exchange.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_throttled_wait: Duration::from_secs(15 * 60),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// What a request is, for its client span: method, path template and host.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route<'a> {
    pub method: &'a str,
    pub template: &'a str,
    pub host: &'a str,
}

/// Counters of what the transport did, for reports and telemetry.
#[derive(Debug, Default)]
pub struct RequestStats {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
}

/// A snapshot of [`RequestStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// HTTP requests sent (each retry counts).
    pub requests: u64,
    /// Retries after transport errors, 408 or 5xx.
    pub retries: u64,
    /// 429 answers received.
    pub throttled: u64,
}

impl RequestStats {
    /// Reads the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}

/// Sends requests with retries; shared by API calls and token requests.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    pub http: reqwest::Client,
    pub retry: RetryPolicy,
    pub stats: Arc<RequestStats>,
    permits: Arc<Semaphore>,
    resume_at: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Transport {
    pub fn new(http: reqwest::Client, retry: RetryPolicy, concurrency: usize) -> Transport {
        Transport {
            http,
            retry,
            stats: Arc::default(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            resume_at: Arc::default(),
        }
    }

    /// Sends the request built by `build` until it gets an answer that is neither a 429
    /// nor a retryable failure, or the retry budget is spent. `context` names the operation
    /// in errors; `route` is the low-cardinality path template of the client span
    /// (`GET /acr/v1/{repository}/_tags`), which records the final status and the retries.
    pub async fn execute(
        &self,
        route: Route<'_>,
        context: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let span = tracing::info_span!(
            "registry request",
            otel.name = format!("{} {}", route.method, route.template),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = route.method,
            url.template = route.template,
            server.address = route.host,
            http.response.status_code = tracing::field::Empty,
            purge.retries = tracing::field::Empty,
            purge.throttled = tracing::field::Empty,
        );
        let result = self.attempts(context, build).instrument(span.clone()).await;
        match &result {
            Ok(response) => {
                let status = response.status().as_u16();
                span.record("http.response.status_code", status);
                if status >= 500 {
                    span.record("otel.status_code", "error");
                }
            }
            Err(_) => {
                span.record("otel.status_code", "error");
            }
        }
        result
    }

    async fn attempts(
        &self,
        context: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut failures = 0u32;
        let mut throttled_for = Duration::ZERO;
        let mut throttles = 0u32;
        loop {
            self.wait_for_gate().await;
            let sent = {
                let _permit = self.permits.acquire().await;
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                build().timeout(self.retry.request_timeout).send().await
            };
            let delay = match sent {
                Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                    throttles += 1;
                    let delay = retry_after(&response)
                        .unwrap_or_else(|| self.backoff(throttles))
                        .min(self.retry.max_throttled_wait);
                    if throttled_for + delay > self.retry.max_throttled_wait {
                        return Err(RegistryError::Throttled {
                            context: context.to_string(),
                            waited: throttled_for,
                        });
                    }
                    throttled_for += delay;
                    self.close_gate(delay);
                    delay
                }
                Ok(response) if is_retryable(response.status()) => {
                    failures += 1;
                    if failures >= self.retry.attempts {
                        return Ok(response);
                    }
                    retry_after(&response).unwrap_or_else(|| self.backoff(failures))
                }
                Ok(response) => return Ok(response),
                Err(error) => {
                    failures += 1;
                    if failures >= self.retry.attempts {
                        return Err(RegistryError::Transport {
                            context: context.to_string(),
                            message: error_chain(&error),
                        });
                    }
                    self.backoff(failures)
                }
            };
            if failures > 0 {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
            }
            let current = tracing::Span::current();
            current.record("purge.retries", failures + throttles);
            current.record("purge.throttled", throttles);
            tokio::time::sleep(delay).await;
        }
    }

    /// Exponential backoff with full jitter in the upper half: `base·2^(n-1)`, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retry
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.retry.max_delay);
        let half = exp / 2;
        half + Duration::from_millis(rand::rng().random_range(0..=half.as_millis() as u64))
    }

    fn close_gate(&self, delay: Duration) {
        let until = Instant::now() + delay;
        if let Ok(mut resume) = self.resume_at.lock()
            && resume.is_none_or(|at| at < until)
        {
            *resume = Some(until);
        }
    }

    async fn wait_for_gate(&self) {
        let until = self.resume_at.lock().ok().and_then(|at| *at);
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 500 | 502 | 503 | 504)
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    if let Ok(seconds) = value.trim().parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// An error with its sources, on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
