//! The release webhook: who may call it and what it asks for.
//!
//! Authentication (on top of the Functions key): `X-Hub-Signature-256: sha256=<hex HMAC-SHA256
//! of the raw body>` (GitHub style), or `Authorization: Bearer <secret>` (ACR webhooks can only
//! send static headers); both compared in constant time. Bodies understood: an ACR push event
//! (`target.repository`), a GitHub release event (`repository.name`), and a generic
//! `{"repositories": ["app"], "dryRun": true}`. A GitHub or ACR ping is answered without a run.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The largest body accepted (1 MiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// What the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A ping (GitHub `ping` event, ACR `ping` action): answer, run nothing.
    Ping,
    /// A run, narrowed to `repositories` when given.
    Run {
        /// The repositories to purge (`None`: every repository the policy covers).
        repositories: Option<Vec<String>>,
        /// The caller asks for a dry run.
        dry_run: bool,
        /// Which kind of body it was (`acr`, `github`, `generic`).
        source: &'static str,
    },
}

/// How the caller proved it knows the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof<'a> {
    /// `X-Hub-Signature-256: sha256=<hex>`.
    Signature(&'a str),
    /// `Authorization: Bearer <secret>`.
    Bearer(&'a str),
}

/// Finds the caller's proof in the headers.
pub fn proof(headers: &HeaderMap) -> Option<Proof<'_>> {
    if let Some(signature) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
    {
        return Some(Proof::Signature(signature.trim()));
    }
    let authorization = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| Proof::Bearer(token.trim()))
}

/// Whether `proof` shows knowledge of `secret` for this `body`, in constant time.
pub fn verify(proof: Proof<'_>, secret: &str, body: &[u8]) -> bool {
    match proof {
        Proof::Signature(header) => {
            let Some(hex) = header.strip_prefix("sha256=") else {
                return false;
            };
            let Some(expected) = decode_hex(hex) else {
                return false;
            };
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
                return false;
            };
            mac.update(body);
            mac.verify_slice(&expected).is_ok()
        }
        Proof::Bearer(token) => constant_time_eq(token.as_bytes(), secret.as_bytes()),
    }
}

/// `sha256=<hex>` for `body` (what a sender computes).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Why a body was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(String);

/// Reads the request from a verified body.
pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Request, BodyError> {
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if event == "ping" {
        return Ok(Request::Ping);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BodyError(format!("the body is not valid JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(BodyError("the body must be a JSON object".to_string()));
    };
    if let Some(target) = object.get("target").and_then(Value::as_object) {
        if object.get("action").and_then(Value::as_str) == Some("ping") {
            return Ok(Request::Ping);
        }
        let repository = target
            .get("repository")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| BodyError("ACR event without target.repository".to_string()))?;
        return Ok(run(Some(vec![repository.to_string()]), false, "acr"));
    }
    if let Some(repository) = object.get("repository").and_then(Value::as_object) {
        let name = repository
            .get("name")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| BodyError("GitHub event without repository.name".to_string()))?;
        return Ok(run(Some(vec![name.to_string()]), false, "github"));
    }
    let known = ["repositories", "dryRun"];
    if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(BodyError(format!(
            "unrecognised body: field {unknown:?} is not part of an ACR event, a GitHub event or {{\"repositories\": [...], \"dryRun\": bool}}"
        )));
    }
    let repositories = match object.get("repositories") {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|i| {
                    i.as_str()
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .ok_or_else(|| {
                            BodyError("repositories must be non-empty strings".to_string())
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => {
            return Err(BodyError(
                "repositories must be an array of strings".to_string(),
            ));
        }
    };
    let dry_run = match object.get("dryRun") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(BodyError("dryRun must be true or false".to_string())),
    };
    Ok(run(repositories, dry_run, "generic"))
}

fn run(repositories: Option<Vec<String>>, dry_run: bool, source: &'static str) -> Request {
    Request::Run {
        repositories,
        dry_run,
        source,
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn signatures_and_bearer_tokens() {
        let body = br#"{"repositories":["app"]}"#;
        let good = sign("s3cret", body);
        let h = headers(&[("x-hub-signature-256", &good)]);
        assert!(verify(proof(&h).unwrap(), "s3cret", body));
        assert!(!verify(proof(&h).unwrap(), "other", body));
        assert!(!verify(proof(&h).unwrap(), "s3cret", b"{}"));
        assert!(!verify(Proof::Signature("sha256=zz"), "s3cret", body));
        assert!(!verify(Proof::Signature("md5=00"), "s3cret", body));
        let h = headers(&[("authorization", "Bearer s3cret")]);
        assert!(verify(proof(&h).unwrap(), "s3cret", body));
        assert!(!verify(proof(&h).unwrap(), "s3cret2", body));
        assert!(proof(&headers(&[("authorization", "Basic abc")])).is_none());
        assert!(proof(&HeaderMap::new()).is_none());
    }

    #[test]
    fn understands_the_three_body_kinds() {
        let none = HeaderMap::new();
        let acr = br#"{"id":"1","action":"push","target":{"repository":"web/app","tag":"v1"}}"#;
        assert_eq!(
            parse(&none, acr).unwrap(),
            run(Some(vec!["web/app".into()]), false, "acr")
        );
        let gh = br#"{"action":"published","release":{"tag_name":"v1"},"repository":{"name":"app","full_name":"org/app"}}"#;
        assert_eq!(
            parse(&none, gh).unwrap(),
            run(Some(vec!["app".into()]), false, "github")
        );
        let generic = br#"{"repositories":["a","b"],"dryRun":true}"#;
        assert_eq!(
            parse(&none, generic).unwrap(),
            run(Some(vec!["a".into(), "b".into()]), true, "generic")
        );
        assert_eq!(parse(&none, b"{}").unwrap(), run(None, false, "generic"));
        let ping = headers(&[("x-github-event", "ping")]);
        assert_eq!(parse(&ping, b"{\"zen\":\"x\"}").unwrap(), Request::Ping);
        assert_eq!(
            parse(&none, br#"{"action":"ping","target":{}}"#).unwrap(),
            Request::Ping
        );
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        let none = HeaderMap::new();
        for bad in [
            &b"not json"[..],
            b"[1]",
            br#"{"repositories":"app"}"#,
            br#"{"repositories":[1]}"#,
            br#"{"dryRun":"yes"}"#,
            br#"{"hello":1}"#,
            br#"{"target":{"tag":"v1"}}"#,
        ] {
            assert!(
                parse(&none, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
