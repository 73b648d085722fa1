//! The MQTT uplink: one task that owns the rumqttc event loop and drains the journal.
//!
//! # What it guarantees
//! - A journal batch is acknowledged (deleted) only on the PUBACK of the very publish that
//!   carried it; see [`window`] for how packet ids are correlated with our publishes.
//! - At most `max_in_flight` journal batches await their PUBACK; the journal hands out live data
//!   before backlog, giving backlog its configured share, so a long backlog drains alongside
//!   live readings instead of ahead of them.
//! - Persistent session (`clean_session = false`), QoS 1, the retained `offline` status as the
//!   will, a retained birth after every CONNACK, and the command subscription renewed each time.
//! - Reconnects back off exponentially with jitter.
//! - A cloud over whose quota this gateway went asks it to slow down on its control topic; the
//!   uplink then sends at no more than the rates asked for until the request lapses ([`pace`]).
//!   What it holds back stays in the journal, so slowing down loses nothing.
//!
//! # Reconnects
//! rumqttc, after a connection error, would resend its unacknowledged publishes itself on a
//! resumed session, and silently drop them (and anything still queued) when the session is not
//! resumed. Either way our correlation would lose track of which packet carries which batch.
//! So the uplink takes ownership of resends: at every connection error it empties rumqttc's
//! resend queue (`EventLoop::pending`) and queued events, forgets its window, and after the next
//! CONNACK asks the journal to requeue everything in flight, which it then publishes again with
//! fresh packet ids. A batch whose PUBACK was lost with the connection is therefore sent twice;
//! both copies carry the same readings, which the cloud stores once.
//!
//! All our requests are pushed straight onto the event loop's queue from this task, so nothing
//! can slip between an error and the clean-up.
//!
//! # Series aliases
//! In the binary encoding, telemetry names the series of the birth by alias (the protocol's
//! aliased form): each connection's batches use the table of the birth last queued on that
//! connection, which the broker delivers before them. Series not in that birth go by name in the
//! same payload. The cloud keeps every birth by (gateway, config hash), so a batch written
//! against an earlier birth of the same connection still reads after a configuration change.

mod backoff;
mod pace;
pub mod tls;
mod window;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fieldlink_buffer::{Batch, BatchBody, BatchLimits, Journal, RecordClass};
use fieldlink_protocol::{
    encode_telemetry, encode_telemetry_aliased, json, Birth, Control, Death, Encoding, Ident,
    SeriesAliases, Status, TelemetryBatch, TopicKind,
};
use rumqttc::{
    AsyncClient, Disconnect, Event, EventLoop, Incoming, LastWill, MqttOptions, Outgoing, PubAck,
    Publish, QoS, Request, Subscribe, TlsConfiguration, Transport,
};
use rumqttc_ring as rumqttc;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use backoff::Backoff;
pub use window::{Tag, Window, WindowError};

use crate::config::MqttConfig;
use crate::health::Heartbeat;

/// A command publish received from the broker, not yet acknowledged to it.
#[derive(Debug)]
pub struct Delivery {
    pub payload: Vec<u8>,
    pub pkid: u16,
    /// The connection it came on; a PUBACK is only valid on the same connection.
    pub connection: u64,
}

/// What other tasks ask of the uplink.
#[derive(Debug)]
pub enum UplinkRequest {
    /// The command of this delivery is journaled: PUBACK it so the broker stops redelivering.
    Acknowledge { connection: u64, pkid: u16 },
}

/// Counters for self-telemetry, benchmarks and tests.
#[derive(Debug, Default)]
pub struct UplinkStats {
    pub connects: AtomicU64,
    pub batches_acked: AtomicU64,
    /// Telemetry points handed to rumqttc (resends included).
    pub points_published: AtomicU64,
    pub connected: std::sync::atomic::AtomicBool,
    /// Slow-down requests received from the cloud.
    pub slow_downs: AtomicU64,
}

/// Why the uplink could not start.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot encode the status message: {0}")]
    Encode(#[from] fieldlink_protocol::EncodeError),
}

/// Everything the uplink task needs.
pub struct Uplink {
    pub mqtt: MqttConfig,
    pub gateway: Ident,
    pub boot_epoch: u64,
    pub journal: Journal,
    /// For the event that reports a batch that could not be encoded.
    pub outbox: crate::events::Outbox,
    pub wake: Arc<Notify>,
    pub birth: watch::Receiver<Arc<Birth>>,
    pub deliveries: mpsc::Sender<Delivery>,
    pub requests: mpsc::Receiver<UplinkRequest>,
    pub heartbeat: Heartbeat,
    pub stats: Arc<UplinkStats>,
    /// How long the shutdown may wait for the offline status and outstanding PUBACKs.
    pub shutdown_wait: Duration,
}

/// Live state of the task.
struct Link {
    el: EventLoop,
    /// Kept so rumqttc's request channel stays open; all requests go through `el.pending`.
    _client: AsyncClient,
    window: Window,
    connected: bool,
    connection: u64,
    seq: u64,
    status_topic: String,
    cmd_topic: String,
    control_topic: String,
    /// The pace the cloud asked for, while it holds.
    pace: Option<pace::Pace>,
    /// The alias table of the birth last queued on this connection; none before it.
    aliases: Option<Arc<SeriesAliases>>,
}

impl Link {
    fn publish(&mut self, topic: &str, payload: Vec<u8>, retain: bool, tag: Tag) {
        let mut p = Publish::new(topic, QoS::AtLeastOnce, payload);
        p.retain = retain;
        self.el.pending.push_back(Request::Publish(p));
        self.window.queued(tag);
    }

    /// Forgets everything rumqttc would otherwise resend or report from a dead connection.
    fn forget(&mut self) {
        self.el.pending.clear();
        self.el.state.events.clear();
        self.window.clear();
        self.connected = false;
        self.aliases = None;
    }
}

impl Uplink {
    fn options(&self) -> Result<MqttOptions, UplinkError> {
        let m = &self.mqtt;
        let mut o = MqttOptions::new(m.client_id.clone(), m.host.clone(), m.port);
        o.set_keep_alive(m.keep_alive)
            .set_clean_session(false)
            .set_manual_acks(true)
            // Packet ids cycle through this many; four times our window keeps a slow PUBACK from
            // ever meeting its id reused.
            .set_inflight((m.max_in_flight * 4 + 8).min(u16::MAX as usize) as u16)
            .set_max_packet_size(512 * 1024, 512 * 1024)
            .set_pending_throttle(Duration::ZERO);
        if let Some((u, p)) = &m.credentials {
            o.set_credentials(u.clone(), p.clone());
        }
        let death = Status::Offline(Death {
            gateway: self.gateway.clone(),
            boot_epoch: self.boot_epoch,
        });
        o.set_last_will(LastWill::new(
            m.prefix.topic(&self.gateway, TopicKind::Status),
            json::encode(&death)?,
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(t) = &m.tls {
            let config = tls::client_config(t)?;
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(config),
            )));
        }
        Ok(o)
    }

    /// Runs until `cancel`, then publishes `offline`, waits (bounded) for outstanding PUBACKs
    /// and disconnects.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), UplinkError> {
        let options = self.options()?;
        let (client, mut el) = AsyncClient::new(options, 16);
        // Nagle's algorithm off: an acknowledgement or a PUBACK is a small write that would
        // otherwise wait for the broker's delayed ACK of the previous one (about 40 ms on Linux).
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        el.set_network_options(net);
        let mut link = Link {
            el,
            _client: client,
            window: Window::default(),
            connected: false,
            connection: 0,
            seq: 0,
            status_topic: self.mqtt.prefix.topic(&self.gateway, TopicKind::Status),
            cmd_topic: self.mqtt.prefix.topic(&self.gateway, TopicKind::Cmd),
            control_topic: self.mqtt.prefix.topic(&self.gateway, TopicKind::Control),
            pace: None,
            aliases: None,
        };
        let mut backoff = Backoff::new(self.mqtt.reconnect_min, self.mqtt.reconnect_max);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tracing::info!(host = %self.mqtt.host, port = self.mqtt.port,
            tls = self.mqtt.tls.is_some(), "uplink starting");
        'run: loop {
            self.heartbeat.beat();
            let mut paced_until = None;
            if link.connected {
                paced_until = self.fill(&mut link).await;
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break 'run,
                ev = link.el.poll() => match ev {
                    Ok(ev) => {
                        if let Err(e) = self.on_event(&mut link, ev).await {
                            tracing::warn!(error = %e, "publish bookkeeping broken; reconnecting");
                            link.el.clean();
                            link.forget();
                        }
                    }
                    Err(e) => {
                        if link.connected {
                            tracing::warn!(error = %e, "broker connection lost");
                        } else {
                            tracing::info!(error = %e, "cannot connect to the broker");
                        }
                        link.forget();
                        self.stats.connected.store(false, Ordering::Relaxed);
                        let until = Instant::now() + backoff.next_delay();
                        while Instant::now() < until {
                            self.heartbeat.beat();
                            let step = until.min(Instant::now() + Duration::from_secs(1));
                            tokio::select! {
                                _ = cancel.cancelled() => break 'run,
                                _ = tokio::time::sleep_until(step) => {}
                            }
                        }
                        self.drop_stale_requests();
                    }
                },
                Some(req) = self.requests.recv() => self.on_request(&mut link, req),
                changed = self.birth.changed() => {
                    if changed.is_ok() && link.connected {
                        self.publish_birth(&mut link)?;
                    }
                }
                _ = self.wake.notified() => {}
                _ = tick.tick() => {}
                _ = sleep_until_some(paced_until) => {}
            }
            if link.connected {
                backoff.reset();
            }
        }
        self.shutdown(&mut link).await
    }

    /// After a disconnect no earlier delivery can be acknowledged.
    fn drop_stale_requests(&mut self) {
        while self.requests.try_recv().is_ok() {}
    }

    fn on_request(&mut self, link: &mut Link, req: UplinkRequest) {
        match req {
            UplinkRequest::Acknowledge { connection, pkid } => {
                if link.connected && connection == link.connection {
                    link.el
                        .pending
                        .push_back(Request::PubAck(PubAck::new(pkid)));
                }
            }
        }
    }

    fn publish_birth(&mut self, link: &mut Link) -> Result<(), UplinkError> {
        let mut birth = (**self.birth.borrow_and_update()).clone();
        birth.ts_ms = crate::clock::wall_ms().max(0);
        let aliases = SeriesAliases::from_birth(&birth);
        let payload = json::encode(&Status::Online(birth))?;
        let topic = link.status_topic.clone();
        link.publish(&topic, payload, true, Tag::Status);
        link.aliases = Some(Arc::new(aliases));
        Ok(())
    }

    async fn on_event(&mut self, link: &mut Link, ev: Event) -> Result<(), WindowError> {
        match ev {
            Event::Incoming(Incoming::ConnAck(ack)) => {
                link.connection += 1;
                link.forget();
                link.connected = true;
                self.stats.connected.store(true, Ordering::Relaxed);
                self.stats.connects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                if let Err(e) = self.journal.requeue_in_flight().await {
                    tracing::error!(error = %e, "journal requeue failed");
                }
                for topic in [link.cmd_topic.clone(), link.control_topic.clone()] {
                    link.el
                        .pending
                        .push_back(Request::Subscribe(Subscribe::new(topic, QoS::AtLeastOnce)));
                }
                if let Err(e) = self.publish_birth(link) {
                    tracing::error!(error = %e, "birth message not published");
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => link.window.written(pkid)?,
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => {
                // The broker left an old publish unacknowledged while we wrapped around.
                return Err(WindowError::Reused(pkid));
            }
            Event::Incoming(Incoming::PubAck(ack)) => {
                if let Some(Tag::Batch(id)) = link.window.acked(ack.pkid) {
                    match self.journal.ack(id).await {
                        Ok(_) => {
                            self.stats.batches_acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => tracing::error!(error = %e, batch = %id, "journal ack failed"),
                    }
                }
            }
            Event::Incoming(Incoming::Publish(p)) => {
                if p.topic == link.cmd_topic {
                    let delivery = Delivery {
                        payload: p.payload.to_vec(),
                        pkid: p.pkid,
                        connection: link.connection,
                    };
                    if self.deliveries.try_send(delivery).is_err() {
                        // Not acknowledged: the broker delivers it again after a reconnect.
                        tracing::warn!("command queue full; command left for redelivery");
                    }
                } else if p.topic == link.control_topic {
                    self.on_control(link, &p.payload);
                    if p.pkid != 0 {
                        link.el
                            .pending
                            .push_back(Request::PubAck(PubAck::new(p.pkid)));
                    }
                } else if p.pkid != 0 {
                    link.el
                        .pending
                        .push_back(Request::PubAck(PubAck::new(p.pkid)));
                }
            }
            Event::Incoming(Incoming::SubAck(s)) => {
                tracing::debug!(codes = ?s.return_codes, "subscribed to commands");
            }
            _ => {}
        }
        Ok(())
    }

    /// Takes a flow-control request from the cloud. One that does not decode is logged and
    /// ignored: it asks for nothing this agent understands.
    fn on_control(&mut self, link: &mut Link, payload: &[u8]) {
        match json::decode::<Control>(payload) {
            Ok(Control::SlowDown {
                points_per_s,
                messages_per_s,
                for_ms,
            }) => {
                self.stats.slow_downs.fetch_add(1, Ordering::Relaxed);
                if link.pace.is_none() {
                    tracing::info!(
                        points_per_s,
                        messages_per_s,
                        for_ms,
                        "the cloud asked to slow down; holding readings back in the journal"
                    );
                }
                link.pace = Some(pace::Pace::new(
                    points_per_s,
                    messages_per_s,
                    Duration::from_millis(for_ms),
                    Instant::now(),
                ));
            }
            Err(e) => tracing::warn!(error = %e, "ignoring a control message that does not decode"),
        }
    }

    /// Publishes journal batches until the window is full, the journal has nothing pending, or
    /// the pace the cloud asked for holds the next one back; then returns when that will be.
    async fn fill(&mut self, link: &mut Link) -> Option<Instant> {
        let mut limits = BatchLimits {
            max_points: self.mqtt.batch_max_points,
            max_bytes: 256 * 1024,
        };
        while link.window.batches() < self.mqtt.max_in_flight {
            let now = Instant::now();
            if let Some(p) = &mut link.pace {
                if !p.active(now) {
                    tracing::info!("the cloud's slow-down lapsed; sending at full rate");
                    link.pace = None;
                } else {
                    let at = p.next_send(now);
                    if at > now {
                        return Some(at);
                    }
                    limits.max_points = limits.max_points.min(p.max_batch_points().max(1));
                }
            }
            let batch = match self.journal.next_batch(limits).await {
                Ok(Some(b)) => b,
                Ok(None) => return None,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the journal");
                    return None;
                }
            };
            let points = self.publish_batch(link, batch).await;
            if let Some(p) = &mut link.pace {
                p.spend(points, Instant::now());
            }
        }
        None
    }

    /// Publishes one batch; returns the telemetry points it carried.
    async fn publish_batch(&mut self, link: &mut Link, batch: Batch) -> u64 {
        let id = batch.id;
        let (kind, payload, points) = match batch.body {
            BatchBody::Telemetry { points, historical } => {
                link.seq += 1;
                let n = points.len() as u64;
                let tb = TelemetryBatch {
                    gateway: self.gateway.clone(),
                    boot_epoch: self.boot_epoch,
                    seq: link.seq,
                    historical,
                    points,
                };
                let encoded = match (self.mqtt.encoding, &link.aliases) {
                    (Encoding::Binary, Some(a)) => {
                        encode_telemetry_aliased(&tb, Encoding::Binary, a)
                    }
                    (encoding, _) => encode_telemetry(&tb, encoding),
                };
                match encoded {
                    Ok(bytes) => (TopicKind::Telemetry, bytes, n),
                    Err(e) => {
                        // Cannot ever be sent: drop it from the journal, loudly.
                        tracing::error!(error = %e, points = n, batch = %id,
                            "telemetry batch cannot be encoded; dropped");
                        self.outbox
                            .event_or_log(fieldlink_protocol::EventKind::Error {
                                device: None,
                                message: format!("{n} readings dropped: cannot encode: {e}")
                                    .chars()
                                    .take(1000)
                                    .collect(),
                            })
                            .await;
                        let _ = self.journal.ack(id).await;
                        return 0;
                    }
                }
            }
            BatchBody::Record { class, payload, .. } => {
                let kind = match class {
                    RecordClass::Ack => TopicKind::Ack,
                    RecordClass::Event => TopicKind::Events,
                };
                (kind, payload, 0)
            }
        };
        let topic = self.mqtt.prefix.topic(&self.gateway, kind);
        link.publish(&topic, payload, false, Tag::Batch(id));
        self.stats
            .points_published
            .fetch_add(points, Ordering::Relaxed);
        points
    }

    async fn shutdown(&mut self, link: &mut Link) -> Result<(), UplinkError> {
        self.stats.connected.store(false, Ordering::Relaxed);
        if !link.connected {
            tracing::info!("uplink stopped (not connected)");
            return Ok(());
        }
        let death = Status::Offline(Death {
            gateway: self.gateway.clone(),
            boot_epoch: self.boot_epoch,
        });
        let topic = link.status_topic.clone();
        link.publish(&topic, json::encode(&death)?, true, Tag::Status);
        let deadline = Instant::now() + self.shutdown_wait;
        let mut disconnecting = false;
        loop {
            if !disconnecting && link.window.is_empty() {
                link.el.pending.push_back(Request::Disconnect(Disconnect));
                disconnecting = true;
            }
            let ev = tokio::select! {
                ev = link.el.poll() => ev,
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(outstanding = link.window.len(), "shutdown wait over");
                    break;
                }
            };
            match ev {
                Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                Ok(ev) => {
                    if self.on_event(link, ev).await.is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        tracing::info!("uplink stopped: offline published, disconnected");
        Ok(())
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
