//! MCP stream events: what the MCP transport sent on each stream, and whose each stream is, so
//! that a client can resume its broken stream with `Last-Event-ID` on any replica.

use sqlx::Row;

use crate::write::args;
use crate::{now_millis, Store, StoreError};

/// One stored event: its id (increasing over all streams) and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpEvent {
    pub id: i64,
    pub data: String,
}

impl Store {
    /// Appends an event to a stream; returns its id.
    pub async fn append_mcp_event(&self, stream_id: &str, data: &str) -> Result<i64, StoreError> {
        let values = args![stream_id, data, now_millis()];
        self.write(move |tx| {
            Box::pin(async move {
                tx.insert_returning_id(
                    "INSERT INTO mcp_events (stream_id, data, created_at) VALUES ($1, $2, $3) \
                     RETURNING id",
                    values,
                )
                .await
            })
        })
        .await
    }

    /// Event `id`'s data, if it belongs to the stream (a resumption names both).
    pub async fn mcp_event(&self, stream_id: &str, id: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT data FROM mcp_events WHERE id = $1 AND stream_id = $2")
            .bind(id)
            .bind(stream_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(row.try_get("data")?)),
            None => Ok(None),
        }
    }

    /// A stream's events after event `after`, in order, at most `limit` of them.
    pub async fn mcp_events_after(
        &self,
        stream_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<McpEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, data FROM mcp_events WHERE stream_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(stream_id.to_string())
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(McpEvent {
                    id: row.try_get("id")?,
                    data: row.try_get("data")?,
                })
            })
            .collect()
    }

    /// Records that a request's stream belongs to the user (before its first event leaves).
    pub async fn claim_mcp_stream(&self, stream_id: &str, user_id: &str) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO mcp_streams (stream_id, user_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (stream_id) DO NOTHING",
            args![stream_id, user_id, now_millis()],
        )
        .await?;
        Ok(())
    }

    /// The user a request's stream belongs to, if it is known.
    pub async fn mcp_stream_owner(&self, stream_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT user_id FROM mcp_streams WHERE stream_id = $1")
            .bind(stream_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(row.try_get("user_id")?)),
            None => Ok(None),
        }
    }

    /// Forgets events, and the owners of streams, stored before `before` (milliseconds);
    /// returns how many events.
    pub async fn forget_mcp_events(&self, before: i64) -> Result<u64, StoreError> {
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "DELETE FROM mcp_streams WHERE created_at < $1",
                    args![before],
                )
                .await?;
                tx.execute(
                    "DELETE FROM mcp_events WHERE created_at < $1",
                    args![before],
                )
                .await
            })
        })
        .await
    }
}
