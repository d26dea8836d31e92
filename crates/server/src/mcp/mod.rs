//! The MCP server at `/mcp`: the Streamable HTTP transport of the official SDK (`rmcp`), in
//! front of [`handler::McpAgent`]. This layer authenticates every request with the API's own
//! keys (a 401 with `WWW-Authenticate` without one), hands the caller to the handler, and keeps
//! each session to the user who began it; sessions and their streams' events live in the
//! database, so any replica can continue a session or resume a broken stream.

mod events;
mod handler;
mod resources;
mod sessions;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Where the MCP server answers.
pub const PATH: &str = "/mcp";

const SESSION_HEADER: &str = "mcp-session-id";
const LAST_EVENT_ID_HEADER: &str = "last-event-id";

/// The MCP service, ready to be mounted at [`PATH`]; `stopping` ends its sessions' streams
/// when the server stops.
pub fn service(
    state: &AppState,
    stopping: CancellationToken,
) -> StreamableHttpService<handler::McpAgent, LocalSessionManager> {
    let tools: Arc<[_]> = handler::tool_list(state).into();
    let mut config = StreamableHttpServerConfig::default()
        // Every request carries an API key, which a page of another site can't know: the
        // SDK's Host check against DNS rebinding (meant for unauthenticated local servers)
        // would only refuse the server's own public names.
        .disable_allowed_hosts();
    config.sse_keep_alive = Some(Duration::from_secs(state.config.sse_keepalive_seconds));
    config.cancellation_token = stopping.clone();
    config.max_request_body_bytes = state.config.body_limit;
    config.session_store = Some(Arc::new(sessions::DatabaseSessions {
        store: state.store.clone(),
    }));
    let handler_state = state.clone();
    StreamableHttpService::new(
        move || Ok(handler::McpAgent::new(handler_state.clone(), tools.clone())),
        Arc::new(
            LocalSessionManager::default()
                .with_event_store(events::event_store(state.store.clone(), stopping)),
        ),
        config,
    )
}

/// Authenticates a request to `/mcp` and keeps sessions and streams to their users: the caller
/// goes to the handler in the request's extensions; a session of another user is answered as
/// an unknown one (404); a new session is recorded as the caller's, and so is each request's
/// stream; another user's stream is not resumed.
pub async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let principal = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(Caller(principal)) => principal,
        Err(error) => return challenge(error),
    };
    let session = parts
        .headers
        .get(SESSION_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    if let Some(id) = &session {
        match state.store.mcp_session_owner(id).await {
            Ok(Some(owner)) if owner.is_empty() => {
                if let Err(error) = state.store.claim_mcp_session(id, &principal.user_id).await {
                    return ApiError::internal(error).into_response();
                }
            }
            Ok(Some(owner)) if owner != principal.user_id => {
                return (
                    axum::http::StatusCode::NOT_FOUND,
                    "Not Found: Session not found",
                )
                    .into_response()
            }
            Ok(_) => {}
            Err(error) => return ApiError::internal(error).into_response(),
        }
    }
    if parts.method == axum::http::Method::GET {
        if let Some(last_event_id) = parts
            .headers
            .get(LAST_EVENT_ID_HEADER)
            .and_then(|value| value.to_str().ok())
        {
            match events::may_resume(&state.store, last_event_id, &principal.user_id).await {
                Ok(true) => {}
                Ok(false) => return events::nothing_to_resume(),
                Err(error) => return ApiError::internal(error).into_response(),
            }
        }
    }
    let user_id = principal.user_id.clone();
    let posting = parts.method == axum::http::Method::POST;
    let closing = parts.method == axum::http::Method::DELETE;
    parts.extensions.insert(principal);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if posting {
        response = events::claim_stream(&state.store, &user_id, response).await;
    }
    // A closed session: 204, which the SDKs expect (the transport answers 202).
    if closing && response.status() == axum::http::StatusCode::ACCEPTED {
        *response.status_mut() = axum::http::StatusCode::NO_CONTENT;
    }
    if session.is_none() {
        if let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|value| value.to_str().ok())
        {
            if let Err(error) = state.store.claim_mcp_session(id, &user_id).await {
                tracing::error!(%error, "could not record the owner of an MCP session");
                return ApiError::internal(error).into_response();
            }
        }
    }
    response
}

/// A refused request, with the challenge an MCP client expects on a 401.
fn challenge(error: ApiError) -> Response {
    let unauthorized = error.status() == axum::http::StatusCode::UNAUTHORIZED;
    let mut response = error.into_response();
    if unauthorized {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer realm=\"integrator-agent\", error=\"invalid_token\", error_description=\"Send 'Authorization: Bearer <your API key>'\"",
            ),
        );
    }
    response
}
