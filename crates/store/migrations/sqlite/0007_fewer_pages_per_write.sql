-- Fewer pages written per chat turn (each page a turn's writes change is one WAL frame):
-- * sessions and usage_ledger are keyed by their text ids (WITHOUT ROWID): one b-tree per
--   table instead of a rowid table plus the index of its primary key;
-- * messages.id is a plain INTEGER PRIMARY KEY: SQLite still numbers new rows after the
--   largest id, so a session's messages keep their order, without AUTOINCREMENT's
--   sqlite_sequence row rewritten by every insert.
-- The tables are rebuilt in an order that never leaves a foreign key pointing at a table
-- being dropped (foreign keys are on while migrations run: dropping a referenced table
-- would cascade to its messages).

CREATE TABLE sessions_rebuilt (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    title TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    busy_until BIGINT NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO sessions_rebuilt (id, tenant_id, user_id, title, created_at, updated_at, busy_until)
SELECT id, tenant_id, user_id, title, created_at, updated_at, busy_until FROM sessions;

CREATE TABLE messages_rebuilt (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions_rebuilt(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    interrupted BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
INSERT INTO messages_rebuilt (id, session_id, role, content, interrupted, created_at)
SELECT id, session_id, role, content, interrupted, created_at FROM messages;

DROP TABLE messages;
DROP TABLE sessions;
ALTER TABLE sessions_rebuilt RENAME TO sessions;
ALTER TABLE messages_rebuilt RENAME TO messages;
CREATE INDEX sessions_user ON sessions(user_id, updated_at);
CREATE INDEX messages_session ON messages(session_id, id);

CREATE TABLE usage_ledger_rebuilt (
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
) WITHOUT ROWID;
INSERT INTO usage_ledger_rebuilt
SELECT id, tenant_id, user_id, key_id, session_id, kind, item, prompt_tokens,
       completion_tokens, cost_micros, usage_type, month, created_at
FROM usage_ledger;
DROP TABLE usage_ledger;
ALTER TABLE usage_ledger_rebuilt RENAME TO usage_ledger;
CREATE INDEX usage_ledger_tenant_month ON usage_ledger(tenant_id, month, usage_type);
