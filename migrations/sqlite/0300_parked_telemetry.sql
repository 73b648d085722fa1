-- See postgres/0300_parked_telemetry.sql.
CREATE TABLE IF NOT EXISTS parked_telemetry (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    gateway TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    table_check INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS parked_telemetry_birth
    ON parked_telemetry (gateway, config_hash, table_check, id);
