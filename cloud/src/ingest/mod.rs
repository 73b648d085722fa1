//! Ingest: every gateway's traffic off the broker, into the store, exactly once.
//!
//! Three tasks joined by bounded queues:
//!
//! ```text
//! MQTT event loop ──Publish──▶ classifier ──Item──▶ writer ──commit──▶ store
//!        ▲                                             │
//!        └──────────── PUBACK (after commit) ◀─────────┘
//! ```
//!
//! The durable invariant: **a message is acknowledged to the broker only after the transaction
//! holding its rows (or its dead letter) has committed.** The session is persistent and QoS 1,
//! so a message not yet acknowledged when the process dies is redelivered by the broker, and
//! the store ignores rows it already has (unique (series, time)). A crash at any line
//! therefore loses nothing and duplicates nothing. Messages are never dropped by the cloud:
//! when the writer is slow, the queues fill and the event loop stops reading from the broker.
//!
//! Refused messages (undecodable, oversized, gateway mismatch, non-finite values, readings too
//! far in the future, unregistered gateways when registration is required, aliased telemetry
//! whose birth did not arrive in time) become dead letters, stored and acknowledged like any
//! other row, and counted by reason.
//!
//! Aliased telemetry is read with the birth it names ([`births`]): births are stored per
//! (gateway, config hash) in the same transactions as everything else, and a batch that
//! arrives before its birth waits, unacknowledged and bounded, for `birth_wait`.
//!
//! Logs: every string a gateway controls (topics, dead-letter details, identifiers, and store
//! errors, which may quote them) is logged as a Debug-quoted field (`field = ?value`), never with
//! `%`, so a newline or a terminal escape in a topic arrives in the log as `\n` or `\u{1b}`
//! inside quotes, and cannot forge a line.
//!
//! With the embedded broker the broker lives in this process: it acknowledges a gateway's
//! publish on receipt, so a crash of this process loses what the writer had not committed.
//! Use an external broker where that matters.

mod births;
mod classify;
mod mqtt;
mod oversize;
pub mod session;
pub mod upkeep;
mod writer;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fieldlink_protocol::{Ident, TopicPrefix};
use rumqttc::{AsyncClient, Publish};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use births::Births;
pub use classify::{classify, classify_aliased, BirthRecord, Content, Rules};
pub(crate) use mqtt::network_options;
/// The broker options ingest uses, for the command publisher's own connection.
pub(crate) use mqtt::options as mqtt_options;
pub use mqtt::{MqttSettings, TlsSettings};
pub use writer::{FlushPolicy, Item};

use crate::metrics::Metrics;
use crate::store::Store;

/// Why ingest could not start.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("reading {path}: {source}")]
    TlsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("topic filters: {0}")]
    Topic(#[from] fieldlink_protocol::TopicError),
}

/// What ingest does besides connecting.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub prefix: TopicPrefix,
    /// Subscribe as `$share/{group}/…` so instances in the group split the load.
    pub share_group: Option<String>,
    /// Dead-letter messages from gateways nobody registered, instead of registering them.
    pub require_registration: bool,
    pub max_future_skew: Duration,
    pub flush: FlushPolicy,
    /// Capacity of each queue between the tasks, in messages.
    pub queue_messages: usize,
    /// How long a stop waits for the writer's last commit and acknowledgements.
    pub shutdown_grace: Duration,
    /// How long aliased telemetry waits for the birth it names before it is dead-lettered.
    pub birth_wait: Duration,
    /// The largest packet a connection is raised to so that a message over
    /// `mqtt.max_packet_bytes` is taken as a dead letter instead of blocking the session
    /// (see `oversize`).
    pub max_oversized_packet_bytes: usize,
    /// What the store keeps of dead letters; its `retention` is enforced by [`upkeep`].
    pub dead_letters: crate::store::DeadLetterLimits,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            prefix: TopicPrefix::default(),
            share_group: None,
            require_registration: false,
            max_future_skew: Duration::from_secs(300),
            flush: FlushPolicy::default(),
            queue_messages: 1_024,
            shutdown_grace: Duration::from_secs(10),
            birth_wait: Duration::from_secs(30),
            max_oversized_packet_bytes: oversize::MQTT_MAX_PACKET_BYTES,
            dead_letters: crate::store::DeadLetterLimits::default(),
        }
    }
}

/// A running ingest.
#[derive(Clone)]
pub struct IngestHandle {
    connected: Arc<AtomicBool>,
    problem: session::BrokerProblem,
    sibling: session::SiblingCloses,
    /// Every batch the writer committed, after its commit (for the WebSocket and alerts).
    committed: tokio::sync::broadcast::Sender<Arc<crate::store::WriteBatch>>,
    /// Device health after each commit that may have changed it (for the WebSocket).
    health: tokio::sync::broadcast::Sender<Arc<Vec<crate::store::DeviceHealth>>>,
}

impl IngestHandle {
    /// Whether the broker connection is up and the subscriptions are in place (for readiness).
    pub fn broker_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Where the command service records the ends of its own broker connection, so that a
    /// broker restart (which ends both) is not taken for a takeover of ingest's session.
    pub fn sibling_closes(&self) -> session::SiblingCloses {
        self.sibling.clone()
    }

    /// What is wrong with the broker session besides being down (taken over by another client,
    /// blocked by a message over the cap), while it is current.
    pub fn broker_problem(&self) -> Option<String> {
        self.problem.current()
    }

    /// Batches as they are committed. The writer's send never waits: a receiver that falls
    /// more than [`COMMITTED_CAPACITY`] batches behind loses the oldest and is told so by
    /// `RecvError::Lagged`. Ingest is never slowed by a subscriber.
    pub fn subscribe_committed(
        &self,
    ) -> tokio::sync::broadcast::Receiver<Arc<crate::store::WriteBatch>> {
        self.committed.subscribe()
    }

    /// Device health as commits change it (see
    /// [`WriteOutcome::device_health`](crate::store::WriteOutcome::device_health)), with the
    /// same never-wait rule and capacity as [`IngestHandle::subscribe_committed`].
    pub fn subscribe_device_health(
        &self,
    ) -> tokio::sync::broadcast::Receiver<Arc<Vec<crate::store::DeviceHealth>>> {
        self.health.subscribe()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Batches kept for subscribers of [`IngestHandle::subscribe_committed`].
pub const COMMITTED_CAPACITY: usize = 1_024;

/// Starts the three tasks on `tracker`. They stop when `stop` fires: the event loop stops
/// forwarding, the classifier and writer drain, the writer's last acknowledgements go out, and
/// the event loop disconnects.
pub fn start(
    mqtt_settings: &MqttSettings,
    settings: IngestSettings,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> Result<IngestHandle, IngestError> {
    let options = mqtt::options(mqtt_settings)?;
    let filters = settings
        .prefix
        .cloud_filters(settings.share_group.as_deref())?;
    let (client, mut eventloop) = AsyncClient::new(options, 4_096);
    eventloop.set_network_options(mqtt::network_options());
    let connected = Arc::new(AtomicBool::new(false));
    let (pub_tx, pub_rx) = mpsc::channel::<Publish>(settings.queue_messages);
    let (item_tx, item_rx) = mpsc::channel::<Item>(settings.queue_messages);
    let writer_done = CancellationToken::new();
    let rules = Rules {
        prefix: settings.prefix.clone(),
        max_future_skew_ms: settings.max_future_skew.as_millis() as i64,
    };

    let problem = session::BrokerProblem::default();
    let sibling = session::SiblingCloses::default();
    tracker.spawn(mqtt::run_event_loop(mqtt::EventLoopTask {
        eventloop,
        client: client.clone(),
        client_id: mqtt_settings.client_id.clone(),
        filters,
        inbound: pub_tx,
        oversized: item_tx.clone(),
        limit: oversize::PacketLimit::new(
            mqtt_settings.max_packet_bytes,
            settings.max_oversized_packet_bytes,
        ),
        metrics: metrics.clone(),
        problem: problem.clone(),
        sibling: sibling.clone(),
        connected: connected.clone(),
        stop: stop.clone(),
        writer_done: writer_done.clone(),
        grace: settings.shutdown_grace,
    }));
    tracker.spawn(run_classifier(
        pub_rx,
        Classifier {
            tx: item_tx,
            rules,
            require_registration: settings.require_registration,
            store: store.clone(),
            metrics: metrics.clone(),
            registrations: Registrations::default(),
            births: Births::new(settings.birth_wait, settings.queue_messages),
        },
    ));
    tracker.spawn(upkeep::expire_dead_letters(
        store.clone(),
        settings.dead_letters.retention,
        metrics.clone(),
        stop.clone(),
    ));
    let (committed, _) = tokio::sync::broadcast::channel(COMMITTED_CAPACITY);
    let (health, _) = tokio::sync::broadcast::channel(COMMITTED_CAPACITY);
    let writer = writer::Writer {
        committed: committed.clone(),
        health: health.clone(),
        store,
        client,
        metrics,
        policy: settings.flush,
        stop: stop.clone(),
    };
    tracker.spawn(async move {
        writer.run(item_rx).await;
        writer_done.cancel();
    });
    Ok(IngestHandle {
        connected,
        problem,
        sibling,
        committed,
        health,
    })
}

/// How long the classifier trusts its copy of the registered set: a gateway removed by an
/// operator (on any instance) is refused within this time.
pub const REGISTRATION_REFRESH: Duration = Duration::from_secs(5);

/// The classifier's view of which gateways an operator registered. The whole set is reloaded
/// every [`REGISTRATION_REFRESH`]; a gateway missing from it is looked up on its own, so a
/// gateway registered a moment ago is accepted at once. (Each message of an unregistered
/// gateway costs that lookup, next to the dead letter it becomes anyway.)
#[derive(Default)]
struct Registrations {
    registered: HashSet<Ident>,
    loaded: Option<Instant>,
}

impl Registrations {
    async fn check(&mut self, store: &Store, gw: &Ident) -> Result<bool, crate::store::StoreError> {
        let now = Instant::now();
        if self
            .loaded
            .is_none_or(|at| now.duration_since(at) >= REGISTRATION_REFRESH)
        {
            self.registered = store.registered_gateways().await?.into_iter().collect();
            self.loaded = Some(now);
        }
        if self.registered.contains(gw) {
            return Ok(true);
        }
        match store.gateway(gw).await? {
            Some(info) if info.registered => {
                self.registered.insert(gw.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// What the classifier needs besides its queues.
struct Classifier {
    tx: mpsc::Sender<Item>,
    rules: Rules,
    require_registration: bool,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    registrations: Registrations,
    births: Births,
}

/// How often parked aliased telemetry looks for its birth in the store.
const BIRTH_RETRY: Duration = Duration::from_millis(250);

async fn run_classifier(mut rx: mpsc::Receiver<Publish>, mut c: Classifier) {
    let mut retry = tokio::time::interval(BIRTH_RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let publish = tokio::select! {
            p = rx.recv(), if !c.births.is_full() => match p {
                Some(p) => p,
                // Parked messages stay unacknowledged: the broker redelivers them.
                None => break,
            },
            _ = retry.tick(), if c.births.has_parked() => {
                c.births.refresh(&c.store).await;
                if !c.release_parked().await {
                    break;
                }
                continue;
            }
        };
        let received = Instant::now();
        let received_ms = now_ms();
        c.metrics.unacked_messages.inc();
        let needs = births::needs_birth(&c.rules.prefix, &publish.topic, &publish.payload);
        let aliases = match &needs {
            None => None,
            Some(key) => match c.births.find(&c.store, key).await {
                Ok(Some(a)) => Some(a),
                Ok(None) => {
                    c.births.park(publish, received, received_ms, key.clone());
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not look up a birth; waiting");
                    c.births.park(publish, received, received_ms, key.clone());
                    continue;
                }
            },
        };
        let content = classify_aliased(
            &c.rules,
            &publish.topic,
            &publish.payload,
            received_ms,
            aliases.as_deref(),
        );
        let birth = match &content {
            Content::Status {
                status,
                birth: Some(r),
                ..
            } => Some((status.gateway.clone(), r.aliases.clone())),
            _ => None,
        };
        if !c.forward(publish, received, received_ms, content).await {
            break;
        }
        if let Some((gw, aliases)) = birth {
            c.births.learn(&gw, aliases);
            if !c.release_parked().await {
                break;
            }
        }
    }
}

impl Classifier {
    /// Classifies and forwards parked messages whose birth is known or whose wait is over.
    async fn release_parked(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        for (p, aliases) in self.births.take_ready(now) {
            let content = match aliases {
                Some(a) => classify_aliased(
                    &self.rules,
                    &p.publish.topic,
                    &p.publish.payload,
                    p.received_ms,
                    Some(&a),
                ),
                None => classify::dead_letter(
                    &p.publish.topic,
                    &p.publish.payload,
                    p.received_ms,
                    "unknown_birth",
                    format!(
                        "the batch names series by the aliases of the birth of gateway {} with \
                         config hash {} (table check {:08x}), which did not arrive within {} s",
                        p.key.0,
                        p.key.1.config_hash,
                        p.key.1.check,
                        self.births.wait().as_secs_f64()
                    ),
                ),
            };
            if !self
                .forward(p.publish, p.received, p.received_ms, content)
                .await
            {
                return false;
            }
        }
        true
    }

    /// Checks registration, counts, and hands a classified message to the writer. False when
    /// the writer is gone.
    async fn forward(
        &mut self,
        publish: Publish,
        received: Instant,
        received_ms: i64,
        mut content: Content,
    ) -> bool {
        let metrics = &self.metrics;
        if self.require_registration {
            if let Some(gw) = content.gateway() {
                match self.registrations.check(&self.store, gw).await {
                    Ok(true) => {}
                    Ok(false) => {
                        content = classify::dead_letter(
                            &publish.topic,
                            &publish.payload,
                            received_ms,
                            "unregistered",
                            format!("gateway {gw} is not registered"),
                        );
                    }
                    Err(e) => {
                        // Unknown for now: leave it unacknowledged; the broker redelivers
                        // it after the next reconnect.
                        tracing::warn!(error = ?e.to_string(), gateway = ?gw.as_str(),
                            "could not check registration; message left unacknowledged");
                        metrics.unacked_messages.dec();
                        return true;
                    }
                }
            }
        }
        match &content {
            Content::Telemetry { points, .. } => {
                metrics.message("telemetry");
                metrics.points_received.inc_by(points.len() as u64);
            }
            Content::Status { .. } => metrics.message("status"),
            Content::Event(..) => metrics.message("events"),
            Content::Ack(_) => metrics.message("ack"),
            Content::Ignore => metrics.message("ignored"),
            Content::Dead(d) => {
                metrics.message("dead_letter");
                metrics.dead_letter(&d.reason);
                tracing::info!(topic = ?d.topic, reason = ?d.reason, detail = ?d.detail,
                    "message dead-lettered");
            }
        }
        let item = Item {
            publish,
            received,
            received_ms,
            content,
        };
        self.tx.send(item).await.is_ok()
    }
}
