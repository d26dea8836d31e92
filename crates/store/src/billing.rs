//! The usage ledger, spending reservations, wallets and own LLM keys. Every money decision that
//! must be atomic across replicas happens here, inside one database transaction.

use std::sync::Arc;

use sqlx::Row;

use crate::db::Backend;
use crate::in_flight::{Expiry, InFlight};
use crate::write::{args, WriteTx};
use crate::{new_id, Micros, Store, StoreError, Tier};

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

/// What a tenant may still spend this month, as one read saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub tier: Tier,
    /// The tenant's own monthly allowance, when it overrides its tier's.
    pub allowance_override: Option<Micros>,
    pub managed_spent: Micros,
    pub reserved: Micros,
    pub wallet: Micros,
}

impl Budget {
    /// Money left after this month's managed spending and the reservations in flight: first
    /// the rest of `allowance`, then the wallet.
    pub fn left(&self, allowance: Micros) -> Micros {
        (allowance - self.managed_spent).max(0) + self.wallet - self.reserved
    }
}

/// The budget of a tenant in one statement: its row, this month's running total, and
/// `$reserved`, what its reservations kept as rows set aside.
macro_rules! budget_select {
    ($reserved:literal) => {
        concat!(
            "SELECT t.tier, t.allowance_micros, t.wallet_micros, \
             COALESCE((SELECT m.managed_micros FROM usage_month_totals m \
                       WHERE m.tenant_id = t.id AND m.month = $2), 0) AS managed_spent, ",
            $reserved,
            " AS reserved FROM tenants t WHERE t.id = $1"
        )
    };
}

/// The budget where reservations are rows ([`InFlight::Rows`]): their running total less the
/// expired ones not deleted yet.
const BUDGET_SELECT: &str = budget_select!(
    "t.reserved_micros - (SELECT CAST(COALESCE(SUM(r.amount_micros), 0) AS BIGINT) \
     FROM usage_reservations r WHERE r.tenant_id = t.id AND r.expires_at <= $3)"
);

/// The budget where reservations are held in this process ([`InFlight::Local`]): no rows to
/// read (`held_here` adds what is held).
const BUDGET_SELECT_HELD_HERE: &str = budget_select!("0");

/// Holds a tenant's row until the job's transaction ends (on PostgreSQL; on SQLite the writer
/// holds the one write lock already). A statement of its own: in READ COMMITTED, the
/// statements after it take their snapshots after the lock is granted and see what the
/// previous holder committed.
async fn lock_tenant(tx: &mut dyn WriteTx, tenant_id: &str) -> Result<(), StoreError> {
    if tx.backend() == Backend::Postgres {
        tx.execute(
            "SELECT id FROM tenants WHERE id = $1 FOR UPDATE",
            args![tenant_id],
        )
        .await?;
    }
    Ok(())
}

/// The budget of a tenant inside a write job, holding the tenant's row until the job's
/// transaction ends on PostgreSQL (on SQLite the writer holds the one write lock already).
async fn locked_budget(
    tx: &mut dyn WriteTx,
    in_flight: &InFlight,
    tenant_id: &str,
    month: &str,
    now: i64,
) -> Result<Budget, StoreError> {
    lock_tenant(tx, tenant_id).await?;
    let row = tx
        .fetch_optional(
            match in_flight {
                InFlight::Rows { .. } => BUDGET_SELECT,
                InFlight::Local(_) => BUDGET_SELECT_HELD_HERE,
            },
            args![tenant_id, month, now],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant_id}")))?;
    Ok(Budget {
        tier: row.text(0)?.parse().map_err(StoreError::Invalid)?,
        allowance_override: row.opt_int(1)?,
        wallet: row.int(2)?,
        managed_spent: row.int(3)?,
        reserved: row.int(4)? + in_flight.held_here(tenant_id, now),
    })
}

/// A tenant's monthly allowance from its tier and override, as a value write jobs take along.
#[derive(Clone)]
pub struct AllowanceOf(Arc<dyn Fn(Tier, Option<Micros>) -> Micros + Send + Sync>);

impl AllowanceOf {
    pub fn new(of: impl Fn(Tier, Option<Micros>) -> Micros + Send + Sync + 'static) -> Self {
        AllowanceOf(Arc::new(of))
    }

    /// The allowance of a tenant of this tier with this override.
    pub fn of(&self, tier: Tier, allowance_override: Option<Micros>) -> Micros {
        (self.0)(tier, allowance_override)
    }
}

impl std::fmt::Debug for AllowanceOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AllowanceOf(..)")
    }
}

/// Money to set aside for work about to start: `amount` against the tenant's allowance and
/// wallet, while anything is left after this month's managed spending and the reservations
/// still in flight.
#[derive(Debug, Clone)]
pub struct ReservationRequest {
    pub tenant_id: String,
    /// `YYYY-MM` of the billing clock.
    pub month: String,
    pub amount: Micros,
    pub now: i64,
    /// When the money is free again should the work never settle (a crash), unless the
    /// process doing the work renews it meanwhile ([`Store::renew_reservations`]).
    pub expires_at: i64,
    /// The latest renewals may keep it: beyond it, even live work holds nothing (a bound on
    /// what a reservation that was never settled by mistake can hold).
    pub longest_until: i64,
    /// The tenant's monthly allowance from its tier and override.
    pub allowance_of: AllowanceOf,
}

/// Makes a reservation inside a write job; `None`, with nothing written, when nothing is left.
/// The check and the insert happen in the job's transaction, which holds the tenant's row (or
/// SQLite's write lock): concurrent requests on any number of replicas see each other's
/// reservations, so together they overspend by at most what the last one granted reserved.
pub(crate) async fn reserve_in(
    tx: &mut dyn WriteTx,
    in_flight: &InFlight,
    request: &ReservationRequest,
    id: &str,
) -> Result<bool, StoreError> {
    if !budget_left_in(tx, in_flight, request).await? {
        return Ok(false);
    }
    insert_reservation_in(tx, in_flight, request, id).await?;
    Ok(true)
}

/// Whether anything is left for the request (read under the job's lock).
pub(crate) async fn budget_left_in(
    tx: &mut dyn WriteTx,
    in_flight: &InFlight,
    request: &ReservationRequest,
) -> Result<bool, StoreError> {
    let budget = locked_budget(
        tx,
        in_flight,
        &request.tenant_id,
        &request.month,
        request.now,
    )
    .await?;
    Ok(budget.left(
        request
            .allowance_of
            .of(budget.tier, budget.allowance_override),
    ) > 0)
}

/// Makes the reservation `id` (after [`budget_left_in`] said yes, in the same job). Rows
/// expired (left by a crash) are dropped when usage settles. A reservation held in this
/// process is not undone with the job: the caller releases it when the job fails.
pub(crate) async fn insert_reservation_in(
    tx: &mut dyn WriteTx,
    in_flight: &InFlight,
    request: &ReservationRequest,
    id: &str,
) -> Result<(), StoreError> {
    let holder = match in_flight {
        InFlight::Local(local) => {
            let expires = Expiry {
                at: request.expires_at,
                longest_until: request.longest_until,
            };
            local.hold(id, &request.tenant_id, request.amount, expires);
            return Ok(());
        }
        InFlight::Rows { holder } => holder.to_string(),
    };
    tx.execute(
        "INSERT INTO usage_reservations (id, tenant_id, amount_micros, expires_at, holder, longest_until) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        args![
            id,
            &request.tenant_id,
            request.amount,
            request.expires_at,
            holder,
            request.longest_until
        ],
    )
    .await?;
    tx.execute(
        "UPDATE tenants SET reserved_micros = reserved_micros + $1 WHERE id = $2",
        args![request.amount, &request.tenant_id],
    )
    .await?;
    Ok(())
}

/// Deletes reservations of a tenant — the one with `id`, and every one expired at `now` —
/// and takes what they set aside off the tenant's running total. The tenant's row must be
/// locked already (see [`locked_budget`]): every change to a tenant's reservations takes that
/// lock first, so two jobs never drop the same reservation's amount twice.
async fn drop_reservations_in(
    tx: &mut dyn WriteTx,
    in_flight: &InFlight,
    tenant_id: &str,
    id: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    match in_flight {
        InFlight::Local(local) => {
            if let Some(id) = id {
                local.release(id);
            }
            Ok(())
        }
        InFlight::Rows { .. } => drop_reservation_rows_in(tx, tenant_id, id, now).await,
    }
}

/// [`drop_reservations_in`] for reservations that are rows (PostgreSQL).
async fn drop_reservation_rows_in(
    tx: &mut dyn WriteTx,
    tenant_id: &str,
    id: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let mut freed = 0;
    if let Some(id) = id {
        freed += deleted_amounts(
            tx,
            "DELETE FROM usage_reservations WHERE id = $1 AND tenant_id = $2 RETURNING amount_micros",
            args![id, tenant_id],
        )
        .await?;
    }
    // Reservations whose work never settled (a crash) hold nothing once expired.
    freed += deleted_amounts(
        tx,
        "DELETE FROM usage_reservations WHERE tenant_id = $1 AND expires_at <= $2 RETURNING amount_micros",
        args![tenant_id, now],
    )
    .await?;
    if freed != 0 {
        tx.execute(
            "UPDATE tenants SET reserved_micros = reserved_micros - $1 WHERE id = $2",
            args![freed, tenant_id],
        )
        .await?;
    }
    Ok(())
}

/// Runs a `DELETE … RETURNING amount_micros` of reservations; returns what they held.
async fn deleted_amounts(
    tx: &mut dyn WriteTx,
    sql: &str,
    args: Vec<crate::write::Arg>,
) -> Result<Micros, StoreError> {
    let mut freed = 0;
    for row in tx.fetch_all(sql, args).await? {
        freed += row.int(0)?;
    }
    Ok(freed)
}

/// A call's actual cost, to record against the reservation made for it.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// The reservation to release (none for own keys and the builtin responder).
    pub reservation_id: Option<String>,
    /// The tenant's monthly allowance from its tier and override.
    pub allowance_of: AllowanceOf,
    pub entry: LedgerEntry,
}

/// Carries out a settlement inside a write job (see [`Store::settle_usage`]).
pub(crate) async fn settle_in(
    tx: &mut dyn WriteTx,
    in_flight: &InFlight,
    settlement: &Settlement,
) -> Result<(), StoreError> {
    let entry = &settlement.entry;
    let budget = locked_budget(
        tx,
        in_flight,
        &entry.tenant_id,
        &entry.month,
        entry.created_at,
    )
    .await?;
    drop_reservations_in(
        tx,
        in_flight,
        &entry.tenant_id,
        settlement.reservation_id.as_deref(),
        entry.created_at,
    )
    .await?;
    if entry.usage_type == UsageType::Managed && entry.cost_micros > 0 {
        let allowance = settlement
            .allowance_of
            .of(budget.tier, budget.allowance_override);
        let spent = budget.managed_spent;
        let over_before = (spent - allowance).max(0);
        let over_after = (spent + entry.cost_micros - allowance).max(0);
        let from_wallet = over_after - over_before;
        if from_wallet > 0 {
            tx.execute(
                "UPDATE tenants SET wallet_micros = wallet_micros - $1 WHERE id = $2",
                args![from_wallet, &entry.tenant_id],
            )
            .await?;
        }
        tx.execute(
            "INSERT INTO usage_month_totals (tenant_id, month, managed_micros) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, month) \
             DO UPDATE SET managed_micros = usage_month_totals.managed_micros + EXCLUDED.managed_micros",
            args![&entry.tenant_id, &entry.month, entry.cost_micros],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO usage_ledger (id, tenant_id, user_id, key_id, session_id, kind, item, prompt_tokens, \
         completion_tokens, cost_micros, usage_type, month, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        args![
            new_id(),
            &entry.tenant_id,
            &entry.user_id,
            entry.key_id.clone(),
            entry.session_id.clone(),
            entry.kind,
            &entry.item,
            entry.prompt_tokens,
            entry.completion_tokens,
            entry.cost_micros,
            entry.usage_type.as_str(),
            &entry.month,
            entry.created_at
        ],
    )
    .await?;
    Ok(())
}

impl Store {
    /// Carries out a reservation request on its own; `None`: nothing left.
    pub async fn try_reserve(
        &self,
        request: ReservationRequest,
    ) -> Result<Option<String>, StoreError> {
        let id = new_id();
        let in_flight = self.in_flight();
        let made = {
            let id = id.clone();
            self.write(move |tx| {
                Box::pin(async move { reserve_in(tx, &in_flight, &request, &id).await })
            })
            .await
        };
        self.in_flight().release_if_failed(&made, Some(&id));
        Ok(made?.then_some(id))
    }

    /// Keeps this process's reservations that are live at `now` (their work still running)
    /// until `until`, each at most until its longest. Run more often than the hold lasts: once
    /// the process is gone, its reservations stop holding the budget when the hold runs out.
    pub async fn renew_reservations(&self, now: i64, until: i64) -> Result<(), StoreError> {
        let holder = match &self.in_flight() {
            InFlight::Local(local) => {
                local.renew(now, until);
                return Ok(());
            }
            InFlight::Rows { holder } => holder.to_string(),
        };
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "UPDATE usage_reservations SET expires_at = \
                     CASE WHEN longest_until < $1 THEN longest_until ELSE $1 END \
                     WHERE holder = $2 AND expires_at > $3 AND expires_at < $1",
                    args![until, holder, now],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// Records a call's actual cost, releases its reservation, adds a managed cost to the
    /// month's running total and takes from the wallet the part of it beyond the month's
    /// allowance — all in one transaction.
    pub async fn settle_usage(&self, settlement: Settlement) -> Result<(), StoreError> {
        let in_flight = self.in_flight();
        self.write(move |tx| Box::pin(async move { settle_in(tx, &in_flight, &settlement).await }))
            .await
    }

    /// Frees every reservation: for a process that knows it is the only server on this
    /// database (SQLite), where no work of an earlier process runs any more. (This process
    /// holds its own reservations in memory; rows are left only by versions before that.)
    pub async fn release_all_reservations(&self) -> Result<(), StoreError> {
        self.write(|tx| {
            Box::pin(async move {
                tx.execute("DELETE FROM usage_reservations", args![])
                    .await?;
                tx.execute(
                    "UPDATE tenants SET reserved_micros = 0 WHERE reserved_micros <> 0",
                    args![],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// Releases a reservation whose work never happened.
    pub async fn release_reservation(&self, reservation_id: &str) -> Result<(), StoreError> {
        if let InFlight::Local(local) = &self.in_flight() {
            local.release(reservation_id);
            return Ok(());
        }
        let id = reservation_id.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                let owner = tx
                    .fetch_optional(
                        "SELECT tenant_id FROM usage_reservations WHERE id = $1",
                        args![&id],
                    )
                    .await?;
                let Some(owner) = owner else {
                    return Ok(());
                };
                let tenant_id = owner.text(0)?;
                lock_tenant(tx, &tenant_id).await?;
                drop_reservation_rows_in(tx, &tenant_id, Some(&id), crate::now_millis()).await
            })
        })
        .await
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
        actor: &str,
    ) -> Result<Micros, StoreError> {
        if amount <= 0 {
            return Err(StoreError::Invalid("a top-up must be more than $0".into()));
        }
        let (name, actor) = (tenant_name.to_string(), actor.to_string());
        let balance = self
            .write(move |tx| {
                Box::pin(async move {
                    let changed = tx
                        .execute(
                            "UPDATE tenants SET wallet_micros = wallet_micros + $1 WHERE name = $2",
                            args![amount, &name],
                        )
                        .await?;
                    if changed == 0 {
                        return Ok(None);
                    }
                    let Some(row) = tx
                        .fetch_optional(
                            "SELECT wallet_micros, id FROM tenants WHERE name = $1",
                            args![&name],
                        )
                        .await?
                    else {
                        return Ok(None);
                    };
                    let (balance, tenant_id) = (row.int(0)?, row.text(1)?);
                    tx.execute(
                        "INSERT INTO wallet_topups (id, tenant_id, amount_micros, by_who, created_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                        args![crate::new_id(), &tenant_id, amount, &actor, crate::now_millis()],
                    )
                    .await?;
                    crate::console::audit_in(
                        tx,
                        &tenant_id,
                        &actor,
                        "wallet topped up",
                        &name,
                        &crate::format_usd(amount),
                    )
                    .await?;
                    Ok(Some(balance))
                })
            })
            .await?;
        balance.ok_or_else(|| StoreError::NotFound(format!("tenant '{tenant_name}'")))
    }

    /// Stores (or replaces) the own LLM key of a scope.
    /// `set_by` (an email) is audited in `tenant_id`'s log.
    pub async fn put_own_key(
        &self,
        key: &StoredOwnKey,
        set_by: &str,
        tenant_id: &str,
    ) -> Result<(), StoreError> {
        let scope = key.scope.clone();
        let (actor, tenant_id) = (set_by.to_string(), tenant_id.to_string());
        let detail = format!(
            "{} scope, {}",
            if key.scope == "global" {
                "global"
            } else {
                "tenant"
            },
            key.masked
        );
        let values = args![
            &key.scope,
            &key.sealed_key,
            &key.masked,
            set_by,
            crate::now_millis()
        ];
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute("DELETE FROM own_llm_keys WHERE scope = $1", args![scope])
                    .await?;
                tx.execute(
                    "INSERT INTO own_llm_keys (scope, sealed_key, masked, set_by, updated_at) VALUES ($1, $2, $3, $4, $5)",
                    values,
                )
                .await?;
                crate::console::audit_in(tx, &tenant_id, &actor, "own LLM key set", "", &detail)
                    .await
            })
        })
        .await
    }

    /// The own LLM keys of these scopes (one query), in no particular order.
    pub async fn own_keys(&self, scopes: &[&str]) -> Result<Vec<StoredOwnKey>, StoreError> {
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=scopes.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT scope, sealed_key, masked FROM own_llm_keys WHERE scope IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for scope in scopes {
            query = query.bind(*scope);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(StoredOwnKey {
                    scope: row.try_get("scope")?,
                    sealed_key: row.try_get("sealed_key")?,
                    masked: row.try_get("masked")?,
                })
            })
            .collect()
    }

    /// Removes the own LLM key of a scope; true when there was one.
    /// `actor` (an email) is audited in `tenant_id`'s log when a key was removed.
    pub async fn delete_own_key(
        &self,
        scope: &str,
        actor: &str,
        tenant_id: &str,
    ) -> Result<bool, StoreError> {
        let (scope, actor, tenant_id) =
            (scope.to_string(), actor.to_string(), tenant_id.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                let deleted = tx
                    .execute("DELETE FROM own_llm_keys WHERE scope = $1", args![&scope])
                    .await?;
                if deleted > 0 {
                    let detail = if scope == "global" {
                        "global scope"
                    } else {
                        "tenant scope"
                    };
                    crate::console::audit_in(
                        tx,
                        &tenant_id,
                        &actor,
                        "own LLM key removed",
                        "",
                        detail,
                    )
                    .await?;
                }
                Ok(deleted > 0)
            })
        })
        .await
    }
}
