//! Turn journals: every event of a turn, numbered from 1 and serialised once, kept while the
//! turn runs and for a while after it ends, so that a client that lost its stream (a reload, a
//! flaky network, a phone that slept) can rejoin it and get exactly the events it missed.
//!
//! A journal lives in the memory of the server that runs the turn. On PostgreSQL the turn also
//! copies it to the database in batches (`store::turn_events`), where other replicas read it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// An event's place in its turn's stream: the SSE `id` is `"{turn_id}:{seq}"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventId {
    pub turn_id: String,
    pub seq: u64,
}

impl EventId {
    /// The SSE `id` of this event.
    pub fn render(&self) -> String {
        format!("{}:{}", self.turn_id, self.seq)
    }
}

/// Where a rejoining client resumes: after an event of a given turn, or after the `seq`-th
/// event of the session's latest turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub turn_id: Option<String>,
    pub after: u64,
}

impl Cursor {
    /// From the start of the session's latest turn.
    pub fn start() -> Cursor {
        Cursor {
            turn_id: None,
            after: 0,
        }
    }

    /// Reads a `Last-Event-ID` or `after` value: `TURN:SEQ` or a bare `SEQ`.
    pub fn parse(text: &str) -> Option<Cursor> {
        let text = text.trim();
        match text.rsplit_once(':') {
            Some((turn, seq)) if is_turn_id(turn) => Some(Cursor {
                turn_id: Some(turn.to_string()),
                after: seq.parse().ok()?,
            }),
            Some(_) => None,
            None => Some(Cursor {
                turn_id: None,
                after: text.parse().ok()?,
            }),
        }
    }
}

/// Whether `text` can be a turn id (32 hex digits).
pub fn is_turn_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A new turn id.
pub fn new_turn_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// What a follower has not read yet.
#[derive(Debug, Default)]
pub struct Unread {
    /// `(seq, event JSON)`, in order.
    pub events: Vec<(u64, Arc<str>)>,
    /// The turn's last event is among those read: nothing more will come.
    pub finished: bool,
}

struct Entries {
    events: Vec<Arc<str>>,
    /// When the turn's last event was written.
    finished_at: Option<Instant>,
}

/// The events of one turn.
pub struct Journal {
    pub turn_id: String,
    pub session_id: String,
    entries: Mutex<Entries>,
    /// The number of events written, for followers to wait on.
    written: watch::Sender<u64>,
}

impl Journal {
    fn new(turn_id: String, session_id: String) -> Journal {
        Journal {
            turn_id,
            session_id,
            entries: Mutex::new(Entries {
                events: Vec::new(),
                finished_at: None,
            }),
            written: watch::Sender::new(0),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        match self.entries.lock() {
            Ok(entries) => entries,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Appends an event; returns its number. `last` marks the turn's final event.
    pub fn push(&self, json: Arc<str>, last: bool) -> u64 {
        let seq = {
            let mut entries = self.entries();
            entries.events.push(json);
            if last {
                entries.finished_at = Some(Instant::now());
            }
            entries.events.len() as u64
        };
        self.written.send_replace(seq);
        seq
    }

    /// The events after `after`, and whether the turn has ended.
    pub fn after(&self, after: u64) -> Unread {
        let entries = self.entries();
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(entries.events.len());
        Unread {
            events: entries.events[start..]
                .iter()
                .enumerate()
                .map(|(i, json)| ((start + i + 1) as u64, json.clone()))
                .collect(),
            finished: entries.finished_at.is_some(),
        }
    }

    /// Waits until there is an event after `after` or the turn has ended.
    pub async fn wait_after(&self, after: u64) {
        let mut written = self.written.subscribe();
        loop {
            if *written.borrow_and_update() > after || self.finished() {
                return;
            }
            if written.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits until the turn's last event is written.
    pub async fn wait_finished(&self) {
        let mut written = self.written.subscribe();
        while !self.finished() {
            if written.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn finished(&self) -> bool {
        self.entries().finished_at.is_some()
    }

    fn expired(&self, retention: Duration, now: Instant) -> bool {
        self.entries()
            .finished_at
            .is_some_and(|at| now.duration_since(at) > retention)
    }
}

/// The journals this server keeps: by turn, and each session's latest.
pub struct Journals {
    retention: Duration,
    inner: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    by_turn: HashMap<String, Arc<Journal>>,
    latest: HashMap<String, Arc<Journal>>,
    swept_at: Option<Instant>,
}

impl Journals {
    /// Journals kept for `retention` after their turn ends.
    pub fn new(retention: Duration) -> Journals {
        Journals {
            retention,
            inner: Mutex::new(Index::default()),
        }
    }

    pub fn retention(&self) -> Duration {
        self.retention
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        match self.inner.lock() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Opens the journal of a new turn in a session (its latest from now on), and forgets
    /// journals past their retention (at most once a second).
    pub fn open(&self, session_id: &str) -> Arc<Journal> {
        let journal = Arc::new(Journal::new(new_turn_id(), session_id.to_string()));
        let mut index = self.index();
        let now = Instant::now();
        if index
            .swept_at
            .is_none_or(|at| now.duration_since(at) > Duration::from_secs(1))
        {
            let retention = self.retention;
            index.by_turn.retain(|_, j| !j.expired(retention, now));
            index.latest.retain(|_, j| !j.expired(retention, now));
            index.swept_at = Some(now);
        }
        index
            .by_turn
            .insert(journal.turn_id.clone(), journal.clone());
        index.latest.insert(session_id.to_string(), journal.clone());
        journal
    }

    /// The journal a cursor points into, in `session_id`: the named turn, or the session's
    /// latest. `None` when this server keeps none (another replica may).
    pub fn find(&self, session_id: &str, turn_id: Option<&str>) -> Option<Arc<Journal>> {
        let index = self.index();
        let now = Instant::now();
        let found = match turn_id {
            Some(turn) => index.by_turn.get(turn).cloned(),
            None => index.latest.get(session_id).cloned(),
        }?;
        (found.session_id == session_id && !found.expired(self.retention, now)).then_some(found)
    }

    /// Forgets a session's journals (the session was deleted).
    pub fn forget_session(&self, session_id: &str) {
        let mut index = self.index();
        index.latest.remove(session_id);
        index.by_turn.retain(|_, j| j.session_id != session_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_both_forms_and_refuse_the_rest() {
        let turn = new_turn_id();
        assert_eq!(
            Cursor::parse(&format!("{turn}:7")),
            Some(Cursor {
                turn_id: Some(turn.clone()),
                after: 7
            })
        );
        assert_eq!(
            Cursor::parse("12"),
            Some(Cursor {
                turn_id: None,
                after: 12
            })
        );
        for bad in [
            "",
            "x",
            "-1",
            "abc:3",
            &format!("{turn}:"),
            &format!("{turn}:x"),
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn followers_read_what_they_missed_then_wait() {
        let journals = Journals::new(Duration::from_secs(60));
        let journal = journals.open("s1");
        journal.push("a".into(), false);
        journal.push("b".into(), false);
        let unread = journal.after(1);
        assert_eq!(unread.events.len(), 1);
        assert_eq!(unread.events[0].0, 2);
        assert!(!unread.finished);
        let waiter = {
            let journal = journal.clone();
            tokio::spawn(async move { journal.wait_after(2).await })
        };
        journal.push("end".into(), true);
        waiter.await.expect("woken");
        let rest = journal.after(2);
        assert_eq!(rest.events[0], (3, Arc::from("end")));
        assert!(rest.finished);
        assert!(journal.after(99).events.is_empty());
        assert_eq!(
            journals.find("s1", None).map(|j| j.turn_id.clone()),
            Some(journal.turn_id.clone())
        );
        assert!(journals.find("other", Some(&journal.turn_id)).is_none());
    }

    #[test]
    fn finished_journals_are_forgotten_after_their_retention() {
        let journals = Journals::new(Duration::from_millis(0));
        let old = journals.open("s1");
        old.push("end".into(), true);
        std::thread::sleep(Duration::from_millis(5));
        assert!(journals.find("s1", Some(&old.turn_id)).is_none());
    }
}
