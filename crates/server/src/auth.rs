//! API-key authentication: `Authorization: Bearer <key>` → the caller, with a short-lived
//! in-memory cache so that hot paths skip the database while revocations still take effect
//! within seconds on every replica (at once on PostgreSQL, where a revocation is announced
//! with `NOTIFY` and every replica forgets what it cached).
//!
//! Every key that is unknown, revoked or expired gets the same 401 body, so a leaked key
//! cannot be confirmed. Failed attempts are counted per client address (a token bucket of
//! `auth_failures_per_minute`); an address that used its budget gets 429 with `Retry-After`
//! for keys that are not known to be valid, without a database lookup, while keys that let
//! their bearer in during the last hour are still looked up and keep working.

use agent::Code;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use agent::Principal;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use store::{ApiKeyHash, KeyRecord, Store, KEY_LENGTH};

use crate::error::ApiError;
use crate::state::AppState;

const CACHE_CAPACITY: usize = 10_000;
/// Client addresses whose failures are remembered at most (the fullest buckets are dropped).
const THROTTLE_CAPACITY: usize = 100_000;
/// How long a key that let its bearer in stays exempt from the failure throttle.
const PROVEN_FOR: Duration = Duration::from_secs(3600);
/// The answer to every key that does not let its bearer in.
const REFUSED_KEY: &str = "Invalid or expired API key";

/// Verifies API keys.
pub struct Authenticator {
    store: Store,
    ttl: Duration,
    cache: RwLock<HashMap<ApiKeyHash, (KeyRecord, Instant)>>,
    /// Keys seen letting their bearer in lately: they are never throttled (still checked).
    proven: RwLock<HashMap<ApiKeyHash, Instant>>,
    failures: FailureThrottle,
}

impl Authenticator {
    /// An authenticator that trusts a verified key for `ttl` before asking the database again
    /// and lets a client address fail `failures_per_minute` times a minute.
    pub fn new(store: Store, ttl: Duration, failures_per_minute: u32) -> Authenticator {
        Authenticator {
            store,
            ttl,
            cache: RwLock::new(HashMap::new()),
            proven: RwLock::new(HashMap::new()),
            failures: FailureThrottle::new(failures_per_minute),
        }
    }

    /// Forgets every cached key check (after a revocation anywhere).
    pub fn forget_cached_keys(&self) {
        if let Ok(mut cache) = self.cache.write() {
            cache.clear();
        }
    }

    /// Clears the cache whenever another process announces an access change, for as long as
    /// the server runs (PostgreSQL; on SQLite this returns at once).
    pub async fn follow_access_changes(self: std::sync::Arc<Self>) {
        use futures::StreamExt;
        loop {
            match self.store.access_changes().await {
                Ok(None) => return,
                Ok(Some(mut changes)) => {
                    // Whatever happened while not listening is forgotten too.
                    self.forget_cached_keys();
                    while changes.next().await.is_some() {
                        self.forget_cached_keys();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for key revocations; retrying"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Turns the `Authorization` header of a request from `client` into the caller, or the
    /// 401/403/429 that explains why not.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Principal, ApiError> {
        let refused = |client: Option<IpAddr>| {
            if let Some(ip) = client {
                self.failures.record(ip);
            }
            ApiError::new(Code::InvalidApiKey, REFUSED_KEY)
        };
        let header = header.ok_or_else(|| {
            ApiError::new(
                Code::MissingApiKey,
                "Missing API key: send the header 'Authorization: Bearer <your API key>'",
            )
        })?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    Code::InvalidApiKey,
                    "Malformed Authorization header: expected 'Bearer <your API key>'",
                )
            })?;
        let hash = ApiKeyHash::of(key);
        let cached = self.cached(&hash);
        if cached.is_none() && !self.proven(&hash) {
            if let Some(wait) = client.and_then(|ip| self.failures.wait_for(ip)) {
                return Err(ApiError::too_many_failed_attempts(
                    wait.as_secs_f64().ceil() as u64,
                ));
            }
        }
        if key.len() != KEY_LENGTH || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(refused(client));
        }
        let record = match cached {
            Some(record) => record,
            None => {
                let Some(record) = self
                    .store
                    .find_api_key(&hash)
                    .await
                    .map_err(ApiError::internal)?
                else {
                    return Err(refused(client));
                };
                if !key_is_dead(&record) {
                    self.prove(hash.clone());
                }
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
        if key_is_dead(&record) {
            return Err(refused(client));
        }
        check_access(&record)?;
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

    /// Whether this key let its bearer in within the last `PROVEN_FOR` (a throttled address
    /// still gets such keys looked up).
    fn proven(&self, hash: &ApiKeyHash) -> bool {
        self.proven
            .read()
            .ok()
            .and_then(|proven| proven.get(hash).map(|at| at.elapsed() < PROVEN_FOR))
            .unwrap_or(false)
    }

    fn prove(&self, hash: ApiKeyHash) {
        if let Ok(mut proven) = self.proven.write() {
            if proven.len() >= CACHE_CAPACITY {
                proven.retain(|_, at| at.elapsed() < PROVEN_FOR);
                if proven.len() >= CACHE_CAPACITY {
                    proven.clear();
                }
            }
            proven.insert(hash, Instant::now());
        }
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

/// Whether a known key no longer lets its bearer in (checked on every request, cached record
/// or not); the answer is the same as for an unknown key.
fn key_is_dead(record: &KeyRecord) -> bool {
    record.revoked_at.is_some()
        || record
            .expires_at
            .is_some_and(|expires| expires <= store::now_millis())
}

/// The access checks made on every request with a live key.
fn check_access(record: &KeyRecord) -> Result<(), ApiError> {
    if !record.api_access {
        return Err(ApiError::new(
            Code::ApiAccessDisabled,
            "API access is disabled for this user; contact your admin",
        ));
    }
    if !record.ai_enabled {
        return Err(ApiError::new(
            Code::AiDisabled,
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
        if !parts.headers.contains_key(AUTHORIZATION) {
            if let Some(principal) = console_caller(parts, state).await? {
                return Ok(Caller(principal));
            }
        }
        let header = match parts.headers.get(AUTHORIZATION) {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| {
                ApiError::new(Code::InvalidApiKey, "Malformed Authorization header: it must be plain ASCII 'Bearer <your API key>'",
                )
            })?),
        };
        let client = crate::listener::peer_address(&parts.extensions).map(|addr| addr.ip());
        state.auth.authenticate(header, client).await.map(Caller)
    }
}

/// The header with which the console's pages call the API: the session's CSRF token.
pub const CONSOLE_CSRF_HEADER: &str = "x-csrf-token";

/// A request of the console's own pages (its chat panel): no API key, but the console's
/// session cookie together with that session's CSRF token in [`CONSOLE_CSRF_HEADER`] — which
/// another site's page can neither read nor send. `None` when the request is not one.
async fn console_caller(
    parts: &mut Parts,
    state: &AppState,
) -> Result<Option<Principal>, ApiError> {
    let Some(csrf) = parts
        .headers
        .get(CONSOLE_CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return Ok(None);
    };
    if crate::console::session::cookie(parts, crate::console::session::SESSION_COOKIE).is_none() {
        return Ok(None);
    }
    let signed =
        <crate::console::session::Signed as FromRequestParts<AppState>>::from_request_parts(
            parts, state,
        )
        .await
        .ok();
    let Some(signed) = signed.filter(|signed| signed.csrf_ok(&csrf)) else {
        return Ok(None);
    };
    if !signed.tenant.ai_enabled {
        return Err(ApiError::new(
            Code::AiDisabled,
            "AI features are disabled for this account; contact your admin",
        ));
    }
    Ok(Some(signed.principal()))
}

/// Failed authentications (API keys, console sign-ins) per client address: a token bucket that refills at the allowed
/// rate and holds a minute's worth. IPv6 clients are counted per /64, the block one host
/// usually has.
pub(crate) struct FailureThrottle {
    per_minute: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl FailureThrottle {
    pub(crate) fn new(per_minute: u32) -> FailureThrottle {
        FailureThrottle {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
            },
            v4 => v4,
        }
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_minute / 60.0).min(self.per_minute)
    }

    /// How long `ip` must wait before its next attempt, if it used its budget.
    pub(crate) fn wait_for(&self, ip: IpAddr) -> Option<Duration> {
        let buckets = self.buckets.lock().ok()?;
        let bucket = buckets.get(&Self::key(ip))?;
        let tokens = self.refilled(bucket, Instant::now());
        (tokens < 1.0).then(|| Duration::from_secs_f64((1.0 - tokens) * 60.0 / self.per_minute))
    }

    /// Counts one failed attempt of `ip`.
    pub(crate) fn record(&self, ip: IpAddr) {
        let Ok(mut buckets) = self.buckets.lock() else {
            return;
        };
        let now = Instant::now();
        if buckets.len() >= THROTTLE_CAPACITY {
            let per_minute = self.per_minute;
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * per_minute / 60.0 < per_minute
            });
            if buckets.len() >= THROTTLE_CAPACITY {
                buckets.clear();
            }
        }
        let key = Self::key(ip);
        let tokens = match buckets.get(&key) {
            Some(bucket) => self.refilled(bucket, now),
            None => self.per_minute,
        };
        buckets.insert(
            key,
            Bucket {
                tokens: (tokens - 1.0).max(0.0),
                at: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_that_used_its_budget_waits() {
        let throttle = FailureThrottle::new(3);
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        for _ in 0..3 {
            assert!(throttle.wait_for(ip).is_none());
            throttle.record(ip);
        }
        let wait = throttle.wait_for(ip).expect("throttled");
        assert!(wait <= Duration::from_secs(20), "{wait:?}");
        let other: IpAddr = "203.0.113.8".parse().expect("ip");
        assert!(throttle.wait_for(other).is_none());
        // One host's IPv6 addresses share a budget.
        let a: IpAddr = "2001:db8::1".parse().expect("ip");
        let b: IpAddr = "2001:db8::2".parse().expect("ip");
        for _ in 0..3 {
            throttle.record(a);
        }
        assert!(throttle.wait_for(b).is_some());
    }
}
