//! The webhook secret: read from Key Vault with the managed identity (or given plainly),
//! cached, and read again when a proof does not verify with the cached value, so a rotated
//! secret works without a restart.
//!
//! One bad dependency must not stall the rest:
//!
//! - a proof that matches the cached secret is accepted at once, whatever a Key Vault read
//!   started by another caller is doing (the cache is behind a short synchronous lock that is
//!   never held across I/O);
//! - at most one read is in flight (single flight): callers that need one while it runs wait
//!   for its result instead of starting their own;
//! - every read, failed or not, is stamped, and no new read starts within
//!   [`REREAD_INTERVAL`] of the last one: a proof that does not match the cached secret is then
//!   answered at once (rejected);
//! - each read is bounded by [`READ_TIMEOUT`] in total (the Key Vault client's own retries
//!   included), and a read abandoned by its caller is stamped too.
//!
//! Fail-closed: until a read has succeeded there is no secret and nothing is accepted.
//! Errors name the vault and the secret for the logs only; callers get a generic answer.

use super::config::SecretSource;
use crate::outbound::{azure_credential, http_client_builder};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// The shortest time between two Key Vault reads (successful or not).
pub const REREAD_INTERVAL: Duration = Duration::from_secs(10);

/// The longest a Key Vault read may take, retries included.
pub const READ_TIMEOUT: Duration = Duration::from_secs(8);

/// Why the secret could not be read (for the logs: it names the vault and the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the webhook secret: {0}")]
pub struct SecretError(String);

/// What a check of a caller's proof concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// The proof matches the secret.
    Accepted,
    /// The proof matches neither the cached secret nor a fresh read of it.
    Rejected,
    /// No secret is known (never read successfully) or the read needed failed.
    Unavailable(SecretError),
}

#[derive(Default)]
struct Cache {
    /// The last secret read successfully.
    value: Option<String>,
    /// When the last read (successful or not) ended.
    last_read: Option<Instant>,
    /// How many reads have ended.
    generation: u64,
    /// The last read's error, if it failed.
    last_error: Option<SecretError>,
}

/// A cached webhook secret.
pub struct WebhookSecret {
    source: SecretSource,
    cache: Mutex<Cache>,
    /// Held by the one read in flight (single flight); never taken by a caller whose proof
    /// matches the cached secret.
    reading: tokio::sync::Mutex<()>,
}

impl WebhookSecret {
    /// A secret read from `source` on first use (a plain secret is known at once).
    pub fn new(source: SecretSource) -> WebhookSecret {
        let value = match &source {
            SecretSource::Plain(value) => Some(value.clone()),
            SecretSource::KeyVault { .. } => None,
        };
        WebhookSecret {
            source,
            cache: Mutex::new(Cache {
                value,
                ..Cache::default()
            }),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// Checks a proof: `matches` tells whether it verifies against a candidate secret.
    pub async fn check(&self, matches: impl Fn(&str) -> bool) -> SignatureCheck {
        let generation = {
            let cache = self.lock();
            if cache.value.as_deref().is_some_and(&matches) {
                return SignatureCheck::Accepted;
            }
            if matches!(self.source, SecretSource::Plain(_)) {
                return SignatureCheck::Rejected;
            }
            if cache
                .last_read
                .is_some_and(|at| at.elapsed() < REREAD_INTERVAL)
            {
                return cached_verdict(&cache);
            }
            cache.generation
        };
        match self.read_once(generation).await {
            Ok(value) if matches(&value) => SignatureCheck::Accepted,
            Ok(_) => SignatureCheck::Rejected,
            Err(error) => SignatureCheck::Unavailable(error),
        }
    }

    /// The secret after a read that ended after `generation`: joins the read in flight or
    /// starts one.
    async fn read_once(&self, generation: u64) -> Result<String, SecretError> {
        let _reading = self.reading.lock().await;
        {
            let cache = self.lock();
            if cache.generation != generation {
                // A read ended while this caller waited: use its result.
                return match (&cache.last_error, &cache.value) {
                    (Some(error), _) => Err(error.clone()),
                    (None, Some(value)) => Ok(value.clone()),
                    (None, None) => Err(SecretError("no secret was read".to_string())),
                };
            }
        }
        let mut stamp = Stamp {
            secret: self,
            result: None,
        };
        let result = match tokio::time::timeout(READ_TIMEOUT, self.read()).await {
            Ok(result) => result,
            Err(_) => Err(SecretError(format!(
                "the Key Vault read took longer than {} s",
                READ_TIMEOUT.as_secs()
            ))),
        };
        stamp.result = Some(result.clone());
        drop(stamp);
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn read(&self) -> Result<String, SecretError> {
        match &self.source {
            SecretSource::Plain(value) => Ok(value.clone()),
            SecretSource::KeyVault { vault_url, name } => read_key_vault(vault_url, name).await,
        }
    }
}

/// While the last read is recent: a known secret that did not match means rejected; no
/// known secret means unavailable.
fn cached_verdict(cache: &Cache) -> SignatureCheck {
    match (&cache.value, &cache.last_error) {
        (Some(_), _) => SignatureCheck::Rejected,
        (None, Some(error)) => SignatureCheck::Unavailable(error.clone()),
        (None, None) => SignatureCheck::Unavailable(SecretError("no secret was read".to_string())),
    }
}

/// Records a read's end in the cache, also when the reading caller goes away mid-read (then
/// as a failure), so abandoned reads are rate-limited too.
struct Stamp<'a> {
    secret: &'a WebhookSecret,
    result: Option<Result<String, SecretError>>,
}

impl Drop for Stamp<'_> {
    fn drop(&mut self) {
        let result = self
            .result
            .take()
            .unwrap_or_else(|| Err(SecretError("the read was abandoned".to_string())));
        let mut cache = self.secret.lock();
        cache.last_read = Some(Instant::now());
        cache.generation += 1;
        match result {
            Ok(value) => {
                cache.value = Some(value);
                cache.last_error = None;
            }
            Err(error) => cache.last_error = Some(error),
        }
    }
}

async fn read_key_vault(vault_url: &str, name: &str) -> Result<String, SecretError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        SecretError(format!("{what} ({name} in {vault_url}): {e}"))
    };
    let credential = azure_credential().map_err(|e| fail("no Azure credential", &e))?;
    let http = http_client_builder(&[])
        .map_err(|e| fail("HTTP client", &e))?
        .build()
        .map_err(|e| fail("HTTP client", &e))?;
    let mut options = SecretClientOptions::default();
    options.client_options.transport = Some(azure_core::http::Transport::new(Arc::new(http)));
    // The challenge's resource must match the vault's domain; a loopback vault (local
    // development, tests) has no such domain.
    if is_loopback(vault_url) {
        options.verify_challenge_resource = Some(false);
    }
    let client = SecretClient::new(vault_url, credential, Some(options))
        .map_err(|e| fail("Key Vault client", &e))?;
    let secret = client
        .get_secret(name, None)
        .await
        .map_err(|e| fail("Key Vault request failed", &e))?
        .into_model()
        .map_err(|e| fail("Key Vault answer", &e))?;
    secret
        .value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| SecretError(format!("secret {name} in {vault_url} has no value")))
}

fn is_loopback(url: &str) -> bool {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_plain_secret_never_reads_anything() {
        let secret = WebhookSecret::new(SecretSource::Plain("s".into()));
        assert_eq!(secret.check(|s| s == "s").await, SignatureCheck::Accepted);
        assert_eq!(secret.check(|s| s == "x").await, SignatureCheck::Rejected);
        assert_eq!(secret.lock().generation, 0);
    }

    #[tokio::test]
    async fn a_vault_that_cannot_be_reached_accepts_nothing_and_is_not_hammered() {
        // A closed port: the read fails at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(9);
        let secret = WebhookSecret::new(SecretSource::KeyVault {
            vault_url: format!("https://127.0.0.1:{closed}/"),
            name: "hook".into(),
        });
        assert!(matches!(
            secret.check(|_| true).await,
            SignatureCheck::Unavailable(_)
        ));
        let after_first = secret.lock().generation;
        assert_eq!(after_first, 1);
        for _ in 0..5 {
            assert!(matches!(
                secret.check(|_| true).await,
                SignatureCheck::Unavailable(_)
            ));
        }
        assert_eq!(secret.lock().generation, 1, "failed reads are rate-limited");
    }
}
