//! The OpenAPI document and the HTML reference page rendered from it.
//!
//! The handlers' annotations give the operations, their bodies and their main answers. What
//! every operation shares is added here, from the same facts the server acts on, so that the
//! document stays true without each handler repeating it: the error answers that the
//! extractors, the authentication and the transport give (400, 401 with `WWW-Authenticate`,
//! 403, 404, 413, 414, 429 with `Retry-After`, 431, 500, 503), the application-level
//! `{"success": false, …}` answers beside the successful ones, the event stream's events, and
//! the schemas of bodies the handlers build as plain JSON. `clients/tests/test_openapi_conformance.py`
//! runs schemathesis against the real server to keep it so.

use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes;

/// Every 4xx/5xx body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A human sentence.
    pub error: String,
    /// Machine-readable: invalid_json, invalid_request, missing_field, invalid_field, invalid_path,
    /// invalid_query, missing_api_key, invalid_api_key, ai_disabled, api_access_disabled,
    /// not_found, payload_too_large, uri_too_long, headers_too_large, too_many_failed_attempts,
    /// internal_error, server_busy…
    pub code: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's id (also its `x-request-id` header), to quote when asking for help.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Integrator Agent API",
        description = "An AI agent for data integration: tools, chat, streaming, sessions. Authenticate with `Authorization: Bearer <API key>`. Every 4xx and 5xx answer is JSON (`ErrorBody`); refusals of a well-formed request (`cap_exceeded`, `permission_denied`, `tool_not_found`, `tool_failed`) are 200 with `success: false`."
    ),
    paths(
        routes::tools::list_tools,
        routes::tools::execute_tool,
        routes::chat::chat,
        routes::chat::chat_stream,
        routes::chat::create_session,
        routes::chat::list_sessions,
        routes::chat::session_chat,
        routes::chat::session_chat_stream,
        routes::chat::session_messages,
        routes::chat::delete_session,
        routes::chat::stop_session,
        routes::chat::rejoin_stream,
        routes::billing::set_api_key,
        routes::billing::get_api_key,
        routes::billing::delete_api_key,
        routes::billing::usage,
        routes::ops::health,
        routes::ops::metrics,
        routes::ops::openapi,
        routes::ops::docs,
        routes::downloads::index,
        routes::downloads::index_without_slash,
        routes::downloads::file,
        routes::workspace::runs,
        routes::workspace::run,
        routes::workspace::flows,
        routes::workspace::flow,
        routes::workspace::connections,
        routes::workspace::connection,
        routes::workspace::schedules,
        routes::openai::chat_completions,
        routes::openai::models,
        routes::openai::model,
    ),
    components(schemas(
        ErrorBody,
        routes::tools::ToolList,
        routes::tools::ToolDescription,
        routes::tools::ToolResult,
        routes::tools::ToolFailure,
        routes::ops::Health,
        routes::chat::ChatBody,
        routes::chat::ChatResponse,
        routes::chat::ChatUsage,
        routes::chat::SessionCreated,
        routes::chat::SessionSummary,
        routes::chat::SessionList,
        routes::chat::SessionMessage,
        routes::downloads::DownloadList,
        routes::downloads::DownloadEntry,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "tools", description = "List and execute agent tools directly"),
        (name = "chat", description = "One-shot chat with the agent, complete or streamed (SSE)"),
        (name = "sessions", description = "Persistent multi-turn conversations"),
        (name = "billing", description = "Own OpenAI keys and usage"),
        (name = "workspace", description = "The caller's tenant's runs, flows, connections and schedules as JSON"),
        (name = "operations", description = "Health, metrics, API description and client downloads"),
        (name = "openai", description = "OpenAI-compatible chat completions: any OpenAI SDK with `base_url` = this server + `/v1` and model `integrator-agent`; errors in OpenAI's shape")
    )
)]
struct ApiDoc;

/// The OpenAPI document as JSON.
pub fn document() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    complete(&mut document);
    document
}

const API: &str = "/rest/v1/ai-agent/api";

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn response(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

fn json_answer(description: &str, body: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": body } } })
}

fn one_of(names: &[&str]) -> Value {
    json!({ "oneOf": names.iter().map(|n| schema(n)).collect::<Vec<_>>() })
}

/// An error answer with the error body and, where the server sends them, headers.
fn error_answer(description: &str, headers: &[&str]) -> Value {
    let mut answer = json_answer(description, schema("ErrorBody"));
    if !headers.is_empty() {
        answer["headers"] = headers
            .iter()
            .map(|h| {
                (
                    h.to_string(),
                    json!({ "$ref": format!("#/components/headers/{h}") }),
                )
            })
            .collect::<Map<_, _>>()
            .into();
    }
    answer
}

/// The error answers every operation shares (components/responses), by status.
fn shared_responses() -> Map<String, Value> {
    let answers = [
        ("BadRequest", error_answer("Bad request: the body is not JSON or not a JSON object, a field is missing or invalid (named in `field`), or the path or query string cannot be read", &[])),
        ("Unauthorized", error_answer("Missing or malformed Authorization header (`missing_api_key`, `invalid_api_key`), or a key that is unknown, revoked or expired (`invalid_api_key`, one body for all three, so a leaked key cannot be confirmed)", &["WWW-Authenticate"])),
        ("Forbidden", error_answer("The key is valid but its user has no API access (`api_access_disabled`) or its account has AI features disabled (`ai_disabled`)", &[])),
        ("NotFound", error_answer("Not found (`not_found`)", &[])),
        ("PayloadTooLarge", error_answer("The body is larger than `body_limit` (`payload_too_large`)", &[])),
        ("UriTooLong", error_answer("The path and query string are longer than 8 KiB (`uri_too_long`)", &[])),
        ("TooManyRequests", error_answer("This client address sent too many invalid API keys (`too_many_failed_attempts`); retry after `Retry-After` seconds. Keys already known to be valid are not slowed", &["Retry-After"])),
        ("HeadersTooLarge", error_answer("More than 100 header fields or 32 KiB of headers (`headers_too_large`)", &[])),
        ("InternalError", error_answer("Internal server error (`internal_error`); retry, or contact support if it persists", &[])),
        ("ServerBusy", error_answer("The server is at its connection limit (`server_busy`); retry after `Retry-After` seconds", &["Retry-After"])),
    ];
    let openai = |description: &str, headers: &[&str]| {
        let mut answer = json_answer(description, schema("OpenAiErrorBody"));
        for header in headers {
            answer["headers"][*header] =
                json!({ "$ref": format!("#/components/headers/{header}") });
        }
        answer
    };
    let openai_answers = [
        ("OpenAiBadRequest", openai("Bad request (`type`: `invalid_request_error`; `param` names the field)", &[])),
        ("OpenAiUnauthorized", openai("Missing, unknown, revoked or expired key (`code`: `invalid_api_key`)", &["WWW-Authenticate"])),
        ("OpenAiForbidden", openai("No API access, or AI features disabled (`type`: `permission_error`)", &[])),
        ("OpenAiNotFound", openai("An unknown model (`model_not_found`) or a session that is not the caller's (`not_found`)", &[])),
        ("OpenAiTooManyRequests", openai("The tenant's allowance and wallet are spent (`insufficient_quota`, with `x-should-retry: false`), or too many invalid keys from this address (`too_many_failed_attempts`, with `Retry-After`)", &[])),
        ("OpenAiPayloadTooLarge", openai("The body is larger than `body_limit`", &[])),
        ("OpenAiAgentFailed", openai("The agent's turn failed, e.g. the language model provider failed (`type`: `server_error`, `code`: `agent_error`)", &[])),
    ];
    answers
        .into_iter()
        .chain(openai_answers)
        .map(|(name, answer)| (name.to_string(), answer))
        .collect()
}

fn shared_headers() -> Map<String, Value> {
    let headers = json!({
        "WWW-Authenticate": {
            "description": "`Bearer`: the scheme the API expects (RFC 6750)",
            "required": true,
            "schema": { "type": "string", "pattern": "^Bearer" }
        },
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "required": true,
            "schema": { "type": "integer", "minimum": 1 }
        }
    });
    match headers {
        Value::Object(headers) => headers,
        _ => Map::new(),
    }
}

/// Schemas of bodies the handlers build as plain JSON, and of the stream's events.
fn added_schemas() -> Value {
    let own_key_scope = json!({
        "type": "string",
        "enum": ["tenant", "global"],
        "description": "tenant: the caller's tenant's key (set by its admins); global: the instance's key (set by super_admins)"
    });
    let event = |kind: &str, description: &str, properties: Value, required: &[&str]| {
        let mut properties = match properties {
            Value::Object(properties) => properties,
            _ => Map::new(),
        };
        properties.insert("type".into(), json!({ "type": "string", "const": kind }));
        let mut required: Vec<&str> = required.to_vec();
        required.insert(0, "type");
        json!({
            "type": "object",
            "description": description,
            "required": required,
            "properties": properties,
            "additionalProperties": false
        })
    };
    let text = |description: &str| json!({ "type": "string", "description": description });
    let tokens = json!({ "type": "integer", "minimum": 0 });
    let usd = json!({ "type": "number", "description": "US dollars" });
    let nullable = |schema: Value| json!({ "oneOf": [schema, { "type": "null" }] });
    let string = json!({ "type": "string" });
    let time = json!({ "type": "string", "format": "date-time" });
    let page = |item: &str| {
        json!({
            "type": "object",
            "required": ["items", "has_more", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": schema(item) },
                "has_more": { "type": "boolean" },
                "next_cursor": {
                    "oneOf": [{ "type": "string" }, { "type": "null" }],
                    "description": "Give it back as `cursor` for the next page; null on the last page"
                }
            }
        })
    };
    let schedule = json!({
        "type": "object",
        "required": ["flow", "when", "cron", "every_seconds", "enabled", "next_run_at"],
        "properties": {
            "flow": string,
            "when": text("In words, e.g. `every 1h` or `cron \"0 2 * * *\"`"),
            "cron": nullable(string.clone()),
            "every_seconds": nullable(json!({ "type": "integer", "minimum": 1 })),
            "enabled": { "type": "boolean", "description": "Whether it fires (`disable schedule` stops it, keeping its settings)" },
            "next_run_at": nullable(time.clone())
        }
    });
    let workspace = json!({
        "Run": {
            "type": "object",
            "description": "A flow run, with its progress while it runs",
            "required": ["id", "flow", "status", "trigger", "started_by", "rows_read", "rows_written", "pages_fetched", "step", "started_at", "finished_at", "duration_ms", "error", "cancel_requested_by"],
            "properties": {
                "id": { "type": "integer" },
                "flow": string,
                "status": { "type": "string", "enum": ["running", "succeeded", "failed", "cancelled"] },
                "trigger": { "type": "string", "enum": ["manual", "schedule"] },
                "started_by": text("A user's email, `operator` or `schedule`"),
                "rows_read": tokens,
                "rows_written": tokens,
                "pages_fetched": tokens,
                "step": nullable(text("What a running run is doing now")),
                "started_at": time,
                "finished_at": nullable(time.clone()),
                "duration_ms": { "type": "integer", "minimum": 0, "description": "So far, while it runs" },
                "error": nullable(string.clone()),
                "cancel_requested_by": nullable(string.clone()),
                "log": { "type": "array", "items": string, "description": "Log lines (one run's view only)" }
            }
        },
        "RunPage": page("Run"),
        "Flow": {
            "type": "object",
            "required": ["name", "from", "to", "mode", "key", "map", "composer", "schedule", "updated_at"],
            "properties": {
                "name": string,
                "from": {
                    "type": "object",
                    "required": ["connection", "resource", "query"],
                    "properties": {
                        "connection": string,
                        "resource": nullable(string.clone()),
                        "query": nullable(string.clone())
                    }
                },
                "to": {
                    "type": "object",
                    "required": ["connection", "target"],
                    "properties": { "connection": string, "target": string }
                },
                "mode": { "type": "string", "enum": ["append", "replace", "upsert"] },
                "key": { "type": "array", "items": string },
                "map": nullable(json!({
                    "type": "array",
                    "items": { "type": "array", "items": string, "minItems": 2, "maxItems": 2 }
                })),
                "composer": { "type": "boolean" },
                "schedule": nullable(schema("Schedule")),
                "updated_at": time
            }
        },
        "FlowPage": page("Flow"),
        "Connection": {
            "type": "object",
            "description": "A connection; secrets are shown as `***`",
            "required": ["name", "type", "params", "placeholders", "updated_at"],
            "properties": {
                "name": string,
                "type": { "type": "string", "enum": ["http", "postgres", "sqlite", "file"] },
                "params": { "type": "object", "additionalProperties": string },
                "placeholders": { "type": "array", "items": string },
                "updated_at": time
            }
        },
        "ConnectionPage": page("Connection"),
        "Schedule": schedule,
        "SchedulePage": page("Schedule")
    });
    let mut schemas = json!({
        "ApplicationError": {
            "type": "object",
            "description": "An application-level failure, answered with status 200 as the seeds define: the request was well-formed but is refused (`cap_exceeded`, `permission_denied`, `tool_failed`, …).",
            "required": ["success", "error", "code"],
            "properties": {
                "success": { "type": "boolean", "const": false },
                "error": text("A human sentence"),
                "code": text("cap_exceeded, permission_denied, tool_failed, …")
            }
        },
        "SessionDeleted": {
            "type": "object",
            "required": ["session_id", "deleted"],
            "properties": {
                "session_id": { "type": "string" },
                "deleted": { "type": "boolean", "const": true }
            }
        },
        "SessionStopped": {
            "type": "object",
            "required": ["session_id", "stopped"],
            "properties": {
                "session_id": { "type": "string" },
                "stopped": { "type": "boolean", "description": "Whether a generation was running" }
            }
        },
        "OwnKeyInput": {
            "type": "object",
            "required": ["api_key"],
            "properties": {
                "api_key": {
                    "type": "string",
                    "minLength": 8,
                    "maxLength": 512,
                    // What the server checks after trimming the ends, except that its length
                    // counts bytes (a pattern counts characters).
                    "pattern": "^\\s*[^\\s\\u0000-\\u001f\\u007f-\\u009f]{8,512}\\s*$",
                    "description": "The provider key, e.g. sk-…: 8–512 bytes once spaces at either end are trimmed, no spaces or control characters"
                }
            }
        },
        "OwnKeyStatus": {
            "type": "object",
            "description": "Whether an own key applies to the caller's tenant; scope and masked form only when one does.",
            "required": ["configured"],
            "properties": {
                "configured": { "type": "boolean" },
                "scope": own_key_scope,
                "masked": text("The key's first three and last four characters, e.g. sk-…abcd")
            }
        },
        "OwnKeySet": {
            "type": "object",
            "required": ["success", "configured", "scope", "masked"],
            "properties": {
                "success": { "type": "boolean", "const": true },
                "configured": { "type": "boolean", "const": true },
                "scope": own_key_scope,
                "masked": text("The key's first three and last four characters, e.g. sk-…abcd")
            }
        },
        "OwnKeyDeleted": {
            "type": "object",
            "required": ["success", "deleted", "scope"],
            "properties": {
                "success": { "type": "boolean", "const": true },
                "deleted": { "type": "boolean", "description": "Whether there was a key to remove" },
                "scope": own_key_scope
            }
        },
        "ModelUsage": {
            "type": "object",
            "required": ["prompt_tokens", "completion_tokens", "cost_usd"],
            "properties": { "prompt_tokens": tokens, "completion_tokens": tokens, "cost_usd": usd }
        },
        "ToolUsage": {
            "type": "object",
            "required": ["calls", "cost_usd"],
            "properties": { "calls": { "type": "integer", "minimum": 0 }, "cost_usd": usd }
        },
        "UsageSection": {
            "type": "object",
            "description": "Usage of a user or a tenant this month.",
            "required": ["cost_usd", "own_key_cost_usd", "prompt_tokens", "completion_tokens", "by_model", "by_tool"],
            "properties": {
                "email": text("The user's (user sections)"),
                "name": text("The tenant's (tenant section)"),
                "tier": text("The tenant's subscription tier (tenant section)"),
                "cost_usd": usd,
                "own_key_cost_usd": { "type": "number", "description": "Of which billed to an own provider key (never capped)" },
                "prompt_tokens": tokens,
                "completion_tokens": tokens,
                "by_model": { "type": "object", "additionalProperties": schema("ModelUsage") },
                "by_tool": { "type": "object", "additionalProperties": schema("ToolUsage") },
                "users": { "type": "array", "items": schema("UsageSection"), "description": "Admins only: each user of the tenant" }
            }
        },
        "UsageReport": {
            "type": "object",
            "required": ["month", "user", "tenant", "allowance_usd", "allowance_used_usd", "allowance_left_usd", "wallet_usd", "own_key_active"],
            "properties": {
                "month": text("The billing month, YYYY-MM"),
                "user": schema("UsageSection"),
                "tenant": schema("UsageSection"),
                "allowance_usd": usd,
                "allowance_used_usd": usd,
                "allowance_left_usd": usd,
                "wallet_usd": usd,
                "own_key_active": { "type": "boolean" },
                "own_key_scope": own_key_scope
            }
        },
        "OpenAiErrorBody": {
            "type": "object",
            "description": "An error in OpenAI's shape, so that OpenAI SDKs raise their usual exceptions",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message", "type", "param", "code"],
                    "properties": {
                        "message": { "type": "string" },
                        "type": { "type": "string", "description": "invalid_request_error, permission_error, insufficient_quota, rate_limit_error, server_error" },
                        "param": { "type": ["string", "null"], "description": "The request field at fault" },
                        "code": { "type": ["string", "null"], "description": "invalid_api_key, model_not_found, insufficient_quota, agent_error, or the agent API's code" }
                    }
                },
                "request_id": { "type": "string" }
            }
        },
        "ChatCompletionRequest": {
            "type": "object",
            "description": "OpenAI's chat completion request. A request header `X-Session-Id` (or `metadata.session_id`) continues a stored session. The last message must be a `user` message; earlier `user`/`assistant` messages are context (or, with a named session, ignored: the session's history is the context); `system`/`developer` messages add to the agent's instructions. Other OpenAI parameters (temperature, max_tokens, …) are accepted and ignored.",
            "required": ["model", "messages"],
            "properties": {
                "model": { "type": "string", "const": "integrator-agent" },
                "messages": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["role", "content"],
                        "properties": {
                            "role": { "type": "string", "enum": ["system", "developer", "user", "assistant"] },
                            "content": {
                                "oneOf": [
                                    { "type": "string", "pattern": "[^\\s\\u0085]" },
                                    { "type": "array", "items": { "type": "object", "required": ["type", "text"], "properties": { "type": { "const": "text" }, "text": { "type": "string" } } } }
                                ]
                            }
                        }
                    }
                },
                "stream": { "type": "boolean" },
                "stream_options": { "type": "object", "properties": { "include_usage": { "type": "boolean" } } },
                "metadata": { "type": "object", "properties": { "session_id": { "type": "string", "description": "Continue this stored session (or send the `X-Session-Id` header)" } } },
                "n": { "type": "integer", "const": 1 }
            }
        },
        "ChatCompletion": {
            "type": "object",
            "description": "OpenAI's chat completion, with this server's `session_id` and `tools_used`",
            "required": ["id", "object", "created", "model", "choices", "usage", "session_id"],
            "properties": {
                "id": { "type": "string" },
                "object": { "const": "chat.completion" },
                "created": { "type": "integer" },
                "model": { "const": "integrator-agent" },
                "system_fingerprint": { "type": "null" },
                "choices": { "type": "array", "minItems": 1, "maxItems": 1, "items": {
                    "type": "object",
                    "required": ["index", "message", "finish_reason"],
                    "properties": {
                        "index": { "const": 0 },
                        "message": { "type": "object", "required": ["role", "content"], "properties": { "role": { "const": "assistant" }, "content": { "type": "string" }, "refusal": { "type": "null" } } },
                        "logprobs": { "type": "null" },
                        "finish_reason": { "const": "stop" }
                    }
                } },
                "usage": { "type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"], "properties": { "prompt_tokens": tokens, "completion_tokens": tokens, "total_tokens": tokens } },
                "session_id": { "type": "string" },
                "tools_used": { "type": "array", "items": { "type": "string" } }
            }
        },
        "ChatCompletionChunkEvent": {
            "type": "object",
            "description": "One event of a streamed completion: a `data:` line holding a `chat.completion.chunk` (role first, then content deltas, then `finish_reason: stop`, then with `stream_options.include_usage` a chunk with `usage` and no choices), or `[DONE]` last, or an OpenAI error object if the turn fails part way. Lines starting with `:` are comments: the agent's phases and tool calls (`: tool_start search_knowledge_base`) and keep-alives.",
            "required": ["data"],
            "properties": { "data": { "type": "string" } }
        },
        "ModelList": {
            "type": "object",
            "required": ["object", "data"],
            "properties": { "object": { "const": "list" }, "data": { "type": "array", "items": schema("Model") } }
        },
        "Model": {
            "type": "object",
            "required": ["id", "object", "created", "owned_by"],
            "properties": { "id": { "const": "integrator-agent" }, "object": { "const": "model" }, "created": { "type": "integer" }, "owned_by": { "type": "string" } }
        },
        "ServerSentEvent": {
            "type": "object",
            "description": "One event of a `text/event-stream` answer: a `data:` line holding one JSON object (an `AgentEvent`), its `id:` line (`TURN:SEQ`, for rejoining with `GET /sessions/{id}/stream`) and a blank line. Events carry no `event:` line (so their SSE type is `message`); lines starting with `:` are keep-alive comments. The stream ends after `end` or `error`. OpenAPI 3.1 has no keyword for an event stream's items; as OpenAPI 3.2's `itemSchema`, this schema describes one event, not the whole body.",
            "required": ["data"],
            "properties": {
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": schema("AgentEvent")
                },
                "event": { "type": "string", "const": "message" }
            }
        },
        "AgentEvent": {
            "description": "One event of an agent turn, told apart by `type`: `session` first, then any of `phase`, `tool_start`, `tool_end`, `token`, `usage`, and last `end` or `error`.",
            "oneOf": [
                schema("SessionEvent"), schema("PhaseEvent"), schema("ToolStartEvent"),
                schema("ToolEndEvent"), schema("TokenEvent"), schema("UsageEvent"),
                schema("EndEvent"), schema("ErrorEvent")
            ],
            "discriminator": {
                "propertyName": "type",
                "mapping": {
                    "session": "#/components/schemas/SessionEvent",
                    "phase": "#/components/schemas/PhaseEvent",
                    "tool_start": "#/components/schemas/ToolStartEvent",
                    "tool_end": "#/components/schemas/ToolEndEvent",
                    "token": "#/components/schemas/TokenEvent",
                    "usage": "#/components/schemas/UsageEvent",
                    "end": "#/components/schemas/EndEvent",
                    "error": "#/components/schemas/ErrorEvent"
                }
            }
        },
        "SessionEvent": event("session", "First event: the session this turn belongs to.",
            json!({ "session_id": text("Session ID (continue the conversation with it)") }), &["session_id"]),
        "PhaseEvent": event("phase", "Where the agent is in its turn.",
            json!({
                "phase": { "type": "string", "enum": ["thinking", "analyzing", "preparing"] },
                "message": text("A human message for the phase")
            }), &["phase", "message"]),
        "ToolStartEvent": event("tool_start", "A tool started executing.",
            json!({
                "tool": text("The tool's name"),
                "message": text("A human message"),
                "call_id": text("With `tool_details`: the call's id (its `tool_end` has the same)"),
                "arguments": { "description": "With `tool_details`: the call's arguments as the model gave them" }
            }), &["tool", "message"]),
        "ToolEndEvent": event("tool_end", "A tool finished executing.",
            json!({
                "tool": text("The tool's name"),
                "call_id": text("With `tool_details`: the call this ends"),
                "result": text("With `tool_details`: what the tool answered (its first 4,000 characters)")
            }), &["tool"]),
        "TokenEvent": event("token", "A piece of the answer; concatenate them all for the full text.",
            json!({ "content": { "type": "string" } }), &["content"]),
        "UsageEvent": event("usage", "Token usage of one model call; may appear several times in a turn.",
            json!({ "prompt_tokens": tokens, "completion_tokens": tokens, "model": text("Model used, e.g. gpt-4.1, or builtin") }),
            &["prompt_tokens", "completion_tokens", "model"]),
        "EndEvent": event("end", "The answer is complete; the stream closes.", json!({}), &[]),
        "ErrorEvent": event("error", "The turn failed; the stream closes. What was generated is kept, marked interrupted.",
            json!({
                "message": text("A human sentence"),
                "retryable": { "type": "boolean", "description": "Whether retrying the request may succeed" },
                "code": text("Machine-readable reason when there is one, e.g. cap_exceeded")
            }), &["message", "retryable"])
    });
    if let (Some(all), Value::Object(workspace)) = (schemas.as_object_mut(), workspace) {
        all.extend(workspace);
    }
    schemas
}

/// What an operation answers besides its own successes: derived from what it takes.
struct Shape {
    authenticated: bool,
    body: bool,
    path_parameters: bool,
    query_parameters: bool,
}

fn shape(operation: &Value) -> Shape {
    let parameters = operation
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let located = |place: &str| parameters.iter().any(|p| p["in"] == place);
    Shape {
        authenticated: operation.get("security").is_some(),
        body: operation.get("requestBody").is_some(),
        path_parameters: located("path"),
        query_parameters: located("query"),
    }
}

/// Adds the error answers an operation can give, by where they come from.
fn add_error_responses(path: &str, operation: &mut Value) {
    let shape = shape(operation);
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut add = |status: &str, name: &str, replace: bool| {
        if replace || !responses.contains_key(status) {
            responses.insert(status.to_string(), response(name));
        }
    };
    // The extractors: JSON bodies (axum's body limit), path segments and query strings that
    // cannot be decoded.
    if shape.body || shape.path_parameters || shape.query_parameters {
        add("400", "BadRequest", false);
    }
    if shape.body {
        add("413", "PayloadTooLarge", false);
    }
    // Every path parameter names something that may not exist: a session that is not the
    // caller's, a download. A tool name is the exception: an unknown one is answered 200 with
    // `tool_not_found`, as the seeds define.
    if shape.path_parameters && !path.contains("{tool_name}") {
        add("404", "NotFound", false);
    }
    // The OpenAI-compatible endpoints answer their own errors in OpenAI's shape.
    if path.starts_with("/v1/") {
        for (status, name) in [
            ("400", "OpenAiBadRequest"),
            ("401", "OpenAiUnauthorized"),
            ("403", "OpenAiForbidden"),
            ("404", "OpenAiNotFound"),
            ("429", "OpenAiTooManyRequests"),
        ] {
            add(status, name, true);
        }
        if shape.body {
            add("413", "OpenAiPayloadTooLarge", true);
            add("502", "OpenAiAgentFailed", true);
        }
    }
    // The `Caller` extractor: replaced so that the headers the server sends are declared.
    if shape.authenticated && !path.starts_with("/v1/") {
        add("401", "Unauthorized", true);
        add("403", "Forbidden", false);
        add("429", "TooManyRequests", true);
    }
    // The transport: limits on the request head (checked before routing), the connection cap
    // (every path but /health, which answers at the cap too) and handler failures.
    add("414", "UriTooLong", false);
    add("431", "HeadersTooLarge", false);
    add("500", "InternalError", false);
    if path != "/health" {
        add("503", "ServerBusy", false);
    }
    let mut sorted: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    responses.extend(sorted);
}

/// What an override changes in its operation.
type Patch = fn(&mut Value);

/// The answers and parameters the handlers' annotations cannot say (bodies built as plain
/// JSON, alternatives, the event stream), by method and path.
fn overrides() -> Vec<(&'static str, String, Patch)> {
    vec![
        ("get", format!("{API}/sessions"), |op| {
            // `IntoParams` places the paging fields in the path; they are query parameters,
            // whole numbers within these ranges (anything else is a 400 naming the field).
            op["parameters"] = json!([
                {
                    "name": "limit", "in": "query", "required": false,
                    "description": "Sessions per page, 1–100 (default 20)",
                    "schema": { "type": "integer", "minimum": 1, "maximum": 100, "default": 20 }
                },
                {
                    "name": "offset", "in": "query", "required": false,
                    "description": "Sessions to skip (default 0)",
                    "schema": { "type": "integer", "minimum": 0, "maximum": i32::MAX, "default": 0 }
                }
            ]);
        }),
        ("post", format!("{API}/tools/{{tool_name}}/execute"), |op| {
            op["responses"]["200"] = json_answer(
                "The tool's result, or an application-level failure (`success: false`): `tool_not_found` (with `available_tools`), `tool_failed`, `permission_denied`, `cap_exceeded`",
                one_of(&["ToolResult", "ToolFailure"]),
            );
            // An empty body counts as `{}` (tools without arguments).
            op["requestBody"]["required"] = json!(false);
            set_parameter_example(op, "tool_name", json!("search_knowledge_base"));
        }),
        ("post", format!("{API}/chat"), chat_answer),
        ("post", "/v1/chat/completions".to_string(), |op| {
            op["requestBody"] = json!({
                "required": true,
                "content": { "application/json": {
                    "schema": schema("ChatCompletionRequest"),
                    "example": { "model": "integrator-agent", "messages": [{ "role": "user", "content": "How do I create a REST API connection?" }] }
                } }
            });
            op["responses"]["200"] = json!({
                "description": "A `chat.completion` (`stream` false), or Server-Sent Events of `chat.completion.chunk`s ending with `data: [DONE]` (`stream` true). The session that stores the turn is in the `X-Session-Id` header.",
                "content": {
                    "application/json": { "schema": schema("ChatCompletion") },
                    "text/event-stream": { "schema": schema("ChatCompletionChunkEvent") }
                }
            });
        }),
        ("get", "/v1/models".to_string(), |op| {
            op["responses"]["200"] =
                json_answer("The one model, `integrator-agent`", schema("ModelList"));
        }),
        ("get", "/v1/models/{model}".to_string(), |op| {
            op["responses"]["200"] = json_answer("The model", schema("Model"));
        }),
        (
            "post",
            format!("{API}/sessions/{{session_id}}/chat"),
            chat_answer,
        ),
        ("post", format!("{API}/chat/stream"), stream_answer),
        (
            "post",
            format!("{API}/sessions/{{session_id}}/chat/stream"),
            stream_answer,
        ),
        ("delete", format!("{API}/sessions/{{session_id}}"), |op| {
            op["responses"]["200"] = json_answer("Deleted", schema("SessionDeleted"));
        }),
        (
            "post",
            format!("{API}/sessions/{{session_id}}/stop"),
            |op| {
                op["responses"]["200"] = json_answer(
                    "`stopped` says whether a generation was running",
                    schema("SessionStopped"),
                );
            },
        ),
        ("get", format!("{API}/usage"), |op| {
            op["responses"]["200"] = json_answer(
                "Cost and tokens by model and tool, allowance, wallet, own-key status",
                schema("UsageReport"),
            );
        }),
        ("get", format!("{API}/workspace/runs"), |op| {
            op["responses"]["200"] = json_answer("A page of runs, newest first", schema("RunPage"));
        }),
        ("get", format!("{API}/workspace/runs/{{id}}"), |op| {
            op["responses"]["200"] =
                json_answer("The run, with its progress and log", schema("Run"));
        }),
        ("get", format!("{API}/workspace/flows"), |op| {
            op["responses"]["200"] = json_answer("A page of flows, by name", schema("FlowPage"));
        }),
        ("get", format!("{API}/workspace/flows/{{name}}"), |op| {
            op["responses"]["200"] = json_answer("The flow", schema("Flow"));
        }),
        ("get", format!("{API}/workspace/connections"), |op| {
            op["responses"]["200"] = json_answer(
                "A page of connections, by name, secrets masked",
                schema("ConnectionPage"),
            );
        }),
        (
            "get",
            format!("{API}/workspace/connections/{{name}}"),
            |op| {
                op["responses"]["200"] =
                    json_answer("The connection, secrets masked", schema("Connection"));
            },
        ),
        ("get", format!("{API}/workspace/schedules"), |op| {
            op["responses"]["200"] =
                json_answer("A page of schedules, by flow name", schema("SchedulePage"));
        }),
        ("post", "/rest/v1/ai-agent/api-key".to_string(), |op| {
            op["requestBody"]["content"]["application/json"]["schema"] = schema("OwnKeyInput");
            op["responses"]["200"] = json_answer(
                "Stored (encrypted); shows only a masked form. A user or viewer gets `permission_denied` (`success: false`): only admins and super_admins may set keys",
                one_of(&["OwnKeySet", "ApplicationError"]),
            );
        }),
        ("get", "/rest/v1/ai-agent/api-key".to_string(), |op| {
            op["responses"]["200"] = json_answer(
                "Whether an own key applies to the caller's tenant, its scope and a masked form",
                schema("OwnKeyStatus"),
            );
        }),
        (
            "post",
            "/rest/v1/ai-agent/api-key/delete".to_string(),
            |op| {
                op["responses"]["200"] = json_answer(
                "Removed (or there was none); a user or viewer gets `permission_denied` (`success: false`): only admins and super_admins may remove keys",
                one_of(&["OwnKeyDeleted", "ApplicationError"]),
            );
            },
        ),
    ]
}

fn chat_answer(operation: &mut Value) {
    operation["responses"]["200"] = json_answer(
        "The agent's answer (with `error` when the turn failed), or `cap_exceeded` (`success: false`) when the usage cap is reached before the model is called",
        one_of(&["ChatResponse", "ApplicationError"]),
    );
}

fn stream_answer(operation: &mut Value) {
    operation["responses"]["200"] = json!({
        "description": "Server-Sent Events: each event a `data: {json}` line (an `AgentEvent` told apart by `type`: session, phase, tool_start, tool_end, token, usage, end, error) followed by its `id: TURN:SEQ` line (for `GET /sessions/{id}/stream`), with `:` keep-alive comments in silences. A refusal once the stream started (e.g. `cap_exceeded`) is an `error` event.",
        "content": { "text/event-stream": { "schema": schema("ServerSentEvent") } }
    });
}

fn set_parameter_example(operation: &mut Value, name: &str, example: Value) {
    if let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    {
        for parameter in parameters.iter_mut().filter(|p| p["name"] == name) {
            parameter["example"] = example.clone();
        }
    }
}

/// Patches schemas derived from Rust types where the server's answers and checks are narrower
/// than the types: fields skipped when absent are never `null`, the `success` flags are
/// constants, and a chat message must have a character that is not a space.
fn narrow_derived_schemas(schemas: &mut Map<String, Value>) {
    // Sets one keyword of one property (adding it when the derived schema lacks it).
    let mut set = |schema: &str, property: &str, keyword: &str, value: Value| {
        if let Some(property) = schemas
            .get_mut(schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{property}")))
            .and_then(Value::as_object_mut)
        {
            property.insert(keyword.to_string(), value);
        }
    };
    set("ErrorBody", "field", "type", json!("string"));
    // The codes, from the one table that decides them.
    let names = |refusals: bool| -> String {
        agent::Code::ALL
            .iter()
            .filter(|c| (c.kind() == agent::CodeKind::Refusal) == refusals)
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    set(
        "ErrorBody",
        "code",
        "description",
        json!(format!("Machine-readable: {}", names(false))),
    );
    set(
        "ApplicationError",
        "code",
        "description",
        json!(format!("Machine-readable: {}", names(true))),
    );
    set("ChatResponse", "error", "type", json!("string"));
    set("ToolFailure", "available_tools", "type", json!("array"));
    set("ToolFailure", "success", "const", json!(false));
    set("ToolResult", "success", "const", json!(true));
    // Rust's `trim` (the server's check) also counts U+0085 as a space; ECMA-262's `\s` does not.
    set("ChatBody", "message", "pattern", json!("[^\\s\\u0085]"));
}

/// Makes the generated document true to the server: see the module's documentation.
fn complete(document: &mut Value) {
    let Some(root) = document.as_object_mut() else {
        return;
    };
    let components = root.entry("components").or_insert_with(|| json!({}));
    if let Some(schemas) = components
        .as_object_mut()
        .map(|c| c.entry("schemas").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    {
        if let Value::Object(added) = added_schemas() {
            schemas.extend(added);
        }
        narrow_derived_schemas(schemas);
    }
    components["responses"] = Value::Object(shared_responses());
    components["headers"] = Value::Object(shared_headers());
    let Some(paths) = root.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (method, path, apply) in overrides() {
        if let Some(operation) = paths.get_mut(&path).and_then(|p| p.get_mut(method)) {
            apply(operation);
        }
    }
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            // A path segment is never empty (`/sessions//chat` reaches no handler).
            if let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            {
                for parameter in parameters.iter_mut().filter(|p| p["in"] == "path") {
                    parameter["schema"]["minLength"] = json!(1);
                }
            }
            add_error_responses(path, operation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent::{AgentEvent, Phase};

    fn operations(document: &Value) -> Vec<(String, String, Value)> {
        let mut found = Vec::new();
        for (path, item) in document["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                found.push((path.clone(), method.clone(), operation.clone()));
            }
        }
        found
    }

    #[test]
    fn every_override_finds_its_operation() {
        let generated = serde_json::to_value(ApiDoc::openapi()).expect("document");
        for (method, path, _) in overrides() {
            assert!(
                generated["paths"][&path][method].is_object(),
                "no operation {method} {path} for its override"
            );
        }
    }

    /// The paths the router serves, read from its source: `.route("…"` calls, those of the
    /// router nested under the API base with its prefix.
    fn routed_paths() -> Vec<String> {
        let source = include_str!("routes/mod.rs");
        let api_start = source.find("let api = Router::new()").unwrap_or(0);
        let api_end = source.find(".nest(API_BASE, api)").unwrap_or(0);
        let mut paths = Vec::new();
        for (at, _) in source.match_indices(".route(") {
            let rest = &source[at + ".route(".len()..];
            let Some(path) = rest
                .trim_start()
                .strip_prefix('"')
                .and_then(|r| r.split('"').next())
            else {
                continue;
            };
            if (api_start..api_end).contains(&at) {
                paths.push(format!("{API}{path}"));
            } else {
                paths.push(path.to_string());
            }
        }
        paths
    }

    #[test]
    fn every_routed_path_is_documented() {
        let document = document();
        let paths = routed_paths();
        assert!(paths.len() > 20, "{paths:?}");
        for path in paths {
            assert!(
                document["paths"][&path].is_object(),
                "{path} is served but not in /openapi.json: give its handler a #[utoipa::path] \
                 and list it in ApiDoc's paths (crates/server/src/openapi.rs)"
            );
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(document: &Value, value: &Value) {
            match value {
                Value::Object(map) => {
                    if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                        let pointer = reference.strip_prefix('#').expect("local reference");
                        assert!(document.pointer(pointer).is_some(), "{reference} dangles");
                    }
                    map.values().for_each(|v| walk(document, v));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(document, v)),
                _ => {}
            }
        }
        let document = document();
        walk(&document, &document);
        for mapping in document
            .pointer("/components/schemas/AgentEvent/discriminator/mapping")
            .and_then(Value::as_object)
            .expect("mapping")
            .values()
        {
            let pointer = mapping.as_str().and_then(|m| m.strip_prefix('#'));
            assert!(pointer.and_then(|p| document.pointer(p)).is_some());
        }
    }

    #[test]
    fn every_operation_declares_the_errors_it_can_answer() {
        let document = document();
        for (path, method, operation) in operations(&document) {
            let responses = operation["responses"].as_object().expect("responses");
            let has = |status: &str| responses.contains_key(status);
            let label = format!("{method} {path}");
            assert!(has("500") && has("414") && has("431"), "{label}");
            // /health answers 503 itself (the database is down), with its own body.
            assert!(has("503"), "{label}");
            // The OpenAI-compatible endpoints answer in OpenAI's error shape.
            let (unauthorized, too_many) = if path.starts_with("/v1/") {
                ("OpenAiUnauthorized", "OpenAiTooManyRequests")
            } else {
                ("Unauthorized", "TooManyRequests")
            };
            if operation.get("security").is_some() {
                assert_eq!(
                    responses["401"],
                    response(unauthorized),
                    "{label}: 401 must carry WWW-Authenticate"
                );
                assert!(has("403"), "{label}");
                assert_eq!(responses["429"], response(too_many), "{label}");
            }
            if operation.get("requestBody").is_some() {
                assert!(has("400") && has("413"), "{label}");
            }
            let keys: Vec<&String> = responses.keys().collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted, "{label}: responses in status order");
        }
        for name in ["Unauthorized", "OpenAiUnauthorized"] {
            let unauthorized = &document["components"]["responses"][name];
            assert!(
                unauthorized["headers"]["WWW-Authenticate"].is_object(),
                "{name}"
            );
        }
        assert!(
            document["components"]["headers"]["WWW-Authenticate"]["required"]
                .as_bool()
                .unwrap_or(false)
        );
    }

    #[test]
    fn derived_schemas_are_narrowed_to_what_the_server_does() {
        let document = document();
        let property = |schema: &str, name: &str| {
            document["components"]["schemas"][schema]["properties"][name].clone()
        };
        assert_eq!(property("ErrorBody", "field")["type"], json!("string"));
        assert_eq!(property("ChatResponse", "error")["type"], json!("string"));
        assert_eq!(
            property("ToolFailure", "available_tools")["type"],
            json!("array")
        );
        assert_eq!(property("ToolFailure", "success")["const"], json!(false));
        assert_eq!(property("ToolResult", "success")["const"], json!(true));
        assert_eq!(
            property("ChatBody", "message")["pattern"],
            json!("[^\\s\\u0085]")
        );
    }

    #[test]
    fn session_paging_is_in_the_query_string() {
        let document = document();
        let parameters = document["paths"]["/rest/v1/ai-agent/api/sessions"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .clone();
        let names: Vec<(&str, &str)> = parameters
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or(""),
                    p["in"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(names, [("limit", "query"), ("offset", "query")]);
    }

    #[test]
    fn streams_describe_their_events() {
        let document = document();
        for path in [
            "/rest/v1/ai-agent/api/chat/stream",
            "/rest/v1/ai-agent/api/sessions/{session_id}/chat/stream",
        ] {
            let ok = &document["paths"][path]["post"]["responses"]["200"]["content"];
            assert_eq!(
                ok["text/event-stream"]["schema"],
                schema("ServerSentEvent"),
                "{path}"
            );
        }
    }

    /// Checks a value against the small part of JSON Schema the event schemas use.
    fn conforms(document: &Value, schema: &Value, value: &Value) -> Result<(), String> {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let target = reference
                .strip_prefix('#')
                .and_then(|p| document.pointer(p))
                .ok_or(format!("{reference} dangles"))?;
            return conforms(document, target, value);
        }
        if let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) {
            let matching = alternatives
                .iter()
                .filter(|a| conforms(document, a, value).is_ok())
                .count();
            return (matching == 1)
                .then_some(())
                .ok_or(format!("{value} matches {matching} alternatives"));
        }
        let kind_ok = match schema.get("type").and_then(Value::as_str) {
            Some("object") => value.is_object(),
            Some("string") => value.is_string(),
            Some("integer") => value.is_u64() || value.is_i64(),
            Some("boolean") => value.is_boolean(),
            _ => true,
        };
        if !kind_ok {
            return Err(format!("{value} is not of type {}", schema["type"]));
        }
        if let Some(constant) = schema.get("const") {
            if constant != value {
                return Err(format!("{value} is not {constant}"));
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            if !values.contains(value) {
                return Err(format!("{value} is not one of {values:?}"));
            }
        }
        if let Some(object) = value.as_object() {
            let properties = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if !object.contains_key(name) {
                    return Err(format!("{value} lacks {name}"));
                }
            }
            for (name, field) in object {
                match properties.get(name) {
                    Some(property) => conforms(document, property, field)?,
                    None if schema["additionalProperties"] == json!(false) => {
                        return Err(format!("{value} has undeclared {name}"))
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }

    #[test]
    fn every_agent_event_matches_its_schema() {
        let document = document();
        let events = [
            AgentEvent::Session {
                session_id: "s".into(),
            },
            AgentEvent::phase(Phase::Thinking),
            AgentEvent::phase(Phase::Analyzing),
            AgentEvent::phase(Phase::Preparing),
            AgentEvent::ToolStart {
                tool: "search_knowledge_base".into(),
                message: "Searching...".into(),
                call_id: None,
                arguments: None,
            },
            AgentEvent::ToolStart {
                tool: "search_knowledge_base".into(),
                message: "Searching...".into(),
                call_id: Some("call_1".into()),
                arguments: Some(serde_json::json!({"query": "rest"})),
            },
            AgentEvent::ToolEnd {
                tool: "search_knowledge_base".into(),
                call_id: None,
                result: None,
            },
            AgentEvent::ToolEnd {
                tool: "search_knowledge_base".into(),
                call_id: Some("call_1".into()),
                result: Some("Based on the knowledge base…".into()),
            },
            AgentEvent::Token {
                content: "To ".into(),
            },
            AgentEvent::Usage {
                prompt_tokens: 1842,
                completion_tokens: 456,
                model: "gpt-4.1".into(),
            },
            AgentEvent::End,
            AgentEvent::Error {
                message: "AI usage cap exceeded".into(),
                retryable: false,
                code: Some(agent::Code::CapExceeded),
            },
            AgentEvent::Error {
                message: "upstream failed".into(),
                retryable: true,
                code: None,
            },
        ];
        for event in events {
            let value = serde_json::to_value(&event).expect("event");
            conforms(&document, &schema("AgentEvent"), &value)
                .unwrap_or_else(|e| panic!("{value}: {e}"));
        }
        let stray = json!({"type": "token", "content": "x", "extra": 1});
        assert!(conforms(&document, &schema("AgentEvent"), &stray).is_err());
    }
}
