-- Reservations carry the process that made them (`holder`), which moves their expiry on while
-- their work runs, up to `longest_until`. So a reservation of a replica that died (crash,
-- kill, lost machine) stops holding the tenant's budget a short hold after its last renewal,
-- instead of for the longest time a call may take. Rows of an earlier release (no holder) are
-- never renewed and keep the expiry they were made with.
ALTER TABLE usage_reservations ADD COLUMN holder TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_reservations ADD COLUMN longest_until BIGINT NOT NULL DEFAULT 0;
CREATE INDEX usage_reservations_holder ON usage_reservations(holder);
