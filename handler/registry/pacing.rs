//! Pacing requests to ACR's per-identity rate limits, one limiter per request category.
//!
//! ACR throttles each identity per category of data-plane request (the rate card, requests
//! per minute; a registry as a whole allows twice as much):
//!
//! | category | requests | Basic / Standard | Premium |
//! |---|---|---|---|
//! | read | GET, HEAD | 5,000 | 10,000 |
//! | write | PUT, PATCH, POST | 1,000 | 2,000 |
//! | delete | DELETE | 500 | 2,000 |
//! | referrers | `GET /v2/{name}/referrers/{digest}` (also a read) | 250 | 1,000 |
//!
//! Above the rate ACR answers 429 with a `Retry-After` that counts down to the end of its
//! penalty, and a client that keeps sending only stays throttled. So a purge is bounded by
//! these budgets, not by latency, and the client paces itself: each category is a token
//! bucket (GCRA) at 97% of the card's rate (headroom for clock drift and network jitter
//! bunching requests at the server), holding a quarter second's worth of burst, so a run never
//! asks for more than the card allows. The OAuth2 token endpoints are not metered.
//!
//! Adaptive: when a request of a category is throttled anyway (another client shares the
//! identity, or the card is wrong), that category's rate is halved (never below 1/16 of the
//! card) and the category waits out the `Retry-After` (a countdown: waiting it out is
//! exactly right); every request that then succeeds probes back up by 1% of the card, up to
//! the card. Throttling never fails an item by itself: the transport retries it.

use serde::Serialize;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A category of ACR data-plane request, as the rate card counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Category {
    /// GET and HEAD.
    Read,
    /// PUT, PATCH and POST.
    Write,
    /// DELETE.
    Delete,
    /// The OCI referrers API (also spends a read).
    Referrers,
}

impl Category {
    /// Every category, in rate-card order.
    pub const ALL: [Category; 4] = [
        Category::Read,
        Category::Write,
        Category::Delete,
        Category::Referrers,
    ];

    /// The category of a data-plane request; `None` for the OAuth2 token endpoints, which
    /// the rate card does not meter.
    pub fn of(method: &str, template: &str) -> Option<Category> {
        if template.starts_with("/oauth2/") {
            return None;
        }
        Some(match method {
            "GET" | "HEAD" if template.contains("/referrers/") => Category::Referrers,
            "GET" | "HEAD" => Category::Read,
            "DELETE" => Category::Delete,
            _ => Category::Write,
        })
    }

    /// The lowercase name, as in metrics and the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Category::Read => "read",
            Category::Write => "write",
            Category::Delete => "delete",
            Category::Referrers => "referrers",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Requests per minute one identity may send, per category (`--rate-card`, policy
/// `rateCard`). `None` in a field means unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateCard {
    /// Reads (GET, HEAD) per minute.
    pub read: Option<f64>,
    /// Writes (PUT, PATCH, POST) per minute.
    pub write: Option<f64>,
    /// Deletes per minute.
    pub delete: Option<f64>,
    /// Referrers API calls per minute.
    pub referrers: Option<f64>,
}

/// What is wrong with a `--rate-card` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid rate card {value:?}: {why} (expected basic, standard, premium, unlimited or \
     read=N,write=N,delete=N,referrers=N in requests per minute)"
)]
pub struct RateCardError {
    value: String,
    why: String,
}

impl RateCard {
    /// Basic's published limits (the same as Standard's).
    pub const BASIC: RateCard = RateCard::per_minute(5_000.0, 1_000.0, 500.0, 250.0);
    /// Standard's published limits, the default.
    pub const STANDARD: RateCard = RateCard::per_minute(5_000.0, 1_000.0, 500.0, 250.0);
    /// Premium's published limits.
    pub const PREMIUM: RateCard = RateCard::per_minute(10_000.0, 2_000.0, 2_000.0, 1_000.0);
    /// No pacing at all (a registry that is not ACR, or a test).
    pub const UNLIMITED: RateCard = RateCard {
        read: None,
        write: None,
        delete: None,
        referrers: None,
    };

    const fn per_minute(read: f64, write: f64, delete: f64, referrers: f64) -> RateCard {
        RateCard {
            read: Some(read),
            write: Some(write),
            delete: Some(delete),
            referrers: Some(referrers),
        }
    }

    /// Parses `basic`, `standard`, `premium`, `unlimited`, or a custom card
    /// `read=N,write=N,delete=N,referrers=N` (per minute; omitted categories are unlimited).
    pub fn parse(value: &str) -> Result<RateCard, RateCardError> {
        let error = |why: String| RateCardError {
            value: value.to_string(),
            why,
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "basic" => return Ok(RateCard::BASIC),
            "standard" => return Ok(RateCard::STANDARD),
            "premium" => return Ok(RateCard::PREMIUM),
            "unlimited" | "none" => return Ok(RateCard::UNLIMITED),
            _ => {}
        }
        let mut card = RateCard::UNLIMITED;
        for part in value.split(',') {
            let Some((name, number)) = part.split_once('=') else {
                return Err(error(format!("{part:?} is not name=N")));
            };
            let rate: f64 = number
                .trim()
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite() && *r > 0.0)
                .ok_or_else(|| error(format!("{number:?} is not a positive number")))?;
            let slot = match name.trim() {
                "read" => &mut card.read,
                "write" => &mut card.write,
                "delete" => &mut card.delete,
                "referrers" => &mut card.referrers,
                other => return Err(error(format!("unknown category {other:?}"))),
            };
            *slot = Some(rate);
        }
        Ok(card)
    }

    /// The per-minute budget of a category (`None`: unlimited).
    pub fn rate(&self, category: Category) -> Option<f64> {
        match category {
            Category::Read => self.read,
            Category::Write => self.write,
            Category::Delete => self.delete,
            Category::Referrers => self.referrers,
        }
    }
}

impl Default for RateCard {
    fn default() -> Self {
        RateCard::STANDARD
    }
}

impl fmt::Display for RateCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Category::ALL
            .iter()
            .map(|&c| match self.rate(c) {
                Some(rate) => format!("{}={rate}", c.name()),
                None => format!("{}=unlimited", c.name()),
            })
            .collect();
        write!(f, "{}", parts.join(","))
    }
}

/// Rates never fall below the card divided by this on throttling.
const MAX_SLOWDOWN: f64 = 16.0;
/// A success raises a slowed-down rate by this fraction of the card.
const PROBE_STEP: f64 = 0.01;
/// Burst allowed, in seconds' worth of the current rate (at least one request). A quarter
/// of a second: half of what a registry tolerates, so that a DELETE verified after its slot
/// (one read late) still lands inside the registry's bucket.
const BURST_SECONDS: f64 = 0.25;
/// The share of the card a limiter paces at.
const HEADROOM: f64 = 0.97;

/// One category's limiter: GCRA over the current rate, plus a gate closed by `Retry-After`.
#[derive(Debug)]
struct Limiter {
    /// The card's rate, per second.
    card: f64,
    /// The current rate, per second (the card, or less after throttling).
    rate: f64,
    /// The theoretical arrival time of the next request.
    tat: Option<Instant>,
    /// No request of this category before this instant (a 429's `Retry-After`).
    gate: Option<Instant>,
}

impl Limiter {
    fn new(per_minute: f64) -> Limiter {
        let card = per_minute * HEADROOM / 60.0;
        Limiter {
            card,
            rate: card,
            tat: None,
            gate: None,
        }
    }

    /// Reserves the next slot and returns when it is.
    fn reserve(&mut self, now: Instant) -> Instant {
        let interval = Duration::from_secs_f64(1.0 / self.rate);
        let burst = Duration::from_secs_f64((BURST_SECONDS * self.rate).max(1.0) / self.rate);
        let start = self.gate.filter(|g| *g > now).unwrap_or(now);
        let tat = self.tat.map_or(start, |t| t.max(start));
        // GCRA: a request may go `burst - interval` ahead of its theoretical arrival time.
        let allowed = (tat + interval)
            .checked_sub(burst)
            .map_or(start, |a| a.max(start));
        self.tat = Some(tat + interval);
        allowed
    }

    fn throttled(&mut self, retry_after: Duration, now: Instant) {
        self.rate = (self.rate / 2.0).max(self.card / MAX_SLOWDOWN);
        let until = now + retry_after;
        if self.gate.is_none_or(|g| g < until) {
            self.gate = Some(until);
        }
        // Slots reserved before the 429 are void: start again after the gate.
        self.tat = Some(until);
    }

    fn succeeded(&mut self) {
        self.rate = (self.rate + self.card * PROBE_STEP).min(self.card);
    }
}

/// The limiters of one client (one identity), per category.
#[derive(Debug)]
pub(crate) struct Pacer {
    card: RateCard,
    limiters: [Option<Mutex<Limiter>>; 4],
}

impl Pacer {
    pub fn new(card: RateCard) -> Pacer {
        Pacer {
            card,
            limiters: Category::ALL.map(|c| card.rate(c).map(|r| Mutex::new(Limiter::new(r)))),
        }
    }

    /// The card this pacer follows.
    pub fn card(&self) -> RateCard {
        self.card
    }

    /// Waits until a request of `category` may be sent (a referrers call also waits for a
    /// read slot, since ACR counts it against both). A 429 that closes the category's gate
    /// while the request waits voids its slot: it takes a new one after the gate, instead
    /// of being sent into the penalty (which a registry answers with another 429).
    pub async fn acquire(&self, category: Category) {
        let mut categories = vec![category];
        if category == Category::Referrers {
            categories.push(Category::Read);
        }
        loop {
            let now = Instant::now();
            let mut at = now;
            for &c in &categories {
                if let Some(mut limiter) = self.limiter(c) {
                    at = at.max(limiter.reserve(now));
                }
            }
            if at > now {
                tokio::time::sleep_until(at).await;
            }
            let now = Instant::now();
            let gated = categories.iter().any(|&c| {
                self.limiter(c)
                    .is_some_and(|l| l.gate.is_some_and(|g| g > now))
            });
            if !gated {
                return;
            }
        }
    }

    /// The limiter of a metered category (`None`: unlimited, or a poisoned lock).
    fn limiter(&self, category: Category) -> Option<std::sync::MutexGuard<'_, Limiter>> {
        self.limiters[category.index()].as_ref()?.lock().ok()
    }

    /// Records a 429 on `category`: slow down and wait out `retry_after`.
    pub fn throttled(&self, category: Category, retry_after: Duration) {
        if let Some(mut limiter) = self.limiter(category) {
            limiter.throttled(retry_after, Instant::now());
        }
    }

    /// Records an answer that was not a 429: probe back up towards the card.
    pub fn succeeded(&self, category: Category) {
        if let Some(mut limiter) = self.limiter(category) {
            limiter.succeeded();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_cards_parse_by_name_and_by_category() {
        assert_eq!(RateCard::parse("standard"), Ok(RateCard::STANDARD));
        assert_eq!(RateCard::parse(" Premium "), Ok(RateCard::PREMIUM));
        assert_eq!(RateCard::parse("unlimited"), Ok(RateCard::UNLIMITED));
        let custom = RateCard::parse("read=600,delete=60").unwrap();
        assert_eq!(custom.read, Some(600.0));
        assert_eq!(custom.delete, Some(60.0));
        assert_eq!(custom.write, None);
        for bad in [
            "fast", "read=0", "read=-1", "read=x", "reads=5", "read", "read=inf",
        ] {
            let error = RateCard::parse(bad).unwrap_err().to_string();
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn categories_follow_the_rate_card() {
        assert_eq!(
            Category::of("GET", "/acr/v1/{repository}/_tags"),
            Some(Category::Read)
        );
        assert_eq!(
            Category::of("GET", "/v2/{repository}/referrers/{digest}"),
            Some(Category::Referrers)
        );
        assert_eq!(
            Category::of("DELETE", "/v2/{repository}/manifests/{reference}"),
            Some(Category::Delete)
        );
        assert_eq!(
            Category::of("PATCH", "/acr/v1/{repository}/_tags/{tag}"),
            Some(Category::Write)
        );
        assert_eq!(Category::of("POST", "/oauth2/token"), None);
    }

    #[test]
    fn a_limiter_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut limiter = Limiter::new(1200.0 / HEADROOM); // 20/s, burst 5
        let slots: Vec<Duration> = (0..30).map(|_| limiter.reserve(start) - start).collect();
        assert!(slots[..5].iter().all(|s| s.is_zero()), "{slots:?}");
        assert!(!slots[5].is_zero(), "{slots:?}");
        // Then one every 50 ms: the 30th request goes 1.25 s after the start.
        let last = slots[29].as_secs_f64();
        assert!((last - 1.25).abs() < 0.01, "{last}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_while_a_request_waits_voids_its_slot() {
        let pacer = Pacer::new(RateCard::parse("delete=60").expect("card"));
        pacer.acquire(Category::Delete).await;
        let start = Instant::now();
        let waiting = pacer.acquire(Category::Delete);
        tokio::pin!(waiting);
        tokio::select! {
            _ = &mut waiting => panic!("the second slot is about a second away"),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        pacer.throttled(Category::Delete, Duration::from_secs(5));
        waiting.await;
        assert!(Instant::now() >= start + Duration::from_millis(5500));
    }

    #[test]
    fn throttling_halves_the_rate_waits_out_retry_after_and_probes_back() {
        let start = Instant::now();
        let mut limiter = Limiter::new(600.0 / HEADROOM);
        limiter.throttled(Duration::from_secs(5), start);
        assert!((limiter.rate - 5.0).abs() < 1e-9);
        assert!(limiter.reserve(start) >= start + Duration::from_secs(5));
        for _ in 0..10 {
            limiter.throttled(Duration::ZERO, start);
        }
        assert!((limiter.rate - 10.0 / MAX_SLOWDOWN).abs() < 1e-9, "floor");
        for _ in 0..200 {
            limiter.succeeded();
        }
        assert!((limiter.rate - 10.0).abs() < 1e-9, "back to the card");
    }
}
