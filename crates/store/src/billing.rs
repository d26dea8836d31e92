//! The usage ledger, spending reservations, wallets and own LLM keys. Every money decision that
//! must be atomic across replicas happens here, inside one database transaction.

use sqlx::Row;

use crate::db::Backend;
use crate::{new_id, Micros, Store, StoreError};

/// `managed` (billed against allowance and wallet) or `own_key` (the tenant pays its provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageType {
    Managed,
    OwnKey,
}

impl UsageType {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageType::Managed => "managed",
            UsageType::OwnKey => "own_key",
        }
    }
}

/// One billed call to record.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub tenant_id: String,
    pub user_id: String,
    pub key_id: Option<String>,
    pub session_id: Option<String>,
    /// `llm` or `tool`.
    pub kind: &'static str,
    /// The model or tool name.
    pub item: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: Micros,
    pub usage_type: UsageType,
    /// `YYYY-MM` of the billing clock.
    pub month: String,
    pub created_at: i64,
}

/// Aggregated usage of one model or tool (or of everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageTotals {
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: Micros,
}

/// One row of a usage breakdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub user_email: String,
    pub kind: String,
    pub item: String,
    pub usage_type: String,
    pub totals: UsageTotals,
}

/// A stored own LLM key (sealed with the master key).
#[derive(Debug, Clone)]
pub struct StoredOwnKey {
    /// `global`, or the tenant id.
    pub scope: String,
    pub sealed_key: String,
    pub masked: String,
}

/// The allowance and wallet of a tenant as the reservation saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub managed_spent: Micros,
    pub reserved: Micros,
    pub wallet: Micros,
}

impl Store {
    fn for_update(&self) -> &'static str {
        match self.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// Reserves `amount` against the tenant's allowance and wallet while anything is left after
    /// this month's managed spending and the reservations still in flight. The check and the
    /// reservation are one transaction holding the tenant's row, so concurrent requests on any
    /// number of replicas see each other's reservations: together they can overspend by at most
    /// what the last one granted reserved. `None`: nothing left.
    pub async fn try_reserve(
        &self,
        tenant_id: &str,
        month: &str,
        allowance: Micros,
        amount: Micros,
        now: i64,
        expires_at: i64,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let wallet: Micros = sqlx::query_scalar(&format!(
            "SELECT wallet_micros FROM tenants WHERE id = $1{}",
            self.for_update()
        ))
        .bind(tenant_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant_id}")))?;
        let spent: Micros = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM usage_ledger \
             WHERE tenant_id = $1 AND month = $2 AND usage_type = 'managed'",
        )
        .bind(tenant_id)
        .bind(month)
        .fetch_one(&mut *tx)
        .await?;
        let reserved: Micros = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM usage_reservations \
             WHERE tenant_id = $1 AND expires_at > $2",
        )
        .bind(tenant_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let left = (allowance - spent).max(0) + wallet - reserved;
        if left <= 0 {
            return Ok(None);
        }
        let id = new_id();
        sqlx::query("INSERT INTO usage_reservations (id, tenant_id, amount_micros, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(tenant_id)
            .bind(amount)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM usage_reservations WHERE tenant_id = $1 AND expires_at <= $2")
            .bind(tenant_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// Records a call's actual cost, releases its reservation, and takes from the wallet the
    /// part of a managed cost beyond the month's allowance — all in one transaction.
    pub async fn settle_usage(
        &self,
        reservation_id: Option<&str>,
        allowance: Micros,
        entry: &LedgerEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "SELECT id FROM tenants WHERE id = $1{}",
            self.for_update()
        ))
        .bind(&entry.tenant_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = reservation_id {
            sqlx::query("DELETE FROM usage_reservations WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if entry.usage_type == UsageType::Managed && entry.cost_micros > 0 {
            let spent: Micros = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM usage_ledger \
                 WHERE tenant_id = $1 AND month = $2 AND usage_type = 'managed'",
            )
            .bind(&entry.tenant_id)
            .bind(&entry.month)
            .fetch_one(&mut *tx)
            .await?;
            let over_before = (spent - allowance).max(0);
            let over_after = (spent + entry.cost_micros - allowance).max(0);
            let from_wallet = over_after - over_before;
            if from_wallet > 0 {
                sqlx::query("UPDATE tenants SET wallet_micros = wallet_micros - $1 WHERE id = $2")
                    .bind(from_wallet)
                    .bind(&entry.tenant_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query(
            "INSERT INTO usage_ledger (id, tenant_id, user_id, key_id, session_id, kind, item, prompt_tokens, \
             completion_tokens, cost_micros, usage_type, month, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(new_id())
        .bind(&entry.tenant_id)
        .bind(&entry.user_id)
        .bind(&entry.key_id)
        .bind(&entry.session_id)
        .bind(entry.kind)
        .bind(&entry.item)
        .bind(entry.prompt_tokens)
        .bind(entry.completion_tokens)
        .bind(entry.cost_micros)
        .bind(entry.usage_type.as_str())
        .bind(&entry.month)
        .bind(entry.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Releases a reservation whose work never happened.
    pub async fn release_reservation(&self, reservation_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM usage_reservations WHERE id = $1")
            .bind(reservation_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// This month's managed spending, live reservations and wallet of a tenant.
    pub async fn budget(
        &self,
        tenant_id: &str,
        month: &str,
        now: i64,
    ) -> Result<Budget, StoreError> {
        let wallet: Micros = sqlx::query_scalar("SELECT wallet_micros FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant_id}")))?;
        let managed_spent: Micros = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM usage_ledger \
             WHERE tenant_id = $1 AND month = $2 AND usage_type = 'managed'",
        )
        .bind(tenant_id)
        .bind(month)
        .fetch_one(&self.pool)
        .await?;
        let reserved: Micros = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM usage_reservations WHERE tenant_id = $1 AND expires_at > $2",
        )
        .bind(tenant_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(Budget {
            managed_spent,
            reserved,
            wallet,
        })
    }

    /// This month's usage of a tenant, grouped by user, kind, item and usage type.
    pub async fn usage_rows(
        &self,
        tenant_id: &str,
        month: &str,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT COALESCE(u.email, l.user_id) AS email, l.kind, l.item, l.usage_type, \
                    CAST(COUNT(*) AS BIGINT) AS calls, \
                    CAST(SUM(l.prompt_tokens) AS BIGINT) AS prompt_tokens, \
                    CAST(SUM(l.completion_tokens) AS BIGINT) AS completion_tokens, \
                    CAST(SUM(l.cost_micros) AS BIGINT) AS cost_micros \
             FROM usage_ledger l LEFT JOIN users u ON u.id = l.user_id \
             WHERE l.tenant_id = $1 AND l.month = $2 \
             GROUP BY COALESCE(u.email, l.user_id), l.kind, l.item, l.usage_type \
             ORDER BY 1, 2, 3, 4",
        )
        .bind(tenant_id)
        .bind(month)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(UsageRow {
                    user_email: row.try_get("email")?,
                    kind: row.try_get("kind")?,
                    item: row.try_get("item")?,
                    usage_type: row.try_get("usage_type")?,
                    totals: UsageTotals {
                        calls: row.try_get("calls")?,
                        prompt_tokens: row.try_get("prompt_tokens")?,
                        completion_tokens: row.try_get("completion_tokens")?,
                        cost_micros: row.try_get("cost_micros")?,
                    },
                })
            })
            .collect()
    }

    /// Adds money to a tenant's wallet; returns the new balance.
    pub async fn top_up_wallet(
        &self,
        tenant_name: &str,
        amount: Micros,
    ) -> Result<Micros, StoreError> {
        if amount <= 0 {
            return Err(StoreError::Invalid("a top-up must be more than $0".into()));
        }
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("UPDATE tenants SET wallet_micros = wallet_micros + $1 WHERE name = $2")
                .bind(amount)
                .bind(tenant_name)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("tenant '{tenant_name}'")));
        }
        let balance: Micros =
            sqlx::query_scalar("SELECT wallet_micros FROM tenants WHERE name = $1")
                .bind(tenant_name)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(balance)
    }

    /// Stores (or replaces) the own LLM key of a scope.
    pub async fn put_own_key(&self, key: &StoredOwnKey, set_by: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM own_llm_keys WHERE scope = $1")
            .bind(&key.scope)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO own_llm_keys (scope, sealed_key, masked, set_by, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&key.scope)
            .bind(&key.sealed_key)
            .bind(&key.masked)
            .bind(set_by)
            .bind(crate::now_millis())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The own LLM key of a scope.
    pub async fn own_key(&self, scope: &str) -> Result<Option<StoredOwnKey>, StoreError> {
        let row =
            sqlx::query("SELECT scope, sealed_key, masked FROM own_llm_keys WHERE scope = $1")
                .bind(scope)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| {
            Ok(StoredOwnKey {
                scope: row.try_get("scope")?,
                sealed_key: row.try_get("sealed_key")?,
                masked: row.try_get("masked")?,
            })
        })
        .transpose()
    }

    /// Removes the own LLM key of a scope; true when there was one.
    pub async fn delete_own_key(&self, scope: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM own_llm_keys WHERE scope = $1")
            .bind(scope)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
