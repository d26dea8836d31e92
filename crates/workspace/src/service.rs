//! The workspace service: executes parsed commands for a tenant, with role checks, over the
//! store; runs flows; imports templates.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use store::{MasterKey, Role, Store, StoreError};

use crate::command::{self, Command, FlowDefinition, ListWhat, ParseError};
use crate::connections;
use crate::connectors::{self, ConnectionSpec, ConnectorContext, ConnectorError};
use crate::egress::EgressPolicy;
use crate::flows::{StoredDefinition, StoredScheduleSpec};
use crate::redaction;
use crate::schedule::{is_enabled, DISABLED_AT};
use crate::table;
use crate::TemplateCatalog;

/// Who runs a command.
#[derive(Debug, Clone)]
pub struct Actor {
    pub tenant_id: String,
    pub tenant_name: String,
    pub role: Role,
    /// Who acts, as run records show it: a user's email, `operator` (the admin CLI),
    /// `schedule`.
    pub by: String,
}

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// The command line is not a valid command.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The caller's role may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The command is well-formed but cannot be done (bad parameter, busy flow…).
    #[error("{0}")]
    Rejected(String),
    /// The object named does not exist in the tenant's workspace.
    #[error("{0}")]
    NotFound(String),
    /// A connector failed (the message names the connection, never a secret).
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error("{0}")]
    Store(StoreError),
}

impl From<StoreError> for WorkspaceError {
    fn from(error: StoreError) -> WorkspaceError {
        match error {
            StoreError::NotFound(what) => {
                WorkspaceError::NotFound(format!("{what} does not exist"))
            }
            StoreError::Conflict(what) => {
                WorkspaceError::Rejected(format!("{what} already exists"))
            }
            StoreError::Invalid(message) => WorkspaceError::Rejected(message),
            other => WorkspaceError::Store(other),
        }
    }
}

/// The folder of a tenant's files under a data dir. It is named by the tenant's id, never by
/// its name, so no name can lead anywhere else.
pub fn tenant_folder(data_dir: &std::path::Path, tenant_id: &str) -> PathBuf {
    data_dir.join("tenants").join(tenant_id)
}

/// The id of a data dir, kept in its `instance.id` (created on first use). Runs record it, so
/// a server restarted on the same data dir knows which runs were its own.
fn instance_id(data_dir: &std::path::Path) -> String {
    let path = data_dir.join("instance.id");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if !id.is_empty() {
            return id.to_string();
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let written = std::fs::create_dir_all(data_dir).and_then(|()| std::fs::write(&path, &id));
    if let Err(error) = written {
        tracing::warn!(%error, path = %path.display(), "cannot keep this data dir's instance id; runs interrupted by a crash are settled as failed");
    }
    id
}

/// The workspaces of all tenants.
pub struct Workspace {
    pub(crate) store: Store,
    pub(crate) master_key: MasterKey,
    pub(crate) catalog: Arc<TemplateCatalog>,
    data_dir: PathBuf,
    egress: Arc<EgressPolicy>,
    pub(crate) runs: crate::runner::RunRegistry,
    /// Every run's task, so that a shutdown can wait for them to record their outcome.
    pub(crate) jobs: tokio_util::task::TaskTracker,
    /// The id of this data dir (`instance.id`): the runs it records are its own, and the
    /// tenant files they write are on its disk.
    pub(crate) instance: String,
}

impl Workspace {
    /// A workspace service; tenants' files live under `data_dir/tenants/<tenant id>`, and
    /// their connections reach the network as `egress` allows.
    pub fn new(
        store: Store,
        master_key: MasterKey,
        catalog: Arc<TemplateCatalog>,
        data_dir: PathBuf,
        egress: EgressPolicy,
    ) -> Workspace {
        Workspace {
            store,
            master_key,
            catalog,
            egress: Arc::new(egress),
            runs: crate::runner::RunRegistry::default(),
            jobs: tokio_util::task::TaskTracker::new(),
            instance: instance_id(&data_dir),
            data_dir,
        }
    }

    /// The template catalog that `import_template` imports from.
    pub fn catalog(&self) -> &TemplateCatalog {
        &self.catalog
    }

    /// The folder of a tenant's files (created on demand).
    pub fn tenant_dir(&self, tenant_id: &str) -> PathBuf {
        tenant_folder(&self.data_dir, tenant_id)
    }

    pub(crate) fn context(&self, tenant_id: &str) -> ConnectorContext {
        ConnectorContext::new(self.tenant_dir(tenant_id), self.egress.clone())
    }

    /// Moves tenant folders of earlier versions (named by the tenant's name) to their id's
    /// folder; names that could mean a path (`.`, `..`) are never followed.
    pub fn adopt_folders_named_by_tenant(
        &self,
        tenants: &[store::Tenant],
    ) -> Result<usize, std::io::Error> {
        let mut moved = 0;
        for tenant in tenants {
            if !store::is_valid_tenant_name(&tenant.name) {
                continue;
            }
            let old = self.data_dir.join("tenants").join(&tenant.name);
            let new = self.tenant_dir(&tenant.id);
            let is_folder = std::fs::symlink_metadata(&old).is_ok_and(|m| m.is_dir());
            if is_folder && !new.exists() {
                std::fs::rename(&old, &new)?;
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// Parses and executes one command line; the answer is text to show as it is.
    pub async fn execute(
        self: &Arc<Self>,
        actor: &Actor,
        line: &str,
    ) -> Result<String, WorkspaceError> {
        let command = command::parse(line)?;
        if command.modifies() && !actor.role.can_modify_workspace() {
            return Err(WorkspaceError::PermissionDenied(format!(
                "Your role ({}) may list, show and test, but not change the workspace: '{}' needs the user or admin role",
                actor.role,
                line.trim()
            )));
        }
        match command {
            Command::List(what) => self.list(actor, what).await,
            Command::ShowConnection(name) => self.show_connection(actor, &name).await,
            Command::ShowFlow(name) => self.show_flow(actor, &name).await,
            Command::ShowRun(id) => self.show_run(actor, id).await,
            Command::CreateConnection { name, kind, params } => {
                connections::check(kind, &params).map_err(WorkspaceError::Rejected)?;
                let (plain, sealed) = connections::seal(&params, &self.master_key);
                self.store
                    .insert_connection(&actor.tenant_id, &name, kind.as_str(), &plain, &sealed)
                    .await?;
                Ok(format!(
                    "Created {} connection '{name}'.{}",
                    kind.as_str(),
                    placeholder_note(&name, &params)
                ))
            }
            Command::SetConnection { name, params } => {
                let mut spec = self.connection(actor, &name).await?;
                spec.params.extend(params);
                connections::check(spec.kind, &spec.params).map_err(WorkspaceError::Rejected)?;
                let (plain, sealed) = connections::seal(&spec.params, &self.master_key);
                self.store
                    .update_connection(&actor.tenant_id, &name, &plain, &sealed)
                    .await?;
                Ok(format!(
                    "Updated connection '{name}'.{}",
                    placeholder_note(&name, &spec.params)
                ))
            }
            Command::TestConnection(name) => {
                let spec = self.connection(actor, &name).await?;
                ensure_filled(&spec)?;
                let secrets = connections::secret_values(&spec.params);
                match connectors::test_connection(&spec, &self.context(&actor.tenant_id)).await {
                    Ok(report) => Ok(format!(
                        "Connection '{name}' works: {}",
                        redaction::scrub(&report, &secrets)
                    )),
                    Err(error) => Err(WorkspaceError::Rejected(redaction::scrub(
                        &error.to_string(),
                        &secrets,
                    ))),
                }
            }
            Command::DeleteConnection(name) => {
                let users: Vec<String> = self
                    .flow_definitions(actor)
                    .await?
                    .into_iter()
                    .filter(|(_, d)| d.from_connection == name || d.to_connection == name)
                    .map(|(flow, _)| flow)
                    .collect();
                if !users.is_empty() {
                    return Err(WorkspaceError::Rejected(format!(
                        "connection '{name}' is used by flow(s) {}: delete them first",
                        users.join(", ")
                    )));
                }
                self.store
                    .delete_connection(&actor.tenant_id, &name)
                    .await?;
                Ok(format!("Deleted connection '{name}'."))
            }
            Command::CreateFlow { name, flow } => {
                self.check_flow(actor, &flow).await?;
                let stored = StoredDefinition::from_definition(&flow, None);
                self.store
                    .insert_flow(&actor.tenant_id, &name, &to_json(&stored))
                    .await?;
                Ok(format!(
                    "Created flow '{name}': {}. Run it with: run flow {name}",
                    describe_flow(&stored)
                ))
            }
            Command::DeleteFlow(name) => {
                self.store.delete_flow(&actor.tenant_id, &name).await?;
                Ok(format!(
                    "Deleted flow '{name}' (and its schedule; its run history is kept)."
                ))
            }
            Command::RunFlow { name, wait } => {
                let wait = wait
                    .map(Duration::from_secs)
                    .unwrap_or(crate::runner::DEFAULT_WAIT);
                self.run_flow(actor, &name, "manual", wait).await
            }
            Command::CancelRun(id) => self.cancel_run(actor, id).await,
            Command::ScheduleFlow { name, schedule } => {
                let flow = self.store.flow(&actor.tenant_id, &name).await?;
                let stored = StoredScheduleSpec::from_spec(&schedule);
                let now = store::now_millis();
                let next = crate::schedule::next_fire(&schedule, now)
                    .ok_or_else(|| WorkspaceError::Rejected("the schedule never fires".into()))?;
                self.store
                    .put_schedule(&actor.tenant_id, &flow.id, &to_json(&stored), next)
                    .await?;
                Ok(format!(
                    "Scheduled flow '{name}' {}; next run at {}.",
                    stored.describe(),
                    rfc3339(next)
                ))
            }
            Command::UnscheduleFlow(name) => {
                let flow = self.store.flow(&actor.tenant_id, &name).await?;
                if self.store.delete_schedule(&flow.id).await? {
                    Ok(format!("Flow '{name}' is no longer scheduled."))
                } else {
                    Err(WorkspaceError::Rejected(format!(
                        "flow '{name}' has no schedule"
                    )))
                }
            }
            Command::DisableSchedule(name) => self.switch_schedule(actor, &name, false).await,
            Command::EnableSchedule(name) => self.switch_schedule(actor, &name, true).await,
        }
    }

    /// Enables or disables a flow's schedule, keeping its cron expression or interval: a
    /// disabled schedule's next time is [`DISABLED_AT`], and enabling it computes the next
    /// time from now.
    async fn switch_schedule(
        &self,
        actor: &Actor,
        name: &str,
        enable: bool,
    ) -> Result<String, WorkspaceError> {
        let flow = self.store.flow(&actor.tenant_id, name).await?;
        let schedule = self
            .store
            .schedules(Some(&actor.tenant_id))
            .await?
            .into_iter()
            .find(|s| s.flow_id == flow.id)
            .ok_or_else(|| {
                WorkspaceError::Rejected(format!(
                    "flow '{name}' has no schedule: give it one with schedule flow {name} every=1h (or cron=\"…\")"
                ))
            })?;
        let spec = serde_json::from_str::<StoredScheduleSpec>(&schedule.spec).map_err(|e| {
            WorkspaceError::Rejected(format!("the schedule of flow '{name}' is damaged: {e}"))
        })?;
        let state = if enable { "enabled" } else { "disabled" };
        if is_enabled(schedule.next_at) == enable {
            return Ok(format!(
                "The schedule of flow '{name}' ({}) is already {state}.",
                spec.describe()
            ));
        }
        let next = if enable {
            crate::schedule::next_fire(&spec.spec(), store::now_millis())
                .ok_or_else(|| WorkspaceError::Rejected("the schedule never fires".into()))?
        } else {
            DISABLED_AT
        };
        self.store
            .put_schedule(&actor.tenant_id, &flow.id, &schedule.spec, next)
            .await?;
        Ok(if enable {
            format!(
                "Enabled the schedule of flow '{name}' ({}); next run at {}.",
                spec.describe(),
                rfc3339(next)
            )
        } else {
            format!(
                "Disabled the schedule of flow '{name}' ({}); it keeps its settings and runs again after enable schedule {name}.",
                spec.describe()
            )
        })
    }

    /// A tenant's connection with its secrets decrypted.
    pub(crate) async fn connection(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<ConnectionSpec, WorkspaceError> {
        let stored = self.store.connection(&actor.tenant_id, name).await?;
        connections::open(
            &stored.name,
            &stored.kind,
            &stored.params,
            &stored.sealed_secrets,
            &self.master_key,
        )
        .map_err(WorkspaceError::Rejected)
    }

    async fn flow_definitions(
        &self,
        actor: &Actor,
    ) -> Result<Vec<(String, StoredDefinition)>, WorkspaceError> {
        let flows = self.store.flows(&actor.tenant_id).await?;
        Ok(flows
            .into_iter()
            .filter_map(|f| {
                serde_json::from_str(&f.definition)
                    .ok()
                    .map(|d| (f.name, d))
            })
            .collect())
    }

    /// Checks that a flow's connections exist and fit their roles.
    pub(crate) async fn check_flow(
        &self,
        actor: &Actor,
        flow: &FlowDefinition,
    ) -> Result<(), WorkspaceError> {
        use crate::connectors::{ConnectionType, SourceSpec, WriteMode};
        let source = self
            .store
            .connection(&actor.tenant_id, &flow.from.connection)
            .await
            .map_err(|_| {
                WorkspaceError::Rejected(format!(
                    "source connection '{}' does not exist: create it first",
                    flow.from.connection
                ))
            })?;
        let target = self
            .store
            .connection(&actor.tenant_id, &flow.to.connection)
            .await
            .map_err(|_| {
                WorkspaceError::Rejected(format!(
                    "destination connection '{}' does not exist: create it first",
                    flow.to.connection
                ))
            })?;
        let source_kind = ConnectionType::parse(&source.kind);
        let target_kind = ConnectionType::parse(&target.kind);
        if matches!(flow.from.source, SourceSpec::Query(_))
            && !matches!(
                source_kind,
                Some(ConnectionType::Postgres | ConnectionType::Sqlite)
            )
        {
            return Err(WorkspaceError::Rejected(format!(
                "query= needs a database source; '{}' is a {} connection",
                source.name, source.kind
            )));
        }
        match target_kind {
            Some(ConnectionType::Http) => {
                return Err(WorkspaceError::Rejected(format!(
                    "'{}' is an http connection: http connections can only be read",
                    target.name
                )))
            }
            Some(ConnectionType::File) if flow.mode == WriteMode::Upsert => {
                return Err(WorkspaceError::Rejected(
                    "mode=upsert needs a database destination (postgres or sqlite)".into(),
                ))
            }
            Some(ConnectionType::File) => {
                let name = &flow.to.target;
                if name.contains('/') || name.contains('\\') || name.contains("..") {
                    return Err(WorkspaceError::Rejected(format!(
                        "file name '{name}' must not contain '/', '\\' or '..'"
                    )));
                }
            }
            _ => {}
        }
        if source_kind == Some(ConnectionType::File) {
            if let SourceSpec::Resource(name) = &flow.from.source {
                if name.contains('/') || name.contains('\\') || name.contains("..") {
                    return Err(WorkspaceError::Rejected(format!(
                        "file name '{name}' must not contain '/', '\\' or '..'"
                    )));
                }
            }
        }
        Ok(())
    }

    async fn list(&self, actor: &Actor, what: ListWhat) -> Result<String, WorkspaceError> {
        match what {
            ListWhat::Commands => Ok(command::COMMAND_REFERENCE.to_string()),
            ListWhat::Connections => {
                let rows: Vec<Vec<String>> = self
                    .store
                    .connections(&actor.tenant_id)
                    .await?
                    .into_iter()
                    .map(|c| {
                        let params: BTreeMap<String, String> =
                            serde_json::from_str(&c.params).unwrap_or_default();
                        let location = params
                            .get("url")
                            .or(params.get("path"))
                            .cloned()
                            .unwrap_or_else(|| "(secret url)".into());
                        vec![c.name, c.kind, location]
                    })
                    .collect();
                Ok(if rows.is_empty() {
                    "No connections yet. Create one with: create connection NAME type=http url=https://…".into()
                } else {
                    format!(
                        "{} connection(s):\n{}",
                        rows.len(),
                        table::render(&["name", "type", "location"], &rows)
                    )
                })
            }
            ListWhat::Flows => {
                let flows = self.flow_definitions(actor).await?;
                let schedules = self.store.schedules(Some(&actor.tenant_id)).await?;
                let rows: Vec<Vec<String>> = flows
                    .iter()
                    .map(|(name, d)| {
                        let schedule = schedules
                            .iter()
                            .find(|s| &s.flow_name == name)
                            .and_then(|s| {
                                let spec =
                                    serde_json::from_str::<StoredScheduleSpec>(&s.spec).ok()?;
                                Some(if is_enabled(s.next_at) {
                                    spec.describe()
                                } else {
                                    format!("{} (disabled)", spec.describe())
                                })
                            })
                            .unwrap_or_else(|| "-".into());
                        let from = d
                            .resource
                            .as_ref()
                            .map(|r| format!("{}:{r}", d.from_connection))
                            .unwrap_or_else(|| format!("{} (query)", d.from_connection));
                        vec![
                            name.clone(),
                            from,
                            format!("{}:{}", d.to_connection, d.target),
                            d.mode.clone(),
                            schedule,
                        ]
                    })
                    .collect();
                Ok(if rows.is_empty() {
                    "No flows yet. Create one with: create flow NAME from=CONNECTION:RESOURCE to=CONNECTION:TABLE".into()
                } else {
                    format!(
                        "{} flow(s):\n{}",
                        rows.len(),
                        table::render(&["name", "from", "to", "mode", "schedule"], &rows)
                    )
                })
            }
            ListWhat::Schedules => {
                let rows: Vec<Vec<String>> = self
                    .store
                    .schedules(Some(&actor.tenant_id))
                    .await?
                    .into_iter()
                    .map(|s| {
                        let spec = serde_json::from_str::<StoredScheduleSpec>(&s.spec)
                            .map(|s| s.describe())
                            .unwrap_or_default();
                        vec![s.flow_name, spec, next_run(s.next_at)]
                    })
                    .collect();
                Ok(if rows.is_empty() {
                    "No schedules. Schedule a flow with: schedule flow NAME every=1h (or cron=\"0 2 * * *\")".into()
                } else {
                    format!(
                        "{} schedule(s):\n{}",
                        rows.len(),
                        table::render(&["flow", "when", "next run (UTC)"], &rows)
                    )
                })
            }
            ListWhat::Templates => {
                let rows: Vec<Vec<String>> = self
                    .catalog
                    .all()
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.to_string(),
                            t.name.clone(),
                            format!("{:?}", t.kind).to_lowercase(),
                            t.tags
                                .iter()
                                .take(4)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", "),
                        ]
                    })
                    .collect();
                Ok(format!(
                    "{} template(s); import one with import_template {{\"template_id\": ID}}:\n{}",
                    rows.len(),
                    table::render(&["id", "name", "kind", "tags"], &rows)
                ))
            }
            ListWhat::Runs(flow) => {
                if let Some(name) = &flow {
                    // Runs of a flow that does not exist: say so, not "no runs yet".
                    self.store.flow(&actor.tenant_id, name).await?;
                }
                self.settle_abandoned_runs().await?;
                let now = store::now_millis();
                let rows: Vec<Vec<String>> = self
                    .store
                    .runs(&actor.tenant_id, flow.as_deref(), None, 50)
                    .await?
                    .into_iter()
                    .map(|r| {
                        let duration = match r.finished_at {
                            Some(finished) => format_duration(finished - r.started_at),
                            None => format!("{} so far", format_duration(now - r.started_at)),
                        };
                        let status = if r.status == "running" && !r.step.is_empty() {
                            format!("running: {}", r.step)
                        } else {
                            r.status
                        };
                        vec![
                            r.id.to_string(),
                            r.flow_name,
                            status,
                            r.trigger,
                            r.rows_read.to_string(),
                            r.rows_written.to_string(),
                            rfc3339(r.started_at),
                            duration,
                        ]
                    })
                    .collect();
                Ok(if rows.is_empty() {
                    "No runs yet. Run a flow with: run flow NAME".into()
                } else {
                    format!(
                        "{} run(s), newest first:\n{}",
                        rows.len(),
                        table::render(
                            &[
                                "id",
                                "flow",
                                "status",
                                "trigger",
                                "read",
                                "written",
                                "started (UTC)",
                                "duration"
                            ],
                            &rows
                        )
                    )
                })
            }
        }
    }

    async fn show_connection(&self, actor: &Actor, name: &str) -> Result<String, WorkspaceError> {
        let spec = self.connection(actor, name).await?;
        let mut out = format!("Connection '{name}' ({})\n", spec.kind.as_str());
        for (key, value) in &spec.params {
            out.push_str(&format!(
                "  {key} = {}\n",
                connections::display_value(key, value)
            ));
        }
        let missing = connections::unfilled(&spec.params);
        if !missing.is_empty() {
            out.push_str(&format!("  placeholders to fill: {}\n", missing.join(", ")));
        }
        Ok(out.trim_end().to_string())
    }

    async fn show_flow(&self, actor: &Actor, name: &str) -> Result<String, WorkspaceError> {
        let flow = self.store.flow(&actor.tenant_id, name).await?;
        let stored: StoredDefinition = serde_json::from_str(&flow.definition)
            .map_err(|e| WorkspaceError::Rejected(format!("flow '{name}' is damaged: {e}")))?;
        let mut out = format!("Flow '{name}': {}\n", describe_flow(&stored));
        if let Some(query) = &stored.query {
            out.push_str(&format!("  query: {query}\n"));
        }
        if let Some(map) = &stored.map {
            let columns: Vec<String> = map
                .iter()
                .map(|(f, t)| {
                    if f == t {
                        f.clone()
                    } else {
                        format!("{f} → {t}")
                    }
                })
                .collect();
            out.push_str(&format!("  columns: {}\n", columns.join(", ")));
        }
        if let Some(canvas) = &stored.canvas {
            out.push_str("  canvas (composer):\n");
            for node in &canvas.nodes {
                out.push_str(&format!(
                    "    [{}] {} at ({}, {}): {}\n",
                    node.id, node.kind, node.x, node.y, node.label
                ));
            }
            for edge in &canvas.edges {
                out.push_str(&format!("    {} → {}\n", edge.from, edge.to));
            }
        }
        if let Some(schedule) = self
            .store
            .schedules(Some(&actor.tenant_id))
            .await?
            .into_iter()
            .find(|s| s.flow_id == flow.id)
        {
            let spec = serde_json::from_str::<StoredScheduleSpec>(&schedule.spec)
                .map(|s| s.describe())
                .unwrap_or_default();
            out.push_str(&format!(
                "  schedule: {spec}, next run {}\n",
                next_run(schedule.next_at)
            ));
        }
        self.settle_abandoned_runs().await?;
        if let Some(last) = self
            .store
            .runs(&actor.tenant_id, Some(name), None, 1)
            .await?
            .into_iter()
            .next()
        {
            out.push_str(&format!(
                "  last run: {} {} ({} read, {} written)\n",
                last.id, last.status, last.rows_read, last.rows_written
            ));
        }
        Ok(out.trim_end().to_string())
    }

    async fn show_run(&self, actor: &Actor, id: i64) -> Result<String, WorkspaceError> {
        self.settle_abandoned_runs().await?;
        let run = self.store.run(&actor.tenant_id, id).await?;
        let running = run.status == "running";
        let so_far = if running { " so far" } else { "" };
        let mut out = format!(
            "Run {} of flow '{}' ({}{}): {}\n",
            run.id,
            run.flow_name,
            run.trigger,
            if run.started_by.is_empty() {
                String::new()
            } else {
                format!(" by {}", run.started_by)
            },
            run.status,
        );
        if running && !run.step.is_empty() {
            out.push_str(&format!("  now: {}\n", run.step));
        }
        out.push_str(&format!(
            "  rows read{so_far}: {}\n  rows written{so_far}: {}\n",
            run.rows_read, run.rows_written
        ));
        if run.pages > 0 {
            out.push_str(&format!("  pages fetched{so_far}: {}\n", run.pages));
        }
        out.push_str(&format!("  started: {}\n", rfc3339(run.started_at)));
        match run.finished_at {
            Some(finished) => out.push_str(&format!(
                "  duration: {}\n",
                format_duration(finished - run.started_at)
            )),
            None => out.push_str(&format!(
                "  elapsed: {}\n",
                format_duration(store::now_millis() - run.started_at)
            )),
        }
        if running {
            if let Some(by) = &run.cancel_requested_by {
                out.push_str(&format!("  cancel requested by {by}\n"));
            }
        }
        if let Some(error) = &run.error {
            out.push_str(&format!("  error: {error}\n"));
        }
        if !run.log.is_empty() {
            out.push_str("  log:\n");
            for line in run.log.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
        Ok(out.trim_end().to_string())
    }
}

/// A reminder of the placeholders a connection still holds, as the command that fills them:
/// each parameter holding one, with `<NAME>` where the value goes, quoted so that the line
/// parses as it is printed (`set connection api token="<API_TOKEN>" url="<API_BASE_URL>/v1"`).
fn placeholder_note(name: &str, params: &BTreeMap<String, String>) -> String {
    let to_fill: Vec<String> = params
        .iter()
        .filter_map(|(key, value)| {
            let names = connections::unfilled_in(value);
            (!names.is_empty())
                .then(|| format!("{key}={}", quoted(&marked_placeholders(value, &names))))
        })
        .collect();
    if to_fill.is_empty() {
        String::new()
    } else {
        format!(
            " Fill its placeholders before use: set connection {name} {}",
            to_fill.join(" ")
        )
    }
}

/// `value` with each of its placeholders `{{NAME}}` (`names`) written `<NAME>`.
fn marked_placeholders(value: &str, names: &[String]) -> String {
    let mut out = value.to_string();
    for name in names {
        out = out.replace(&format!("{{{{{name}}}}}"), &format!("<{name}>"));
    }
    out
}

/// A value in double quotes, as the command language reads them back.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Refuses to use a connection that still holds placeholders.
pub(crate) fn ensure_filled(spec: &ConnectionSpec) -> Result<(), WorkspaceError> {
    let missing = connections::unfilled(&spec.params);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(WorkspaceError::Rejected(format!(
            "connection '{}' still has placeholders to fill ({}): use set connection {} key=value",
            spec.name,
            missing.join(", "),
            spec.name
        )))
    }
}

pub(crate) fn describe_flow(d: &StoredDefinition) -> String {
    let from = match (&d.resource, &d.query) {
        (Some(resource), _) => format!("{}:{resource}", d.from_connection),
        _ => format!("{} (query)", d.from_connection),
    };
    let key = if d.key.is_empty() {
        String::new()
    } else {
        format!(" on {}", d.key.join(", "))
    };
    format!(
        "{from} → {}:{} ({}{key})",
        d.to_connection, d.target, d.mode
    )
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}

/// A schedule's next time as `list schedules` shows it: the time, or `disabled`.
fn next_run(next_at: i64) -> String {
    if is_enabled(next_at) {
        rfc3339(next_at)
    } else {
        "disabled".into()
    }
}

pub(crate) fn rfc3339(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A duration for people: `850 ms`, `4.2 s`, `3m 20s`.
pub fn format_duration(millis: i64) -> String {
    if millis < 1000 {
        format!("{millis} ms")
    } else if millis < 60_000 {
        format!("{:.1} s", millis as f64 / 1000.0)
    } else {
        format!("{}m {}s", millis / 60_000, (millis % 60_000) / 1000)
    }
}
