-- The same columns as on PostgreSQL (see its 0008_reservation_holder.sql), so both schemas stay
-- alike; on SQLite reservations are held in the one server process and this table stays empty.
ALTER TABLE usage_reservations ADD COLUMN holder TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_reservations ADD COLUMN longest_until BIGINT NOT NULL DEFAULT 0;
