//! Where the registry is: `-r/--registry` resolution.

use std::fmt;
use url::Url;

/// A registry's base URL and the host name used in output lines (`host/repo:tag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: Url,
    host: String,
}

/// An unusable `--registry` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid registry {input:?}: {problem}")]
pub struct EndpointError {
    input: String,
    problem: String,
}

impl Endpoint {
    /// Resolves a registry argument: a bare name gets `.azurecr.io`, `host[:port]` means
    /// `https://host[:port]`, and an explicit `http://` or `https://` URL is used as given.
    pub fn parse(input: &str) -> Result<Endpoint, EndpointError> {
        let fail = |problem: &str| EndpointError {
            input: redact_userinfo(input),
            problem: problem.to_string(),
        };
        let text = input.trim();
        if text.is_empty() {
            return Err(fail("it is empty"));
        }
        let url_text = if text.starts_with("http://") || text.starts_with("https://") {
            text.to_string()
        } else if text.contains("://") {
            return Err(fail("only http:// and https:// URLs are supported"));
        } else if text.contains('.') || text.contains(':') {
            format!("https://{}", text.trim_end_matches('/'))
        } else {
            format!("https://{}.azurecr.io", text.trim_end_matches('/'))
        };
        let base = Url::parse(&url_text).map_err(|e| fail(&e.to_string()))?;
        if base.path() != "/" || base.query().is_some() || base.fragment().is_some() {
            return Err(fail(
                "give the registry's root URL, without a path or query",
            ));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(fail("put credentials in -u/-p, not in the URL"));
        }
        let Some(name) = base.host_str() else {
            return Err(fail("no host name"));
        };
        let host = match base.port() {
            Some(port) => format!("{name}:{port}"),
            None => name.to_string(),
        };
        Ok(Endpoint { base, host })
    }

    /// The root URL, e.g. `https://myregistry.azurecr.io/`.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The login server as printed in output lines, e.g. `myregistry.azurecr.io`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The absolute URL of a path-and-query on this registry.
    pub fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}{}",
            self.base.as_str().trim_end_matches('/'),
            path_and_query
        )
    }
}

/// `input` with any `user:password@` before the host replaced by `***@`, so that an error
/// about a registry value never repeats a credential (errors reach logs and callers).
fn redact_userinfo(input: &str) -> String {
    let (scheme, rest) = match input.find("://") {
        Some(at) => input.split_at(at + 3),
        None => ("", input),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => input.to_string(),
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_acr_purge_plus_urls() {
        let e = Endpoint::parse("myreg").unwrap();
        assert_eq!(e.base().as_str(), "https://myreg.azurecr.io/");
        assert_eq!(e.host(), "myreg.azurecr.io");
        let e = Endpoint::parse("myreg.azurecr.io").unwrap();
        assert_eq!(e.base().as_str(), "https://myreg.azurecr.io/");
        let e = Endpoint::parse("localhost:5000").unwrap();
        assert_eq!(e.base().as_str(), "https://localhost:5000/");
        assert_eq!(e.host(), "localhost:5000");
        let e = Endpoint::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(e.url("/v2/"), "http://127.0.0.1:8080/v2/");
        assert_eq!(e.host(), "127.0.0.1:8080");
    }

    #[test]
    fn errors_never_repeat_credentials() {
        for input in [
            "http://user:hunter2@host",
            "https://user:hunter2@host:5000/",
            "user:hunter2@host",
            "ftp://user:hunter2@host/x",
            "https://user:hunter2@host/path?q=1",
            "https://us@er:hunter2@host",
        ] {
            let error = Endpoint::parse(input).unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{input}: {error}");
            assert!(error.contains("***@host"), "{input}: {error}");
        }
        let error = Endpoint::parse("https://host/path")
            .unwrap_err()
            .to_string();
        assert!(error.contains("https://host/path"), "{error}");
    }

    #[test]
    fn rejects_unusable_values() {
        for bad in ["", "ftp://x", "https://x/path", "https://u:p@x", "http://"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
