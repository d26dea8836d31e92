//! Operations endpoints at the server root: health, metrics, OpenAPI and the API docs page.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// The answer of `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// ok, or unavailable when the database does not answer.
    pub status: String,
    pub version: String,
    /// sqlite or postgres
    pub database: String,
    /// Documents in this replica's search index.
    pub indexed_documents: u64,
}

/// Liveness and readiness: 200 when the database answers, 503 otherwise. No key needed.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Healthy", body = Health), (status = 503, description = "Database unavailable", body = Health)))]
pub async fn health(State(state): State<AppState>) -> Response {
    let database_ok = state.store.ping().await.is_ok();
    let body = Health {
        status: if database_ok { "ok" } else { "unavailable" }.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        database: match state.store.backend() {
            store::Backend::Sqlite => "sqlite",
            store::Backend::Postgres => "postgres",
        }
        .to_string(),
        indexed_documents: state.knowledge.len(),
    };
    let status = if database_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus text: requests by route and status, latency histograms, tool executions.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi(State(state): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, "application/json")],
        state.openapi_json.clone(),
    )
        .into_response()
}

/// Human-readable API reference, rendered from the OpenAPI document.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "HTML page", body = String, content_type = "text/html")))]
pub async fn docs(State(state): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        state.docs_html.clone(),
    )
        .into_response()
}
