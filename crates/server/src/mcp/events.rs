//! MCP streams kept in the database, so that a client whose stream broke (a reload, a flaky
//! network, a proxy's timeout) resumes it with `Last-Event-ID` on any replica: the SDK hands
//! every event of a stream to [`DatabaseEvents`] before it sends it, and asks it for the events
//! after the one a client names.
//!
//! An event's id is `<row id>.<stream id>`. Stream ids are random UUIDs (one per request), or
//! `<session id>:common` for a session's common stream. Only the stream's user may resume it:
//! [`claim_stream`] records whose a request's stream is before its first event id leaves, and
//! [`may_resume`] checks it (a common stream is its session's user's). A resumed stream replays
//! what was stored, then follows the stream as it grows until its answer has been sent (or
//! nothing has come for [`FOLLOW_IDLE`]), whichever replica writes it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rmcp::model::ServerJsonRpcMessage;
use rmcp::transport::common::server_side_http::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::{
    EventId, EventStore, EventStoreError, EventStream,
};
use serde::{Deserialize, Serialize};
use store::{now_millis, Store, StoreError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a request's answer may take to begin before it goes out unclaimed.
const FIRST_EVENT_WAIT: Duration = Duration::from_secs(5);
/// How long events are kept.
pub const KEPT_FOR: Duration = Duration::from_secs(3600);
/// How long a resumed stream waits for its next event before it ends (the client reconnects).
pub const FOLLOW_IDLE: Duration = Duration::from_secs(60);
/// How often a resumed stream looks for new events.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// Events read per query.
const PAGE: i64 = 200;
/// Old events are forgotten at most this often.
const PRUNE_EVERY_MS: i64 = 60_000;

/// The SDK's event store over the server's database (`mcp_events`).
pub struct DatabaseEvents {
    store: Store,
    stopping: CancellationToken,
    last_pruned: AtomicI64,
}

impl DatabaseEvents {
    pub fn new(store: Store, stopping: CancellationToken) -> DatabaseEvents {
        DatabaseEvents {
            store,
            stopping,
            last_pruned: AtomicI64::new(0),
        }
    }

    /// Forgets events older than [`KEPT_FOR`], at most once a minute per replica, beside the
    /// stream rather than in its way.
    fn prune_now_and_then(&self) {
        let now = now_millis();
        let last = self.last_pruned.load(Ordering::Relaxed);
        if now - last < PRUNE_EVERY_MS
            || self
                .last_pruned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let before = now - KEPT_FOR.as_millis() as i64;
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.forget_mcp_events(before).await {
                tracing::warn!(%error, "could not forget old MCP events");
            }
        });
    }
}

/// An event as stored: its message and retry hint (the id is the row's).
#[derive(Serialize, Deserialize)]
struct StoredEvent {
    message: Option<ServerJsonRpcMessage>,
    retry_ms: Option<u64>,
}

/// A resumption's place: the stream and the last event its client has.
#[derive(Debug, PartialEq, Eq)]
struct Place {
    after: i64,
    stream_id: String,
}

/// Reads an event id (`<row id>.<stream id>`).
fn parse_event_id(event_id: &str) -> Option<Place> {
    let (row, stream_id) = event_id.trim().split_once('.')?;
    let after = row.parse().ok()?;
    if stream_id.is_empty() || after < 0 {
        return None;
    }
    Some(Place {
        after,
        stream_id: stream_id.to_string(),
    })
}

fn event_id(row: i64, stream_id: &str) -> EventId {
    format!("{row}.{stream_id}")
}

/// Whether a message ends a request's stream: its response or its error.
fn is_answer(message: &ServerJsonRpcMessage) -> bool {
    matches!(
        message,
        ServerJsonRpcMessage::Response(_) | ServerJsonRpcMessage::Error(_)
    )
}

/// A stored event's message, if it has one.
fn message_of(data: &str) -> Option<ServerJsonRpcMessage> {
    serde_json::from_str::<StoredEvent>(data).ok()?.message
}

/// Whether a stored event is a request's answer.
fn answers(data: &str) -> bool {
    message_of(data).is_some_and(|message| is_answer(&message))
}

#[async_trait::async_trait]
impl EventStore for DatabaseEvents {
    async fn store_event(
        &self,
        stream_id: &str,
        event: &ServerSseMessage,
    ) -> Result<EventId, EventStoreError> {
        let stored = StoredEvent {
            message: event.message.as_deref().cloned(),
            retry_ms: event.retry.map(|retry| retry.as_millis() as u64),
        };
        let data = serde_json::to_string(&stored)?;
        let row = self.store.append_mcp_event(stream_id, &data).await?;
        self.prune_now_and_then();
        Ok(event_id(row, stream_id))
    }

    async fn replay_events_after(
        &self,
        last_event_id: &str,
    ) -> Result<EventStream, EventStoreError> {
        let place = parse_event_id(last_event_id).ok_or("not an event id of this server")?;
        let Some(last) = self.store.mcp_event(&place.stream_id, place.after).await? else {
            return Err("no such event (unknown, or older than an hour)".into());
        };
        if answers(&last) {
            // The client has the answer: the stream is over.
            return Ok(Box::pin(futures::stream::empty()));
        }
        let (sender, mut receiver) = mpsc::channel(64);
        tokio::spawn(follow(
            self.store.clone(),
            place,
            sender,
            self.stopping.clone(),
        ));
        Ok(Box::pin(futures::stream::poll_fn(move |cx| {
            receiver.poll_recv(cx)
        })))
    }
}

/// Sends a stream's events after `place`, then the ones that come, until the stream's answer
/// has gone out, nothing came for [`FOLLOW_IDLE`], the client left or the server stops.
async fn follow(
    store: Store,
    mut place: Place,
    sender: mpsc::Sender<ServerSseMessage>,
    stopping: CancellationToken,
) {
    let mut idle_since = tokio::time::Instant::now();
    loop {
        let events = match store
            .mcp_events_after(&place.stream_id, place.after, PAGE)
            .await
        {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, "could not read MCP events to resume a stream");
                return;
            }
        };
        let full_page = events.len() as i64 == PAGE;
        let mut answered = false;
        for event in events {
            place.after = event.id;
            // Retry hints were for the first connection; only messages are replayed.
            let Some(message) = message_of(&event.data) else {
                continue;
            };
            answered |= is_answer(&message);
            let sse = ServerSseMessage::new(event_id(event.id, &place.stream_id), message);
            if sender.send(sse).await.is_err() {
                return;
            }
            idle_since = tokio::time::Instant::now();
        }
        if answered {
            return;
        }
        if full_page {
            continue;
        }
        if idle_since.elapsed() >= FOLLOW_IDLE {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL_EVERY) => {}
            () = sender.closed() => return,
            () = stopping.cancelled() => return,
        }
    }
}

/// Whether the user may resume the stream `last_event_id` names: a request's stream is its
/// claimant's, a common stream its session's user's. An id that is not this server's is left
/// to the transport, which refuses it.
pub async fn may_resume(
    store: &Store,
    last_event_id: &str,
    user_id: &str,
) -> Result<bool, StoreError> {
    let Some(place) = parse_event_id(last_event_id) else {
        return Ok(true);
    };
    let owner = match place.stream_id.strip_suffix(":common") {
        Some(session) => store.mcp_session_owner(session).await?,
        None => store.mcp_stream_owner(&place.stream_id).await?,
    };
    Ok(owner.as_deref() == Some(user_id))
}

/// The answer to a resumption the user may not make: as the transport answers an unknown
/// event, a stream that ends at once (an error would make an EventSource retry for ever).
pub fn nothing_to_resume() -> Response {
    (
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
        ],
        "",
    )
        .into_response()
}

/// Records the user as the owner of the stream a `POST /mcp` answer carries, from the id of
/// its first event, before the answer (and so that id) goes to the client.
pub async fn claim_stream(store: &Store, user_id: &str, response: Response) -> Response {
    let is_stream = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    if !is_stream {
        return response;
    }
    let (parts, body) = response.into_parts();
    let mut frames = body.into_data_stream();
    let first = match tokio::time::timeout(FIRST_EVENT_WAIT, frames.next()).await {
        Ok(first) => first,
        Err(_) => return Response::from_parts(parts, Body::from_stream(frames)),
    };
    if let Some(place) = first
        .as_ref()
        .and_then(|frame| frame.as_ref().ok())
        .and_then(first_event_id)
        .and_then(parse_event_id)
    {
        if let Err(error) = store.claim_mcp_stream(&place.stream_id, user_id).await {
            tracing::warn!(%error, "could not record whose an MCP stream is; it can't be resumed");
        }
    }
    let body = Body::from_stream(futures::stream::iter(first).chain(frames));
    Response::from_parts(parts, body)
}

/// The `id:` of the first SSE event in a piece of a stream.
fn first_event_id(bytes: &Bytes) -> Option<&str> {
    std::str::from_utf8(bytes)
        .ok()?
        .lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| line.strip_prefix("id:"))
        .map(str::trim)
}

/// The event store, shared by the session manager.
pub fn event_store(store: Store, stopping: CancellationToken) -> Arc<dyn EventStore> {
    Arc::new(DatabaseEvents::new(store, stopping))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_name_the_row_and_the_stream() {
        let id = event_id(42, "0b6e-uuid:common");
        assert_eq!(
            parse_event_id(&id),
            Some(Place {
                after: 42,
                stream_id: "0b6e-uuid:common".into()
            })
        );
        for bad in ["", "42", "42.", ".abc", "x.abc", "-1.abc", "0/3"] {
            assert_eq!(parse_event_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_first_events_id_is_read_from_the_streams_first_piece() {
        let piece = Bytes::from("id: 7.abc\nretry: 3000\n\ndata: {}\nid: 8.abc\n\n");
        assert_eq!(first_event_id(&piece), Some("7.abc"));
        assert_eq!(
            first_event_id(&Bytes::from("retry: 3000\n\nid: 8.abc\n\n")),
            None
        );
        assert_eq!(first_event_id(&Bytes::from_static(b"\xff\xfe")), None);
    }
}
