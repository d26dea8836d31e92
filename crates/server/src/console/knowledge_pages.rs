//! The console's knowledge pages: search across the docs, articles, templates and the tenant's
//! tickets; the tenant's tickets with their status and **Create support ticket**; and the
//! **Templates** gallery with **Import**.
//!
//! The same domain code as the API: the search is `KnowledgeService::search` (what
//! `search_knowledge_base` and `search_templates` use), a ticket is made by the
//! `create_support_ticket` tool through the tool registry (validation, Zendesk, indexing), and
//! an import is `Workspace::import_template` (what `import_template` calls, with its role
//! check). Every text from people, tickets and documents is escaped by the templates.

use agent::{ToolContext, ToolError};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use kb::DocKind;
use serde::Deserialize;
use serde_json::json;
use workspace::ImportMode;

use super::pages::{day, failed, flash, nav, render, Flash, Nav};
use super::session::Signed;
use super::workspace_pages::{can_change, may_act, refusal_status};
use crate::params::ApiPath;
use crate::state::AppState;

/// How many search results a search shows.
const RESULTS: usize = 20;
/// How many of the tenant's tickets the page lists.
const TICKETS: i64 = 100;
/// The longest query searched (longer ones are cut).
const MAX_QUERY_CHARS: usize = 1000;

/// The kinds a search may be narrowed to: (form value, label).
const KINDS: &[(&str, &str)] = &[
    ("", "Everything"),
    ("doc", "Docs"),
    ("article", "Articles"),
    ("template", "Templates"),
    ("ticket", "Tickets"),
];

/// The ticket priorities the form offers, as the tool takes them.
const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];

/// The kinds searched for a form value: one, or all four.
fn kinds_for(value: &str) -> Vec<DocKind> {
    match value {
        "doc" => vec![DocKind::Doc],
        "article" => vec![DocKind::Article],
        "template" => vec![DocKind::Template],
        "ticket" => vec![DocKind::Ticket],
        _ => vec![
            DocKind::Doc,
            DocKind::Article,
            DocKind::Template,
            DocKind::Ticket,
        ],
    }
}

/// A query as searched: trimmed, at most [`MAX_QUERY_CHARS`].
fn clean_query(query: &str) -> String {
    query.trim().chars().take(MAX_QUERY_CHARS).collect()
}

/// A run of a snippet's text, emphasised where the search matched.
struct Piece {
    text: String,
    matched: bool,
}

/// A snippet with its matched words in Markdown bold (`**word**`) as pieces of text, so the
/// template escapes every piece and marks the matched ones itself.
fn pieces(snippet: &str) -> Vec<Piece> {
    snippet
        .split("**")
        .enumerate()
        .filter(|(_, text)| !text.is_empty())
        .map(|(at, text)| Piece {
            text: text.to_string(),
            matched: at % 2 == 1,
        })
        .collect()
}

/// One search result.
struct HitRow {
    kind: &'static str,
    title: String,
    /// Where it is: a doc's path, a ticket's or template's id.
    place: String,
    /// A console page that shows it, if there is one.
    href: Option<String>,
    snippet: Vec<Piece>,
}

fn hit_row(hit: kb::SearchHit) -> HitRow {
    let href = match hit.kind {
        DocKind::Template => hit
            .id
            .strip_prefix("template:")
            .map(|id| format!("/console/templates#template-{id}")),
        DocKind::Ticket => hit
            .id
            .strip_prefix("ticket:")
            .map(|id| format!("/console/knowledge#ticket-{id}")),
        DocKind::Doc | DocKind::Article => None,
    };
    HitRow {
        kind: hit.kind.as_str(),
        title: hit.title,
        place: hit.link,
        href,
        snippet: pieces(&hit.snippet),
    }
}

/// One of the tenant's tickets.
struct TicketRow {
    id: String,
    subject: String,
    description: String,
    status: String,
    priority: &'static str,
    requester: String,
    created: String,
    zendesk: Option<i64>,
}

fn ticket_row(ticket: store::Ticket) -> TicketRow {
    TicketRow {
        id: ticket.id,
        subject: ticket.subject,
        description: ticket.description,
        status: ticket.status,
        priority: ticket.priority.as_str(),
        requester: ticket.requester_email,
        created: day(ticket.created_at),
        zendesk: ticket.zendesk_id,
    }
}

/// What the ticket form holds (given back when it is refused).
#[derive(Default, Deserialize)]
pub struct TicketForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    priority: String,
}

#[derive(Template)]
#[template(path = "console/knowledge.html")]
struct KnowledgePage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    section: &'static str,
    csrf: String,
    query: String,
    kind: String,
    kinds: &'static [(&'static str, &'static str)],
    /// The results of a search; `None` before searching.
    results: Option<Vec<HitRow>>,
    tickets: Vec<TicketRow>,
    priorities: &'static [&'static str],
    /// The ticket form as sent, when it was refused.
    form: TicketForm,
    /// What creating a ticket answered.
    created: Option<String>,
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
}

/// What a knowledge page shows besides the tickets.
#[derive(Default)]
struct Shown {
    query: String,
    kind: String,
    results: Option<Vec<HitRow>>,
    form: TicketForm,
    created: Option<String>,
    notice: Option<Flash>,
}

async fn knowledge_page(
    state: &AppState,
    signed: &Signed,
    shown: Shown,
    status: StatusCode,
) -> Response {
    let tickets = match state.store.tenant_tickets(&signed.tenant.id, TICKETS).await {
        Ok(tickets) => tickets.into_iter().map(ticket_row).collect(),
        Err(error) => return failed(state, signed, error).await,
    };
    render(
        status,
        KnowledgePage {
            nav: Some(nav(state, signed, "knowledge").await),
            flash: shown.notice,
            section: "search",
            csrf: signed.session.csrf.clone(),
            query: shown.query,
            kind: shown.kind,
            kinds: KINDS,
            results: shown.results,
            tickets,
            priorities: PRIORITIES,
            form: shown.form,
            created: shown.created,
        },
    )
}

/// Knowledge: the search (when `q` is given) and the tenant's tickets.
pub async fn knowledge(
    State(state): State<AppState>,
    signed: Signed,
    Query(search): Query<SearchQuery>,
) -> Response {
    let query = clean_query(&search.q);
    let kind = if KINDS.iter().any(|(value, _)| *value == search.kind) {
        search.kind
    } else {
        String::new()
    };
    let results = if query.is_empty() {
        None
    } else {
        match state
            .knowledge
            .search(&query, &signed.tenant.id, &kinds_for(&kind), RESULTS)
            .await
        {
            Ok(hits) => Some(hits.into_iter().map(hit_row).collect()),
            Err(error) => return failed(&state, &signed, error).await,
        }
    };
    let shown = Shown {
        query,
        kind,
        results,
        ..Shown::default()
    };
    knowledge_page(&state, &signed, shown, StatusCode::OK).await
}

/// Why a ticket form can't be sent as it is, if it can't.
fn ticket_problem(form: &TicketForm) -> Option<&'static str> {
    if form.subject.trim().is_empty() {
        return Some("Give the ticket a subject: one line saying what the problem is.");
    }
    if form.description.trim().is_empty() {
        return Some("Describe the problem: what happened, what you expected, error messages.");
    }
    if !PRIORITIES.contains(&form.priority.as_str()) {
        return Some("Choose one of the priorities listed.");
    }
    None
}

/// **Create support ticket**: the `create_support_ticket` tool, as the API runs it. Every role
/// may ask for help, as with the API.
pub async fn create_ticket(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<TicketForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return super::pages::stale_form(&state, &signed).await;
    }
    let refuse = |form: TicketForm, text: String| Shown {
        form,
        notice: flash("error", text),
        ..Shown::default()
    };
    if let Some(problem) = ticket_problem(&form) {
        let shown = refuse(form, problem.into());
        return knowledge_page(&state, &signed, shown, StatusCode::BAD_REQUEST).await;
    }
    let context = ToolContext {
        principal: signed.principal(),
        session_id: None,
    };
    let arguments = json!({
        "subject": form.subject.trim(),
        "description": form.description.trim(),
        "priority": form.priority,
    });
    match state
        .tools
        .execute(&context, "create_support_ticket", arguments)
        .await
    {
        Ok(text) => {
            let shown = Shown {
                notice: flash(
                    "ok",
                    format!("Created the support ticket “{}”.", form.subject.trim()),
                ),
                created: Some(text),
                ..Shown::default()
            };
            knowledge_page(&state, &signed, shown, StatusCode::OK).await
        }
        Err(ToolError::InvalidArguments { message, .. }) => {
            let shown = refuse(form, message);
            knowledge_page(&state, &signed, shown, StatusCode::BAD_REQUEST).await
        }
        Err(error) => failed(&state, &signed, error).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Templates

/// One template of the gallery.
struct TemplateCard {
    id: u32,
    name: String,
    kind: &'static str,
    tags: Vec<String>,
    description: String,
    /// What an import creates: `api (http)`, `orders: api:/orders → wh:orders`.
    connections: Vec<String>,
    flows: Vec<String>,
    /// Values to fill after importing: (name, what it is).
    placeholders: Vec<(String, String)>,
}

fn template_card(template: &workspace::Template) -> TemplateCard {
    TemplateCard {
        id: template.id,
        name: template.name.clone(),
        kind: match template.kind {
            workspace::TemplateKind::Flow => "flow",
            workspace::TemplateKind::Connection => "connection",
        },
        tags: template.tags.clone(),
        description: template.description.clone(),
        connections: template
            .connections
            .iter()
            .map(|c| format!("{} ({})", c.name, c.connection_type))
            .collect(),
        flows: template
            .flows
            .iter()
            .map(|f| format!("{}: {} → {} ({})", f.name, f.from, f.to, f.mode))
            .collect(),
        placeholders: template
            .placeholders
            .iter()
            .map(|p| (p.name.clone(), p.description.clone()))
            .collect(),
    }
}

#[derive(Template)]
#[template(path = "console/templates.html")]
struct TemplatesPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    section: &'static str,
    can_change: bool,
    csrf: String,
    query: String,
    templates: Vec<TemplateCard>,
    /// What an import answered: what it created and the placeholders to fill.
    imported: Option<String>,
}

#[derive(Deserialize)]
pub struct GalleryQuery {
    #[serde(default)]
    q: String,
}

/// The gallery's templates: the whole catalog, or those a search finds (best first).
async fn gallery(
    state: &AppState,
    signed: &Signed,
    query: &str,
) -> Result<Vec<TemplateCard>, agent::KnowledgeError> {
    let catalog = state.workspace.catalog();
    if query.is_empty() {
        return Ok(catalog.all().iter().map(template_card).collect());
    }
    let hits = state
        .knowledge
        .search(
            query,
            &signed.tenant.id,
            &[DocKind::Template],
            catalog.all().len().max(1),
        )
        .await?;
    Ok(hits
        .iter()
        .filter_map(|hit| hit.id.strip_prefix("template:")?.parse().ok())
        .filter_map(|id| catalog.get(id))
        .map(template_card)
        .collect())
}

async fn templates_page(
    state: &AppState,
    signed: &Signed,
    query: String,
    imported: Option<String>,
    notice: Option<Flash>,
    status: StatusCode,
) -> Response {
    let templates = match gallery(state, signed, &query).await {
        Ok(templates) => templates,
        Err(error) => return failed(state, signed, error).await,
    };
    render(
        status,
        TemplatesPage {
            nav: Some(nav(state, signed, "knowledge").await),
            flash: notice,
            section: "templates",
            can_change: can_change(signed),
            csrf: signed.session.csrf.clone(),
            query,
            templates,
            imported,
        },
    )
}

pub async fn templates(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<GalleryQuery>,
) -> Response {
    let query = clean_query(&query.q);
    templates_page(&state, &signed, query, None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    csrf: String,
    /// `standard` (default) or `composer`.
    #[serde(default)]
    mode: String,
}

/// **Import**: `Workspace::import_template`, as the `import_template` tool does (creating the
/// template's connections and flows under free names).
pub async fn import_template(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(id): ApiPath<String>,
    Form(form): Form<ImportForm>,
) -> Response {
    if let Err(refusal) = may_act(&state, &signed, &form.csrf).await {
        return refusal;
    }
    let page = |imported, notice, status| {
        templates_page(&state, &signed, String::new(), imported, notice, status)
    };
    let Some(id) = id
        .parse::<u32>()
        .ok()
        .filter(|id| state.workspace.catalog().get(*id).is_some())
    else {
        return page(
            None,
            flash("error", "No such template: choose one of the gallery."),
            StatusCode::NOT_FOUND,
        )
        .await;
    };
    let mode = match form.mode.as_str() {
        "composer" => ImportMode::Composer,
        _ => ImportMode::Standard,
    };
    let outcome = state
        .workspace
        .import_template(&signed.principal().actor(), id, mode, false)
        .await;
    match outcome {
        Ok(text) => {
            page(
                Some(text),
                flash("ok", "Template imported."),
                StatusCode::OK,
            )
            .await
        }
        Err(error) => match refusal_status(&error) {
            Some(status) => page(None, flash("error", error.to_string()), status).await,
            None => failed(&state, &signed, error).await,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_become_pieces_marked_where_they_matched() {
        let shown = pieces("a **REST** call to **PostgreSQL**.");
        let marked: Vec<(&str, bool)> =
            shown.iter().map(|p| (p.text.as_str(), p.matched)).collect();
        assert_eq!(
            marked,
            [
                ("a ", false),
                ("REST", true),
                (" call to ", false),
                ("PostgreSQL", true),
                (".", false)
            ]
        );
        assert_eq!(kinds_for("ticket"), [DocKind::Ticket]);
        assert_eq!(kinds_for("bogus").len(), 4);
        let refused = TicketForm {
            subject: "  ".into(),
            description: "x".into(),
            priority: "normal".into(),
            ..TicketForm::default()
        };
        assert!(ticket_problem(&refused).is_some());
    }
}
