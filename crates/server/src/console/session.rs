//! Console sessions: a cookie (`HttpOnly`, `SameSite=Lax`, `Secure` behind https) whose token
//! the database keeps only as a hash, so signing out ends the session on every replica; a CSRF
//! token per session that every state-changing form carries; and a same-origin check of every
//! POST.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, OptionalFromRequestParts, Request};
use axum::http::header::{COOKIE, HOST, ORIGIN, REFERER};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use store::console::ConsoleSession;
use store::Role;

use crate::state::AppState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "ia_session";
/// The tenant a super-admin looks at.
pub const TENANT_COOKIE: &str = "ia_tenant";
/// What usage made through the console records in place of an API key's id.
pub const CONSOLE_KEY_ID: &str = "console";
/// How long a session lasts.
pub const SESSION_TTL_MS: i64 = 12 * 3_600_000;

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// A `Set-Cookie` value for this server (`Secure` when the public URL is https).
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age_seconds: i64) -> String {
    let secure = state
        .config
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A signed-in person: their session, and the tenant the pages show (their own, or for a
/// super-admin the one they switched to).
pub struct Signed {
    pub session: ConsoleSession,
    pub token: String,
    pub tenant: store::Tenant,
}

impl Signed {
    pub fn role(&self) -> Role {
        self.session.user.role
    }

    pub fn is_admin(&self) -> bool {
        self.role() >= Role::Admin
    }

    pub fn is_super_admin(&self) -> bool {
        self.role() == Role::SuperAdmin
    }

    pub fn email(&self) -> &str {
        &self.session.user.email
    }

    /// The signed-in person as the domain code sees a caller, in the tenant the pages show
    /// (a super-admin acts in the tenant switched to). The console has no API key: its
    /// usage is recorded without one.
    pub fn principal(&self) -> agent::Principal {
        agent::Principal {
            key_id: CONSOLE_KEY_ID.to_string(),
            user_id: self.session.user.id.clone(),
            email: self.session.user.email.clone(),
            role: self.session.user.role,
            tenant_id: self.tenant.id.clone(),
            tenant_name: self.tenant.name.clone(),
        }
    }

    /// Whether `csrf` is this session's token (compared in constant time).
    pub fn csrf_ok(&self, csrf: &str) -> bool {
        let expected = self.session.csrf.as_bytes();
        let given = csrf.as_bytes();
        expected.len() == given.len()
            && expected
                .iter()
                .zip(given)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let to_sign_in = || Redirect::to("/console/sign-in").into_response();
        let Some(token) = cookie(parts, SESSION_COOKIE) else {
            return Err(to_sign_in());
        };
        let session = match state.store.console_session(&token).await {
            Ok(Some(session)) => session,
            Ok(None) => return Err(to_sign_in()),
            Err(error) => {
                tracing::error!(%error, "cannot read a console session");
                return Err((StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response());
            }
        };
        let own = session.user.tenant_id.clone();
        let chosen = match cookie(parts, TENANT_COOKIE) {
            Some(name) if session.user.role == Role::SuperAdmin => {
                state.store.tenant_by_name(&name).await.ok()
            }
            _ => None,
        };
        let tenant = match chosen {
            Some(tenant) => tenant,
            None => state.store.tenant_by_id(&own).await.map_err(|error| {
                tracing::error!(%error, "cannot read a console user's tenant");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response()
            })?,
        };
        Ok(Signed {
            session,
            token,
            tenant,
        })
    }
}

impl OptionalFromRequestParts<AppState> for Signed {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Signed as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

/// Refuses a POST whose `Origin` (or, without one, `Referer`) is another site: with the
/// `SameSite=Lax` cookie and the per-session CSRF token, the third lock on cross-site forms.
pub async fn same_origin(request: Request, next: Next) -> Response {
    if request.method() == Method::POST {
        let headers = request.headers();
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let from = headers
            .get(ORIGIN)
            .or_else(|| headers.get(REFERER))
            .and_then(|v| v.to_str().ok());
        if let Some(from) = from {
            let from_host = from
                .split_once("://")
                .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
                .unwrap_or("");
            if from == "null" || from_host != host {
                return (
                    StatusCode::FORBIDDEN,
                    "This form was sent from another site; open the console and try again.",
                )
                    .into_response();
            }
        }
    }
    next.run(request).await
}
