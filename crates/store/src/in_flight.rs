//! Where the money set aside for model calls in flight is kept.
//!
//! On PostgreSQL several replicas spend one tenant's budget, so a reservation is a row that
//! all of them see (with a running total per tenant, see `billing.rs`). Each row names the
//! process that made it (its holder), which renews the expiry of its rows while it lives; a
//! replica that crashes leaves rows behind that hold nothing once that short hold has passed.
//!
//! On SQLite there is exactly one server process: the work a reservation is for lives and
//! dies with that process, so its reservations live in it too. The budget check and every
//! reservation are made inside write jobs, which the one writer thread runs one after
//! another, so a check always sees every reservation made before it. Nothing about a
//! reservation is written to the database (two statements and six index pages fewer per
//! model call), and a restart, which ends all work in flight, frees everything at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::Micros;

/// How often reservations past their expiry (work that never settled them) are dropped.
const SWEEP_EVERY_MS: i64 = 1_000;

/// The reservations in flight, by the backend's rules.
#[derive(Clone)]
pub(crate) enum InFlight {
    /// PostgreSQL: rows in `usage_reservations`, made by `holder` (this process).
    Rows { holder: Arc<str> },
    /// SQLite: held in this process.
    Local(Arc<LocalReservations>),
}

struct Held {
    tenant_id: String,
    amount: Micros,
    expires_at: i64,
    /// The latest a renewal may move `expires_at` to.
    longest_until: i64,
}

#[derive(Default)]
struct Ledger {
    by_id: HashMap<String, Held>,
    by_tenant: HashMap<String, Micros>,
    swept_at: i64,
}

impl Ledger {
    fn take(&mut self, id: &str) {
        let Some(held) = self.by_id.remove(id) else {
            return;
        };
        if let Some(total) = self.by_tenant.get_mut(&held.tenant_id) {
            *total -= held.amount;
            if *total <= 0 {
                self.by_tenant.remove(&held.tenant_id);
            }
        }
    }

    /// Drops what expired (a turn that never settled: a bug, not a crash), at most once per
    /// [`SWEEP_EVERY_MS`].
    fn sweep(&mut self, now: i64) {
        if now - self.swept_at < SWEEP_EVERY_MS {
            return;
        }
        self.swept_at = now;
        let expired: Vec<String> = self
            .by_id
            .iter()
            .filter(|(_, held)| held.expires_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.take(&id);
        }
    }
}

/// The reservations of this process (SQLite).
#[derive(Default)]
pub(crate) struct LocalReservations(Mutex<Ledger>);

impl LocalReservations {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What the tenant's live reservations hold at `now`.
    pub(crate) fn held(&self, tenant_id: &str, now: i64) -> Micros {
        let mut ledger = self.ledger();
        ledger.sweep(now);
        ledger.by_tenant.get(tenant_id).copied().unwrap_or(0)
    }

    /// Sets `amount` aside for the tenant under `id` until it is released or expires (at
    /// `expires`: the first expiry, and the latest renewals may move it to).
    pub(crate) fn hold(&self, id: &str, tenant_id: &str, amount: Micros, expires: Expiry) {
        let mut ledger = self.ledger();
        ledger.take(id);
        *ledger.by_tenant.entry(tenant_id.to_string()).or_default() += amount;
        ledger.by_id.insert(
            id.to_string(),
            Held {
                tenant_id: tenant_id.to_string(),
                amount,
                expires_at: expires.at,
                longest_until: expires.longest_until,
            },
        );
    }

    /// Moves the expiry of every reservation still live at `now` on to `until` (at most to its
    /// longest).
    pub(crate) fn renew(&self, now: i64, until: i64) {
        for held in self.ledger().by_id.values_mut() {
            if held.expires_at > now {
                held.expires_at = until.min(held.longest_until).max(held.expires_at);
            }
        }
    }

    /// Frees a reservation; nothing happens when it is gone already.
    pub(crate) fn release(&self, id: &str) {
        self.ledger().take(id);
    }
}

/// When a reservation expires: first at `at`, and renewed at most until `longest_until`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expiry {
    pub(crate) at: i64,
    pub(crate) longest_until: i64,
}

impl InFlight {
    /// What the tenant's reservations held in this process hold at `now` (none for rows: the
    /// budget read counts those).
    pub(crate) fn held_here(&self, tenant_id: &str, now: i64) -> Micros {
        match self {
            InFlight::Rows { .. } => 0,
            InFlight::Local(local) => local.held(tenant_id, now),
        }
    }

    /// After the write job that made reservation `id` ended: when it failed, its rows were
    /// rolled back with it, but a reservation held in this process must be freed here.
    pub(crate) fn release_if_failed<T, E>(&self, job: &Result<T, E>, id: Option<&str>) {
        if let (Err(_), Some(id), InFlight::Local(local)) = (job, id, self) {
            local.release(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An expiry that renewals cannot move.
    fn until(at: i64) -> Expiry {
        Expiry {
            at,
            longest_until: at,
        }
    }

    #[test]
    fn holds_per_tenant_until_released_or_expired() {
        let local = LocalReservations::default();
        local.hold("a", "t1", 100, until(10_000));
        local.hold("b", "t1", 50, until(1_500));
        local.hold("c", "t2", 7, until(10_000));
        assert_eq!(local.held("t1", 1_000), 150);
        assert_eq!(local.held("t2", 1_000), 7);
        local.release("a");
        local.release("a");
        assert_eq!(
            local.held("t1", 1_000),
            50,
            "released once, however often asked"
        );
        assert_eq!(local.held("t1", 2_000), 0, "b expired at 1,500");
        local.release("c");
        assert_eq!(local.held("t2", 3_000), 0);
        assert_eq!(local.held("nobody", 3_000), 0);
    }

    #[test]
    fn holding_an_id_again_replaces_its_amount() {
        let local = LocalReservations::default();
        local.hold("a", "t1", 100, until(10_000));
        local.hold("a", "t1", 30, until(10_000));
        assert_eq!(local.held("t1", 0), 30);
    }

    #[test]
    fn renewals_keep_live_reservations_up_to_their_longest() {
        let local = LocalReservations::default();
        let expiry = Expiry {
            at: 10_000,
            longest_until: 50_000,
        };
        local.hold("a", "t1", 100, expiry);
        local.hold("b", "t1", 10, expiry);
        local.release("b");
        local.renew(9_000, 30_000);
        assert_eq!(
            local.held("t1", 20_000),
            100,
            "renewed past its first expiry"
        );
        local.renew(29_000, 90_000);
        assert_eq!(local.held("t1", 49_000), 100);
        assert_eq!(local.held("t1", 50_000), 0, "never past its longest");
        let expiry = Expiry {
            at: 55_000,
            longest_until: 90_000,
        };
        local.hold("c", "t2", 7, expiry);
        local.renew(55_000, 80_000);
        assert_eq!(
            local.held("t2", 56_000),
            0,
            "an expired one is not brought back"
        );
    }
}
