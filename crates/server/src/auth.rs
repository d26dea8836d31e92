//! API-key authentication: `Authorization: Bearer <key>` → the caller, with a short-lived
//! in-memory cache so that hot paths skip the database while revocations still take effect
//! within seconds on every replica.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use agent::Principal;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use store::{ApiKeyHash, KeyRecord, Store, KEY_LENGTH};

use crate::error::ApiError;
use crate::state::AppState;

const CACHE_CAPACITY: usize = 10_000;

/// Verifies API keys.
pub struct Authenticator {
    store: Store,
    ttl: Duration,
    cache: RwLock<HashMap<ApiKeyHash, (KeyRecord, Instant)>>,
}

impl Authenticator {
    /// An authenticator that trusts a verified key for `ttl` before asking the database again.
    pub fn new(store: Store, ttl: Duration) -> Authenticator {
        Authenticator {
            store,
            ttl,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Turns the `Authorization` header into the caller, or the 401/403 that explains why not.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, ApiError> {
        let header = header.ok_or_else(|| {
            ApiError::unauthorized(
                "missing_api_key",
                "Missing API key: send the header 'Authorization: Bearer <your API key>'",
            )
        })?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "invalid_api_key",
                    "Malformed Authorization header: expected 'Bearer <your API key>'",
                )
            })?;
        if key.len() != KEY_LENGTH || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ApiError::unauthorized(
                "invalid_api_key",
                format!("Invalid API key: keys are {KEY_LENGTH} letters and digits"),
            ));
        }
        let hash = ApiKeyHash::of(key);
        let record = match self.cached(&hash) {
            Some(record) => record,
            None => {
                let record = self
                    .store
                    .find_api_key(&hash)
                    .await
                    .map_err(ApiError::internal)?
                    .ok_or_else(|| ApiError::unauthorized("invalid_api_key", "Invalid API key"))?;
                self.remember(hash, record.clone());
                let store = self.store.clone();
                let key_id = record.key_id.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.touch_api_key(&key_id).await {
                        tracing::warn!(error = %e, "could not record the key's last use");
                    }
                });
                record
            }
        };
        check(&record)?;
        Ok(Principal {
            key_id: record.key_id,
            user_id: record.user_id,
            email: record.email,
            role: record.role,
            tenant_id: record.tenant_id,
            tenant_name: record.tenant_name,
        })
    }

    fn cached(&self, hash: &ApiKeyHash) -> Option<KeyRecord> {
        let cache = self.cache.read().ok()?;
        let (record, at) = cache.get(hash)?;
        (at.elapsed() < self.ttl).then(|| record.clone())
    }

    fn remember(&self, hash: ApiKeyHash, record: KeyRecord) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_CAPACITY {
                let ttl = self.ttl;
                cache.retain(|_, (_, at)| at.elapsed() < ttl);
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
            }
            cache.insert(hash, (record, Instant::now()));
        }
    }
}

/// The checks made on every request, cached record or not.
fn check(record: &KeyRecord) -> Result<(), ApiError> {
    if record.revoked_at.is_some() {
        return Err(ApiError::unauthorized(
            "api_key_revoked",
            "This API key has been revoked; ask your admin for a new one",
        ));
    }
    if record
        .expires_at
        .is_some_and(|expires| expires <= store::now_millis())
    {
        return Err(ApiError::unauthorized(
            "api_key_expired",
            "This API key has expired; ask your admin for a new one",
        ));
    }
    if !record.api_access {
        return Err(ApiError::forbidden(
            "api_access_disabled",
            "API access is disabled for this user; contact your admin",
        ));
    }
    if !record.ai_enabled {
        return Err(ApiError::forbidden(
            "ai_disabled",
            "AI features are disabled for this account; contact your admin",
        ));
    }
    Ok(())
}

/// The authenticated caller of a request (extracting it authenticates the request).
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = match parts.headers.get(AUTHORIZATION) {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| {
                ApiError::unauthorized(
                    "invalid_api_key",
                    "Malformed Authorization header: it must be plain ASCII 'Bearer <your API key>'",
                )
            })?),
        };
        state.auth.authenticate(header).await.map(Caller)
    }
}
