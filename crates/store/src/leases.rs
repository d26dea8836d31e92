//! Time-limited leases held in a row's column: how one process (of possibly several replicas)
//! claims a session for a turn or a flow for a run. A lease that is not renewed expires, so a
//! crashed holder never blocks the row for longer than one lease.

use crate::write::{args, WriteTx};
use crate::{now_millis, Store, StoreError};

/// A table and the column in which its rows' leases expire (milliseconds; 0 = free).
#[derive(Clone, Copy)]
pub(crate) struct LeaseColumn {
    pub table: &'static str,
    pub column: &'static str,
}

/// The lease of a chat session (one turn at a time).
pub(crate) const SESSION_LEASE: LeaseColumn = LeaseColumn {
    table: "sessions",
    column: "busy_until",
};
/// The lease of a flow (one run at a time).
pub(crate) const FLOW_LEASE: LeaseColumn = LeaseColumn {
    table: "ws_flows",
    column: "running_until",
};

impl Store {
    /// Takes the row's lease for `lease_ms` unless someone holds it; true on success.
    pub(crate) async fn take_lease(
        &self,
        lease: LeaseColumn,
        id: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write(move |tx| Box::pin(async move { take_lease_in(tx, lease, &id, lease_ms).await }))
            .await
    }

    /// Extends a lease this process holds.
    pub(crate) async fn renew_lease(
        &self,
        lease: LeaseColumn,
        id: &str,
        lease_ms: i64,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        let until = now_millis() + lease_ms;
        self.write(move |tx| Box::pin(async move { renew_lease_in(tx, lease, &id, until).await }))
            .await
    }

    /// Gives a lease back.
    pub(crate) async fn release_lease(
        &self,
        lease: LeaseColumn,
        id: &str,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        self.write(move |tx| Box::pin(async move { release_lease_in(tx, lease, &id).await }))
            .await
    }

    /// Frees every lease of a table (for a process that knows it is the only server).
    pub(crate) async fn release_all_leases(&self, lease: LeaseColumn) -> Result<(), StoreError> {
        let LeaseColumn { table, column } = lease;
        let sql = format!("UPDATE {table} SET {column} = 0 WHERE {column} > 0");
        self.execute(&sql, args![]).await?;
        Ok(())
    }
}

/// Takes a lease within a write job that may write more.
pub(crate) async fn take_lease_in(
    tx: &mut dyn WriteTx,
    lease: LeaseColumn,
    id: &str,
    lease_ms: i64,
) -> Result<bool, StoreError> {
    let now = now_millis();
    let LeaseColumn { table, column } = lease;
    let sql = format!("UPDATE {table} SET {column} = $1 WHERE id = $2 AND {column} < $3");
    let changed = tx.execute(&sql, args![now + lease_ms, id, now]).await?;
    Ok(changed == 1)
}

/// Extends a lease (until `until`) within a write job.
pub(crate) async fn renew_lease_in(
    tx: &mut dyn WriteTx,
    lease: LeaseColumn,
    id: &str,
    until: i64,
) -> Result<(), StoreError> {
    let LeaseColumn { table, column } = lease;
    let sql = format!("UPDATE {table} SET {column} = $1 WHERE id = $2");
    tx.execute(&sql, args![until, id]).await?;
    Ok(())
}

/// Gives a lease back within a write job and records, in the same statement, that the row
/// changed at `updated_at` (its `updated_at` column).
pub(crate) async fn release_lease_touching_in(
    tx: &mut dyn WriteTx,
    lease: LeaseColumn,
    id: &str,
    updated_at: i64,
) -> Result<(), StoreError> {
    let LeaseColumn { table, column } = lease;
    let sql = format!("UPDATE {table} SET {column} = 0, updated_at = $1 WHERE id = $2");
    tx.execute(&sql, args![updated_at, id]).await?;
    Ok(())
}

/// Gives a lease back within a write job.
pub(crate) async fn release_lease_in(
    tx: &mut dyn WriteTx,
    lease: LeaseColumn,
    id: &str,
) -> Result<(), StoreError> {
    let LeaseColumn { table, column } = lease;
    let sql = format!("UPDATE {table} SET {column} = 0 WHERE id = $1");
    tx.execute(&sql, args![id]).await?;
    Ok(())
}
