-- The money a tenant's reservations set aside, kept up to date as reservations are made and
-- dropped, so that the cap check reads one column instead of summing the reservations in
-- flight (as many rows as calls running at once). Reservations past their expiry (left by a
-- crash) still count here until they are deleted; the check subtracts those few.
ALTER TABLE tenants ADD COLUMN reserved_micros BIGINT NOT NULL DEFAULT 0;
UPDATE tenants SET reserved_micros = COALESCE(
    (SELECT SUM(r.amount_micros) FROM usage_reservations r WHERE r.tenant_id = tenants.id), 0);
