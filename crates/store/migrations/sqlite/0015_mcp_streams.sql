-- Whose each MCP request stream is, so that only its user may resume it with
-- `Last-Event-ID` (a session's common stream belongs to the session's user).
CREATE TABLE mcp_streams (
    stream_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX mcp_streams_by_age ON mcp_streams (created_at);
