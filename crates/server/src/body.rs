//! The JSON request body extractor: size-limited, every failure a clear 4xx JSON error.

use agent::Code;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

/// A request body parsed as JSON; an empty body counts as `{}`.
#[derive(Debug)]
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large(state.config.body_limit)
                } else {
                    ApiError::new(Code::InvalidRequest, rejection.body_text())
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Object(Default::default())));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(ApiError::invalid_json)?;
        Ok(JsonBody(value))
    }
}
