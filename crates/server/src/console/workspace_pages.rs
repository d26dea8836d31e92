//! The console's workspace pages: Connections (secrets masked, **Test**), Flows (source,
//! destination, mode, mapping, **Run now**, run history), a run's page with live progress, log
//! lines and **Cancel**, and Schedules (next time, **Enable** / **Disable**).
//!
//! They are a client of the `Workspace` service like the API and `host_cli`: the JSON views
//! (`workspace::views`) for reading, the command language (with its role checks) for acting.
//! Viewers see every page but no buttons, and their POSTs are refused with 403.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use workspace::views::{ConnectionView, FlowView, RunView, ScheduleView, MAX_PAGE};
use workspace::WorkspaceError;

use super::pages::{failed, flash, message, nav, render, stale_form, status_for, Flash, Nav};
use super::session::Signed;
use crate::params::ApiPath;
use crate::state::AppState;

/// How many runs a history shows at a time.
const RUNS_PER_PAGE: usize = 50;

// ---------------------------------------------------------------------------------------------
// Shared by the workspace and knowledge pages

/// Whether the signed-in person may press the workspace's buttons (users, admins and
/// super-admins); viewers only look.
pub(super) fn can_change(signed: &Signed) -> bool {
    signed.role().can_modify_workspace()
}

/// Refuses a POST unless the person may change the workspace and the form carries the
/// session's CSRF token; the `Err` is the refusal (403 either way), and nothing was done.
pub(super) async fn may_act(state: &AppState, signed: &Signed, csrf: &str) -> Result<(), Response> {
    if !can_change(signed) {
        return Err(message(
            state,
            Some(signed),
            StatusCode::FORBIDDEN,
            "Read-only",
            "Viewers see the workspace but can't change it: this needs the user or admin role.",
        )
        .await);
    }
    if !signed.csrf_ok(csrf) {
        return Err(stale_form(state, signed).await);
    }
    Ok(())
}

/// The status a refused workspace action answers with; `None` for a storage failure (a 500,
/// see `failed`).
pub(super) fn refusal_status(error: &WorkspaceError) -> Option<StatusCode> {
    match error {
        WorkspaceError::Parse(_) => Some(StatusCode::BAD_REQUEST),
        WorkspaceError::PermissionDenied(_) => Some(StatusCode::FORBIDDEN),
        WorkspaceError::NotFound(_) => Some(StatusCode::NOT_FOUND),
        WorkspaceError::Rejected(_) | WorkspaceError::Connector(_) => Some(StatusCode::CONFLICT),
        WorkspaceError::Store(_) => None,
    }
}

/// A 404 page for a workspace object that doesn't exist in the tenant.
async fn not_found(state: &AppState, signed: &Signed, what: &str) -> Response {
    message(
        state,
        Some(signed),
        StatusCode::NOT_FOUND,
        &format!("No such {what}"),
        &format!("This {what} doesn't exist in the tenant's workspace."),
    )
    .await
}

/// A refused or failed workspace read as a page: 404 for a missing object, 500 otherwise.
async fn read_failed(
    state: &AppState,
    signed: &Signed,
    what: &str,
    error: WorkspaceError,
) -> Response {
    match error {
        WorkspaceError::NotFound(_) => not_found(state, signed, what).await,
        other => failed(state, signed, other).await,
    }
}

/// A name of a connection or flow from a path, if it can be one (so that it goes into a
/// command as one word).
fn valid_name(name: &str) -> Option<&str> {
    workspace::command::check_name(name).ok().map(|()| name)
}

/// An RFC 3339 time of the views as people read it: `2025-03-04 02:00:00 UTC`.
fn shown_time(rfc3339: &str) -> String {
    rfc3339.replacen('T', " ", 1).replace('Z', " UTC")
}

/// The form of every workspace button: the session's CSRF token.
#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
}

// ---------------------------------------------------------------------------------------------
// Connections

/// One connection as the page lists it.
struct ConnectionRow {
    name: String,
    kind: String,
    /// Parameters with secrets shown as `***`.
    params: Vec<(String, String)>,
    /// `{{PLACEHOLDER}}`s still to fill, comma-separated.
    placeholders: String,
    updated: String,
    /// The outcome of a test just made: whether it worked, and what it said.
    tested: Option<(bool, String)>,
}

#[derive(Template)]
#[template(path = "console/connections.html")]
struct ConnectionsPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    section: &'static str,
    can_change: bool,
    csrf: String,
    connections: Vec<ConnectionRow>,
    more: bool,
}

fn connection_row(view: ConnectionView) -> ConnectionRow {
    ConnectionRow {
        name: view.name,
        kind: view.kind,
        params: view.params.into_iter().collect(),
        placeholders: view.placeholders.join(", "),
        updated: shown_time(&view.updated_at),
        tested: None,
    }
}

/// The Connections page; `tested` is a test's outcome to show beside its connection.
async fn connections_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    tested: Option<(String, bool, String)>,
) -> Response {
    let page = match state
        .workspace
        .connections_page(&signed.principal().actor(), None, MAX_PAGE)
        .await
    {
        Ok(page) => page,
        Err(error) => return failed(state, signed, error).await,
    };
    let mut connections: Vec<ConnectionRow> = page.items.into_iter().map(connection_row).collect();
    if let Some((name, worked, text)) = tested {
        if let Some(row) = connections.iter_mut().find(|row| row.name == name) {
            row.tested = Some((worked, text));
        }
    }
    render(
        status,
        ConnectionsPage {
            nav: Some(nav(state, signed, "workspace").await),
            flash: None,
            section: "connections",
            can_change: can_change(signed),
            csrf: signed.session.csrf.clone(),
            connections,
            more: page.has_more,
        },
    )
}

pub async fn connections(State(state): State<AppState>, signed: Signed) -> Response {
    connections_page(&state, &signed, StatusCode::OK, None).await
}

/// **Test**: `test connection NAME`; the outcome is shown beside the connection (a failed
/// test is an answer, not an error of the form: 200 either way).
pub async fn test_connection(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(name): ApiPath<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(refusal) = may_act(&state, &signed, &form.csrf).await {
        return refusal;
    }
    let Some(name) = valid_name(&name) else {
        return not_found(&state, &signed, "connection").await;
    };
    let outcome = state
        .workspace
        .execute(
            &signed.principal().actor(),
            &format!("test connection {name}"),
        )
        .await;
    let tested = match outcome {
        Ok(text) => (true, text),
        Err(WorkspaceError::NotFound(_)) => {
            return not_found(&state, &signed, "connection").await;
        }
        Err(WorkspaceError::Store(error)) => return failed(&state, &signed, error).await,
        Err(error) => (false, error.to_string()),
    };
    connections_page(
        &state,
        &signed,
        StatusCode::OK,
        Some((name.to_string(), tested.0, tested.1)),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Flows

/// One flow as the Flows page lists it.
struct FlowRow {
    name: String,
    source: String,
    destination: String,
    mode: String,
    mapping: String,
    schedule: String,
}

/// Where a flow reads: `api:/orders`, or `wh (query)`.
fn source_of(view: &FlowView) -> String {
    match &view.from.resource {
        Some(resource) => format!("{}:{resource}", view.from.connection),
        None => format!("{} (query)", view.from.connection),
    }
}

/// The write mode with its key: `upsert on id`.
fn mode_of(view: &FlowView) -> String {
    if view.key.is_empty() {
        view.mode.clone()
    } else {
        format!("{} on {}", view.mode, view.key.join(", "))
    }
}

/// The column mapping in one line: `id, customer.name → customer_name`, or `all columns`.
fn mapping_of(view: &FlowView) -> String {
    match &view.map {
        None => "all columns".into(),
        Some(pairs) => pairs
            .iter()
            .map(|[from, to]| {
                if from == to {
                    from.clone()
                } else {
                    format!("{from} → {to}")
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A schedule in words, `every 1h` or `every 1h (disabled)`; `none` without one.
fn schedule_of(schedule: &Option<ScheduleView>) -> String {
    match schedule {
        None => "none".into(),
        Some(s) if s.enabled => s.when.clone(),
        Some(s) => format!("{} (disabled)", s.when),
    }
}

fn flow_row(view: FlowView) -> FlowRow {
    FlowRow {
        source: source_of(&view),
        destination: format!("{}:{}", view.to.connection, view.to.target),
        mode: mode_of(&view),
        mapping: mapping_of(&view),
        schedule: schedule_of(&view.schedule),
        name: view.name,
    }
}

#[derive(Template)]
#[template(path = "console/flows.html")]
struct FlowsPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    section: &'static str,
    can_change: bool,
    csrf: String,
    flows: Vec<FlowRow>,
    more: bool,
}

async fn flows_page(state: &AppState, signed: &Signed, notice: Option<Flash>) -> Response {
    let page = match state
        .workspace
        .flows_page(&signed.principal().actor(), None, MAX_PAGE)
        .await
    {
        Ok(page) => page,
        Err(error) => return failed(state, signed, error).await,
    };
    render(
        status_for(&notice),
        FlowsPage {
            nav: Some(nav(state, signed, "workspace").await),
            flash: notice,
            section: "flows",
            can_change: can_change(signed),
            csrf: signed.session.csrf.clone(),
            flows: page.items.into_iter().map(flow_row).collect(),
            more: page.has_more,
        },
    )
}

pub async fn flows(State(state): State<AppState>, signed: Signed) -> Response {
    flows_page(&state, &signed, None).await
}

/// One run as a history row.
struct RunRow {
    id: i64,
    flow: String,
    status: String,
    trigger: String,
    started_by: String,
    rows_read: i64,
    rows_written: i64,
    started: String,
    duration: String,
}

fn run_row(view: RunView) -> RunRow {
    RunRow {
        id: view.id,
        duration: workspace::format_duration(view.duration_ms),
        started: shown_time(&view.started_at),
        flow: view.flow,
        status: view.status,
        trigger: view.trigger,
        started_by: view.started_by,
        rows_read: view.rows_read,
        rows_written: view.rows_written,
    }
}

#[derive(Template)]
#[template(path = "console/flow.html")]
struct FlowPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    section: &'static str,
    can_change: bool,
    csrf: String,
    name: String,
    source: String,
    query: Option<String>,
    destination: String,
    mode: String,
    /// Source column → destination column; empty when every column is copied.
    mapping: Vec<(String, String)>,
    composer: bool,
    schedule: String,
    updated: String,
    runs: Vec<RunRow>,
}

pub async fn flow(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(name): ApiPath<String>,
) -> Response {
    let actor = signed.principal().actor();
    let view = match state.workspace.flow_view(&actor, &name).await {
        Ok(view) => view,
        Err(error) => return read_failed(&state, &signed, "flow", error).await,
    };
    let runs = match state
        .workspace
        .runs_page(&actor, Some(&view.name), None, RUNS_PER_PAGE)
        .await
    {
        Ok(page) => page.items.into_iter().map(run_row).collect(),
        Err(error) => return failed(&state, &signed, error).await,
    };
    render(
        StatusCode::OK,
        FlowPage {
            nav: Some(nav(&state, &signed, "workspace").await),
            flash: None,
            section: "flows",
            can_change: can_change(&signed),
            csrf: signed.session.csrf.clone(),
            source: source_of(&view),
            query: view.from.query.clone(),
            destination: format!("{}:{}", view.to.connection, view.to.target),
            mode: mode_of(&view),
            mapping: view
                .map
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|[from, to]| (from, to))
                .collect(),
            composer: view.composer,
            schedule: schedule_of(&view.schedule),
            updated: shown_time(&view.updated_at),
            name: view.name,
            runs,
        },
    )
}

/// **Run now**: starts a run as a job of the server (as `run flow NAME wait=0`) and opens its
/// page, which follows it.
pub async fn run_now(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(name): ApiPath<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(refusal) = may_act(&state, &signed, &form.csrf).await {
        return refusal;
    }
    match state
        .workspace
        .start_manual_run(&signed.principal().actor(), &name)
        .await
    {
        Ok(run) => Redirect::to(&format!("/console/runs/{}", run.id)).into_response(),
        Err(WorkspaceError::NotFound(_)) => not_found(&state, &signed, "flow").await,
        Err(error) => refused(&state, &signed, error).await,
    }
}

/// A workspace action that was refused, as the Flows page with the reason (or a 500).
async fn refused(state: &AppState, signed: &Signed, error: WorkspaceError) -> Response {
    let Some(status) = refusal_status(&error) else {
        return failed(state, signed, error).await;
    };
    let mut page = flows_page(state, signed, flash("error", error.to_string())).await;
    *page.status_mut() = status;
    page
}

// ---------------------------------------------------------------------------------------------
// Runs

/// Everything a run's page shows; the part that changes while it runs is the progress
/// fragment (`run_progress.html`), which the page polls every second until the run ends.
struct RunDetail {
    id: i64,
    flow: String,
    status: String,
    running: bool,
    trigger: String,
    started_by: String,
    rows_read: i64,
    rows_written: i64,
    pages: i64,
    step: Option<String>,
    started: String,
    finished: Option<String>,
    /// Run time so far, or in all.
    duration: String,
    error: Option<String>,
    cancel_requested_by: Option<String>,
    log: Vec<String>,
}

fn run_detail(view: RunView) -> RunDetail {
    RunDetail {
        id: view.id,
        running: view.status == "running",
        duration: workspace::format_duration(view.duration_ms),
        started: shown_time(&view.started_at),
        finished: view.finished_at.as_deref().map(shown_time),
        flow: view.flow,
        status: view.status,
        trigger: view.trigger,
        started_by: view.started_by,
        rows_read: view.rows_read,
        rows_written: view.rows_written,
        pages: view.pages_fetched,
        step: view.step,
        error: view.error,
        cancel_requested_by: view.cancel_requested_by,
        log: view.log.unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "console/run.html")]
struct RunPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    section: &'static str,
    can_change: bool,
    csrf: String,
    run: RunDetail,
    /// Whether the progress is answered alone to a poll (never on the full page).
    fragment: bool,
}

/// The progress part of a run's page, answered to the page's poll. While the run goes on it
/// asks to be polled again; once it ended it doesn't, and it replaces the Cancel button with
/// the outcome (an htmx out-of-band swap).
#[derive(Template)]
#[template(path = "console/run_progress.html")]
struct RunProgress {
    run: RunDetail,
    fragment: bool,
}

/// The run `id` of the tenant, from a path.
async fn tenant_run(state: &AppState, signed: &Signed, id: &str) -> Result<RunDetail, Response> {
    let Ok(id) = id.parse::<i64>() else {
        return Err(not_found(state, signed, "run").await);
    };
    match state
        .workspace
        .run_view(&signed.principal().actor(), id)
        .await
    {
        Ok(view) => Ok(run_detail(view)),
        Err(error) => Err(read_failed(state, signed, "run", error).await),
    }
}

async fn run_page(
    state: &AppState,
    signed: &Signed,
    run: RunDetail,
    notice: Option<Flash>,
    status: StatusCode,
) -> Response {
    render(
        status,
        RunPage {
            nav: Some(nav(state, signed, "workspace").await),
            flash: notice,
            section: "runs",
            can_change: can_change(signed),
            csrf: signed.session.csrf.clone(),
            run,
            fragment: false,
        },
    )
}

pub async fn run(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(id): ApiPath<String>,
) -> Response {
    match tenant_run(&state, &signed, &id).await {
        Ok(run) => run_page(&state, &signed, run, None, StatusCode::OK).await,
        Err(refusal) => refusal,
    }
}

/// The run's progress alone, for the page's poll.
pub async fn run_progress(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(id): ApiPath<String>,
) -> Response {
    match tenant_run(&state, &signed, &id).await {
        Ok(run) => render(
            StatusCode::OK,
            RunProgress {
                run,
                fragment: true,
            },
        ),
        Err(refusal) => refusal,
    }
}

/// **Cancel**: `cancel run ID`; the run stops at its next page or batch and leaves the
/// destination unchanged.
pub async fn cancel_run(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(id): ApiPath<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(refusal) = may_act(&state, &signed, &form.csrf).await {
        return refusal;
    }
    let Ok(number) = id.parse::<i64>() else {
        return not_found(&state, &signed, "run").await;
    };
    let outcome = state
        .workspace
        .execute(&signed.principal().actor(), &format!("cancel run {number}"))
        .await;
    let (notice, status) = match outcome {
        Ok(text) => (flash("ok", text), StatusCode::OK),
        Err(error) => match refusal_status(&error) {
            Some(status) => (flash("error", error.to_string()), status),
            None => return failed(&state, &signed, error).await,
        },
    };
    match tenant_run(&state, &signed, &id).await {
        Ok(run) => run_page(&state, &signed, run, notice, status).await,
        Err(refusal) => refusal,
    }
}

#[derive(Template)]
#[template(path = "console/runs.html")]
struct RunsPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    section: &'static str,
    runs: Vec<RunRow>,
    /// The link to older runs, if there are any.
    older: Option<String>,
}

#[derive(Deserialize)]
pub struct RunsQuery {
    /// Runs older than this id (the cursor of the page before).
    before: Option<i64>,
}

/// Recent runs of every flow, newest first.
pub async fn runs(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<RunsQuery>,
) -> Response {
    let page = match state
        .workspace
        .runs_page(
            &signed.principal().actor(),
            None,
            query.before,
            RUNS_PER_PAGE,
        )
        .await
    {
        Ok(page) => page,
        Err(error) => return failed(&state, &signed, error).await,
    };
    render(
        StatusCode::OK,
        RunsPage {
            nav: Some(nav(&state, &signed, "workspace").await),
            flash: None,
            section: "runs",
            older: page
                .next_cursor
                .map(|cursor| format!("/console/runs?before={cursor}")),
            runs: page.items.into_iter().map(run_row).collect(),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Schedules

/// One schedule as the page lists it.
struct ScheduleRow {
    flow: String,
    when: String,
    enabled: bool,
    /// The next run, or `—` while disabled.
    next: String,
}

#[derive(Template)]
#[template(path = "console/schedules.html")]
struct SchedulesPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    section: &'static str,
    can_change: bool,
    csrf: String,
    schedules: Vec<ScheduleRow>,
}

async fn schedules_page(
    state: &AppState,
    signed: &Signed,
    notice: Option<Flash>,
    status: StatusCode,
) -> Response {
    let page = match state
        .workspace
        .schedules_page(&signed.principal().actor(), None, MAX_PAGE)
        .await
    {
        Ok(page) => page,
        Err(error) => return failed(state, signed, error).await,
    };
    let schedules = page
        .items
        .into_iter()
        .map(|s| ScheduleRow {
            next: s
                .next_run_at
                .as_deref()
                .map(shown_time)
                .unwrap_or_else(|| "—".into()),
            enabled: s.enabled,
            when: s.when,
            flow: s.flow,
        })
        .collect();
    render(
        status,
        SchedulesPage {
            nav: Some(nav(state, signed, "workspace").await),
            flash: notice,
            section: "schedules",
            can_change: can_change(signed),
            csrf: signed.session.csrf.clone(),
            schedules,
        },
    )
}

pub async fn schedules(State(state): State<AppState>, signed: Signed) -> Response {
    schedules_page(&state, &signed, None, StatusCode::OK).await
}

/// **Enable** / **Disable**: `enable schedule FLOW` or `disable schedule FLOW`.
pub async fn switch_schedule(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath((flow, action)): ApiPath<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(refusal) = may_act(&state, &signed, &form.csrf).await {
        return refusal;
    }
    let verb = match action.as_str() {
        "enable" => "enable",
        "disable" => "disable",
        _ => return not_found(&state, &signed, "action").await,
    };
    let Some(flow) = valid_name(&flow) else {
        return not_found(&state, &signed, "flow").await;
    };
    let outcome = state
        .workspace
        .execute(
            &signed.principal().actor(),
            &format!("{verb} schedule {flow}"),
        )
        .await;
    match outcome {
        Ok(text) => schedules_page(&state, &signed, flash("ok", text), StatusCode::OK).await,
        Err(error) => match refusal_status(&error) {
            Some(status) => {
                schedules_page(&state, &signed, flash("error", error.to_string()), status).await
            }
            None => failed(&state, &signed, error).await,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_names_read_well() {
        assert_eq!(
            shown_time("2025-03-04T02:00:00Z"),
            "2025-03-04 02:00:00 UTC"
        );
        assert_eq!(valid_name("orders_2"), Some("orders_2"));
        assert_eq!(valid_name("orders wait=0"), None);
        assert_eq!(valid_name("../x"), None);
    }
}
