//! Turn journals in the database: the events of a turn, copied in batches by the replica that
//! runs it, for other replicas to replay to a client that rejoins the turn there.

use sqlx::Row;

use crate::write::{args, Arg};
use crate::{now_millis, Store, StoreError};

/// The most events one statement inserts (PostgreSQL allows 65,535 bound values).
const EVENTS_PER_STATEMENT: usize = 1_000;

/// How long an unfinished turn (its replica stopped) is kept.
const ABANDONED_AFTER_MS: i64 = 86_400_000;

/// A turn as the database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTurn {
    pub turn_id: String,
    pub session_id: String,
    /// Its last event is stored: nothing more will come.
    pub finished: bool,
    /// When the replica running it last wrote (milliseconds).
    pub updated_at: i64,
}

impl Store {
    /// Appends events `first_seq, first_seq + 1, …` of a turn, in one transaction with the
    /// turn's row; `keep_for_ms`, given with the turn's last events, sets how long they stay.
    pub async fn append_turn_events(
        &self,
        turn_id: &str,
        session_id: &str,
        first_seq: u64,
        events: Vec<String>,
        keep_for_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        let finished = keep_for_ms.is_some();
        let expires_at = keep_for_ms.map(|ms| now.saturating_add(ms));
        let turn_values = args![turn_id, session_id, now, finished, expires_at];
        let mut batches = Vec::new();
        let first = i64::try_from(first_seq).unwrap_or(i64::MAX);
        for (chunk_index, chunk) in events.chunks(EVENTS_PER_STATEMENT).enumerate() {
            let mut sql = String::from("INSERT INTO turn_events (turn_id, seq, data) VALUES ");
            let mut values: Vec<Arg> = Vec::with_capacity(chunk.len() * 3);
            for (i, data) in chunk.iter().enumerate() {
                let n = values.len();
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("(${}, ${}, ${})", n + 1, n + 2, n + 3));
                let seq = first + (chunk_index * EVENTS_PER_STATEMENT + i) as i64;
                values.push(turn_id.into());
                values.push(seq.into());
                values.push(data.clone().into());
            }
            sql.push_str(" ON CONFLICT (turn_id, seq) DO NOTHING");
            batches.push((sql, values));
        }
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO turns (turn_id, session_id, started_at, updated_at, finished, expires_at) \
                     VALUES ($1, $2, $3, $3, $4, $5) \
                     ON CONFLICT (turn_id) DO UPDATE SET updated_at = $3, finished = $4, expires_at = $5",
                    turn_values,
                )
                .await?;
                for (sql, values) in batches {
                    tx.execute(&sql, values).await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// A turn of a session still kept: the one named, or the session's latest.
    pub async fn stored_turn(
        &self,
        session_id: &str,
        turn_id: Option<&str>,
    ) -> Result<Option<StoredTurn>, StoreError> {
        let now = now_millis();
        let query = match turn_id {
            Some(turn_id) => sqlx::query(
                "SELECT turn_id, session_id, finished, updated_at FROM turns \
                 WHERE session_id = $1 AND turn_id = $2 AND (expires_at IS NULL OR expires_at > $3)",
            )
            .bind(session_id.to_string())
            .bind(turn_id.to_string())
            .bind(now),
            None => sqlx::query(
                "SELECT turn_id, session_id, finished, updated_at FROM turns \
                 WHERE session_id = $1 AND (expires_at IS NULL OR expires_at > $2) \
                 ORDER BY started_at DESC, turn_id DESC LIMIT 1",
            )
            .bind(session_id.to_string())
            .bind(now),
        };
        let Some(row) = query.fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        Ok(Some(StoredTurn {
            turn_id: row.try_get("turn_id")?,
            session_id: row.try_get("session_id")?,
            finished: row.try_get::<i64, _>("finished")? != 0,
            updated_at: row.try_get("updated_at")?,
        }))
    }

    /// A stored turn's events after `after`, in order: `(seq, event JSON)`.
    pub async fn turn_events_after(
        &self,
        turn_id: &str,
        after: u64,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, data FROM turn_events WHERE turn_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(turn_id.to_string())
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get("seq")?;
                Ok((u64::try_from(seq).unwrap_or(0), row.try_get("data")?))
            })
            .collect()
    }

    /// Forgets the turns whose time to be kept is over, and those a stopped replica left
    /// unfinished a day ago; returns how many.
    pub async fn delete_expired_turns(&self) -> Result<u64, StoreError> {
        let now = now_millis();
        let abandoned = now - ABANDONED_AFTER_MS;
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "DELETE FROM turn_events WHERE turn_id IN (SELECT turn_id FROM turns \
                     WHERE expires_at <= $1 OR (expires_at IS NULL AND updated_at <= $2))",
                    args![now, abandoned],
                )
                .await?;
                tx.execute(
                    "DELETE FROM turns WHERE expires_at <= $1 OR (expires_at IS NULL AND updated_at <= $2)",
                    args![now, abandoned],
                )
                .await
            })
        })
        .await
    }
}
