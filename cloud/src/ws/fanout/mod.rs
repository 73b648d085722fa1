//! Live events between cloud instances that share one PostgreSQL database, so every
//! instance's WebSocket clients see what any instance ingested or changed.
//!
//! ```text
//! instance A: ingest commit ─┐                          ┌─▶ A's listener: own id, dropped
//!             command status ┼─▶ publisher ─pg_notify─▶ │
//!             alert change ──┘   (own connection)       └─▶ B's listener ─▶ B's clients
//! ```
//!
//! Each instance's clients read this instance's own events straight from the in-process
//! broadcasts ([`crate::ws`]); the fan-out adds only what other instances publish. With the
//! embedded SQLite store there is one instance and no fan-out.
//!
//! **Publishing.** One task subscribes to the same broadcasts the clients read (committed
//! batches, command status changes, alert changes, device health after commits), turns what arrives into payloads
//! ([`wire`]: telemetry chunked into self-contained payloads, anything else one payload, or
//! pieces when too large) and sends whatever has queued up in one `pg_notify` statement on a
//! connection of its own. It never makes ingest wait: the broadcasts are bounded and their
//! senders never block, so while a send is slow the oldest events are shed, counted in
//! `fieldlink_cloud_fanout_events_shed_total{reason="lagged"}`; a failed send sheds its events
//! (`reason="send_failed"`) and the next one reconnects.
//!
//! **Receiving.** One task `LISTEN`s on [`CHANNEL`] on a connection of its own. Payloads carry
//! the sender's instance id (random at each start) and a sequence number without holes: the
//! instance's own payloads are dropped (its clients had those events already), a repeat is
//! dropped, and a hole is counted as missed. Everything else is decoded and broadcast to the
//! clients ([`RemoteFeed`], [`REMOTE_CAPACITY`] events, the same lag policy as local events).
//!
//! **Gaps.** PostgreSQL delivers a notification only to sessions listening when it commits.
//! When the listening connection is lost (a database restart), the task reconnects with
//! jittered exponential backoff (0.1 s doubling to 5 s); events other instances published meanwhile
//! never reach this instance's clients. Each gap is logged when it opens and when it closes,
//! with its length, and recorded in `fieldlink_cloud_fanout_listen_gap_seconds` (count and
//! total); `fieldlink_cloud_fanout_listening` is 0 during it; the payloads found missing
//! afterwards by their sequence numbers are counted in
//! `fieldlink_cloud_fanout_notifications_missed_total`. Every client is told with a `gap`
//! message (its `from` and `to` times), so a dashboard can read REST again; live events are a
//! view, not a record.

pub mod wire;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError, Receiver};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use wire::Remote;
use wire::{Encoder, Inbox, Outcome};

use crate::alerts::AlertView;
use crate::commands::CommandRecord;
use crate::commands::CommandView;
use crate::metrics::Metrics;
use crate::store::pg_channel::{self, ListenerEvent, NotifySender};
use crate::store::{DeviceHealth, StoreSpec, WriteBatch};

/// The notification channel every instance of one database publishes on and listens to.
pub const CHANNEL: &str = "fieldlink_live";

/// Events from other instances kept for each client.
pub const REMOTE_CAPACITY: usize = 1_024;

/// Most payloads one `pg_notify` statement carries (about 2 MB).
const SEND_MAX_PAYLOADS: usize = 256;

/// The events of other instances, for this instance's WebSocket clients. Cheap to clone.
#[derive(Clone)]
pub struct RemoteFeed {
    tx: broadcast::Sender<Remote>,
}

impl RemoteFeed {
    /// Events as they arrive. A receiver more than [`REMOTE_CAPACITY`] events behind loses the
    /// oldest (`RecvError::Lagged`).
    pub fn subscribe(&self) -> Receiver<Remote> {
        self.tx.subscribe()
    }
}

/// What this instance publishes: subscriptions to its own broadcasts.
pub struct LocalEvents {
    pub batches: Receiver<Arc<WriteBatch>>,
    pub commands: Receiver<CommandRecord>,
    pub alerts: Receiver<AlertView>,
    pub health: Receiver<Arc<Vec<DeviceHealth>>>,
}

/// Starts publishing and listening when the store is PostgreSQL (`None` on SQLite, where the
/// in-process broadcasts are the whole story). Both tasks stop when `stop` fires.
pub fn start(
    spec: &StoreSpec,
    local: LocalEvents,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> Result<Option<RemoteFeed>, getrandom::Error> {
    let StoreSpec::Postgres { url, .. } = spec else {
        return Ok(None);
    };
    let instance = crate::auth::random_hex(8)?;
    tracing::info!(instance = %instance, channel = CHANNEL,
        "live events fan out to other instances through PostgreSQL LISTEN/NOTIFY");
    let (tx, _) = broadcast::channel(REMOTE_CAPACITY);
    let feed = RemoteFeed { tx: tx.clone() };
    tracker.spawn(publish(
        local,
        Encoder::new(&instance, pg_channel::MAX_PAYLOAD_BYTES),
        NotifySender::new(url),
        metrics.clone(),
        stop.clone(),
    ));
    tracker.spawn(receive(
        url.clone(),
        Inbox::new(&instance),
        tx,
        metrics,
        stop,
    ));
    Ok(Some(feed))
}

/// Payloads waiting for the next send, and how many local events they carry.
struct Unsent {
    encoder: Encoder,
    payloads: Vec<String>,
    events: u64,
    metrics: Arc<Metrics>,
}

impl Unsent {
    fn shed(&self, reason: &str, n: u64) {
        self.metrics.fanout_shed(reason, n);
    }

    fn batch(&mut self, b: Result<Arc<WriteBatch>, RecvError>) {
        match b {
            Ok(b) => {
                if self.encoder.batch(&b, &mut self.payloads) > 0 {
                    self.shed("oversized", 1);
                } else {
                    self.events += 1;
                }
            }
            Err(e) => self.lagged(e),
        }
    }

    fn command(&mut self, c: Result<CommandRecord, RecvError>) {
        match c {
            Ok(c) => match self
                .encoder
                .command(&CommandView::from(c), &mut self.payloads)
            {
                Ok(()) => self.events += 1,
                Err(_) => self.shed("oversized", 1),
            },
            Err(e) => self.lagged(e),
        }
    }

    fn alert(&mut self, a: Result<AlertView, RecvError>) {
        match a {
            Ok(a) => match self.encoder.alert(&a, &mut self.payloads) {
                Ok(()) => self.events += 1,
                Err(_) => self.shed("oversized", 1),
            },
            Err(e) => self.lagged(e),
        }
    }

    fn health(&mut self, h: Result<Arc<Vec<DeviceHealth>>, RecvError>) {
        match h {
            Ok(h) => {
                for d in h.iter() {
                    let view = crate::registry::Device::from(d.clone());
                    match self.encoder.device(&view, &mut self.payloads) {
                        Ok(()) => self.events += 1,
                        Err(_) => self.shed("oversized", 1),
                    }
                }
            }
            Err(e) => self.lagged(e),
        }
    }

    fn lagged(&self, e: RecvError) {
        if let RecvError::Lagged(n) = e {
            self.shed("lagged", n);
        }
    }
}

fn ready<T: Clone>(rx: &mut Option<Receiver<T>>) -> Option<Result<T, RecvError>> {
    match rx.as_mut()?.try_recv() {
        Ok(v) => Some(Ok(v)),
        Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Closed) => {
            *rx = None;
            None
        }
    }
}

/// A closed broadcast (its service stopped) is taken out of the select.
fn open<T>(rx: &mut Option<Receiver<T>>, r: &Result<T, RecvError>) {
    if let Err(RecvError::Closed) = r {
        *rx = None;
    }
}

async fn publish(
    local: LocalEvents,
    encoder: Encoder,
    mut sender: NotifySender,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut batches = Some(local.batches);
    let mut commands = Some(local.commands);
    let mut alerts = Some(local.alerts);
    let mut health = Some(local.health);
    let mut out = Unsent {
        encoder,
        payloads: Vec::new(),
        events: 0,
        metrics: metrics.clone(),
    };
    let mut failing = false;
    loop {
        if batches.is_none() && commands.is_none() && alerts.is_none() && health.is_none() {
            return;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            b = super::recv_or_pending(&mut batches) => { open(&mut batches, &b); out.batch(b) }
            c = super::recv_or_pending(&mut commands) => { open(&mut commands, &c); out.command(c) }
            a = super::recv_or_pending(&mut alerts) => { open(&mut alerts, &a); out.alert(a) }
            h = super::recv_or_pending(&mut health) => { open(&mut health, &h); out.health(h) }
        }
        // Whatever queued up meanwhile goes in the same statement.
        while out.payloads.len() < SEND_MAX_PAYLOADS {
            let mut any = false;
            if let Some(b) = ready(&mut batches) {
                out.batch(b);
                any = true;
            }
            if let Some(c) = ready(&mut commands) {
                out.command(c);
                any = true;
            }
            if let Some(a) = ready(&mut alerts) {
                out.alert(a);
                any = true;
            }
            if let Some(h) = ready(&mut health) {
                out.health(h);
                any = true;
            }
            if !any {
                break;
            }
        }
        if out.payloads.is_empty() {
            continue;
        }
        match sender.send(CHANNEL, &out.payloads).await {
            Ok(()) => {
                metrics
                    .fanout_notifications_sent
                    .inc_by(out.payloads.len() as u64);
                if failing {
                    tracing::info!("publishing live events to other instances again");
                    failing = false;
                }
            }
            Err(e) => {
                out.shed("send_failed", out.events);
                if !failing {
                    tracing::warn!(error = ?e.to_string(), events = out.events,
                        "could not publish live events to other instances; shed, reconnecting on the next");
                    failing = true;
                }
            }
        }
        out.payloads.clear();
        out.events = 0;
    }
}

async fn receive(
    url: String,
    mut inbox: Inbox,
    feed: broadcast::Sender<Remote>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    metrics.fanout_listening.set(0);
    pg_channel::listen(&url, CHANNEL, stop, |ev| match ev {
        ListenerEvent::Listening { gap: None } => {
            metrics.fanout_listening.set(1);
            tracing::info!(channel = CHANNEL, "listening for other instances' live events");
        }
        ListenerEvent::Listening { gap: Some(gap) } => {
            metrics.fanout_listening.set(1);
            metrics.fanout_listen_gap_seconds.observe(gap.as_secs_f64());
            let to_ms = crate::clock::now_ms();
            let _ = feed.send(Remote::Gap {
                from_ms: to_ms - gap.as_millis() as i64,
                to_ms,
            });
            tracing::warn!(gap_ms = gap.as_millis() as u64,
                "listening for other instances' live events again; what they published during the gap did not reach this instance's WebSocket clients");
        }
        ListenerEvent::Lost { error, first } => {
            metrics.fanout_listening.set(0);
            if first {
                tracing::warn!(error = ?error.to_string(),
                    "lost the connection listening for other instances' live events; reconnecting");
            } else {
                tracing::debug!(error = ?error.to_string(), "still cannot listen for other instances' live events");
            }
        }
        ListenerEvent::Notification { payload } => {
            let taken = inbox.take(payload, Instant::now());
            metrics.fanout_received(match taken.outcome {
                Outcome::Own => "own",
                Outcome::Duplicate => "duplicate",
                Outcome::Delivered => "delivered",
                Outcome::Part => "part",
                Outcome::Undecodable => "undecodable",
                Outcome::Newer => "newer",
            });
            if taken.missed > 0 {
                metrics.fanout_notifications_missed.inc_by(taken.missed);
                tracing::warn!(source = ?taken.source.as_deref().unwrap_or(""), missed = taken.missed,
                    "live events of another instance were missed");
            }
            if taken.outcome == Outcome::Newer {
                tracing::debug!(source = ?taken.source.as_deref().unwrap_or(""),
                    "a notification of a newer fan-out version than this instance reads; dropped");
            }
            if taken.outcome == Outcome::Undecodable {
                tracing::warn!(payload = ?payload.chars().take(120).collect::<String>(),
                    "a notification on the live channel is not one this version reads; dropped");
            }
            if let Some(e) = taken.event {
                // No receiver: no client is connected.
                let _ = feed.send(e);
            }
        }
    })
    .await;
    metrics.fanout_listening.set(0);
}
