//! The OpenAI-compatible endpoint: `POST /v1/chat/completions` (streaming and not) and
//! `GET /v1/models`, so that any OpenAI SDK or framework talks to the agent with no adapter.
//! The same API keys, roles, caps and sessions as the agent API; answers and errors in
//! OpenAI's shapes, so the SDKs' parsing and retry logic do the right thing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent::llm::ChatMessage;
use agent::{AgentEvent, Code, Principal, TurnHandle, TurnRequest};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::{BufMut, BytesMut};
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::params::ApiPath;
use crate::state::AppState;

use super::chat::{fold, owned_session, Folded};
use super::sse;

/// The one model this endpoint offers: the agent.
pub const MODEL: &str = "integrator-agent";
/// When the model "was created", as `/v1/models` reports it (a fixed date: 2025-12-01).
const MODEL_CREATED: u64 = 1_764_547_200;
/// The request header (and response header) that names a stored session.
const SESSION_HEADER: &str = "x-session-id";
/// How long a streaming response waits for the turn's first event before its head leaves, so
/// that a refusal (`cap_exceeded`) can still be a plain 429.
const HEAD_WAITS_FOR_FIRST_EVENT: Duration = Duration::from_secs(1);

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
pub struct OpenAiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<String>,
    code: Option<String>,
    /// `x-should-retry: false`: the SDKs retry 429s unless told not to.
    final_answer: bool,
    retry_after: Option<u64>,
}

impl OpenAiError {
    fn invalid(param: impl Into<String>, message: impl Into<String>) -> OpenAiError {
        OpenAiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.into()),
            code: Some(Code::InvalidField.name().into()),
            final_answer: false,
            retry_after: None,
        }
    }

    fn model_not_found(model: &str) -> OpenAiError {
        OpenAiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "The model '{model}' does not exist; this server offers '{MODEL}' (GET /v1/models)"
            ),
            kind: "invalid_request_error",
            param: Some("model".into()),
            code: Some("model_not_found".into()),
            final_answer: false,
            retry_after: None,
        }
    }

    fn insufficient_quota(message: String) -> OpenAiError {
        OpenAiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message,
            kind: "insufficient_quota",
            param: None,
            code: Some("insufficient_quota".into()),
            final_answer: true,
            retry_after: None,
        }
    }

    fn agent_failed(message: String) -> OpenAiError {
        OpenAiError {
            status: StatusCode::BAD_GATEWAY,
            message,
            kind: "server_error",
            param: None,
            code: Some("agent_error".into()),
            final_answer: false,
            retry_after: None,
        }
    }

    fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl From<ApiError> for OpenAiError {
    fn from(error: ApiError) -> OpenAiError {
        let status = error.status();
        let (kind, code) = match status.as_u16() {
            // One answer for a missing and a bad key, as OpenAI gives.
            401 => ("invalid_request_error", "invalid_api_key"),
            403 => ("permission_error", error.code.name()),
            429 => ("rate_limit_error", error.code.name()),
            500..=599 => ("server_error", error.code.name()),
            _ => ("invalid_request_error", error.code.name()),
        };
        OpenAiError {
            status,
            message: error.message,
            kind,
            param: error.field,
            code: Some(code.to_string()),
            final_answer: false,
            retry_after: error.retry_after,
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"integrator-agent\""),
            );
        }
        if self.final_answer {
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The caller, with a refusal in OpenAI's shape.
pub struct OpenAiCaller(Principal);

impl FromRequestParts<AppState> for OpenAiCaller {
    type Rejection = OpenAiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OpenAiError> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        Ok(OpenAiCaller(principal))
    }
}

/// A JSON body, with a refusal in OpenAI's shape.
pub struct OpenAiBody(Value);

impl FromRequest<AppState> for OpenAiBody {
    type Rejection = OpenAiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, OpenAiError> {
        let JsonBody(value) = JsonBody::from_request(request, state).await?;
        Ok(OpenAiBody(value))
    }
}

fn model_json() -> Value {
    json!({"id": MODEL, "object": "model", "created": MODEL_CREATED, "owned_by": MODEL})
}

/// `GET /v1/models`: the agent, as the one model.
#[utoipa::path(get, path = "/v1/models", tag = "openai", security(("bearer" = [])),
    responses((status = 200, description = "The one model, `integrator-agent`", body = Object)))]
pub async fn models(_caller: OpenAiCaller) -> Json<Value> {
    Json(json!({"object": "list", "data": [model_json()]}))
}

/// `GET /v1/models/{model}`.
#[utoipa::path(get, path = "/v1/models/{model}", tag = "openai", security(("bearer" = [])),
    params(("model" = String, Path, description = "The model's id: `integrator-agent`")),
    responses((status = 200, description = "The model", body = Object)))]
pub async fn model(
    _caller: OpenAiCaller,
    ApiPath(model): ApiPath<String>,
) -> Result<Json<Value>, OpenAiError> {
    if model == MODEL {
        Ok(Json(model_json()))
    } else {
        Err(OpenAiError::model_not_found(&model))
    }
}

/// A chat completion request, read and checked.
struct Completion {
    /// The last user message: the turn's message.
    message: String,
    /// Earlier user and assistant messages.
    context: Vec<ChatMessage>,
    /// System and developer messages, joined.
    instructions: Option<String>,
    stream: bool,
    include_usage: bool,
    session_id: Option<String>,
}

/// A message's text: a string, or the text parts of a list of parts.
fn text_of(content: Option<&Value>, at: usize) -> Result<String, OpenAiError> {
    let param = || format!("messages[{at}].content");
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(text))) => texts.push(text.as_str()),
                    _ => return Err(OpenAiError::invalid(
                        param(),
                        "Only text content parts ({\"type\": \"text\", \"text\": …}) are supported",
                    )),
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(OpenAiError::invalid(
            param(),
            "A message's content must be a string or a list of text parts",
        )),
    }
}

impl Completion {
    fn parse(body: Value, headers: &HeaderMap) -> Result<Completion, OpenAiError> {
        let Value::Object(body) = body else {
            return Err(OpenAiError::invalid(
                "body",
                "The request body must be a JSON object",
            ));
        };
        match body.get("model") {
            Some(Value::String(model)) if model == MODEL => {}
            Some(Value::String(model)) => return Err(OpenAiError::model_not_found(model)),
            None | Some(Value::Null) => {
                return Err(OpenAiError::invalid(
                    "model",
                    format!("Missing required parameter 'model' (use '{MODEL}')"),
                ))
            }
            Some(_) => return Err(OpenAiError::invalid("model", "'model' must be a string")),
        }
        if let Some(n) = body.get("n").filter(|n| !n.is_null()) {
            if n.as_u64() != Some(1) {
                return Err(OpenAiError::invalid(
                    "n",
                    "Only one choice (n = 1) is supported",
                ));
            }
        }
        for field in ["tools", "functions"] {
            if body
                .get(field)
                .and_then(Value::as_array)
                .is_some_and(|tools| !tools.is_empty())
            {
                return Err(OpenAiError::invalid(
                    field,
                    "The agent calls its own tools; tools of the caller are not supported",
                ));
            }
        }
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => {
                return Err(OpenAiError::invalid(
                    "stream",
                    "'stream' must be true or false",
                ))
            }
        };
        let include_usage = match body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
        {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => {
                return Err(OpenAiError::invalid(
                    "stream_options.include_usage",
                    "'include_usage' must be true or false",
                ))
            }
        };
        let from_metadata = match body.get("metadata").and_then(|m| m.get("session_id")) {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => {
                return Err(OpenAiError::invalid(
                    "metadata.session_id",
                    "'session_id' must be a string",
                ))
            }
        };
        let from_header = match headers.get(SESSION_HEADER) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| {
                        OpenAiError::invalid(SESSION_HEADER, "X-Session-Id must be ASCII")
                    })?
                    .to_string(),
            ),
        };
        let messages = match body.get("messages") {
            Some(Value::Array(messages)) if !messages.is_empty() => messages,
            Some(Value::Array(_)) | None | Some(Value::Null) => {
                return Err(OpenAiError::invalid(
                    "messages",
                    "'messages' must hold at least one message, the last one from the user",
                ))
            }
            Some(_) => {
                return Err(OpenAiError::invalid(
                    "messages",
                    "'messages' must be a list",
                ))
            }
        };
        let mut context = Vec::new();
        let mut instructions = Vec::new();
        let last = messages.len() - 1;
        let mut message = String::new();
        for (at, entry) in messages.iter().enumerate() {
            let role = entry
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let text = text_of(entry.get("content"), at)?;
            match role {
                "user" if at == last => message = text,
                "user" => context.push(ChatMessage::User(text)),
                "assistant" => context.push(ChatMessage::Assistant {
                    content: text,
                    tool_calls: Vec::new(),
                }),
                "system" | "developer" => instructions.push(text),
                "tool" | "function" => {
                    return Err(OpenAiError::invalid(
                        format!("messages[{at}].role"),
                        "Tool results are not accepted: the agent calls its own tools",
                    ))
                }
                _ => {
                    return Err(OpenAiError::invalid(
                        format!("messages[{at}].role"),
                        "A message's role must be system, developer, user or assistant",
                    ))
                }
            }
        }
        if messages[last].get("role").and_then(Value::as_str) != Some("user")
            || message.trim().is_empty()
        {
            return Err(OpenAiError::invalid(
                "messages",
                "The last message must be a user message with text: it is what the agent answers",
            ));
        }
        Ok(Completion {
            message,
            context,
            instructions: (!instructions.is_empty()).then(|| instructions.join("\n\n")),
            stream,
            include_usage,
            session_id: from_header.or(from_metadata),
        })
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `POST /v1/chat/completions`: one agent turn.
/// The last user message is the turn's message;
/// a session named by `X-Session-Id` or `metadata.session_id` gives the context, otherwise
/// the request's earlier messages do (in a new session).
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", security(("bearer" = [])),
    request_body(content = Object, description = "An OpenAI chat completion request"),
    responses((status = 200, description = "The completion, or its chunks", body = Object)))]
pub async fn chat_completions(
    State(state): State<AppState>,
    OpenAiCaller(principal): OpenAiCaller,
    headers: HeaderMap,
    OpenAiBody(body): OpenAiBody,
) -> Result<Response, OpenAiError> {
    let completion = Completion::parse(body, &headers)?;
    let (session_id, new_session, context) = match &completion.session_id {
        Some(id) => (
            owned_session(&state, &principal, id).await?,
            false,
            Vec::new(),
        ),
        None => (store::new_session_id(), true, completion.context),
    };
    let system_prompt = completion
        .instructions
        .map(|text| format!("{}\n\n{text}", agent::DEFAULT_SYSTEM_PROMPT));
    let handle = state.agent.start(TurnRequest {
        principal,
        session_id: session_id.clone(),
        new_session,
        message: completion.message,
        include_tools: true,
        system_prompt,
        keep_running: false,
        tool_details: false,
        context,
    });
    let id = format!("chatcmpl-{}", handle.turn_id);
    let mut response = if completion.stream {
        stream(
            &state,
            handle,
            Chunker::new(id, session_id.clone(), completion.include_usage),
        )
        .await?
    } else {
        complete(handle, id, session_id.clone()).await?
    };
    if let Ok(value) = HeaderValue::from_str(&session_id) {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    Ok(response)
}

/// The whole answer as one `chat.completion`.
async fn complete(
    handle: TurnHandle,
    id: String,
    session_id: String,
) -> Result<Response, OpenAiError> {
    let answer = match fold(handle, session_id).await {
        Folded::Answer(answer) => answer,
        Folded::Refused { error, .. } => return Err(OpenAiError::insufficient_quota(error)),
        Folded::Gone(error) => return Err(error.into()),
    };
    if let Some(error) = answer.error {
        return Err(OpenAiError::agent_failed(error));
    }
    let usage = &answer.usage;
    Ok(Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": now_seconds(),
        "model": MODEL,
        "system_fingerprint": null,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.response, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        },
        "session_id": answer.session_id,
        "tools_used": answer.tools_used,
    }))
    .into_response())
}

/// Turns a turn's events into `chat.completion.chunk` events; the agent's phases and tool
/// calls become SSE comments, which SDKs skip.
struct Chunker {
    id: String,
    created: u64,
    session_id: String,
    include_usage: bool,
    prompt_tokens: u64,
    completion_tokens: u64,
    started: bool,
}

impl Chunker {
    fn new(id: String, session_id: String, include_usage: bool) -> Chunker {
        Chunker {
            id,
            created: now_seconds(),
            session_id,
            include_usage,
            prompt_tokens: 0,
            completion_tokens: 0,
            started: false,
        }
    }

    fn chunk(&self, choices: Value, usage: Option<Value>) -> Value {
        let mut chunk = Map::new();
        chunk.insert("id".into(), json!(self.id));
        chunk.insert("object".into(), json!("chat.completion.chunk"));
        chunk.insert("created".into(), json!(self.created));
        chunk.insert("model".into(), json!(MODEL));
        chunk.insert("system_fingerprint".into(), Value::Null);
        chunk.insert("choices".into(), choices);
        if let Some(usage) = usage {
            chunk.insert("usage".into(), usage);
        }
        chunk.insert("session_id".into(), json!(self.session_id));
        Value::Object(chunk)
    }

    fn put_data(buffer: &mut BytesMut, value: &Value) {
        buffer.put_slice(b"data: ");
        buffer.put_slice(value.to_string().as_bytes());
        buffer.put_slice(b"\n\n");
    }

    fn put_delta(&mut self, buffer: &mut BytesMut, delta: Value, finish_reason: Option<&str>) {
        if !self.started {
            self.started = true;
            let first = self.chunk(
                json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]),
                None,
            );
            Self::put_data(buffer, &first);
        }
        let chunk = self.chunk(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]),
            None,
        );
        Self::put_data(buffer, &chunk);
    }

    /// Writes what an event becomes; true after the stream's last event.
    fn put(&mut self, buffer: &mut BytesMut, event: &AgentEvent) -> bool {
        match event {
            AgentEvent::Session { .. } => {}
            AgentEvent::Phase { phase, .. } => {
                buffer.put_slice(format!(": phase {}\n\n", phase.name()).as_bytes())
            }
            AgentEvent::ToolStart { tool, .. } => {
                buffer.put_slice(format!(": tool_start {tool}\n\n").as_bytes())
            }
            AgentEvent::ToolEnd { tool, .. } => {
                buffer.put_slice(format!(": tool_end {tool}\n\n").as_bytes())
            }
            AgentEvent::Token { content } => {
                self.put_delta(buffer, json!({"content": content}), None)
            }
            AgentEvent::Usage {
                prompt_tokens,
                completion_tokens,
                ..
            } => {
                self.prompt_tokens += prompt_tokens;
                self.completion_tokens += completion_tokens;
            }
            AgentEvent::End => {
                self.put_delta(buffer, json!({}), Some("stop"));
                if self.include_usage {
                    let usage = json!({
                        "prompt_tokens": self.prompt_tokens,
                        "completion_tokens": self.completion_tokens,
                        "total_tokens": self.prompt_tokens + self.completion_tokens,
                    });
                    let last = self.chunk(json!([]), Some(usage));
                    Self::put_data(buffer, &last);
                }
                buffer.put_slice(b"data: [DONE]\n\n");
                return true;
            }
            AgentEvent::Error { message, code, .. } => {
                let error = match code {
                    Some(Code::CapExceeded) => OpenAiError::insufficient_quota(message.clone()),
                    _ => OpenAiError::agent_failed(message.clone()),
                };
                Self::put_data(buffer, &error.body());
                return true;
            }
        }
        false
    }
}

/// The answer as `chat.completion.chunk` events, ending with `data: [DONE]`; a turn refused
/// before it began is a plain error response.
async fn stream(
    state: &AppState,
    mut handle: TurnHandle,
    chunker: Chunker,
) -> Result<Response, OpenAiError> {
    // The turn's first event after `session` (which the stream does not show) decides between
    // a refusal and a stream.
    let deadline = tokio::time::Instant::now() + HEAD_WAITS_FOR_FIRST_EVENT;
    let first = loop {
        match tokio::time::timeout_at(deadline, handle.events.recv()).await {
            Ok(Some(next)) => match next.event {
                AgentEvent::Session { .. } => continue,
                AgentEvent::Error {
                    message,
                    code: Some(Code::CapExceeded),
                    ..
                } => return Err(OpenAiError::insufficient_quota(message)),
                AgentEvent::Error {
                    message,
                    code: Some(Code::NotFound),
                    ..
                } => return Err(ApiError::not_found(message).into()),
                event => break Some(event),
            },
            Ok(None) => {
                return Err(OpenAiError::agent_failed(
                    "The turn ended before it began".into(),
                ))
            }
            Err(_) => break None,
        }
    };
    let frames = futures::stream::unfold(Some((first, handle, chunker)), |state| async move {
        let (first, mut handle, mut chunker) = state?;
        let event = match first {
            Some(event) => event,
            None => handle.events.recv().await?.event,
        };
        let mut frame = BytesMut::new();
        let mut last = chunker.put(&mut frame, &event);
        while !last {
            let Ok(more) = handle.events.try_recv() else {
                break;
            };
            last = chunker.put(&mut frame, &more.event);
        }
        Some((frame.freeze(), (!last).then_some((None, handle, chunker))))
    });
    Ok(sse::response(
        frames,
        Duration::from_secs(state.config.sse_keepalive_seconds),
        state.connections.now(),
    ))
}
