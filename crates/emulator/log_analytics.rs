//! A Log Analytics query API emulator: `POST /v1/workspaces/{workspaceId}/query` over real
//! HTTP, holding one workspace with rows of the `ContainerRegistryRepositoryEvents` table
//! (the registry's `ContainerRegistryRepositoryEvents` diagnostic category).
//!
//! Request (as documented): `{"query": "…", "timespan": "…"}`. `timespan` is ISO 8601: a
//! duration ending now (`P90D`, `PT12H`, `P1DT2H`), or an interval `start/end`,
//! `start/duration` or `duration/end`; the query sees rows with `start <= TimeGenerated <
//! end`. Response: `{"tables":[{"name":"PrimaryResult","columns":[{"name","type"}],
//! "rows":[[…]]}]}`; a partial answer adds `"error": {"code":"PartialError","message",
//! "details":[…]}` next to the tables (200, as documented for non-fatal errors). Fatal
//! errors are `{"error":{"code","message","innererror"?}}` with a 4xx/5xx status.
//!
//! Rows older than the workspace's retention ([`LogAnalyticsEmulator::set_retention`],
//! default 30 days) are gone, as in a workspace. The query is evaluated with the crate's
//! KQL subset (`where`, `project`, `order by`, `summarize max()/min()/count() by`); any
//! other table or operator answers 400 `BadArgumentError`.
//!
//! Columns served (from the Azure Monitor table reference): `TimeGenerated` (datetime),
//! `Category`, `OperationName`, `LoginServer`, `Repository`, `Tag`, `Digest`, `Identity`,
//! `CallerIpAddress`, `UserAgent`, `MediaType`, `ArtifactType`, `ResultType`, `Region`,
//! `Type` (strings, empty when unknown) and `Size` (int).

use super::oversize::Oversize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::kql;
use crate::serve::{RunningServer, azure_error, check_bearer, serve};

/// The table the emulator holds.
pub const REPOSITORY_EVENTS_TABLE: &str = "ContainerRegistryRepositoryEvents";

/// One row of `ContainerRegistryRepositoryEvents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryEvent {
    /// `TimeGenerated`.
    pub time_generated: DateTime<Utc>,
    /// `OperationName`: `Pull`, `Push`, `Delete`, `Untag`, …
    pub operation_name: String,
    /// `LoginServer`, e.g. `myreg.azurecr.io`.
    pub login_server: String,
    /// `Repository`.
    pub repository: String,
    /// `Tag` (empty for a pull by digest).
    pub tag: String,
    /// `Digest`.
    pub digest: String,
    /// `Identity`: who pulled or pushed.
    pub identity: String,
    /// `UserAgent`.
    pub user_agent: String,
}

impl RepositoryEvent {
    /// A `Pull` of `repository` at `time_generated` by `identity`, by tag and/or digest.
    pub fn pull(
        time_generated: DateTime<Utc>,
        login_server: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&str>,
        identity: &str,
    ) -> RepositoryEvent {
        RepositoryEvent {
            time_generated,
            operation_name: "Pull".to_string(),
            login_server: login_server.to_string(),
            repository: repository.to_string(),
            tag: tag.unwrap_or_default().to_string(),
            digest: digest.unwrap_or_default().to_string(),
            identity: identity.to_string(),
            user_agent: "docker/27.0".to_string(),
        }
    }

    /// The same event with another `OperationName`.
    pub fn with_operation(mut self, operation_name: &str) -> RepositoryEvent {
        self.operation_name = operation_name.to_string();
        self
    }
}

/// A fault the emulator injects into every query until [`LogAnalyticsEmulator::clear_faults`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogsFault {
    /// Answer `status` with an Azure error body.
    Fail {
        /// The HTTP status (e.g. 500, 503, 429, 403).
        status: u16,
    },
    /// Answer 200 with the tables and the documented partial error (`PartialError`).
    Partial {
        /// The message of the detail.
        message: String,
    },
    /// Every successful answer is padded to at least this size (see `oversize`).
    Oversized(Oversize),
}

/// A request the emulator received.
#[derive(Debug, Clone, PartialEq)]
pub struct LogsRequest {
    /// The request path.
    pub path: String,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
    /// The JSON body (`Null` when it was not JSON).
    pub body: Value,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug)]
struct State0 {
    workspace_id: String,
    retention: Duration,
    events: Vec<RepositoryEvent>,
    expected_token: Option<String>,
    faults: Vec<LogsFault>,
    requests: Vec<LogsRequest>,
}

/// A Log Analytics emulator with one workspace; cheap to clone (clones share the state).
#[derive(Debug, Clone)]
pub struct LogAnalyticsEmulator {
    state: Arc<Mutex<State0>>,
}

impl LogAnalyticsEmulator {
    /// An empty workspace `workspace_id` (its customer id, a GUID in Azure), retention 30
    /// days, any bearer token accepted.
    pub fn new(workspace_id: &str) -> LogAnalyticsEmulator {
        LogAnalyticsEmulator {
            state: Arc::new(Mutex::new(State0 {
                workspace_id: workspace_id.to_string(),
                retention: Duration::days(30),
                events: Vec::new(),
                expected_token: None,
                faults: Vec::new(),
                requests: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State0> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Requires `Authorization: Bearer <token>` with exactly this token (`None`: any
    /// non-empty bearer token); other requests answer 401.
    pub fn set_expected_token(&self, token: Option<&str>) {
        self.lock().expected_token = token.map(str::to_string);
    }

    /// Sets how long the workspace keeps rows.
    pub fn set_retention(&self, retention: Duration) {
        self.lock().retention = retention;
    }

    /// Adds a row.
    pub fn add(&self, event: RepositoryEvent) {
        self.lock().events.push(event);
    }

    /// Adds a fault.
    pub fn inject(&self, fault: LogsFault) {
        self.lock().faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<LogsRequest> {
        self.lock().requests.clone()
    }

    /// The axum router serving the API.
    pub fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    /// Serves on `127.0.0.1` with an ephemeral port.
    pub async fn start(&self) -> anyhow::Result<RunningServer> {
        serve(self.router(), "Log Analytics").await
    }
}

fn bad_argument(message: &str) -> Response {
    azure_error(
        StatusCode::BAD_REQUEST,
        "BadArgumentError",
        "The request had some invalid properties",
        json!({ "innererror": { "code": "SemanticError", "message": message } }),
    )
}

async fn handle(
    State(emulator): State<LogAnalyticsEmulator>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let response = answer(
        &emulator,
        &method,
        uri.path(),
        &headers,
        &json_body,
        Utc::now(),
    );
    let oversized = emulator.lock().faults.iter().find_map(|f| match f {
        LogsFault::Oversized(o) => Some(*o),
        _ => None,
    });
    let response = match oversized {
        Some(oversize) => super::oversize::pad(response, oversize).await,
        None => response,
    };
    emulator.lock().requests.push(LogsRequest {
        path: uri.path().to_string(),
        authorization: headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: json_body,
        status: response.status().as_u16(),
    });
    response
}

fn answer(
    emulator: &LogAnalyticsEmulator,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Value,
    now: DateTime<Utc>,
) -> Response {
    let workspace = path
        .strip_prefix("/v1/workspaces/")
        .and_then(|rest| rest.strip_suffix("/query"))
        .map(|w| {
            percent_encoding::percent_decode_str(w)
                .decode_utf8_lossy()
                .into_owned()
        });
    let Some(workspace) = workspace else {
        return azure_error(
            StatusCode::NOT_FOUND,
            "PathNotFoundError",
            &format!(
                "the emulator serves only POST /v1/workspaces/{{workspaceId}}/query, not {path}"
            ),
            Value::Null,
        );
    };
    if method != Method::POST {
        return azure_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{method} is not served; POST the query"),
            Value::Null,
        );
    }
    let state = emulator.lock();
    if let Some(denied) = check_bearer(headers, state.expected_token.as_deref()) {
        return denied;
    }
    if !workspace.eq_ignore_ascii_case(&state.workspace_id) {
        return azure_error(
            StatusCode::NOT_FOUND,
            "WorkspaceNotFoundError",
            &format!("The workspace {workspace} could not be found"),
            Value::Null,
        );
    }
    if let Some(status) = state.faults.iter().find_map(|f| match f {
        LogsFault::Fail { status } => Some(*status),
        LogsFault::Partial { .. } | LogsFault::Oversized(_) => None,
    }) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return azure_error(
            status,
            "ServiceError",
            "The query failed (injected fault).",
            Value::Null,
        );
    }
    let Some(text) = body.get("query").and_then(Value::as_str) else {
        return bad_argument("the body must be a JSON object with a `query` string");
    };
    let (start, end) = match body.get("timespan") {
        None | Some(Value::Null) => (None, None),
        Some(Value::String(span)) => match timespan(span, now) {
            Ok((s, e)) => (Some(s), Some(e)),
            Err(e) => return bad_argument(&format!("invalid timespan {span:?}: {e}")),
        },
        Some(_) => return bad_argument("`timespan` must be a string"),
    };
    let query = match kql::parse(text) {
        Ok(q) => q,
        Err(e) => return bad_argument(&format!("query not understood: {e}")),
    };
    if query.table != REPOSITORY_EVENTS_TABLE {
        return bad_argument(&format!(
            "Failed to resolve table expression named '{}' (the emulator holds only {REPOSITORY_EVENTS_TABLE})",
            query.table
        ));
    }
    let oldest_kept = now - state.retention;
    let columns: Vec<(String, &'static str)> = [
        ("TimeGenerated", "datetime"),
        ("Category", "string"),
        ("OperationName", "string"),
        ("LoginServer", "string"),
        ("Repository", "string"),
        ("Tag", "string"),
        ("Digest", "string"),
        ("Identity", "string"),
        ("CallerIpAddress", "string"),
        ("UserAgent", "string"),
        ("MediaType", "string"),
        ("ArtifactType", "string"),
        ("ResultType", "string"),
        ("Region", "string"),
        ("Size", "int"),
        ("Type", "string"),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect();
    let rows = state
        .events
        .iter()
        .filter(|e| e.time_generated >= oldest_kept)
        .filter(|e| start.is_none_or(|s| e.time_generated >= s))
        .filter(|e| end.is_none_or(|t| e.time_generated < t))
        .map(|e| {
            vec![
                json!(
                    e.time_generated
                        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
                ),
                json!("ContainerRegistryRepositoryEvents"),
                json!(e.operation_name),
                json!(e.login_server),
                json!(e.repository),
                json!(e.tag),
                json!(e.digest),
                json!(e.identity),
                json!("10.0.0.1"),
                json!(e.user_agent),
                json!("application/vnd.oci.image.manifest.v1+json"),
                json!(""),
                json!("200"),
                json!("westeurope"),
                json!(1024),
                json!(REPOSITORY_EVENTS_TABLE),
            ]
        })
        .collect();
    let table = match kql::evaluate(&query, kql::Table { columns, rows }, true) {
        Ok(t) => t,
        Err(e) => return bad_argument(&format!("query not understood: {e}")),
    };
    let mut answer = json!({
        "tables": [{
            "name": "PrimaryResult",
            "columns": table.columns.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
            "rows": table.rows,
        }]
    });
    if let Some(message) = state.faults.iter().find_map(|f| match f {
        LogsFault::Partial { message } => Some(message.clone()),
        LogsFault::Fail { .. } | LogsFault::Oversized(_) => None,
    }) {
        answer["error"] = json!({
            "code": "PartialError",
            "message": "There were some errors when processing your query.",
            "details": [{ "code": "EngineError", "message": message }],
        });
    }
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// An ISO 8601 duration: `P[nD][T[nH][nM][nS]]` (also `nW`).
pub(crate) fn iso_duration(text: &str) -> Result<Duration, String> {
    let rest = text
        .strip_prefix('P')
        .ok_or_else(|| format!("{text:?} is not an ISO 8601 duration (P…)"))?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = Duration::zero();
    let mut parse_part = |part: &str, units: &[(char, i64)]| -> Result<(), String> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let seconds = units
                .iter()
                .find(|(u, _)| *u == c)
                .map(|(_, s)| *s)
                .ok_or_else(|| format!("unsupported unit {c:?} in {text:?}"))?;
            let n: i64 = number
                .parse()
                .map_err(|_| format!("missing number before {c:?} in {text:?}"))?;
            total += Duration::seconds(n * seconds);
            number.clear();
        }
        if number.is_empty() {
            Ok(())
        } else {
            Err(format!("a number without a unit in {text:?}"))
        }
    };
    parse_part(date, &[('W', 7 * 86_400), ('D', 86_400)])?;
    if let Some(time) = time {
        parse_part(time, &[('H', 3_600), ('M', 60), ('S', 1)])?;
    }
    if date.is_empty() && time.is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no duration"));
    }
    Ok(total)
}

/// The `[start, end)` of a `timespan` at `now`.
pub(crate) fn timespan(
    text: &str,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let instant = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
    };
    match text.split_once('/') {
        None => Ok((now - iso_duration(text)?, now)),
        Some((a, b)) if a.starts_with('P') => {
            let end = instant(b)?;
            Ok((end - iso_duration(a)?, end))
        }
        Some((a, b)) if b.starts_with('P') => {
            let start = instant(a)?;
            Ok((start, start + iso_duration(b)?))
        }
        Some((a, b)) => Ok((instant(a)?, instant(b)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans() {
        let now = DateTime::parse_from_rfc3339("2026-01-10T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timespan("P90D", now).unwrap().0, now - Duration::days(90));
        assert_eq!(
            timespan("P1DT2H30M", now).unwrap().0,
            now - Duration::minutes(26 * 60 + 30)
        );
        let (s, e) = timespan("2026-01-01T00:00:00Z/2026-01-02T00:00:00Z", now).unwrap();
        assert_eq!(e - s, Duration::days(1));
        let (s, e) = timespan("2026-01-01T00:00:00Z/PT1H", now).unwrap();
        assert_eq!(e - s, Duration::hours(1));
        assert!(timespan("90D", now).is_err());
        assert!(timespan("P", now).is_err());
        assert!(timespan("P1X", now).is_err());
    }
}
