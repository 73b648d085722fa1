-- Every birth received, by (gateway, config hash). Aliased telemetry (binary version 2) names
-- series by their place in the birth it was written against, so the cloud keeps each birth a
-- gateway announced, not only the latest one: a batch written before a configuration change
-- can still arrive after it, and any instance sharing this database can read it.
-- A birth received again with the same hash replaces the row; `table_check` (FNV-1a 32 of the
-- alias table, as in the payload) tells whether its series are the same.
CREATE TABLE IF NOT EXISTS gateway_births (
    gateway text NOT NULL,
    config_hash text NOT NULL,
    table_check bigint NOT NULL,
    received_at timestamptz NOT NULL,
    -- The status message as received (JSON text).
    body text NOT NULL,
    PRIMARY KEY (gateway, config_hash)
);
