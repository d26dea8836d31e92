//! Own LLM keys (`/rest/v1/ai-agent/api-key…`) and the usage view (`/usage`).

use agent::Code;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use billing::{may_manage_own_keys, BillingError, OwnKeyStatus, UsageReport};
use serde_json::{json, Value};
use store::Role;

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::{ApiError, Refusal};
use crate::openapi::ErrorBody;
use crate::state::AppState;

fn billing_error(error: BillingError) -> ApiError {
    match error {
        BillingError::Invalid(message) => {
            ApiError::with_field(Code::InvalidField, "api_key", message)
        }
        other => ApiError::internal(other),
    }
}

/// A billing call's answer: a role refusal is application-level (200, `permission_denied`,
/// as for tools), any other failure an HTTP error.
fn answer<T: serde::Serialize>(result: Result<T, BillingError>) -> Result<Response, ApiError> {
    match result {
        Ok(value) => Ok(Json(value).into_response()),
        Err(BillingError::Forbidden(message)) => {
            Ok(Refusal::new(Code::PermissionDenied, message).into_response())
        }
        Err(other) => Err(billing_error(other)),
    }
}

/// Sets the own OpenAI key: an admin's applies to its tenant, a super_admin's to every tenant.
#[utoipa::path(post, path = "/rest/v1/ai-agent/api-key", tag = "billing", security(("bearer" = [])),
    request_body(content = Object, description = "{\"api_key\": \"sk-…\"}"),
    responses(
        (status = 200, description = "Stored (encrypted); shows only a masked form. A user or viewer gets `{\"success\": false, \"code\": \"permission_denied\"}`: only admins and super_admins may set keys", body = Object),
        (status = 400, description = "Missing or malformed api_key", body = ErrorBody),
    ))]
pub async fn set_api_key(
    State(state): State<AppState>,
    Caller(principal): Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    if let Err(refused) = may_manage_own_keys(principal.role) {
        return answer::<()>(Err(refused));
    }
    let key = match body.get("api_key") {
        None | Some(Value::Null) => {
            return Err(ApiError::with_field(
                Code::MissingField,
                "api_key",
                "Missing required field 'api_key'",
            ))
        }
        Some(Value::String(key)) => key.clone(),
        Some(_) => {
            return Err(ApiError::with_field(
                Code::InvalidField,
                "api_key",
                "Field 'api_key' must be a string",
            ))
        }
    };
    let set = state
        .billing
        .set_own_key(principal.role, &principal.tenant_id, &principal.email, &key)
        .await
        .map(|status| {
            let mut body = serde_json::to_value(status).unwrap_or_default();
            body["success"] = json!(true);
            body
        });
    answer(set)
}

/// Whether an own key applies to the caller's tenant, its scope and a masked form.
#[utoipa::path(get, path = "/rest/v1/ai-agent/api-key", tag = "billing", security(("bearer" = [])),
    responses((status = 200, description = "{\"configured\": true, \"scope\": \"tenant\", \"masked\": \"sk-…abcd\"} or {\"configured\": false}", body = Object)))]
pub async fn get_api_key(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<OwnKeyStatus>, ApiError> {
    Ok(Json(
        state
            .billing
            .own_key_status(&principal.tenant_id)
            .await
            .map_err(billing_error)?,
    ))
}

/// Removes the own key the caller manages (tenant for admins, global for super_admins).
#[utoipa::path(post, path = "/rest/v1/ai-agent/api-key/delete", tag = "billing", security(("bearer" = [])),
    responses(
        (status = 200, description = "{\"success\": true, \"deleted\": true|false, \"scope\": …}; a user or viewer gets `{\"success\": false, \"code\": \"permission_denied\"}`: only admins and super_admins may remove keys", body = Object),
    ))]
pub async fn delete_api_key(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Response, ApiError> {
    let deleted = state
        .billing
        .delete_own_key(principal.role, &principal.tenant_id, &principal.email)
        .await
        .map(|(scope, deleted)| json!({"success": true, "deleted": deleted, "scope": scope}));
    answer(deleted)
}

/// This month's usage of the caller and its tenant (admins also see each user).
#[utoipa::path(get, path = "/rest/v1/ai-agent/api/usage", tag = "billing", security(("bearer" = [])),
    responses((status = 200, description = "Cost and tokens by model and tool, allowance, wallet, own-key status", body = Object)))]
pub async fn usage(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<UsageReport>, ApiError> {
    let admin = principal.role >= Role::Admin;
    let report = state
        .billing
        .report(&principal.tenant_id, &principal.email, admin)
        .await
        .map_err(billing_error)?;
    Ok(Json(report))
}
