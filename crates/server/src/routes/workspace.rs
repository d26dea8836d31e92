//! The workspace as JSON (`/rest/v1/ai-agent/api/workspace/…`): runs, flows, connections
//! (secrets masked) and schedules of the caller's tenant, for programs. Every role may read
//! them, as every role may list and show with `host_cli`.

use agent::Code;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use workspace::views::{ConnectionView, FlowView, Page, RunView, ScheduleView, MAX_PAGE};
use workspace::WorkspaceError;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::{ApiPath, ApiQuery};
use crate::state::AppState;

const DEFAULT_PAGE: usize = 50;

/// `?cursor=&limit=` of a listing (and `flow=` for runs).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Listing {
    /// Only the runs of this flow (runs only).
    pub flow: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<String>,
}

impl Listing {
    fn limit(&self) -> Result<usize, ApiError> {
        match &self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::with_field(
                        Code::InvalidField,
                        "limit",
                        format!("'limit' must be a whole number from 1 to {MAX_PAGE}"),
                    )
                }),
        }
    }
}

/// A view as the JSON answer, or the failure as the API's error.
fn answer<T>(view: Result<T, WorkspaceError>) -> Result<Json<T>, ApiError> {
    view.map(Json).map_err(api_error)
}

fn api_error(error: WorkspaceError) -> ApiError {
    match error {
        WorkspaceError::NotFound(message) => ApiError::not_found(message),
        WorkspaceError::Rejected(message) => ApiError::new(Code::InvalidRequest, message),
        other => ApiError::internal(other),
    }
}

/// The caller's runs, newest first (`?flow=` for one flow's), with live progress.
#[utoipa::path(get, path = "/rest/v1/ai-agent/api/workspace/runs", tag = "workspace", security(("bearer" = [])),
    params(Listing),
    responses((status = 200, description = "A page of the caller's tenant's runs, newest first", body = Object)))]
pub async fn runs(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(listing): ApiQuery<Listing>,
) -> Result<Json<Page<RunView>>, ApiError> {
    let limit = listing.limit()?;
    let cursor = match &listing.cursor {
        None => None,
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            ApiError::with_field(
                Code::InvalidField,
                "cursor",
                "'cursor' must be the next_cursor of a page of runs",
            )
        })?),
    };
    answer(
        state
            .workspace
            .runs_page(&principal.actor(), listing.flow.as_deref(), cursor, limit)
            .await,
    )
}

/// One run, with its progress and log.
#[utoipa::path(get, path = "/rest/v1/ai-agent/api/workspace/runs/{id}", tag = "workspace", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The run's id")),
    responses((status = 200, description = "The run, with its progress and log", body = Object)))]
pub async fn run(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RunView>, ApiError> {
    answer(state.workspace.run_view(&principal.actor(), id).await)
}

/// The caller's flows, by name.
#[utoipa::path(get, path = "/rest/v1/ai-agent/api/workspace/flows", tag = "workspace", security(("bearer" = [])),
    params(Listing),
    responses((status = 200, description = "A page of the caller's tenant's flows, by name", body = Object)))]
pub async fn flows(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(listing): ApiQuery<Listing>,
) -> Result<Json<Page<FlowView>>, ApiError> {
    answer(
        state
            .workspace
            .flows_page(
                &principal.actor(),
                listing.cursor.as_deref(),
                listing.limit()?,
            )
            .await,
    )
}

/// One flow.
#[utoipa::path(get, path = "/rest/v1/ai-agent/api/workspace/flows/{name}", tag = "workspace", security(("bearer" = [])),
    params(("name" = String, Path, description = "The flow's name")),
    responses((status = 200, description = "The flow", body = Object)))]
pub async fn flow(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<FlowView>, ApiError> {
    answer(state.workspace.flow_view(&principal.actor(), &name).await)
}

/// The caller's connections, by name, secrets masked.
#[utoipa::path(get, path = "/rest/v1/ai-agent/api/workspace/connections", tag = "workspace", security(("bearer" = [])),
    params(Listing),
    responses((status = 200, description = "A page of the caller's tenant's connections, by name, secrets masked", body = Object)))]
pub async fn connections(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(listing): ApiQuery<Listing>,
) -> Result<Json<Page<ConnectionView>>, ApiError> {
    answer(
        state
            .workspace
            .connections_page(
                &principal.actor(),
                listing.cursor.as_deref(),
                listing.limit()?,
            )
            .await,
    )
}

/// One connection, secrets masked.
#[utoipa::path(get, path = "/rest/v1/ai-agent/api/workspace/connections/{name}", tag = "workspace", security(("bearer" = [])),
    params(("name" = String, Path, description = "The connection's name")),
    responses((status = 200, description = "The connection, secrets masked", body = Object)))]
pub async fn connection(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    answer(
        state
            .workspace
            .connection_view(&principal.actor(), &name)
            .await,
    )
}

/// The caller's schedules, by flow name.
#[utoipa::path(get, path = "/rest/v1/ai-agent/api/workspace/schedules", tag = "workspace", security(("bearer" = [])),
    params(Listing),
    responses((status = 200, description = "A page of the caller's tenant's schedules, by flow name", body = Object)))]
pub async fn schedules(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(listing): ApiQuery<Listing>,
) -> Result<Json<Page<ScheduleView>>, ApiError> {
    answer(
        state
            .workspace
            .schedules_page(
                &principal.actor(),
                listing.cursor.as_deref(),
                listing.limit()?,
            )
            .await,
    )
}
