//! The request body of an OpenAI-compatible chat completion, serialised straight from the
//! turn's messages and tools (borrowed, no intermediate JSON tree).

use serde::Serialize;
use serde_json::Value;

use super::{ChatMessage, ChatRequest, ToolCall, ToolSpec};

/// `POST /chat/completions` with streaming and the usage chunk asked for.
#[derive(Serialize)]
pub(super) struct CompletionsBody<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    stream: bool,
    stream_options: StreamOptions,
    /// Left out when the model must answer in text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
}

impl<'a> CompletionsBody<'a> {
    pub(super) fn new(model: &'a str, request: &'a ChatRequest) -> CompletionsBody<'a> {
        CompletionsBody {
            model,
            messages: request.messages.iter().map(WireMessage::of).collect(),
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
            tools: request.tools.iter().map(WireTool::of).collect(),
        }
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum WireMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: &'a str,
    },
    Assistant {
        /// `null` for a message that only calls tools.
        content: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<WireToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: &'a str,
    },
}

impl<'a> WireMessage<'a> {
    fn of(message: &'a ChatMessage) -> WireMessage<'a> {
        match message {
            ChatMessage::System(content) => WireMessage::System { content },
            ChatMessage::User(content) => WireMessage::User { content },
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => WireMessage::Assistant {
                content: (!content.is_empty() || tool_calls.is_empty()).then_some(content.as_str()),
                tool_calls: tool_calls.iter().map(WireToolCall::of).collect(),
            },
            ChatMessage::Tool { call_id, content } => WireMessage::Tool {
                tool_call_id: call_id,
                content,
            },
        }
    }
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireCalledFunction<'a>,
}

impl<'a> WireToolCall<'a> {
    fn of(call: &'a ToolCall) -> WireToolCall<'a> {
        WireToolCall {
            id: &call.id,
            kind: "function",
            function: WireCalledFunction {
                name: &call.name,
                arguments: &call.arguments,
            },
        }
    }
}

#[derive(Serialize)]
struct WireCalledFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

impl<'a> WireTool<'a> {
    fn of(tool: &'a ToolSpec) -> WireTool<'a> {
        WireTool {
            kind: "function",
            function: WireFunction {
                name: &tool.name,
                description: &tool.description,
                parameters: &tool.parameters,
            },
        }
    }
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_turn_with_tool_rounds_reads_as_openai_messages() {
        let request = ChatRequest {
            messages: vec![
                ChatMessage::System("Be brief.".into()),
                ChatMessage::User("List my flows".into()),
                ChatMessage::Assistant {
                    content: String::new(),
                    tool_calls: vec![ToolCall {
                        id: "call_1".into(),
                        name: "list_flows".into(),
                        arguments: "{}".into(),
                    }],
                },
                ChatMessage::Tool {
                    call_id: "call_1".into(),
                    content: "[]".into(),
                },
                ChatMessage::Assistant {
                    content: String::new(),
                    tool_calls: Vec::new(),
                },
            ],
            tools: vec![ToolSpec {
                name: "list_flows".into(),
                description: "Lists flows".into(),
                parameters: json!({"type": "object", "properties": {}}),
            }],
        };
        let body = serde_json::to_value(CompletionsBody::new("gpt-4.1", &request)).expect("json");
        assert_eq!(
            body,
            json!({
                "model": "gpt-4.1",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "List my flows"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "list_flows", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "[]"},
                    {"role": "assistant", "content": ""},
                ],
                "stream": true,
                "stream_options": {"include_usage": true},
                "tools": [{"type": "function", "function": {
                    "name": "list_flows",
                    "description": "Lists flows",
                    "parameters": {"type": "object", "properties": {}},
                }}],
            })
        );
    }

    #[test]
    fn a_request_without_tools_sends_no_tools_field() {
        let request = ChatRequest {
            messages: vec![ChatMessage::User("hi".into())],
            tools: Vec::new(),
        };
        let body = serde_json::to_value(CompletionsBody::new("m", &request)).expect("json");
        assert!(body.get("tools").is_none(), "{body}");
    }
}
