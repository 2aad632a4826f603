//! The release webhook's bodies: what a verified caller asks for.
//!
//! Understood (every shape may carry `"dryRun": true|false`; any other `dryRun` is a 400):
//!
//! - an ACR event (`target` object): action `push` runs the policy narrowed to
//!   `target.repository`; `ping` is answered without a run; any other action (`delete`,
//!   `quarantine`, `chart_push`, ...) is ignored (200 `{"ignored": why}`, no run);
//! - a GitHub event: `X-GitHub-Event: release` (or, without that header, a body with `release`
//!   and `repository.name`) runs the policy narrowed to `repository.name`, whatever the
//!   release's action; `ping` is answered without a run; every other GitHub event is ignored;
//! - `{"repositories": ["app"], "dryRun": true}` (both optional; no other field).
//!
//! Deliveries are not de-duplicated: a replayed delivery can only start another run of the
//! same policy-bound purge, which is idempotent, and GitHub's "Redeliver" is a deliberate
//! re-run.
//!
//! Authentication (on top of the Functions key): `X-Hub-Signature-256: sha256=<hex HMAC-SHA256
//! of the raw body>` (GitHub style), or `Authorization: Bearer <secret>` (ACR webhooks can only
//! send static headers); both compared in constant time.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

/// The largest body accepted (1 MiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// The most characters of a caller's name (repository, event, action) echoed in an answer.
pub const MAX_ECHOED_CHARS: usize = 64;

/// What the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A ping (GitHub `ping` event, ACR `ping` action): answer, run nothing.
    Ping,
    /// An event that starts no run (answered 200 with the reason).
    Ignored(String),
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
    let mut events = headers.get_all("x-github-event").iter();
    let event = events.next();
    if events.next().is_some() {
        return Err(BodyError(
            "the X-GitHub-Event header is given more than once".to_string(),
        ));
    }
    let event = match event {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| BodyError("X-GitHub-Event is not text".to_string()))?,
        ),
    };
    if event == Some("ping") {
        return Ok(Request::Ping);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BodyError(format!("the body is not valid JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(BodyError("the body must be a JSON object".to_string()));
    };
    let dry_run = match object.get("dryRun") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(BodyError("dryRun must be true or false".to_string())),
    };
    if let Some(event) = event {
        return if event == "release" {
            github_release(object, dry_run)
        } else {
            Ok(Request::Ignored(format!(
                "GitHub event {} starts no run; only release events do",
                quoted(event)
            )))
        };
    }
    if let Some(target) = object.get("target").and_then(Value::as_object) {
        return acr_event(object, target, dry_run);
    }
    if object.get("repository").is_some_and(Value::is_object) {
        return if object.contains_key("release") {
            github_release(object, dry_run)
        } else {
            Ok(Request::Ignored(
                "a GitHub event that is not a release starts no run".to_string(),
            ))
        };
    }
    generic(object, dry_run)
}

fn acr_event(
    object: &Map<String, Value>,
    target: &Map<String, Value>,
    dry_run: bool,
) -> Result<Request, BodyError> {
    let action = object
        .get("action")
        .and_then(Value::as_str)
        .ok_or_else(|| BodyError("ACR event without action".to_string()))?;
    match action {
        "ping" => Ok(Request::Ping),
        "push" => {
            let repository = target
                .get("repository")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                .ok_or_else(|| BodyError("ACR event without target.repository".to_string()))?;
            Ok(run(Some(vec![repository.to_string()]), dry_run, "acr"))
        }
        other => Ok(Request::Ignored(format!(
            "ACR action {} starts no run; only push does",
            quoted(other)
        ))),
    }
}

fn github_release(object: &Map<String, Value>, dry_run: bool) -> Result<Request, BodyError> {
    let name = object
        .get("repository")
        .and_then(Value::as_object)
        .and_then(|r| r.get("name"))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| BodyError("GitHub release event without repository.name".to_string()))?;
    Ok(run(Some(vec![name.to_string()]), dry_run, "github"))
}

fn generic(object: &Map<String, Value>, dry_run: bool) -> Result<Request, BodyError> {
    let known = ["repositories", "dryRun"];
    if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(BodyError(format!(
            "unrecognised body: field {} is not part of an ACR event, a GitHub event or {{\"repositories\": [...], \"dryRun\": bool}}",
            quoted(unknown)
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
    Ok(run(repositories, dry_run, "generic"))
}

fn run(repositories: Option<Vec<String>>, dry_run: bool, source: &'static str) -> Request {
    Request::Run {
        repositories,
        dry_run,
        source,
    }
}

/// `text` quoted for an answer, cut to [`MAX_ECHOED_CHARS`] characters.
pub fn quoted(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MAX_ECHOED_CHARS).collect();
    if chars.next().is_some() {
        format!("{:?}", format!("{head}…"))
    } else {
        format!("{head:?}")
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
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
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
        let release = headers(&[("x-github-event", "release")]);
        assert_eq!(
            parse(&release, gh).unwrap(),
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
    fn every_body_shape_honours_dry_run() {
        let none = HeaderMap::new();
        let release = headers(&[("x-github-event", "release")]);
        let acr =
            br#"{"action":"push","target":{"repository":"tools/builder","tag":"x"},"dryRun":true}"#;
        assert_eq!(
            parse(&none, acr).unwrap(),
            run(Some(vec!["tools/builder".into()]), true, "acr")
        );
        let gh =
            br#"{"action":"published","release":{},"repository":{"name":"app"},"dryRun":true}"#;
        for h in [&none, &release] {
            assert_eq!(
                parse(h, gh).unwrap(),
                run(Some(vec!["app".into()]), true, "github")
            );
        }
        let explicit_false = br#"{"action":"push","target":{"repository":"app"},"dryRun":false}"#;
        assert_eq!(
            parse(&none, explicit_false).unwrap(),
            run(Some(vec!["app".into()]), false, "acr")
        );
        for bad in [
            &br#"{"action":"push","target":{"repository":"app"},"dryRun":"true"}"#[..],
            br#"{"action":"push","target":{"repository":"app"},"dryRun":1}"#,
            br#"{"release":{},"repository":{"name":"app"},"dryRun":null}"#,
            br#"{"repositories":["app"],"dryRun":"yes"}"#,
        ] {
            assert_eq!(
                parse(&none, bad),
                Err(BodyError("dryRun must be true or false".into())),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn only_acr_pushes_and_github_releases_start_runs() {
        let none = HeaderMap::new();
        for action in ["delete", "quarantine", "chart_push", "chart_delete"] {
            let body = format!(r#"{{"action":"{action}","target":{{"repository":"app"}}}}"#);
            let request = parse(&none, body.as_bytes()).unwrap();
            assert!(
                matches!(&request, Request::Ignored(why) if why.contains(action)),
                "{request:?}"
            );
        }
        let push = headers(&[("x-github-event", "push")]);
        let body = br#"{"ref":"refs/heads/main","repository":{"name":"app"}}"#;
        assert!(matches!(parse(&push, body).unwrap(), Request::Ignored(_)));
        assert!(matches!(parse(&none, body).unwrap(), Request::Ignored(_)));
        let workflow = headers(&[("x-github-event", "workflow_run")]);
        assert!(matches!(
            parse(&workflow, br#"{"repositories":["app"]}"#).unwrap(),
            Request::Ignored(_)
        ));
        // A release event must name its repository.
        let release = headers(&[("x-github-event", "release")]);
        assert!(parse(&release, br#"{"release":{}}"#).is_err());
        // Repeated event headers are refused.
        let twice = headers(&[("x-github-event", "ping"), ("x-github-event", "release")]);
        assert!(parse(&twice, b"{}").is_err());
        // Long names are cut in what is echoed.
        let long = "x".repeat(10_000);
        let body = format!(r#"{{"action":"{long}","target":{{"repository":"app"}}}}"#);
        let Request::Ignored(why) = parse(&none, body.as_bytes()).unwrap() else {
            panic!("ignored")
        };
        assert!(why.len() < 200, "{why}");
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
            br#"{"action":"push","target":{"tag":"v1"}}"#,
        ] {
            assert!(
                parse(&none, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
