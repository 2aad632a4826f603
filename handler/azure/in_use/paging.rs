//! Resource Graph's pages: one query over a batch of scopes, `POST
//! {arm}/providers/Microsoft.ResourceGraph/resources?api-version=`[`API_VERSION`], followed
//! through every `$skipToken`, a page refused as too large asked again with half the rows,
//! and every partial answer (`resultTruncated`, fewer rows than `totalRecords`,
//! `x-ms-tenant-subscription-limit-hit`) an error. Both result formats are read.

use super::query::API_VERSION;
use super::{InUseClient, InUseError};
use crate::azure::http::HttpError;
use crate::azure::table::read_table;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use url::Url;

/// The most pages of one query followed.
const MAX_PAGES: usize = 10_000;

/// The result format asked of Resource Graph (both are read whatever was asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultFormat {
    /// `data` as an array of objects (Resource Graph's default).
    #[default]
    ObjectArray,
    /// `data` as `{"columns", "rows"}`.
    Table,
}

impl InUseClient {
    /// The query endpoint.
    fn url(&self) -> Url {
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!(
            "{base}/providers/Microsoft.ResourceGraph/resources"
        ));
        url.set_query(Some(&format!("api-version={API_VERSION}")));
        url
    }

    /// Every row of the query in these scopes, through every page.
    pub(super) async fn rows(
        &self,
        field: &str,
        ids: &[&str],
        query: &str,
    ) -> Result<Vec<Map<String, Value>>, InUseError> {
        let scope = match ids.len() {
            0..=3 => format!("{field} {}", ids.join(", ")),
            n => format!("{field} {}, … ({n} in all)", ids[..3].join(", ")),
        };
        let token =
            self.caller
                .token_for(&self.endpoint)
                .await
                .map_err(|e| InUseError::Credential {
                    endpoint: self.endpoint.to_string(),
                    detail: e.to_string(),
                })?;
        let mut rows = Vec::new();
        let mut skip_token: Option<String> = None;
        let mut seen_tokens = BTreeSet::new();
        let mut top = self.page_size;
        for page in 1..=MAX_PAGES {
            let answer = loop {
                match self
                    .page(
                        field,
                        ids,
                        query,
                        top,
                        skip_token.as_deref(),
                        &token,
                        &scope,
                        page,
                    )
                    .await
                {
                    // The page would be too large: ask again for half as many rows.
                    Err(InUseError::Status {
                        status: 400,
                        ref detail,
                        ..
                    }) if detail.contains("ResponsePayloadTooLarge") && top != Some(1) => {
                        let halved = top.unwrap_or(1000) / 2;
                        tracing::info!(
                            rows = halved,
                            "Resource Graph page too large: asking for half as many rows"
                        );
                        top = Some(halved.max(1));
                    }
                    other => break other?,
                }
            };
            let unreadable = |detail: String| InUseError::Unreadable {
                scope: scope.clone(),
                page,
                detail,
            };
            let truncated = match answer.get("resultTruncated") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                None | Some(Value::Null) => false,
                Some(other) => return Err(unreadable(format!("resultTruncated is {other}"))),
            };
            if truncated {
                return Err(InUseError::Partial {
                    scope,
                    page,
                    detail: "resultTruncated is true".into(),
                });
            }
            let total = answer.get("totalRecords").and_then(Value::as_u64);
            let data = answer
                .get("data")
                .ok_or_else(|| unreadable("no `data`".into()))?;
            rows.extend(data_rows(data).map_err(unreadable)?);
            match answer.get("$skipToken") {
                Some(Value::String(t)) if !t.is_empty() => {
                    if !seen_tokens.insert(t.clone()) {
                        return Err(unreadable("the same $skipToken came twice".into()));
                    }
                    skip_token = Some(t.clone());
                }
                None | Some(Value::Null) | Some(Value::String(_)) => {
                    if let Some(total) = total
                        && (rows.len() as u64) < total
                    {
                        return Err(InUseError::Partial {
                            scope,
                            page,
                            detail: format!(
                                "{} rows received of totalRecords {total}, and no $skipToken",
                                rows.len()
                            ),
                        });
                    }
                    return Ok(rows);
                }
                Some(other) => return Err(unreadable(format!("$skipToken is {other}"))),
            }
        }
        Err(InUseError::Partial {
            scope,
            page: MAX_PAGES,
            detail: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// One page of `query`: `$top` rows (`None`: the service's page), after `skip_token`.
    #[allow(clippy::too_many_arguments)]
    async fn page(
        &self,
        field: &str,
        ids: &[&str],
        query: &str,
        top: Option<u32>,
        skip_token: Option<&str>,
        token: &str,
        scope: &str,
        page: usize,
    ) -> Result<Value, InUseError> {
        let mut options = Map::new();
        options.insert(
            "resultFormat".into(),
            json!(match self.format {
                ResultFormat::ObjectArray => "objectArray",
                ResultFormat::Table => "table",
            }),
        );
        if let Some(top) = top {
            options.insert("$top".into(), json!(top));
        }
        if let Some(t) = skip_token {
            options.insert("$skipToken".into(), json!(t));
        }
        let body = json!({ field: ids, "query": query, "options": options });
        self.post(token, &body, scope, page).await
    }

    /// One page, asked again as [`crate::azure::http`] says (429 after its `Retry-After`,
    /// a spent user quota waited out).
    async fn post(
        &self,
        token: &str,
        body: &Value,
        scope: &str,
        page: usize,
    ) -> Result<Value, InUseError> {
        let answer = self
            .caller
            .post(&self.url(), token, body)
            .await
            .map_err(|e| match e {
                HttpError::Request(detail) => InUseError::Request {
                    scope: scope.to_string(),
                    page,
                    detail,
                },
                HttpError::Token(detail) | HttpError::Body(detail) => InUseError::Unreadable {
                    scope: scope.to_string(),
                    page,
                    detail,
                },
            })?;
        if !answer.is_success() {
            return Err(InUseError::Status {
                scope: scope.to_string(),
                page,
                status: answer.status,
                detail: answer.error_text(),
            });
        }
        if answer.header_is_true("x-ms-tenant-subscription-limit-hit") {
            return Err(InUseError::Partial {
                scope: scope.to_string(),
                page,
                detail: "x-ms-tenant-subscription-limit-hit: only the first 10,000 subscriptions were queried".into(),
            });
        }
        answer.json().map_err(|detail| InUseError::Unreadable {
            scope: scope.to_string(),
            page,
            detail,
        })
    }
}

/// The rows of `data`, as objects, from either result format.
fn data_rows(data: &Value) -> Result<Vec<Map<String, Value>>, String> {
    match data {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_object()
                    .cloned()
                    .ok_or_else(|| format!("a row of data is not an object: {item}"))
            })
            .collect(),
        Value::Object(_) => {
            let (columns, rows) = read_table(data)?;
            Ok(rows
                .into_iter()
                .map(|cells| columns.iter().cloned().zip(cells).collect())
                .collect())
        }
        other => Err(format!("data is neither an array nor a table: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_result_formats_read() {
        let objects = json!([{"id": "x", "type": "t", "properties": {}}]);
        let table = json!({"columns": [{"name": "id", "type": "string"}, {"name": "type", "type": "string"}, {"name": "properties", "type": "object"}], "rows": [["x", "t", {}]]});
        assert_eq!(data_rows(&objects).unwrap(), data_rows(&table).unwrap());
        assert!(data_rows(&json!({"columns": [{"name": "id"}], "rows": [["a", "b"]]})).is_err());
        assert!(data_rows(&json!("x")).is_err());
    }
}
