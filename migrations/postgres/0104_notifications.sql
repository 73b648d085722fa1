-- The notification outbox: one row per (notified transition, receiver), inserted in the
-- transaction that stores the transition, so a stored transition's notifications are neither
-- lost nor queued twice. payload is the JSON sent (what was true at the transition).
-- A worker claims due rows by setting claimed_by/claimed_until (a lease longer than one
-- attempt may take), delivers, and then, only if it still holds the claim, records the
-- attempt and the new status: pending (next_attempt_at is the retry), delivered or failed
-- (gave up). Every attempt is a row of notification_attempts.
CREATE TABLE notifications (
    notification_id text PRIMARY KEY,
    alert_id        text NOT NULL,
    rule_id         text NOT NULL,
    event           text NOT NULL,
    receiver        text NOT NULL,
    payload         text NOT NULL,
    status          text NOT NULL,
    attempts        bigint NOT NULL,
    created_at      bigint NOT NULL,
    next_attempt_at bigint NOT NULL,
    claimed_by      text,
    claimed_until   bigint,
    finished_at     bigint,
    last_error      text
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_alert ON notifications (alert_id, created_at);

-- outcome: delivered or failed; detail: the HTTP status or SMTP reply, or the error;
-- instance: the cloud instance (its MQTT client id) that made the attempt.
CREATE TABLE notification_attempts (
    notification_id text NOT NULL,
    attempt         bigint NOT NULL,
    started_at      bigint NOT NULL,
    duration_ms     bigint NOT NULL,
    outcome         text NOT NULL,
    detail          text,
    instance        text NOT NULL
);
CREATE INDEX notification_attempts_of ON notification_attempts (notification_id, started_at);
