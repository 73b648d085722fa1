-- See postgres/0140_device_health.sql. Times in milliseconds since the Unix epoch.
ALTER TABLE devices ADD COLUMN health_state TEXT
    CHECK (health_state IN ('online', 'degraded', 'offline'));
ALTER TABLE devices ADD COLUMN health_at INTEGER;
ALTER TABLE devices ADD COLUMN health_epoch INTEGER;
ALTER TABLE devices ADD COLUMN health_seq INTEGER;
ALTER TABLE devices ADD COLUMN last_error TEXT;
ALTER TABLE devices ADD COLUMN last_error_at INTEGER;

ALTER TABLE gateways ADD COLUMN name TEXT;
