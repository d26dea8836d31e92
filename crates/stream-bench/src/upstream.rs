//! The fast scripted upstream: an OpenAI-compatible `POST /v1/chat/completions` that streams a
//! fixed answer of `tokens` content chunks, one every `delay`, then a usage chunk and `[DONE]`.
//!
//! Every request carries a stream id in its user message (`bench-stream-id:N;`), so the
//! upstream can record, on the same clock as the clients, when each stream's request arrived
//! and when its first token was handed to the connection. That splits the time to first token
//! into "before the upstream call" and "relaying the first token".

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;

/// The marker the clients put in the user message, followed by the stream id and `;`.
pub const ID_MARKER: &str = "bench-stream-id:";

/// When the upstream saw a stream.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The request was read (headers and body).
    pub arrived: Instant,
    /// The first content chunk was handed to the connection.
    pub first_token: Option<Instant>,
}

/// Counters of the upstream's streams.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub requests: u64,
    pub finished: u64,
    /// Streams whose body was dropped before `[DONE]` (the caller went away).
    pub abandoned: u64,
}

struct Shared {
    /// The chunks of the answer, pre-rendered: role chunk, `tokens` content chunks, tail.
    chunks: Vec<Bytes>,
    delay: Duration,
    timings: Mutex<HashMap<u64, Timing>>,
    requests: AtomicU64,
    finished: AtomicU64,
    abandoned: AtomicU64,
}

/// The running upstream.
pub struct Upstream {
    /// `http://127.0.0.1:PORT/v1`, to give the server as `OPENAI_BASE_URL`.
    pub base_url: String,
    shared: Arc<Shared>,
}

/// The text of content token `n` (1-based) of every answer.
pub fn token_text(n: usize) -> String {
    format!("tok{n} ")
}

/// The whole answer the upstream streams, as the server should store it.
pub fn full_answer(tokens: usize) -> String {
    (1..=tokens).map(token_text).collect()
}

fn render_chunks(tokens: usize, prompt_tokens: u64) -> Vec<Bytes> {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        serde_json::json!({
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "model": "gpt-bench",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    let mut chunks = Vec::with_capacity(tokens + 2);
    chunks.push(Bytes::from(format!(
        "data: {}\n\n",
        chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            None
        )
    )));
    for n in 1..=tokens {
        chunks.push(Bytes::from(format!(
            "data: {}\n\n",
            chunk(serde_json::json!({"content": token_text(n)}), None)
        )));
    }
    let usage = serde_json::json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens, "total_tokens": prompt_tokens + tokens as u64},
    });
    chunks.push(Bytes::from(format!(
        "data: {}\n\ndata: {usage}\n\ndata: [DONE]\n\n",
        chunk(serde_json::json!({}), Some("stop"))
    )));
    chunks
}

/// Finds `bench-stream-id:N;` in a request body.
pub fn find_id(body: &[u8]) -> Option<u64> {
    let marker = ID_MARKER.as_bytes();
    let start = body.windows(marker.len()).position(|w| w == marker)? + marker.len();
    let digits: Vec<u8> = body[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

impl Upstream {
    /// Starts the upstream on a free loopback port.
    pub async fn start(tokens: usize, delay: Duration) -> std::io::Result<Upstream> {
        let shared = Arc::new(Shared {
            chunks: render_chunks(tokens, 120),
            delay,
            timings: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // A fast upstream: small SSE writes go out at once (no Nagle delay).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Upstream {
            base_url: format!("http://{addr}/v1"),
            shared,
        })
    }

    /// Takes (and forgets) what was recorded for these stream ids.
    pub fn take_timings(&self) -> HashMap<u64, Timing> {
        std::mem::take(&mut *self.shared.timings.lock().expect("timings lock"))
    }

    /// Counters since start.
    pub fn counts(&self) -> Counts {
        Counts {
            requests: self.shared.requests.load(Ordering::Relaxed),
            finished: self.shared.finished.load(Ordering::Relaxed),
            abandoned: self.shared.abandoned.load(Ordering::Relaxed),
        }
    }
}

/// One answer being streamed; counts itself abandoned when dropped before the end.
struct Answer {
    shared: Arc<Shared>,
    id: Option<u64>,
    next: usize,
    finished: bool,
}

impl Drop for Answer {
    fn drop(&mut self) {
        let counter = if self.finished {
            &self.shared.finished
        } else {
            &self.shared.abandoned
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

async fn completions(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let arrived = Instant::now();
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let id = find_id(&body);
    if let Some(id) = id {
        shared.timings.lock().expect("timings lock").insert(
            id,
            Timing {
                arrived,
                first_token: None,
            },
        );
    }
    let answer = Answer {
        shared,
        id,
        next: 0,
        finished: false,
    };
    let stream = futures::stream::unfold(answer, |mut answer| async move {
        let n = answer.next;
        let chunk = answer.shared.chunks.get(n)?.clone();
        let last = n + 1 == answer.shared.chunks.len();
        // Content chunks (1..=tokens) are paced; the role chunk and the tail are not.
        if n > 0 && !last && !answer.shared.delay.is_zero() {
            tokio::time::sleep(answer.shared.delay).await;
        }
        if n == 1 {
            if let Some(id) = answer.id {
                if let Some(timing) = answer
                    .shared
                    .timings
                    .lock()
                    .expect("timings lock")
                    .get_mut(&id)
                {
                    timing.first_token = Some(Instant::now());
                }
            }
        }
        answer.next += 1;
        if last {
            answer.finished = true;
        }
        Some((Ok::<_, std::io::Error>(chunk), answer))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .expect("static response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_stream_id_in_a_body() {
        let body = br#"{"messages":[{"role":"user","content":"hello bench-stream-id:4711; go"}]}"#;
        assert_eq!(find_id(body), Some(4711));
        assert_eq!(find_id(b"no marker here"), None);
        assert_eq!(find_id(b"bench-stream-id:;"), None);
    }

    #[test]
    fn renders_tokens_then_usage_then_done() {
        let chunks = render_chunks(3, 10);
        assert_eq!(chunks.len(), 5);
        let second = std::str::from_utf8(&chunks[1]).expect("utf8");
        assert!(second.starts_with("data: {") && second.ends_with("\n\n"));
        assert!(second.contains(r#""content":"tok1 ""#), "{second}");
        let tail = std::str::from_utf8(&chunks[4]).expect("utf8");
        assert!(tail.contains(r#""completion_tokens":3"#), "{tail}");
        assert!(tail.ends_with("data: [DONE]\n\n"));
        assert_eq!(full_answer(3), "tok1 tok2 tok3 ");
    }
}
