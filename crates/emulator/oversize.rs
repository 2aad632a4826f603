//! An answer made larger than it is, for the clients' caps on what they read of one
//! answer. Not an Azure behaviour documented anywhere: a stand-in for the 42 MB Resource
//! Graph page a robustness probe saw (a thousand rows with large `properties`). The JSON
//! stays the same (whitespace is added after its opening brace), so only its size differs.

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_LENGTH;
use axum::response::Response;

/// How an answer is made oversized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversize {
    /// The answer's size at least, in bytes.
    pub bytes: usize,
    /// Sent in chunks without `Content-Length` (else with it, as the answer is).
    pub chunked: bool,
}

/// `response` padded to `oversize` (a success only; an error is left alone).
pub(crate) async fn pad(response: Response, oversize: Oversize) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(original) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let mut padded = Vec::with_capacity(oversize.bytes.max(original.len()));
    match original.split_first() {
        Some((b'{', rest)) => {
            padded.push(b'{');
            padded.resize(oversize.bytes.saturating_sub(rest.len()).max(1), b' ');
            padded.extend_from_slice(rest);
        }
        _ => padded.extend_from_slice(&original),
    }
    parts.headers.remove(CONTENT_LENGTH);
    let body = if oversize.chunked {
        let chunks: Vec<Result<Bytes, std::convert::Infallible>> = padded
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Body::from_stream(futures::stream::iter(chunks))
    } else {
        Body::from(padded)
    };
    Response::from_parts(parts, body)
}
