//! Chat and sessions: `/chat`, `/chat/stream`, `/sessions…`. Every chat endpoint starts the
//! same agent turn; the streaming ones serialise its events as SSE, the others fold them.

use agent::Code;
use std::time::Duration;

use agent::{AgentEvent, Principal, TurnHandle, TurnRequest};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::{ApiError, Refusal};
use crate::openapi::ErrorBody;
use crate::params::{ApiPath, ApiQuery};
use crate::state::AppState;

use super::sse;

/// The body of every chat endpoint.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatBody {
    /// The user's message.
    pub message: String,
    /// Enable tool use (default: true).
    #[serde(default)]
    pub include_tools: Option<bool>,
    /// Replaces the default system prompt.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// What happens to the turn when the client goes away before its end: `cancel` (the
    /// default) stops it and keeps what was generated; `continue` lets it finish, to be
    /// rejoined with `GET /sessions/{id}/stream` or read with `/messages`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "continue")]
    pub on_disconnect: Option<String>,
    /// `tool_start` and `tool_end` events also carry `call_id`, the call's `arguments` and
    /// the tool's `result` (default: false, the events as the seeds define them).
    #[serde(default)]
    pub tool_details: Option<bool>,
}

impl ChatBody {
    /// Reads and checks a chat body, naming the field at fault.
    pub(crate) fn parse(value: Value) -> Result<ChatBody, ApiError> {
        let Value::Object(fields) = value else {
            return Err(ApiError::new(
                Code::InvalidRequest,
                "The request body must be a JSON object",
            ));
        };
        let message = match fields.get("message") {
            None | Some(Value::Null) => {
                return Err(ApiError::with_field(
                    Code::MissingField,
                    "message",
                    "Missing required field 'message'",
                ))
            }
            Some(Value::String(text)) if text.trim().is_empty() => {
                return Err(ApiError::with_field(
                    Code::InvalidField,
                    "message",
                    "Field 'message' must not be empty",
                ))
            }
            Some(Value::String(text)) => text.clone(),
            Some(_) => {
                return Err(ApiError::with_field(
                    Code::InvalidField,
                    "message",
                    "Field 'message' must be a string",
                ))
            }
        };
        let include_tools = match fields.get("include_tools") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(flag)) => Some(*flag),
            Some(_) => {
                return Err(ApiError::with_field(
                    Code::InvalidField,
                    "include_tools",
                    "Field 'include_tools' must be true or false",
                ))
            }
        };
        let system_prompt = match fields.get("system_prompt") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                return Err(ApiError::with_field(
                    Code::InvalidField,
                    "system_prompt",
                    "Field 'system_prompt' must be a string",
                ))
            }
        };
        let on_disconnect = match fields.get("on_disconnect") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text == "cancel" || text == "continue" => {
                Some(text.clone())
            }
            Some(_) => {
                return Err(ApiError::with_field(
                    Code::InvalidField,
                    "on_disconnect",
                    "Field 'on_disconnect' must be \"cancel\" or \"continue\"",
                ))
            }
        };
        let tool_details = match fields.get("tool_details") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(flag)) => Some(*flag),
            Some(_) => {
                return Err(ApiError::with_field(
                    Code::InvalidField,
                    "tool_details",
                    "Field 'tool_details' must be true or false",
                ))
            }
        };
        Ok(ChatBody {
            message,
            include_tools,
            system_prompt,
            on_disconnect,
            tool_details,
        })
    }

    fn into_turn(self, principal: Principal, session: SessionFor) -> TurnRequest {
        let (session_id, new_session) = match session {
            SessionFor::New(id) => (id, true),
            SessionFor::Existing(id) => (id, false),
        };
        TurnRequest {
            principal,
            session_id,
            new_session,
            message: self.message,
            include_tools: self.include_tools.unwrap_or(true),
            system_prompt: self.system_prompt,
            keep_running: self.on_disconnect.as_deref() == Some("continue"),
            tool_details: self.tool_details.unwrap_or(false),
            context: Vec::new(),
        }
    }
}

/// The session a chat message goes to.
enum SessionFor {
    /// A transient session the turn creates (`/chat`, `/chat/stream`).
    New(String),
    /// One of the caller's sessions.
    Existing(String),
}

/// Token usage summed over the turn's model calls.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ChatUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Model used (e.g. "gpt-4.1", or "builtin").
    pub model: String,
}

/// The complete answer of `/chat` and `/sessions/{id}/chat`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatResponse {
    /// The agent's complete response (Markdown).
    pub response: String,
    /// Session ID (can be used to continue the conversation).
    pub session_id: String,
    /// Tools the agent called, in order (omitted if none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools_used: Vec<String>,
    pub usage: ChatUsage,
    /// Error message (only present on failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer of `POST /sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionCreated {
    pub session_id: String,
    pub created: bool,
}

/// One session in `GET /sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionSummary {
    pub session_id: String,
    /// The first user message, or null before there is one.
    pub title: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub message_count: i64,
}

/// The answer of `GET /sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionSummary>,
    pub limit: i64,
    pub offset: i64,
}

/// One message of `GET /sessions/{id}/messages`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionMessage {
    /// user or assistant
    pub role: String,
    pub content: String,
    /// Present (true) when the generation was stopped or failed before it finished.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

/// Paging of `GET /sessions`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct Paging {
    /// 1–100, default 20.
    pub limit: Option<String>,
    /// Default 0.
    pub offset: Option<String>,
}

fn rfc3339(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// A session id from a path: anything that is not one of the caller's sessions is a 404.
/// Starts a turn in one of the caller's sessions; answers its events and the session's id.
async fn start_in_session(
    state: &AppState,
    principal: Principal,
    session_id: &str,
    body: Value,
) -> Result<(TurnHandle, String), ApiError> {
    let session_id = owned_session(state, &principal, session_id).await?;
    let body = ChatBody::parse(body)?;
    let handle = state
        .agent
        .start(body.into_turn(principal, SessionFor::Existing(session_id.clone())));
    Ok((handle, session_id))
}

pub(crate) async fn owned_session(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<String, ApiError> {
    let not_found =
        || ApiError::not_found(format!("Session {id} does not exist; create a new session"));
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    match state.store.session_for_user(id, &principal.user_id).await {
        Ok(session) => Ok(session.id),
        Err(store::StoreError::NotFound(_)) => Err(not_found()),
        Err(other) => Err(ApiError::internal(other)),
    }
}

/// What a folded turn answers: the chat response, an application-level failure
/// (`cap_exceeded`) in the seeds' `{"success": false, …}` form, or a 404 for a session
/// deleted while its message waited.
pub(crate) enum Folded {
    Answer(ChatResponse),
    Refused { error: String, code: Code },
    Gone(ApiError),
}

impl IntoResponse for Folded {
    fn into_response(self) -> Response {
        match self {
            Folded::Answer(answer) => Json(answer).into_response(),
            Folded::Refused { error, code } => Refusal::new(code, error).into_response(),
            Folded::Gone(error) => error.into_response(),
        }
    }
}

/// Where a turn stands after one more of its events.
pub(crate) enum Absorbed {
    /// More events will come.
    Going,
    /// The turn ended (its answer, or `error` set, is complete).
    Ended,
    /// The turn was refused (`cap_exceeded`) before it began.
    Refused { error: String, code: Code },
    /// Its session was deleted while the message waited.
    Gone(ApiError),
}

impl ChatResponse {
    /// An empty answer in a session, to be filled by [`ChatResponse::absorb`].
    pub(crate) fn empty(session_id: String) -> ChatResponse {
        ChatResponse {
            response: String::new(),
            session_id,
            tools_used: Vec::new(),
            usage: ChatUsage::default(),
            error: None,
        }
    }

    /// Adds one event of the turn to the answer: every protocol's folding of a turn (`/chat`,
    /// MCP's `ask_agent`, `/v1/chat/completions`) is this one.
    pub(crate) fn absorb(&mut self, event: &AgentEvent) -> Absorbed {
        match event {
            AgentEvent::Token { content } => self.response.push_str(content),
            AgentEvent::ToolStart { tool, .. } => {
                if !self.tools_used.contains(tool) {
                    self.tools_used.push(tool.clone());
                }
            }
            AgentEvent::Usage {
                prompt_tokens,
                completion_tokens,
                model,
            } => {
                self.usage.prompt_tokens += prompt_tokens;
                self.usage.completion_tokens += completion_tokens;
                self.usage.model = model.clone();
            }
            AgentEvent::Error {
                message,
                code: Some(Code::CapExceeded),
                ..
            } => {
                return Absorbed::Refused {
                    error: message.clone(),
                    code: Code::CapExceeded,
                };
            }
            AgentEvent::Error {
                message,
                code: Some(Code::NotFound),
                ..
            } => return Absorbed::Gone(ApiError::not_found(message.clone())),
            AgentEvent::Error { message, .. } => {
                self.error = Some(message.clone());
                return Absorbed::Ended;
            }
            AgentEvent::End => return Absorbed::Ended,
            AgentEvent::Session { .. } | AgentEvent::Phase { .. } | AgentEvent::ToolEnd { .. } => {}
        }
        Absorbed::Going
    }
}

/// Folds a turn's events into the JSON answer.
pub(crate) async fn fold(mut handle: TurnHandle, session_id: String) -> Folded {
    let mut response = ChatResponse::empty(session_id);
    while let Some(next) = handle.events.recv().await {
        match response.absorb(&next.event) {
            Absorbed::Going => {}
            Absorbed::Ended => break,
            Absorbed::Refused { error, code } => return Folded::Refused { error, code },
            Absorbed::Gone(error) => return Folded::Gone(error),
        }
    }
    Folded::Answer(response)
}

/// How long a stream's response head may wait for the turn's first event, so that both leave
/// in one write (the first event, `session`, follows the turn's first commit: a millisecond or
/// two). Past it the head goes alone and keep-alive comments cover the silence.
const HEAD_WAITS_FOR_FIRST_EVENT: Duration = Duration::from_secs(1);

/// Serialises a turn's events as Server-Sent Events, each with its id (`TURN:SEQ`, for
/// rejoining), with keep-alive comments in silences.
///
/// The response head goes out together with the first event rather than a write of its own,
/// events already waiting leave together in one frame, and the stream ends with its last event
/// (`end` or `error`), so that the closing chunk leaves in the same write too.
async fn sse(state: &AppState, mut handle: TurnHandle) -> Response {
    let keep_alive = Duration::from_secs(state.config.sse_keepalive_seconds);
    let first = match tokio::time::timeout(HEAD_WAITS_FOR_FIRST_EVENT, handle.events.recv()).await {
        Ok(None) => {
            return sse::response(
                futures::stream::empty(),
                keep_alive,
                state.connections.now(),
            )
        }
        Ok(Some(event)) => Some(event),
        Err(_) => None,
    };
    // The state: the event already received, if any, and the handle — gone after the last event.
    let frames = futures::stream::unfold(Some((first, handle)), |state| async move {
        let (first, mut handle) = state?;
        let next = match first {
            Some(next) => next,
            None => handle.events.recv().await?,
        };
        let mut frame = BytesMut::new();
        let mut last = next.event.is_last();
        sse::put_event(&mut frame, &next.json, &handle.event_id(next.seq));
        while !last {
            let Ok(more) = handle.events.try_recv() else {
                break;
            };
            last = more.event.is_last();
            sse::put_event(&mut frame, &more.json, &handle.event_id(more.seq));
        }
        Some((frame.freeze(), (!last).then_some((None, handle))))
    });
    sse::response(frames, keep_alive, state.connections.now())
}

/// Where a rejoining client resumes: `?after=` or the `Last-Event-ID` header (the query wins).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Rejoin {
    /// The id of the last event received (`TURN:SEQ`), or a bare event number of the session's
    /// latest turn. Without it the turn is replayed from its first event.
    pub after: Option<String>,
}

/// Rejoins the session's running turn (or its latest, or the one the cursor names): replays
/// the events after the cursor, then follows live until the turn's last event.
#[utoipa::path(get, path = "/rest/v1/ai-agent/api/sessions/{session_id}/stream", tag = "sessions", security(("bearer" = [])),
    params(
        ("session_id" = String, Path, description = "Session ID"),
        Rejoin,
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received, as EventSource sends it"),
    ),
    responses(
        (status = 200, description = "text/event-stream of the turn's events after the cursor, each with its `id`, ending with `end` or `error`", content_type = "text/event-stream", body = String),
        (status = 400, description = "The cursor can't be read", body = ErrorBody),
        (status = 404, description = "No such session (`not_found`), or no turn of it is running or kept (`no_turn`)", body = ErrorBody),
    ))]
pub async fn rejoin_stream(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(session_id): ApiPath<String>,
    ApiQuery(rejoin): ApiQuery<Rejoin>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let session_id = owned_session(&state, &principal, &session_id).await?;
    let (text, field) = match (&rejoin.after, headers.get("last-event-id")) {
        (Some(after), _) => (Some(after.clone()), "after"),
        (None, Some(header)) => (
            Some(header.to_str().unwrap_or("\u{fffd}").to_string()),
            "Last-Event-ID",
        ),
        (None, None) => (None, "after"),
    };
    let cursor = match text {
        None => agent::Cursor::start(),
        Some(text) => agent::Cursor::parse(&text).ok_or_else(|| {
            ApiError::with_field(
                Code::InvalidField,
                field,
                format!("'{field}' must be an event id (TURN:SEQ) or an event number"),
            )
        })?,
    };
    let follow = match state.agent.follow(&session_id, &cursor).await {
        Ok(follow) => follow,
        Err(agent::FollowError::NoTurn) => {
            return Err(ApiError::new(
                Code::NoTurn,
                format!(
                    "No turn of session {session_id} is running or kept{}; read its messages with GET /sessions/{session_id}/messages",
                    match cursor.turn_id {
                        Some(turn) => format!(" (turn {turn} ended more than {} s ago, or is not this session's)", state.agent.stream_retention().as_secs()),
                        None => String::new(),
                    }
                ),
            ))
        }
        Err(agent::FollowError::Store(error)) => return Err(ApiError::internal(error)),
    };
    let turn_id = follow.turn_id.clone();
    let frames = futures::stream::unfold(follow, move |mut follow| {
        let turn_id = turn_id.clone();
        async move {
            let batch = follow.next_batch().await?;
            let mut frame = BytesMut::new();
            for (seq, json) in batch {
                sse::put_event(&mut frame, &json, &format!("{turn_id}:{seq}"));
            }
            Some((frame.freeze(), follow))
        }
    });
    Ok(sse::response(
        frames,
        Duration::from_secs(state.config.sse_keepalive_seconds),
        state.connections.now(),
    ))
}

/// Send a message and receive a complete JSON response (a transient session is created).
#[utoipa::path(post, path = "/rest/v1/ai-agent/api/chat", tag = "chat", security(("bearer" = [])),
    request_body = ChatBody,
    responses(
        (status = 200, description = "The agent's answer (with `error` on failure)", body = ChatResponse),
        (status = 400, description = "Missing or invalid field", body = ErrorBody),
        (status = 401, description = "Invalid or missing API key", body = ErrorBody),
        (status = 403, description = "AI features disabled or no API access", body = ErrorBody),
    ))]
pub async fn chat(
    State(state): State<AppState>,
    Caller(principal): Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let body = ChatBody::parse(body)?;
    let session_id = store::new_session_id();
    let handle = state
        .agent
        .start(body.into_turn(principal, SessionFor::New(session_id.clone())));
    Ok(fold(handle, session_id).await.into_response())
}

/// Send a message and receive the answer as Server-Sent Events.
#[utoipa::path(post, path = "/rest/v1/ai-agent/api/chat/stream", tag = "chat", security(("bearer" = [])),
    request_body = ChatBody,
    responses(
        (status = 200, description = "text/event-stream of `data: {json}` events: session, phase, tool_start, tool_end, token, usage, end, error", content_type = "text/event-stream", body = String),
        (status = 400, description = "Missing or invalid field", body = ErrorBody),
        (status = 401, description = "Invalid or missing API key", body = ErrorBody),
    ))]
pub async fn chat_stream(
    State(state): State<AppState>,
    Caller(principal): Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let body = ChatBody::parse(body)?;
    let session = SessionFor::New(store::new_session_id());
    let handle = state.agent.start(body.into_turn(principal, session));
    Ok(sse(&state, handle).await)
}

/// Create a persistent chat session.
#[utoipa::path(post, path = "/rest/v1/ai-agent/api/sessions", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, description = "The new session", body = SessionCreated), (status = 401, description = "Invalid or missing API key", body = ErrorBody)))]
pub async fn create_session(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<SessionCreated>, ApiError> {
    let session = state
        .store
        .create_session(
            &store::new_session_id(),
            &principal.tenant_id,
            &principal.user_id,
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(SessionCreated {
        session_id: session.id,
        created: true,
    }))
}

/// The caller's sessions, most recently active first.
#[utoipa::path(get, path = "/rest/v1/ai-agent/api/sessions", tag = "sessions", security(("bearer" = [])),
    params(Paging),
    responses((status = 200, description = "One page of sessions", body = SessionList), (status = 400, description = "Bad limit or offset", body = ErrorBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Json<SessionList>, ApiError> {
    let number =
        |text: Option<&String>, name: &str, default: i64, range: std::ops::RangeInclusive<i64>| {
            let Some(text) = text else { return Ok(default) };
            text.parse::<i64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    ApiError::with_field(
                        Code::InvalidField,
                        name,
                        format!(
                            "'{name}' must be a whole number from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    )
                })
        };
    let limit = number(paging.limit.as_ref(), "limit", 20, 1..=100)?;
    let offset = number(paging.offset.as_ref(), "offset", 0, 0..=i64::from(i32::MAX))?;
    let sessions = state
        .store
        .list_sessions(&principal.user_id, limit, offset)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|s| SessionSummary {
            session_id: s.id,
            title: s.title,
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
            message_count: s.message_count,
        })
        .collect();
    Ok(Json(SessionList {
        sessions,
        limit,
        offset,
    }))
}

/// Send a message within a session and get a complete response.
#[utoipa::path(post, path = "/rest/v1/ai-agent/api/sessions/{session_id}/chat", tag = "sessions", security(("bearer" = [])),
    params(("session_id" = String, Path, description = "Session ID from POST /sessions")),
    request_body = ChatBody,
    responses(
        (status = 200, description = "The agent's answer", body = ChatResponse),
        (status = 400, description = "Missing or invalid field", body = ErrorBody),
        (status = 404, description = "The session does not exist (or is not yours)", body = ErrorBody),
    ))]
pub async fn session_chat(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(session_id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (handle, session_id) = start_in_session(&state, principal, &session_id, body).await?;
    Ok(fold(handle, session_id).await.into_response())
}

/// Streaming version of session chat (Server-Sent Events).
#[utoipa::path(post, path = "/rest/v1/ai-agent/api/sessions/{session_id}/chat/stream", tag = "sessions", security(("bearer" = [])),
    params(("session_id" = String, Path, description = "Session ID")),
    request_body = ChatBody,
    responses(
        (status = 200, description = "text/event-stream, as /chat/stream", content_type = "text/event-stream", body = String),
        (status = 404, description = "The session does not exist (or is not yours)", body = ErrorBody),
    ))]
pub async fn session_chat_stream(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(session_id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (handle, _) = start_in_session(&state, principal, &session_id, body).await?;
    Ok(sse(&state, handle).await)
}

/// The session's user and assistant messages, oldest first.
#[utoipa::path(get, path = "/rest/v1/ai-agent/api/sessions/{session_id}/messages", tag = "sessions", security(("bearer" = [])),
    params(("session_id" = String, Path, description = "Session ID")),
    responses(
        (status = 200, description = "The conversation", body = [SessionMessage]),
        (status = 404, description = "The session does not exist (or is not yours)", body = ErrorBody),
    ))]
pub async fn session_messages(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(session_id): ApiPath<String>,
) -> Result<Json<Vec<SessionMessage>>, ApiError> {
    let session_id = owned_session(&state, &principal, &session_id).await?;
    let messages = state
        .store
        .session_messages(&session_id)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|m| SessionMessage {
            role: m.role.as_str().to_string(),
            content: m.content,
            interrupted: m.interrupted,
        })
        .collect();
    Ok(Json(messages))
}

/// Deletes a session and its messages (stopping a generation in it first).
#[utoipa::path(delete, path = "/rest/v1/ai-agent/api/sessions/{session_id}", tag = "sessions", security(("bearer" = [])),
    params(("session_id" = String, Path, description = "Session ID")),
    responses(
        (status = 200, description = "Deleted", body = Object),
        (status = 404, description = "The session does not exist (or is not yours)", body = ErrorBody),
    ))]
pub async fn delete_session(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(session_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let session_id = owned_session(&state, &principal, &session_id).await?;
    state
        .agent
        .delete_session(&session_id, &principal.user_id)
        .await?;
    Ok(Json(
        serde_json::json!({"session_id": session_id, "deleted": true}),
    ))
}

/// Stops the generation running in a session; what was generated is kept, marked interrupted.
#[utoipa::path(post, path = "/rest/v1/ai-agent/api/sessions/{session_id}/stop", tag = "sessions", security(("bearer" = [])),
    params(("session_id" = String, Path, description = "Session ID")),
    responses(
        (status = 200, description = "`stopped` says whether a generation was running", body = Object),
        (status = 404, description = "The session does not exist (or is not yours)", body = ErrorBody),
    ))]
pub async fn stop_session(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(session_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let session_id = owned_session(&state, &principal, &session_id).await?;
    let stopped = state.agent.stop_anywhere(&session_id).await?;
    Ok(Json(
        serde_json::json!({"session_id": session_id, "stopped": stopped}),
    ))
}
