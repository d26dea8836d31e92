//! Running a flow. A run is a job of the server, not of the request that started it: it gets
//! its id, then goes on in a task of its own, which owns the flow's run lease, the run's
//! progress and its cancellation. Callers only wait for it (up to a bound); a caller that goes
//! away changes nothing.
//!
//! - One run at a time per flow: a lease in the database, so also across replicas. The run's
//!   task renews it with the run's progress (rows read and written, pages, the current step,
//!   the log so far) at least once a second, and frees it when the run ends — whatever ends
//!   it, so a flow can always run again.
//! - `cancel run N` asks the run to stop, from any replica (the request is stored with the
//!   run and seen by its task within a second; on the replica running it, at once). The run
//!   stops at its next page or batch, rolls its destination back and is recorded `cancelled`
//!   with who cancelled it.
//! - The outcome is recorded exactly once. The destination commits a marker of the run with
//!   the data (`connectors::RunMarker`); a run whose server died before recording it is settled
//!   by the next server start (SQLite) or another replica (PostgreSQL) as succeeded when its
//!   marker is there, and as failed otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use store::{Abandoned, AbandonedRun, NewRun, RunProgress, RunResult};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::command::FlowDefinition;
use crate::connections;
use crate::connectors::{self, ConnectionType, Destination, DestinationSpec, Record, RunMarker};
use crate::flows::StoredDefinition;
use crate::redaction;
use crate::service::{ensure_filled, format_duration, Actor, Workspace, WorkspaceError};

/// How long a run may go without a sign of life before it counts as abandoned: a replica
/// that crashed mid-run holds its flows this long at most.
const FLOW_LEASE_MS: i64 = 15_000;
/// How often a run's progress (and sign of life) is stored.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long `run flow` waits for the run before it answers with the run's id.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The longest `wait=`.
pub const MAX_WAIT_SECONDS: u64 = 3600;
/// How long `cancel run` waits for the run to stop before it answers.
const CANCEL_WAIT: Duration = Duration::from_secs(10);
/// Opening a destination that takes longer than this is logged as a wait.
const SLOW_OPEN: Duration = Duration::from_millis(500);
/// Set to make the server abort right after a destination commit, before the run is
/// recorded: the crash the run markers exist for, for tests of the recovery.
const CRASH_AFTER_COMMIT: &str = "INTEGRATOR_TEST_CRASH_AFTER_COMMIT";

/// What a run did so far, shared by its task and its progress writer.
#[derive(Default)]
struct Progress {
    rows_read: i64,
    rows_written: i64,
    pages: i64,
    step: String,
    log: Vec<String>,
}

impl Progress {
    fn add(&mut self, line: impl Into<String>) {
        let time = chrono::Utc::now().format("%H:%M:%S%.3f");
        self.log.push(format!("{time} {}", line.into()));
    }

    fn snapshot(&self) -> RunProgress {
        RunProgress {
            rows_read: self.rows_read,
            rows_written: self.rows_written,
            pages: self.pages,
            step: self.step.clone(),
            log: self.log.join("\n"),
        }
    }
}

#[derive(Clone, Default)]
struct SharedProgress(Arc<Mutex<Progress>>);

impl SharedProgress {
    fn update(&self, change: impl FnOnce(&mut Progress)) {
        match self.0.lock() {
            Ok(mut progress) => change(&mut progress),
            Err(poisoned) => change(&mut poisoned.into_inner()),
        }
    }

    fn read<T>(&self, look: impl FnOnce(&Progress) -> T) -> T {
        match self.0.lock() {
            Ok(progress) => look(&progress),
            Err(poisoned) => look(&poisoned.into_inner()),
        }
    }

    fn step(&self, step: impl Into<String>) {
        let step = step.into();
        self.update(|p| p.step = step);
    }

    fn log(&self, line: impl Into<String>) {
        let line = line.into();
        self.update(|p| p.add(line));
    }
}

/// How a run ended, for whoever waits for it.
#[derive(Debug, Clone)]
struct RunOutcome {
    succeeded: bool,
    text: String,
}

/// A run this process is running: how to stop it, and who did.
#[derive(Clone)]
struct RunControl {
    cancel: CancellationToken,
    cancelled_by: Arc<Mutex<Option<String>>>,
}

impl RunControl {
    fn cancel_by(&self, who: &str) {
        if let Ok(mut by) = self.cancelled_by.lock() {
            by.get_or_insert_with(|| who.to_string());
        }
        self.cancel.cancel();
    }

    fn cancelled_by(&self) -> String {
        self.cancelled_by
            .lock()
            .ok()
            .and_then(|by| by.clone())
            .unwrap_or_else(|| "the server".to_string())
    }
}

/// The runs this process is running, by id.
#[derive(Default)]
pub(crate) struct RunRegistry {
    running: Mutex<HashMap<i64, RunControl>>,
}

impl RunRegistry {
    fn insert(&self, id: i64, control: RunControl) {
        if let Ok(mut running) = self.running.lock() {
            running.insert(id, control);
        }
    }

    fn remove(&self, id: i64) {
        if let Ok(mut running) = self.running.lock() {
            running.remove(&id);
        }
    }

    fn get(&self, id: i64) -> Option<RunControl> {
        self.running.lock().ok()?.get(&id).cloned()
    }
}

/// Where a run writes, kept with the run so that a crashed run can be settled.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredDestination {
    connection: String,
    target: String,
}

/// A run that was started: its id, and its end to wait for.
pub struct StartedRun {
    pub id: i64,
    pub flow: String,
    done: watch::Receiver<Option<RunOutcome>>,
}

/// Why a run stopped before its end.
enum Stop {
    Cancelled,
    Failed(WorkspaceError),
}

impl From<WorkspaceError> for Stop {
    fn from(error: WorkspaceError) -> Stop {
        Stop::Failed(error)
    }
}

impl From<connectors::ConnectorError> for Stop {
    fn from(error: connectors::ConnectorError) -> Stop {
        Stop::Failed(error.into())
    }
}

/// Everything the run's task needs.
struct Job {
    id: i64,
    actor: Actor,
    flow_id: String,
    flow_name: String,
    definition: FlowDefinition,
    marker: String,
    control: RunControl,
    done: watch::Sender<Option<RunOutcome>>,
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
    /// Starts a run of a flow as a job of this server and answers as soon as it has an id.
    /// `started_by` names who started it (an email, `operator`, `schedule`).
    pub async fn start_run(
        self: &Arc<Self>,
        actor: &Actor,
        flow_name: &str,
        trigger: &str,
    ) -> Result<StartedRun, WorkspaceError> {
        let flow = self.store.flow(&actor.tenant_id, flow_name).await?;
        let stored: StoredDefinition = serde_json::from_str(&flow.definition)
            .map_err(|e| WorkspaceError::Rejected(format!("flow '{flow_name}' is damaged: {e}")))?;
        let definition = stored.definition().map_err(WorkspaceError::Rejected)?;
        if !self.store.try_lease_flow(&flow.id, FLOW_LEASE_MS).await? {
            return Err(WorkspaceError::Rejected(format!(
                "flow '{flow_name}' is already running; `list runs {flow_name}` shows the run, `cancel run ID` stops it"
            )));
        }
        let marker = uuid::Uuid::new_v4().simple().to_string();
        let destination = serde_json::to_string(&StoredDestination {
            connection: definition.to.connection.clone(),
            target: definition.to.target.clone(),
        })
        .unwrap_or_default();
        let new_run = NewRun {
            tenant_id: &actor.tenant_id,
            flow_id: &flow.id,
            flow_name,
            trigger,
            started_by: &actor.by,
            marker: &marker,
            destination: &destination,
            runner: &self.instance,
        };
        let id = match self.store.start_run(&new_run, FLOW_LEASE_MS).await {
            Ok(id) => id,
            Err(error) => {
                let _ = self.store.release_flow_lease(&flow.id).await;
                return Err(error.into());
            }
        };
        let (done, waiter) = watch::channel(None);
        let control = RunControl {
            cancel: CancellationToken::new(),
            cancelled_by: Arc::new(Mutex::new(None)),
        };
        self.runs.insert(id, control.clone());
        let job = Job {
            id,
            actor: actor.clone(),
            flow_id: flow.id,
            flow_name: flow_name.to_string(),
            definition,
            marker,
            control,
            done,
        };
        let span = tracing::info_span!("flow run", run_id = id, flow = %flow_name);
        self.jobs.spawn(tracing::Instrument::instrument(
            self.clone().run_job(job),
            span,
        ));
        Ok(StartedRun {
            id,
            flow: flow_name.to_string(),
            done: waiter,
        })
    }

    /// Starts a run of a flow at a person's request (`run flow NAME wait=0`, trigger
    /// `manual`) and answers with its id at once, for callers that follow the run themselves
    /// (the web console's run page). As with `run flow`, viewers may not.
    pub async fn start_manual_run(
        self: &Arc<Self>,
        actor: &Actor,
        flow_name: &str,
    ) -> Result<StartedRun, WorkspaceError> {
        if !actor.role.can_modify_workspace() {
            return Err(WorkspaceError::PermissionDenied(format!(
                "Your role ({}) may list, show and test, but not run flows: 'run flow {flow_name}' needs the user or admin role",
                actor.role
            )));
        }
        self.start_run(actor, flow_name, "manual").await
    }

    /// Waits (at most `grace`) for the runs in progress to end and record their outcome. True
    /// when all ended in time; a run cut off later is settled from its marker at the next
    /// start.
    pub async fn finish_runs(&self, grace: Duration) -> bool {
        self.jobs.close();
        tokio::time::timeout(grace, self.jobs.wait()).await.is_ok()
    }

    /// Starts a run and waits for it up to `wait`; the answer summarises the run, or says
    /// that it goes on and how to follow it.
    pub async fn run_flow(
        self: &Arc<Self>,
        actor: &Actor,
        flow_name: &str,
        trigger: &str,
        wait: Duration,
    ) -> Result<String, WorkspaceError> {
        let started = self.start_run(actor, flow_name, trigger).await?;
        match wait_for(started.done, wait).await {
            Some(outcome) if outcome.succeeded => Ok(outcome.text),
            Some(outcome) => Err(WorkspaceError::Rejected(outcome.text)),
            None => Ok(format!(
                "Run {id} of flow '{flow}' is still running; `show run {id}` follows it, `cancel run {id}` stops it.",
                id = started.id,
                flow = started.flow
            )),
        }
    }

    /// Asks a run of the actor's tenant to stop and waits (briefly) until it did.
    pub(crate) async fn cancel_run(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<String, WorkspaceError> {
        if !self
            .store
            .request_run_cancel(&actor.tenant_id, id, &actor.by)
            .await?
        {
            let run = self.store.run(&actor.tenant_id, id).await?;
            return Err(WorkspaceError::Rejected(format!(
                "run {id} of flow '{}' is not running: it {}",
                run.flow_name, run.status
            )));
        }
        if let Some(control) = self.runs.get(id) {
            control.cancel_by(&actor.by);
        }
        let deadline = Instant::now() + CANCEL_WAIT;
        loop {
            let run = self.store.run(&actor.tenant_id, id).await?;
            let duration = run
                .finished_at
                .map(|f| format_duration(f - run.started_at))
                .unwrap_or_default();
            match run.status.as_str() {
                "cancelled" => {
                    return Ok(format!(
                        "Cancelled run {id} of flow '{}' after {duration}: {} rows read, nothing written; the destination is unchanged.",
                        run.flow_name, run.rows_read
                    ))
                }
                "running" if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                "running" => {
                    return Ok(format!(
                        "Asked run {id} of flow '{}' to stop; it stops at its next page or batch (`show run {id}`).",
                        run.flow_name
                    ))
                }
                status => {
                    return Ok(format!(
                        "Run {id} of flow '{}' ended before it could be cancelled: it {status}.",
                        run.flow_name
                    ))
                }
            }
        }
    }

    /// The task of one run: moves the data, stores progress meanwhile, records the outcome
    /// once, frees the flow, and tells the waiters.
    async fn run_job(self: Arc<Self>, job: Job) {
        let started = Instant::now();
        let progress = SharedProgress::default();
        progress.update(|p| p.step = "starting".into());
        let moving = std::panic::AssertUnwindSafe(self.move_data(&job, &progress)).catch_unwind();
        let result = tokio::select! {
            result = moving => result.unwrap_or_else(|_| {
                Err(Stop::Failed(WorkspaceError::Rejected(
                    "the run stopped on an internal error".into(),
                )))
            }),
            never = self.keep_progress(&job, &progress) => match never {},
        };
        let secrets = self.run_secrets(&job.actor, &job.definition).await;
        let duration = format_duration(started.elapsed().as_millis() as i64);
        let (read, written, pages) = progress.read(|p| (p.rows_read, p.rows_written, p.pages));
        let (status, error, outcome) = match result {
            Ok(()) => (
                "succeeded",
                None,
                RunOutcome {
                    succeeded: true,
                    text: format!(
                        "Run {} of flow '{}' succeeded: {read} rows read, {written} rows written in {duration}.",
                        job.id, job.flow_name
                    ),
                },
            ),
            Err(Stop::Cancelled) => {
                let by = job.control.cancelled_by();
                progress.log(format!(
                    "cancelled by {by}; the destination was left unchanged"
                ));
                (
                    "cancelled",
                    Some(format!("cancelled by {by}")),
                    RunOutcome {
                        succeeded: false,
                        text: format!(
                            "Run {} of flow '{}' was cancelled by {by} after {duration} ({read} rows read; nothing was written: the destination is unchanged).",
                            job.id, job.flow_name
                        ),
                    },
                )
            }
            Err(Stop::Failed(error)) => {
                let error = redaction::scrub(&error.to_string(), &secrets);
                progress.log(format!("failed: {error}; the destination was left unchanged"));
                (
                    "failed",
                    Some(error.clone()),
                    RunOutcome {
                        succeeded: false,
                        text: format!(
                            "Run {} of flow '{}' failed after {duration} ({read} rows read; nothing was written): {error}",
                            job.id, job.flow_name
                        ),
                    },
                )
            }
        };
        let log = progress.read(|p| {
            p.log
                .iter()
                .map(|line| redaction::scrub(line, &secrets))
                .collect::<Vec<_>>()
                .join("\n")
        });
        metrics::counter!("flow_runs_total", "outcome" => status).increment(1);
        metrics::histogram!("flow_run_duration_seconds", "outcome" => status)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("flow_rows_total", "direction" => "read")
            .increment(u64::try_from(read).unwrap_or(0));
        if status == "succeeded" {
            metrics::counter!("flow_rows_total", "direction" => "written")
                .increment(u64::try_from(written).unwrap_or(0));
        }
        let result = RunResult {
            status,
            rows_read: read,
            rows_written: if status == "succeeded" { written } else { 0 },
            pages,
            error,
            log,
        };
        if let Err(e) = self.store.finish_run(job.id, &result).await {
            tracing::warn!(error = %e, run = job.id, "could not record a run's outcome; it is settled from its marker");
        } else if status == "succeeded" {
            self.forget_marker(&job.actor, &job.definition, &job.marker)
                .await;
        }
        if let Err(e) = self.store.release_flow_lease(&job.flow_id).await {
            tracing::warn!(error = %e, "could not release a flow's run lease; it expires by itself");
        }
        self.runs.remove(job.id);
        let _ = job.done.send(Some(outcome));
    }

    /// Stores the run's progress every second (its sign of life) and hears cancel requests
    /// made on other replicas; never returns.
    async fn keep_progress(
        &self,
        job: &Job,
        progress: &SharedProgress,
    ) -> std::convert::Infallible {
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let snapshot = progress.read(Progress::snapshot);
            match self
                .store
                .record_progress(&job.flow_id, job.id, &snapshot, FLOW_LEASE_MS)
                .await
            {
                Ok(Some(by)) if !job.control.cancel.is_cancelled() => job.control.cancel_by(&by),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, run = job.id, "could not store a run's progress")
                }
            }
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

    async fn forget_marker(&self, actor: &Actor, flow: &FlowDefinition, marker: &str) {
        if let Ok(spec) = self.connection(actor, &flow.to.connection).await {
            let destination = DestinationSpec {
                target: flow.to.target.clone(),
                mode: flow.mode,
                key: flow.key.clone(),
            };
            connectors::forget_marker(&spec, &destination, marker, &self.context(&actor.tenant_id))
                .await;
        }
    }

    async fn move_data(&self, job: &Job, progress: &SharedProgress) -> Result<(), Stop> {
        let flow = &job.definition;
        let cancel = &job.control.cancel;
        let actor = &job.actor;
        let source_spec = self.connection(actor, &flow.from.connection).await?;
        let target_spec = self.connection(actor, &flow.to.connection).await?;
        ensure_filled(&source_spec)?;
        ensure_filled(&target_spec)?;
        let context = self.context(&actor.tenant_id);
        progress.step(format!("opening the source {}", source_spec.name));
        progress.log(format!(
            "reading from {} ({})",
            source_spec.name,
            source_spec.kind.as_str()
        ));
        let mut source = tokio::select! {
            opened = connectors::open_source(&source_spec, &flow.from.source, &context) => opened?,
            () = cancel.cancelled() => return Err(Stop::Cancelled),
        };
        let destination_spec = DestinationSpec {
            target: flow.to.target.clone(),
            mode: flow.mode,
            key: flow.key.clone(),
        };
        let database = matches!(
            target_spec.kind,
            ConnectionType::Sqlite | ConnectionType::Postgres
        );
        progress.step(if database {
            "waiting for the destination database lock".to_string()
        } else {
            format!("opening the destination {}", target_spec.name)
        });
        progress.log(format!(
            "writing to {}:{} ({})",
            target_spec.name,
            flow.to.target,
            flow.mode.as_str()
        ));
        let opening = Instant::now();
        let mut destination: Box<dyn Destination> = tokio::select! {
            opened = connectors::open_destination(&target_spec, &destination_spec, &context) => opened?,
            () = cancel.cancelled() => return Err(Stop::Cancelled),
        };
        if database && opening.elapsed() > SLOW_OPEN {
            progress.log(format!(
                "waited {} for the destination database lock",
                format_duration(opening.elapsed().as_millis() as i64)
            ));
        }
        let copied = async {
            let mut batches = 0u64;
            loop {
                if cancel.is_cancelled() {
                    return Err(Stop::Cancelled);
                }
                progress.step(format!("reading from {}", source_spec.name));
                let next = tokio::select! {
                    next = source.next_batch() => next,
                    () = cancel.cancelled() => return Err(Stop::Cancelled),
                };
                let pages = source.pages_fetched() as i64;
                let lines = source.take_log();
                progress.update(|p| {
                    p.pages = pages;
                    for line in lines {
                        p.add(line);
                    }
                });
                let Some(batch) = next? else {
                    break;
                };
                progress.update(|p| p.rows_read += batch.len() as i64);
                let mapped: Vec<Record> = batch
                    .into_iter()
                    .map(|r| map_record(r, &flow.map))
                    .collect();
                if let Some(key) = flow
                    .key
                    .iter()
                    .find(|k| mapped.first().is_some_and(|r| !r.contains_key(*k)))
                {
                    return Err(Stop::Failed(WorkspaceError::Rejected(format!(
                        "the records have no key column '{key}'"
                    ))));
                }
                if cancel.is_cancelled() {
                    return Err(Stop::Cancelled);
                }
                batches += 1;
                progress.step(format!("writing batch {batches} to {}", target_spec.name));
                let written = destination.write_batch(&mapped).await? as i64;
                progress.update(|p| p.rows_written += written);
            }
            Ok::<u64, Stop>(batches)
        }
        .await;
        match copied {
            Ok(batches) => {
                let written = progress.read(|p| p.rows_written);
                progress.step("committing");
                destination.set_marker(RunMarker {
                    token: job.marker.clone(),
                    flow: job.flow_name.clone(),
                    rows_written: written,
                });
                destination.commit().await?;
                if std::env::var_os(CRASH_AFTER_COMMIT).is_some() {
                    tracing::error!(
                        "{CRASH_AFTER_COMMIT} is set: stopping the process after the commit"
                    );
                    std::process::abort();
                }
                progress.log(format!("committed {written} rows in {batches} batch(es)"));
                Ok(())
            }
            Err(stop) => {
                progress.step("rolling back");
                progress.update(|p| p.rows_written = 0);
                if let Err(rollback) = destination.rollback().await {
                    progress.log(format!("rollback failed: {rollback}"));
                }
                Err(stop)
            }
        }
    }

    /// Settles the runs whose server stopped giving signs of life (a replica that crashed
    /// or was killed mid-run); see [`Workspace::settle`].
    pub async fn settle_abandoned_runs(&self) -> Result<usize, WorkspaceError> {
        self.settle(Abandoned::GoneSilent).await
    }

    /// Settles, at a server's start, the runs an earlier process on this data dir left: every
    /// run still `running` on SQLite (one server), this data dir's own on PostgreSQL.
    pub async fn settle_runs_left_by_the_last_stop(&self) -> Result<usize, WorkspaceError> {
        match self.store.backend() {
            store::Backend::Sqlite => self.settle(Abandoned::All).await,
            store::Backend::Postgres => self.settle(Abandoned::Of(&self.instance)).await,
        }
    }

    /// Records the outcome of runs whose server stopped before recording it: succeeded when
    /// the destination holds the run's marker, failed otherwise.
    async fn settle(&self, which: Abandoned<'_>) -> Result<usize, WorkspaceError> {
        let mut settled = 0;
        for run in self.store.abandoned_runs(which).await? {
            let committed = self.committed_rows(&run).await;
            let time = chrono::Utc::now().format("%H:%M:%S%.3f");
            let (status, rows_written, error, note) = match committed {
                Ok(Some(rows)) => (
                    "succeeded",
                    rows,
                    None,
                    "the server running it stopped after the destination committed (its marker is there): recorded as succeeded".to_string(),
                ),
                Ok(None) => (
                    "failed",
                    0,
                    Some("the server running it stopped during the run; the destination was left unchanged".to_string()),
                    "the server running it stopped before the destination committed: recorded as failed".to_string(),
                ),
                Err(why) => (
                    "failed",
                    0,
                    Some(format!("the server running it stopped during the run; its destination could not be checked ({why})")),
                    format!("the server running it stopped; the destination could not be checked: {why}"),
                ),
            };
            let log = if run.log.is_empty() {
                format!("{time} {note}")
            } else {
                format!("{}\n{time} {note}", run.log)
            };
            let result = RunResult {
                status,
                rows_read: 0,
                rows_written,
                pages: 0,
                error,
                log,
            };
            if self
                .store
                .settle_abandoned_run(run.id, &result, which)
                .await?
            {
                settled += 1;
                tracing::warn!(run = run.id, flow = %run.flow_name, status, "settled a run whose server stopped");
            }
        }
        Ok(settled)
    }

    /// The rows an abandoned run committed, from its marker in the destination.
    async fn committed_rows(&self, run: &AbandonedRun) -> Result<Option<i64>, String> {
        let (Some(marker), Some(destination)) = (&run.marker, &run.destination) else {
            return Ok(None);
        };
        let destination: StoredDestination =
            serde_json::from_str(destination).map_err(|e| e.to_string())?;
        let actor = Actor {
            tenant_id: run.tenant_id.clone(),
            tenant_name: String::new(),
            role: store::Role::Admin,
            by: "the server".into(),
        };
        let spec = self
            .connection(&actor, &destination.connection)
            .await
            .map_err(|e| e.to_string())?;
        let on_local_disk = matches!(spec.kind, ConnectionType::File | ConnectionType::Sqlite);
        if on_local_disk && run.runner != self.instance {
            return Err(format!(
                "it ran on another server, whose disk holds {}:{}; check it before running the flow again",
                destination.connection, destination.target
            ));
        }
        let target = DestinationSpec {
            target: destination.target,
            mode: connectors::WriteMode::Append,
            key: Vec::new(),
        };
        let context = self.context(&run.tenant_id);
        let found = connectors::find_marker(&spec, &target, marker, &context)
            .await
            .map_err(|e| e.to_string())?;
        if found.is_some() {
            connectors::forget_marker(&spec, &target, marker, &context).await;
        }
        Ok(found)
    }
}

/// The outcome of a run, if it ends within `wait`.
async fn wait_for(
    mut done: watch::Receiver<Option<RunOutcome>>,
    wait: Duration,
) -> Option<RunOutcome> {
    let ended = tokio::time::timeout(wait, done.wait_for(|outcome| outcome.is_some())).await;
    match ended {
        Ok(Ok(outcome)) => outcome.clone(),
        _ => None,
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
