//! The one mapping from failures to HTTP status codes and JSON bodies. Codes, their statuses
//! and their meanings come from one table, `agent::Code`.

use agent::{Code, CodeKind};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An application-level failure: HTTP 200 with `{"success": false, "error", "code"}`, the
/// seeds' form for a refusal of a request that was itself fine (`cap_exceeded`,
/// `permission_denied`, `tool_failed`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    pub error: String,
}

impl Refusal {
    pub fn new(code: Code, error: impl Into<String>) -> Refusal {
        Refusal {
            code,
            error: error.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        Json(json!({"success": false, "error": self.error, "code": self.code})).into_response()
    }
}

/// A request failure: its code (which decides the status), a human sentence, and the field at
/// fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub field: Option<String>,
    /// Seconds after which a retry may succeed (`Retry-After`), for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A failure with this code.
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// A failure with this code and the request field at fault.
    pub fn with_field(
        code: Code,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(code, message)
        }
    }

    /// The status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self.code.kind() {
            // A refusal is not a request failure; should one end up here, it is the server's.
            CodeKind::Refusal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::from_u16(self.code.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// 400: the body is not JSON (or not UTF-8).
    pub fn invalid_json(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            Code::InvalidJson,
            format!("The request body is not valid JSON: {detail}"),
        )
    }

    /// 404: nothing here, or nothing the caller may see.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::NotFound, message)
    }

    /// 413: the body is over the configured limit.
    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            Code::PayloadTooLarge,
            format!("The request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 414: the request target is too long.
    pub fn uri_too_long(limit: usize) -> ApiError {
        ApiError::new(
            Code::UriTooLong,
            format!("The request path and query are longer than {limit} bytes"),
        )
    }

    /// 431: too many headers, or headers too large.
    pub fn headers_too_large(count: usize, bytes: usize) -> ApiError {
        ApiError::new(
            Code::HeadersTooLarge,
            format!(
                "The request has more than {count} headers or more than {bytes} bytes of headers"
            ),
        )
    }

    /// 429: this client failed to authenticate too often; retry after `seconds`.
    pub fn too_many_failed_attempts(seconds: u64) -> ApiError {
        let seconds = seconds.max(1);
        ApiError {
            retry_after: Some(seconds),
            ..ApiError::new(
                Code::TooManyFailedAttempts,
                format!(
                    "Too many requests with invalid API keys from this address; retry in {seconds} s"
                ),
            )
        }
    }

    /// 503: the server is at its connection limit.
    pub fn at_connection_limit() -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                Code::ServerBusy,
                "The server is at its connection limit; retry shortly",
            )
        }
    }

    /// 500: logged with its detail; the client gets a generic sentence.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            Code::InternalError,
            "Internal server error; retry, or contact support if it persists",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = json!({ "error": self.message, "code": self.code });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        if matches!(self.code, Code::PayloadTooLarge | Code::ServerBusy) {
            // The rest of the body is not read (413), or the connection is one too many (503):
            // it cannot carry another request.
            headers.insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

impl From<store::StoreError> for ApiError {
    fn from(error: store::StoreError) -> ApiError {
        match error {
            store::StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            other => ApiError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/error-codes.md` lists every code with the status it is answered with, and no
    /// code that does not exist.
    #[test]
    fn the_error_code_reference_matches_the_table() {
        let doc = include_str!("../../../docs/error-codes.md");
        let mut documented = std::collections::BTreeMap::new();
        for line in doc.lines().filter(|l| l.starts_with('|')) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // HTTP table: | status | `code` | …; application table: | `code` | where | …
            let (status, code) = match (cells.get(1), cells.get(2)) {
                (Some(status), Some(code)) if status.parse::<u16>().is_ok() => {
                    (status.parse::<u16>().ok(), *code)
                }
                (Some(code), _) if code.starts_with('`') => (Some(200), *code),
                _ => continue,
            };
            let name = code.trim_matches('`');
            // Header cells (`code`) and other tables (`true` of `retryable`) name no code.
            let is_code = name.contains('_') || Code::from_name(name).is_some();
            if is_code && name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                documented.insert(name.to_string(), status);
            }
        }
        for code in Code::ALL {
            assert_eq!(
                documented.get(code.name()).copied().flatten(),
                Some(code.status()),
                "docs/error-codes.md: {code} should be listed with status {}",
                code.status()
            );
        }
        for name in documented.keys() {
            assert!(
                Code::from_name(name).is_some(),
                "docs/error-codes.md lists `{name}`, which is no code"
            );
        }
    }
}
