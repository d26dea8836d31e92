//! Limits on a request's head, answered with the API's JSON errors (hyper's own limits sit
//! above these and answer with empty bodies, so the usual refusals come from here); and, for
//! every request, the unread rest of its body read away before the answer. (Bodies over
//! `body_limit` are refused by the body extractors, in their route's error shape.)

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::unread_body;

/// The longest request target (path and query), in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Header fields a request may carry.
pub const MAX_HEADERS: usize = 100;
/// The size of all header names and values together, in bytes.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Refuses requests whose target or headers are over the limits (414, 431). Whatever the
/// answer, a body left unread is read away first (see [`unread_body`]), so that its sender
/// gets the answer.
pub async fn enforce(request: Request, next: Next) -> Response {
    let refusal = refusal(&request);
    let (request, leftover) = unread_body::track(request);
    let response = match refusal {
        Some(refusal) => {
            drop(request);
            refusal
        }
        None => next.run(request).await,
    };
    leftover.settle(response).await
}

/// The answer to a request over a limit, if it is.
fn refusal(request: &Request) -> Option<Response> {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(0);
    if uri_bytes > MAX_URI_BYTES {
        return Some(ApiError::uri_too_long(MAX_URI_BYTES).into_response());
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return Some(ApiError::headers_too_large(MAX_HEADERS, MAX_HEADER_BYTES).into_response());
    }
    None
}
