//! Alert notifications: a durable outbox in the database, drained by a worker per instance.
//!
//! Invariants:
//! - A notification is queued in the transaction that stores its transition (fired, repeated,
//!   resolved; see `crate::alerts::state`), one row per receiver: a stored transition's
//!   notifications are never lost, and never queued twice, whichever instance stored it.
//! - Ingest and the evaluator never wait for a receiver: they only insert rows. The worker
//!   claims due rows, at most `max_in_flight` at once, each attempt bounded by
//!   `attempt_timeout`; a slow or failing receiver holds only its own slots.
//! - A claim is a lease (`claimed_until`, longer than an attempt can take): another instance
//!   takes the row only after it lapses, so two instances do not deliver the same
//!   notification at once. A crash between a receiver's answer and the record of it leaves the
//!   claim to lapse and the notification to be sent again: delivery is at least once, and
//!   `notification_id` (in the body and the `Fieldlink-Notification-Id` header) lets a
//!   receiver drop the repeat.
//! - Every attempt is a row of `notification_attempts` (time, duration, outcome, the HTTP
//!   status or SMTP reply or the error, the instance). A failed attempt is retried with
//!   exponential backoff until `max_attempts`, then the notification is `failed`, logged as an
//!   error (an operator must look at the receiver).
//!
//! Receivers are named in the configuration (`[[notifications.webhook]]`,
//! `[[notifications.email]]` with `[notifications.smtp]`); rows hold only the name, so a
//! corrected URL or password applies to the retries still pending.

mod deliver;
mod outbox;
mod settings;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use crate::alerts::{NotificationBody, Routing};
pub use outbox::{AttemptRecord, AttemptView, Claimed, NotificationView, Outbox};
pub use settings::{
    EmailReceiver, NotifySettings, RetryPolicy, SmtpSecurity, SmtpSettings, WebhookReceiver,
};

use crate::clock::now_ms;
use crate::records::RecordsDb;
use deliver::Deliverer;

/// Why the notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("webhook client: {0}")]
    Http(String),
    #[error("smtp relay: {0}")]
    Smtp(String),
}

/// The outbox worker of one instance.
pub struct Notifier {
    outbox: Outbox,
    settings: Arc<NotifySettings>,
    deliverer: Arc<Deliverer>,
    instance: String,
    wake: Arc<Notify>,
}

impl Notifier {
    /// `instance` names this instance in claims and attempts (its MQTT client id).
    pub fn new(
        db: Arc<RecordsDb>,
        settings: NotifySettings,
        instance: impl Into<String>,
    ) -> Result<Notifier, NotifyError> {
        Ok(Notifier {
            deliverer: Arc::new(Deliverer::new(&settings)?),
            outbox: Outbox::new(db),
            settings: Arc::new(settings),
            instance: instance.into(),
            wake: Arc::new(Notify::new()),
        })
    }

    /// Told when notifications were queued on this instance, so they go out without waiting
    /// for the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The claim's lease: longer than an attempt can take.
    fn lease(&self) -> Duration {
        self.settings.attempt_timeout * 2 + Duration::from_secs(30)
    }

    /// Delivers until `stop` fires; attempts in flight then get `grace` to finish (one that
    /// does not is retried after its lease lapses).
    pub async fn run(self, stop: CancellationToken, grace: Duration) {
        let mut in_flight: JoinSet<()> = JoinSet::new();
        let max = self.settings.max_in_flight.max(1);
        loop {
            let free = max.saturating_sub(in_flight.len());
            let mut claimed_full = false;
            if free > 0 {
                let now = now_ms();
                let until = now + self.lease().as_millis() as i64;
                match self
                    .outbox
                    .claim(&self.instance, now, until, free as i64)
                    .await
                {
                    Ok(batch) => {
                        claimed_full = batch.len() == free;
                        for n in batch {
                            in_flight.spawn(attempt(
                                self.outbox.clone(),
                                self.settings.clone(),
                                self.deliverer.clone(),
                                self.instance.clone(),
                                n,
                            ));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e.to_string(), "could not claim notifications")
                    }
                }
            }
            if claimed_full && in_flight.len() < max {
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        }
        let drain = async { while in_flight.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(
                "notification attempts still running at stop; they are retried after their lease"
            );
        }
    }
}

async fn attempt(
    outbox: Outbox,
    settings: Arc<NotifySettings>,
    deliverer: Arc<Deliverer>,
    instance: String,
    n: Claimed,
) {
    let started_at_ms = now_ms();
    let started = Instant::now();
    let result = match tokio::time::timeout(
        settings.attempt_timeout,
        deliverer.deliver(&settings, &n.receiver, &n.payload),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {} ms",
            settings.attempt_timeout.as_millis()
        )),
    };
    let duration_ms = started.elapsed().as_millis() as i64;
    let attempt_no = (n.attempts + 1) as u32;
    let (delivered, detail) = match result {
        Ok(d) => (true, d),
        Err(e) => (false, e),
    };
    let retry_at_ms = if delivered {
        None
    } else {
        settings
            .retry
            .after(attempt_no)
            .map(|d| now_ms() + d.as_millis() as i64)
    };
    match (delivered, retry_at_ms) {
        (true, _) => tracing::info!(notification = %n.notification_id, receiver = %n.receiver,
            attempt = attempt_no, detail = ?detail, "notification delivered"),
        (false, Some(_)) => tracing::warn!(notification = %n.notification_id,
            receiver = %n.receiver, attempt = attempt_no, error = ?detail,
            "notification attempt failed; will retry"),
        (false, None) => tracing::error!(notification = %n.notification_id,
            receiver = %n.receiver, attempts = attempt_no, error = ?detail,
            "notification given up"),
    }
    let record = AttemptRecord {
        started_at_ms,
        duration_ms,
        delivered,
        detail,
        retry_at_ms,
    };
    match outbox.record(&instance, &n, &record).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(notification = %n.notification_id,
            "the claim lapsed during the attempt; another instance holds it now"),
        Err(e) => tracing::warn!(notification = %n.notification_id, error = ?e.to_string(),
            "could not record a notification attempt; it is retried after its lease"),
    }
}
