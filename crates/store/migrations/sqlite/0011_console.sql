-- The web console: passwords (argon2id hashes), sign-in sessions and one-time sign-in links
-- (tokens stored only as SHA-256 hashes), labelled API keys, the audit log (written in the
-- same transaction as each change) and the wallet's top-up history.
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE api_keys ADD COLUMN label TEXT NOT NULL DEFAULT '';

CREATE TABLE console_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions(user_id);

CREATE TABLE sign_in_links (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log(tenant_id, created_at);

CREATE TABLE wallet_topups (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    amount_micros BIGINT NOT NULL,
    by_who TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX wallet_topups_tenant ON wallet_topups(tenant_id, created_at);
