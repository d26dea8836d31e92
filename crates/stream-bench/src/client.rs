//! The streaming clients: the same client code goes either straight to the upstream (OpenAI
//! chunks) or through the server (`/chat/stream` SSE events), and measures each stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Barrier;

use crate::upstream::ID_MARKER;

/// Where the clients send their streams.
#[derive(Debug, Clone)]
pub enum Target {
    /// `POST {base}/chat/completions` on the upstream, as the server itself would call it.
    Direct { base_url: String },
    /// `POST {base}/rest/v1/ai-agent/api/chat/stream` on the server.
    Server { base_url: String, key: String },
    /// The same request to the bare relay (the floor, see `relay.rs`), which ignores the key.
    Floor { base_url: String, key: String },
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Direct { .. } => "direct",
            Target::Server { .. } => "server",
            Target::Floor { .. } => "floor",
        }
    }
}

/// What one stream measured.
#[derive(Debug, Clone)]
pub struct StreamResult {
    pub id: u64,
    pub start: Instant,
    /// When the first token's bytes arrived.
    pub first_token: Option<Instant>,
    pub end: Instant,
    pub tokens: usize,
    pub session_id: Option<String>,
    pub error: Option<String>,
}

impl StreamResult {
    pub fn ttft(&self) -> Option<Duration> {
        self.first_token.map(|t| t - self.start)
    }
}

/// Splits a byte stream into lines (`\n`, with an optional `\r` before it).
#[derive(Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
}

impl LineBuffer {
    /// Adds bytes and calls `line` for every complete line.
    pub fn push(&mut self, bytes: &[u8], mut line: impl FnMut(&str)) {
        self.buf.extend_from_slice(bytes);
        let mut consumed = 0;
        while let Some(pos) = self.buf[consumed..].iter().position(|&b| b == b'\n') {
            let mut text = &self.buf[consumed..consumed + pos];
            if text.last() == Some(&b'\r') {
                text = &text[..text.len() - 1];
            }
            line(&String::from_utf8_lossy(text));
            consumed += pos + 1;
        }
        self.buf.drain(..consumed);
    }
}

/// The system prompt sent on direct requests, about as long as the server's default one.
pub const DIRECT_SYSTEM_PROMPT: &str = "You are Integrator Agent, an expert assistant for data integration. \
You help users connect REST APIs, databases (PostgreSQL, SQLite) and files (CSV, JSON, NDJSON), build flows \
that move data between them, schedule those flows, and troubleshoot problems. Answer in concise Markdown.";

fn message(id: u64) -> String {
    format!("How do I load a CSV file into PostgreSQL? ({ID_MARKER}{id};)")
}

/// What a stream's lines told us so far.
#[derive(Default)]
struct Progress {
    first_token: Option<Instant>,
    tokens: usize,
    text: String,
    done: bool,
    session_id: Option<String>,
    error: Option<String>,
}

impl Progress {
    fn token(&mut self, content: &str) {
        if self.first_token.is_none() {
            self.first_token = Some(Instant::now());
        }
        self.tokens += 1;
        self.text.push_str(content);
    }

    /// An OpenAI chat-completions chunk line.
    fn direct_line(&mut self, line: &str) {
        let Some(data) = line.strip_prefix("data:") else {
            return;
        };
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return;
        }
        match serde_json::from_str::<Value>(data) {
            Ok(value) => {
                if let Some(content) = value
                    .pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
                    .filter(|c| !c.is_empty())
                {
                    self.token(content);
                }
            }
            Err(e) => self.fail(format!("unreadable chunk: {e}")),
        }
    }

    /// A `/chat/stream` SSE line.
    fn server_line(&mut self, line: &str) {
        let Some(data) = line.strip_prefix("data:") else {
            return;
        };
        let value = match serde_json::from_str::<Value>(data.trim()) {
            Ok(value) => value,
            Err(e) => return self.fail(format!("unreadable event: {e}")),
        };
        match value.get("type").and_then(Value::as_str) {
            Some("token") => {
                let content = value.get("content").and_then(Value::as_str).unwrap_or("");
                self.token(content);
            }
            Some("session") => {
                self.session_id = value
                    .get("session_id")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            Some("error") => {
                let message = value.get("message").and_then(Value::as_str).unwrap_or("?");
                self.fail(format!("error event: {message}"));
            }
            Some("end") => self.done = true,
            _ => {}
        }
    }

    fn fail(&mut self, error: String) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }
}

fn classify(error: &reqwest::Error) -> String {
    let kind = if error.is_connect() {
        "connect"
    } else if error.is_timeout() {
        "timeout"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else if error.is_request() {
        "request"
    } else {
        "http"
    };
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    format!("{kind}: {text}")
}

/// Runs one stream to its end and measures it; the answer must be `expected_tokens` tokens
/// whose contents make `expected_text`.
pub async fn one_stream(
    client: &reqwest::Client,
    target: &Target,
    id: u64,
    (expected_tokens, expected_text): (usize, &str),
    timeout: Duration,
) -> StreamResult {
    let start = Instant::now();
    let mut progress = Progress::default();
    let run = async {
        let request = match target {
            Target::Direct { base_url } => client
                .post(format!("{base_url}/chat/completions"))
                .bearer_auth("sk-bench")
                .header("accept", "text/event-stream")
                .json(&json!({
                    "model": "gpt-bench",
                    "messages": [
                        {"role": "system", "content": DIRECT_SYSTEM_PROMPT},
                        {"role": "user", "content": message(id)},
                    ],
                    "stream": true,
                    "stream_options": {"include_usage": true},
                })),
            Target::Server { base_url, key } | Target::Floor { base_url, key } => client
                .post(format!("{base_url}/rest/v1/ai-agent/api/chat/stream"))
                .bearer_auth(key)
                .header("accept", "text/event-stream")
                .json(&json!({"message": message(id), "include_tools": false})),
        };
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => return progress.fail(classify(&e)),
        };
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(200).collect();
            return progress.fail(format!("status {status}: {body}"));
        }
        let mut lines = LineBuffer::default();
        loop {
            match response.chunk().await {
                Ok(Some(bytes)) => lines.push(&bytes, |line| match target {
                    Target::Direct { .. } => progress.direct_line(line),
                    Target::Server { .. } | Target::Floor { .. } => progress.server_line(line),
                }),
                Ok(None) => break,
                Err(e) => return progress.fail(classify(&e)),
            }
        }
    };
    if tokio::time::timeout(timeout, run).await.is_err() {
        progress.fail(format!("timeout: no end after {timeout:?}"));
    }
    if progress.error.is_none() {
        if !progress.done {
            progress.fail("truncated: the stream closed before its end".to_string());
        } else if progress.tokens != expected_tokens {
            progress.fail(format!(
                "tokens: received {} of {expected_tokens}",
                progress.tokens
            ));
        } else if progress.text != expected_text {
            progress.fail("tokens: the contents differ from the upstream's answer".to_string());
        }
    }
    StreamResult {
        id,
        start,
        first_token: progress.first_token,
        end: Instant::now(),
        tokens: progress.tokens,
        session_id: progress.session_id,
        error: progress.error,
    }
}

/// A client for one run: HTTP/1.1 with keep-alive, as many connections as streams.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(timeout)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .expect("http client")
}

/// What one run (N clients × rounds streams) measured.
pub struct Run {
    pub results: Vec<StreamResult>,
    pub wall: Duration,
}

/// `clients` concurrent clients, started together, each running `rounds` streams back to back.
/// Stream ids are `first_id..first_id + clients * rounds`.
pub async fn run(
    target: &Target,
    clients: usize,
    rounds: usize,
    first_id: u64,
    expected_tokens: usize,
    timeout: Duration,
) -> Run {
    let client = http_client(timeout);
    let answer: Arc<str> = crate::upstream::full_answer(expected_tokens).into();
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let client = client.clone();
        let target = target.clone();
        let barrier = barrier.clone();
        let answer = answer.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut results = Vec::with_capacity(rounds);
            for r in 0..rounds {
                let id = first_id + (r * clients + c) as u64;
                let expected = (expected_tokens, &*answer);
                results.push(one_stream(&client, &target, id, expected, timeout).await);
            }
            results
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut results = Vec::with_capacity(clients * rounds);
    for task in tasks {
        match task.await {
            Ok(mut batch) => results.append(&mut batch),
            Err(e) => eprintln!("a client task failed: {e}"),
        }
    }
    Run {
        wall: started.elapsed(),
        results,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_chunks() {
        let mut buffer = LineBuffer::default();
        let mut lines = Vec::new();
        buffer.push(b"data: {\"a\"", |l| lines.push(l.to_string()));
        assert!(lines.is_empty());
        buffer.push(b":1}\r\n\ndata: x\n", |l| lines.push(l.to_string()));
        assert_eq!(lines, ["data: {\"a\":1}", "", "data: x"]);
    }

    #[test]
    fn reads_server_events_and_openai_chunks() {
        let mut server = Progress::default();
        for line in [
            r#"data: {"type":"session","session_id":"s1"}"#,
            ": keep-alive",
            r#"data: {"type":"phase","phase":"thinking"}"#,
            r#"data: {"type":"token","content":"tok1 "}"#,
            r#"data: {"type":"token","content":"tok2 "}"#,
            r#"data: {"type":"end"}"#,
        ] {
            server.server_line(line);
        }
        assert_eq!(server.tokens, 2);
        assert_eq!(server.text, "tok1 tok2 ");
        assert_eq!(server.session_id.as_deref(), Some("s1"));
        assert!(server.done && server.error.is_none() && server.first_token.is_some());

        let mut direct = Progress::default();
        for line in [
            r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"data: {"choices":[{"index":0,"delta":{"content":"tok1 "}}]}"#,
            r#"data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
            "data: [DONE]",
        ] {
            direct.direct_line(line);
        }
        assert_eq!(direct.tokens, 1);
        assert!(direct.done && direct.error.is_none());

        let mut failed = Progress::default();
        failed.server_line(r#"data: {"type":"error","message":"boom","retryable":true}"#);
        assert_eq!(failed.error.as_deref(), Some("error event: boom"));
    }
}
