//! The outbox queries: claim due notifications, record an attempt, list for the API.
//!
//! A claim sets `claimed_by` and `claimed_until` on rows that are pending, due and not under
//! another live claim, in one statement; on PostgreSQL the candidate rows are read
//! `FOR UPDATE SKIP LOCKED`, so two instances claiming at once take different rows instead of
//! waiting for each other. An attempt is recorded only by the holder of the claim (checked
//! together with the attempt count), so the status moves once per attempt.

use std::sync::Arc;

use crate::records::{Committed, DbError, Fields, Param, RecordsDb, Step};

/// A notification this instance holds a claim on.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub notification_id: String,
    pub receiver: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// What an attempt changes.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub delivered: bool,
    pub detail: String,
    /// The next attempt's time, or `None` when delivered or given up.
    pub retry_at_ms: Option<i64>,
}

/// A notification as the API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub notification_id: String,
    pub alert_id: String,
    pub rule_id: String,
    /// fired, repeated or resolved.
    pub event: String,
    pub receiver: String,
    /// pending (waiting for its next attempt), delivered or failed (given up).
    pub status: String,
    pub created_at: String,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<String>,
    pub finished_at: Option<String>,
    pub last_error: Option<String>,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptView>,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AttemptView {
    pub attempt: i64,
    pub started_at: String,
    pub duration_ms: i64,
    /// delivered or failed.
    pub outcome: String,
    /// The HTTP status or SMTP reply, or why the attempt failed.
    pub detail: Option<String>,
    /// The cloud instance (its MQTT client id) that made it.
    pub instance: String,
}

#[derive(Clone)]
pub struct Outbox {
    db: Arc<RecordsDb>,
}

impl Outbox {
    pub fn new(db: Arc<RecordsDb>) -> Outbox {
        Outbox { db }
    }

    /// Claims up to `limit` due notifications for `instance` until `until_ms`.
    pub async fn claim(
        &self,
        instance: &str,
        now_ms: i64,
        until_ms: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>, DbError> {
        let lock = if self.db.is_postgres() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let rows = self
            .db
            .query(
                &format!(
                    "UPDATE notifications SET claimed_by = $1, claimed_until = $2 \
                     WHERE notification_id IN (SELECT notification_id FROM notifications \
                       WHERE status = 'pending' AND next_attempt_at <= $3 \
                       AND (claimed_until IS NULL OR claimed_until < $3) \
                       ORDER BY next_attempt_at LIMIT $4{lock}) \
                     RETURNING notification_id, receiver, payload, attempts"
                ),
                vec![
                    instance.into(),
                    until_ms.into(),
                    now_ms.into(),
                    limit.into(),
                ],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let f = Fields::of(r, "notifications");
                Ok(Claimed {
                    notification_id: f.text(0, "notification_id")?,
                    receiver: f.text(1, "receiver")?,
                    payload: f.text(2, "payload")?,
                    attempts: f.int(3, "attempts")?,
                })
            })
            .collect()
    }

    /// Records an attempt and the notification's new status. Returns false when the claim
    /// had been lost (the attempt is still recorded; the status is left to the new holder).
    pub async fn record(
        &self,
        instance: &str,
        n: &Claimed,
        a: &AttemptRecord,
    ) -> Result<bool, DbError> {
        let status = match (a.delivered, a.retry_at_ms) {
            (true, _) => "delivered",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
        let finished = a
            .retry_at_ms
            .is_none()
            .then_some(a.started_at_ms + a.duration_ms);
        let attempt = n.attempts + 1;
        let insert = Step::execute(
            "INSERT INTO notification_attempts (notification_id, attempt, started_at, \
             duration_ms, outcome, detail, instance) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                n.notification_id.clone().into(),
                attempt.into(),
                a.started_at_ms.into(),
                a.duration_ms.into(),
                if a.delivered { "delivered" } else { "failed" }.into(),
                Param::from(a.detail.clone()),
                instance.into(),
            ],
        );
        let update = Step::guarded(
            "UPDATE notifications SET status = $2, attempts = $3, next_attempt_at = $4, \
             finished_at = $5, last_error = $6, claimed_by = NULL, claimed_until = NULL \
             WHERE notification_id = $1 AND claimed_by = $7 AND attempts = $8",
            vec![
                n.notification_id.clone().into(),
                status.into(),
                attempt.into(),
                a.retry_at_ms.unwrap_or(a.started_at_ms).into(),
                finished.into(),
                (!a.delivered).then(|| a.detail.clone()).into(),
                instance.into(),
                n.attempts.into(),
            ],
        );
        match self.db.transaction(vec![update, insert.clone()]).await? {
            Committed::Done(_) => Ok(true),
            Committed::Conflict(_) => {
                self.db.transaction(vec![insert]).await?;
                Ok(false)
            }
        }
    }

    /// Notifications, newest first, with their attempts.
    pub async fn list(
        &self,
        alert_id: Option<&str>,
        status: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<NotificationView>, DbError> {
        use crate::clock::rfc3339;
        let rows = self
            .db
            .query(
                "SELECT notification_id, alert_id, rule_id, event, receiver, status, created_at, \
                 next_attempt_at, finished_at, last_error FROM notifications \
                 WHERE (CAST($1 AS text) IS NULL OR alert_id = CAST($1 AS text)) \
                 AND (CAST($2 AS text) IS NULL OR status = CAST($2 AS text)) \
                 ORDER BY created_at DESC, notification_id DESC LIMIT $3 OFFSET $4",
                vec![
                    alert_id.map(str::to_string).into(),
                    status.map(str::to_string).into(),
                    limit.into(),
                    offset.into(),
                ],
            )
            .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                let f = Fields::of(r, "notifications");
                let status = f.text(5, "status")?;
                let next_attempt_ms = f.int(7, "next_attempt_at")?;
                Ok(NotificationView {
                    notification_id: f.text(0, "notification_id")?,
                    alert_id: f.text(1, "alert_id")?,
                    rule_id: f.text(2, "rule_id")?,
                    event: f.text(3, "event")?,
                    receiver: f.text(4, "receiver")?,
                    created_at: rfc3339(f.int(6, "created_at")?),
                    next_attempt_at: (status == "pending").then(|| rfc3339(next_attempt_ms)),
                    finished_at: f.opt_int(8, "finished_at")?.map(rfc3339),
                    last_error: f.opt_text(9, "last_error")?,
                    status,
                    attempts: Vec::new(),
                })
            })
            .collect::<Result<Vec<NotificationView>, DbError>>()?;
        if out.is_empty() {
            return Ok(out);
        }
        let marks: Vec<String> = (1..=out.len()).map(|i| format!("${i}")).collect();
        let attempts = self
            .db
            .query(
                &format!(
                    "SELECT notification_id, attempt, started_at, duration_ms, outcome, detail, \
                     instance FROM notification_attempts WHERE notification_id IN ({}) \
                     ORDER BY started_at, attempt",
                    marks.join(", ")
                ),
                out.iter()
                    .map(|n| Param::from(n.notification_id.clone()))
                    .collect(),
            )
            .await?;
        for a in &attempts {
            let f = Fields::of(a, "notification_attempts");
            let id = f.text(0, "notification_id")?;
            if let Some(n) = out.iter_mut().find(|n| n.notification_id == id) {
                n.attempts.push(AttemptView {
                    attempt: f.int(1, "attempt")?,
                    started_at: rfc3339(f.int(2, "started_at")?),
                    duration_ms: f.int(3, "duration_ms")?,
                    outcome: f.text(4, "outcome")?,
                    detail: f.opt_text(5, "detail")?,
                    instance: f.text(6, "instance")?,
                });
            }
        }
        Ok(out)
    }
}
