//! The AI Agent chat panel: the signed-in person's sessions on the side, the conversation in
//! the middle (answers rendered from Markdown and sanitised), and the own OpenAI key behind
//! the settings icon.
//!
//! The panel streams from the API's own `/sessions/{id}/chat/stream` and rejoins a running
//! answer with `/sessions/{id}/stream` (`assets/console/chat.js`, authenticated by the session
//! cookie and its CSRF token). Without script, the message form still works: the answer is
//! waited for and the page shown again.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use store::{MessageRole, Role};

use super::markdown;
use super::pages::{failed, flash, message, nav, render, stale_form, status_for, Flash, Nav};
use super::session::Signed;
use crate::params::ApiPath;
use crate::state::AppState;

/// The sessions listed on the side.
const SESSIONS_SHOWN: i64 = 50;
/// The longest title a session may be given.
const TITLE_LENGTH: usize = 120;

struct SessionRow {
    id: String,
    title: String,
    when: String,
    current: bool,
}

struct MessageRow {
    is_user: bool,
    /// The user's text (escaped by the template).
    text: String,
    /// The answer as sanitised HTML.
    html: String,
    interrupted: bool,
}

/// The own-key panel.
struct OwnKeyPanel {
    configured: bool,
    scope: String,
    masked: String,
    /// What this person may change: "tenant", "global", or nothing.
    manages: Option<&'static str>,
}

impl OwnKeyPanel {
    /// Whether this person's key is the global one (a super-admin's).
    fn is_global(&self) -> bool {
        self.manages == Some("global")
    }
}

#[derive(Template)]
#[template(path = "console/chat.html")]
struct ChatPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    sessions: Vec<SessionRow>,
    /// The open session (none before the first chat).
    session_id: Option<String>,
    title: String,
    messages: Vec<MessageRow>,
    running: bool,
    usage_line: String,
    settings: Option<OwnKeyPanel>,
    csrf: String,
}

#[derive(Deserialize, Default)]
pub struct ChatQuery {
    settings: Option<String>,
}

/// `/console/chat`: the latest session, or an empty panel with "New chat".
pub async fn index(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<ChatQuery>,
) -> Response {
    match state
        .store
        .list_sessions(&signed.session.user.id, 1, 0)
        .await
    {
        Ok(sessions) => match sessions.first() {
            Some(latest) if query.settings.is_none() => {
                Redirect::to(&format!("/console/chat/{}", latest.id)).into_response()
            }
            _ => page(&state, &signed, None, query.settings.is_some(), None).await,
        },
        Err(error) => failed(&state, &signed, error).await,
    }
}

/// `/console/chat/{id}`: one of the person's sessions.
pub async fn session(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(id): ApiPath<String>,
    Query(query): Query<ChatQuery>,
) -> Response {
    page(&state, &signed, Some(&id), query.settings.is_some(), None).await
}

/// The session `id` if it is the signed-in person's.
async fn owned(state: &AppState, signed: &Signed, id: &str) -> Option<store::Session> {
    if uuid::Uuid::parse_str(id).is_err() {
        return None;
    }
    state
        .store
        .session_for_user(id, &signed.session.user.id)
        .await
        .ok()
}

/// The chat a form is posted to, when the form is the signed-in user's own (its CSRF token)
/// and the chat is theirs; otherwise the page that says why not.
async fn posted_to_own_chat(
    state: &AppState,
    signed: &Signed,
    id: &str,
    csrf: &str,
) -> Result<store::Session, Response> {
    if !signed.csrf_ok(csrf) {
        return Err(stale_form(state, signed).await);
    }
    match owned(state, signed, id).await {
        Some(session) => Ok(session),
        None => Err(not_found(state, signed).await),
    }
}

async fn not_found(state: &AppState, signed: &Signed) -> Response {
    message(
        state,
        Some(signed),
        StatusCode::NOT_FOUND,
        "No such chat",
        "This chat doesn't exist or isn't yours.",
    )
    .await
}

async fn page(
    state: &AppState,
    signed: &Signed,
    id: Option<&str>,
    show_settings: bool,
    notice: Option<Flash>,
) -> Response {
    let current = match id {
        Some(id) => match owned(state, signed, id).await {
            Some(session) => Some(session),
            None => return not_found(state, signed).await,
        },
        None => None,
    };
    let sessions = match state
        .store
        .list_sessions(&signed.session.user.id, SESSIONS_SHOWN, 0)
        .await
    {
        Ok(sessions) => sessions,
        Err(error) => return failed(state, signed, error).await,
    };
    let mut messages = Vec::new();
    let mut running = false;
    let mut usage_line = String::new();
    if let Some(session) = &current {
        let stored = match state.store.session_messages(&session.id).await {
            Ok(stored) => stored,
            Err(error) => return failed(state, signed, error).await,
        };
        running = state.agent.turn_running(&session.id).await.unwrap_or(false);
        if !running {
            usage_line = last_turn_usage(state, signed, &session.id, &stored).await;
        }
        messages = stored
            .into_iter()
            .map(|m| {
                let is_user = m.role == MessageRole::User;
                MessageRow {
                    html: if is_user {
                        String::new()
                    } else {
                        markdown::to_html(&m.content)
                    },
                    is_user,
                    text: m.content,
                    interrupted: m.interrupted,
                }
            })
            .collect();
    }
    let settings = if show_settings {
        Some(own_key_panel(state, signed).await)
    } else {
        None
    };
    let title = current
        .as_ref()
        .and_then(|s| s.title.clone())
        .unwrap_or_else(|| "New chat".into());
    render(
        status_for(&notice),
        ChatPage {
            nav: Some(nav(state, signed, "chat").await),
            flash: notice,
            sessions: sessions
                .into_iter()
                .map(|s| SessionRow {
                    current: Some(&s.id) == current.as_ref().map(|c| &c.id),
                    title: s.title.unwrap_or_else(|| "New chat".into()),
                    when: super::pages::day(s.updated_at),
                    id: s.id,
                })
                .collect(),
            session_id: current.map(|s| s.id),
            title,
            messages,
            running,
            usage_line,
            settings,
            csrf: signed.session.csrf.clone(),
        },
    )
}

/// "N tokens · $cost" of the session's last turn (its usage since its last user message).
async fn last_turn_usage(
    state: &AppState,
    signed: &Signed,
    session_id: &str,
    stored: &[store::StoredMessage],
) -> String {
    let Some(asked) = stored
        .iter()
        .rev()
        .find(|m| m.role == MessageRole::User)
        .map(|m| m.created_at)
    else {
        return String::new();
    };
    match state
        .store
        .session_usage_since(&signed.tenant.id, session_id, asked)
        .await
    {
        Ok((cost, tokens)) if tokens > 0 => {
            format!("{tokens} tokens · {}", store::format_usd(cost))
        }
        Ok(_) => String::new(),
        Err(error) => {
            tracing::warn!(%error, "cannot read a chat's usage");
            String::new()
        }
    }
}

async fn own_key_panel(state: &AppState, signed: &Signed) -> OwnKeyPanel {
    let status = state.billing.own_key_status(&signed.tenant.id).await.ok();
    OwnKeyPanel {
        configured: status.as_ref().is_some_and(|s| s.configured),
        scope: status
            .as_ref()
            .and_then(|s| s.scope)
            .map(|scope| match scope {
                billing::OwnKeyScope::Tenant => "this tenant",
                billing::OwnKeyScope::Global => "every tenant (global)",
            })
            .unwrap_or_default()
            .to_string(),
        masked: status.and_then(|s| s.masked).unwrap_or_default(),
        manages: match signed.role() {
            Role::SuperAdmin => Some("global"),
            Role::Admin => Some("tenant"),
            _ => None,
        },
    }
}

/// The last answer of a session as sanitised HTML, with its usage line: what the panel shows
/// in place of the streamed text once the answer ended.
pub async fn answer(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let Some(session) = owned(&state, &signed, &id).await else {
        return (StatusCode::NOT_FOUND, "No such chat").into_response();
    };
    let stored = match state.store.session_messages(&session.id).await {
        Ok(stored) => stored,
        Err(error) => {
            tracing::error!(%error, "cannot read a chat's messages");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response();
        }
    };
    let html = stored
        .iter()
        .rev()
        .find(|m| m.role == MessageRole::Assistant)
        .map(|m| markdown::to_html(&m.content))
        .unwrap_or_default();
    let usage = last_turn_usage(&state, &signed, &session.id, &stored).await;
    #[derive(Template)]
    #[template(
        source = r#"<div class="bubble md">{{ html|safe }}</div>{% if !usage.is_empty() %}<p class="meta">{{ usage }}</p>{% endif %}"#,
        ext = "html"
    )]
    struct Answer {
        html: String,
        usage: String,
    }
    match (Answer { html, usage }).render() {
        Ok(fragment) => Html(fragment).into_response(),
        Err(error) => {
            tracing::error!(%error, "the answer failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// "New chat": a new session, opened.
pub async fn new_chat(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return stale_form(&state, &signed).await;
    }
    let principal = signed.principal();
    match state
        .store
        .create_session(
            &store::new_session_id(),
            &principal.tenant_id,
            &principal.user_id,
        )
        .await
    {
        Ok(session) => Redirect::to(&format!("/console/chat/{}", session.id)).into_response(),
        Err(error) => failed(&state, &signed, error).await,
    }
}

#[derive(Deserialize)]
pub struct RenameForm {
    csrf: String,
    title: String,
}

pub async fn rename(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(id): ApiPath<String>,
    Form(form): Form<RenameForm>,
) -> Response {
    let session = match posted_to_own_chat(&state, &signed, &id, &form.csrf).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let title = form.title.trim();
    if title.is_empty() || title.chars().count() > TITLE_LENGTH {
        return page(
            &state,
            &signed,
            Some(&session.id),
            false,
            flash(
                "error",
                format!("A chat's name has 1 to {TITLE_LENGTH} characters."),
            ),
        )
        .await;
    }
    match state
        .store
        .rename_session(&session.id, &signed.session.user.id, title)
        .await
    {
        Ok(()) => Redirect::to(&format!("/console/chat/{}", session.id)).into_response(),
        Err(error) => failed(&state, &signed, error).await,
    }
}

pub async fn delete(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(id): ApiPath<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let session = match posted_to_own_chat(&state, &signed, &id, &form.csrf).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    match state
        .agent
        .delete_session(&session.id, &signed.session.user.id)
        .await
    {
        Ok(()) => Redirect::to("/console/chat").into_response(),
        Err(error) => failed(&state, &signed, error).await,
    }
}

#[derive(Deserialize)]
pub struct SendForm {
    csrf: String,
    message: String,
}

/// The message form without script: runs the turn to its end, then shows the chat again.
pub async fn send(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(id): ApiPath<String>,
    Form(form): Form<SendForm>,
) -> Response {
    let session = match posted_to_own_chat(&state, &signed, &id, &form.csrf).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    if form.message.trim().is_empty() {
        return page(
            &state,
            &signed,
            Some(&session.id),
            false,
            flash("error", "Write a message first."),
        )
        .await;
    }
    if !signed.tenant.ai_enabled {
        return page(
            &state,
            &signed,
            Some(&session.id),
            false,
            flash("error", "AI features are disabled for this tenant."),
        )
        .await;
    }
    let mut handle = state.agent.start(agent::TurnRequest {
        principal: signed.principal(),
        session_id: session.id.clone(),
        message: form.message,
        include_tools: true,
        system_prompt: None,
        new_session: false,
        keep_running: true,
        tool_details: false,
        context: Vec::new(),
    });
    let mut problem = None;
    while let Some(next) = handle.events.recv().await {
        if let agent::AgentEvent::Error { message, code, .. } = &next.event {
            problem = Some(match code {
                Some(agent::Code::CapExceeded) => {
                    format!("{message}: top up the wallet in Billing, or set an own OpenAI key.")
                }
                _ => message.clone(),
            });
        }
        if next.event.is_last() {
            break;
        }
    }
    match problem {
        Some(problem) => {
            page(
                &state,
                &signed,
                Some(&session.id),
                false,
                flash("error", problem),
            )
            .await
        }
        None => Redirect::to(&format!("/console/chat/{}", session.id)).into_response(),
    }
}

#[derive(Deserialize)]
pub struct OwnKeyForm {
    csrf: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    session: String,
}

/// Where a settings form returns: the chat it was opened from, with the panel open.
fn back_to(session: &str) -> String {
    if uuid::Uuid::parse_str(session).is_ok() {
        format!("/console/chat/{session}?settings=1")
    } else {
        "/console/chat?settings=1".into()
    }
}

/// Sets the own OpenAI key: an admin's for the tenant, a super-admin's for every tenant.
pub async fn set_own_key(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<OwnKeyForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return stale_form(&state, &signed).await;
    }
    let session = owned(&state, &signed, &form.session).await.map(|s| s.id);
    let done = state
        .billing
        .set_own_key(
            signed.role(),
            &signed.tenant.id,
            signed.email(),
            &form.api_key,
        )
        .await;
    match done {
        Ok(_) => Redirect::to(&back_to(&form.session)).into_response(),
        Err(error) => {
            let status = match error {
                billing::BillingError::Forbidden(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            let mut response = page(
                &state,
                &signed,
                session.as_deref(),
                true,
                flash("error", own_key_problem(&error)),
            )
            .await;
            *response.status_mut() = status;
            response
        }
    }
}

/// Removes the own key this person manages.
pub async fn delete_own_key(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<OwnKeyForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return stale_form(&state, &signed).await;
    }
    let session = owned(&state, &signed, &form.session).await.map(|s| s.id);
    match state
        .billing
        .delete_own_key(signed.role(), &signed.tenant.id, signed.email())
        .await
    {
        Ok(_) => Redirect::to(&back_to(&form.session)).into_response(),
        Err(error) => {
            let mut response = page(
                &state,
                &signed,
                session.as_deref(),
                true,
                flash("error", own_key_problem(&error)),
            )
            .await;
            *response.status_mut() = StatusCode::FORBIDDEN;
            response
        }
    }
}

fn own_key_problem(error: &billing::BillingError) -> String {
    match error {
        billing::BillingError::Invalid(_) => {
            "That doesn't look like an API key: 8 to 512 characters, no spaces.".into()
        }
        billing::BillingError::Forbidden(_) => {
            "Only admins (for their tenant) and super-admins (for every tenant) set OpenAI keys."
                .into()
        }
        other => {
            tracing::error!(error = %other, "cannot change the own OpenAI key");
            "The key was not changed. Retry, or check the server's log.".into()
        }
    }
}
