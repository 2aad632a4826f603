//! Where telemetry goes: Application Insights (its connection string; with Entra
//! authentication when `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` says `Authorization=AAD`)
//! and/or an OTLP/HTTP collector (`OTEL_EXPORTER_OTLP_ENDPOINT` and the other standard
//! `OTEL_*` variables).

use crate::outbound::{self, OutboundError, http_client_builder};
use crate::settings;
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use std::sync::Arc;

/// The Entra scope of Azure Monitor ingestion.
pub const MONITOR_SCOPE: &str = "https://monitor.azure.com/.default";

/// Which exporters the environment asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportConfig {
    /// `APPLICATIONINSIGHTS_CONNECTION_STRING`.
    pub app_insights: Option<String>,
    /// The client id of `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` when it asks for Entra
    /// authentication (`Authorization=AAD`); `Some("")` for a system-assigned identity.
    pub entra_client_id: Option<String>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces-specific variable) is set.
    pub otlp: bool,
}

impl ExportConfig {
    /// Reads the environment.
    pub fn from_env() -> ExportConfig {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let entra_client_id = var(settings::APPLICATIONINSIGHTS_AUTHENTICATION_STRING)
            .and_then(|t| entra_client_id(&t));
        ExportConfig {
            app_insights: var(settings::APPLICATIONINSIGHTS_CONNECTION_STRING),
            entra_client_id,
            otlp: var(settings::OTEL_EXPORTER_OTLP_ENDPOINT).is_some()
                || var(settings::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).is_some(),
        }
    }
}

/// The client id of an `Authorization=AAD` authentication string (empty for a
/// system-assigned identity); `None` when it does not ask for Entra authentication.
pub fn entra_client_id(text: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = text
        .split(';')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let aad = pairs
        .iter()
        .any(|(k, v)| k == "authorization" && v.eq_ignore_ascii_case("aad"));
    aad.then(|| {
        pairs
            .iter()
            .find(|(k, _)| k == "clientid")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    })
}

/// The HTTP client exporters send with: trusts `SSL_CERT_FILE`, and adds an Entra bearer
/// token for Azure Monitor when configured.
#[derive(Debug, Clone)]
pub struct ExportClient {
    http: reqwest::Client,
    entra: Option<Arc<dyn TokenCredential>>,
}

impl ExportClient {
    /// A client; with `entra_client_id`, requests carry a token of that managed identity
    /// (or of the environment's credential when the id is empty).
    pub fn new(entra_client_id: Option<&str>) -> Result<ExportClient, OutboundError> {
        let http = http_client_builder(&[])?
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| OutboundError::Tls(format!("telemetry HTTP client: {e}")))?;
        let entra = match entra_client_id {
            None => None,
            Some(id) => Some(monitor_credential(id)?),
        };
        Ok(ExportClient { http, entra })
    }
}

fn monitor_credential(client_id: &str) -> Result<Arc<dyn TokenCredential>, OutboundError> {
    if client_id.is_empty() || std::env::var_os(settings::IDENTITY_ENDPOINT).is_none() {
        return outbound::azure_credential();
    }
    outbound::managed_identity(Some(client_id.to_string()))
}

#[async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let mut request = request;
        if let Some(credential) = &self.entra {
            let token = credential.get_token(&[MONITOR_SCOPE], None).await?;
            let value = format!("Bearer {}", token.token.secret());
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value.parse()?);
        }
        self.http.send_bytes(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::entra_client_id;

    #[test]
    fn reads_the_authentication_string() {
        assert_eq!(
            entra_client_id("ClientId=abc;Authorization=AAD").as_deref(),
            Some("abc")
        );
        assert_eq!(entra_client_id("Authorization=aad").as_deref(), Some(""));
        assert_eq!(entra_client_id("ClientId=abc"), None);
    }
}
