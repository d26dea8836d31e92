//! Limits on a request's head, answered with the API's JSON errors: hyper's own limits sit
//! above these and answer with empty bodies, so the usual refusals come from here.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The longest request target (path and query), in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Header fields a request may carry.
pub const MAX_HEADERS: usize = 100;
/// The size of all header names and values together, in bytes.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Refuses requests whose target or headers are over the limits (414, 431).
pub async fn enforce(request: Request, next: Next) -> Response {
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
    next.run(request).await
}
