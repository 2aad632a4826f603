//! ACR's per-identity rate limits: a token bucket per identity and request category.
//!
//! Categories, as ACR's rate card counts them: **read** (GET, HEAD), **write** (PUT, PATCH,
//! POST), **delete** (DELETE) and **referrers** (`GET /v2/{name}/referrers/{digest}`, which
//! needs a token from both its own bucket and the read bucket). Only the data plane
//! (`/v2/…`, the `/v2/` ping included, and `/acr/v1/…`) is metered; `/oauth2/*` is not.
//!
//! The model: each bucket holds `burst_seconds` worth of its rate (at least one token) and
//! refills continuously at `rate / 60` per second. A request that finds its bucket empty is
//! answered 429 `TOOMANYREQUESTS` and opens a penalty window of `penalty_seconds` for that
//! identity and category: every request of the category in the window is a 429 whose
//! `Retry-After` is the whole seconds left (so it counts down: 60, then 50 ten seconds
//! later); the bucket refills meanwhile. Admin-user (Basic) and anonymous requests share
//! one identity; a bearer token's identity is its `sub` claim.

use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Requests per minute per category, with the bucket's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateCard {
    /// Reads (GET, HEAD) per minute.
    pub read: f64,
    /// Writes (PUT, PATCH, POST) per minute.
    pub write: f64,
    /// Deletes per minute.
    pub delete: f64,
    /// Referrers calls per minute.
    pub referrers: f64,
    /// Bucket capacity, in seconds' worth of the rate (default 10).
    #[serde(default = "default_burst")]
    pub burst_seconds: f64,
    /// How long a throttled category stays throttled (default 60).
    #[serde(default = "default_penalty")]
    pub penalty_seconds: f64,
}

fn default_burst() -> f64 {
    10.0
}

fn default_penalty() -> f64 {
    60.0
}

impl RateCard {
    fn per_minute(read: f64, write: f64, delete: f64, referrers: f64) -> RateCard {
        RateCard {
            read,
            write,
            delete,
            referrers,
            burst_seconds: default_burst(),
            penalty_seconds: default_penalty(),
        }
    }

    /// Basic's published limits.
    pub fn basic() -> RateCard {
        RateCard::per_minute(5_000.0, 1_000.0, 500.0, 250.0)
    }

    /// Standard's published limits.
    pub fn standard() -> RateCard {
        RateCard::per_minute(5_000.0, 1_000.0, 500.0, 250.0)
    }

    /// Premium's published limits.
    pub fn premium() -> RateCard {
        RateCard::per_minute(10_000.0, 2_000.0, 2_000.0, 1_000.0)
    }

    /// The same card with time compressed `factor` times: rates ×factor, burst and penalty
    /// ÷factor (a benchmark runs ten minutes of ACR in one).
    pub fn compressed(self, factor: f64) -> RateCard {
        RateCard {
            read: self.read * factor,
            write: self.write * factor,
            delete: self.delete * factor,
            referrers: self.referrers * factor,
            burst_seconds: self.burst_seconds / factor,
            penalty_seconds: self.penalty_seconds / factor,
        }
    }

    fn rate(&self, category: usize) -> f64 {
        [self.read, self.write, self.delete, self.referrers][category]
    }
}

/// Requests of one category as the emulator answered them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CategoryStats {
    /// Requests let through.
    pub allowed: u64,
    /// Requests answered 429.
    pub throttled: u64,
    /// When the first request was let through.
    pub first_allowed: Option<Instant>,
    /// When the last request was let through.
    pub last_allowed: Option<Instant>,
}

/// [`CategoryStats`] per category, over all identities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateStats {
    /// GET and HEAD (referrers calls excluded).
    pub read: CategoryStats,
    /// PUT, PATCH, POST.
    pub write: CategoryStats,
    /// DELETE.
    pub delete: CategoryStats,
    /// The referrers API.
    pub referrers: CategoryStats,
}

impl RateStats {
    fn category(&mut self, category: usize) -> &mut CategoryStats {
        match category {
            READ => &mut self.read,
            WRITE => &mut self.write,
            DELETE => &mut self.delete,
            _ => &mut self.referrers,
        }
    }
}

const READ: usize = 0;
const WRITE: usize = 1;
const DELETE: usize = 2;
const REFERRERS: usize = 3;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    penalty_until: Option<Instant>,
}

/// The buckets and counters (one per emulator).
#[derive(Debug, Default)]
pub(crate) struct Limits {
    card: Option<RateCard>,
    buckets: HashMap<(String, usize), Bucket>,
    stats: RateStats,
}

impl Limits {
    pub fn set_card(&mut self, card: Option<RateCard>) {
        self.card = card;
        self.buckets.clear();
    }

    pub fn stats(&self) -> RateStats {
        self.stats
    }

    pub fn reset_stats(&mut self) {
        self.stats = RateStats::default();
    }

    /// Meters one request; `Some(retry_after_seconds)` when it is throttled.
    pub fn admit(&mut self, method: &str, path: &str, authorization: Option<&str>) -> Option<u64> {
        let category = category(method, path)?;
        let now = Instant::now();
        let Some(card) = self.card.clone() else {
            count(&mut self.stats, category, now, true);
            return None;
        };
        let identity = identity(authorization);
        let needs: &[usize] = if category == REFERRERS {
            &[REFERRERS, READ]
        } else {
            &[category]
        };
        let mut wait = None;
        for &c in needs {
            let bucket = self.bucket(&identity, c, &card, now);
            if let Some(until) = bucket.penalty_until.filter(|u| *u > now) {
                wait = Some(wait.unwrap_or(Duration::ZERO).max(until - now));
            } else if bucket.tokens < 1.0 {
                let penalty = Duration::from_secs_f64(card.penalty_seconds.max(0.001));
                bucket.penalty_until = Some(now + penalty);
                wait = Some(wait.unwrap_or(Duration::ZERO).max(penalty));
            }
        }
        if let Some(wait) = wait {
            count(&mut self.stats, category, now, false);
            return Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        for &c in needs {
            self.bucket(&identity, c, &card, now).tokens -= 1.0;
        }
        count(&mut self.stats, category, now, true);
        None
    }

    fn bucket(
        &mut self,
        identity: &str,
        category: usize,
        card: &RateCard,
        now: Instant,
    ) -> &mut Bucket {
        let rate = card.rate(category) / 60.0;
        let capacity = (rate * card.burst_seconds).max(1.0);
        let bucket = self
            .buckets
            .entry((identity.to_string(), category))
            .or_insert(Bucket {
                tokens: capacity,
                at: now,
                penalty_until: None,
            });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.at = now;
        bucket
    }
}

fn count(stats: &mut RateStats, category: usize, now: Instant, allowed: bool) {
    let c = stats.category(category);
    if allowed {
        c.allowed += 1;
        c.first_allowed.get_or_insert(now);
        c.last_allowed = Some(now);
    } else {
        c.throttled += 1;
    }
}

/// The rate-card category of a request; `None` when it is not metered.
fn category(method: &str, path: &str) -> Option<usize> {
    if !(path == "/v2" || path.starts_with("/v2/") || path.starts_with("/acr/v1/")) {
        return None;
    }
    Some(match method {
        "GET" | "HEAD" if path.starts_with("/v2/") && path.contains("/referrers/") => REFERRERS,
        "GET" | "HEAD" => READ,
        "DELETE" => DELETE,
        _ => WRITE,
    })
}

/// The identity a request is metered as: a bearer token's `sub`, else the shared admin
/// and anonymous identity.
fn identity(authorization: Option<&str>) -> String {
    let subject = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|token| token.split('.').nth(1))
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|claims| {
            claims
                .get("sub")
                .and_then(|s| s.as_str())
                .map(str::to_string)
        });
    subject.map_or_else(|| "admin".to_string(), |s| format!("token:{s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_follow_the_rate_card() {
        assert_eq!(category("GET", "/v2/"), Some(READ));
        assert_eq!(category("GET", "/acr/v1/r/_tags"), Some(READ));
        assert_eq!(category("GET", "/v2/r/referrers/sha256:a"), Some(REFERRERS));
        assert_eq!(category("DELETE", "/v2/r/manifests/sha256:a"), Some(DELETE));
        assert_eq!(category("PATCH", "/acr/v1/r/_tags/v1"), Some(WRITE));
        assert_eq!(category("POST", "/oauth2/token"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_allows_its_burst_then_counts_down_its_penalty() {
        let mut limits = Limits::default();
        limits.set_card(Some(RateCard {
            delete: 60.0,
            burst_seconds: 2.0,
            penalty_seconds: 3.0,
            ..RateCard::standard()
        }));
        assert_eq!(limits.admit("DELETE", "/v2/r/manifests/a", None), None);
        assert_eq!(limits.admit("DELETE", "/v2/r/manifests/b", None), None);
        assert_eq!(limits.admit("DELETE", "/v2/r/manifests/c", None), Some(3));
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert_eq!(limits.admit("DELETE", "/v2/r/manifests/c", None), Some(2));
        // Reads are another bucket; a bearer identity has buckets of its own.
        assert_eq!(limits.admit("GET", "/acr/v1/r/_tags", None), None);
        tokio::time::advance(Duration::from_millis(2000)).await;
        assert_eq!(limits.admit("DELETE", "/v2/r/manifests/c", None), None);
        let stats = limits.stats();
        assert_eq!((stats.delete.allowed, stats.delete.throttled), (3, 2));
        assert_eq!(stats.read.allowed, 1);
    }

    #[test]
    fn bearer_tokens_are_metered_by_subject() {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"me"}"#);
        assert_eq!(identity(Some(&format!("Bearer h.{claims}.s"))), "token:me");
        assert_eq!(identity(Some("Basic dTpw")), "admin");
        assert_eq!(identity(None), "admin");
    }
}
