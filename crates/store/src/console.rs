//! What the web console keeps: users' password hashes, sign-in sessions (tokens stored only as
//! hashes), one-time sign-in links, the audit log, wallet top-ups, and users' keys with their
//! labels and status. Every change a person makes is written together with its audit entry, in
//! one transaction.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::api_keys::{insert_key_args, new_key, IssuedKey, INSERT_KEY_LABELLED};
use crate::write::{args, WriteTx};
use crate::{new_id, now_millis, Micros, Role, Store, StoreError, User};

/// The SHA-256 of a console token (session or sign-in link), hex: the only stored form.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A signed-in console session.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub user: User,
    pub tenant_name: String,
    /// The token every state-changing form and request must carry (CSRF).
    pub csrf: String,
    pub expires_at: i64,
}

/// One key of a user, as the console lists it (never the key itself).
#[derive(Debug, Clone)]
pub struct KeySummary {
    pub id: String,
    pub label: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl KeySummary {
    /// `active`, `expired` or `revoked`, at `now`.
    pub fn status(&self, now: i64) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        }
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub created_at: i64,
}

/// One wallet top-up.
#[derive(Debug, Clone)]
pub struct TopUp {
    pub amount_micros: Micros,
    pub by: String,
    pub created_at: i64,
}

/// Cost and tokens of one day, split by who pays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DailyUsage {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub managed_micros: Micros,
    pub own_key_micros: Micros,
    pub tokens: i64,
}

/// Writes an audit entry inside a write job.
pub(crate) async fn audit_in(
    tx: &mut dyn WriteTx,
    tenant_id: &str,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit_log (id, tenant_id, actor, action, target, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![
            new_id(),
            tenant_id,
            actor,
            action,
            target,
            detail,
            now_millis()
        ],
    )
    .await?;
    Ok(())
}

impl Store {
    /// Stores a user's password hash (argon2id, made by the caller); `actor` is audited.
    pub async fn set_password_hash(
        &self,
        email: &str,
        hash: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        let user = self.user_by_email(email).await?;
        let (hash, actor) = (hash.to_string(), actor.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "UPDATE users SET password_hash = $1 WHERE id = $2",
                    args![&hash, &user.id],
                )
                .await?;
                // A new password ends every console session of the user.
                tx.execute(
                    "DELETE FROM console_sessions WHERE user_id = $1",
                    args![&user.id],
                )
                .await?;
                audit_in(tx, &user.tenant_id, &actor, "password set", &user.email, "").await
            })
        })
        .await
    }

    /// The user with this email and their password hash (`None` until one is set).
    pub async fn user_with_password(
        &self,
        email: &str,
    ) -> Result<(User, Option<String>), StoreError> {
        let user = self.user_by_email(email).await?;
        let hash: Option<String> =
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(&user.id)
                .fetch_one(&self.pool)
                .await?;
        Ok((user, hash))
    }

    /// Starts a console session for a user; returns its token (shown once, as the cookie).
    pub async fn start_console_session(
        &self,
        user_id: &str,
        ttl_millis: i64,
    ) -> Result<String, StoreError> {
        let token = crate::api_keys::generate_token(48);
        let csrf = crate::api_keys::generate_token(32);
        let now = now_millis();
        self.execute(
            "INSERT INTO console_sessions (token_hash, user_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
            args![token_hash(&token), user_id, csrf, now, now + ttl_millis],
        )
        .await?;
        Ok(token)
    }

    /// The live session of this token, with its user (`None` when unknown or expired).
    pub async fn console_session(&self, token: &str) -> Result<Option<ConsoleSession>, StoreError> {
        let row = sqlx::query(
            "SELECT s.csrf, s.expires_at, u.id, u.tenant_id, u.email, u.role, u.api_access, \
                    u.created_at, t.name AS tenant_name \
             FROM console_sessions s JOIN users u ON u.id = s.user_id \
             JOIN tenants t ON t.id = u.tenant_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash(token))
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let role: String = row.try_get("role")?;
        Ok(Some(ConsoleSession {
            user: User {
                id: row.try_get("id")?,
                tenant_id: row.try_get("tenant_id")?,
                email: row.try_get("email")?,
                role: role.parse().map_err(StoreError::Invalid)?,
                api_access: row.try_get::<i64, _>("api_access")? != 0,
                created_at: row.try_get("created_at")?,
            },
            tenant_name: row.try_get("tenant_name")?,
            csrf: row.try_get("csrf")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    /// Ends a console session (for every replica: the row is gone).
    pub async fn end_console_session(&self, token: &str) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM console_sessions WHERE token_hash = $1 OR expires_at < $2",
            args![token_hash(token), now_millis()],
        )
        .await?;
        Ok(())
    }

    /// Makes a one-time sign-in link token for a user, valid for `ttl_millis`: it lets them
    /// set a password.
    pub async fn create_sign_in_link(
        &self,
        email: &str,
        ttl_millis: i64,
        actor: &str,
    ) -> Result<String, StoreError> {
        let user = self.user_by_email(email).await?;
        let token = crate::api_keys::generate_token(48);
        let hash = token_hash(&token);
        let actor = actor.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO sign_in_links (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
                    args![&hash, &user.id, now_millis() + ttl_millis],
                )
                .await?;
                audit_in(
                    tx,
                    &user.tenant_id,
                    &actor,
                    "sign-in link made",
                    &user.email,
                    "",
                )
                .await
            })
        })
        .await?;
        Ok(token)
    }

    /// The user a sign-in link is for, while it is unused and valid.
    pub async fn sign_in_link_user(&self, token: &str) -> Result<Option<User>, StoreError> {
        let user_id: Option<String> = sqlx::query_scalar(
            "SELECT user_id FROM sign_in_links WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash(token))
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?;
        match user_id {
            Some(id) => Ok(Some(self.user_by_id(&id).await?)),
            None => Ok(None),
        }
    }

    /// Uses a sign-in link once: sets the user's password hash; false when the link was used
    /// or expired meanwhile.
    pub async fn use_sign_in_link(&self, token: &str, hash: &str) -> Result<bool, StoreError> {
        let (link, hash) = (token_hash(token), hash.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                let now = now_millis();
                let changed = tx
                    .execute(
                        "UPDATE sign_in_links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
                        args![now, &link],
                    )
                    .await?;
                if changed == 0 {
                    return Ok(false);
                }
                let row = tx
                    .fetch_optional(
                        "SELECT u.id, u.tenant_id, u.email FROM sign_in_links l JOIN users u ON u.id = l.user_id WHERE l.token_hash = $1",
                        args![&link],
                    )
                    .await?
                    .ok_or_else(|| StoreError::NotFound("the link's user".into()))?;
                let (user_id, tenant_id, email) = (row.text(0)?, row.text(1)?, row.text(2)?);
                tx.execute(
                    "UPDATE users SET password_hash = $1 WHERE id = $2",
                    args![&hash, &user_id],
                )
                .await?;
                tx.execute(
                    "DELETE FROM console_sessions WHERE user_id = $1",
                    args![&user_id],
                )
                .await?;
                audit_in(tx, &tenant_id, &email, "password set", &email, "with a sign-in link")
                    .await?;
                Ok(true)
            })
        })
        .await
    }

    /// The users of a tenant, by email.
    pub async fn tenant_users(&self, tenant_id: &str) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, email, role, api_access, created_at FROM users \
             WHERE tenant_id = $1 ORDER BY email",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let role: String = row.try_get("role")?;
                Ok(User {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    email: row.try_get("email")?,
                    role: role.parse().map_err(StoreError::Invalid)?,
                    api_access: row.try_get::<i64, _>("api_access")? != 0,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Changes a user's role and API access; `actor` is audited.
    pub async fn update_user(
        &self,
        user_id: &str,
        role: Role,
        api_access: bool,
        actor: &str,
    ) -> Result<User, StoreError> {
        let user = self.user_by_id(user_id).await?;
        let actor = actor.to_string();
        let (id, tenant_id, email) = (user.id.clone(), user.tenant_id.clone(), user.email.clone());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "UPDATE users SET role = $1, api_access = $2 WHERE id = $3",
                    args![role.as_str(), api_access, &id],
                )
                .await?;
                let detail = format!(
                    "role {}, API access {}",
                    role.as_str(),
                    if api_access { "on" } else { "off" }
                );
                audit_in(tx, &tenant_id, &actor, "user changed", &email, &detail).await
            })
        })
        .await?;
        self.announce_access_change().await?;
        self.user_by_id(user_id).await
    }

    /// Issues a labelled key for a user; `actor` is audited with the change.
    pub async fn issue_api_key(
        &self,
        user_id: &str,
        label: &str,
        ttl_millis: Option<i64>,
        actor: &str,
    ) -> Result<IssuedKey, StoreError> {
        let user = self.user_by_id(user_id).await?;
        let issued = new_key(ttl_millis);
        let mut values = insert_key_args(&issued, &user.id);
        values.push(label.into());
        let actor = actor.to_string();
        let detail = match issued.expires_at {
            Some(at) => format!("'{label}', expires {}", crate::day_of(at)),
            None => format!("'{label}', never expires"),
        };
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(INSERT_KEY_LABELLED, values).await?;
                audit_in(
                    tx,
                    &user.tenant_id,
                    &actor,
                    "key generated",
                    &user.email,
                    &detail,
                )
                .await
            })
        })
        .await?;
        Ok(issued)
    }

    /// A user's keys, newest first (never the keys themselves).
    pub async fn user_keys(&self, user_id: &str) -> Result<Vec<KeySummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, label, created_at, expires_at, revoked_at, last_used_at FROM api_keys \
             WHERE user_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(KeySummary {
                    id: row.try_get("id")?,
                    label: row.try_get("label")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                })
            })
            .collect()
    }

    /// Revokes one key of a user; false when it was revoked already (or is not theirs).
    pub async fn revoke_api_key(
        &self,
        user_id: &str,
        key_id: &str,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let user = self.user_by_id(user_id).await?;
        let (key_id, actor) = (key_id.to_string(), actor.to_string());
        let revoked = self
            .write(move |tx| {
                Box::pin(async move {
                    let changed = tx
                        .execute(
                            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
                            args![now_millis(), &key_id, &user.id],
                        )
                        .await?;
                    if changed > 0 {
                        audit_in(tx, &user.tenant_id, &actor, "key revoked", &user.email, &key_id)
                            .await?;
                    }
                    Ok(changed > 0)
                })
            })
            .await?;
        if revoked {
            self.announce_access_change().await?;
        }
        Ok(revoked)
    }

    /// The tenant's audit log, newest first.
    pub async fn audit_log(
        &self,
        tenant_id: &str,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT actor, action, target, detail, created_at FROM audit_log \
             WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(tenant_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    detail: row.try_get("detail")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The tenant's wallet top-ups, newest first.
    pub async fn top_ups(&self, tenant_id: &str) -> Result<Vec<TopUp>, StoreError> {
        let rows = sqlx::query(
            "SELECT amount_micros, by_who, created_at FROM wallet_topups \
             WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT 200",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TopUp {
                    amount_micros: row.try_get("amount_micros")?,
                    by: row.try_get("by_who")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The tenant's cost and tokens per day of a month (`YYYY-MM`), by who pays.
    pub async fn daily_usage(
        &self,
        tenant_id: &str,
        user_id: Option<&str>,
        month: &str,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT created_at, usage_type, cost_micros, prompt_tokens + completion_tokens AS tokens \
             FROM usage_ledger WHERE tenant_id = $1 AND month = $2 AND user_id = COALESCE($3, user_id)",
        )
        .bind(tenant_id)
        .bind(month)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let mut days: std::collections::BTreeMap<String, DailyUsage> = Default::default();
        for row in &rows {
            let at: i64 = row.try_get("created_at")?;
            let day = crate::day_of(at);
            let entry = days.entry(day.clone()).or_insert_with(|| DailyUsage {
                day,
                ..DailyUsage::default()
            });
            let cost: i64 = row.try_get("cost_micros")?;
            let usage_type: String = row.try_get("usage_type")?;
            if usage_type == "own_key" {
                entry.own_key_micros += cost;
            } else {
                entry.managed_micros += cost;
            }
            entry.tokens += row.try_get::<i64, _>("tokens")?;
        }
        Ok(days.into_values().collect())
    }

    /// What a session's usage since `since` (milliseconds) cost, in micro-dollars, and its
    /// tokens: the last turn's, when `since` is that turn's user message.
    pub async fn session_usage_since(
        &self,
        tenant_id: &str,
        session_id: &str,
        since: i64,
    ) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost, \
                    CAST(COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS BIGINT) AS tokens \
             FROM usage_ledger WHERE tenant_id = $1 AND session_id = $2 AND created_at >= $3",
        )
        .bind(tenant_id)
        .bind(session_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("cost")?, row.try_get("tokens")?))
    }
}
