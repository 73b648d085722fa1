//! Dead letters past their age: deleted every [`EXPIRY_INTERVAL`].
//!
//! The other bounds are kept by every write (`Store::write` cuts a payload to its prefix and
//! deletes a gateway's oldest rows past its cap, in the same transaction); age is the one a
//! write cannot keep, because a gateway that stops sending writes nothing. Several instances
//! sharing a database each run this: deletes of the same rows are harmless.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::Store;

/// How often rows past `ingest.dead_letter_retention_days` are deleted.
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(600);

/// Deletes dead letters older than `retention` at start and every [`EXPIRY_INTERVAL`] until
/// `stop`, counting them in `dead_letters_dropped_total{reason="age"}`.
pub async fn expire_dead_letters(
    store: Arc<Store>,
    retention: Duration,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let before = super::now_ms().saturating_sub(retention.as_millis() as i64);
        match store.expire_dead_letters(before).await {
            Ok(0) => {}
            Ok(n) => {
                metrics.dead_letters_dropped("age", n);
                tracing::info!(deleted = n, "dead letters past their retention deleted");
            }
            Err(e) => tracing::warn!(error = %e, "could not delete expired dead letters"),
        }
    }
}
