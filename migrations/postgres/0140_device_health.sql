-- Device health as the gateway reports it (device_up / device_degraded / device_down events),
-- and the operator's name for a registered gateway.
--
-- A report is applied only when its (health_epoch, health_seq) — the gateway's boot epoch and
-- event sequence number — is newer than the stored one, so a redelivered or late event never
-- overwrites a newer state. last_error keeps the latest error even after the device recovers.
-- The state served is derived when reading: a report is current only while its gateway is
-- online in the same boot epoch; otherwise the device's state is unknown (see
-- cloud/src/store/health.rs).
ALTER TABLE devices ADD COLUMN IF NOT EXISTS health_state text
    CHECK (health_state IN ('online', 'degraded', 'offline'));
ALTER TABLE devices ADD COLUMN IF NOT EXISTS health_at timestamptz;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS health_epoch bigint;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS health_seq bigint;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS last_error text;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS last_error_at timestamptz;

ALTER TABLE gateways ADD COLUMN IF NOT EXISTS name text;
