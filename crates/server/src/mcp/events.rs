//! MCP streams kept in the database, so that a client whose stream broke (a reload, a flaky
//! network, a proxy's timeout) resumes it with `Last-Event-ID` on any replica: the SDK hands
//! every event of a stream to [`DatabaseEvents`] before it sends it, and asks it for the events
//! after the one a client names.
//!
//! An event's id is `<row id>.<stream id>`. Stream ids are random UUIDs (one per request, or
//! the session's own id for its common stream), known only to the client the stream was sent
//! to, so naming one is the capability to resume it. A resumed stream replays what was stored,
//! then follows the stream as it grows until its answer has been sent (or nothing has come for
//! [`FOLLOW_IDLE`]), whichever replica writes it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::ServerJsonRpcMessage;
use rmcp::transport::common::server_side_http::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::{
    EventId, EventStore, EventStoreError, EventStream,
};
use serde::{Deserialize, Serialize};
use store::{now_millis, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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
}
