-- See postgres/0301_gateway_quota.sql.
ALTER TABLE gateways ADD COLUMN quota_dropped_messages INTEGER NOT NULL DEFAULT 0;
ALTER TABLE gateways ADD COLUMN quota_dropped_points INTEGER NOT NULL DEFAULT 0;
ALTER TABLE gateways ADD COLUMN quota_dropped_at INTEGER;
