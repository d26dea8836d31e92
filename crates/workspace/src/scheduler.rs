//! The scheduler: fires due schedules. Each firing is claimed in the database (the schedule's
//! next time moves on only for the process that saw it due), so with several replicas exactly
//! one runs it; the flow's run lease keeps a long run from overlapping the next firing.

use std::sync::Arc;

use crate::flows::StoredScheduleSpec;
use crate::service::{Actor, Workspace, WorkspaceError};

impl Workspace {
    /// Starts the runs of every schedule due now; returns how many were started. Runs left
    /// behind by a server that stopped mid-run are recorded as failed first.
    pub async fn fire_due_schedules(self: &Arc<Self>) -> Result<usize, WorkspaceError> {
        self.settle_abandoned_runs().await?;
        let now = store::now_millis();
        let mut started = 0;
        for schedule in self.store.schedules(None).await? {
            if schedule.next_at > now {
                break;
            }
            let Ok(spec) = serde_json::from_str::<StoredScheduleSpec>(&schedule.spec) else {
                tracing::warn!(flow = %schedule.flow_name, "skipping a damaged schedule");
                continue;
            };
            let Some(next) = crate::schedule::next_fire(&spec.spec(), now) else {
                continue;
            };
            if !self
                .store
                .claim_schedule(&schedule.flow_id, schedule.next_at, next)
                .await?
            {
                continue;
            }
            // How late the firing is: the scheduler looks once a second.
            metrics::histogram!("scheduler_lag_seconds")
                .record(now.saturating_sub(schedule.next_at).max(0) as f64 / 1000.0);
            let tenant = self.store.tenant_by_id(&schedule.tenant_id).await?;
            let actor = Actor {
                tenant_id: tenant.id,
                tenant_name: tenant.name,
                role: store::Role::Admin,
                by: "schedule".into(),
            };
            // A run is a job of the server: the schedule only starts it.
            match self
                .start_run(&actor, &schedule.flow_name, "schedule")
                .await
            {
                Ok(run) => {
                    started += 1;
                    metrics::counter!("scheduler_firings_total", "outcome" => "started")
                        .increment(1);
                    tracing::info!(tenant = %actor.tenant_name, flow = %schedule.flow_name, run = run.id, "scheduled run started");
                }
                Err(error) => {
                    metrics::counter!("scheduler_firings_total", "outcome" => "not_started")
                        .increment(1);
                    tracing::warn!(tenant = %actor.tenant_name, flow = %schedule.flow_name, %error, "scheduled run did not start")
                }
            }
        }
        Ok(started)
    }
}
