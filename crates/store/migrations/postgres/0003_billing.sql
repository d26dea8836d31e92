CREATE TABLE usage_ledger (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL,
    key_id TEXT,
    session_id TEXT,
    kind TEXT NOT NULL,
    item TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cost_micros BIGINT NOT NULL,
    usage_type TEXT NOT NULL,
    month TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX usage_ledger_tenant_month ON usage_ledger(tenant_id, month, usage_type);

CREATE TABLE usage_reservations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    amount_micros BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX usage_reservations_tenant ON usage_reservations(tenant_id, expires_at);

CREATE TABLE own_llm_keys (
    scope TEXT PRIMARY KEY,
    sealed_key TEXT NOT NULL,
    masked TEXT NOT NULL,
    set_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
