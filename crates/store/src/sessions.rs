//! Chat sessions and their messages, owned by one user.

use sqlx::Row;

use crate::leases::SESSION_LEASE;
use crate::{new_id, now_millis, Store, StoreError};

/// Who wrote a stored message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRole {
    User,
    Assistant,
}

impl MessageRole {
    /// The stored (and OpenAI) name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
        }
    }
}

/// A conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    /// The first user message (shortened), once there is one.
    pub title: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub message_count: i64,
}

/// One stored user or assistant message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: i64,
    pub role: MessageRole,
    pub content: String,
    /// The generation was stopped or failed before it finished.
    pub interrupted: bool,
    pub created_at: i64,
}

const TITLE_CHARS: usize = 80;

fn session_from_row(row: &sqlx::any::AnyRow) -> Result<Session, StoreError> {
    Ok(Session {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        user_id: row.try_get("user_id")?,
        title: row.try_get("title")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        message_count: row.try_get("message_count")?,
    })
}

fn message_from_row(row: &sqlx::any::AnyRow) -> Result<StoredMessage, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(StoredMessage {
        id: row.try_get("id")?,
        role: if role == "assistant" {
            MessageRole::Assistant
        } else {
            MessageRole::User
        },
        content: row.try_get("content")?,
        interrupted: row.try_get::<i64, _>("interrupted")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

const SESSION_SELECT: &str =
    "SELECT s.id, s.tenant_id, s.user_id, s.title, s.created_at, s.updated_at, \
     (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id) AS message_count FROM sessions s";

impl Store {
    /// Creates an empty session for a user.
    pub async fn create_session(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Session, StoreError> {
        let now = now_millis();
        let session = Session {
            id: new_id(),
            tenant_id: tenant_id.to_string(),
            user_id: user_id.to_string(),
            title: None,
            created_at: now,
            updated_at: now,
            message_count: 0,
        };
        sqlx::query(
            "INSERT INTO sessions (id, tenant_id, user_id, title, created_at, updated_at) VALUES ($1, $2, $3, NULL, $4, $4)",
        )
        .bind(&session.id)
        .bind(&session.tenant_id)
        .bind(&session.user_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(session)
    }

    /// The session with this id if it belongs to this user; otherwise `NotFound`, exactly as
    /// for a session that does not exist.
    pub async fn session_for_user(&self, id: &str, user_id: &str) -> Result<Session, StoreError> {
        let row = sqlx::query(&format!(
            "{SESSION_SELECT} WHERE s.id = $1 AND s.user_id = $2"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("session {id}")))?;
        session_from_row(&row)
    }

    /// A user's sessions, most recently active first.
    pub async fn list_sessions(
        &self,
        user_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SESSION_SELECT} WHERE s.user_id = $1 ORDER BY s.updated_at DESC, s.created_at DESC, s.id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Deletes a user's session and its messages.
    pub async fn delete_session(&self, id: &str, user_id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let owned: Option<String> =
            sqlx::query_scalar("SELECT id FROM sessions WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        if owned.is_none() {
            return Err(StoreError::NotFound(format!("session {id}")));
        }
        sqlx::query("DELETE FROM messages WHERE session_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Appends a message (committed when this returns) and touches the session; the first user
    /// message becomes the session's title.
    pub async fn append_message(
        &self,
        session_id: &str,
        role: MessageRole,
        content: &str,
        interrupted: bool,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO messages (session_id, role, content, interrupted, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session_id)
        .bind(role.as_str())
        .bind(content)
        .bind(crate::db::flag(interrupted))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let title: Option<String> = (role == MessageRole::User).then(|| {
            let mut title: String = content.split_whitespace().collect::<Vec<_>>().join(" ");
            if title.chars().count() > TITLE_CHARS {
                title = title.chars().take(TITLE_CHARS - 1).collect::<String>() + "…";
            }
            title
        });
        sqlx::query(
            "UPDATE sessions SET updated_at = $1, title = COALESCE(title, $2) WHERE id = $3",
        )
        .bind(now)
        .bind(title)
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The last `limit` messages of a session, oldest first.
    pub async fn recent_messages(
        &self,
        session_id: &str,
        limit: i64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, role, content, interrupted, created_at FROM messages WHERE session_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(session_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(messages)
    }

    /// Every message of a session, oldest first.
    pub async fn session_messages(
        &self,
        session_id: &str,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, role, content, interrupted, created_at FROM messages WHERE session_id = $1 ORDER BY id",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// Takes the session's lease for `lease_ms` unless another process holds it; true on success.
    /// Serialises turns of one session across replicas.
    pub async fn try_lease_session(
        &self,
        session_id: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        self.take_lease(SESSION_LEASE, session_id, lease_ms).await
    }

    /// Extends a lease this process holds.
    pub async fn renew_session_lease(
        &self,
        session_id: &str,
        lease_ms: i64,
    ) -> Result<(), StoreError> {
        self.renew_lease(SESSION_LEASE, session_id, lease_ms).await
    }

    /// Clears every lease: for a process that knows it is the only server on this database
    /// (SQLite), so that leases left by a crash do not hold sessions until they expire.
    pub async fn release_all_session_leases(&self) -> Result<(), StoreError> {
        self.release_all_leases(SESSION_LEASE).await
    }

    /// Gives the lease back.
    pub async fn release_session_lease(&self, session_id: &str) -> Result<(), StoreError> {
        self.release_lease(SESSION_LEASE, session_id).await
    }
}
