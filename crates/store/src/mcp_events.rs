//! MCP stream events: what the MCP transport sent on each stream, so that a client can resume
//! a broken stream with `Last-Event-ID` on any replica.

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

    /// Forgets events stored before `before` (milliseconds); returns how many.
    pub async fn forget_mcp_events(&self, before: i64) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM mcp_events WHERE created_at < $1",
            args![before],
        )
        .await
    }
}
