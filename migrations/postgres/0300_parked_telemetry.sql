-- Aliased telemetry (binary version 2) that arrived before the birth it names. Ingest commits
-- such a message here and acknowledges it to the broker at once, so a message that must wait
-- never holds the broker's in-flight window towards the cloud (one gateway's unknown births
-- would otherwise stall every other gateway). A row leaves this table in the transaction that
-- stores its points (the birth arrived) or its dead letter (`ingest.birth_wait_secs` passed).
-- Any instance sharing the database may resolve any row; the points are idempotent, so two
-- instances resolving the same row at once store it once.
CREATE TABLE IF NOT EXISTS parked_telemetry (
    id bigserial PRIMARY KEY,
    gateway text NOT NULL,
    config_hash text NOT NULL,
    -- The alias table's check named by the payload, as an unsigned 32-bit value.
    table_check bigint NOT NULL,
    received_at timestamptz NOT NULL,
    topic text NOT NULL,
    payload bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS parked_telemetry_birth
    ON parked_telemetry (gateway, config_hash, table_check, id);
