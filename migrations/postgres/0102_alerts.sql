-- Alert rules and alerts (issue 7). A rule's scope parts are NULL to match everything. At most
-- one open (not resolved) alert per rule and series: the partial unique index makes two cloud
-- instances evaluating the same points agree on one row. Every transition is kept.
CREATE TABLE alert_rules (
    rule_id    text PRIMARY KEY,
    name       text NOT NULL,
    enabled    bigint NOT NULL,
    gateway    text,
    device     text,
    metric     text,
    condition  text NOT NULL,
    clear      text,
    hold_ms    bigint NOT NULL,
    repeat_ms  bigint,
    severity   text NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);

CREATE TABLE alerts (
    alert_id    text PRIMARY KEY,
    rule_id     text NOT NULL,
    gateway     text NOT NULL,
    device      text NOT NULL,
    metric      text NOT NULL,
    severity    text NOT NULL,
    status      text NOT NULL,
    started_at  bigint NOT NULL,
    updated_at  bigint NOT NULL,
    notified_at bigint,
    last_value  text
);
CREATE UNIQUE INDEX alerts_one_open ON alerts (rule_id, gateway, device, metric)
    WHERE status <> 'resolved';
CREATE INDEX alerts_status ON alerts (status, updated_at);

CREATE TABLE alert_transitions (
    alert_id   text NOT NULL,
    at         bigint NOT NULL,
    transition text NOT NULL,
    value      text
);
CREATE INDEX alert_transitions_alert ON alert_transitions (alert_id, at);
