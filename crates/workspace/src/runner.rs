//! Running a flow: one run at a time per flow (a lease in the database, so also across
//! replicas), records streamed from source to destination in batches, the destination
//! committed only when everything was written, and the run recorded with counts, log and error.

use std::time::Duration;

use store::RunResult;

use crate::command::FlowDefinition;
use crate::connections;
use crate::connectors::{self, Destination, DestinationSpec, Record, Source};
use crate::flows::StoredDefinition;
use crate::redaction;
use crate::service::{ensure_filled, format_duration, Actor, Workspace, WorkspaceError};

/// How long a run may go without renewing its lease before it counts as abandoned: a replica
/// that crashed mid-run holds its flows this long at most, and after it the run is recorded
/// as failed (renewed every third).
const FLOW_LEASE_MS: i64 = 15_000;

struct Counts {
    read: i64,
    written: i64,
}

struct RunLog(Vec<String>);

impl RunLog {
    fn add(&mut self, line: impl Into<String>) {
        let time = chrono::Utc::now().format("%H:%M:%S%.3f");
        self.0.push(format!("{time} {}", line.into()));
    }
}

/// Applies a column mapping: keeps and renames the mapped columns, in mapping order.
fn map_record(record: Record, map: &Option<Vec<crate::command::ColumnMap>>) -> Record {
    match map {
        None => record,
        Some(columns) => columns
            .iter()
            .map(|c| {
                (
                    c.to.clone(),
                    record
                        .get(&c.from)
                        .cloned()
                        .unwrap_or(serde_json::Value::Null),
                )
            })
            .collect(),
    }
}

impl Workspace {
    /// Runs a flow now and waits for it; the answer summarises the run.
    pub async fn run_flow(
        &self,
        tenant_id: &str,
        tenant_name: &str,
        flow_name: &str,
        trigger: &str,
    ) -> Result<String, WorkspaceError> {
        let flow = self.store.flow(tenant_id, flow_name).await?;
        let stored: StoredDefinition = serde_json::from_str(&flow.definition)
            .map_err(|e| WorkspaceError::Rejected(format!("flow '{flow_name}' is damaged: {e}")))?;
        let definition = stored.definition().map_err(WorkspaceError::Rejected)?;
        if !self.store.try_lease_flow(&flow.id, FLOW_LEASE_MS).await? {
            return Err(WorkspaceError::Rejected(format!(
                "flow '{flow_name}' is already running; see list runs {flow_name}"
            )));
        }
        let outcome = match self
            .store
            .start_run(tenant_id, &flow.id, flow_name, trigger, FLOW_LEASE_MS)
            .await
        {
            Ok(run_id) => {
                let signs_of_life = self.keep_run_alive(&flow.id, run_id);
                let outcome = self
                    .record_run(tenant_id, tenant_name, run_id, flow_name, &definition)
                    .await;
                signs_of_life.abort();
                outcome
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = self.store.release_flow_lease(&flow.id).await {
            tracing::warn!(error = %e, "could not release a flow's run lease; it expires by itself");
        }
        outcome
    }

    /// Records as failed the runs whose server stopped during the run (their lease ran out
    /// without renewal), so the history never shows a dead run as running.
    pub async fn settle_abandoned_runs(&self) -> Result<(), WorkspaceError> {
        let failed = self.store.fail_runs_gone_silent().await?;
        if failed > 0 {
            tracing::warn!(
                failed,
                "recorded runs whose server stopped during the run as failed"
            );
        }
        Ok(())
    }

    /// Renews the run's lease (and its flow's) every third of the lease until aborted, so
    /// that another replica sees the run alive; once this stops, the run counts as abandoned.
    fn keep_run_alive(&self, flow_id: &str, run_id: i64) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let flow_id = flow_id.to_string();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(FLOW_LEASE_MS as u64 / 3));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = store.renew_run(&flow_id, run_id, FLOW_LEASE_MS).await {
                    tracing::warn!(error = %e, run_id, "could not renew a run's lease");
                }
            }
        })
    }

    /// Moves the data of a started run and records how it ended.
    async fn record_run(
        &self,
        tenant_id: &str,
        tenant_name: &str,
        run_id: i64,
        flow_name: &str,
        definition: &FlowDefinition,
    ) -> Result<String, WorkspaceError> {
        let started = std::time::Instant::now();
        let mut log = RunLog(Vec::new());
        let mut counts = Counts {
            read: 0,
            written: 0,
        };
        let actor = Actor {
            tenant_id: tenant_id.to_string(),
            tenant_name: tenant_name.to_string(),
            role: store::Role::Admin,
        };
        let result = self
            .move_data(&actor, definition, &mut counts, &mut log)
            .await;
        // Whatever a remote system echoed back, no secret of the run's connections is kept.
        let secrets = self.run_secrets(&actor, definition).await;
        let (status, error) = match &result {
            Ok(()) => ("succeeded", None),
            Err(e) => {
                log.add(format!("failed: {e}; the destination was left unchanged"));
                ("failed", Some(redaction::scrub(&e.to_string(), &secrets)))
            }
        };
        for line in &mut log.0 {
            *line = redaction::scrub(line, &secrets);
        }
        self.store
            .finish_run(
                run_id,
                &RunResult {
                    status,
                    rows_read: counts.read,
                    rows_written: counts.written,
                    error: error.clone(),
                    log: log.0.join("\n"),
                },
            )
            .await?;
        let duration = format_duration(started.elapsed().as_millis() as i64);
        match error {
            None => Ok(format!(
                "Run {run_id} of flow '{flow_name}' succeeded: {} rows read, {} rows written in {duration}.",
                counts.read, counts.written
            )),
            Some(error) => Err(WorkspaceError::Rejected(format!(
                "Run {run_id} of flow '{flow_name}' failed after {duration} ({} rows read; nothing was written): {error}",
                counts.read
            ))),
        }
    }

    /// The secret values of the flow's two connections.
    async fn run_secrets(&self, actor: &Actor, flow: &FlowDefinition) -> Vec<String> {
        let mut secrets = Vec::new();
        for name in [&flow.from.connection, &flow.to.connection] {
            if let Ok(spec) = self.connection(actor, name).await {
                secrets.extend(connections::secret_values(&spec.params));
            }
        }
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets
    }

    async fn move_data(
        &self,
        actor: &Actor,
        flow: &FlowDefinition,
        counts: &mut Counts,
        log: &mut RunLog,
    ) -> Result<(), WorkspaceError> {
        let source_spec = self.connection(actor, &flow.from.connection).await?;
        let target_spec = self.connection(actor, &flow.to.connection).await?;
        ensure_filled(&source_spec)?;
        ensure_filled(&target_spec)?;
        let context = self.context(&actor.tenant_id);
        log.add(format!(
            "reading from {} ({})",
            source_spec.name,
            source_spec.kind.as_str()
        ));
        let mut source: Box<dyn Source> =
            connectors::open_source(&source_spec, &flow.from.source, &context).await?;
        let destination_spec = DestinationSpec {
            target: flow.to.target.clone(),
            mode: flow.mode,
            key: flow.key.clone(),
        };
        log.add(format!(
            "writing to {}:{} ({})",
            target_spec.name,
            flow.to.target,
            flow.mode.as_str()
        ));
        let mut destination: Box<dyn Destination> =
            connectors::open_destination(&target_spec, &destination_spec, &context).await?;
        let copied = async {
            let mut batches = 0u64;
            loop {
                let next = source.next_batch().await;
                for line in source.take_log() {
                    log.add(line);
                }
                let Some(batch) = next? else {
                    break;
                };
                counts.read += batch.len() as i64;
                let mapped: Vec<Record> = batch
                    .into_iter()
                    .map(|r| map_record(r, &flow.map))
                    .collect();
                if let Some(key) = flow
                    .key
                    .iter()
                    .find(|k| mapped.first().is_some_and(|r| !r.contains_key(*k)))
                {
                    return Err(WorkspaceError::Rejected(format!(
                        "the records have no key column '{key}'"
                    )));
                }
                counts.written += destination.write_batch(&mapped).await? as i64;
                batches += 1;
            }
            Ok::<u64, WorkspaceError>(batches)
        }
        .await;
        match copied {
            Ok(batches) => {
                destination.commit().await?;
                log.add(format!(
                    "committed {} rows in {batches} batch(es)",
                    counts.written
                ));
                Ok(())
            }
            Err(error) => {
                counts.written = 0;
                if let Err(rollback) = destination.rollback().await {
                    log.add(format!("rollback failed: {rollback}"));
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::ColumnMap;
    use serde_json::json;

    #[test]
    fn mapping_keeps_renames_and_orders_columns() {
        let record: Record = json!({"id": 1, "customer.name": "Ada", "extra": true})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let map = Some(vec![
            ColumnMap {
                from: "customer.name".into(),
                to: "customer_name".into(),
            },
            ColumnMap {
                from: "id".into(),
                to: "id".into(),
            },
            ColumnMap {
                from: "missing".into(),
                to: "missing".into(),
            },
        ]);
        let mapped = map_record(record, &map);
        assert_eq!(
            serde_json::Value::Object(mapped),
            json!({"customer_name": "Ada", "id": 1, "missing": null})
        );
    }
}
