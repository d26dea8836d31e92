//! Rejoining a turn's stream: [`Follow`] replays the events a client missed and then follows
//! the turn live, from the journal in this server's memory or, when another replica runs the
//! turn, from the database copy that [`copy_journal`] keeps.

use std::sync::Arc;
use std::time::Duration;

use store::{Store, StoredTurn};

use crate::journal::Journal;

/// How often a follower reads a turn running on another replica.
const STORED_POLL: Duration = Duration::from_millis(200);
/// How long the turn's replica gathers events before copying them to the database.
const COPY_BATCH: Duration = Duration::from_millis(200);
/// Failed copies in a row before a turn's copy is given up.
const COPY_ATTEMPTS: u32 = 30;
/// How long a rejoin waits for the database copy of a turn that has just begun on another
/// replica (its first batch is written after [`COPY_BATCH`]).
pub(crate) const FIRST_COPY_WAIT: Duration = Duration::from_secs(2);
/// How long an unfinished turn whose session is free may stay silent before a follower
/// calls it interrupted (its replica stopped).
const SILENT_TURN: Duration = Duration::from_secs(5);

/// Why a stream can't be rejoined.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// No turn of the session is running or kept (or not the one named).
    #[error("no turn of this session is running or kept")]
    NoTurn,
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// A rejoined turn: its id, then its events in order until its last.
pub struct Follow {
    pub turn_id: String,
    source: Source,
    /// The number of the last event handed out.
    after: u64,
    done: bool,
}

enum Source {
    Local(Arc<Journal>),
    Stored { store: Store, session_id: String },
}

impl Follow {
    pub(crate) fn local(journal: Arc<Journal>, after: u64) -> Follow {
        Follow {
            turn_id: journal.turn_id.clone(),
            source: Source::Local(journal),
            after,
            done: false,
        }
    }

    pub(crate) fn stored(store: Store, turn: StoredTurn, after: u64) -> Follow {
        Follow {
            turn_id: turn.turn_id,
            source: Source::Stored {
                store,
                session_id: turn.session_id,
            },
            after,
            done: false,
        }
    }

    /// The next events `(seq, event JSON)`, waiting for at least one; `None` once the turn's
    /// last event was handed out (or the turn can no longer be read).
    pub async fn next_batch(&mut self) -> Option<Vec<(u64, Arc<str>)>> {
        if self.done {
            return None;
        }
        let batch = match &self.source {
            Source::Local(journal) => loop {
                let unread = journal.after(self.after);
                if !unread.events.is_empty() {
                    self.done = unread.finished;
                    break unread.events;
                }
                if unread.finished {
                    self.done = true;
                    return None;
                }
                journal.wait_after(self.after).await;
            },
            Source::Stored { store, session_id } => {
                match read_stored(store, session_id, &self.turn_id, self.after).await {
                    Ok((events, finished)) => {
                        self.done = finished;
                        events
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot read a turn's events; the stream ends");
                        self.done = true;
                        return None;
                    }
                }
            }
        };
        if let Some((seq, _)) = batch.last() {
            self.after = *seq;
        }
        (!batch.is_empty()).then_some(batch)
    }
}

/// Waits for events of a turn another replica runs; `finished` with the last of them. A turn
/// left unfinished by a replica that stopped ends with a retryable `error` event.
async fn read_stored(
    store: &Store,
    session_id: &str,
    turn_id: &str,
    after: u64,
) -> Result<(Vec<(u64, Arc<str>)>, bool), store::StoreError> {
    let mut silent_since: Option<tokio::time::Instant> = None;
    loop {
        let events = store.turn_events_after(turn_id, after).await?;
        if !events.is_empty() {
            let finished = events.last().is_some_and(|(_, data)| is_final(data));
            let events = events
                .into_iter()
                .map(|(seq, data)| (seq, Arc::from(data)))
                .collect();
            return Ok((events, finished));
        }
        let turn = store.stored_turn(session_id, Some(turn_id)).await?;
        match turn {
            None => return Ok((Vec::new(), true)),
            Some(turn) if turn.finished => return Ok((Vec::new(), true)),
            Some(_) if !store.session_busy(session_id).await? => {
                let since = *silent_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= SILENT_TURN {
                    let interrupted = serde_json::json!({
                        "type": "error",
                        "message": "The answer was interrupted: the server that ran it stopped. Send the message again.",
                        "retryable": true,
                    });
                    return Ok((vec![(after + 1, Arc::from(interrupted.to_string()))], true));
                }
            }
            Some(_) => silent_since = None,
        }
        tokio::time::sleep(STORED_POLL).await;
    }
}

/// Whether an event's JSON is a turn's last event (`end` or `error`).
fn is_final(data: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
        .is_some_and(|kind| kind == "end" || kind == "error")
}

/// Copies a turn's journal to the database as it grows, in batches, until its last event (on
/// PostgreSQL, for other replicas); the copy is kept for `retention` after the turn ends. The
/// first batch waits [`COPY_BATCH`] too, so that a short turn is copied in one write, whole.
pub(crate) async fn copy_journal(store: Store, journal: Arc<Journal>, retention: Duration) {
    let keep_for_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let mut copied = 0u64;
    let mut failures = 0u32;
    tokio::select! {
        _ = tokio::time::sleep(COPY_BATCH) => {}
        _ = journal.wait_finished() => {}
    }
    loop {
        journal.wait_after(copied).await;
        let unread = journal.after(copied);
        let count = unread.events.len() as u64;
        let events = unread
            .events
            .iter()
            .map(|(_, json)| json.to_string())
            .collect();
        let written = store
            .append_turn_events(
                &journal.turn_id,
                &journal.session_id,
                copied + 1,
                events,
                unread.finished.then_some(keep_for_ms),
            )
            .await;
        match written {
            Ok(()) => {
                copied += count;
                if unread.finished {
                    return;
                }
                tokio::time::sleep(COPY_BATCH).await;
            }
            Err(error) => {
                failures += 1;
                if failures >= COPY_ATTEMPTS {
                    tracing::error!(%error, turn_id = %journal.turn_id, "cannot copy a turn's events; other replicas can't replay it");
                    return;
                }
                tracing::warn!(%error, turn_id = %journal.turn_id, "cannot copy a turn's events; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_events_are_end_and_error() {
        assert!(is_final(r#"{"type":"end"}"#));
        assert!(is_final(
            r#"{"type":"error","message":"x","retryable":true}"#
        ));
        assert!(!is_final(r#"{"type":"token","content":"end"}"#));
        assert!(!is_final("not json"));
    }
}
