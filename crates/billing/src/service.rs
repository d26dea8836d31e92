//! The billing service: reserve before billed work, settle after it, own LLM keys, reports.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use store::{
    AllowanceOf, LedgerEntry, MasterKey, Micros, ReservationRequest, Role, Settlement, Store,
    StoreError, StoredOwnKey, UsageType,
};

use crate::{Allowances, BillingClock, PriceTable};

/// How long a reservation holds money after the last sign of life of the process doing its
/// work, by default: what a crashed replica's calls keep from the tenant's budget.
pub const DEFAULT_RESERVATION_HOLD: Duration = Duration::from_secs(60);
/// The longest a reservation holds money, however long its work runs (a bound for one never
/// settled by mistake).
const RESERVATION_LONGEST_MS: i64 = 10 * 60 * 1000;
/// The global own key's scope name in storage.
const GLOBAL_SCOPE: &str = "global";

/// Why billing refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// Allowance and wallet are spent.
    #[error("AI usage cap exceeded")]
    CapExceeded,
    /// The caller's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A value given is not acceptable.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored own key cannot be decrypted with this master key")]
    Undecryptable,
}

/// Who pays: the caller of a request.
#[derive(Debug, Clone)]
pub struct Payer {
    pub tenant_id: String,
    pub user_id: String,
    pub key_id: Option<String>,
    pub session_id: Option<String>,
}

/// What is being paid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// A language-model call (an estimate before, the reported usage after).
    Llm {
        model: String,
        prompt_tokens: u64,
        completion_tokens: u64,
    },
    /// One call of a billed tool.
    Tool { name: String },
    /// The builtin responder: recorded, never charged.
    Builtin {
        prompt_tokens: u64,
        completion_tokens: u64,
    },
}

/// Money set aside for one call until it settles.
#[derive(Debug)]
#[must_use = "a reservation must be settled or released"]
pub struct Reservation {
    id: Option<String>,
    usage_type: UsageType,
}

impl Reservation {
    /// Whether this work is billed to the tenant's own provider key.
    pub fn usage_type(&self) -> UsageType {
        self.usage_type
    }
}

/// A reservation about to be made (see [`Billing::plan_reservation`]).
#[derive(Debug)]
#[must_use = "a planned reservation must be made, then settled or released"]
pub struct PlannedReservation {
    request: Option<ReservationRequest>,
    usage_type: UsageType,
}

impl PlannedReservation {
    /// What the store must write; `None` when nothing is set aside.
    pub fn request(&self) -> Option<ReservationRequest> {
        self.request.clone()
    }

    /// The reservation, once the store made it (`id`: what the store returned for
    /// [`PlannedReservation::request`]).
    pub fn made(self, id: Option<String>) -> Reservation {
        Reservation {
            id,
            usage_type: self.usage_type,
        }
    }
}

/// Whose own key is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnKeyScope {
    Tenant,
    Global,
}

/// A decrypted own provider key.
#[derive(Clone)]
pub struct OwnKey {
    pub scope: OwnKeyScope,
    pub key: String,
}

impl std::fmt::Debug for OwnKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnKey")
            .field("scope", &self.scope)
            .field("key", &"***")
            .finish()
    }
}

/// What `GET /api-key` shows: never the key itself.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OwnKeyStatus {
    pub configured: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<OwnKeyScope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked: Option<String>,
}

/// Usage of one model.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ModelUsage {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
}

/// Usage of one tool.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ToolUsage {
    pub calls: i64,
    pub cost_usd: f64,
}

/// Usage of a user or a tenant this month.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct UsageSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    pub cost_usd: f64,
    /// Of which billed to the tenant's own provider key (never capped).
    pub own_key_cost_usd: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub by_model: BTreeMap<String, ModelUsage>,
    pub by_tool: BTreeMap<String, ToolUsage>,
    /// Admins only: each user of the tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UsageSection>>,
}

/// The answer of `GET /usage`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UsageReport {
    pub month: String,
    pub user: UsageSection,
    pub tenant: UsageSection,
    pub allowance_usd: f64,
    pub allowance_used_usd: f64,
    pub allowance_left_usd: f64,
    pub wallet_usd: f64,
    pub own_key_active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub own_key_scope: Option<OwnKeyScope>,
}

fn usd(micros: Micros) -> f64 {
    micros as f64 / 1_000_000.0
}

/// The billing service.
pub struct Billing {
    store: Store,
    prices: PriceTable,
    allowances: Allowances,
    clock: BillingClock,
    master_key: MasterKey,
    own_keys: OwnKeyCache,
    /// See [`DEFAULT_RESERVATION_HOLD`].
    reservation_hold: Duration,
}

/// The own key in force per tenant, remembered for a few seconds: every turn asks, and the
/// answer changes only when an admin sets or deletes a key (which clears it here at once; other
/// replicas see the change within the TTL, as with the API-key cache).
struct OwnKeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Option<OwnKey>, Instant)>>,
}

impl OwnKeyCache {
    fn get(&self, tenant_id: &str) -> Option<Option<OwnKey>> {
        let entries = self.entries.lock().ok()?;
        let (key, at) = entries.get(tenant_id)?;
        (at.elapsed() < self.ttl).then(|| key.clone())
    }

    fn put(&self, tenant_id: &str, key: Option<OwnKey>) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= OWN_KEY_CACHE_CAPACITY {
                let ttl = self.ttl;
                entries.retain(|_, (_, at)| at.elapsed() < ttl);
            }
            entries.insert(tenant_id.to_string(), (key, Instant::now()));
        }
    }

    fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

const OWN_KEY_CACHE_CAPACITY: usize = 10_000;

impl Billing {
    /// A billing service over the store.
    pub fn new(
        store: Store,
        prices: PriceTable,
        allowances: Allowances,
        clock: BillingClock,
        master_key: MasterKey,
    ) -> Billing {
        Billing {
            store,
            prices,
            allowances,
            clock,
            master_key,
            own_keys: OwnKeyCache {
                ttl: Duration::ZERO,
                entries: Mutex::new(HashMap::new()),
            },
            reservation_hold: DEFAULT_RESERVATION_HOLD,
        }
    }

    /// Reservations hold money for `hold` after the last renewal by the process doing their
    /// work ([`Billing::keep_reservations_alive`] renews them three times per hold).
    pub fn with_reservation_hold(mut self, hold: Duration) -> Billing {
        self.reservation_hold = hold;
        self
    }

    fn hold_ms(&self) -> i64 {
        i64::try_from(self.reservation_hold.as_millis()).unwrap_or(RESERVATION_LONGEST_MS)
    }

    /// Renews this process's reservations for as long as it runs, three times per hold: while
    /// a call is in flight its money stays set aside, and once the process is gone (a crash)
    /// the money is free again within one hold.
    pub async fn keep_reservations_alive(&self) {
        let mut tick = tokio::time::interval(self.reservation_hold / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = self.clock.now_ms();
            if let Err(e) = self
                .store
                .renew_reservations(now, now.saturating_add(self.hold_ms()))
                .await
            {
                tracing::warn!(error = %e, "could not renew the reservations in flight; retrying");
            }
        }
    }

    /// Remembers each tenant's own key for `ttl` (zero, the default, asks the database every
    /// time). Setting or deleting a key through this service takes effect at once regardless.
    pub fn with_own_key_cache(mut self, ttl: Duration) -> Billing {
        self.own_keys.ttl = ttl;
        self
    }

    /// The price of a charge.
    pub fn cost(&self, charge: &Charge) -> Micros {
        match charge {
            Charge::Llm {
                model,
                prompt_tokens,
                completion_tokens,
            } => self
                .prices
                .model(model)
                .cost(*prompt_tokens, *completion_tokens),
            Charge::Tool { .. } => self.prices.tool_call,
            Charge::Builtin { .. } => 0,
        }
    }

    /// The monthly allowance of a tenant from its tier and override, as a value the store's
    /// write jobs can take along.
    fn allowance_of(&self) -> AllowanceOf {
        let allowances = self.allowances;
        AllowanceOf::new(move |tier, allowance_override| {
            allowance_override.unwrap_or_else(|| allowances.of(tier))
        })
    }

    /// The own provider key in force for a tenant: its own, else the global one (one query).
    pub async fn own_key_for(&self, tenant_id: &str) -> Result<Option<OwnKey>, BillingError> {
        if let Some(cached) = self.own_keys.get(tenant_id) {
            return Ok(cached);
        }
        let key = match self.stored_own_key_for(tenant_id).await? {
            None => None,
            Some((stored, scope)) => {
                let key = self
                    .master_key
                    .open(&stored.sealed_key)
                    .map_err(|_| BillingError::Undecryptable)?;
                Some(OwnKey { scope, key })
            }
        };
        self.own_keys.put(tenant_id, key.clone());
        Ok(key)
    }

    async fn stored_own_key_for(
        &self,
        tenant_id: &str,
    ) -> Result<Option<(StoredOwnKey, OwnKeyScope)>, BillingError> {
        let mut keys = self.store.own_keys(&[tenant_id, GLOBAL_SCOPE]).await?;
        keys.sort_by_key(|k| k.scope == GLOBAL_SCOPE);
        Ok(keys.into_iter().next().map(|stored| {
            let scope = if stored.scope == GLOBAL_SCOPE {
                OwnKeyScope::Global
            } else {
                OwnKeyScope::Tenant
            };
            (stored, scope)
        }))
    }

    /// What setting money aside for a charge takes (an estimate for LLM calls): nothing for
    /// work on an own key and for builtin answers (never capped), else a request for the store
    /// to carry out, alone ([`Billing::reserve`]) or within a turn's first write.
    pub fn plan_reservation(
        &self,
        payer: &Payer,
        estimate: &Charge,
        own_key: bool,
    ) -> PlannedReservation {
        if own_key {
            return PlannedReservation {
                request: None,
                usage_type: UsageType::OwnKey,
            };
        }
        if matches!(estimate, Charge::Builtin { .. }) {
            return PlannedReservation {
                request: None,
                usage_type: UsageType::Managed,
            };
        }
        let now = self.clock.now_ms();
        PlannedReservation {
            request: Some(ReservationRequest {
                tenant_id: payer.tenant_id.clone(),
                month: self.clock.month(),
                amount: self.cost(estimate).max(1),
                now,
                expires_at: now.saturating_add(self.hold_ms().min(RESERVATION_LONGEST_MS)),
                longest_until: now.saturating_add(RESERVATION_LONGEST_MS),
                allowance_of: self.allowance_of(),
            }),
            usage_type: UsageType::Managed,
        }
    }

    /// Sets money aside for a charge before the work starts; `CapExceeded` when nothing is left.
    pub async fn reserve(
        &self,
        payer: &Payer,
        estimate: &Charge,
        own_key: bool,
    ) -> Result<Reservation, BillingError> {
        let planned = self.plan_reservation(payer, estimate, own_key);
        let id = match planned.request() {
            Some(request) => Some(
                self.store
                    .try_reserve(request)
                    .await?
                    .ok_or(BillingError::CapExceeded)?,
            ),
            None => None,
        };
        Ok(planned.made(id))
    }

    /// Records a call's actual cost against its reservation.
    pub async fn settle(
        &self,
        reservation: Reservation,
        payer: &Payer,
        actual: &Charge,
    ) -> Result<(), BillingError> {
        self.store
            .settle_usage(self.settlement(reservation, payer, actual))
            .await?;
        Ok(())
    }

    /// What [`Billing::settle`] records, to store with other writes in one transaction
    /// (`Store::finish_turn`).
    pub fn settlement(
        &self,
        reservation: Reservation,
        payer: &Payer,
        actual: &Charge,
    ) -> Settlement {
        let (kind, item, prompt_tokens, completion_tokens) = match actual {
            Charge::Llm {
                model,
                prompt_tokens,
                completion_tokens,
            } => ("llm", model.clone(), *prompt_tokens, *completion_tokens),
            Charge::Builtin {
                prompt_tokens,
                completion_tokens,
            } => (
                "llm",
                "builtin".to_string(),
                *prompt_tokens,
                *completion_tokens,
            ),
            Charge::Tool { name } => ("tool", name.clone(), 0, 0),
        };
        let now = self.clock.now_ms();
        Settlement {
            reservation_id: reservation.id,
            allowance_of: self.allowance_of(),
            entry: LedgerEntry {
                tenant_id: payer.tenant_id.clone(),
                user_id: payer.user_id.clone(),
                key_id: payer.key_id.clone(),
                session_id: payer.session_id.clone(),
                kind,
                item,
                prompt_tokens: i64::try_from(prompt_tokens).unwrap_or(i64::MAX),
                completion_tokens: i64::try_from(completion_tokens).unwrap_or(i64::MAX),
                cost_micros: self.cost(actual),
                usage_type: reservation.usage_type,
                month: BillingClock::month_of(now),
                created_at: now,
            },
        }
    }

    /// Gives back a reservation whose work did not happen.
    pub async fn release(&self, reservation: Reservation) {
        if let Some(id) = reservation.id {
            if let Err(e) = self.store.release_reservation(&id).await {
                tracing::warn!(error = %e, "could not release a reservation; it expires by itself");
            }
        }
    }

    /// Sets the own provider key: an admin sets its tenant's, a super-admin the global one.
    /// `actor` (the caller's email) is audited with the change.
    pub async fn set_own_key(
        &self,
        role: Role,
        tenant_id: &str,
        actor: &str,
        key: &str,
    ) -> Result<OwnKeyStatus, BillingError> {
        let (scope_name, scope) = self.scope_for(role, tenant_id)?;
        let key = key.trim();
        if key.len() < 8
            || key.len() > 512
            || key.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(BillingError::Invalid(
                "Field 'api_key' must be a provider API key (8-512 characters, no spaces)".into(),
            ));
        }
        let last4: String = key
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let prefix: String = key.chars().take(3).collect();
        let masked = format!("{prefix}…{last4}");
        self.store
            .put_own_key(
                &StoredOwnKey {
                    scope: scope_name,
                    sealed_key: self.master_key.seal(key),
                    masked: masked.clone(),
                },
                actor,
                tenant_id,
            )
            .await?;
        self.own_keys.clear();
        Ok(OwnKeyStatus {
            configured: true,
            scope: Some(scope),
            masked: Some(masked),
        })
    }

    /// The own key that applies to a tenant, masked.
    pub async fn own_key_status(&self, tenant_id: &str) -> Result<OwnKeyStatus, BillingError> {
        Ok(match self.stored_own_key_for(tenant_id).await? {
            Some((stored, scope)) => OwnKeyStatus {
                configured: true,
                scope: Some(scope),
                masked: Some(stored.masked),
            },
            None => OwnKeyStatus {
                configured: false,
                scope: None,
                masked: None,
            },
        })
    }

    /// Removes the key the caller's role manages; returns its scope and whether one existed.
    /// `actor` (the caller's email) is audited with the change.
    pub async fn delete_own_key(
        &self,
        role: Role,
        tenant_id: &str,
        actor: &str,
    ) -> Result<(OwnKeyScope, bool), BillingError> {
        let (scope_name, scope) = self.scope_for(role, tenant_id)?;
        let deleted = self
            .store
            .delete_own_key(&scope_name, actor, tenant_id)
            .await?;
        self.own_keys.clear();
        Ok((scope, deleted))
    }

    fn scope_for(
        &self,
        role: Role,
        tenant_id: &str,
    ) -> Result<(String, OwnKeyScope), BillingError> {
        may_manage_own_keys(role)?;
        Ok(match role {
            Role::SuperAdmin => (GLOBAL_SCOPE.to_string(), OwnKeyScope::Global),
            _ => (tenant_id.to_string(), OwnKeyScope::Tenant),
        })
    }

    /// This month's usage for a user and its tenant; `include_users` adds each user (admins).
    pub async fn report(
        &self,
        tenant_id: &str,
        user_email: &str,
        include_users: bool,
    ) -> Result<UsageReport, BillingError> {
        self.report_of(tenant_id, user_email, include_users, &self.clock.month())
            .await
    }

    /// This month by the billing clock (`YYYY-MM`).
    pub fn month(&self) -> String {
        self.clock.month()
    }

    /// The usage report of a month (`YYYY-MM`); the wallet and own key are as they are now.
    pub async fn report_of(
        &self,
        tenant_id: &str,
        user_email: &str,
        include_users: bool,
        month: &str,
    ) -> Result<UsageReport, BillingError> {
        let tenant = self.store.tenant_by_id(tenant_id).await?;
        let month = month.to_string();
        let rows = self.store.usage_rows(tenant_id, &month).await?;
        let allowance = self.allowance_of().of(tenant.tier, tenant.allowance_micros);
        let mut tenant_section = UsageSection {
            name: Some(tenant.name.clone()),
            tier: Some(tenant.tier.as_str().to_string()),
            ..UsageSection::default()
        };
        let mut per_user: BTreeMap<String, UsageSection> = BTreeMap::new();
        let mut managed_spent: Micros = 0;
        for row in &rows {
            if row.usage_type == UsageType::Managed.as_str() {
                managed_spent += row.totals.cost_micros;
            }
            add(&mut tenant_section, row);
            let section = per_user
                .entry(row.user_email.clone())
                .or_insert_with(|| UsageSection {
                    email: Some(row.user_email.clone()),
                    ..UsageSection::default()
                });
            add(section, row);
        }
        let user = per_user
            .get(user_email)
            .cloned()
            .unwrap_or_else(|| UsageSection {
                email: Some(user_email.to_string()),
                ..UsageSection::default()
            });
        if include_users {
            tenant_section.users = Some(per_user.into_values().collect());
        }
        let own_key = self.own_key_status(tenant_id).await?;
        let used = managed_spent.min(allowance);
        Ok(UsageReport {
            month,
            user,
            tenant: tenant_section,
            allowance_usd: usd(allowance),
            allowance_used_usd: usd(used),
            allowance_left_usd: usd(allowance - used),
            wallet_usd: usd(tenant.wallet_micros),
            own_key_active: own_key.configured,
            own_key_scope: own_key.scope,
        })
    }
}

fn add(section: &mut UsageSection, row: &store::UsageRow) {
    let cost = usd(row.totals.cost_micros);
    section.cost_usd = round6(section.cost_usd + cost);
    if row.usage_type == UsageType::OwnKey.as_str() {
        section.own_key_cost_usd = round6(section.own_key_cost_usd + cost);
    }
    section.prompt_tokens += row.totals.prompt_tokens;
    section.completion_tokens += row.totals.completion_tokens;
    if row.kind == "tool" {
        let tool = section.by_tool.entry(row.item.clone()).or_default();
        tool.calls += row.totals.calls;
        tool.cost_usd = round6(tool.cost_usd + cost);
    } else {
        let model = section.by_model.entry(row.item.clone()).or_default();
        model.prompt_tokens += row.totals.prompt_tokens;
        model.completion_tokens += row.totals.completion_tokens;
        model.cost_usd = round6(model.cost_usd + cost);
    }
}

/// Keeps displayed sums at micro-dollar precision (no binary-fraction noise).
fn round6(value: f64) -> f64 {
    (value * 1_000_000.0).round() / 1_000_000.0
}

/// Whether a role may set or remove own provider keys: admins (their tenant's) and
/// super-admins (the global one). `Forbidden` says why not.
pub fn may_manage_own_keys(role: Role) -> Result<(), BillingError> {
    match role {
        Role::SuperAdmin | Role::Admin => Ok(()),
        Role::User | Role::Viewer => Err(BillingError::Forbidden(format!(
            "Only an admin (for its tenant) or a super_admin (global) may manage the own OpenAI key; your role is {role}"
        ))),
    }
}
