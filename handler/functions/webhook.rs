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
//! - `{"repositories": ["app"], "dryRun": true}` (both optional; no other field);
//! - `{"apply": "sha256:…"}` (optionally with `dryRun`): apply the plan a dry run saved in
//!   the run store under that digest (see `crate::saved`).
//!
//! Deliveries are not de-duplicated: a replayed delivery can only start another run of the
//! same policy-bound purge, which is idempotent, and GitHub's "Redeliver" is a deliberate
//! re-run. Queued runs are coalesced instead (see `queue`). How the caller proves it knows
//! the secret is in `proof`.

use axum::http::HeaderMap;
use serde_json::{Map, Value};

pub use super::proof::sign;

/// The largest body accepted (1 MiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// The most characters of a caller's name (repository, event, action) echoed in an answer.
pub const MAX_ECHOED_CHARS: usize = 64;

/// What the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookRequest {
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
        /// The registry the event names: an ACR event's `request.host` (the registry's
        /// login server, as the pusher addressed it).
        registry: Option<String>,
    },
    /// Apply a saved plan.
    Apply {
        /// Its digest (`sha256:` + 64 hex digits).
        digest: String,
        /// The caller asks for a dry run (what applying would delete now).
        dry_run: bool,
    },
}

/// Why a body was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(String);

/// Reads the request from a verified body.
pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<WebhookRequest, BodyError> {
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
        return Ok(WebhookRequest::Ping);
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
            Ok(WebhookRequest::Ignored(format!(
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
            Ok(WebhookRequest::Ignored(
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
) -> Result<WebhookRequest, BodyError> {
    let action = object
        .get("action")
        .and_then(Value::as_str)
        .ok_or_else(|| BodyError("ACR event without action".to_string()))?;
    match action {
        "ping" => Ok(WebhookRequest::Ping),
        "push" => {
            let repository = target
                .get("repository")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                .ok_or_else(|| BodyError("ACR event without target.repository".to_string()))?;
            let host = object
                .get("request")
                .and_then(Value::as_object)
                .and_then(|r| r.get("host"));
            let registry = match host {
                None | Some(Value::Null) => None,
                Some(Value::String(h)) if !h.trim().is_empty() => Some(h.trim().to_string()),
                Some(_) => {
                    return Err(BodyError(
                        "ACR event whose request.host is not a registry name".to_string(),
                    ));
                }
            };
            let mut request = run(Some(vec![repository.to_string()]), dry_run, "acr");
            if let WebhookRequest::Run {
                registry: named, ..
            } = &mut request
            {
                *named = registry;
            }
            Ok(request)
        }
        other => Ok(WebhookRequest::Ignored(format!(
            "ACR action {} starts no run; only push does",
            quoted(other)
        ))),
    }
}

fn github_release(object: &Map<String, Value>, dry_run: bool) -> Result<WebhookRequest, BodyError> {
    let name = object
        .get("repository")
        .and_then(Value::as_object)
        .and_then(|r| r.get("name"))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| BodyError("GitHub release event without repository.name".to_string()))?;
    Ok(run(Some(vec![name.to_string()]), dry_run, "github"))
}

fn generic(object: &Map<String, Value>, dry_run: bool) -> Result<WebhookRequest, BodyError> {
    if let Some(apply) = object.get("apply") {
        return apply_request(object, apply, dry_run);
    }
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

fn apply_request(
    object: &Map<String, Value>,
    apply: &Value,
    dry_run: bool,
) -> Result<WebhookRequest, BodyError> {
    if let Some(other) = object
        .keys()
        .find(|k| !["apply", "dryRun"].contains(&k.as_str()))
    {
        return Err(BodyError(format!(
            "{{\"apply\": digest}} takes no field {} (only dryRun)",
            quoted(other)
        )));
    }
    let digest = apply
        .as_str()
        .filter(|d| {
            d.strip_prefix("sha256:").is_some_and(|hex| {
                hex.len() == 64
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
        })
        .ok_or_else(|| {
            BodyError("apply must be a plan digest: sha256: and 64 lowercase hex digits".into())
        })?;
    Ok(WebhookRequest::Apply {
        digest: digest.to_string(),
        dry_run,
    })
}

fn run(repositories: Option<Vec<String>>, dry_run: bool, source: &'static str) -> WebhookRequest {
    WebhookRequest::Run {
        repositories,
        dry_run,
        source,
        registry: None,
    }
}

/// The registry the request's URL names (`?registry=<login server>`, for a GitHub release
/// or any body): `None` when absent; an error when given twice or empty.
pub fn registry_parameter(query: Option<&str>) -> Result<Option<String>, BodyError> {
    let mut named = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(key, _)| key == "registry")
        .map(|(_, value)| value.trim().to_string());
    let first = named.next();
    if named.next().is_some() {
        return Err(BodyError(
            "the registry parameter is given more than once".to_string(),
        ));
    }
    match first {
        Some(name) if name.is_empty() => {
            Err(BodyError("the registry parameter is empty".to_string()))
        }
        other => Ok(other),
    }
}

/// `text` for a log line: escaped (no control character or line break gets through) and
/// cut to `max` characters.
pub fn clipped(text: &str, max: usize) -> String {
    let mut chars = text.chars().flat_map(char::escape_debug);
    let head: String = chars.by_ref().take(max).collect();
    match chars.next() {
        Some(_) => format!("{head}…"),
        None => head,
    }
}

/// A caller's name for an answer or a log line: quoted and escaped, at most
/// [`MAX_ECHOED_CHARS`] characters of it.
pub fn quoted(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MAX_ECHOED_CHARS).collect();
    if chars.next().is_some() {
        format!("{:?}", format!("{head}…"))
    } else {
        format!("{head:?}")
    }
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
        assert_eq!(
            parse(&ping, b"{\"zen\":\"x\"}").unwrap(),
            WebhookRequest::Ping
        );
        assert_eq!(
            parse(&none, br#"{"action":"ping","target":{}}"#).unwrap(),
            WebhookRequest::Ping
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
                matches!(&request, WebhookRequest::Ignored(why) if why.contains(action)),
                "{request:?}"
            );
        }
        let push = headers(&[("x-github-event", "push")]);
        let body = br#"{"ref":"refs/heads/main","repository":{"name":"app"}}"#;
        assert!(matches!(
            parse(&push, body).unwrap(),
            WebhookRequest::Ignored(_)
        ));
        assert!(matches!(
            parse(&none, body).unwrap(),
            WebhookRequest::Ignored(_)
        ));
        let workflow = headers(&[("x-github-event", "workflow_run")]);
        assert!(matches!(
            parse(&workflow, br#"{"repositories":["app"]}"#).unwrap(),
            WebhookRequest::Ignored(_)
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
        let WebhookRequest::Ignored(why) = parse(&none, body.as_bytes()).unwrap() else {
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

    #[test]
    fn logged_input_is_escaped_and_clipped() {
        assert_eq!(clipped("short", 10), "short");
        let long = format!("x\n{}", "a".repeat(5000));
        let logged = clipped(&long, 100);
        assert_eq!(logged.chars().count(), 101, "100 and the ellipsis");
        assert!(
            logged.starts_with("x\\n") && logged.ends_with('…'),
            "{logged}"
        );
        assert!(!logged.contains('\n'));
    }
}
