//! API keys: issued once as 256 random alphanumeric characters, stored only as SHA-256 hashes.

use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::write::{args, Arg};
use crate::{new_id, now_millis, Role, Store, StoreError};

/// The length of every API key.
pub const KEY_LENGTH: usize = 256;

/// The super-admin a first start creates.
pub const BOOTSTRAP_ADMIN_EMAIL: &str = "admin@localhost";

/// The SHA-256 of an API key, hex-encoded: the only form in which keys are stored.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyHash(String);

impl ApiKeyHash {
    /// Hashes a presented key.
    pub fn of(key: &str) -> ApiKeyHash {
        ApiKeyHash(hex::encode(Sha256::digest(key.as_bytes())))
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeyHash({}…)", &self.0[..8.min(self.0.len())])
    }
}

/// A freshly issued key: the plain key exists only here and is shown once.
pub struct IssuedKey {
    pub key_id: String,
    pub key: String,
    pub expires_at: Option<i64>,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("key_id", &self.key_id)
            .field("key", &"***")
            .finish()
    }
}

/// Everything authentication needs to know about a stored key, its user and its tenant.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub key_id: String,
    pub user_id: String,
    pub email: String,
    pub role: Role,
    pub api_access: bool,
    pub tenant_id: String,
    pub tenant_name: String,
    pub ai_enabled: bool,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Draws a new key from the operating system's CSPRNG.
pub(crate) fn generate_key() -> String {
    generate_token(KEY_LENGTH)
}

/// `len` random letters and digits from the operating system's CSPRNG.
pub(crate) fn generate_token(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, len)
}

const ACCESS_CHANNEL: &str = "integrator_access_changed";

impl Store {
    /// Issues a new key for the user with this email, optionally expiring after `ttl_millis`;
    /// `actor` is audited.
    pub async fn create_api_key(
        &self,
        email: &str,
        ttl_millis: Option<i64>,
        actor: &str,
    ) -> Result<IssuedKey, StoreError> {
        let user = self.user_by_email(email).await?;
        self.issue_api_key(&user.id, "", ttl_millis, actor).await
    }

    /// Revokes every active key of the user with this email; returns how many were revoked.
    pub async fn revoke_api_keys(&self, email: &str, actor: &str) -> Result<u64, StoreError> {
        let user = self.user_by_email(email).await?;
        let values = args![now_millis(), &user.id];
        let actor = actor.to_string();
        let revoked = self
            .write(move |tx| {
                Box::pin(async move {
                    let revoked = tx
                        .execute(
                            "UPDATE api_keys SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
                            values,
                        )
                        .await?;
                    if revoked > 0 {
                        crate::console::audit_in(
                            tx,
                            &user.tenant_id,
                            &actor,
                            "key revoked",
                            &user.email,
                            &format!("all {revoked} active key(s)"),
                        )
                        .await?;
                    }
                    Ok(revoked)
                })
            })
            .await?;
        self.announce_access_change().await?;
        Ok(revoked)
    }

    /// Tells every replica that keys, users or tenants changed in a way that may refuse a key
    /// that was accepted a moment ago (revocation, AI or API access switched off), so they
    /// forget what they cached (PostgreSQL `NOTIFY`; on SQLite the cache expires by itself).
    pub async fn announce_access_change(&self) -> Result<(), StoreError> {
        self.notify(ACCESS_CHANNEL, "").await
    }

    /// A signal for every announced access change (PostgreSQL only: `None` on SQLite).
    pub async fn access_changes(
        &self,
    ) -> Result<Option<futures::stream::BoxStream<'static, String>>, StoreError> {
        self.listen(ACCESS_CHANNEL).await
    }

    /// Looks a presented key up by its hash, with its user and tenant.
    pub async fn find_api_key(&self, hash: &ApiKeyHash) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT k.id AS key_id, k.expires_at, k.revoked_at, u.id AS user_id, u.email, u.role, \
                    u.api_access, t.id AS tenant_id, t.name AS tenant_name, t.ai_enabled \
             FROM api_keys k JOIN users u ON u.id = k.user_id JOIN tenants t ON t.id = u.tenant_id \
             WHERE k.key_hash = $1",
        )
        .bind(hash.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let role: String = row.try_get("role")?;
        Ok(Some(KeyRecord {
            key_id: row.try_get("key_id")?,
            user_id: row.try_get("user_id")?,
            email: row.try_get("email")?,
            role: role.parse().map_err(StoreError::Invalid)?,
            api_access: row.try_get::<i64, _>("api_access")? != 0,
            tenant_id: row.try_get("tenant_id")?,
            tenant_name: row.try_get("tenant_name")?,
            ai_enabled: row.try_get::<i64, _>("ai_enabled")? != 0,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
        }))
    }

    /// Records that a key was just used.
    pub async fn touch_api_key(&self, key_id: &str) -> Result<(), StoreError> {
        let values = args![now_millis(), key_id];
        self.execute(
            "UPDATE api_keys SET last_used_at = $1 WHERE id = $2",
            values,
        )
        .await?;
        Ok(())
    }

    /// When the key was last used, if ever.
    pub async fn api_key_last_used(&self, key_id: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT last_used_at FROM api_keys WHERE id = $1")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("api key {key_id}")))?;
        Ok(row.try_get("last_used_at")?)
    }

    /// On a database without tenants, creates tenant `default`, super-admin [`BOOTSTRAP_ADMIN_EMAIL`]
    /// and a key for it, all in one transaction. Returns the key, or `None` when the database
    /// already had accounts (or another replica bootstrapped it first).
    pub async fn bootstrap_if_empty(&self) -> Result<Option<IssuedKey>, StoreError> {
        if self.tenant_count().await? > 0 {
            return Ok(None);
        }
        let now = now_millis();
        let tenant_id = new_id();
        let user_id = new_id();
        let issued = new_key(None);
        let tenant_values = args![&tenant_id, now];
        let user_values = args![&user_id, &tenant_id, now, BOOTSTRAP_ADMIN_EMAIL];
        let key_values = insert_key_args(&issued, &user_id);
        let created = self
            .write(move |tx| {
                Box::pin(async move {
                    let existing = tx
                        .fetch_optional("SELECT COUNT(*) FROM tenants", args![])
                        .await?
                        .map_or(Ok(0), |row| row.int(0))?;
                    if existing > 0 {
                        return Ok(false);
                    }
                    let inserted = tx
                        .execute(
                            "INSERT INTO tenants (id, name, tier, allowance_micros, ai_enabled, wallet_micros, created_at) \
                             VALUES ($1, 'default', 'professional', NULL, 1, 0, $2)",
                            tenant_values,
                        )
                        .await;
                    match inserted {
                        Err(e) if e.is_unique_violation() => return Ok(false),
                        other => other?,
                    };
                    tx.execute(
                        "INSERT INTO users (id, tenant_id, email, role, api_access, created_at) \
                         VALUES ($1, $2, $4, 'super_admin', 1, $3)",
                        user_values,
                    )
                    .await?;
                    tx.execute(INSERT_KEY, key_values).await?;
                    Ok(true)
                })
            })
            .await?;
        Ok(created.then_some(issued))
    }
}

const INSERT_KEY: &str = "INSERT INTO api_keys (id, user_id, key_hash, created_at, expires_at) \
                          VALUES ($1, $2, $3, $4, $5)";

/// [`INSERT_KEY`] with the key's label as `$6`.
pub(crate) const INSERT_KEY_LABELLED: &str =
    "INSERT INTO api_keys (id, user_id, key_hash, created_at, expires_at, label) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// A new key (not yet stored), optionally expiring after `ttl_millis`.
pub(crate) fn new_key(ttl_millis: Option<i64>) -> IssuedKey {
    let now = now_millis();
    IssuedKey {
        key_id: new_id(),
        expires_at: ttl_millis.map(|ttl| now.saturating_add(ttl)),
        key: generate_key(),
    }
}

/// The arguments of [`INSERT_KEY`]: the key is stored only as its hash.
pub(crate) fn insert_key_args(issued: &IssuedKey, user_id: &str) -> Vec<Arg> {
    args![
        &issued.key_id,
        user_id,
        ApiKeyHash::of(&issued.key).as_str(),
        now_millis(),
        issued.expires_at
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_256_alphanumeric_characters_and_unique() {
        let a = generate_key();
        let b = generate_key();
        assert_eq!(a.len(), KEY_LENGTH);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert_eq!(ApiKeyHash::of(&a), ApiKeyHash::of(&a));
        assert_ne!(ApiKeyHash::of(&a), ApiKeyHash::of(&b));
        assert_eq!(ApiKeyHash::of(&a).as_str().len(), 64);
    }
}
