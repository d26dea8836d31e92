//! Language models behind one interface: a streaming chat completion with tools. The
//! OpenAI-compatible HTTP client and the builtin responder both implement it.

mod builtin;
mod intents;
mod openai;
mod sse;
pub mod tokens;
mod wire;

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use serde_json::Value;

pub use builtin::BuiltinModel;
pub use openai::{CompletionsUrl, OpenAiClient, OpenAiSettings};

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text, as the model wrote it.
    pub arguments: String,
}

/// One message of the model's context.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatMessage {
    System(String),
    User(String),
    Assistant {
        content: String,
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        call_id: String,
        content: String,
    },
}

impl ChatMessage {
    /// The text the message carries (for token estimates).
    pub fn text(&self) -> String {
        match self {
            ChatMessage::System(c) | ChatMessage::User(c) => c.clone(),
            ChatMessage::Tool { content, .. } => content.clone(),
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => {
                let mut text = content.clone();
                for call in tool_calls {
                    text.push_str(&call.name);
                    text.push_str(&call.arguments);
                }
                text
            }
        }
    }
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

/// One request to a model.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Empty: the model must answer in text.
    pub tools: Vec<ToolSpec>,
}

/// A piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatDelta {
    /// Answer text.
    Content(String),
    /// A fragment of a tool call; fragments with the same slot build one call.
    ToolCall {
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    /// Token usage of this call.
    Usage {
        prompt_tokens: u64,
        completion_tokens: u64,
    },
}

/// Why a model call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The provider answered with an error status.
    #[error("the language model provider answered {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// Seconds the provider asked us to wait.
        retry_after: Option<u64>,
    },
    /// The provider could not be reached or the connection broke.
    #[error("the language model provider could not be reached: {0}")]
    Connection(String),
    /// The provider sent something that is not the chat-completions protocol.
    #[error("the language model provider sent an invalid response: {0}")]
    Protocol(String),
}

impl LlmError {
    /// The kind of failure, as metrics label it.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Status { status: 429, .. } => "rate_limited",
            LlmError::Status { status, .. } if *status >= 500 => "server_error",
            LlmError::Status { .. } => "refused",
            LlmError::Connection(_) => "connection",
            LlmError::Protocol(_) => "protocol",
        }
    }

    /// Whether trying again may succeed (rate limits, server errors, broken connections).
    pub fn retryable(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => *status == 429 || *status >= 500,
            LlmError::Connection(_) => true,
            LlmError::Protocol(_) => false,
        }
    }
}

/// The stream of one model call.
pub type DeltaStream = Pin<Box<dyn Stream<Item = Result<ChatDelta, LlmError>> + Send>>;

/// A chat model.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// The name reported in `usage.model`.
    fn model_name(&self) -> &str;
    /// Starts a streamed completion.
    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError>;
}
