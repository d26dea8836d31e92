-- This month's managed spending per tenant, kept up to date by every settled charge, so that
-- the cap check reads one row instead of summing the month's ledger (which grows with usage).
CREATE TABLE usage_month_totals (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    month TEXT NOT NULL,
    managed_micros BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, month)
);
INSERT INTO usage_month_totals (tenant_id, month, managed_micros)
SELECT tenant_id, month, CAST(SUM(cost_micros) AS BIGINT)
FROM usage_ledger WHERE usage_type = 'managed'
GROUP BY tenant_id, month;
