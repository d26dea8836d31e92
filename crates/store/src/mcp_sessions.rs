//! MCP sessions: the user each `Mcp-Session-Id` belongs to, and the client's `initialize`
//! parameters, so that a session begun on one replica goes on on another.

use sqlx::Row;

use crate::write::args;
use crate::{now_millis, Store, StoreError};

/// Sessions unused for this long are forgotten.
const FORGOTTEN_AFTER_MS: i64 = 7 * 86_400_000;

impl Store {
    /// Records that the session belongs to the user (at the session's first answer). A
    /// session already given to a user is left as it is.
    pub async fn claim_mcp_session(&self, id: &str, user_id: &str) -> Result<(), StoreError> {
        let now = now_millis();
        self.execute(
            "INSERT INTO mcp_sessions (id, user_id, state, created_at, used_at) \
             VALUES ($1, $2, NULL, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET user_id = $2 WHERE mcp_sessions.user_id = ''",
            args![id, user_id, now],
        )
        .await?;
        Ok(())
    }

    /// The user a session belongs to, if the session is known; marks it used.
    pub async fn mcp_session_owner(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT user_id, used_at FROM mcp_sessions WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let used_at: i64 = row.try_get("used_at")?;
        let now = now_millis();
        // Marked at most once a minute, not on every request.
        if now - used_at > 60_000 {
            self.execute(
                "UPDATE mcp_sessions SET used_at = $2 WHERE id = $1",
                args![id, now],
            )
            .await?;
        }
        Ok(Some(row.try_get("user_id")?))
    }

    /// Keeps a session's `initialize` parameters (JSON), creating its row if the owner is not
    /// recorded yet (the handshake is stored before its answer leaves).
    pub async fn store_mcp_session_state(&self, id: &str, state: &str) -> Result<(), StoreError> {
        let now = now_millis();
        self.execute(
            "INSERT INTO mcp_sessions (id, user_id, state, created_at, used_at) \
             VALUES ($1, '', $2, $3, $3) ON CONFLICT (id) DO UPDATE SET state = $2, used_at = $3",
            args![id, state, now],
        )
        .await?;
        Ok(())
    }

    /// A session's `initialize` parameters (JSON), if it is known and was not forgotten.
    pub async fn mcp_session_state(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT state FROM mcp_sessions WHERE id = $1 AND used_at > $2")
            .bind(id.to_string())
            .bind(now_millis() - FORGOTTEN_AFTER_MS)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(row.try_get("state")?),
            None => Ok(None),
        }
    }

    /// Ends a session (its client's `DELETE`), and forgets sessions unused for a week.
    pub async fn delete_mcp_session(&self, id: &str) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM mcp_sessions WHERE id = $1 OR used_at < $2",
            args![id, now_millis() - FORGOTTEN_AFTER_MS],
        )
        .await?;
        Ok(())
    }
}
