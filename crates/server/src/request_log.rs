//! Every request has an id: the client's `x-request-id` when it sends a sane one, else a new
//! one. The id goes back in the response's `x-request-id`, into every error body
//! (`request_id`), and into the request's one log line (target `integrator::requests`, INFO:
//! method, path, status, duration, id), which the default log filter leaves off; an operator
//! switches it on with `RUST_LOG=warn,integrator::requests=info`.

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Error bodies larger than this are left as they are (they are a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The request's id: the client's, when it is 1–128 visible ASCII characters, else a new one.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string())
}

/// Gives the request its id, writes it into the response and its error body, logs the line.
pub async fn track(request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = Instant::now();
    // The request's span: the parent of what it starts (turns, tool calls, runs) in traces.
    let span = tracing::info_span!(
        target: "integrator::requests",
        "request",
        method = %method,
        path = %path,
        request_id = %id,
        status = tracing::field::Empty
    );
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("status", status.as_u16());
    let mut response = if status.is_client_error() || status.is_server_error() {
        with_request_id(response, &id).await
    } else {
        response
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    tracing::info!(
        target: "integrator::requests",
        method = %method,
        path = %path,
        status = status.as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = %id,
    );
    response
}

/// A JSON error body with `request_id` added (other bodies unchanged).
async fn with_request_id(response: Response, id: &str) -> Response {
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_ERROR_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => return Response::from_parts(parts, Body::empty()),
    };
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(mut fields)) => {
            fields.insert("request_id".into(), Value::String(id.to_string()));
            let json = Value::Object(fields).to_string();
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            Body::from(json)
        }
        _ => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}
