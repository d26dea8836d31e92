-- Runs are jobs of the server: their progress is stored as they go (at least once a second),
-- a cancel can be asked for from any replica, and the outcome is recorded exactly once.
-- `marker` is written into the destination inside the run's own transaction (or beside a
-- file output), so a run whose server died after the commit is settled as succeeded.
ALTER TABLE ws_runs ADD COLUMN pages BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ws_runs ADD COLUMN step TEXT NOT NULL DEFAULT '';
ALTER TABLE ws_runs ADD COLUMN marker TEXT;
ALTER TABLE ws_runs ADD COLUMN destination TEXT;
ALTER TABLE ws_runs ADD COLUMN started_by TEXT NOT NULL DEFAULT '';
ALTER TABLE ws_runs ADD COLUMN cancel_requested_by TEXT;
-- The data dir of the server that runs it (its `instance.id`): the tenant files a run writes
-- live there, so only that server can tell whether a file or SQLite destination committed.
ALTER TABLE ws_runs ADD COLUMN runner TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX ws_runs_marker ON ws_runs(marker);
