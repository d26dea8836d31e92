-- MCP sessions (`Mcp-Session-Id`): whose they are, and the client's `initialize` parameters, so
-- that any replica can take up a session another one began.
CREATE TABLE mcp_sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    -- The `initialize` parameters (JSON); NULL until the handshake is stored.
    state TEXT,
    created_at INTEGER NOT NULL,
    used_at INTEGER NOT NULL
);
CREATE INDEX mcp_sessions_by_use ON mcp_sessions (used_at);
