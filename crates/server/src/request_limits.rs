//! Limits on a request's head, answered with the API's JSON errors: hyper's own limits sit
//! above these and answer with empty bodies, so the usual refusals come from here.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, EXPECT};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use crate::error::ApiError;

/// The longest request target (path and query), in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Header fields a request may carry.
pub const MAX_HEADERS: usize = 100;
/// The size of all header names and values together, in bytes.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The most of an oversized body read and thrown away so that its sender sees the 413.
pub const DRAIN_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// How long reading an oversized body away may take.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Refuses requests whose target or headers are over the limits (414, 431), and bodies
/// that declare more than `body_limit` bytes (413).
pub async fn enforce(State(body_limit): State<usize>, request: Request, next: Next) -> Response {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(0);
    if uri_bytes > MAX_URI_BYTES {
        return ApiError::uri_too_long(MAX_URI_BYTES).into_response();
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return ApiError::headers_too_large(MAX_HEADERS, MAX_HEADER_BYTES).into_response();
    }
    if let Some(declared) = declared_length(&request) {
        if declared > body_limit as u64 {
            return refuse_oversized(request, declared, body_limit).await;
        }
    }
    next.run(request).await
}

/// The body length a request declares in `Content-Length`, when it declares one it can read.
fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Answers 413 to a body over the limit. A client that is still sending a body the server
/// never reads can lose the answer to a reset connection (it sees "broken pipe" instead of
/// the 413), so a body of moderate size is read and thrown away first, bounded in bytes and
/// time, as web servers' lingering close does. A client that waits for `100 Continue` never
/// sends the body, and a body beyond `DRAIN_MAX_BYTES` is not worth reading: those get the
/// answer at once, and the connection is closed.
async fn refuse_oversized(request: Request, declared: u64, body_limit: usize) -> Response {
    let waits_for_continue = request.headers().contains_key(EXPECT);
    let openai = request.uri().path().starts_with("/v1/");
    let drained = !waits_for_continue
        && declared <= DRAIN_MAX_BYTES
        && tokio::time::timeout(DRAIN_TIME, drain(request))
            .await
            .unwrap_or(false);
    let error = ApiError::payload_too_large(body_limit);
    let mut response = if openai {
        crate::routes::openai::OpenAiError::from(error).into_response()
    } else {
        error.into_response()
    };
    if !drained {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads a body to its end; whether it got there without an error.
async fn drain(request: Request) -> bool {
    let mut stream = request.into_body().into_data_stream();
    while let Some(frame) = stream.next().await {
        if frame.is_err() {
            return false;
        }
    }
    true
}
