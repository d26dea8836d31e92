//! The workspace as JSON, for programs: runs, flows, connections (secrets masked) and
//! schedules of the caller's tenant, one object or a page at a time. The Markdown text of the
//! command language stays for the agent; these are the same facts in a stable shape.
//!
//! Pages are ordered (runs newest first, the rest by name) and continue from a cursor: the
//! `next_cursor` of a page, given back as `cursor`, starts the next one; `has_more` says
//! whether there is one.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::connections;
use crate::flows::{StoredDefinition, StoredScheduleSpec};
use crate::service::{Actor, Workspace, WorkspaceError};

/// A time as RFC 3339 in UTC (`2025-03-04T02:00:00Z`).
fn rfc3339(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The most items a page holds.
pub const MAX_PAGE: usize = 200;

/// One page of a listing.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
    /// Give it back as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A run of a flow, with its progress while it runs.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub id: i64,
    pub flow: String,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// `manual` or `schedule`.
    pub trigger: String,
    /// Who started it: a user's email, `operator` or `schedule`.
    pub started_by: String,
    pub rows_read: i64,
    pub rows_written: i64,
    pub pages_fetched: i64,
    /// What a running run is doing now.
    pub step: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Run time so far (running) or in all (ended), in milliseconds.
    pub duration_ms: i64,
    pub error: Option<String>,
    pub cancel_requested_by: Option<String>,
    /// The run's log lines (in a single run's view; omitted in pages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<Vec<String>>,
}

/// A flow's source.
#[derive(Debug, Clone, Serialize)]
pub struct FlowSourceView {
    pub connection: String,
    /// An endpoint path, table or file, unless the source is a query.
    pub resource: Option<String>,
    pub query: Option<String>,
}

/// A flow's destination.
#[derive(Debug, Clone, Serialize)]
pub struct FlowDestinationView {
    pub connection: String,
    pub target: String,
}

/// A flow.
#[derive(Debug, Clone, Serialize)]
pub struct FlowView {
    pub name: String,
    pub from: FlowSourceView,
    pub to: FlowDestinationView,
    /// `append`, `replace` or `upsert`.
    pub mode: String,
    pub key: Vec<String>,
    /// Source column → destination column, in order, when the flow maps columns.
    pub map: Option<Vec<[String; 2]>>,
    /// Whether the flow was imported as a composer canvas.
    pub composer: bool,
    pub schedule: Option<ScheduleView>,
    pub updated_at: String,
}

/// A connection, its secrets masked (`***`).
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    pub name: String,
    /// `http`, `postgres`, `sqlite` or `file`.
    #[serde(rename = "type")]
    pub kind: String,
    pub params: BTreeMap<String, String>,
    /// `{{PLACEHOLDER}}`s still to fill.
    pub placeholders: Vec<String>,
    pub updated_at: String,
}

/// A flow's schedule.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleView {
    pub flow: String,
    /// In words, e.g. `every 1h` or `cron "0 2 * * *"`.
    pub when: String,
    pub cron: Option<String>,
    pub every_seconds: Option<u64>,
    /// Whether the schedule fires (`disable schedule` stops it, keeping its settings).
    pub enabled: bool,
    /// When it fires next; absent while it is disabled.
    pub next_run_at: Option<String>,
}

fn run_view(run: store::StoredRun, with_log: bool) -> RunView {
    let end = run.finished_at.unwrap_or_else(store::now_millis);
    RunView {
        id: run.id,
        flow: run.flow_name,
        trigger: run.trigger,
        started_by: run.started_by,
        rows_read: run.rows_read,
        rows_written: run.rows_written,
        pages_fetched: run.pages,
        step: (run.status == "running" && !run.step.is_empty()).then_some(run.step),
        status: run.status,
        started_at: rfc3339(run.started_at),
        finished_at: run.finished_at.map(rfc3339),
        duration_ms: (end - run.started_at).max(0),
        error: run.error,
        cancel_requested_by: run.cancel_requested_by,
        log: with_log.then(|| run.log.lines().map(str::to_string).collect()),
    }
}

fn schedule_view(schedule: &store::StoredSchedule) -> Option<ScheduleView> {
    let spec = serde_json::from_str::<StoredScheduleSpec>(&schedule.spec).ok()?;
    let (cron, every_seconds) = match &spec {
        StoredScheduleSpec::Cron(cron) => (Some(cron.clone()), None),
        StoredScheduleSpec::EverySeconds(seconds) => (None, Some(*seconds)),
    };
    Some(ScheduleView {
        flow: schedule.flow_name.clone(),
        when: spec.describe(),
        cron,
        every_seconds,
        enabled: crate::schedule::is_enabled(schedule.next_at),
        next_run_at: crate::schedule::is_enabled(schedule.next_at)
            .then(|| rfc3339(schedule.next_at)),
    })
}

/// A page of items ordered by a name, after the cursor name.
fn page_by_name<T>(
    mut items: Vec<T>,
    name: impl Fn(&T) -> &str,
    cursor: Option<&str>,
    limit: usize,
) -> Page<T> {
    items.sort_by(|a, b| name(a).cmp(name(b)));
    if let Some(after) = cursor {
        items.retain(|item| name(item) > after);
    }
    let has_more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if has_more {
        items.last().map(|item| name(item).to_string())
    } else {
        None
    };
    Page {
        items,
        has_more,
        next_cursor,
    }
}

impl Workspace {
    /// A page of the tenant's runs, newest first, optionally of one flow; `cursor` is a
    /// run id (the page goes on with older runs).
    pub async fn runs_page(
        &self,
        actor: &Actor,
        flow: Option<&str>,
        cursor: Option<i64>,
        limit: usize,
    ) -> Result<Page<RunView>, WorkspaceError> {
        self.settle_abandoned_runs().await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let mut runs = self
            .store
            .runs(&actor.tenant_id, flow, cursor, limit as i64 + 1)
            .await?;
        let has_more = runs.len() > limit;
        runs.truncate(limit);
        let next_cursor = if has_more {
            runs.last().map(|run| run.id.to_string())
        } else {
            None
        };
        Ok(Page {
            items: runs.into_iter().map(|run| run_view(run, false)).collect(),
            has_more,
            next_cursor,
        })
    }

    /// One of the tenant's runs, with its log.
    pub async fn run_view(&self, actor: &Actor, id: i64) -> Result<RunView, WorkspaceError> {
        self.settle_abandoned_runs().await?;
        let run = self.store.run(&actor.tenant_id, id).await?;
        Ok(run_view(run, true))
    }

    /// A page of the tenant's flows, by name.
    pub async fn flows_page(
        &self,
        actor: &Actor,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<FlowView>, WorkspaceError> {
        let schedules = self.store.schedules(Some(&actor.tenant_id)).await?;
        let flows: Vec<FlowView> = self
            .store
            .flows(&actor.tenant_id)
            .await?
            .into_iter()
            .filter_map(|flow| flow_view(flow, &schedules))
            .collect();
        Ok(page_by_name(
            flows,
            |f| f.name.as_str(),
            cursor,
            limit.clamp(1, MAX_PAGE),
        ))
    }

    /// One of the tenant's flows.
    pub async fn flow_view(&self, actor: &Actor, name: &str) -> Result<FlowView, WorkspaceError> {
        let flow = self.store.flow(&actor.tenant_id, name).await?;
        let schedules = self.store.schedules(Some(&actor.tenant_id)).await?;
        flow_view(flow, &schedules)
            .ok_or_else(|| WorkspaceError::Rejected(format!("flow '{name}' is damaged")))
    }

    /// A page of the tenant's connections, by name, secrets masked.
    pub async fn connections_page(
        &self,
        actor: &Actor,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ConnectionView>, WorkspaceError> {
        let mut views = Vec::new();
        for stored in self.store.connections(&actor.tenant_id).await? {
            views.push(
                self.connection_view_of(actor, &stored.name, stored.updated_at)
                    .await?,
            );
        }
        Ok(page_by_name(
            views,
            |c| c.name.as_str(),
            cursor,
            limit.clamp(1, MAX_PAGE),
        ))
    }

    /// One of the tenant's connections, secrets masked.
    pub async fn connection_view(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<ConnectionView, WorkspaceError> {
        let stored = self.store.connection(&actor.tenant_id, name).await?;
        self.connection_view_of(actor, &stored.name, stored.updated_at)
            .await
    }

    async fn connection_view_of(
        &self,
        actor: &Actor,
        name: &str,
        updated_at: i64,
    ) -> Result<ConnectionView, WorkspaceError> {
        let spec = self.connection(actor, name).await?;
        Ok(ConnectionView {
            name: spec.name.clone(),
            kind: spec.kind.as_str().to_string(),
            placeholders: connections::unfilled(&spec.params),
            params: spec
                .params
                .iter()
                .map(|(key, value)| (key.clone(), connections::display_value(key, value)))
                .collect(),
            updated_at: rfc3339(updated_at),
        })
    }

    /// A page of the tenant's schedules, by flow name.
    pub async fn schedules_page(
        &self,
        actor: &Actor,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ScheduleView>, WorkspaceError> {
        let schedules: Vec<ScheduleView> = self
            .store
            .schedules(Some(&actor.tenant_id))
            .await?
            .iter()
            .filter_map(schedule_view)
            .collect();
        Ok(page_by_name(
            schedules,
            |s| s.flow.as_str(),
            cursor,
            limit.clamp(1, MAX_PAGE),
        ))
    }
}

fn flow_view(flow: store::StoredFlow, schedules: &[store::StoredSchedule]) -> Option<FlowView> {
    let stored: StoredDefinition = serde_json::from_str(&flow.definition).ok()?;
    let schedule = schedules
        .iter()
        .find(|s| s.flow_id == flow.id)
        .and_then(schedule_view);
    Some(FlowView {
        from: FlowSourceView {
            connection: stored.from_connection,
            resource: stored.resource,
            query: stored.query,
        },
        to: FlowDestinationView {
            connection: stored.to_connection,
            target: stored.target,
        },
        mode: stored.mode,
        key: stored.key,
        map: stored
            .map
            .map(|pairs| pairs.into_iter().map(|(from, to)| [from, to]).collect()),
        composer: stored.canvas.is_some(),
        schedule,
        updated_at: rfc3339(flow.updated_at),
        name: flow.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_by_name_continue_after_the_cursor() {
        let names: Vec<String> = ["d", "a", "c", "b", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let first = page_by_name(names.clone(), |s| s.as_str(), None, 2);
        assert_eq!(first.items, ["a", "b"]);
        assert!(first.has_more);
        assert_eq!(first.next_cursor.as_deref(), Some("b"));
        let second = page_by_name(names.clone(), |s| s.as_str(), Some("b"), 2);
        assert_eq!(second.items, ["c", "d"]);
        let last = page_by_name(names, |s| s.as_str(), Some("d"), 2);
        assert_eq!(last.items, ["e"]);
        assert!(!last.has_more);
        assert!(last.next_cursor.is_none());
    }
}
