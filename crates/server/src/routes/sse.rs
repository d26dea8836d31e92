//! Server-Sent Events bodies: each event a `data: {json}` line followed by its `id:` line and a
//! blank line, `: keep-alive` comments in silences.
//!
//! While many connections are open, a stream's connection closes after it: a client that keeps
//! many connections for reuse pays for it (Python's httpx, under the OpenAI SDK and most agent
//! frameworks, spent 5.5 ms of CPU per request with 50 kept connections against 1.45 ms with
//! none — see BENCHMARKS.md), and the server keeps fewer idle connections. With few open, the
//! connection is kept: a client streaming one answer after another saves the handshake.
//!
//! Events that are ready together leave together: after one event arrives, every event already
//! waiting behind it is written into the same body frame (one chunk, one write) rather than one
//! chunk each. Nothing waits for more to come, so no event is delayed; a client reading a fast
//! answer parses a few chunks instead of dozens.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, BytesMut};
use futures::{Stream, StreamExt};

/// A keep-alive comment.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
/// Open client connections above which a stream's connection is closed after it.
const KEEP_CONNECTIONS_UP_TO: usize = 4;

/// Appends one event: its JSON (one line: compact JSON has no newline) and its id.
pub fn put_event(buffer: &mut BytesMut, json: &str, id: &str) {
    buffer.reserve(json.len() + id.len() + 12);
    buffer.put_slice(b"data: ");
    buffer.put_slice(json.as_bytes());
    buffer.put_slice(b"\nid: ");
    buffer.put_slice(id.as_bytes());
    buffer.put_slice(b"\n\n");
}

/// An SSE stream being sent: counted in `sse_streams_open` from the response's making until
/// its body ends or its client goes away.
struct OpenStream;

impl OpenStream {
    fn new() -> OpenStream {
        metrics::gauge!("sse_streams_open").increment(1.0);
        OpenStream
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::gauge!("sse_streams_open").decrement(1.0);
    }
}

/// A `text/event-stream` response whose body is `frames` (each one or more whole events), with
/// a keep-alive comment after every `keep_alive` without a frame; `open_connections`: how many
/// client connections are open now.
pub fn response(
    frames: impl Stream<Item = Bytes> + Send + 'static,
    keep_alive: Duration,
    open_connections: usize,
) -> Response {
    let frames = Box::pin(frames);
    let open = OpenStream::new();
    let body = futures::stream::unfold((frames, open), move |(mut frames, open)| async move {
        match tokio::time::timeout(keep_alive, frames.next()).await {
            Ok(Some(frame)) => Some((Ok::<Bytes, Infallible>(frame), (frames, open))),
            Ok(None) => None,
            Err(_) => Some((Ok(Bytes::from_static(KEEP_ALIVE)), (frames, open))),
        }
    });
    let mut response = (
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response();
    if open_connections > KEEP_CONNECTIONS_UP_TO {
        response
            .headers_mut()
            .insert(CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_a_data_line_then_its_id() {
        let mut buffer = BytesMut::new();
        put_event(&mut buffer, r#"{"type":"end"}"#, "t:2");
        assert_eq!(&buffer[..], b"data: {\"type\":\"end\"}\nid: t:2\n\n");
    }

    #[tokio::test]
    async fn silences_get_keep_alive_comments() {
        let frames = futures::stream::unfold(0, |n| async move {
            if n == 2 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(if n == 1 { 60 } else { 0 })).await;
            Some((Bytes::from(format!("f{n}")), n + 1))
        });
        let response = response(frames, Duration::from_millis(25), 1);
        assert!(response.headers().get(CONNECTION).is_none(), "kept");
        let body = response.into_body();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("f0: keep-alive\n\n"), "{text}");
        assert!(text.ends_with("f1"), "{text}");
        let busy = super::response(futures::stream::empty(), Duration::from_secs(1), 100);
        assert_eq!(busy.headers()[CONNECTION], "close");
    }
}
