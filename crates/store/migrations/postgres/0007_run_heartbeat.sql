-- A run's sign of life: the process running it moves `alive_until` on while it works, so a
-- run whose process died (crash, kill, lost machine) is recognised once the time has passed
-- and recorded as failed instead of staying `running` for ever. Runs left running by an
-- earlier release count as such at once (0 has passed); a run that was in fact still going
-- records its real outcome when it ends, as every run does.
ALTER TABLE ws_runs ADD COLUMN alive_until BIGINT NOT NULL DEFAULT 0;
CREATE INDEX ws_runs_running ON ws_runs(alive_until) WHERE status = 'running';
