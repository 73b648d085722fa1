-- See postgres/0200_gateway_births.sql.
CREATE TABLE IF NOT EXISTS gateway_births (
    gateway TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    table_check INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (gateway, config_hash)
);
