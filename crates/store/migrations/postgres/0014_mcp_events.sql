-- The events of MCP streams (Streamable HTTP), kept for an hour so that a client whose stream
-- broke can resume it with `Last-Event-ID`, on any replica.
CREATE TABLE mcp_events (
    id BIGSERIAL PRIMARY KEY,
    -- The SDK's stream id: a random UUID per request, or `<session id>:common`.
    stream_id TEXT NOT NULL,
    -- The event (JSON): its JSON-RPC message and retry hint.
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX mcp_events_by_stream ON mcp_events (stream_id, id);
CREATE INDEX mcp_events_by_age ON mcp_events (created_at);
