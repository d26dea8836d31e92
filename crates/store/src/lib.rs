//! Persistence for Integrator Agent: one database (SQLite by default, PostgreSQL for replicas)
//! behind plain async functions, plus the master-key encryption of stored secrets.
//!
//! Architecture invariant: SQL lives only in this crate, written once for both backends
//! (`$N` placeholders, integer timestamps and flags), so every repository behaves the same
//! on SQLite and on PostgreSQL.

mod accounts;
mod api_keys;
mod articles;
mod billing;
pub mod console;
mod db;
mod error;
mod in_flight;
mod leases;
mod mcp_events;
mod mcp_sessions;
mod migrations;
mod money;
mod secrets;
mod sessions;
mod tickets;
mod turn_events;
mod workspace;
mod write;

pub use accounts::{
    is_valid_tenant_name, NewTenant, NewUser, Role, Tenant, TenantChanges, Tier, User,
};
pub use api_keys::{ApiKeyHash, IssuedKey, KeyRecord, BOOTSTRAP_ADMIN_EMAIL, KEY_LENGTH};
pub use articles::{Article, ArticleFormat, NewArticle};
pub use billing::{
    AllowanceOf, Budget, LedgerEntry, ReservationRequest, Settlement, StoredOwnKey, UsageRow,
    UsageTotals, UsageType,
};
pub use db::{Backend, DatabaseTarget, Store};
pub use error::StoreError;
pub use mcp_events::McpEvent;
pub use money::{format_usd, parse_usd, Micros};
pub use secrets::{MasterKey, Secret, SecretError};
pub use sessions::{new_session_id, MessageRole, Session, StoredMessage, TurnStart};
pub use tickets::{NewTicket, Ticket, TicketPriority};
pub use turn_events::StoredTurn;
pub use workspace::{
    Abandoned, AbandonedRun, NewRun, RunProgress, RunResult, StoredConnection, StoredFlow,
    StoredRun, StoredSchedule,
};

/// Milliseconds since the Unix epoch: the one time representation stored in the database.
pub fn now_millis() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The UTC day (`YYYY-MM-DD`) of a time in milliseconds since the epoch.
pub fn day_of(millis: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let days = millis.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A new identifier for a stored row: a UUID v7, which begins with the time it was made and
/// goes on with 74 random bits. Ids made one after another sort together, so the rows a group
/// commit inserts land in the same index pages instead of one random page each.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
