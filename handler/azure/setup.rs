//! What the Azure clients are built from, read from the environment: an endpoint setting
//! (e.g. [`crate::settings::PURGE_ARM_ENDPOINT`]) and why the clients cannot be built.

use crate::outbound::OutboundError;
use url::Url;

/// Why the Azure clients cannot be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SetupError {
    /// The Azure credential or the HTTP client.
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    /// An endpoint setting that is not a URL.
    #[error("{name} {value:?}: {detail}")]
    Endpoint {
        /// The setting's name.
        name: String,
        /// Its value.
        value: String,
        /// Why it is not a URL.
        detail: String,
    },
}

/// The URL in the environment variable `name` (trimmed), else `default` when it is unset
/// or blank.
pub fn endpoint(name: &str, default: &str) -> Result<Url, SetupError> {
    let text = std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string());
    Url::parse(text.trim()).map_err(|e| SetupError::Endpoint {
        name: name.to_string(),
        value: text.clone(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_endpoint_is_the_default_and_a_bad_one_is_named() {
        let unset = "ACR_PURGE_TEST_ENDPOINT_NEVER_SET";
        assert_eq!(
            endpoint(unset, "https://management.azure.com")
                .map(|u| u.to_string())
                .ok(),
            Some("https://management.azure.com/".to_string())
        );
        let error = endpoint(unset, "not a url").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("{unset} \"not a url\": ")),
            "{error}"
        );
    }
}
