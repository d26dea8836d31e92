//! The web console at `/console` (and `/`): sign-in, Settings → Users with the API Key section,
//! the AI Agent dashboard, the workspace (connections, flows, runs, schedules:
//! `workspace_pages.rs`), knowledge and templates (`knowledge_pages.rs`), Billing, Downloads,
//! the audit log and the profile. Pages are HTML
//! rendered on the server from compile-checked templates (`templates/console/`, askama), with
//! htmx and one small script (`assets/console/`) embedded in the binary: nothing comes from
//! outside.
//!
//! The console is a client of the same domain code as the API: keys, users, usage and billing
//! go through `store` and `billing`, the workspace through `Workspace` (its views and command
//! language), knowledge through `KnowledgeService` and the tool registry, never a second path. Its own parts are the session
//! (`session.rs`: a cookie whose token is stored only as a hash, CSRF tokens, a same-origin
//! check), passwords (`password.rs`, argon2id) and the dashboard's SVG chart (`charts.rs`).

mod charts;
mod chat;
mod knowledge_pages;
pub(crate) mod markdown;
mod pages;
pub mod password;
pub(crate) mod session;
mod workspace_pages;

use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::params::ApiPath;
use crate::state::AppState;

/// How long a sign-in link (first start, `user sign-in-link`, reset) is valid.
pub const SIGN_IN_LINK_TTL_MS: i64 = 3_600_000;

/// Failed sign-ins a client address may make per minute.
pub const SIGN_IN_ATTEMPTS_PER_MINUTE: u32 = 10;

/// The link with which a user sets a password.
pub fn sign_in_link(base_url: &str, token: &str) -> String {
    format!("{base_url}/console/sign-in-link/{token}")
}

/// The console's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(pages::dashboard))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route(
            "/console/sign-in",
            get(pages::sign_in_page).post(pages::sign_in),
        )
        .route("/console/sign-out", post(pages::sign_out))
        .route(
            "/console/password",
            get(pages::password_page).post(pages::change_password),
        )
        .route(
            "/console/sign-in-link/{token}",
            get(pages::link_page).post(pages::use_link),
        )
        .route("/console/users", get(pages::users).post(pages::add_user))
        .route(
            "/console/users/{id}",
            get(pages::edit_user).post(pages::save_user),
        )
        .route(
            "/console/users/{id}/sign-in-link",
            post(pages::user_sign_in_link),
        )
        .route("/console/users/{id}/keys", post(pages::generate_key))
        .route(
            "/console/users/{id}/keys/{key}/revoke",
            post(pages::revoke_key),
        )
        .route("/console/billing", get(pages::billing))
        .route("/console/billing/top-up", post(pages::top_up))
        .route("/console/billing/tenant", post(pages::tenant_settings))
        .route("/console/audit", get(pages::audit))
        .route("/console/downloads", get(pages::downloads))
        .route("/console/profile", get(pages::profile))
        .route("/console/tenant", get(pages::switch_tenant))
        .merge(workspace_routes())
        .route("/console/knowledge", get(knowledge_pages::knowledge))
        .route(
            "/console/knowledge/tickets",
            post(knowledge_pages::create_ticket),
        )
        .route("/console/templates", get(knowledge_pages::templates))
        .route(
            "/console/templates/{id}/import",
            post(knowledge_pages::import_template),
        )
        .merge(chat_routes())
        .route("/console/assets/{file}", get(asset))
        .layer(axum::middleware::from_fn(session::same_origin))
        .layer(axum::middleware::from_fn(security_headers))
}

/// The AI Agent chat panel and its settings (the own OpenAI key).
fn chat_routes() -> Router<AppState> {
    Router::new()
        .route("/console/chat", get(chat::index))
        .route("/console/chat/new", post(chat::new_chat))
        .route("/console/chat/{id}", get(chat::session))
        .route("/console/chat/{id}/answer", get(chat::answer))
        .route("/console/chat/{id}/send", post(chat::send))
        .route("/console/chat/{id}/rename", post(chat::rename))
        .route("/console/chat/{id}/delete", post(chat::delete))
        .route("/console/own-key", post(chat::set_own_key))
        .route("/console/own-key/delete", post(chat::delete_own_key))
}

/// The workspace pages: connections, flows, runs and schedules.
fn workspace_routes() -> Router<AppState> {
    use workspace_pages as w;
    Router::new()
        .route("/console/connections", get(w::connections))
        .route("/console/connections/{name}/test", post(w::test_connection))
        .route("/console/flows", get(w::flows))
        .route("/console/flows/{name}", get(w::flow))
        .route("/console/flows/{name}/run", post(w::run_now))
        .route("/console/runs", get(w::runs))
        .route("/console/runs/{id}", get(w::run))
        .route("/console/runs/{id}/progress", get(w::run_progress))
        .route("/console/runs/{id}/cancel", post(w::cancel_run))
        .route("/console/schedules", get(w::schedules))
        .route(
            "/console/schedules/{flow}/{action}",
            post(w::switch_schedule),
        )
}

/// Headers of every console answer: a Content-Security-Policy without inline script or
/// style, no framing, no caching (pages show keys), no referrer to other sites (and so an
/// `Origin` of `null` on their requests), no sniffing.
async fn security_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/console/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
             object-src 'none'",
        ),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    if !is_asset {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The console's embedded files.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "htmx-2.0.11.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/htmx-2.0.11.min.js"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/console.js"),
    ),
    (
        "chat.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/chat.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/console/console.css"),
    ),
];

async fn asset(ApiPath(name): ApiPath<String>) -> Response {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => (
            [
                (CONTENT_TYPE, *content_type),
                (CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
