//! When images were last pulled, from the registry's `ContainerRegistryRepositoryEvents`
//! in Log Analytics (`POST {logs}/v1/workspaces/{workspaceId}/query`, body `{query,
//! timespan}`), the table the registry's diagnostic setting fills.
//!
//! Two queries, each over the window `[now - window, now)` (the body's `timespan`):
//! [`pulls_query`] (the last `Pull` per repository, tag and digest, without the excluded
//! identities) and [`coverage_query`] (the oldest event of the registry the workspace still
//! holds). Fails closed: a non-2xx answer, a partial answer (`error` next to `tables`) or an
//! unreadable one is a [`PullLogError`]; the caller must then count every item as pulled.
//! Requests go through [`super::http`] (its retry policy and answer-size cap).

use super::http::{Caller, HttpError, error_text};
use super::table::read_table;
use azure_core::credentials::TokenCredential;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use url::Url;

/// The last pulls of a registry within a window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pulls {
    /// The last pull per (repository, digest).
    pub by_digest: BTreeMap<(String, String), DateTime<Utc>>,
    /// The last pull per (repository, tag), for pulls by tag.
    pub by_tag: BTreeMap<(String, String), DateTime<Utc>>,
    /// The oldest event of this registry the workspace holds within twice the window
    /// before now (any operation, any identity); `None` when it holds none. Later than
    /// [`Pulls::window_start`] means the logs do not cover the whole window (retention
    /// shorter than the window, or the diagnostic setting younger).
    pub covered_since: Option<DateTime<Utc>>,
    /// `now - window`.
    pub window_start: DateTime<Utc>,
}

impl Pulls {
    /// Whether the logs reach back to the window's start, give or take `slack` (the gap
    /// between the window's start and the first event after it).
    pub fn covers_window(&self, slack: Duration) -> bool {
        self.covered_since
            .is_some_and(|since| since <= self.window_start + slack)
    }
}

/// Why the last pulls are not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullLogError {
    /// A window that is not positive.
    #[error("pull log: the window must be positive, not {0}")]
    Window(String),
    /// No token, or an endpoint a token must not be sent to.
    #[error("pull log at {endpoint}: {detail}")]
    Credential {
        /// The Logs endpoint.
        endpoint: String,
        /// What failed.
        detail: String,
    },
    /// The request did not get an answer.
    #[error("pull log query of workspace {workspace} ({what}): request failed: {detail}")]
    Request {
        /// The workspace id.
        workspace: String,
        /// Which query.
        what: &'static str,
        /// What failed.
        detail: String,
    },
    /// A non-2xx answer.
    #[error("pull log query of workspace {workspace} ({what}): HTTP {status}: {detail}")]
    Status {
        /// The workspace id.
        workspace: String,
        /// Which query.
        what: &'static str,
        /// The HTTP status.
        status: u16,
        /// Azure's error code and message.
        detail: String,
    },
    /// A 200 answer with the documented partial error.
    #[error("pull log query of workspace {workspace} ({what}): partial answer: {detail}")]
    Partial {
        /// The workspace id.
        workspace: String,
        /// Which query.
        what: &'static str,
        /// The error's code, message and details.
        detail: String,
    },
    /// An answer that is not what the API documents.
    #[error("pull log query of workspace {workspace} ({what}): unreadable answer: {detail}")]
    Unreadable {
        /// The workspace id.
        workspace: String,
        /// Which query.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// A KQL string literal (double quotes, `\` and `"` escaped).
fn literal(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The query of the last pulls of `login_server`, without pulls by `exclude_pullers`
/// (compared ignoring case).
pub fn pulls_query(login_server: &str, exclude_pullers: &[String]) -> String {
    let mut query = format!(
        "ContainerRegistryRepositoryEvents | where OperationName == \"Pull\" | where LoginServer =~ {}",
        literal(login_server)
    );
    if !exclude_pullers.is_empty() {
        let list: Vec<String> = exclude_pullers.iter().map(|p| literal(p)).collect();
        query.push_str(&format!(" | where Identity !in~ ({})", list.join(", ")));
    }
    query.push_str(" | summarize LastPull = max(TimeGenerated) by Repository, Tag, Digest");
    query
}

/// The query of the oldest event of `login_server` the workspace holds.
pub fn coverage_query(login_server: &str) -> String {
    format!(
        "ContainerRegistryRepositoryEvents | where LoginServer =~ {} | summarize OldestEvent = min(TimeGenerated)",
        literal(login_server)
    )
}

/// A Logs query client for one workspace.
#[derive(Clone)]
pub struct PullLog {
    endpoint: Url,
    workspace_id: String,
    caller: Caller,
}

impl std::fmt::Debug for PullLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullLog")
            .field("endpoint", &self.endpoint.as_str())
            .field("workspace_id", &self.workspace_id)
            .finish_non_exhaustive()
    }
}

impl PullLog {
    /// A client of the Logs query API at `logs_endpoint` (e.g. `https://api.loganalytics.io`)
    /// for the workspace `workspace_id` (its customer id), signing in for
    /// `{scheme}://{host}/.default`.
    pub fn new(
        logs_endpoint: Url,
        workspace_id: impl Into<String>,
        credential: Arc<dyn TokenCredential>,
        http: reqwest::Client,
    ) -> PullLog {
        PullLog {
            endpoint: logs_endpoint,
            workspace_id: workspace_id.into(),
            caller: Caller::new(credential, http, std::time::Duration::from_secs(120)),
        }
    }

    fn url(&self) -> Url {
        let mut url = self.endpoint.clone();
        url.set_query(None);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["v1", "workspaces", &self.workspace_id, "query"]);
        }
        url
    }

    /// The last pull per (repository, digest) and (repository, tag) of `login_server` in
    /// `[now - window, now)`, ignoring pulls by `exclude_pullers`, and how far back the
    /// workspace's events of that registry reach.
    pub async fn last_pulls(
        &self,
        login_server: &str,
        window: Duration,
        now: DateTime<Utc>,
        exclude_pullers: &[String],
    ) -> Result<Pulls, PullLogError> {
        if window <= Duration::zero() {
            return Err(PullLogError::Window(window.to_string()));
        }
        let window_start = now - window;
        let timespan = format!(
            "{}/{}",
            window_start.to_rfc3339_opts(SecondsFormat::Secs, true),
            now.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        let token =
            self.caller
                .token_for(&self.endpoint)
                .await
                .map_err(|e| PullLogError::Credential {
                    endpoint: self.endpoint.to_string(),
                    detail: e.to_string(),
                })?;

        let what = "last pulls";
        let table = self
            .query(
                &token,
                &pulls_query(login_server, exclude_pullers),
                &timespan,
                what,
            )
            .await?;
        let mut pulls = Pulls {
            window_start,
            ..Pulls::default()
        };
        for row in &table.rows {
            let cell = |name: &str| table.text(row, name);
            let (repository, tag, digest) = (cell("Repository")?, cell("Tag")?, cell("Digest")?);
            let Some(when) = table
                .time(row, "LastPull")
                .map_err(|d| self.unreadable(what, d))?
            else {
                continue;
            };
            if when < window_start || repository.is_empty() {
                continue;
            }
            if !digest.is_empty() {
                let entry = pulls
                    .by_digest
                    .entry((repository.clone(), digest))
                    .or_insert(when);
                *entry = (*entry).max(when);
            }
            if !tag.is_empty() {
                let entry = pulls.by_tag.entry((repository, tag)).or_insert(when);
                *entry = (*entry).max(when);
            }
        }

        // Coverage looks back twice the window: the logs cover the window when they hold an
        // event of the registry from before its start.
        let what = "coverage";
        let coverage_span = format!(
            "{}/{}",
            (now - window - window).to_rfc3339_opts(SecondsFormat::Secs, true),
            now.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        let table = self
            .query(&token, &coverage_query(login_server), &coverage_span, what)
            .await?;
        pulls.covered_since = match table.rows.first() {
            Some(row) => table
                .time(row, "OldestEvent")
                .map_err(|d| self.unreadable(what, d))?,
            None => None,
        };
        Ok(pulls)
    }

    fn unreadable(&self, what: &'static str, detail: String) -> PullLogError {
        PullLogError::Unreadable {
            workspace: self.workspace_id.clone(),
            what,
            detail,
        }
    }

    async fn query(
        &self,
        token: &str,
        query: &str,
        timespan: &str,
        what: &'static str,
    ) -> Result<ResultTable, PullLogError> {
        let body = json!({ "query": query, "timespan": timespan });
        let answer = self
            .caller
            .post(&self.url(), token, &body)
            .await
            .map_err(|e| match e {
                HttpError::Request(detail) => PullLogError::Request {
                    workspace: self.workspace_id.clone(),
                    what,
                    detail,
                },
                HttpError::Token(detail) | HttpError::Body(detail) => self.unreadable(what, detail),
            })?;
        if !answer.is_success() {
            return Err(PullLogError::Status {
                workspace: self.workspace_id.clone(),
                what,
                status: answer.status,
                detail: answer.error_text(),
            });
        }
        let body = answer.json().map_err(|d| self.unreadable(what, d))?;
        if let Some(error) = body.get("error").filter(|e| !e.is_null()) {
            let details: Vec<String> = error
                .get("details")
                .and_then(Value::as_array)
                .map(|d| {
                    d.iter()
                        .filter_map(|x| x.get("message").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            return Err(PullLogError::Partial {
                workspace: self.workspace_id.clone(),
                what,
                detail: format!(
                    "{}{}",
                    error_text(&json!({ "error": error }).to_string()),
                    if details.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", details.join("; "))
                    }
                ),
            });
        }
        ResultTable::read(&body).map_err(|d| self.unreadable(what, d))
    }
}

/// The first table of an answer, its columns by name.
struct ResultTable {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl ResultTable {
    fn read(body: &Value) -> Result<ResultTable, String> {
        let tables = body
            .get("tables")
            .and_then(Value::as_array)
            .ok_or("no `tables` array")?;
        let table = tables
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("PrimaryResult"))
            .or_else(|| tables.first())
            .ok_or("no table in `tables`")?;
        let (columns, rows) = read_table(table)?;
        Ok(ResultTable { columns, rows })
    }

    fn cell<'a>(&self, row: &'a [Value], name: &str) -> Result<&'a Value, String> {
        let i =
            self.columns.iter().position(|c| c == name).ok_or_else(|| {
                format!("no column {name} (columns: {})", self.columns.join(", "))
            })?;
        row.get(i).ok_or_else(|| format!("no cell for {name}"))
    }

    fn text(&self, row: &[Value], name: &str) -> Result<String, PullLogError> {
        match self.cell(row, name) {
            Ok(Value::String(s)) => Ok(s.clone()),
            Ok(Value::Null) => Ok(String::new()),
            Ok(other) => Err(format!("{name} is not a string: {other}")),
            Err(e) => Err(e),
        }
        .map_err(|detail| PullLogError::Unreadable {
            workspace: String::new(),
            what: "a row",
            detail,
        })
    }

    fn time(&self, row: &[Value], name: &str) -> Result<Option<DateTime<Utc>>, String> {
        match self.cell(row, name)? {
            Value::Null => Ok(None),
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(s) => DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| format!("{name} {s:?} is not a time: {e}")),
            other => Err(format!("{name} is not a time: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_escape_their_strings() {
        assert_eq!(
            pulls_query("reg.azurecr.io", &[]),
            "ContainerRegistryRepositoryEvents | where OperationName == \"Pull\" | where LoginServer =~ \"reg.azurecr.io\" | summarize LastPull = max(TimeGenerated) by Repository, Tag, Digest"
        );
        assert!(
            pulls_query("r", &["a\"b".into(), "c\\d".into()])
                .contains(r#"| where Identity !in~ ("a\"b", "c\\d") |"#)
        );
        assert_eq!(
            coverage_query("r\""),
            "ContainerRegistryRepositoryEvents | where LoginServer =~ \"r\\\"\" | summarize OldestEvent = min(TimeGenerated)"
        );
    }

    #[test]
    fn covers_window_with_slack() {
        let start = Utc::now();
        let mut pulls = Pulls {
            window_start: start,
            ..Pulls::default()
        };
        assert!(!pulls.covers_window(Duration::days(1)));
        pulls.covered_since = Some(start + Duration::hours(2));
        assert!(pulls.covers_window(Duration::days(1)));
        assert!(!pulls.covers_window(Duration::hours(1)));
    }
}
