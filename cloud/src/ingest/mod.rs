//! Ingest: every gateway's traffic off the broker, into the store, exactly once.
//!
//! Three tasks joined by bounded queues:
//!
//! ```text
//! MQTT event loop ──Inbound──▶ classifier ──Item──▶ writer ──commit──▶ store
//!        ▲                                             │
//!        └──────────── PUBACK (after commit) ◀─────────┘
//! ```
//!
//! Every message takes that one path, in the order the broker sent it (an oversized one as a
//! dead letter cut at the event loop), so acknowledgements leave in the broker's order too.
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
//! arrives before its birth is parked in the store and acknowledged, then resolved when the
//! birth is known or dead-lettered after `birth_wait` ([`parking`]). No message waits
//! unacknowledged for anything but its own commit, so none holds the broker's in-flight window.
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
mod parking;
mod quota;
pub mod session;
pub mod upkeep;
mod writer;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
pub use mqtt::{check_tls_files, MqttSettings, TlsSettings};
pub use quota::QuotaSettings;
pub use writer::{FlushPolicy, Item, Origin};

use crate::clock::now_ms;
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
    /// Most messages of one gateway parked for births at once.
    pub max_parked_per_gateway: usize,
    /// What each gateway may send.
    pub quota: QuotaSettings,
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
            max_parked_per_gateway: 10_000,
            quota: QuotaSettings::default(),
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
    let (pub_tx, pub_rx) = mpsc::channel::<mqtt::Inbound>(settings.queue_messages);
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
            births: Births::new(settings.birth_wait),
            parking: parking::Parking::new(settings.max_parked_per_gateway),
            quotas: quota::Quotas::new(settings.quota),
            control: client.clone(),
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
    parking: parking::Parking,
    quotas: quota::Quotas,
    /// Publishes flow control to gateways over quota (on ingest's own connection).
    control: AsyncClient,
}

async fn run_classifier(mut rx: mpsc::Receiver<mqtt::Inbound>, mut c: Classifier) {
    let mut tick = tokio::time::interval(parking::SCAN_BUSY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let open = tokio::select! {
            p = rx.recv() => match p {
                Some(mqtt::Inbound::Publish(p)) => c.take(p).await,
                Some(mqtt::Inbound::Refused(item)) => c.tx.send(*item).await.is_ok(),
                None => false,
            },
            _ = tick.tick() => c.resolve_parked().await,
        };
        if !open {
            break;
        }
    }
}

impl Classifier {
    /// Classifies one message from the broker and hands it to the writer. False when the
    /// writer is gone.
    async fn take(&mut self, publish: Publish) -> bool {
        let received = Instant::now();
        let received_ms = now_ms();
        self.metrics.unacked_messages.inc();
        let needs = births::needs_birth(&self.rules.prefix, &publish.topic, &publish.payload);
        let content = match &needs {
            None => classify_aliased(
                &self.rules,
                &publish.topic,
                &publish.payload,
                received_ms,
                None,
            ),
            Some(key) => match self.births.find(&self.store, key).await {
                Ok(Some(a)) => classify_aliased(
                    &self.rules,
                    &publish.topic,
                    &publish.payload,
                    received_ms,
                    Some(&a),
                ),
                found => {
                    if let Err(e) = found {
                        tracing::warn!(error = %e, "could not look up a birth; parking the batch");
                    }
                    self.park(&publish, received_ms, key)
                }
            },
        };
        let birth = match &content {
            Content::Status {
                status,
                birth: Some(r),
                ..
            } => Some((status.gateway.clone(), r.aliases.clone())),
            _ => None,
        };
        let origin = Origin::Broker(publish);
        if !self.forward(origin, received, received_ms, content).await {
            return false;
        }
        if let Some((gw, aliases)) = birth {
            self.births.learn(&gw, aliases);
            // Every birth is a new connection of the agent, which writes the baseline layout
            // until it hears what this cloud reads.
            if self.send_control(&gw, &fieldlink_protocol::Control::accepts_all()) {
                tracing::debug!(gateway = ?gw.as_str(), "told the gateway which layouts are read");
            }
        }
        true
    }

    /// Parks aliased telemetry whose birth is unknown, or dead-letters it when its gateway
    /// already has its share parked.
    fn park(&mut self, publish: &Publish, received_ms: i64, key: &births::BirthKey) -> Content {
        if !self.parking.admit(&key.0) {
            return classify::dead_letter(
                &publish.topic,
                &publish.payload,
                received_ms,
                "unknown_birth",
                format!(
                    "the batch names series by the aliases of a birth of gateway {:?} with \
                     config hash {:?} that is not known, and {} messages of this gateway \
                     already wait for births",
                    key.0.as_str(),
                    key.1.config_hash,
                    self.parking.max_per_gateway()
                ),
            );
        }
        tracing::debug!(gateway = ?key.0.as_str(), config_hash = ?key.1.config_hash,
            "aliased telemetry parked until its birth is known");
        Content::Parked(crate::store::ParkedTelemetry {
            gateway: key.0.clone(),
            config_hash: key.1.config_hash.clone(),
            table_check: i64::from(key.1.check),
            received_ms,
            topic: publish.topic.clone(),
            payload: publish.payload.to_vec(),
        })
    }

    /// When due, hands the writer every parked batch whose birth is now known (read with it)
    /// or whose wait is over (dead-lettered). False when the writer is gone.
    async fn resolve_parked(&mut self) -> bool {
        if !self.parking.scan_due(std::time::Instant::now()) {
            return true;
        }
        let groups = match self.store.parked_groups().await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "could not read parked telemetry; retrying");
                return true;
            }
        };
        let now = std::time::Instant::now();
        self.parking.scanned(&groups, now);
        let wait_ms = self.births.wait().as_millis() as i64;
        for g in groups {
            let key = (
                g.gateway.clone(),
                fieldlink_protocol::BirthRef {
                    config_hash: g.config_hash.clone(),
                    check: g.table_check as u32,
                },
            );
            let aliases = match self.births.find(&self.store, &key).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look up a birth; retrying");
                    continue;
                }
            };
            let expired_before = now_ms() - wait_ms;
            let rows = match &aliases {
                Some(_) => self.store.parked(&g, None, parking::ROWS_PER_SCAN).await,
                None if g.oldest_ms < expired_before => {
                    self.store
                        .parked(&g, Some(expired_before), parking::ROWS_PER_SCAN)
                        .await
                }
                None => continue,
            };
            let rows = match rows {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read parked telemetry; retrying");
                    continue;
                }
            };
            for row in rows {
                if !self.parking.hand_over(row.id, now) {
                    continue;
                }
                let m = row.message;
                let content = match &aliases {
                    Some(a) => {
                        classify_aliased(&self.rules, &m.topic, &m.payload, m.received_ms, Some(a))
                    }
                    None => classify::dead_letter(
                        &m.topic,
                        &m.payload,
                        m.received_ms,
                        "unknown_birth",
                        format!(
                            "the batch names series by the aliases of the birth of gateway {:?} \
                             with config hash {:?} (table check {:08x}), which did not arrive \
                             within {} s",
                            m.gateway.as_str(),
                            m.config_hash,
                            g.table_check,
                            self.births.wait().as_secs_f64()
                        ),
                    ),
                };
                let origin = Origin::Parked {
                    id: row.id,
                    topic: m.topic,
                    payload: m.payload,
                };
                if !self.forward(origin, now, m.received_ms, content).await {
                    return false;
                }
            }
        }
        true
    }

    /// Charges a message from the broker to its gateway's quota (statuses are free): asks the
    /// gateway to slow down when it is over, and past the grace turns the message into a drop.
    fn charge(
        &mut self,
        topic: &str,
        payload: &[u8],
        received: Instant,
        received_ms: i64,
        content: Content,
    ) -> Content {
        let points = match &content {
            Content::Status { .. } | Content::Ignore => return content,
            Content::Telemetry { points, .. } => points.len(),
            _ => 0,
        };
        // Dead letters are charged to the gateway their topic names.
        let gateway = match content.gateway() {
            Some(g) => g.clone(),
            None => match self.rules.prefix.parse(topic) {
                Ok(t) => t.gateway,
                Err(_) => return content,
            },
        };
        let v = self.quotas.charge(&gateway, points, received);
        if v.slow_down {
            self.slow_down(&gateway);
        }
        if !v.over {
            return content;
        }
        if v.store {
            self.metrics
                .quota_messages
                .get_or_create(&vec![("outcome", "stored".to_string())])
                .inc();
            return content;
        }
        self.metrics
            .quota_messages
            .get_or_create(&vec![("outcome", "dropped".to_string())])
            .inc();
        self.metrics.quota_dropped_points.inc_by(points as u64);
        let q = self.quotas.settings();
        let sample = v.sample.then(|| {
            classify::dead_letter_row(
                topic,
                payload,
                received_ms,
                "over_quota",
                format!(
                    "gateway {:?} sent past its quota ({} points/s, {} messages/s) for longer \
                     than the grace of {} s; its messages are dropped and counted while it \
                     stays over, this one kept as a sample",
                    gateway.as_str(),
                    q.points_per_s,
                    q.messages_per_s,
                    q.grace.as_secs()
                ),
            )
        });
        if v.sample {
            tracing::warn!(gateway = ?gateway.as_str(), "gateway over its quota past the grace; \
                dropping what it sends beyond its rate");
        }
        Content::OverQuota {
            gateway,
            points,
            sample,
        }
    }

    /// Asks `gateway` to send no faster than its quota (with a margin) for a while. Advisory:
    /// a request that cannot be queued is counted as not sent; the next one follows soon.
    fn slow_down(&mut self, gateway: &Ident) {
        let q = *self.quotas.settings();
        let request = fieldlink_protocol::Control::SlowDown {
            points_per_s: (q.points_per_s / 10 * 9).max(1),
            messages_per_s: (q.messages_per_s / 10 * 9).max(1),
            for_ms: (quota::SLOW_DOWN_EVERY * 2).as_millis() as u64,
        };
        if self.send_control(gateway, &request) {
            self.metrics.quota_slow_downs.inc();
            tracing::info!(gateway = ?gateway.as_str(), points_per_s = q.points_per_s,
                messages_per_s = q.messages_per_s, "gateway over its quota; asked to slow down");
        }
    }

    /// Queues `message` on `gateway`'s control topic (QoS 1, not retained); false, logged, when
    /// it cannot be queued. Control messages are advisory, so one that is not sent is not
    /// retried here.
    fn send_control(&mut self, gateway: &Ident, message: &fieldlink_protocol::Control) -> bool {
        let payload = match fieldlink_protocol::json::encode(message) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a control message");
                return false;
            }
        };
        let topic = self
            .rules
            .prefix
            .topic(gateway, fieldlink_protocol::TopicKind::Control);
        match self
            .control
            .try_publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, gateway = ?gateway.as_str(),
                    "could not queue a control message");
                false
            }
        }
    }

    /// Checks registration, counts, and hands a classified message to the writer. False when
    /// the writer is gone.
    async fn forward(
        &mut self,
        origin: Origin,
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
                            origin.topic(),
                            origin.payload(),
                            received_ms,
                            "unregistered",
                            format!("gateway {:?} is not registered", gw.as_str()),
                        );
                    }
                    Err(e) => {
                        // Unknown for now: leave it unacknowledged (or parked); the broker
                        // redelivers it after the next reconnect.
                        tracing::warn!(error = ?e.to_string(), gateway = ?gw.as_str(),
                            "could not check registration; message left unacknowledged");
                        if matches!(origin, Origin::Broker(_)) {
                            metrics.unacked_messages.dec();
                        }
                        return true;
                    }
                }
            }
        }
        if matches!(origin, Origin::Broker(_)) {
            content = self.charge(
                origin.topic(),
                origin.payload(),
                received,
                received_ms,
                content,
            );
        }
        let metrics = &self.metrics;
        match &content {
            Content::Telemetry { points, .. } => {
                metrics.message("telemetry");
                metrics.points_received.inc_by(points.len() as u64);
            }
            Content::Status { .. } => metrics.message("status"),
            Content::Event(..) => metrics.message("events"),
            Content::Ack(_) => metrics.message("ack"),
            Content::Ignore => metrics.message("ignored"),
            Content::Parked(_) => metrics.message("parked"),
            Content::OverQuota { .. } => metrics.message("over_quota"),
            Content::Dead(d) => {
                metrics.message("dead_letter");
                metrics.dead_letter(&d.reason);
                tracing::info!(topic = ?d.topic, reason = ?d.reason, detail = ?d.detail,
                    "message dead-lettered");
            }
        }
        let item = Item {
            origin,
            received,
            received_ms,
            content,
        };
        self.tx.send(item).await.is_ok()
    }
}
