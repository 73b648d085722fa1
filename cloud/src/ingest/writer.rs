//! The batching writer: the one task that writes ingest's rows to the store.
//!
//! It gathers classified messages into one [`WriteBatch`] and flushes when the batch holds
//! `max_points` points, when its oldest message has waited `max_delay`, or when no message has
//! arrived for `idle` (the broker has nothing more in flight for us, so waiting longer would
//! only add latency). After the commit, and only then, it acknowledges every MQTT message the
//! batch carried, in arrival order.
//!
//! Failures: a transient store error (connection lost, database restarting) retries the same
//! batch with backoff until it commits or the service stops; nothing is acknowledged meanwhile,
//! and the bounded queue in front of the writer holds the broker back. A permanent error
//! (the database refuses the rows) makes the writer write the batch's messages one by one,
//! dead-lettering the ones the database refuses, so one bad message cannot wedge ingest.
//! On stop, what was received is flushed and acknowledged; a batch that cannot be committed
//! before the grace period ends is dropped unacknowledged, and the broker redelivers it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fieldlink_plumbing::backoff::{Backoff, Schedule};
use rumqttc::{AsyncClient, Publish};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::classify::{dead_letter, Content};
use crate::metrics::Metrics;
use crate::store::{DeviceHealth, QuotaDrops, Store, StoreError, WriteBatch, WriteOutcome};

/// Waits between attempts at a batch that failed transiently: 50 ms doubling to 5 s, jittered
/// so the instances of a cloud that lost the database do not retry in step.
const WRITE_RETRY: Schedule = Schedule::fixed(50, 5_000);

/// When the writer flushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    pub max_points: usize,
    pub max_delay: Duration,
    pub idle: Duration,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy {
            max_points: 20_000,
            max_delay: Duration::from_millis(200),
            idle: Duration::from_millis(3),
        }
    }
}

/// Where a classified message came from, and so what its commit must settle.
pub enum Origin {
    /// From the broker: acknowledged after the commit.
    Broker(Publish),
    /// Read back from the parked telemetry: removed from it by the same commit.
    Parked {
        id: i64,
        topic: String,
        payload: Vec<u8>,
    },
}

impl Origin {
    pub fn topic(&self) -> &str {
        match self {
            Origin::Broker(p) => &p.topic,
            Origin::Parked { topic, .. } => topic,
        }
    }

    pub fn payload(&self) -> &[u8] {
        match self {
            Origin::Broker(p) => &p.payload,
            Origin::Parked { payload, .. } => payload,
        }
    }
}

/// One classified message and what is needed to settle it.
pub struct Item {
    /// Its topic and payload rebuild a dead letter if the database refuses its rows.
    pub origin: Origin,
    pub received: Instant,
    pub received_ms: i64,
    pub content: Content,
}

fn points_of(item: &Item) -> usize {
    match &item.content {
        Content::Telemetry { points, .. } => points.len(),
        _ => 1,
    }
}

fn assemble(items: &[Item]) -> WriteBatch {
    let mut b = WriteBatch::default();
    for item in items {
        if let Origin::Parked { id, .. } = &item.origin {
            b.unparked.push(*id);
        }
        if let Some(gw) = item.content.gateway() {
            b.seen.push((gw.clone(), item.received_ms));
        }
        match &item.content {
            Content::Telemetry { points, .. } => b.points.extend(points.iter().cloned()),
            Content::Status {
                status,
                series,
                birth,
            } => {
                b.statuses.push(status.clone());
                b.series_meta.extend(series.iter().cloned());
                b.births.extend(birth.iter().map(|r| r.stored.clone()));
            }
            Content::Event(m, health) => {
                b.events.push(m.clone());
                b.health.extend(health.iter().cloned());
            }
            Content::Ack(m) => b.acks.push(m.clone()),
            Content::Dead(d) => b.dead_letters.push(d.clone()),
            Content::Parked(p) => b.parked.push(p.clone()),
            Content::OverQuota {
                gateway,
                points,
                sample,
            } => {
                b.dead_letters.extend(sample.iter().cloned());
                let at = Some(item.received_ms);
                match b.quota_drops.iter_mut().find(|(g, _)| g == gateway) {
                    Some((_, d)) => {
                        d.messages += 1;
                        d.points += *points as i64;
                        d.last_at_ms = d.last_at_ms.max(at);
                    }
                    None => b.quota_drops.push((
                        gateway.clone(),
                        QuotaDrops {
                            messages: 1,
                            points: *points as i64,
                            last_at_ms: at,
                        },
                    )),
                }
            }
            Content::Ignore => {}
        }
    }
    b
}

pub(super) struct Writer {
    /// Committed batches go here after their acknowledgements; a send never waits.
    pub committed: tokio::sync::broadcast::Sender<Arc<WriteBatch>>,
    /// Device health after each commit that may have changed it; a send never waits.
    pub health: tokio::sync::broadcast::Sender<Arc<Vec<DeviceHealth>>>,
    pub store: Arc<Store>,
    pub client: AsyncClient,
    pub metrics: Arc<Metrics>,
    pub policy: FlushPolicy,
    /// Fires when the service stops: from then on a failing batch is given up, not retried.
    pub stop: CancellationToken,
}

impl Writer {
    pub async fn run(self, mut rx: mpsc::Receiver<Item>) {
        let mut items: Vec<Item> = Vec::new();
        let mut points = 0usize;
        loop {
            let first = match rx.recv().await {
                Some(i) => i,
                None => break,
            };
            let deadline = tokio::time::Instant::now() + self.policy.max_delay;
            points += points_of(&first);
            items.push(first);
            let mut open = true;
            while points < self.policy.max_points {
                let next = tokio::select! {
                    biased;
                    i = rx.recv() => i,
                    _ = tokio::time::sleep(self.policy.idle) => break,
                    _ = tokio::time::sleep_until(deadline) => break,
                };
                match next {
                    Some(i) => {
                        points += points_of(&i);
                        items.push(i);
                    }
                    None => {
                        open = false;
                        break;
                    }
                }
            }
            self.flush(std::mem::take(&mut items)).await;
            points = 0;
            if !open {
                break;
            }
        }
    }

    async fn flush(&self, items: Vec<Item>) {
        let batch = Arc::new(assemble(&items));
        match self.commit(&batch).await {
            Ok(outcome) => {
                self.ack(&items).await;
                let _ = self.committed.send(batch);
                self.publish_health(outcome);
            }
            Err(e) if !e.is_transient() => {
                tracing::error!(error = ?e.to_string(), messages = items.len(),
                    "the database refused a batch; writing its messages one by one");
                self.write_one_by_one(items).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, messages = items.len(),
                    "stopping with a batch not committed; the broker will redeliver it");
            }
        }
    }

    fn publish_health(&self, outcome: WriteOutcome) {
        if !outcome.device_health.is_empty() {
            let _ = self.health.send(Arc::new(outcome.device_health));
        }
    }

    /// Commits, retrying transient errors until it succeeds or the service stops.
    async fn commit(&self, batch: &Arc<WriteBatch>) -> Result<WriteOutcome, StoreError> {
        let mut backoff = Backoff::jittered(WRITE_RETRY);
        loop {
            let t0 = Instant::now();
            match self.store.write(batch.clone()).await {
                Ok(outcome) => {
                    self.metrics
                        .write_seconds
                        .observe(t0.elapsed().as_secs_f64());
                    self.metrics.batches.inc();
                    self.metrics.points_stored.inc_by(outcome.points_inserted);
                    if outcome.dead_letters_dropped > 0 {
                        self.metrics
                            .dead_letters_dropped("cap", outcome.dead_letters_dropped);
                    }
                    return Ok(outcome);
                }
                Err(e) => {
                    self.metrics.write_errors.inc();
                    if !e.is_transient() || self.stop.is_cancelled() {
                        return Err(e);
                    }
                    let wait = backoff.fail();
                    tracing::warn!(error = %e, retry_in = ?wait, "write failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.stop.cancelled() => return Err(e),
                    }
                }
            }
        }
    }

    async fn write_one_by_one(&self, items: Vec<Item>) {
        for item in items {
            let one = Arc::new(assemble(std::slice::from_ref(&item)));
            let result = match self.commit(&one).await {
                Err(e) if !e.is_transient() => {
                    let dead = dead_letter(
                        item.origin.topic(),
                        item.origin.payload(),
                        item.received_ms,
                        "store_rejected",
                        e.to_string(),
                    );
                    self.metrics.dead_letter("store_rejected");
                    let dead = Item {
                        content: dead,
                        ..item
                    };
                    let r = self
                        .commit(&Arc::new(assemble(std::slice::from_ref(&dead))))
                        .await;
                    (r, dead)
                }
                r => (r, item),
            };
            match result {
                (Ok(outcome), item) => {
                    self.ack(std::slice::from_ref(&item)).await;
                    let _ = self
                        .committed
                        .send(Arc::new(assemble(std::slice::from_ref(&item))));
                    self.publish_health(outcome);
                }
                (Err(e), item) => {
                    tracing::error!(error = ?e.to_string(), topic = ?item.origin.topic(),
                    "could not store a message nor its dead letter; leaving it unacknowledged")
                }
            }
        }
    }

    async fn ack(&self, items: &[Item]) {
        let now = Instant::now();
        for item in items {
            let Origin::Broker(publish) = &item.origin else {
                continue;
            };
            self.metrics
                .ingest_lag_seconds
                .observe(now.duration_since(item.received).as_secs_f64());
            if publish.qos != rumqttc::QoS::AtMostOnce {
                if let Err(e) = self.client.ack(publish).await {
                    tracing::warn!(error = %e, "could not queue an acknowledgement");
                }
            }
            self.metrics.unacked_messages.dec();
        }
    }
}
