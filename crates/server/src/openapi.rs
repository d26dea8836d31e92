//! The OpenAPI document (generated from the handlers' annotations) and the HTML reference
//! page rendered from it.

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes;

/// Every 4xx/5xx body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A human sentence.
    pub error: String,
    /// Machine-readable: invalid_json, missing_field, invalid_field, missing_api_key, invalid_api_key,
    /// api_key_expired, api_key_revoked, ai_disabled, api_access_disabled, not_found, payload_too_large…
    pub code: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
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
        description = "An AI agent for data integration: tools, chat, streaming, sessions. Authenticate with `Authorization: Bearer <API key>`."
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
        (name = "operations", description = "Health, metrics and API description")
    )
)]
struct ApiDoc;

/// The OpenAPI document as JSON.
pub fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn schema_name(reference: &Value) -> Option<String> {
    reference
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .map(str::to_string)
}

/// Renders the API reference page: every endpoint with its parameters, body and responses,
/// then every schema with its fields. Self-contained (no scripts, no external assets).
pub fn render_docs(document: &Value) -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Integrator Agent API reference</title>\
         <style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}\
         code,pre{background:#f4f4f4;padding:.1rem .3rem;border-radius:3px}h2{border-top:1px solid #ddd;padding-top:1rem}\
         .m{font-weight:bold;text-transform:uppercase;margin-right:.5rem}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}</style>\
         </head><body><h1>Integrator Agent API reference</h1>",
    );
    if let Some(description) = document
        .pointer("/info/description")
        .and_then(Value::as_str)
    {
        html.push_str(&format!("<p>{}</p>", escape(description)));
    }
    html.push_str("<p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>.</p>");
    if let Some(paths) = document.get("paths").and_then(Value::as_object) {
        for (path, operations) in paths {
            let Some(operations) = operations.as_object() else {
                continue;
            };
            for (method, operation) in operations {
                html.push_str(&format!(
                    "<h2><span class=\"m\">{}</span><code>{}</code></h2>",
                    escape(method),
                    escape(path)
                ));
                for key in ["summary", "description"] {
                    if let Some(text) = operation.get(key).and_then(Value::as_str) {
                        html.push_str(&format!("<p>{}</p>", escape(text)));
                    }
                }
                if operation.get("security").is_some() {
                    html.push_str(
                        "<p>Requires <code>Authorization: Bearer &lt;API key&gt;</code>.</p>",
                    );
                }
                if let Some(params) = operation.get("parameters").and_then(Value::as_array) {
                    html.push_str("<h3>Parameters</h3><ul>");
                    for param in params {
                        html.push_str(&format!(
                            "<li><code>{}</code> ({}) {}</li>",
                            escape(param.get("name").and_then(Value::as_str).unwrap_or("")),
                            escape(param.get("in").and_then(Value::as_str).unwrap_or("")),
                            escape(
                                param
                                    .get("description")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                            )
                        ));
                    }
                    html.push_str("</ul>");
                }
                if let Some(body) = operation.get("requestBody") {
                    html.push_str("<h3>Request body</h3>");
                    if let Some(text) = body.get("description").and_then(Value::as_str) {
                        html.push_str(&format!("<p>{}</p>", escape(text)));
                    }
                    if let Some(name) = body
                        .pointer("/content/application~1json/schema")
                        .and_then(schema_name)
                    {
                        html.push_str(&format!(
                            "<p>Schema: <a href=\"#{0}\">{0}</a></p>",
                            escape(&name)
                        ));
                    }
                }
                if let Some(responses) = operation.get("responses").and_then(Value::as_object) {
                    html.push_str("<h3>Responses</h3><table><tr><th>Status</th><th>Meaning</th><th>Body</th></tr>");
                    for (status, response) in responses {
                        let schema = response
                            .get("content")
                            .and_then(Value::as_object)
                            .and_then(|c| c.values().next())
                            .and_then(|c| c.get("schema"))
                            .and_then(schema_name)
                            .map(|n| format!("<a href=\"#{0}\">{0}</a>", escape(&n)))
                            .unwrap_or_default();
                        html.push_str(&format!(
                            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                            escape(status),
                            escape(
                                response
                                    .get("description")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                            ),
                            schema
                        ));
                    }
                    html.push_str("</table>");
                }
            }
        }
    }
    if let Some(schemas) = document
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        html.push_str("<h2>Schemas</h2>");
        for (name, schema) in schemas {
            html.push_str(&format!("<h3 id=\"{0}\">{0}</h3>", escape(name)));
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                html.push_str("<table><tr><th>Field</th><th>Type</th><th>Description</th></tr>");
                for (field, property) in properties {
                    let kind = property
                        .get("type")
                        .map(|t| t.to_string().replace('"', ""))
                        .or_else(|| schema_name(property))
                        .unwrap_or_default();
                    html.push_str(&format!(
                        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                        escape(field),
                        escape(&kind),
                        escape(
                            property
                                .get("description")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                        )
                    ));
                }
                html.push_str("</table>");
            }
        }
    }
    html.push_str("</body></html>");
    html
}
