//! The webhook secret: read from Key Vault with the managed identity (or given plainly),
//! cached, and read again when a signature fails to verify with the cached value, so a
//! rotated secret works without a restart. Re-reads are spaced at least
//! [`REREAD_INTERVAL`] apart, so bad signatures cannot hammer Key Vault.

use super::config::SecretSource;
use crate::registry::{azure_credential, http_client_builder};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The shortest time between two Key Vault reads.
pub const REREAD_INTERVAL: Duration = Duration::from_secs(10);

/// Why the secret could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read the webhook secret: {0}")]
pub struct SecretError(String);

/// A cached webhook secret.
pub struct WebhookSecret {
    source: SecretSource,
    cache: Mutex<Option<(String, Instant)>>,
}

impl WebhookSecret {
    /// A secret read from `source` on first use.
    pub fn new(source: SecretSource) -> WebhookSecret {
        WebhookSecret {
            source,
            cache: Mutex::new(None),
        }
    }

    /// The current secret (cached after the first read).
    pub async fn current(&self) -> Result<String, SecretError> {
        let mut cache = self.cache.lock().await;
        if let Some((value, _)) = cache.as_ref() {
            return Ok(value.clone());
        }
        let value = self.read().await?;
        *cache = Some((value.clone(), Instant::now()));
        Ok(value)
    }

    /// Reads the secret again if it may have been rotated; returns the new value when it
    /// differs from the cached one.
    pub async fn reread(&self) -> Result<Option<String>, SecretError> {
        if matches!(self.source, SecretSource::Plain(_)) {
            return Ok(None);
        }
        let mut cache = self.cache.lock().await;
        if let Some((_, at)) = cache.as_ref()
            && at.elapsed() < REREAD_INTERVAL
        {
            return Ok(None);
        }
        let value = self.read().await?;
        let changed = cache.as_ref().is_none_or(|(old, _)| *old != value);
        *cache = Some((value.clone(), Instant::now()));
        Ok(changed.then_some(value))
    }

    async fn read(&self) -> Result<String, SecretError> {
        match &self.source {
            SecretSource::Plain(value) => Ok(value.clone()),
            SecretSource::KeyVault { vault_url, name } => read_key_vault(vault_url, name).await,
        }
    }
}

async fn read_key_vault(vault_url: &str, name: &str) -> Result<String, SecretError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        SecretError(format!("{what} ({name} in {vault_url}): {e}"))
    };
    let credential = azure_credential().map_err(|e| fail("no Azure credential", &e))?;
    let http = http_client_builder(&[])
        .and_then(|b| {
            b.build()
                .map_err(|e| crate::registry::RegistryError::Auth(e.to_string()))
        })
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
