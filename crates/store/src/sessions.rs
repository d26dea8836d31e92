//! Chat sessions and their messages, owned by one user.

use sqlx::Row;

use crate::billing::{
    budget_left_in, insert_reservation_in, settle_in, ReservationRequest, Settlement,
};
use crate::leases::{release_lease_in, release_lease_touching_in, take_lease_in, SESSION_LEASE};
use crate::write::{args, WriteTx};
use crate::{new_id, now_millis, Store, StoreError};

/// Who wrote a stored message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRole {
    User,
    Assistant,
}

impl MessageRole {
    /// Reads a stored role name (anything but `assistant` is the user's).
    fn parse(name: &str) -> MessageRole {
        if name == "assistant" {
            MessageRole::Assistant
        } else {
            MessageRole::User
        }
    }

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
        role: MessageRole::parse(&role),
        content: row.try_get("content")?,
        interrupted: row.try_get::<i64, _>("interrupted")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

/// How [`Store::begin_turn`] went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnStart {
    /// The turn holds the session; its user message is stored.
    Started {
        /// The last messages, oldest first, the new user message last.
        history: Vec<StoredMessage>,
        /// The reservation made for the first model call, when one was asked for.
        reservation_id: Option<String>,
    },
    /// Another turn holds the session: nothing was written.
    SessionBusy,
    /// The session was deleted meanwhile: nothing was written.
    SessionGone,
    /// Nothing is left to spend: nothing was written (but a new session, empty).
    CapExceeded,
}

/// The notification channel of stop requests (its payload: a session id).
const STOP_CHANNEL: &str = "integrator_session_stop";

const INSERT_SESSION: &str =
    "INSERT INTO sessions (id, tenant_id, user_id, title, created_at, updated_at, busy_until) \
     VALUES ($1, $2, $3, $6, $4, $4, $5)";

/// A new session id (sessions are created by the first turn, or by [`Store::create_session`]).
pub fn new_session_id() -> String {
    new_id()
}

const SESSION_SELECT: &str =
    "SELECT s.id, s.tenant_id, s.user_id, s.title, s.created_at, s.updated_at, \
     (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id) AS message_count FROM sessions s";

impl Store {
    /// Creates an empty session for a user, with an id from [`new_session_id`].
    pub async fn create_session(
        &self,
        id: &str,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Session, StoreError> {
        let now = now_millis();
        let session = Session {
            id: id.to_string(),
            tenant_id: tenant_id.to_string(),
            user_id: user_id.to_string(),
            title: None,
            created_at: now,
            updated_at: now,
            message_count: 0,
        };
        self.execute(
            INSERT_SESSION,
            args![
                &session.id,
                &session.tenant_id,
                &session.user_id,
                now,
                0,
                None::<String>
            ],
        )
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
        let (session_id, owner) = (id.to_string(), user_id.to_string());
        let deleted = self
            .write(move |tx| {
                Box::pin(async move {
                    let owned = tx
                        .fetch_optional(
                            "SELECT id FROM sessions WHERE id = $1 AND user_id = $2",
                            args![&session_id, owner],
                        )
                        .await?;
                    if owned.is_none() {
                        return Ok(false);
                    }
                    tx.execute(
                        "DELETE FROM messages WHERE session_id = $1",
                        args![&session_id],
                    )
                    .await?;
                    tx.execute(
                        "DELETE FROM turn_events WHERE turn_id IN \
                         (SELECT turn_id FROM turns WHERE session_id = $1)",
                        args![&session_id],
                    )
                    .await?;
                    tx.execute(
                        "DELETE FROM turns WHERE session_id = $1",
                        args![&session_id],
                    )
                    .await?;
                    tx.execute("DELETE FROM sessions WHERE id = $1", args![&session_id])
                        .await?;
                    Ok(true)
                })
            })
            .await?;
        if deleted {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!("session {id}")))
        }
    }

    /// Starts a turn in one transaction: sets money aside for its first model call (when
    /// `reservation` asks for it), takes the session's lease for `lease_ms` (creating the
    /// session for `new_for` = (tenant, user) when it is new), stores the user's message and
    /// reads the last `history` messages, that one included: the conversation as this turn
    /// continues it. Nothing is written while another turn holds the session, and nothing but
    /// the new (empty) session when the budget is spent.
    pub async fn begin_turn(
        &self,
        session_id: &str,
        new_for: Option<(&str, &str)>,
        user_message: &str,
        lease_ms: i64,
        history: i64,
        reservation: Option<ReservationRequest>,
    ) -> Result<TurnStart, StoreError> {
        let (session_id, user_message) = (session_id.to_string(), user_message.to_string());
        let new_for = new_for.map(|(tenant, user)| (tenant.to_string(), user.to_string()));
        let reservation = reservation.map(|request| (request, new_id()));
        let reserved_id = reservation.as_ref().map(|(_, id)| id.clone());
        let in_flight = self.in_flight();
        let started = self
            .write(move |tx| {
                Box::pin(async move {
                    let now = now_millis();
                    if let Some((request, _)) = &reservation {
                        if !budget_left_in(tx, &in_flight, request).await? {
                            if let Some((tenant_id, user_id)) = &new_for {
                                // The session id was announced: keep it valid, empty.
                                tx.execute(
                                    INSERT_SESSION,
                                    args![&session_id, tenant_id, user_id, now, 0, None::<String>],
                                )
                                .await?;
                            }
                            return Ok(TurnStart::CapExceeded);
                        }
                    }
                    match &new_for {
                        Some((tenant_id, user_id)) => {
                            // A new session: titled by its first message, busy from the start.
                            tx.execute(
                                INSERT_SESSION,
                                args![
                                    &session_id,
                                    tenant_id,
                                    user_id,
                                    now,
                                    now + lease_ms,
                                    title_of(&user_message)
                                ],
                            )
                            .await?;
                        }
                        None => {
                            if !take_lease_in(tx, SESSION_LEASE, &session_id, lease_ms).await? {
                                let exists = tx
                                    .fetch_optional(
                                        "SELECT id FROM sessions WHERE id = $1",
                                        args![&session_id],
                                    )
                                    .await?
                                    .is_some();
                                return Ok(if exists {
                                    TurnStart::SessionBusy
                                } else {
                                    TurnStart::SessionGone
                                });
                            }
                        }
                    }
                    let reservation_id = match &reservation {
                        Some((request, id)) => {
                            insert_reservation_in(tx, &in_flight, request, id).await?;
                            Some(id.clone())
                        }
                        None => None,
                    };
                    let message =
                        insert_only(tx, &session_id, MessageRole::User, &user_message, false)
                            .await?;
                    let messages = if new_for.is_some() {
                        // A new session's history is this one message.
                        vec![message]
                    } else {
                        touch(tx, &session_id, now, Some(title_of(&user_message))).await?;
                        recent_in(tx, &session_id, history).await?
                    };
                    Ok(TurnStart::Started {
                        history: messages,
                        reservation_id,
                    })
                })
            })
            .await;
        self.in_flight()
            .release_if_failed(&started, reserved_id.as_deref());
        started
    }

    /// Ends a turn in one transaction: stores the assistant's message, if there is one,
    /// records the cost of the turn's last model call (`settlement`), and gives the session's
    /// lease back.
    pub async fn finish_turn(
        &self,
        session_id: &str,
        answer: Option<(&str, bool)>,
        settlement: Option<Settlement>,
    ) -> Result<(), StoreError> {
        let session_id = session_id.to_string();
        let answer = answer.map(|(content, interrupted)| (content.to_string(), interrupted));
        let in_flight = self.in_flight();
        self.write(move |tx| {
            Box::pin(async move {
                if let Some(settlement) = &settlement {
                    settle_in(tx, &in_flight, settlement).await?;
                }
                let Some((content, interrupted)) = answer else {
                    return release_lease_in(tx, SESSION_LEASE, &session_id).await;
                };
                let message = insert_only(
                    tx,
                    &session_id,
                    MessageRole::Assistant,
                    &content,
                    interrupted,
                )
                .await?;
                release_lease_touching_in(tx, SESSION_LEASE, &session_id, message.created_at).await
            })
        })
        .await
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

    /// Whether the session exists (whoever owns it).
    pub async fn session_exists(&self, session_id: &str) -> Result<bool, StoreError> {
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM sessions WHERE id = $1")
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// Gives one of `user_id`'s sessions a title of its own.
    pub async fn rename_session(
        &self,
        id: &str,
        user_id: &str,
        title: &str,
    ) -> Result<(), StoreError> {
        let changed = self
            .execute(
                "UPDATE sessions SET title = $1 WHERE id = $2 AND user_id = $3",
                args![title, id, user_id],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("session {id}")));
        }
        Ok(())
    }

    /// Whether a turn holds the session right now (on this replica or another).
    pub async fn session_busy(&self, session_id: &str) -> Result<bool, StoreError> {
        let busy: Option<i64> = sqlx::query_scalar("SELECT busy_until FROM sessions WHERE id = $1")
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(busy.is_some_and(|until| until > now_millis()))
    }

    /// Asks every replica to stop the turn it runs in this session (PostgreSQL `NOTIFY`; on
    /// SQLite there is only one server, which stops its own turns directly).
    pub async fn request_stop(&self, session_id: &str) -> Result<(), StoreError> {
        self.notify(STOP_CHANNEL, session_id).await
    }

    /// The sessions other replicas asked to stop, as the requests arrive (PostgreSQL only:
    /// `None` on SQLite). The stream ends when the listening connection fails for good.
    pub async fn stop_requests(
        &self,
    ) -> Result<Option<futures::stream::BoxStream<'static, String>>, StoreError> {
        self.listen(STOP_CHANNEL).await
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

/// Inserts a message (and nothing else); returns it as stored.
async fn insert_only(
    tx: &mut dyn WriteTx,
    session_id: &str,
    role: MessageRole,
    content: &str,
    interrupted: bool,
) -> Result<StoredMessage, StoreError> {
    let now = now_millis();
    let id = tx
        .insert_returning_id(
            "INSERT INTO messages (session_id, role, content, interrupted, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            args![session_id, role.as_str(), content, interrupted, now],
        )
        .await?;
    Ok(StoredMessage {
        id,
        role,
        content: content.to_string(),
        interrupted,
        created_at: now,
    })
}

/// Marks a session as active now, and titles it when it has no title yet.
async fn touch(
    tx: &mut dyn WriteTx,
    session_id: &str,
    now: i64,
    title: Option<String>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE sessions SET updated_at = $1, title = COALESCE(title, $2) WHERE id = $3",
        args![now, title, session_id],
    )
    .await?;
    Ok(())
}

/// The last `limit` messages of a session, oldest first, inside a write job.
async fn recent_in(
    tx: &mut dyn WriteTx,
    session_id: &str,
    limit: i64,
) -> Result<Vec<StoredMessage>, StoreError> {
    let rows = tx
        .fetch_all(
            "SELECT id, role, content, interrupted, created_at FROM messages \
             WHERE session_id = $1 ORDER BY id DESC LIMIT $2",
            args![session_id, limit],
        )
        .await?;
    let mut messages = rows
        .iter()
        .map(|row| {
            Ok(StoredMessage {
                id: row.int(0)?,
                role: MessageRole::parse(&row.text(1)?),
                content: row.text(2)?,
                interrupted: row.int(3)? != 0,
                created_at: row.int(4)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    messages.reverse();
    Ok(messages)
}

/// A session's title: its first message on one line, shortened.
fn title_of(content: &str) -> String {
    let mut title: String = content.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.chars().count() > TITLE_CHARS {
        title = title.chars().take(TITLE_CHARS - 1).collect::<String>() + "…";
    }
    title
}
