//! `GET /tools` and `POST /tools/{tool_name}/execute`.

use agent::{Code, ToolContext, ToolError, ToolRegistry};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::{ApiError, Refusal};
use crate::openapi::ErrorBody;
use crate::params::ApiPath;
use crate::state::AppState;

/// One tool as listed by `GET /tools`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolDescription {
    /// Tool identifier for `/tools/{name}/execute`.
    pub name: String,
    /// What the tool does.
    pub description: String,
    /// JSON Schema of the tool's arguments.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// If true, calling this tool counts toward billing caps.
    pub agentic: bool,
}

/// The answer of `GET /tools`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolList {
    pub tools: Vec<ToolDescription>,
    /// Total number of tools.
    pub count: usize,
}

/// A successful tool execution.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolResult {
    pub tool: String,
    /// The tool's output (Markdown), the same text the agent sees.
    pub result: String,
    pub success: bool,
}

/// An application-level failure, returned with status 200.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolFailure {
    pub success: bool,
    pub error: String,
    /// tool_not_found, tool_failed, permission_denied, cap_exceeded
    pub code: String,
    /// Present with tool_not_found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_tools: Option<Vec<String>>,
}

/// Serialises the tool list once, at start.
pub fn tools_json(registry: &ToolRegistry) -> Vec<u8> {
    let tools: Vec<ToolDescription> = registry
        .list()
        .into_iter()
        .map(|t| ToolDescription {
            name: t.name.to_string(),
            description: t.description.to_string(),
            parameters: t.parameters,
            agentic: t.agentic,
        })
        .collect();
    let count = tools.len();
    serde_json::to_vec(&ToolList { tools, count }).unwrap_or_default()
}

/// Lists all available agent tools with their parameter schemas.
#[utoipa::path(
    get,
    path = "/rest/v1/ai-agent/api/tools",
    tag = "tools",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every tool with its argument schema", body = ToolList),
        (status = 401, description = "Missing, invalid, expired or revoked API key", body = ErrorBody),
        (status = 403, description = "AI features disabled or no API access", body = ErrorBody),
    )
)]
pub async fn list_tools(State(state): State<AppState>, _caller: Caller) -> Response {
    (
        [(CONTENT_TYPE, "application/json")],
        state.tools_json.clone(),
    )
        .into_response()
}

/// Executes one tool directly; the body must match the tool's parameter schema.
#[utoipa::path(
    post,
    path = "/rest/v1/ai-agent/api/tools/{tool_name}/execute",
    tag = "tools",
    security(("bearer" = [])),
    params(("tool_name" = String, Path, description = "The tool name, e.g. search_knowledge_base")),
    request_body(content = Object, description = "Arguments matching the tool's schema, e.g. {\"query\": \"how to create a REST API connection\"}"),
    responses(
        (status = 200, description = "The tool's result, or an application-level failure (success: false)", body = ToolResult),
        (status = 400, description = "Malformed JSON or arguments not matching the schema (names the field)", body = ErrorBody),
        (status = 401, description = "Missing, invalid, expired or revoked API key", body = ErrorBody),
        (status = 403, description = "AI features disabled or no API access", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
    )
)]
pub async fn execute_tool(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(tool_name): ApiPath<String>,
    JsonBody(arguments): JsonBody,
) -> Result<Response, ApiError> {
    if state.tools.get(&tool_name).is_none() {
        return Ok(Json(ToolFailure {
            success: false,
            error: format!("Tool not found: {tool_name}"),
            code: Code::ToolNotFound.name().into(),
            available_tools: Some(state.tools.names().into_iter().map(String::from).collect()),
        })
        .into_response());
    }
    let context = ToolContext {
        principal,
        session_id: None,
    };
    match state.tools.execute(&context, &tool_name, arguments).await {
        Ok(result) => Ok(Json(ToolResult {
            tool: tool_name,
            result,
            success: true,
        })
        .into_response()),
        Err(ToolError::InvalidArguments {
            code,
            field,
            message,
        }) => Err(ApiError {
            field,
            ..ApiError::new(code, message)
        }),
        Err(error) => Ok(Refusal::new(error.code(), error.to_string()).into_response()),
    }
}
