-- What ingest dropped of each gateway because it sent past its quota after the grace period
-- (see cloud/src/ingest/quota.rs): counted exactly, so an operator can see a gateway flooding
-- and how much of it was shed. Zero and NULL for a gateway that never went over.
ALTER TABLE gateways ADD COLUMN IF NOT EXISTS quota_dropped_messages bigint NOT NULL DEFAULT 0;
ALTER TABLE gateways ADD COLUMN IF NOT EXISTS quota_dropped_points bigint NOT NULL DEFAULT 0;
ALTER TABLE gateways ADD COLUMN IF NOT EXISTS quota_dropped_at timestamptz;
