-- See postgres/0003_gateway_boot_epoch.sql.
ALTER TABLE gateways ADD COLUMN boot_epoch INTEGER;
