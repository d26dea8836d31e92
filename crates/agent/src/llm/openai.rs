//! The OpenAI-compatible chat-completions client: streaming with tools, tolerant of the
//! protocol variations of OpenAI, Azure-style gateways, vLLM, Ollama and llama.cpp.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use serde::Deserialize;
use serde_json::Value;

use super::sse::SseDecoder;
use super::wire::CompletionsBody;
use super::{ChatDelta, ChatModel, ChatRequest, DeltaStream, LlmError};

/// The chat-completions address under a provider's base URL (e.g. `https://api.openai.com/v1`
/// + `/chat/completions`), parsed once when the server starts rather than for every call.
#[derive(Debug, Clone)]
pub struct CompletionsUrl(Result<reqwest::Url, String>);

impl CompletionsUrl {
    /// The address under `base_url`; one that does not parse fails each call that uses it.
    pub fn under(base_url: &str) -> CompletionsUrl {
        let text = format!("{}/chat/completions", base_url.trim_end_matches('/'));
        CompletionsUrl(
            reqwest::Url::parse(&text)
                .map_err(|e| format!("the provider's base URL '{base_url}' is not a URL: {e}")),
        )
    }
}

/// Where and how to reach the provider.
#[derive(Clone)]
pub struct OpenAiSettings {
    pub completions_url: CompletionsUrl,
    pub api_key: String,
    pub model: String,
    pub connect_timeout: Duration,
    /// Longest silence tolerated between two chunks of a stream.
    pub read_timeout: Duration,
}

impl std::fmt::Debug for OpenAiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSettings")
            .field("completions_url", &self.completions_url)
            .field("api_key", &"***")
            .field("model", &self.model)
            .finish()
    }
}

/// A chat model reached over HTTP.
pub struct OpenAiClient {
    settings: OpenAiSettings,
    http: reqwest::Client,
}

impl OpenAiClient {
    /// A client with the settings' timeouts.
    pub fn new(settings: OpenAiSettings, http: reqwest::Client) -> OpenAiClient {
        OpenAiClient { settings, http }
    }

    /// One shared HTTP client for all providers (connection pooling).
    pub fn http_client(connect_timeout: Duration, read_timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .read_timeout(read_timeout)
            .pool_max_idle_per_host(1024)
            // A provider's API answers where it is asked; a redirect is a base URL to correct
            // (and would be followed for every call), reported with its target instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    }

    fn redact(&self, text: &str) -> String {
        redact_key(text, &self.settings.api_key)
    }
}

/// Removes a key (and anything shaped like an OpenAI key) from text bound for logs or clients.
pub fn redact_key(text: &str, key: &str) -> String {
    let mut text = if key.len() >= 4 {
        text.replace(key, "***")
    } else {
        text.to_string()
    };
    while let Some(start) = text.find("sk-") {
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*'))
            .map(|i| start + i)
            .unwrap_or(text.len());
        text.replace_range(start..end, "sk_***");
    }
    text
}

#[async_trait]
impl ChatModel for OpenAiClient {
    fn model_name(&self) -> &str {
        &self.settings.model
    }

    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError> {
        let body = CompletionsBody::new(&self.settings.model, request);
        let url = match &self.settings.completions_url.0 {
            Ok(url) => url.clone(),
            Err(invalid) => return Err(LlmError::Protocol(invalid.clone())),
        };
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.settings.api_key)
            .header("Accept", "text/event-stream")
            .json(&body)
            .send()
            .await
            .map_err(|e| LlmError::Connection(self.redact(&e.without_url().to_string())))?;
        let status = response.status();
        if !status.is_success() {
            if status.is_redirection() {
                let target = response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("nowhere named");
                return Err(LlmError::Status {
                    status: status.as_u16(),
                    message: self.redact(&format!(
                        "a redirect to {target}: set OPENAI_BASE_URL to the address the provider serves"
                    )),
                    retry_after: None,
                });
            }
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let text = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    v.pointer("/error/message")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(LlmError::Status {
                status: status.as_u16(),
                message: self.redact(&message),
                retry_after,
            });
        }
        Ok(Box::pin(Deltas {
            body: Box::pin(response.bytes_stream()),
            decoder: SseDecoder::default(),
            ready: VecDeque::new(),
            done: false,
            finished: false,
            key: self.settings.api_key.clone(),
        }))
    }
}

type BodyStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The deltas of a streamed response, read as its bytes arrive: each read's events are parsed
/// at once and their deltas handed out one by one, up to `[DONE]`.
struct Deltas {
    body: BodyStream,
    decoder: SseDecoder,
    ready: VecDeque<Result<ChatDelta, LlmError>>,
    /// `[DONE]`, an error or the end of the body was read: nothing more comes.
    done: bool,
    /// A choice's `finish_reason` was read: the answer is complete even if the body then ends
    /// without `[DONE]` (as some OpenAI-compatible servers end it).
    finished: bool,
    key: String,
}

/// Why a body that ended before `[DONE]` or a finish reason is an error: the provider (or
/// something between) stopped half-way, and what came is not the whole answer.
const CUT_OFF: &str = "the model's stream ended before the answer was complete";

impl Stream for Deltas {
    type Item = Result<ChatDelta, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(delta) = this.ready.pop_front() {
                return Poll::Ready(Some(delta));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(this.body.as_mut().poll_next(cx)) {
                Some(Ok(bytes)) => {
                    let (ready, done, finished, key) = (
                        &mut this.ready,
                        &mut this.done,
                        &mut this.finished,
                        &this.key,
                    );
                    this.decoder.feed(&bytes, |data| {
                        if *done {
                            return;
                        }
                        match parse_chunk(data, key) {
                            Chunk::Deltas { deltas, finish } => {
                                *finished |= finish;
                                ready.extend(deltas.into_iter().map(Ok));
                            }
                            Chunk::Failed(error) => {
                                ready.push_back(Err(error));
                                *done = true;
                            }
                            Chunk::Done => *done = true,
                        }
                    });
                }
                Some(Err(e)) => {
                    let message = redact_key(&e.without_url().to_string(), &this.key);
                    this.ready.push_back(Err(LlmError::Connection(message)));
                    this.done = true;
                }
                None => {
                    if !this.finished {
                        this.ready
                            .push_back(Err(LlmError::Connection(CUT_OFF.to_string())));
                    }
                    this.done = true;
                }
            }
        }
    }
}

enum Chunk {
    /// What the chunk carries; `finish`: it has a choice's (non-empty) finish reason.
    Deltas {
        deltas: Vec<ChatDelta>,
        finish: bool,
    },
    Failed(LlmError),
    Done,
}

/// The parts of a streamed chunk the agent reads, borrowed from the text where it can be.
/// Every field may be missing or null; anything else about the chunk is ignored.
#[derive(Deserialize)]
struct ChunkBody<'a> {
    #[serde(default, borrow)]
    choices: Vec<ChoiceBody<'a>>,
    #[serde(default)]
    usage: Option<UsageBody>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChoiceBody<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaBody<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DeltaBody<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallBody>>,
}

#[derive(Deserialize)]
struct ToolCallBody {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionBody>,
}

#[derive(Deserialize)]
struct FunctionBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct UsageBody {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

/// Reads one `data:` payload leniently: no choices, usage on a chunk with choices, empty
/// finish reasons and missing fields are all fine. The usual chunk is read straight into
/// typed fields (one token's chunk costs little); one whose fields have unexpected types is
/// read again as a plain JSON value.
fn parse_chunk(data: &str, key: &str) -> Chunk {
    let data = data.trim();
    if data == "[DONE]" {
        return Chunk::Done;
    }
    if data.is_empty() {
        return Chunk::Deltas {
            deltas: Vec::new(),
            finish: false,
        };
    }
    match serde_json::from_str::<ChunkBody>(data) {
        Ok(body) if body.error.is_none() => return typed_deltas(body),
        _ => {}
    }
    let value: Value = match serde_json::from_str(data) {
        Ok(value) => value,
        Err(e) => return Chunk::Failed(LlmError::Protocol(format!("unreadable chunk: {e}"))),
    };
    if let Some(error) = value.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("error in stream");
        return Chunk::Failed(LlmError::Status {
            status: 502,
            message: redact_key(message, key),
            retry_after: None,
        });
    }
    let mut deltas = Vec::new();
    let finish = value
        .pointer("/choices/0/finish_reason")
        .and_then(Value::as_str)
        .is_some_and(|reason| !reason.is_empty());
    if let Some(delta) = value.pointer("/choices/0/delta") {
        if let Some(content) = delta.get("content").and_then(Value::as_str) {
            if !content.is_empty() {
                deltas.push(ChatDelta::Content(content.to_string()));
            }
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for (position, call) in calls.iter().enumerate() {
                let text = |pointer: &str| {
                    call.pointer(pointer)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                deltas.push(ChatDelta::ToolCall {
                    index: call
                        .get("index")
                        .and_then(Value::as_u64)
                        .unwrap_or(position as u64) as u32,
                    id: text("/id").filter(|id| !id.is_empty()),
                    name: text("/function/name").filter(|n| !n.is_empty()),
                    arguments: text("/function/arguments").unwrap_or_default(),
                });
            }
        }
    }
    if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
        let number = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
        deltas.push(ChatDelta::Usage {
            prompt_tokens: number("prompt_tokens"),
            completion_tokens: number("completion_tokens"),
        });
    }
    Chunk::Deltas { deltas, finish }
}

fn typed_deltas(body: ChunkBody) -> Chunk {
    let mut deltas = Vec::new();
    let choice = body.choices.into_iter().next();
    let finish = choice
        .as_ref()
        .and_then(|c| c.finish_reason.as_deref())
        .is_some_and(|reason| !reason.is_empty());
    if let Some(delta) = choice.and_then(|c| c.delta) {
        if let Some(content) = delta.content.filter(|c| !c.is_empty()) {
            deltas.push(ChatDelta::Content(content.into_owned()));
        }
        for (position, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
            let (name, arguments) = match call.function {
                Some(function) => (function.name, function.arguments),
                None => (None, None),
            };
            deltas.push(ChatDelta::ToolCall {
                index: call.index.unwrap_or(position as u64) as u32,
                id: call.id.filter(|id| !id.is_empty()),
                name: name.filter(|n| !n.is_empty()),
                arguments: arguments.unwrap_or_default(),
            });
        }
    }
    if let Some(usage) = body.usage {
        deltas.push(ChatDelta::Usage {
            prompt_tokens: usage.prompt_tokens.unwrap_or(0),
            completion_tokens: usage.completion_tokens.unwrap_or(0),
        });
    }
    Chunk::Deltas { deltas, finish }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deltas(data: &str) -> Vec<ChatDelta> {
        match parse_chunk(data, "sk-secret-key") {
            Chunk::Deltas { deltas, .. } => deltas,
            Chunk::Done => vec![],
            Chunk::Failed(e) => panic!("{e}"),
        }
    }

    #[test]
    fn parses_content_tool_calls_and_usage_leniently() {
        assert_eq!(
            deltas(r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":""}]}"#),
            vec![ChatDelta::Content("Hi".into())]
        );
        assert_eq!(
            deltas(
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"search","arguments":"{\"q"}}]}}]}"#
            ),
            vec![ChatDelta::ToolCall {
                index: 0,
                id: Some("c1".into()),
                name: Some("search".into()),
                arguments: "{\"q".into()
            }]
        );
        assert_eq!(
            deltas(r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}"#),
            vec![ChatDelta::Usage {
                prompt_tokens: 5,
                completion_tokens: 7
            }]
        );
        assert_eq!(deltas(r#"{"id":"x"}"#), vec![]);
        // Escapes, nulls, and fields of unexpected types (read by the plain-value path).
        assert_eq!(
            deltas(r#"{"choices":[{"delta":{"content":"a\"b\n","role":null}}],"usage":null}"#),
            vec![ChatDelta::Content("a\"b\n".into())]
        );
        assert_eq!(
            deltas(r#"{"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":"3"}}"#),
            vec![
                ChatDelta::Content("x".into()),
                ChatDelta::Usage {
                    prompt_tokens: 0,
                    completion_tokens: 0
                }
            ]
        );
        assert_eq!(
            deltas(r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"}"}}]}}]}"#),
            vec![ChatDelta::ToolCall {
                index: 0,
                id: None,
                name: None,
                arguments: "}".into()
            }]
        );
        assert!(matches!(
            parse_chunk(
                r#"{"error":{"message":"bad sk-secret-key"}}"#,
                "sk-secret-key"
            ),
            Chunk::Failed(LlmError::Status { .. })
        ));
        assert!(matches!(parse_chunk("[DONE]", ""), Chunk::Done));
        assert!(matches!(parse_chunk("{not json", ""), Chunk::Failed(_)));
    }

    #[test]
    fn a_finish_reason_marks_the_answer_complete() {
        let finish = |data: &str| match parse_chunk(data, "") {
            Chunk::Deltas { finish, .. } => finish,
            _ => panic!("not deltas: {data}"),
        };
        assert!(finish(
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#
        ));
        assert!(finish(
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#
        ));
        assert!(!finish(
            r#"{"choices":[{"delta":{"content":"a"},"finish_reason":null}]}"#
        ));
        assert!(!finish(
            r#"{"choices":[{"delta":{"content":"a"},"finish_reason":""}]}"#
        ));
        assert!(!finish(r#"{"choices":[],"usage":{"prompt_tokens":1}}"#));
        // The plain-value path (a field of an unexpected type) reads it too.
        assert!(finish(
            r#"{"choices":[{"delta":{},"finish_reason":"length"}],"usage":{"prompt_tokens":"3"}}"#
        ));
    }

    #[test]
    fn keys_never_survive_redaction() {
        let text = redact_key(
            "Incorrect API key provided: sk-secret-key and sk-proj-abc123",
            "sk-secret-key",
        );
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("abc123"), "{text}");
    }
}
