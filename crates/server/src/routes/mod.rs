//! HTTP routes: thin handlers over the domain crates.

pub mod billing;
pub mod chat;
pub mod downloads;
pub mod openai;
pub mod ops;
mod sse;
pub mod tools;
pub mod workspace;

use axum::extract::Request;
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;
use crate::state::AppState;

/// The base path of the agent API.
pub const API_BASE: &str = "/rest/v1/ai-agent/api";

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    let api = Router::new()
        .route("/tools", get(tools::list_tools))
        .route("/tools/{tool_name}/execute", post(tools::execute_tool))
        .route("/chat", post(chat::chat))
        .route("/chat/stream", post(chat::chat_stream))
        .route(
            "/sessions",
            post(chat::create_session).get(chat::list_sessions),
        )
        .route(
            "/sessions/{session_id}",
            axum::routing::delete(chat::delete_session),
        )
        .route("/sessions/{session_id}/chat", post(chat::session_chat))
        .route(
            "/sessions/{session_id}/chat/stream",
            post(chat::session_chat_stream),
        )
        .route(
            "/sessions/{session_id}/messages",
            get(chat::session_messages),
        )
        .route("/sessions/{session_id}/stop", post(chat::stop_session))
        .route("/sessions/{session_id}/stream", get(chat::rejoin_stream))
        .route("/usage", get(billing::usage))
        .route("/workspace/runs", get(workspace::runs))
        .route("/workspace/runs/{id}", get(workspace::run))
        .route("/workspace/flows", get(workspace::flows))
        .route("/workspace/flows/{name}", get(workspace::flow))
        .route("/workspace/connections", get(workspace::connections))
        .route("/workspace/connections/{name}", get(workspace::connection))
        .route("/workspace/schedules", get(workspace::schedules));
    Router::new()
        .nest(API_BASE, api)
        .route(
            "/rest/v1/ai-agent/api-key",
            post(billing::set_api_key).get(billing::get_api_key),
        )
        .route(
            "/rest/v1/ai-agent/api-key/delete",
            post(billing::delete_api_key),
        )
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/docs", get(ops::docs))
        // The index answers with and without the trailing slash (the docs write `/downloads/`).
        .route("/downloads", get(downloads::index_without_slash))
        .route("/downloads/", get(downloads::index))
        .route("/downloads/{file}", get(downloads::file))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{model}", get(openai::model))
        .merge(mcp_routes(&state))
        .merge(crate::console::routes())
        .route_layer(axum::middleware::from_fn(crate::metrics::track_requests))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(crate::request_limits::enforce))
        .layer(CatchPanicLayer::custom(|_panic| {
            axum::response::IntoResponse::into_response(ApiError::internal(
                "a request handler panicked",
            ))
        }))
        .layer(axum::middleware::from_fn(crate::request_log::track))
        .with_state(state)
}

/// The MCP server, behind its authentication.
fn mcp_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route_service(
            crate::mcp::PATH,
            crate::mcp::service(state, state.stopping.clone()),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::mcp::authenticate,
        ))
}

/// What connections beyond the connection limit get: `/health` still answers, everything
/// else is a 503 with `Retry-After`.
pub fn overflow_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(ops::health))
        .fallback(|| async { ApiError::at_connection_limit() })
        .with_state(state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "No endpoint {} {}; see /docs for the API",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        agent::Code::MethodNotAllowed,
        format!(
            "{} is not allowed on {}; see /docs for the API",
            request.method(),
            request.uri().path()
        ),
    )
}
