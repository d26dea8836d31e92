//! What the MCP server answers: the REST tools, `ask_agent` (a whole agent turn, with progress
//! notifications), and the knowledge base as resources. Every call is made as the caller of
//! the HTTP request that carried it (the key the `/mcp` layer checked), through the same domain
//! code as the REST API: the same roles, tenant scope, billing and caps.

use std::borrow::Cow;
use std::sync::Arc;

use agent::{AgentEvent, Code, Principal, ToolContext, ToolError, TurnRequest};
use axum::http::request::Parts;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, JsonObject, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProgressToken, ProtocolVersion, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::{RoleServer, ServerHandler};
use serde_json::{json, Value};

use crate::routes::chat::{owned_session, Absorbed, ChatBody, ChatResponse};
use crate::state::AppState;

/// The tool that runs a whole agent turn.
pub const ASK_AGENT: &str = "ask_agent";

/// The protocol revisions spoken: 2025-11-25, and the two before it for older clients.
const VERSIONS: &[ProtocolVersion] = &[
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
];

/// One MCP session's handler (the SDK makes one per session).
#[derive(Clone)]
pub struct McpAgent {
    state: AppState,
    tools: Arc<[Tool]>,
}

impl McpAgent {
    pub fn new(state: AppState, tools: Arc<[Tool]>) -> McpAgent {
        McpAgent { state, tools }
    }
}

/// The tools as MCP lists them: the registry's, with hints of what each may change, and
/// `ask_agent`.
pub fn tool_list(state: &AppState) -> Vec<Tool> {
    let mut tools: Vec<Tool> = state
        .tools
        .list()
        .into_iter()
        .map(|info| {
            let schema = match info.parameters {
                Value::Object(schema) => schema,
                _ => JsonObject::new(),
            };
            Tool::new(info.name, info.description, schema).with_annotations(hints(info.name))
        })
        .collect();
    let schema = json!({
        "type": "object",
        "properties": {
            "message": {"type": "string", "minLength": 1, "description": "What to ask the agent, e.g. \"Create a flow that copies the orders API into PostgreSQL\""},
            "session_id": {"type": "string", "description": "Continue this session (from an earlier ask_agent, or POST /sessions); omit to start a new one"}
        },
        "required": ["message"]
    });
    let Value::Object(schema) = schema else {
        return tools;
    };
    tools.push(
        Tool::new(
            ASK_AGENT,
            "Ask the Integrator agent: it searches the knowledge base and templates, opens support tickets and works in your workspace (connections, flows, runs, schedules), then answers. Returns the answer and the session id to continue the conversation. Counts toward your usage caps.",
            schema,
        )
        .with_annotations(
            ToolAnnotations::with_title("Ask the Integrator agent")
                .read_only(false)
                .destructive(true)
                .idempotent(false)
                .open_world(true),
        ),
    );
    tools
}

/// What each tool may change, as hints for the client.
fn hints(tool: &str) -> ToolAnnotations {
    match tool {
        "search_knowledge_base" => ToolAnnotations::with_title("Search the knowledge base")
            .read_only(true)
            .open_world(false),
        "search_templates" => ToolAnnotations::with_title("Search the templates")
            .read_only(true)
            .open_world(false),
        "host_list_commands" => ToolAnnotations::with_title("List the workspace commands")
            .read_only(true)
            .open_world(false),
        "create_support_ticket" => ToolAnnotations::with_title("Create a support ticket")
            .read_only(false)
            .destructive(false)
            .idempotent(false)
            .open_world(true),
        "host_cli" => ToolAnnotations::with_title("Run a workspace command")
            .read_only(false)
            .destructive(true)
            .idempotent(false)
            .open_world(true),
        "import_template" => ToolAnnotations::with_title("Import a template")
            .read_only(false)
            .destructive(true)
            .idempotent(false)
            .open_world(false),
        _ => ToolAnnotations::new(),
    }
}

/// The caller the `/mcp` layer authenticated for this request.
fn caller(context: &RequestContext<RoleServer>) -> Result<Principal, ErrorData> {
    context
        .extensions
        .get::<Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>())
        .cloned()
        .ok_or_else(|| {
            ErrorData::internal_error("the request carries no authenticated caller", None)
        })
}

/// An application-level failure: a result with `isError`, its text naming the code.
fn failure(code: Code, message: impl std::fmt::Display) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!(
        "{}: {message}",
        code.name()
    ))])
}

impl ServerHandler for McpAgent {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
        .with_server_info(
            Implementation::new("integrator-agent", env!("CARGO_PKG_VERSION"))
                .with_title("Integrator Agent"),
        )
        .with_instructions(
            "Integrator Agent: an AI agent for data integration. Call ask_agent to have the agent \
             answer and act in your workspace (it chains the other tools itself), or call a tool \
             directly. Documents and templates are readable as resources.",
        )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(VERSIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        caller(&context)?;
        Ok(ListToolsResult::with_all_items(self.tools.to_vec()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let principal = caller(&context)?;
        let arguments = request.arguments.unwrap_or_default();
        if request.name == ASK_AGENT {
            return Ok(self.ask_agent(principal, arguments, &context).await.into());
        }
        if self.state.tools.get(&request.name).is_none() {
            return Err(ErrorData::invalid_params(
                format!("Unknown tool: {}; tools/list gives the tools", request.name),
                Some(json!({ "tool": request.name })),
            ));
        }
        let tool_context = ToolContext {
            principal,
            session_id: None,
        };
        let result = match self
            .state
            .tools
            .execute(&tool_context, &request.name, Value::Object(arguments))
            .await
        {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            // The message names the field at fault.
            Err(ToolError::InvalidArguments { code, message, .. }) => failure(code, message),
            Err(error) => failure(error.code(), &error),
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        caller(&context)?;
        let cursor = request.as_ref().and_then(|r| r.cursor.as_deref());
        super::resources::list(self.state.workspace.catalog(), cursor)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        caller(&context)?;
        super::resources::read(self.state.workspace.catalog(), &request.uri).map(Into::into)
    }
}

/// Sends progress notifications for a request that asked for them (a progress token).
struct Progress {
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
    count: u32,
}

impl Progress {
    async fn say(&mut self, message: String) {
        let Some(token) = self.token.clone() else {
            return;
        };
        self.count += 1;
        let params =
            ProgressNotificationParam::new(token, f64::from(self.count)).with_message(message);
        if let Err(error) = self.peer.notify_progress(params).await {
            tracing::debug!(%error, "could not send a progress notification");
        }
    }
}

impl McpAgent {
    /// Runs one agent turn in a new session or one of the caller's, saying what the agent does
    /// as progress; a cancelled request stops the turn (what was written is kept, interrupted).
    async fn ask_agent(
        &self,
        principal: Principal,
        arguments: JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        // The message is checked as every chat endpoint checks it.
        let message = match ChatBody::parse(json!({ "message": arguments.get("message") })) {
            Ok(body) => body.message,
            Err(error) => return failure(error.code, error.message),
        };
        let (session_id, new_session) = match arguments.get("session_id") {
            None | Some(Value::Null) => (store::new_session_id(), true),
            Some(Value::String(id)) => match owned_session(&self.state, &principal, id).await {
                Ok(id) => (id, false),
                Err(error) => return failure(error.code, error.message),
            },
            Some(_) => return failure(Code::InvalidField, "Field 'session_id' must be a string"),
        };
        let mut handle = self.state.agent.start(TurnRequest {
            principal,
            session_id: session_id.clone(),
            new_session,
            message,
            include_tools: true,
            system_prompt: None,
            keep_running: false,
            tool_details: false,
            context: Vec::new(),
        });
        let mut progress = Progress {
            peer: context.peer.clone(),
            token: context.meta.get_progress_token(),
            count: 0,
        };
        let mut answer = ChatResponse::empty(session_id);
        loop {
            let next = tokio::select! {
                next = handle.events.recv() => next,
                _ = context.ct.cancelled() => {
                    // Dropping the turn's handle stops it; what was written is kept.
                    drop(handle);
                    return failure(Code::ToolFailed, "The request was cancelled; the turn was stopped");
                }
            };
            let Some(next) = next else { break };
            let mut event = next.event;
            if let AgentEvent::Token { content } = &event {
                // Tokens already waiting go out in one notification.
                let mut text = content.clone();
                let mut after = None;
                while let Ok(more) = handle.events.try_recv() {
                    match more.event {
                        AgentEvent::Token { content } => text.push_str(&content),
                        other => {
                            after = Some(other);
                            break;
                        }
                    }
                }
                answer.response.push_str(&text);
                progress.say(format!("text: {text}")).await;
                match after {
                    Some(other) => event = other,
                    None => continue,
                }
            }
            match &event {
                AgentEvent::Phase { phase, .. } => {
                    progress.say(format!("phase: {}", phase.name())).await
                }
                AgentEvent::ToolStart { tool, .. } => {
                    progress.say(format!("tool_start: {tool}")).await
                }
                AgentEvent::ToolEnd { tool, .. } => progress.say(format!("tool_end: {tool}")).await,
                _ => {}
            }
            match answer.absorb(&event) {
                Absorbed::Going => {}
                Absorbed::Ended => break,
                Absorbed::Refused { error, code } => return failure(code, error),
                Absorbed::Gone(error) => return failure(error.code, error.message),
            }
        }
        finish(answer)
    }
}

/// The turn's answer as a tool result: the text and the answer's structure; a turn that
/// failed is an error result that keeps what was written.
fn finish(answer: ChatResponse) -> CallToolResult {
    let structured = json!({
        "answer": answer.response,
        "session_id": answer.session_id,
        "tools_used": answer.tools_used,
        "usage": {
            "prompt_tokens": answer.usage.prompt_tokens,
            "completion_tokens": answer.usage.completion_tokens,
            "model": answer.usage.model,
        },
    });
    let mut result = match &answer.error {
        Some(error) => failure(Code::ToolFailed, error),
        None => CallToolResult::success(vec![ContentBlock::text(answer.response)]),
    };
    result.structured_content = Some(structured);
    result
}
