//! HTTP helpers shared by the routes: distribution-style errors, JSON responses,
//! query parsing, percent-decoding and `Link` headers.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// Default page size of listings.
pub(crate) const DEFAULT_PAGE_SIZE: usize = 100;

/// An error answered as `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: Value,
    pub headers: Vec<(HeaderName, String)>,
}

/// Result of a route handler.
pub(crate) type ApiResult = Result<Response, ApiError>;

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: Value::Null,
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: String) -> ApiError {
        self.headers.push((name, value));
        self
    }

    /// Sets `detail`.
    pub fn with_detail(mut self, detail: Value) -> ApiError {
        self.detail = detail;
        self
    }

    /// Unknown repository.
    pub fn name_unknown(repo: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        )
        .with_detail(json!({ "name": repo }))
    }

    /// Unknown manifest.
    pub fn manifest_unknown(reference: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        )
        .with_detail(json!({ "Reference": reference }))
    }

    /// Unknown tag.
    pub fn tag_unknown(tag: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "TAG_UNKNOWN",
            "the specified tag does not exist",
        )
        .with_detail(json!({ "Tag": tag }))
    }

    /// A locked tag or manifest.
    pub fn locked(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!(
                "The operation is unsupported: {what} is locked (deleteEnabled or writeEnabled is false)"
            ),
        )
    }

    /// Unknown route.
    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such API")
            .with_detail(json!({ "path": path }))
    }

    /// Method not served by a route.
    pub fn unsupported(method: &str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!("The operation is unsupported: {method}"),
        )
    }

    /// The distribution code used for a bare status (fault injection).
    pub fn for_status(status: StatusCode) -> ApiError {
        let (code, message) = match status.as_u16() {
            401 => ("UNAUTHORIZED", "authentication required"),
            403 => ("DENIED", "requested access to the resource is denied"),
            404 => ("NOT_FOUND", "not found"),
            405 => ("UNSUPPORTED", "The operation is unsupported."),
            429 => ("TOOMANYREQUESTS", "too many requests"),
            503 => ("UNAVAILABLE", "service unavailable"),
            _ => ("UNKNOWN", "unknown error"),
        };
        ApiError::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "errors": [{
            "code": self.code,
            "message": self.message,
            "detail": self.detail,
        }]});
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, v);
            }
        }
        response
    }
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    (status, axum::Json(value)).into_response()
}

/// Adds a `Link: <...>; rel="next"` header when `more`.
pub(crate) fn with_next_link(
    mut response: Response,
    more: bool,
    path: &str,
    params: &[(&str, &str)],
) -> Response {
    if !more {
        return response;
    }
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", query_escape(v)))
        .collect();
    let link = format!("<{path}?{}>; rel=\"next\"", query.join("&"));
    if let Ok(v) = HeaderValue::from_str(&link) {
        response.headers_mut().insert(header::LINK, v);
    }
    response
}

/// Percent-decodes a path segment.
pub(crate) fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Escapes a query value like Go's `url.QueryEscape`.
pub(crate) fn query_escape(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Parsed query string.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }

    /// First value of `name`, if non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Page size `n` (default 100).
    pub fn page_size(&self) -> Result<usize, ApiError> {
        match self.get("n") {
            None => Ok(DEFAULT_PAGE_SIZE),
            Some(text) => match text.parse::<usize>() {
                Ok(0) => Ok(DEFAULT_PAGE_SIZE),
                Ok(n) => Ok(n),
                Err(_) => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "PAGINATION_NUMBER_INVALID",
                    "invalid number of results requested",
                )
                .with_detail(json!({ "n": text }))),
            },
        }
    }
}

/// `http://<host>` as seen by the client, and the host itself.
pub(crate) fn base_and_host(headers: &HeaderMap) -> (String, String) {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    (format!("http://{host}"), host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_escapes_last() {
        let r = with_next_link(
            StatusCode::OK.into_response(),
            true,
            "/acr/v1/team/app/_tags",
            &[("last", "123&latest"), ("n", "3"), ("orderby", "timedesc")],
        );
        assert_eq!(
            r.headers()[header::LINK],
            "</acr/v1/team/app/_tags?last=123%26latest&n=3&orderby=timedesc>; rel=\"next\""
        );
    }

    #[test]
    fn query_page_size() {
        assert_eq!(Query::parse(Some("n=5&last=a")).page_size().unwrap(), 5);
        assert_eq!(Query::parse(None).page_size().unwrap(), 100);
        assert_eq!(
            Query::parse(Some("n=x")).page_size().unwrap_err().status,
            400
        );
        assert_eq!(Query::parse(Some("last=a%2Bb")).get("last"), Some("a+b"));
    }
}
