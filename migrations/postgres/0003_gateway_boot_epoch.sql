-- The boot epoch of the gateway's latest birth: a death (MQTT will) from an older boot epoch
-- arrives late and must not mark the newer session offline.
ALTER TABLE gateways ADD COLUMN IF NOT EXISTS boot_epoch bigint;
