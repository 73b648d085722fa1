-- The evaluator's state of every (rule, subject) that has left inactive, shared by every cloud
-- instance. A subject is a series (gateway, device, metric) or, for a gateway rule, a gateway
-- with empty device and metric. `version` is the value alert_clock.states took when the row last
-- changed: a writer changes a row only where its version is still the one it read
-- (compare-and-set), and an instance catches up by reading the rows above the last version it
-- saw. state: inactive, pending, active or acknowledged; alert_id names the open alert.
-- observed_ms: the time of the reading or check that made the last change (a reading older
-- than that is not evaluated).
CREATE TABLE alert_states (
    rule_id     text NOT NULL,
    gateway     text NOT NULL,
    device      text NOT NULL,
    metric      text NOT NULL,
    version     bigint NOT NULL,
    state       text NOT NULL,
    since_ms    bigint,
    notified_ms bigint,
    alert_id    text,
    observed_ms bigint NOT NULL,
    PRIMARY KEY (rule_id, gateway, device, metric)
);
CREATE INDEX alert_states_version ON alert_states (version);

-- One row. states: bumped by every state change, in the changing transaction (it is also the
-- lock that orders them); rules: bumped by every rule change, so instances reload their rules.
CREATE TABLE alert_clock (
    id     bigint PRIMARY KEY,
    states bigint NOT NULL,
    rules  bigint NOT NULL
);
INSERT INTO alert_clock (id, states, rules) VALUES (1, 1, 1);

-- Alerts open before this version keep their state.
INSERT INTO alert_states (rule_id, gateway, device, metric, version, state, since_ms,
                          notified_ms, alert_id, observed_ms)
SELECT rule_id, gateway, device, metric, 1, status, started_at,
       coalesce(notified_at, started_at), alert_id, updated_at
FROM alerts WHERE status <> 'resolved';

-- Rule kinds: value (condition, clear, hold), no_data and gateway_offline (silent_ms).
-- receivers: a JSON array of receiver names from the configuration; NULL: every receiver.
ALTER TABLE alert_rules ADD COLUMN kind text NOT NULL DEFAULT 'value';
ALTER TABLE alert_rules ADD COLUMN silent_ms bigint;
ALTER TABLE alert_rules ADD COLUMN receivers text;
ALTER TABLE alerts ADD COLUMN kind text NOT NULL DEFAULT 'value';
