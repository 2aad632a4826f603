//! Sending one request: pacing to the rate card, bounded concurrency, retries, and
//! throttling.
//!
//! At most `concurrency` requests of each rate-card category are in flight (so
//! `--concurrency 8` means 8 deletes in flight, as in acr purge, while reads that verify
//! the next deletions and list other repositories proceed beside them). Every data-plane
//! request first waits for its category's slot ([`super::pacing`]); a checked request
//! ([`Transport::execute_checked`], every DELETE) then runs its check and is sent as soon
//! as one of its category's in-flight permits is free (at most one DELETE round trip), so
//! what the check read is that fresh when the request goes out. A 429
//! slows its category down (its requests wait out the `Retry-After`, or an exponential
//! backoff with jitter, and its rate is halved; a 429 on an unmetered token request pauses
//! the whole client) and is retried for as long as [`RetryPolicy::max_throttled_wait`]
//! allows; it never aborts the run by itself. Transport
//! errors, 408 and 5xx answers are retried [`RetryPolicy::attempts`] times, then returned so
//! that the caller can fail just that one item.
//!
//! A `Retry-After` is the registry's input, so it is read defensively: a value that is not a
//! finite, non-negative number of seconds or an HTTP date is ignored (the backoff applies),
//! and every wait is clamped to the policy's limits ([`RetryPolicy::max_retry_after`] for
//! 429, [`RetryPolicy::max_delay`] for 5xx), so no header can panic a run or park it for
//! hours.
//!
//! A circuit breaker ends runs against a registry that has gone away: after
//! [`RetryPolicy::breaker_failures`] requests in a row that exhausted their retries with
//! transport errors or 5xx answers (and no good answer in between), every further request
//! fails at once with [`RegistryError::Unavailable`], which stops the run.

use super::error::{RegistryError, error_chain};
use super::pacing::{Category, Pacer, RateCard};
use rand::Rng;
use reqwest::{RequestBuilder, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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
    /// The longest single wait a 429's `Retry-After` can ask for.
    pub max_retry_after: Duration,
    /// Requests in a row that failed after all their retries before the circuit breaker
    /// opens and the run stops.
    pub breaker_failures: u32,
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
            max_retry_after: Duration::from_secs(120),
            breaker_failures: 8,
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retrying a 429: the registry's `Retry-After` (at most
    /// [`RetryPolicy::max_retry_after`]) or the backoff, never past the throttling budget.
    fn throttle_wait(&self, retry_after: Option<Duration>, throttles: u32) -> Duration {
        retry_after
            .map(|wait| wait.min(self.max_retry_after))
            .unwrap_or_else(|| self.backoff(throttles))
            .min(self.max_throttled_wait)
    }

    /// The wait before retrying a 408 or 5xx: the registry's `Retry-After` or the backoff,
    /// at most [`RetryPolicy::max_delay`].
    fn failure_wait(&self, retry_after: Option<Duration>, failures: u32) -> Duration {
        retry_after
            .unwrap_or_else(|| self.backoff(failures))
            .min(self.max_delay)
    }

    /// Exponential backoff with full jitter in the upper half: `base·2^(n-1)`, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = exp / 2;
        half + Duration::from_millis(rand::rng().random_range(0..=half.as_millis() as u64))
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
    /// Per [`Category`]: requests sent and 429s received.
    by_category: [(AtomicU64, AtomicU64); 4],
}

/// Requests sent and 429s received in one [`Category`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CategoryCounts {
    /// HTTP requests sent (each retry counts).
    pub requests: u64,
    /// 429 answers received.
    pub throttled: u64,
}

/// [`CategoryCounts`] per rate-card category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ByCategory {
    /// GET and HEAD (referrers calls excluded).
    pub read: CategoryCounts,
    /// PUT, PATCH, POST.
    pub write: CategoryCounts,
    /// DELETE.
    pub delete: CategoryCounts,
    /// The referrers API.
    pub referrers: CategoryCounts,
}

impl ByCategory {
    /// The counts of one category.
    pub fn get(&self, category: Category) -> CategoryCounts {
        match category {
            Category::Read => self.read,
            Category::Write => self.write,
            Category::Delete => self.delete,
            Category::Referrers => self.referrers,
        }
    }
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
    /// Data-plane requests per rate-card category (token requests are not metered).
    pub by_category: ByCategory,
}

impl RequestStats {
    /// Reads the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let counts = |c: Category| {
            let (requests, throttled) = &self.by_category[c as usize];
            CategoryCounts {
                requests: requests.load(Ordering::Relaxed),
                throttled: throttled.load(Ordering::Relaxed),
            }
        };
        StatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            by_category: ByCategory {
                read: counts(Category::Read),
                write: counts(Category::Write),
                delete: counts(Category::Delete),
                referrers: counts(Category::Referrers),
            },
        }
    }

    fn count(&self, category: Option<Category>, throttled: bool) {
        if let Some(c) = category {
            let (requests, throttles) = &self.by_category[c as usize];
            requests.fetch_add(1, Ordering::Relaxed);
            if throttled {
                throttles.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// How many times `concurrency` requests of `category` may be in flight: reads (and
/// referrers calls, which ACR counts as reads too) as many times as the card allows more
/// reads than deletes (ten on Basic and Standard, five on Premium, ten when unlimited),
/// everything else once. So `--concurrency 8` is 8 deletes in flight, as in acr purge,
/// while the reads that list and verify keep up with what the card lets them do.
pub(crate) fn share(card: &RateCard, category: Category) -> usize {
    const MAX_SHARE: f64 = 10.0;
    match category {
        Category::Read | Category::Referrers => match (card.read, card.delete) {
            (Some(read), Some(delete)) => (read / delete).round().clamp(1.0, MAX_SHARE) as usize,
            _ => MAX_SHARE as usize,
        },
        Category::Write | Category::Delete => 1,
    }
}

/// What a check just before a request decided (`Transport::execute_checked`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precheck<T> {
    /// Send the request now.
    Send,
    /// Send nothing; the request ends with this value.
    Abort(T),
}

/// A check before a request (`Transport::execute_checked`): a boxed future, so that
/// checks that read the registry through the same client stay `Send`.
pub type Checked<'a, T> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Precheck<T>, RegistryError>> + Send + 'a>,
>;

/// The check of a request that needs none: it is always sent.
pub fn no_check<'c>() -> Checked<'c, Infallible> {
    Box::pin(async { Ok(Precheck::Send) })
}

/// Sends requests with retries; shared by API calls and token requests.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    pub http: reqwest::Client,
    pub retry: RetryPolicy,
    pub stats: Arc<RequestStats>,
    pacer: Arc<Pacer>,
    /// Reads allowed in flight at once.
    read_concurrency: usize,
    /// Requests in flight, bounded per category (the last one is for token requests).
    permits: Arc<[Semaphore; 5]>,
    resume_at: Arc<std::sync::Mutex<Option<Instant>>>,
    /// Requests in a row that failed after all their retries (the circuit breaker's count).
    failures_in_a_row: Arc<AtomicU32>,
}

impl Transport {
    pub fn new(
        http: reqwest::Client,
        retry: RetryPolicy,
        concurrency: usize,
        card: RateCard,
    ) -> Transport {
        Transport {
            http,
            retry,
            stats: Arc::default(),
            pacer: Arc::new(Pacer::new(card)),
            read_concurrency: concurrency.max(1) * share(&card, Category::Read),
            permits: Arc::new(std::array::from_fn(|i| {
                let share = Category::ALL.get(i).map_or(1, |&c| share(&card, c));
                Semaphore::new(concurrency.max(1) * share)
            })),
            resume_at: Arc::default(),
            failures_in_a_row: Arc::default(),
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
        let sent = self
            .execute_checked(route, context, build, &mut no_check)
            .await?;
        match sent {
            Ok(response) => Ok(response),
            Err(never) => match never {},
        }
    }

    /// [`Transport::execute`], with `check` run before every attempt, right after the
    /// request's rate-card slot is taken and before it is sent: the request goes out one
    /// round trip after the check, whatever the pacer made it wait. When the check aborts,
    /// nothing is sent and its value is returned (the slot is spent: a slot is cheap, a
    /// stale check is not).
    pub async fn execute_checked<'c, T>(
        &self,
        route: Route<'_>,
        context: &str,
        build: impl Fn() -> RequestBuilder,
        check: &mut impl FnMut() -> Checked<'c, T>,
    ) -> Result<Result<Response, T>, RegistryError> {
        let span = tracing::info_span!(
            "registry request",
            otel.name = format!("{} {}", route.method, route.template),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = route.method,
            url.template = route.template,
            server.address = route.host,
            http.response.status_code = tracing::field::Empty,
            purge.category = tracing::field::Empty,
            purge.retries = tracing::field::Empty,
            purge.throttled = tracing::field::Empty,
        );
        let category = Category::of(route.method, route.template);
        if let Some(c) = category {
            span.record("purge.category", c.name());
        }
        let result = self
            .attempts(category, context, build, check)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(Err(_)) => {}
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                span.record("http.response.status_code", i64::from(status));
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

    async fn attempts<'c, T>(
        &self,
        category: Option<Category>,
        context: &str,
        build: impl Fn() -> RequestBuilder,
        check: &mut impl FnMut() -> Checked<'c, T>,
    ) -> Result<Result<Response, T>, RegistryError> {
        let mut failures = 0u32;
        let mut throttled_for = Duration::ZERO;
        let mut throttles = 0u32;
        loop {
            self.check_breaker(context)?;
            match category {
                Some(c) => self.pacer.acquire(c).await,
                None => self.wait_for_gate().await,
            }
            if let Precheck::Abort(value) = check().await? {
                return Ok(Err(value));
            }
            let sent = {
                let _permit = self.permits[category.map_or(4, |c| c as usize)]
                    .acquire()
                    .await;
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                build().timeout(self.retry.request_timeout).send().await
            };
            let throttled = matches!(&sent, Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS);
            self.stats.count(category, throttled);
            if let Some(c) = category.filter(|_| !throttled) {
                self.pacer.succeeded(c);
            }
            let delay = match sent {
                Ok(response) if throttled => {
                    self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                    throttles += 1;
                    let delay = self.retry.throttle_wait(retry_after(&response), throttles);
                    if throttled_for + delay > self.retry.max_throttled_wait {
                        return Err(RegistryError::Throttled {
                            context: context.to_string(),
                            waited: throttled_for,
                        });
                    }
                    throttled_for += delay;
                    match category {
                        // The pacer holds the category back for `delay`: no sleep here, so
                        // the retry takes the first slot after the gate.
                        Some(c) => {
                            self.pacer.throttled(c, delay);
                            Duration::ZERO
                        }
                        None => {
                            self.close_gate(delay);
                            delay
                        }
                    }
                }
                Ok(response) if is_retryable(response.status()) => {
                    failures += 1;
                    if failures >= self.retry.attempts {
                        self.failures_in_a_row.fetch_add(1, Ordering::SeqCst);
                        return Ok(Ok(response));
                    }
                    self.retry.failure_wait(retry_after(&response), failures)
                }
                Ok(response) => {
                    self.failures_in_a_row.store(0, Ordering::SeqCst);
                    return Ok(Ok(response));
                }
                Err(error) => {
                    failures += 1;
                    if failures >= self.retry.attempts {
                        self.failures_in_a_row.fetch_add(1, Ordering::SeqCst);
                        return Err(RegistryError::Transport {
                            context: context.to_string(),
                            message: error_chain(&error),
                        });
                    }
                    self.retry.backoff(failures)
                }
            };
            if failures > 0 {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
            }
            let current = tracing::Span::current();
            // As i64: the OpenTelemetry layer exports u64 fields as strings.
            current.record("purge.retries", i64::from(failures + throttles));
            current.record("purge.throttled", i64::from(throttles));
            tokio::time::sleep(delay).await;
        }
    }

    /// The rate card the pacer follows.
    pub fn rate_card(&self) -> RateCard {
        self.pacer.card()
    }

    /// Reads allowed in flight at once ([`share`] of the concurrency).
    pub fn read_concurrency(&self) -> usize {
        self.read_concurrency
    }

    /// Fails fast once [`RetryPolicy::breaker_failures`] requests in a row have failed.
    fn check_breaker(&self, context: &str) -> Result<(), RegistryError> {
        let failures = self.failures_in_a_row.load(Ordering::SeqCst);
        if failures >= self.retry.breaker_failures.max(1) {
            return Err(RegistryError::Unavailable {
                context: context.to_string(),
                failures,
            });
        }
        Ok(())
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
    parse_retry_after(value, chrono::Utc::now())
}

/// A `Retry-After` value (seconds, or an HTTP date relative to `now`) as a wait; `None`
/// for anything else, including negative, non-finite and out-of-range numbers. Callers clamp.
fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wait_is_clamped_to_the_policy() {
        let policy = RetryPolicy::default();
        let day = Some(Duration::from_secs(86_400));
        assert_eq!(policy.throttle_wait(day, 1), policy.max_retry_after);
        assert_eq!(policy.failure_wait(day, 1), policy.max_delay);
        let short = Some(Duration::from_secs(3));
        assert_eq!(policy.throttle_wait(short, 1), Duration::from_secs(3));
        assert_eq!(policy.failure_wait(short, 1), Duration::from_secs(3));
        for attempt in [1, 5, 40, u32::MAX] {
            assert!(policy.failure_wait(None, attempt) <= policy.max_delay);
            assert!(policy.throttle_wait(None, attempt) <= policy.max_delay);
        }
        let tight = RetryPolicy {
            max_throttled_wait: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        assert_eq!(tight.throttle_wait(day, 1), Duration::from_secs(1));
    }

    #[test]
    fn retry_after_never_panics_and_rejects_nonsense() {
        let now = chrono::Utc::now();
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 0.5 ", now),
            Some(Duration::from_millis(500))
        );
        for bad in ["1e30", "-1", "NaN", "inf", "-inf", "1e309", "soon", ""] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
        let date = (now + chrono::Duration::seconds(30)).to_rfc2822();
        let wait = parse_retry_after(&date, now).unwrap();
        assert!(wait <= Duration::from_secs(30) && wait >= Duration::from_secs(29));
        let past = (now - chrono::Duration::seconds(30)).to_rfc2822();
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    }
}
