-- The embedded store: the same tables as PostgreSQL, times in milliseconds since the Unix
-- epoch (UTC). points is WITHOUT ROWID keyed on (series_id, time): the idempotency key is the
-- table itself.

CREATE TABLE gateways (
    gateway        TEXT PRIMARY KEY,
    online         INTEGER NOT NULL DEFAULT 0,
    agent_version  TEXT,
    config_hash    TEXT,
    registered     INTEGER NOT NULL DEFAULT 0,
    first_seen     INTEGER NOT NULL,
    last_seen      INTEGER,
    status_at      INTEGER
);

CREATE TABLE devices (
    gateway    TEXT NOT NULL REFERENCES gateways (gateway),
    device     TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (gateway, device)
);

CREATE TABLE series (
    series_id  INTEGER PRIMARY KEY,
    gateway    TEXT NOT NULL,
    device     TEXT NOT NULL,
    metric     TEXT NOT NULL,
    unit       TEXT,
    writable   INTEGER NOT NULL DEFAULT 0,
    value_kind INTEGER NOT NULL DEFAULT 0,
    UNIQUE (gateway, device, metric)
);

CREATE TABLE points (
    series_id  INTEGER NOT NULL,
    time       INTEGER NOT NULL,
    value      REAL,
    value_text TEXT,
    quality    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (series_id, time)
) WITHOUT ROWID;

CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    topic       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    payload     BLOB NOT NULL
);

CREATE TABLE gateway_events (
    id          INTEGER PRIMARY KEY,
    gateway     TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body        TEXT NOT NULL
);

CREATE TABLE command_acks (
    id          INTEGER PRIMARY KEY,
    gateway     TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body        TEXT NOT NULL
);
