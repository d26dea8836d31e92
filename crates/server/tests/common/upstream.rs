//! A scripted OpenAI-compatible chat-completions server on a loopback port: streamed tokens,
//! fragmented tool-call deltas, usage chunks, error statuses, slow and broken streams, and a
//! record of every request it received.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A stream of `data:` payloads, each after `delay`, ended as `end` says.
    Stream {
        chunks: Vec<Value>,
        delay: Duration,
        end: StreamEnd,
    },
    /// An error status with an OpenAI-style body.
    Status {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// A redirect elsewhere.
    Redirect { status: u16, location: String },
}

/// How a scripted stream ends after its last chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// `data: [DONE]`.
    Done,
    /// The connection breaks (the body fails).
    Broken,
    /// The body just ends, complete as HTTP but without `[DONE]`.
    Closed,
}

fn chunk_with_delta(delta: Value) -> Value {
    json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
}

fn usage_chunk(prompt: u64, completion: u64) -> Value {
    json!({"id": "chatcmpl-test", "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})
}

impl Reply {
    /// An answer streamed as these tokens, then a usage chunk.
    pub fn text(tokens: &[&str]) -> Reply {
        let mut chunks = vec![chunk_with_delta(
            json!({"role": "assistant", "content": ""}),
        )];
        chunks.extend(
            tokens
                .iter()
                .map(|t| chunk_with_delta(json!({"content": t}))),
        );
        chunks.push(json!({"id": "chatcmpl-test", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
        chunks.push(usage_chunk(100, tokens.len() as u64));
        Reply::Stream {
            chunks,
            delay: Duration::ZERO,
            end: StreamEnd::Done,
        }
    }

    /// An answer with the usage the provider reports for it.
    pub fn text_with_usage(tokens: &[&str], prompt: u64, completion: u64) -> Reply {
        match Reply::text(tokens) {
            Reply::Stream {
                mut chunks,
                delay,
                end,
            } => {
                if let Some(last) = chunks.last_mut() {
                    *last = usage_chunk(prompt, completion);
                }
                Reply::Stream { chunks, delay, end }
            }
            other => other,
        }
    }

    /// Tool calls, each call's arguments split into three fragments across chunks.
    pub fn tool_calls(calls: &[(&str, &str, Value)]) -> Reply {
        let mut chunks = Vec::new();
        for (index, (id, name, arguments)) in calls.iter().enumerate() {
            let text = arguments.to_string();
            let cut1 = text.len() / 3;
            let cut2 = 2 * text.len() / 3;
            chunks.push(chunk_with_delta(json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": &text[..cut1]}}]})));
            chunks.push(chunk_with_delta(json!({"tool_calls": [{"index": index, "function": {"arguments": &text[cut1..cut2]}}]})));
            chunks.push(chunk_with_delta(
                json!({"tool_calls": [{"index": index, "function": {"arguments": &text[cut2..]}}]}),
            ));
        }
        chunks.push(json!({"id": "chatcmpl-test", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}));
        chunks.push(usage_chunk(200, 20));
        Reply::Stream {
            chunks,
            delay: Duration::ZERO,
            end: StreamEnd::Done,
        }
    }

    /// Some text first (as models often write a sentence before calling tools), then tool calls.
    pub fn text_then_tool_calls(tokens: &[&str], calls: &[(&str, &str, Value)]) -> Reply {
        match Reply::tool_calls(calls) {
            Reply::Stream { chunks, delay, end } => {
                let mut text: Vec<Value> = tokens
                    .iter()
                    .map(|t| chunk_with_delta(json!({"content": t})))
                    .collect();
                text.extend(chunks);
                Reply::Stream {
                    chunks: text,
                    delay,
                    end,
                }
            }
            other => other,
        }
    }

    /// Tokens sent slowly, one every `delay`.
    pub fn slow_text(tokens: &[&str], delay: Duration) -> Reply {
        match Reply::text(tokens) {
            Reply::Stream { chunks, end, .. } => Reply::Stream { chunks, delay, end },
            other => other,
        }
    }

    /// Tokens, then the connection breaks (no `[DONE]`, no usage).
    pub fn broken_after(tokens: &[&str]) -> Reply {
        let chunks = tokens
            .iter()
            .map(|t| chunk_with_delta(json!({"content": t})))
            .collect();
        Reply::Stream {
            chunks,
            delay: Duration::from_millis(20),
            end: StreamEnd::Broken,
        }
    }

    /// Tokens, then the body ends cleanly: no finish reason, no usage, no `[DONE]` (a
    /// provider that stopped half-way).
    pub fn cut_off_after(tokens: &[&str]) -> Reply {
        Reply::broken_after(tokens).ended_by(StreamEnd::Closed)
    }

    /// A complete answer whose body ends after its finish reason and usage without
    /// `[DONE]`, as some OpenAI-compatible servers send it.
    pub fn text_without_done(tokens: &[&str]) -> Reply {
        Reply::text(tokens).ended_by(StreamEnd::Closed)
    }

    /// The same stream, ended as `end` says.
    fn ended_by(self, end: StreamEnd) -> Reply {
        match self {
            Reply::Stream { chunks, delay, .. } => Reply::Stream { chunks, delay, end },
            other => other,
        }
    }

    /// An error status.
    pub fn status(status: u16, message: &str) -> Reply {
        Reply::Status {
            status,
            message: message.to_string(),
            retry_after: None,
        }
    }

    /// A redirect to `location`.
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::Redirect {
            status,
            location: location.to_string(),
        }
    }
}

/// A request the upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    /// Streams whose body was dropped before it finished (the client went away).
    abandoned: AtomicUsize,
}

/// The running scripted upstream.
pub struct Upstream {
    /// The base URL to give the server as `OPENAI_BASE_URL`.
    pub base_url: String,
    shared: Arc<Shared>,
}

impl Upstream {
    /// Starts the upstream on a free loopback port.
    pub async fn start() -> Upstream {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let base_url = format!("http://{}/v1", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Upstream { base_url, shared }
    }

    /// Queues answers, used in order; with the queue empty the upstream answers "OK".
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().expect("lock").extend(replies);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("lock").clone()
    }

    /// How many streams were abandoned by the client before they finished.
    pub fn abandoned(&self) -> usize {
        self.shared.abandoned.load(Ordering::SeqCst)
    }
}

struct AbandonGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    shared.requests.lock().expect("lock").push(Recorded {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    });
    let reply = shared
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or_else(|| Reply::text(&["OK"]));
    match reply {
        Reply::Status {
            status,
            message,
            retry_after,
        } => {
            let mut response = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                Json(json!({"error": {"message": message, "type": "test_error"}})),
            )
                .into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", seconds.to_string().parse().expect("header"));
            }
            response
        }
        Reply::Redirect { status, location } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT),
            [("location", location)],
        )
            .into_response(),
        Reply::Stream { chunks, delay, end } => {
            let guard = AbandonGuard {
                shared: shared.clone(),
                finished: false,
            };
            let total = chunks.len();
            let stream = futures::stream::unfold(
                (chunks.into_iter().enumerate(), guard),
                move |(mut chunks, mut guard)| async move {
                    match chunks.next() {
                        Some((n, chunk)) => {
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            let mut text = format!("data: {chunk}\n\n");
                            if n + 1 == total && end != StreamEnd::Broken {
                                if end == StreamEnd::Done {
                                    text.push_str("data: [DONE]\n\n");
                                }
                                guard.finished = true;
                            }
                            Some((Ok::<_, std::io::Error>(text), (chunks, guard)))
                        }
                        None if end != StreamEnd::Broken => None,
                        None => {
                            // Let the last chunk reach the client before the connection breaks.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            guard.finished = true;
                            Some((
                                Err(std::io::Error::other("connection broken by the script")),
                                (chunks, guard),
                            ))
                        }
                    }
                },
            );
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .expect("response")
        }
    }
}
