//! The console's pages: each handler checks who may see or do it, makes one domain call and
//! renders a template. Every form that changes something carries the session's CSRF token.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use store::{NewUser, Role};

use super::session::{self, Signed};
use super::{charts, password, SIGN_IN_LINK_TTL_MS};
use crate::params::ApiPath;
use crate::state::AppState;

// ---------------------------------------------------------------------------------------------
// Layout

/// The header of a signed-in page.
pub(super) struct Nav {
    pub(super) page: &'static str,
    pub(super) is_admin: bool,
    pub(super) is_super_admin: bool,
    pub(super) tenants: Vec<String>,
    pub(super) tenant: String,
    pub(super) email: String,
    pub(super) csrf: String,
}

/// A one-line notice at the top of a page.
pub(super) struct Flash {
    pub(super) kind: &'static str,
    pub(super) text: String,
}

pub(super) fn flash(kind: &'static str, text: impl Into<String>) -> Option<Flash> {
    Some(Flash {
        kind,
        text: text.into(),
    })
}

pub(super) async fn nav(state: &AppState, signed: &Signed, page: &'static str) -> Nav {
    let tenants = if signed.is_super_admin() {
        state
            .store
            .list_tenants()
            .await
            .map(|all| all.into_iter().map(|t| t.name).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Nav {
        page,
        is_admin: signed.is_admin(),
        is_super_admin: signed.is_super_admin(),
        tenants,
        tenant: signed.tenant.name.clone(),
        email: signed.email().to_string(),
        csrf: signed.session.csrf.clone(),
    }
}

/// A rendered page with a status.
pub(super) fn render(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "a console page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response()
        }
    }
}

/// 400 for a page that shows why a form was refused, else 200.
pub(super) fn status_for(notice: &Option<Flash>) -> StatusCode {
    match notice {
        Some(flash) if flash.kind == "error" => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

pub(super) fn ok(page: impl Template) -> Response {
    render(StatusCode::OK, page)
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    heading: String,
    text: String,
    link: Option<(String, String)>,
}

/// A page that only says something, with a status.
pub(super) async fn message(
    state: &AppState,
    signed: Option<&Signed>,
    status: StatusCode,
    heading: &str,
    text: &str,
) -> Response {
    let nav = match signed {
        Some(signed) => Some(nav(state, signed, "").await),
        None => None,
    };
    render(
        status,
        MessagePage {
            nav,
            flash: None,
            heading: heading.into(),
            text: text.into(),
            link: None,
        },
    )
}

pub(super) async fn only_admins(state: &AppState, signed: &Signed) -> Response {
    message(
        state,
        Some(signed),
        StatusCode::FORBIDDEN,
        "Admins only",
        "Only admins of the tenant (and super-admins) can open this page.",
    )
    .await
}

pub(super) async fn stale_form(state: &AppState, signed: &Signed) -> Response {
    message(
        state,
        Some(signed),
        StatusCode::FORBIDDEN,
        "The form has expired",
        "Go back, reload the page and try again.",
    )
    .await
}

pub(super) async fn failed(
    state: &AppState,
    signed: &Signed,
    error: impl std::fmt::Display,
) -> Response {
    tracing::error!(%error, "a console action failed");
    message(
        state,
        Some(signed),
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The change was not made. Retry, or check the server's log.",
    )
    .await
}

pub(super) fn day(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

pub(super) fn usd(amount: f64) -> String {
    store::format_usd((amount * 1_000_000.0).round() as i64)
}

// ---------------------------------------------------------------------------------------------
// Signing in and out, passwords

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    email: String,
}

pub async fn sign_in_page(signed: Option<Signed>) -> Response {
    if signed.is_some() {
        return Redirect::to("/console").into_response();
    }
    ok(SignInPage {
        nav: None,
        flash: None,
        email: String::new(),
    })
}

#[derive(Deserialize)]
pub struct SignInForm {
    email: String,
    password: String,
}

pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<SignInForm>,
) -> Response {
    let page = |status, text: &str| {
        render(
            status,
            SignInPage {
                nav: None,
                flash: flash("error", text),
                email: form.email.clone(),
            },
        )
    };
    if let Some(wait) = state.console_sign_ins.wait_for(peer.ip()) {
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many failed sign-ins from this address; try again in {} s.",
                wait.as_secs().max(1)
            ),
        );
    }
    let (user, hash) = match state.store.user_with_password(form.email.trim()).await {
        Ok((user, hash)) => (Some(user), hash),
        Err(_) => (None, None),
    };
    let matches = password::verify(&form.password, hash).await;
    let Some(user) = user.filter(|_| matches) else {
        state.console_sign_ins.record(peer.ip());
        return page(
            StatusCode::UNAUTHORIZED,
            "The email or the password is wrong.",
        );
    };
    match state
        .store
        .start_console_session(&user.id, session::SESSION_TTL_MS)
        .await
    {
        Ok(token) => (
            StatusCode::SEE_OTHER,
            [
                (
                    SET_COOKIE,
                    session::set_cookie(
                        &state,
                        session::SESSION_COOKIE,
                        &token,
                        session::SESSION_TTL_MS / 1000,
                    ),
                ),
                (LOCATION, "/console".to_string()),
            ],
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot start a console session");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Signing in failed; retry.",
            )
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return stale_form(&state, &signed).await;
    }
    if let Err(error) = state.store.end_console_session(&signed.token).await {
        return failed(&state, &signed, error).await;
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                SET_COOKIE,
                session::set_cookie(&state, session::SESSION_COOKIE, "", 0),
            ),
            (LOCATION, "/console/sign-in".to_string()),
        ],
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "console/set_password.html")]
struct PasswordPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    email: String,
    action: String,
    csrf: Option<String>,
    ask_current: bool,
}

pub async fn password_page(State(state): State<AppState>, signed: Signed) -> Response {
    ok(PasswordPage {
        nav: Some(nav(&state, &signed, "profile").await),
        flash: None,
        email: signed.email().to_string(),
        action: "/console/password".into(),
        csrf: Some(signed.session.csrf.clone()),
        ask_current: true,
    })
}

#[derive(Deserialize)]
pub struct NewPasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    password: String,
    again: String,
}

/// Why a new password is refused, if it is.
fn new_password_problem(form: &NewPasswordForm) -> Option<String> {
    if form.password != form.again {
        return Some("The two new passwords differ.".into());
    }
    password::weakness(&form.password)
}

pub async fn change_password(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<NewPasswordForm>,
) -> Response {
    if !signed.csrf_ok(&form.csrf) {
        return stale_form(&state, &signed).await;
    }
    let refuse = |state: AppState, text: String| {
        let signed = &signed;
        async move {
            render(
                StatusCode::BAD_REQUEST,
                PasswordPage {
                    nav: Some(nav(&state, signed, "profile").await),
                    flash: flash("error", text),
                    email: signed.email().to_string(),
                    action: "/console/password".into(),
                    csrf: Some(signed.session.csrf.clone()),
                    ask_current: true,
                },
            )
        }
    };
    let current = state
        .store
        .user_with_password(signed.email())
        .await
        .ok()
        .and_then(|(_, hash)| hash);
    if !password::verify(&form.current, current).await {
        return refuse(state, "The current password is wrong.".into()).await;
    }
    if let Some(problem) = new_password_problem(&form) {
        return refuse(state, problem).await;
    }
    let stored = match password::hash(&form.password).await {
        Ok(hash) => state
            .store
            .set_password_hash(signed.email(), &hash, signed.email())
            .await
            .map_err(anyhow::Error::from),
        Err(error) => Err(error),
    };
    match stored {
        // A new password ends every session, this one too.
        Ok(()) => {
            message(
                &state,
                None,
                StatusCode::OK,
                "Password changed",
                "Sign in again with the new password.",
            )
            .await
        }
        Err(error) => failed(&state, &signed, error).await,
    }
}

pub async fn link_page(State(state): State<AppState>, ApiPath(token): ApiPath<String>) -> Response {
    match state.store.sign_in_link_user(&token).await {
        Ok(Some(user)) => ok(PasswordPage {
            nav: None,
            flash: None,
            email: user.email,
            action: format!("/console/sign-in-link/{token}"),
            csrf: None,
            ask_current: false,
        }),
        _ => {
            message(
                &state,
                None,
                StatusCode::NOT_FOUND,
                "This link can't be used",
                "It was used already or has expired (links work once, for an hour). Ask an admin for a new one, or run `integrator-agent user sign-in-link EMAIL` on the server.",
            )
            .await
        }
    }
}

pub async fn use_link(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
    Form(form): Form<NewPasswordForm>,
) -> Response {
    let Ok(Some(user)) = state.store.sign_in_link_user(&token).await else {
        return link_page(State(state), ApiPath(token)).await;
    };
    if let Some(problem) = new_password_problem(&form) {
        return render(
            StatusCode::BAD_REQUEST,
            PasswordPage {
                nav: None,
                flash: flash("error", problem),
                email: user.email,
                action: format!("/console/sign-in-link/{token}"),
                csrf: None,
                ask_current: false,
            },
        );
    }
    let used = match password::hash(&form.password).await {
        Ok(hash) => state.store.use_sign_in_link(&token, &hash).await.ok(),
        Err(_) => None,
    };
    if used == Some(true) {
        render(
            StatusCode::OK,
            MessagePage {
                nav: None,
                flash: flash("ok", "Your password is set."),
                heading: "Password set".into(),
                text: format!("Sign in as {} with your new password.", user.email),
                link: Some(("/console/sign-in".into(), "Sign in".into())),
            },
        )
    } else {
        link_page(State(state), ApiPath(token)).await
    }
}

// ---------------------------------------------------------------------------------------------
// The AI Agent dashboard

struct Row {
    name: String,
    cost: String,
    own: String,
    tokens: i64,
}

struct ModelRow {
    name: String,
    cost: String,
    prompt: i64,
    completion: i64,
}

/// One tenant on a super-admin's dashboard.
struct TenantRow {
    name: String,
    tier: String,
    cost: String,
    allowance_used: String,
    wallet: String,
}

struct ToolRow {
    name: String,
    calls: i64,
    cost: String,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    months: Vec<String>,
    month: String,
    tier: String,
    allowance: String,
    allowance_used: String,
    allowance_left: String,
    allowance_percent: u32,
    wallet: String,
    wallet_spent: String,
    cost: String,
    tokens: i64,
    own_key_cost: String,
    own_key_active: bool,
    is_admin: bool,
    chart: String,
    by_user: Vec<Row>,
    by_model: Vec<ModelRow>,
    by_tool: Vec<ToolRow>,
    /// Every tenant this month (super-admins only).
    tenants: Vec<TenantRow>,
}

/// The twelve months up to `current` (`YYYY-MM`), newest first.
fn last_months(current: &str) -> Vec<String> {
    let (year, month) = current.split_once('-').unwrap_or(("1970", "01"));
    let (mut year, mut month): (i32, i32) =
        (year.parse().unwrap_or(1970), month.parse().unwrap_or(1));
    let mut months = Vec::new();
    for _ in 0..12 {
        months.push(format!("{year:04}-{month:02}"));
        month -= 1;
        if month == 0 {
            month = 12;
            year -= 1;
        }
    }
    months
}

#[derive(Deserialize)]
pub struct MonthQuery {
    month: Option<String>,
}

pub async fn dashboard(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<MonthQuery>,
) -> Response {
    let months = last_months(&state.billing.month());
    let month = query
        .month
        .filter(|m| months.contains(m))
        .unwrap_or_else(|| months[0].clone());
    let report = match state
        .billing
        .report_of(&signed.tenant.id, signed.email(), signed.is_admin(), &month)
        .await
    {
        Ok(report) => report,
        Err(error) => return failed(&state, &signed, error).await,
    };
    let daily = state
        .store
        .daily_usage(
            &signed.tenant.id,
            (!signed.is_admin()).then_some(signed.session.user.id.as_str()),
            &month,
        )
        .await
        .unwrap_or_default();
    // Users and viewers see their own figures; admins the tenant's.
    let section = if signed.is_admin() {
        &report.tenant
    } else {
        &report.user
    };
    let wallet_spent =
        (report.tenant.cost_usd - report.tenant.own_key_cost_usd - report.allowance_used_usd)
            .max(0.0);
    let percent = if report.allowance_usd > 0.0 {
        ((report.allowance_used_usd / report.allowance_usd) * 100.0).round() as u32
    } else {
        0
    };
    let by_user = report
        .tenant
        .users
        .clone()
        .unwrap_or_else(|| vec![report.user.clone()])
        .into_iter()
        .map(|u| Row {
            name: u.email.unwrap_or_default(),
            cost: usd(u.cost_usd),
            own: usd(u.own_key_cost_usd),
            tokens: u.prompt_tokens + u.completion_tokens,
        })
        .collect();
    let by_model = section
        .by_model
        .iter()
        .map(|(name, m)| ModelRow {
            name: name.clone(),
            cost: usd(m.cost_usd),
            prompt: m.prompt_tokens,
            completion: m.completion_tokens,
        })
        .collect();
    let by_tool = section
        .by_tool
        .iter()
        .map(|(name, t)| ToolRow {
            name: name.clone(),
            calls: t.calls,
            cost: usd(t.cost_usd),
        })
        .collect();
    let tenants = if signed.is_super_admin() {
        every_tenant(&state, signed.email(), &month).await
    } else {
        Vec::new()
    };
    ok(DashboardPage {
        nav: Some(nav(&state, &signed, "dashboard").await),
        tenants,
        flash: None,
        months,
        tier: report.tenant.tier.clone().unwrap_or_default(),
        allowance: usd(report.allowance_usd),
        allowance_used: usd(report.allowance_used_usd),
        allowance_left: usd(report.allowance_left_usd),
        allowance_percent: percent.min(100),
        wallet: usd(report.wallet_usd),
        wallet_spent: usd(wallet_spent),
        cost: usd(section.cost_usd),
        tokens: section.prompt_tokens + section.completion_tokens,
        own_key_cost: usd(section.own_key_cost_usd),
        own_key_active: report.own_key_active,
        is_admin: signed.is_admin(),
        chart: charts::daily(&month, &daily),
        month,
        by_user,
        by_model,
        by_tool,
    })
}

/// Every tenant's figures for a month, from the same report as `GET /usage`.
async fn every_tenant(state: &AppState, email: &str, month: &str) -> Vec<TenantRow> {
    let Ok(tenants) = state.store.list_tenants().await else {
        return Vec::new();
    };
    let mut rows = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        if let Ok(report) = state
            .billing
            .report_of(&tenant.id, email, false, month)
            .await
        {
            rows.push(TenantRow {
                name: tenant.name,
                tier: report.tenant.tier.clone().unwrap_or_default(),
                cost: usd(report.tenant.cost_usd),
                allowance_used: format!(
                    "{} of {}",
                    usd(report.allowance_used_usd),
                    usd(report.allowance_usd)
                ),
                wallet: usd(report.wallet_usd),
            });
        }
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// Settings → Users

struct UserRow {
    id: String,
    email: String,
    role: String,
    api_access: bool,
    key_status: String,
    last_use: String,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    tenant: String,
    users: Vec<UserRow>,
    roles: Vec<&'static str>,
    csrf: String,
}

/// The roles `signed` may give: an admin up to admin, a super-admin any.
fn grantable(signed: &Signed) -> Vec<&'static str> {
    let mut roles = vec!["viewer", "user", "admin"];
    if signed.is_super_admin() {
        roles.push("super_admin");
    }
    roles
}

/// One key's status in words: none / active until … / expired / revoked.
fn key_status(keys: &[store::console::KeySummary], now: i64) -> (String, String) {
    let last_use = keys
        .iter()
        .filter_map(|k| k.last_used_at)
        .max()
        .map(day)
        .unwrap_or_else(|| "never".into());
    let status = match keys.iter().find(|k| k.status(now) == "active") {
        Some(key) => match key.expires_at {
            Some(at) => format!("active until {}", store::day_of(at)),
            None => "active".into(),
        },
        None => match keys.first() {
            None => "none".into(),
            Some(key) => key.status(now).to_string(),
        },
    };
    (status, last_use)
}

async fn users_page(state: &AppState, signed: &Signed, notice: Option<Flash>) -> Response {
    let users = match state.store.tenant_users(&signed.tenant.id).await {
        Ok(users) => users,
        Err(error) => return failed(state, signed, error).await,
    };
    let now = store::now_millis();
    let mut rows = Vec::new();
    for user in users {
        let keys = state.store.user_keys(&user.id).await.unwrap_or_default();
        let (status, last_use) = key_status(&keys, now);
        rows.push(UserRow {
            id: user.id,
            email: user.email,
            role: user.role.to_string(),
            api_access: user.api_access,
            key_status: status,
            last_use,
        });
    }
    render(
        status_for(&notice),
        UsersPage {
            nav: Some(nav(state, signed, "users").await),
            flash: notice,
            tenant: signed.tenant.name.clone(),
            users: rows,
            roles: grantable(signed),
            csrf: signed.session.csrf.clone(),
        },
    )
}

pub async fn users(State(state): State<AppState>, signed: Signed) -> Response {
    if !signed.is_admin() {
        return only_admins(&state, &signed).await;
    }
    users_page(&state, &signed, None).await
}

#[derive(Deserialize)]
pub struct UserForm {
    csrf: String,
    #[serde(default)]
    email: String,
    role: String,
    #[serde(default)]
    api_access: Option<String>,
}

pub async fn add_user(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<UserForm>,
) -> Response {
    if !signed.is_admin() {
        return only_admins(&state, &signed).await;
    }
    if !signed.csrf_ok(&form.csrf) {
        return stale_form(&state, &signed).await;
    }
    let Some(role) = grantable(&signed)
        .contains(&form.role.as_str())
        .then(|| form.role.parse::<Role>().ok())
        .flatten()
    else {
        return users_page(
            &state,
            &signed,
            flash("error", "Choose one of the roles listed."),
        )
        .await;
    };
    let created = state
        .store
        .create_user(
            &NewUser {
                tenant_name: signed.tenant.name.clone(),
                email: form.email.trim().to_string(),
                role,
                api_access: form.api_access.is_some(),
            },
            signed.email(),
        )
        .await;
    match created {
        Ok(user) => {
            let link = state
                .store
                .create_sign_in_link(&user.email, SIGN_IN_LINK_TTL_MS, signed.email())
                .await
                .ok()
                .map(|token| super::sign_in_link(&public_base(&state), &token));
            edit_page(
                &state,
                &signed,
                &user.id,
                Extras {
                    sign_in_link: link,
                    notice: flash(
                        "ok",
                        format!(
                            "Added {}. Send them the sign-in link below to set a password.",
                            user.email
                        ),
                    ),
                    ..Extras::default()
                },
            )
            .await
        }
        Err(error) => users_page(&state, &signed, flash("error", error.to_string())).await,
    }
}

/// The address links point at.
fn public_base(state: &AppState) -> String {
    state.config.base_url(state.listening)
}

struct KeyRow {
    id: String,
    label: String,
    status: String,
    created: String,
    expires: String,
    last_use: String,
}

fn key_rows(keys: Vec<store::console::KeySummary>) -> Vec<KeyRow> {
    let now = store::now_millis();
    keys.into_iter()
        .map(|k| KeyRow {
            status: k.status(now).to_string(),
            created: day(k.created_at),
            expires: k.expires_at.map(day).unwrap_or_else(|| "never".into()),
            last_use: k.last_used_at.map(day).unwrap_or_else(|| "never".into()),
            id: k.id,
            label: k.label,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "console/user_edit.html")]
struct EditUserPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    user_id: String,
    user_email: String,
    role: String,
    api_access: bool,
    roles: Vec<&'static str>,
    keys: Vec<KeyRow>,
    csrf: String,
    new_key: Option<String>,
    new_key_expiry: String,
    sign_in_link: Option<String>,
}

/// What an edit page shows besides the user.
#[derive(Default)]
struct Extras {
    new_key: Option<(String, Option<i64>)>,
    sign_in_link: Option<String>,
    notice: Option<Flash>,
}

/// The user `id`, if `signed` may manage them: in the tenant shown, and not a super-admin
/// unless `signed` is one.
async fn managed_user(state: &AppState, signed: &Signed, id: &str) -> Option<store::User> {
    let user = state.store.user_by_id(id).await.ok()?;
    let allowed = signed.is_admin()
        && user.tenant_id == signed.tenant.id
        && (user.role != Role::SuperAdmin || signed.is_super_admin());
    allowed.then_some(user)
}

async fn edit_page(state: &AppState, signed: &Signed, id: &str, extras: Extras) -> Response {
    let Some(user) = managed_user(state, signed, id).await else {
        return message(
            state,
            Some(signed),
            StatusCode::NOT_FOUND,
            "No such user",
            "This user doesn't exist in the tenant, or you may not manage them.",
        )
        .await;
    };
    let keys = state.store.user_keys(&user.id).await.unwrap_or_default();
    let (new_key, new_key_expiry) = match extras.new_key {
        Some((key, expires)) => (
            Some(key),
            match expires {
                Some(at) => format!("It expires on {} (UTC).", day(at)),
                None => "It never expires.".into(),
            },
        ),
        None => (None, String::new()),
    };
    render(
        status_for(&extras.notice),
        EditUserPage {
            nav: Some(nav(state, signed, "users").await),
            flash: extras.notice,
            user_id: user.id,
            user_email: user.email,
            role: user.role.to_string(),
            api_access: user.api_access,
            roles: grantable(signed),
            keys: key_rows(keys),
            csrf: signed.session.csrf.clone(),
            new_key,
            new_key_expiry,
            sign_in_link: extras.sign_in_link,
        },
    )
}

#[derive(Deserialize)]
pub struct FlashQuery {
    done: Option<String>,
}

pub async fn edit_user(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(id): ApiPath<String>,
    Query(query): Query<FlashQuery>,
) -> Response {
    if !signed.is_admin() {
        return only_admins(&state, &signed).await;
    }
    let notice = match query.done.as_deref() {
        Some("revoked") => flash("ok", "The key is revoked; it stops working within seconds."),
        Some("saved") => flash("ok", "Saved."),
        _ => None,
    };
    edit_page(
        &state,
        &signed,
        &id,
        Extras {
            notice,
            ..Extras::default()
        },
    )
    .await
}

pub async fn save_user(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(id): ApiPath<String>,
    Form(form): Form<UserForm>,
) -> Response {
    if !signed.is_admin() {
        return only_admins(&state, &signed).await;
    }
    if !signed.csrf_ok(&form.csrf) {
        return stale_form(&state, &signed).await;
    }
    if managed_user(&state, &signed, &id).await.is_none() {
        return edit_page(&state, &signed, &id, Extras::default()).await;
    }
    let Some(role) = grantable(&signed)
        .contains(&form.role.as_str())
        .then(|| form.role.parse::<Role>().ok())
        .flatten()
    else {
        return edit_page(
            &state,
            &signed,
            &id,
            Extras {
                notice: flash("error", "Choose one of the roles listed."),
                ..Extras::default()
            },
        )
        .await;
    };
    match state
        .store
        .update_user(&id, role, form.api_access.is_some(), signed.email())
        .await
    {
        Ok(_) => {
            // This replica drops its cached key checks now; others hear the announcement.
            state.auth.forget_cached_keys();
            Redirect::to(&format!("/console/users/{id}?done=saved")).into_response()
        }
        Err(error) => failed(&state, &signed, error).await,
    }
}

pub async fn user_sign_in_link(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(id): ApiPath<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !signed.is_admin() {
        return only_admins(&state, &signed).await;
    }
    if !signed.csrf_ok(&form.csrf) {
        return stale_form(&state, &signed).await;
    }
    let Some(user) = managed_user(&state, &signed, &id).await else {
        return edit_page(&state, &signed, &id, Extras::default()).await;
    };
    match state
        .store
        .create_sign_in_link(&user.email, SIGN_IN_LINK_TTL_MS, signed.email())
        .await
    {
        Ok(token) => {
            edit_page(
                &state,
                &signed,
                &id,
                Extras {
                    sign_in_link: Some(super::sign_in_link(&public_base(&state), &token)),
                    ..Extras::default()
                },
            )
            .await
        }
        Err(error) => failed(&state, &signed, error).await,
    }
}

#[derive(Deserialize)]
pub struct KeyForm {
    csrf: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    expiration: String,
    #[serde(default)]
    expires_on: String,
}

/// The lifetime a key form asks for, or why it can't be given.
fn key_ttl(form: &KeyForm, now: i64) -> Result<Option<i64>, String> {
    const DAY: i64 = 86_400_000;
    match form.expiration.as_str() {
        "" | "never" => Ok(None),
        "30d" => Ok(Some(30 * DAY)),
        "90d" => Ok(Some(90 * DAY)),
        "1y" => Ok(Some(365 * DAY)),
        "date" => {
            let date = chrono::NaiveDate::parse_from_str(form.expires_on.trim(), "%Y-%m-%d")
                .map_err(|_| "Give the expiration date as YYYY-MM-DD.".to_string())?;
            let end = date
                .and_hms_opt(23, 59, 59)
                .map(|t| t.and_utc().timestamp_millis())
                .ok_or("That date can't be used.")?;
            if end <= now {
                return Err("The expiration date must be in the future.".into());
            }
            Ok(Some(end - now))
        }
        _ => Err("Choose one of the expirations listed.".into()),
    }
}

pub async fn generate_key(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath(id): ApiPath<String>,
    Form(form): Form<KeyForm>,
) -> Response {
    if !signed.is_admin() {
        return only_admins(&state, &signed).await;
    }
    if !signed.csrf_ok(&form.csrf) {
        return stale_form(&state, &signed).await;
    }
    if managed_user(&state, &signed, &id).await.is_none() {
        return edit_page(&state, &signed, &id, Extras::default()).await;
    }
    let ttl = match key_ttl(&form, store::now_millis()) {
        Ok(ttl) => ttl,
        Err(problem) => {
            return edit_page(
                &state,
                &signed,
                &id,
                Extras {
                    notice: flash("error", problem),
                    ..Extras::default()
                },
            )
            .await
        }
    };
    let label: String = form.label.trim().chars().take(80).collect();
    match state
        .store
        .issue_api_key(&id, &label, ttl, signed.email())
        .await
    {
        Ok(issued) => {
            edit_page(
                &state,
                &signed,
                &id,
                Extras {
                    new_key: Some((issued.key, issued.expires_at)),
                    ..Extras::default()
                },
            )
            .await
        }
        Err(error) => failed(&state, &signed, error).await,
    }
}

#[derive(Template)]
#[template(path = "console/confirm.html")]
struct ConfirmPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    heading: String,
    text: String,
    action: String,
    button: String,
    cancel: String,
    csrf: String,
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    csrf: String,
    #[serde(default)]
    confirmed: String,
}

pub async fn revoke_key(
    State(state): State<AppState>,
    signed: Signed,
    ApiPath((id, key)): ApiPath<(String, String)>,
    Form(form): Form<ConfirmForm>,
) -> Response {
    if !signed.is_admin() {
        return only_admins(&state, &signed).await;
    }
    if !signed.csrf_ok(&form.csrf) {
        return stale_form(&state, &signed).await;
    }
    let Some(user) = managed_user(&state, &signed, &id).await else {
        return edit_page(&state, &signed, &id, Extras::default()).await;
    };
    if form.confirmed != "yes" {
        return ok(ConfirmPage {
            nav: Some(nav(&state, &signed, "users").await),
            flash: None,
            heading: "Revoke this key?".into(),
            text: format!(
                "Programs that use this key of {} stop working within seconds. This can't be undone.",
                user.email
            ),
            action: format!("/console/users/{id}/keys/{key}/revoke"),
            button: "Revoke".into(),
            cancel: format!("/console/users/{id}"),
            csrf: signed.session.csrf.clone(),
        });
    }
    match state.store.revoke_api_key(&id, &key, signed.email()).await {
        Ok(_) => {
            state.auth.forget_cached_keys();
            Redirect::to(&format!("/console/users/{id}?done=revoked")).into_response()
        }
        Err(error) => failed(&state, &signed, error).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Billing, audit, downloads, profile, tenant switch

struct TopUpRow {
    when: String,
    amount: String,
    by: String,
}

#[derive(Template)]
#[template(path = "console/billing.html")]
struct BillingPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    tenant: String,
    tier: String,
    allowance: String,
    wallet: String,
    is_super_admin: bool,
    ai_enabled: bool,
    tiers: Vec<&'static str>,
    top_ups: Vec<TopUpRow>,
    csrf: String,
}

async fn billing_page(state: &AppState, signed: &Signed, notice: Option<Flash>) -> Response {
    let tenant = match state.store.tenant_by_id(&signed.tenant.id).await {
        Ok(tenant) => tenant,
        Err(error) => return failed(state, signed, error).await,
    };
    let report = state
        .billing
        .report(&tenant.id, signed.email(), false)
        .await
        .ok();
    let top_ups = state
        .store
        .top_ups(&tenant.id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|t| TopUpRow {
            when: day(t.created_at),
            amount: store::format_usd(t.amount_micros),
            by: t.by,
        })
        .collect();
    render(
        status_for(&notice),
        BillingPage {
            nav: Some(nav(state, signed, "billing").await),
            flash: notice,
            tier: tenant.tier.as_str().to_string(),
            allowance: report.map(|r| usd(r.allowance_usd)).unwrap_or_default(),
            wallet: store::format_usd(tenant.wallet_micros),
            ai_enabled: tenant.ai_enabled,
            tiers: vec!["free", "standard", "professional"],
            tenant: tenant.name,
            is_super_admin: signed.is_super_admin(),
            top_ups,
            csrf: signed.session.csrf.clone(),
        },
    )
}

pub async fn billing(State(state): State<AppState>, signed: Signed) -> Response {
    if !signed.is_admin() {
        return only_admins(&state, &signed).await;
    }
    billing_page(&state, &signed, None).await
}

#[derive(Deserialize)]
pub struct TenantForm {
    csrf: String,
    tier: String,
    ai_enabled: Option<String>,
}

/// Refuses a form only a super-admin may send (`only`: what it does, as a sentence), or one
/// whose CSRF token is stale; `None` when it may go on.
async fn super_admin_form(
    state: &AppState,
    signed: &Signed,
    csrf: &str,
    only: &str,
) -> Option<Response> {
    if !signed.is_super_admin() {
        return Some(
            message(
                state,
                Some(signed),
                StatusCode::FORBIDDEN,
                "Super-admins only",
                only,
            )
            .await,
        );
    }
    if !signed.csrf_ok(csrf) {
        return Some(stale_form(state, signed).await);
    }
    None
}

/// A super-admin changes the tenant's tier and whether AI features are on.
pub async fn tenant_settings(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<TenantForm>,
) -> Response {
    if let Some(refused) = super_admin_form(
        &state,
        &signed,
        &form.csrf,
        "Only a super-admin changes a tenant's tier and AI features.",
    )
    .await
    {
        return refused;
    }
    let Ok(tier) = form.tier.parse::<store::Tier>() else {
        return billing_page(
            &state,
            &signed,
            flash("error", "Choose the tier: free, standard or professional."),
        )
        .await;
    };
    let changes = store::TenantChanges {
        tier: Some(tier),
        allowance_micros: None,
        ai_enabled: Some(form.ai_enabled.is_some()),
    };
    match state
        .store
        .update_tenant(&signed.tenant.name, &changes, signed.email())
        .await
    {
        Ok(_) => {
            state.auth.forget_cached_keys();
            billing_page(&state, &signed, flash("ok", "Tenant settings saved.")).await
        }
        Err(error) => failed(&state, &signed, error).await,
    }
}

#[derive(Deserialize)]
pub struct TopUpForm {
    csrf: String,
    amount: String,
}

pub async fn top_up(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<TopUpForm>,
) -> Response {
    if let Some(refused) = super_admin_form(
        &state,
        &signed,
        &form.csrf,
        "Only a super-admin records wallet top-ups.",
    )
    .await
    {
        return refused;
    }
    let amount = match store::parse_usd(form.amount.trim().trim_start_matches('$')) {
        Ok(amount) if amount > 0 => amount,
        _ => {
            return billing_page(
                &state,
                &signed,
                flash("error", "Give the amount in dollars, e.g. 25 or 12.50."),
            )
            .await
        }
    };
    match state
        .store
        .top_up_wallet(&signed.tenant.name, amount, signed.email())
        .await
    {
        Ok(balance) => {
            billing_page(
                &state,
                &signed,
                flash(
                    "ok",
                    format!(
                        "Added {} to the wallet of {}; the balance is {}.",
                        store::format_usd(amount),
                        signed.tenant.name,
                        store::format_usd(balance)
                    ),
                ),
            )
            .await
        }
        Err(error) => failed(&state, &signed, error).await,
    }
}

struct AuditRow {
    when: String,
    actor: String,
    action: String,
    target: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    tenant: String,
    entries: Vec<AuditRow>,
}

pub async fn audit(State(state): State<AppState>, signed: Signed) -> Response {
    if !signed.is_admin() {
        return only_admins(&state, &signed).await;
    }
    let entries = match state.store.audit_log(&signed.tenant.id, 500).await {
        Ok(entries) => entries,
        Err(error) => return failed(&state, &signed, error).await,
    };
    ok(AuditPage {
        nav: Some(nav(&state, &signed, "audit").await),
        flash: None,
        tenant: signed.tenant.name.clone(),
        entries: entries
            .into_iter()
            .map(|e| AuditRow {
                when: day(e.created_at),
                actor: e.actor,
                action: e.action,
                target: e.target,
                detail: e.detail,
            })
            .collect(),
    })
}

struct DownloadRow {
    name: &'static str,
    description: &'static str,
    url: String,
    install: String,
}

#[derive(Template)]
#[template(path = "console/downloads.html")]
struct DownloadsPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    downloads: Vec<DownloadRow>,
}

pub async fn downloads(State(state): State<AppState>, signed: Signed) -> Response {
    let base = public_base(&state);
    let downloads = crate::routes::downloads::DOWNLOADS
        .iter()
        .map(|d| {
            let url = format!("/downloads/{}", d.name);
            let install = if d.name.ends_with(".sh") {
                format!("curl -sO {base}{url} && chmod +x {}", d.name)
            } else if d.name.ends_with(".ps1") {
                format!("Invoke-WebRequest {base}{url} -OutFile {}", d.name)
            } else if d.name == "etlworks_agent.py" {
                format!("curl -sO {base}{url} && pip install requests")
            } else {
                format!("curl -sO {base}{url} (beside etlworks_agent.py)")
            };
            DownloadRow {
                name: d.name,
                description: d.description,
                url,
                install,
            }
        })
        .collect();
    ok(DownloadsPage {
        nav: Some(nav(&state, &signed, "downloads").await),
        flash: None,
        downloads,
    })
}

#[derive(Template)]
#[template(path = "console/profile.html")]
struct ProfilePage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    email: String,
    role: String,
    tenant: String,
    api_access: bool,
    keys: Vec<KeyRow>,
}

pub async fn profile(State(state): State<AppState>, signed: Signed) -> Response {
    let keys = state
        .store
        .user_keys(&signed.session.user.id)
        .await
        .unwrap_or_default();
    ok(ProfilePage {
        nav: Some(nav(&state, &signed, "profile").await),
        flash: None,
        email: signed.email().to_string(),
        role: signed.role().to_string(),
        tenant: signed.session.tenant_name.clone(),
        api_access: signed.session.user.api_access,
        keys: key_rows(keys),
    })
}

#[derive(Deserialize)]
pub struct TenantQuery {
    name: String,
}

pub async fn switch_tenant(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<TenantQuery>,
) -> Response {
    if !signed.is_super_admin() || state.store.tenant_by_name(&query.name).await.is_err() {
        return Redirect::to("/console").into_response();
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                SET_COOKIE,
                session::set_cookie(
                    &state,
                    session::TENANT_COOKIE,
                    &query.name,
                    session::SESSION_TTL_MS / 1000,
                ),
            ),
            (LOCATION, "/console".to_string()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_key_lifetimes() {
        let months = last_months("2026-02");
        assert_eq!(months[0], "2026-02");
        assert_eq!(months[1], "2026-01");
        assert_eq!(months[2], "2025-12");
        assert_eq!(months.len(), 12);
        let form = |expiration: &str, on: &str| KeyForm {
            csrf: String::new(),
            label: String::new(),
            expiration: expiration.into(),
            expires_on: on.into(),
        };
        let now = 1_700_000_000_000;
        assert_eq!(key_ttl(&form("never", ""), now), Ok(None));
        assert_eq!(key_ttl(&form("30d", ""), now), Ok(Some(30 * 86_400_000)));
        assert!(key_ttl(&form("date", "2000-01-01"), now).is_err());
        assert!(key_ttl(&form("date", "2099-01-01"), now).is_ok_and(|t| t.is_some()));
        assert!(key_ttl(&form("forever", ""), now).is_err());
    }
}
