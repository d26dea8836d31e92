//! Workspace objects per tenant: connections (parameters, with secrets sealed), flows (their
//! definition as JSON), runs and schedules — plus the leases that keep a flow from running
//! twice at once, also across replicas.

use sqlx::Row;

use crate::leases::{renew_lease_in, FLOW_LEASE};
use crate::write::args;
use crate::{new_id, now_millis, Store, StoreError};

/// A stored connection; `sealed_secrets` is ciphertext from the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConnection {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub kind: String,
    /// JSON object of the non-secret parameters.
    pub params: String,
    /// Sealed JSON object of the secret parameters.
    pub sealed_secrets: String,
    pub updated_at: i64,
}

/// A stored flow; `definition` is JSON owned by the workspace crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFlow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub definition: String,
    pub updated_at: i64,
}

/// A run of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRun {
    pub id: i64,
    pub flow_name: String,
    pub trigger: String,
    pub status: String,
    pub rows_read: i64,
    pub rows_written: i64,
    /// Pages (requests) a source fetched so far.
    pub pages: i64,
    /// What a running run is doing now ("reading", "waiting for the destination database
    /// lock", "committing"…); empty once it ended.
    pub step: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    pub log: String,
    /// Who started it (a user's email, `operator`, `schedule`).
    pub started_by: String,
    /// Who asked for it to stop, if anyone did.
    pub cancel_requested_by: Option<String>,
}

/// Where a new run writes and how its outcome can be found there after a crash.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub tenant_id: &'a str,
    pub flow_id: &'a str,
    pub flow_name: &'a str,
    pub trigger: &'a str,
    pub started_by: &'a str,
    /// The token written into the destination with the data.
    pub marker: &'a str,
    /// The destination as JSON (owned by the workspace crate).
    pub destination: &'a str,
    /// The instance id of the data dir of the server that runs it.
    pub runner: &'a str,
}

/// What a running run did so far.
#[derive(Debug, Clone, Default)]
pub struct RunProgress {
    pub rows_read: i64,
    pub rows_written: i64,
    pub pages: i64,
    pub step: String,
    pub log: String,
}

/// How a run ended: `succeeded`, `failed` or `cancelled`.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub status: &'static str,
    pub rows_read: i64,
    pub rows_written: i64,
    pub pages: i64,
    pub error: Option<String>,
    pub log: String,
}

/// A run whose server stopped before recording its outcome.
#[derive(Debug, Clone)]
pub struct AbandonedRun {
    pub id: i64,
    pub tenant_id: String,
    pub flow_name: String,
    pub marker: Option<String>,
    pub destination: Option<String>,
    pub log: String,
    /// The instance id of the server that ran it (empty for runs of older releases).
    pub runner: String,
}

/// Which runs still `running` count as abandoned.
#[derive(Debug, Clone, Copy)]
pub enum Abandoned<'a> {
    /// Every one (the only server of an SQLite database, at its start).
    All,
    /// Those of this runner (a server restarted on its data dir: it runs none of them now).
    Of(&'a str),
    /// Those whose sign of life ran out (a replica that stopped).
    GoneSilent,
}

impl Abandoned<'_> {
    /// The condition on a `running` run, `alive_until < $1 OR runner = $2`, and its two
    /// arguments (both always bound, so PostgreSQL knows their types).
    fn condition(self) -> (&'static str, i64, String) {
        const CONDITION: &str = "alive_until < $1 OR runner = $2";
        // Runner ids are UUIDs: "-" is nobody's.
        match self {
            Abandoned::All => (CONDITION, i64::MAX, "-".to_string()),
            Abandoned::Of(runner) => (CONDITION, i64::MIN, runner.to_string()),
            Abandoned::GoneSilent => (CONDITION, now_millis(), "-".to_string()),
        }
    }
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchedule {
    pub flow_id: String,
    pub tenant_id: String,
    pub flow_name: String,
    /// JSON owned by the workspace crate.
    pub spec: String,
    pub next_at: i64,
}

fn connection_from_row(row: &sqlx::any::AnyRow) -> Result<StoredConnection, StoreError> {
    Ok(StoredConnection {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        params: row.try_get("params")?,
        sealed_secrets: row.try_get("sealed_secrets")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn flow_from_row(row: &sqlx::any::AnyRow) -> Result<StoredFlow, StoreError> {
    Ok(StoredFlow {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        definition: row.try_get("definition")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn run_from_row(row: &sqlx::any::AnyRow) -> Result<StoredRun, StoreError> {
    Ok(StoredRun {
        id: row.try_get("id")?,
        flow_name: row.try_get("flow_name")?,
        trigger: row.try_get("trigger")?,
        status: row.try_get("status")?,
        rows_read: row.try_get("rows_read")?,
        rows_written: row.try_get("rows_written")?,
        pages: row.try_get("pages")?,
        step: row.try_get("step")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        error: row.try_get("error")?,
        log: row.try_get("log")?,
        started_by: row.try_get("started_by")?,
        cancel_requested_by: row.try_get("cancel_requested_by")?,
    })
}

const RUN_COLUMNS: &str = "id, flow_name, trigger, status, rows_read, rows_written, pages, step, \
     started_at, finished_at, error, log, started_by, cancel_requested_by";

impl Store {
    /// Creates a connection; its name must be unused in the tenant.
    pub async fn insert_connection(
        &self,
        tenant_id: &str,
        name: &str,
        kind: &str,
        params: &str,
        sealed_secrets: &str,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        self.execute(
            "INSERT INTO ws_connections (id, tenant_id, name, kind, params, sealed_secrets, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            args![new_id(), tenant_id, name, kind, params, sealed_secrets, now],
        )
        .await
        .map_err(|e| e.conflict_on_unique(&format!("connection '{name}'")))?;
        Ok(())
    }

    /// Replaces a connection's parameters.
    pub async fn update_connection(
        &self,
        tenant_id: &str,
        name: &str,
        params: &str,
        sealed_secrets: &str,
    ) -> Result<(), StoreError> {
        let changed = self
            .execute(
                "UPDATE ws_connections SET params = $1, sealed_secrets = $2, updated_at = $3 WHERE tenant_id = $4 AND name = $5",
                args![params, sealed_secrets, now_millis(), tenant_id, name],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("connection '{name}'")));
        }
        Ok(())
    }

    /// The tenant's connection with this name.
    pub async fn connection(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<StoredConnection, StoreError> {
        let row = sqlx::query("SELECT id, tenant_id, name, kind, params, sealed_secrets, updated_at FROM ws_connections WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("connection '{name}'")))?;
        connection_from_row(&row)
    }

    /// The tenant's connections by name.
    pub async fn connections(&self, tenant_id: &str) -> Result<Vec<StoredConnection>, StoreError> {
        let rows = sqlx::query("SELECT id, tenant_id, name, kind, params, sealed_secrets, updated_at FROM ws_connections WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(connection_from_row).collect()
    }

    /// Deletes a connection.
    pub async fn delete_connection(&self, tenant_id: &str, name: &str) -> Result<(), StoreError> {
        let changed = self
            .execute(
                "DELETE FROM ws_connections WHERE tenant_id = $1 AND name = $2",
                args![tenant_id, name],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("connection '{name}'")));
        }
        Ok(())
    }

    /// Creates a flow; its name must be unused in the tenant.
    pub async fn insert_flow(
        &self,
        tenant_id: &str,
        name: &str,
        definition: &str,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        self.execute(
            "INSERT INTO ws_flows (id, tenant_id, name, definition, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
            args![new_id(), tenant_id, name, definition, now],
        )
        .await
        .map_err(|e| e.conflict_on_unique(&format!("flow '{name}'")))?;
        Ok(())
    }

    /// The tenant's flow with this name.
    pub async fn flow(&self, tenant_id: &str, name: &str) -> Result<StoredFlow, StoreError> {
        let row = sqlx::query("SELECT id, tenant_id, name, definition, updated_at FROM ws_flows WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("flow '{name}'")))?;
        flow_from_row(&row)
    }

    /// The tenant's flows by name.
    pub async fn flows(&self, tenant_id: &str) -> Result<Vec<StoredFlow>, StoreError> {
        let rows = sqlx::query("SELECT id, tenant_id, name, definition, updated_at FROM ws_flows WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(flow_from_row).collect()
    }

    /// Deletes a flow and its schedule (its runs stay as history).
    pub async fn delete_flow(&self, tenant_id: &str, name: &str) -> Result<(), StoreError> {
        let flow = self.flow(tenant_id, name).await?;
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "DELETE FROM ws_schedules WHERE flow_id = $1",
                    args![&flow.id],
                )
                .await?;
                tx.execute("DELETE FROM ws_flows WHERE id = $1", args![&flow.id])
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// Takes a flow's run lease unless a run holds it; true on success.
    pub async fn try_lease_flow(&self, flow_id: &str, lease_ms: i64) -> Result<bool, StoreError> {
        self.take_lease(FLOW_LEASE, flow_id, lease_ms).await
    }

    /// Gives a flow's run lease back.
    pub async fn release_flow_lease(&self, flow_id: &str) -> Result<(), StoreError> {
        self.release_lease(FLOW_LEASE, flow_id).await
    }

    /// Records the start of a run, alive for `alive_ms` unless renewed; returns its id.
    pub async fn start_run(&self, run: &NewRun<'_>, alive_ms: i64) -> Result<i64, StoreError> {
        let now = now_millis();
        let values = args![
            run.tenant_id,
            run.flow_id,
            run.flow_name,
            run.trigger,
            now,
            now + alive_ms,
            run.started_by,
            run.marker,
            run.destination,
            run.runner
        ];
        let marker = run.marker.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO ws_runs (tenant_id, flow_id, flow_name, trigger, status, started_at, alive_until, started_by, marker, destination, runner, step) \
                     VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, $9, $10, 'starting')",
                    values,
                )
                .await?;
                tx.fetch_optional(
                    "SELECT CAST(id AS BIGINT) FROM ws_runs WHERE marker = $1",
                    args![marker],
                )
                .await?
                .ok_or_else(|| StoreError::NotFound("the new run".into()))?
                .int(0)
            })
        })
        .await
    }

    /// Stores a running run's progress and its sign of life (its flow's run lease and its own
    /// time alive extended by `alive_ms`); answers who asked for it to stop, if anyone did.
    pub async fn record_progress(
        &self,
        flow_id: &str,
        run_id: i64,
        progress: &RunProgress,
        alive_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let until = now_millis() + alive_ms;
        let flow_id = flow_id.to_string();
        let run = args![
            until,
            progress.rows_read,
            progress.rows_written,
            progress.pages,
            &progress.step,
            &progress.log,
            run_id
        ];
        self.write(move |tx| {
            Box::pin(async move {
                renew_lease_in(tx, FLOW_LEASE, &flow_id, until).await?;
                tx.execute(
                    "UPDATE ws_runs SET alive_until = $1, rows_read = $2, rows_written = $3, pages = $4, step = $5, log = $6 \
                     WHERE id = $7 AND status = 'running'",
                    run,
                )
                .await?;
                let row = tx
                    .fetch_optional(
                        "SELECT cancel_requested_by FROM ws_runs WHERE id = $1",
                        args![run_id],
                    )
                    .await?;
                match row {
                    Some(row) => row.opt_text(0),
                    None => Ok(None),
                }
            })
        })
        .await
    }

    /// Asks a running run of the tenant to stop (the server running it sees the request
    /// within a second); false when the run does not exist or is not running.
    pub async fn request_run_cancel(
        &self,
        tenant_id: &str,
        run_id: i64,
        by: &str,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE ws_runs SET cancel_requested_by = COALESCE(cancel_requested_by, $1) \
                 WHERE tenant_id = $2 AND id = $3 AND status = 'running'",
                args![by, tenant_id, run_id],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Records how a run ended (once: a run already settled is left as it is).
    pub async fn finish_run(&self, run_id: i64, result: &RunResult) -> Result<(), StoreError> {
        self.execute(
            "UPDATE ws_runs SET status = $1, rows_read = $2, rows_written = $3, pages = $4, finished_at = $5, error = $6, log = $7, step = '' \
             WHERE id = $8 AND status = 'running'",
            args![
                result.status,
                result.rows_read,
                result.rows_written,
                result.pages,
                now_millis(),
                result.error.clone(),
                &result.log,
                run_id
            ],
        )
        .await?;
        Ok(())
    }

    /// Runs left `running` by a server that stopped (see [`Abandoned`]). Cheap when there
    /// are none: one indexed read.
    pub async fn abandoned_runs(
        &self,
        which: Abandoned<'_>,
    ) -> Result<Vec<AbandonedRun>, StoreError> {
        let (condition, until, runner) = which.condition();
        let rows = sqlx::query(&format!(
            "SELECT id, tenant_id, flow_name, marker, destination, log, runner FROM ws_runs \
             WHERE status = 'running' AND ({condition}) ORDER BY id LIMIT 100"
        ))
        .bind(until)
        .bind(runner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AbandonedRun {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    flow_name: row.try_get("flow_name")?,
                    marker: row.try_get("marker")?,
                    destination: row.try_get("destination")?,
                    log: row.try_get("log")?,
                    runner: row.try_get("runner")?,
                })
            })
            .collect()
    }

    /// Records the outcome of an abandoned run, unless it came back to life or another
    /// replica settled it first; true when this call settled it.
    pub async fn settle_abandoned_run(
        &self,
        run_id: i64,
        result: &RunResult,
        which: Abandoned<'_>,
    ) -> Result<bool, StoreError> {
        let (condition, until, runner) = which.condition();
        let changed = self
            .execute(
                &format!(
                    "UPDATE ws_runs SET status = $3, rows_written = CASE WHEN $4 > 0 THEN $4 ELSE rows_written END, \
                     finished_at = $5, error = $6, log = $7, step = '' \
                     WHERE id = $8 AND status = 'running' AND ({condition})"
                ),
                args![
                    until,
                    runner,
                    result.status,
                    result.rows_written,
                    now_millis(),
                    result.error.clone(),
                    &result.log,
                    run_id
                ],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Frees every flow's run lease: for the only server of an SQLite database at its start,
    /// after it settled the runs an earlier process left.
    pub async fn release_all_flow_leases(&self) -> Result<(), StoreError> {
        self.release_all_leases(FLOW_LEASE).await
    }

    /// One of the tenant's runs.
    pub async fn run(&self, tenant_id: &str, run_id: i64) -> Result<StoredRun, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM ws_runs WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("run {run_id}")))?;
        run_from_row(&row)
    }

    /// The tenant's runs, newest first, optionally of one flow, older than run `before`
    /// (a page's cursor) when given.
    pub async fn runs(
        &self,
        tenant_id: &str,
        flow_name: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<StoredRun>, StoreError> {
        let before = before.unwrap_or(i64::MAX);
        let rows = match flow_name {
            Some(flow) => sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM ws_runs WHERE tenant_id = $1 AND flow_name = $2 AND id < $3 ORDER BY id DESC LIMIT $4"))
                .bind(tenant_id)
                .bind(flow)
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
            None => sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM ws_runs WHERE tenant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"))
                .bind(tenant_id)
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
        };
        rows.iter().map(run_from_row).collect()
    }

    /// Sets (or replaces) a flow's schedule.
    pub async fn put_schedule(
        &self,
        tenant_id: &str,
        flow_id: &str,
        spec: &str,
        next_at: i64,
    ) -> Result<(), StoreError> {
        let flow = args![flow_id];
        let values = args![flow_id, tenant_id, spec, next_at, now_millis()];
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute("DELETE FROM ws_schedules WHERE flow_id = $1", flow)
                    .await?;
                tx.execute(
                    "INSERT INTO ws_schedules (flow_id, tenant_id, spec, next_at, created_at) VALUES ($1, $2, $3, $4, $5)",
                    values,
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// Removes a flow's schedule; true when there was one.
    pub async fn delete_schedule(&self, flow_id: &str) -> Result<bool, StoreError> {
        let deleted = self
            .execute(
                "DELETE FROM ws_schedules WHERE flow_id = $1",
                args![flow_id],
            )
            .await?;
        Ok(deleted > 0)
    }

    /// The tenant's schedules (or every tenant's, with `None`), by flow name.
    pub async fn schedules(
        &self,
        tenant_id: Option<&str>,
    ) -> Result<Vec<StoredSchedule>, StoreError> {
        let sql = "SELECT s.flow_id, s.tenant_id, f.name AS flow_name, s.spec, s.next_at FROM ws_schedules s JOIN ws_flows f ON f.id = s.flow_id";
        let rows = match tenant_id {
            Some(tenant) => {
                sqlx::query(&format!("{sql} WHERE s.tenant_id = $1 ORDER BY f.name"))
                    .bind(tenant)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(&format!("{sql} ORDER BY s.next_at"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter()
            .map(|row| {
                Ok(StoredSchedule {
                    flow_id: row.try_get("flow_id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    flow_name: row.try_get("flow_name")?,
                    spec: row.try_get("spec")?,
                    next_at: row.try_get("next_at")?,
                })
            })
            .collect()
    }

    /// Claims a due schedule for one firing: moves its next time on, only if it is still due
    /// and no other replica claimed it. True when this process should run the flow now.
    pub async fn claim_schedule(
        &self,
        flow_id: &str,
        due_at: i64,
        next_at: i64,
    ) -> Result<bool, StoreError> {
        let claimed = self
            .execute(
                "UPDATE ws_schedules SET next_at = $1 WHERE flow_id = $2 AND next_at = $3",
                args![next_at, flow_id, due_at],
            )
            .await?;
        Ok(claimed == 1)
    }
}
