//! What Azure knows about a registry's images besides the registry: which workloads run
//! them ([`in_use`], Azure Resource Graph, with [`arm`] lists and AKS pods from [`aks`]) and when they were last pulled ([`pulls`], the
//! registry's `ContainerRegistryRepositoryEvents` in Log Analytics). Both clients are
//! read-only, sign in with the given Azure credential (a token per endpoint, the audience
//! `{scheme}://{host}/.default` of the endpoint, so sovereign clouds and tests are a
//! setting away: [`crate::settings::PURGE_ARM_ENDPOINT`],
//! [`crate::settings::PURGE_LOGS_ENDPOINT`]) and fail closed: any failed, partial or
//! unreadable answer is an error, never a shorter list.
//!
//! They know nothing of policy or plans; the caller decides what an answer protects.

pub mod aks;
pub mod arm;
pub mod findings;
pub mod in_use;
pub mod pulls;

/// The most bytes read of one answer: a Resource Graph page or a Log Analytics query
/// result (16 MiB). A page of Resource Graph's 1,000 rows, or the pull log's one row per
/// image, is a few megabytes at most; a larger answer is refused unread (its
/// `Content-Length`) or as soon as it passes the cap, and the lookup fails closed.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Reads `response`'s body as text, at most `limit` bytes of it, chunk by chunk (never more
/// than `limit` held). An answer that declares or sends more is refused, with its size.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<String, String> {
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

use azure_core::credentials::TokenCredential;
use url::Url;

/// The token scope of an endpoint: `{scheme}://{host}/.default`.
pub fn audience(endpoint: &Url) -> String {
    format!(
        "{}://{}/.default",
        endpoint.scheme(),
        endpoint.host_str().unwrap_or_default()
    )
}

/// Why a token could not be had or sent.
pub(crate) fn check_endpoint(endpoint: &Url) -> Result<(), String> {
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

/// A bearer token for `endpoint`'s audience.
pub(crate) async fn bearer(
    credential: &dyn TokenCredential,
    endpoint: &Url,
) -> Result<String, String> {
    check_endpoint(endpoint)?;
    let scope = audience(endpoint);
    credential
        .get_token(&[scope.as_str()], None)
        .await
        .map(|token| token.token.secret().to_string())
        .map_err(|e| format!("token for {scope}: {}", crate::outbound::error_chain(&e)))
}

/// The column names and rows of a `{"columns":[{"name","type"}],"rows":[[…]]}` table (the
/// shape of Resource Graph's `table` format and of every Logs table); every row as long as
/// the columns.
pub(crate) fn read_table(
    table: &serde_json::Value,
) -> Result<(Vec<String>, Vec<Vec<serde_json::Value>>), String> {
    let columns = table
        .get("columns")
        .and_then(|c| c.as_array())
        .ok_or("a table without a `columns` array")?
        .iter()
        .map(|c| {
            c.get("name")
                .and_then(|n| n.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("a column without a name: {c}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rows = table
        .get("rows")
        .and_then(|r| r.as_array())
        .ok_or("a table without a `rows` array")?
        .iter()
        .map(|row| {
            row.as_array()
                .filter(|cells| cells.len() == columns.len())
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "a row that does not match the {} columns: {row}",
                        columns.len()
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((columns, rows))
}

/// Azure's `{"error":{"code","message"}}` of a body, or the body's start.
pub(crate) fn error_text(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
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
}
