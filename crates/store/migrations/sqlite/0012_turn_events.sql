-- Turn journals copied to the database so that other replicas can replay a turn's stream to a
-- client that rejoins it (PostgreSQL replicas write these; one SQLite server keeps journals in
-- memory, and has the same tables for the same schema).
CREATE TABLE turns (
    turn_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished INTEGER NOT NULL DEFAULT 0,
    -- Set when the turn ends: its events are forgotten after this.
    expires_at INTEGER
);
CREATE INDEX turns_by_session ON turns (session_id, started_at);
CREATE INDEX turns_by_expiry ON turns (expires_at);

CREATE TABLE turn_events (
    turn_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (turn_id, seq)
);
