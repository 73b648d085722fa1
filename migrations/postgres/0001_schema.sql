-- The registry (gateways, devices, series), the narrow points table, and what ingest keeps
-- beside telemetry: dead letters, gateway events and command acknowledgements.

CREATE TABLE gateways (
    gateway        text PRIMARY KEY,
    online         boolean NOT NULL DEFAULT false,
    agent_version  text,
    config_hash    text,
    -- true when an operator registered it, false when ingest registered it on first contact
    registered     boolean NOT NULL DEFAULT false,
    first_seen     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz,
    status_at      timestamptz
);

CREATE TABLE devices (
    gateway    text NOT NULL REFERENCES gateways (gateway),
    device     text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway, device)
);

-- The series dictionary: one row per (gateway, device, metric). value_kind: 0 number, 1 bool,
-- 2 string, fixed by the first point seen.
CREATE TABLE series (
    series_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway    text NOT NULL,
    device     text NOT NULL,
    metric     text NOT NULL,
    unit       text,
    writable   boolean NOT NULL DEFAULT false,
    value_kind smallint NOT NULL DEFAULT 0,
    UNIQUE (gateway, device, metric),
    FOREIGN KEY (gateway, device) REFERENCES devices (gateway, device)
);

-- Narrow: numbers and booleans in value, strings in value_text. quality: 0 good, 1 uncertain,
-- 2 bad. The unique index is the idempotency key of ingest: a replayed point is ignored.
CREATE TABLE points (
    series_id  bigint NOT NULL,
    time       timestamptz NOT NULL,
    value      double precision,
    value_text text,
    quality    smallint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX points_series_time ON points (series_id, time DESC);

CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL,
    topic       text NOT NULL,
    reason      text NOT NULL,
    detail      text NOT NULL,
    payload     bytea NOT NULL
);
CREATE INDEX dead_letters_received ON dead_letters (received_at);

CREATE TABLE gateway_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway     text NOT NULL,
    received_at timestamptz NOT NULL,
    body        jsonb NOT NULL
);

CREATE TABLE command_acks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway     text NOT NULL,
    received_at timestamptz NOT NULL,
    body        jsonb NOT NULL
);
