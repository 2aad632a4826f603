//! Outbound plumbing shared by every client this program runs (the registry client, Key
//! Vault and the telemetry exporters): the HTTP client builder with its trusted roots, and
//! the Azure credential of the environment. It knows nothing of what the clients do; each
//! wraps an [`OutboundError`] in its own error.

use crate::settings;
use azure_core::credentials::TokenCredential;
use std::sync::Arc;
use std::time::Duration;

/// What could not be set up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboundError {
    /// Trusted roots or the HTTP client.
    #[error("TLS set-up: {0}")]
    Tls(String),
    /// The Azure credential.
    #[error("Azure credential: {0}")]
    Credential(String),
}

/// An HTTP client builder that trusts the system roots, `SSL_CERT_FILE` and
/// `extra_roots_pem`.
pub fn http_client_builder(
    extra_roots_pem: &[Vec<u8>],
) -> Result<reqwest::ClientBuilder, OutboundError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("acr-purge/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15));
    let mut pems = extra_roots_pem.to_vec();
    if let Some(path) = std::env::var_os(settings::SSL_CERT_FILE).filter(|p| !p.is_empty()) {
        let pem = std::fs::read(&path).map_err(|e| {
            OutboundError::Tls(format!(
                "reading SSL_CERT_FILE {}: {e}",
                path.to_string_lossy()
            ))
        })?;
        pems.push(pem);
    }
    for pem in pems {
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            OutboundError::Tls(format!("parsing PEM certificates: {}", error_chain(&e)))
        })?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    Ok(builder)
}

/// The Azure credential of this environment: managed identity when `IDENTITY_ENDPOINT` is
/// set (user-assigned with `AZURE_CLIENT_ID`), workload identity when
/// `AZURE_FEDERATED_TOKEN_FILE` is set, otherwise the developer tools (`az login`).
pub fn azure_credential() -> Result<Arc<dyn TokenCredential>, OutboundError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match var(settings::IDENTITY_ENDPOINT) {
        Some(_) => managed_identity(var(settings::AZURE_CLIENT_ID)),
        None if var(settings::AZURE_FEDERATED_TOKEN_FILE).is_some() => {
            azure_identity::WorkloadIdentityCredential::new(None)
                .map(|c| c as Arc<dyn TokenCredential>)
                .map_err(credential_error)
        }
        None => azure_identity::DeveloperToolsCredential::new(None)
            .map(|c| c as Arc<dyn TokenCredential>)
            .map_err(credential_error),
    }
}

/// The managed identity: user-assigned with `client_id`, else the system-assigned one.
pub fn managed_identity(
    client_id: Option<String>,
) -> Result<Arc<dyn TokenCredential>, OutboundError> {
    let options = client_id.map(|id| azure_identity::ManagedIdentityCredentialOptions {
        user_assigned_id: Some(azure_identity::UserAssignedId::ClientId(id)),
        ..Default::default()
    });
    azure_identity::ManagedIdentityCredential::new(options)
        .map(|c| c as Arc<dyn TokenCredential>)
        .map_err(credential_error)
}

fn credential_error(error: azure_core::Error) -> OutboundError {
    OutboundError::Credential(error_chain(&error))
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
