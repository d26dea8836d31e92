-- Nothing to change: SQLite's 0007 (WITHOUT ROWID tables, an SQLite-only change) has no
-- PostgreSQL counterpart, so the two folders' numbers differed by one from there. From 0010 on
-- a change has the same number for both engines (`tests/schemas.rs` checks the two schemas
-- hold the same tables and columns).
SELECT 1;
