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
//! # Session and adapter
//! What to do on each event of the connection is decided by [`session`], a pure state machine
//! with its own tests; this module is the adapter that owns rumqttc's event loop and the
//! journal and carries out the session's actions. A connection attempt runs uninterrupted to
//! `mqtt.connect_timeout_s` whatever else happens meanwhile (a journal commit, a tick), so a
//! link with a round trip of seconds still connects; every attempt's outcome is logged once.
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
//! # Request order
//! Every publish goes, in the order the session queued it, through rumqttc's request channel,
//! behind an overflow queue of our own when the channel is full; that order is what lets the
//! window bind packet ids to our publishes. rumqttc takes a request from the channel as soon as
//! it is there, whereas each request on its resend queue waits for a timer first (about a
//! millisecond each, which under load added up to most of the poll → broker latency).
//! Acknowledgements, subscriptions and the final disconnect, whose place relative to publishes
//! does not matter (the disconnect is queued only once every publish is acknowledged), go on
//! the resend queue, which rumqttc serves first. Publishes are only queued while the session
//! is up, and at a connection error rumqttc moves whatever the channel still holds onto its
//! resend queue, which we then empty with our overflow: nothing from a dead connection is sent
//! on the next one.
//!
//! # Series aliases
//! In the binary encoding, telemetry names the series of the birth by alias (the protocol's
//! aliased form): each connection's batches use the table of the birth last queued on that
//! connection, which the broker delivers before them. Series not in that birth go by name in the
//! same payload. The cloud keeps every birth by (gateway, config hash), so a batch written
//! against an earlier birth of the same connection still reads after a configuration change.

mod pace;
pub mod session;
pub mod tls;
mod window;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fieldlink_buffer::{Batch, BatchBody, BatchLimits, Journal, RecordClass};
use fieldlink_plumbing::backoff::Backoff;
use fieldlink_protocol::{
    binary, encode_telemetry, encode_telemetry_aliased, json, Birth, Death, Encoding, Ident,
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

pub use window::{Tag, Window, WindowError};

use session::{
    Action, Budget, Event as SessionEvent, Phase, Report, Session, SessionSettings, Subscription,
};

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

/// Live state of the task: rumqttc's event loop and what only the adapter needs.
struct Link {
    el: EventLoop,
    /// The sending end of rumqttc's request channel, for publishes.
    client: AsyncClient,
    /// Publishes the channel had no room for, oldest first; moved on before every poll.
    overflow: VecDeque<Publish>,
    session: Session,
    seq: u64,
    status_topic: String,
    cmd_topic: String,
    control_topic: String,
    /// The alias table of the birth last queued on this connection; none before it.
    aliases: Option<Arc<SeriesAliases>>,
}

impl Link {
    fn publish(&mut self, topic: &str, payload: Vec<u8>, retain: bool, tag: Tag, points: u64) {
        let mut p = Publish::new(topic, QoS::AtLeastOnce, payload);
        p.retain = retain;
        self.overflow.push_back(p);
        self.move_overflow();
        self.session.queued(tag, points, Instant::now());
    }

    /// Moves publishes from the overflow into rumqttc's channel while it has room, in order.
    /// A publish comes back only when the channel is full (our topics are valid by
    /// construction: `TopicPrefix` and `Ident` exclude wildcards), and waits at the front.
    fn move_overflow(&mut self) {
        use rumqttc::ClientError;
        while let Some(p) = self.overflow.pop_front() {
            match self.client.try_publish(p.topic, p.qos, p.retain, p.payload) {
                Ok(()) => {}
                Err(ClientError::TryRequest(Request::Publish(back))) => {
                    self.overflow.push_front(back);
                    return;
                }
                // `try_publish` hands back the publish itself and nothing else.
                Err(_) => return,
            }
        }
    }

    /// Forgets everything rumqttc would otherwise resend or report from a dead connection.
    fn forget(&mut self) {
        self.overflow.clear();
        self.el.pending.clear();
        self.el.state.events.clear();
        self.aliases = None;
    }
}

/// How a connection attempt driven by [`drive_connect`] ended.
enum Attempt {
    Cancelled,
    TimedOut,
    Polled(Result<Event, rumqttc::ConnectionError>),
}

/// Drives one connection attempt to its end: only a stop or the attempt's own deadline cut it
/// short. The heartbeat keeps beating meanwhile, so a slow link is not a stalled agent.
async fn drive_connect(
    el: &mut EventLoop,
    deadline: Instant,
    heartbeat: &Heartbeat,
    cancel: &CancellationToken,
) -> Attempt {
    let poll = el.poll();
    tokio::pin!(poll);
    loop {
        heartbeat.beat();
        let step = deadline.min(Instant::now() + Duration::from_secs(1));
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Attempt::Cancelled,
            r = &mut poll => return Attempt::Polled(r),
            _ = tokio::time::sleep_until(step) => {
                if Instant::now() >= deadline {
                    return Attempt::TimedOut;
                }
            }
        }
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
        // Room for a full window of batches, the birth and the statuses queued beside them.
        let (client, mut el) = AsyncClient::new(options, self.mqtt.max_in_flight + 8);
        // Nagle's algorithm off: an acknowledgement or a PUBACK is a small write that would
        // otherwise wait for the broker's delayed ACK of the previous one (about 40 ms on Linux).
        // rumqttc's own connect timeout is the session's, so the session decides.
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(self.mqtt.connect_timeout.as_secs().max(1));
        el.set_network_options(net);
        let cmd_topic = self.mqtt.prefix.topic(&self.gateway, TopicKind::Cmd);
        let control_topic = self.mqtt.prefix.topic(&self.gateway, TopicKind::Control);
        let session = Session::new(
            SessionSettings {
                connect_timeout: self.mqtt.connect_timeout,
                max_in_flight: self.mqtt.max_in_flight,
                cmd_topic: cmd_topic.clone(),
                control_topic: control_topic.clone(),
            },
            Backoff::jittered(self.mqtt.reconnect),
            Instant::now(),
        );
        let mut link = Link {
            el,
            client,
            overflow: VecDeque::new(),
            session,
            seq: 0,
            status_topic: self.mqtt.prefix.topic(&self.gateway, TopicKind::Status),
            cmd_topic,
            control_topic,
            aliases: None,
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tracing::info!(broker = %self.broker(), tls = self.mqtt.tls.is_some(),
            connect_timeout_s = self.mqtt.connect_timeout.as_secs(), "uplink starting");
        'run: loop {
            self.heartbeat.beat();
            let actions = link.session.on_time(Instant::now());
            self.execute(&mut link, actions).await?;
            match link.session.phase() {
                Phase::Connecting { since } => {
                    let deadline = since + self.mqtt.connect_timeout;
                    match drive_connect(&mut link.el, deadline, &self.heartbeat, &cancel).await {
                        Attempt::Cancelled => break 'run,
                        // The session reports it at the top of the loop.
                        Attempt::TimedOut => {}
                        Attempt::Polled(r) => self.polled(&mut link, r).await?,
                    }
                    continue;
                }
                Phase::Down { retry_at } => {
                    let step = retry_at.min(Instant::now() + Duration::from_secs(1));
                    tokio::select! {
                        _ = cancel.cancelled() => break 'run,
                        _ = tokio::time::sleep_until(step) => {}
                    }
                    if Instant::now() >= retry_at {
                        self.drop_stale_requests();
                    }
                    continue;
                }
                Phase::Up { .. } => {}
            }
            let paced_until = self.fill(&mut link).await?;
            link.move_overflow();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break 'run,
                r = link.el.poll() => self.polled(&mut link, r).await?,
                Some(req) = self.requests.recv() => self.on_request(&mut link, req),
                changed = self.birth.changed() => {
                    if changed.is_ok() && link.session.is_up() {
                        self.publish_birth(&mut link)?;
                    }
                }
                _ = self.wake.notified() => {}
                _ = tick.tick() => {}
                _ = sleep_until_some(paced_until) => {}
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
                if let Some(Action::PubAck(pkid)) = link.session.acknowledge(connection, pkid) {
                    link.el
                        .pending
                        .push_back(Request::PubAck(PubAck::new(pkid)));
                }
            }
        }
    }

    /// Feeds what rumqttc's poll returned to the session and carries out its answer.
    async fn polled(
        &mut self,
        link: &mut Link,
        r: Result<Event, rumqttc::ConnectionError>,
    ) -> Result<(), UplinkError> {
        let now = Instant::now();
        let actions = match r {
            Err(e) => link.session.on_event(
                SessionEvent::Failed {
                    cause: e.to_string(),
                },
                now,
            ),
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                let event = if ack.code == rumqttc::ConnectReturnCode::Success {
                    SessionEvent::ConnAck {
                        session_present: ack.session_present,
                    }
                } else {
                    SessionEvent::Refused {
                        code: format!("{:?}", ack.code),
                    }
                };
                link.session.on_event(event, now)
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                link.session.on_event(SessionEvent::Written(pkid), now)
            }
            Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => {
                link.session.on_event(SessionEvent::AwaitAck(pkid), now)
            }
            Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                link.session.on_event(SessionEvent::PubAck(ack.pkid), now)
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => link.session.on_event(
                SessionEvent::Incoming {
                    topic: &p.topic,
                    pkid: p.pkid,
                    payload: &p.payload,
                },
                now,
            ),
            Ok(Event::Incoming(Incoming::SubAck(s))) => {
                tracing::debug!(codes = ?s.return_codes, "subscribed");
                Vec::new()
            }
            Ok(_) => Vec::new(),
        };
        self.execute(link, actions).await
    }

    /// Carries out the session's actions, in order.
    async fn execute(&mut self, link: &mut Link, actions: Vec<Action>) -> Result<(), UplinkError> {
        for action in actions {
            match action {
                // The phase says so; the loop drives the attempt.
                Action::Connect { .. } => {}
                Action::Forget => link.forget(),
                Action::Drop => {
                    link.el.clean();
                    link.forget();
                }
                Action::Requeue => {
                    if let Err(e) = self.journal.requeue_in_flight().await {
                        tracing::error!(error = %e, "journal requeue failed");
                    }
                }
                Action::Subscribe(which) => {
                    let topic = match which {
                        Subscription::Commands => link.cmd_topic.clone(),
                        Subscription::Control => link.control_topic.clone(),
                    };
                    link.el
                        .pending
                        .push_back(Request::Subscribe(Subscribe::new(topic, QoS::AtLeastOnce)));
                }
                Action::PublishBirth => self.publish_birth(link)?,
                Action::PubAck(pkid) => link
                    .el
                    .pending
                    .push_back(Request::PubAck(PubAck::new(pkid))),
                Action::AckBatch(id) => match self.journal.ack(id).await {
                    Ok(_) => {
                        self.stats.batches_acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => tracing::error!(error = %e, batch = %id, "journal ack failed"),
                },
                Action::Deliver {
                    payload,
                    pkid,
                    connection,
                } => {
                    let delivery = Delivery {
                        payload,
                        pkid,
                        connection,
                    };
                    if self.deliveries.try_send(delivery).is_err() {
                        // Not acknowledged: the broker delivers it again after a reconnect.
                        tracing::warn!("command queue full; command left for redelivery");
                    }
                }
                Action::Report(r) => self.report(r),
            }
        }
        Ok(())
    }

    /// The broker as `host:port` (an IPv6 address in brackets), for the log lines of every
    /// attempt's outcome: a refused or timed-out connection says where it was going.
    fn broker(&self) -> String {
        let host = &self.mqtt.host;
        if host.contains(':') {
            format!("[{host}]:{}", self.mqtt.port)
        } else {
            format!("{host}:{}", self.mqtt.port)
        }
    }

    fn report(&self, r: Report) {
        match r {
            Report::Connected {
                attempt,
                took,
                session_present,
            } => {
                self.stats.connected.store(true, Ordering::Relaxed);
                self.stats.connects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    broker = %self.broker(),
                    attempt,
                    took_ms = took.as_millis() as u64,
                    session_present,
                    "connected to the broker"
                );
            }
            Report::AttemptFailed {
                attempt,
                took,
                cause,
                retry_in,
            } => {
                self.stats.connected.store(false, Ordering::Relaxed);
                tracing::warn!(broker = %self.broker(), attempt,
                    took_ms = took.as_millis() as u64, cause = ?cause,
                    retry_in_ms = retry_in.as_millis() as u64, "cannot connect to the broker");
            }
            Report::Lost {
                after,
                cause,
                retry_in,
            } => {
                self.stats.connected.store(false, Ordering::Relaxed);
                tracing::warn!(broker = %self.broker(), after_s = after.as_secs(), cause = ?cause,
                    retry_in_ms = retry_in.as_millis() as u64, "broker connection lost");
            }
            Report::SlowDown {
                points_per_s,
                messages_per_s,
                for_ms,
            } => {
                self.stats.slow_downs.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    points_per_s,
                    messages_per_s,
                    for_ms,
                    "the cloud asked to slow down; holding readings back in the journal"
                );
            }
            Report::ControlUndecodable(e) => {
                tracing::warn!(error = ?e, "ignoring a control message that does not decode")
            }
            Report::PaceLapsed => {
                tracing::info!("the cloud's slow-down lapsed; sending at full rate")
            }
            Report::Layouts(l) => {
                tracing::info!(
                    binary_layout = l.binary,
                    json_layout = l.json,
                    "the cloud announced the telemetry layouts it reads; telemetry goes out in \
                    these layout versions"
                )
            }
        }
    }

    fn publish_birth(&mut self, link: &mut Link) -> Result<(), UplinkError> {
        let mut birth = (**self.birth.borrow_and_update()).clone();
        birth.ts_ms = crate::clock::wall_ms().max(0);
        let aliases = SeriesAliases::from_birth(&birth);
        let payload = json::encode(&Status::Online(birth))?;
        let topic = link.status_topic.clone();
        link.publish(&topic, payload, true, Tag::Status, 0);
        link.aliases = Some(Arc::new(aliases));
        Ok(())
    }

    /// Publishes journal batches while the session's budget allows; returns when the pace the
    /// cloud asked for lets the next one go, if that is what holds it back.
    async fn fill(&mut self, link: &mut Link) -> Result<Option<Instant>, UplinkError> {
        loop {
            let (budget, reports) = link.session.budget(Instant::now());
            self.execute(link, reports).await?;
            let (batches, max_points) = match budget {
                Budget::Full => return Ok(None),
                Budget::PacedUntil(at) => return Ok(Some(at)),
                Budget::Send {
                    batches,
                    max_points,
                } => (batches, max_points),
            };
            let limits = BatchLimits {
                max_points: max_points.map_or(self.mqtt.batch_max_points, |m| {
                    m.min(self.mqtt.batch_max_points)
                }),
                max_bytes: 256 * 1024,
            };
            for _ in 0..batches {
                let batch = match self.journal.next_batch(limits).await {
                    Ok(Some(b)) => b,
                    Ok(None) => return Ok(None),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the journal");
                        return Ok(None);
                    }
                };
                self.publish_batch(link, batch).await;
            }
        }
    }

    async fn publish_batch(&mut self, link: &mut Link, batch: Batch) {
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
                    (Encoding::Binary, Some(a))
                        if link.session.layouts().binary == binary::VERSION_PACKED =>
                    {
                        binary::encode_packed(&tb, a)
                    }
                    (Encoding::Json, Some(a))
                        if link.session.layouts().json == json::VERSION_ALIASED =>
                    {
                        json::encode_aliased(&tb, a)
                    }
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
                                message: fieldlink_protocol::clip_text(format!(
                                    "{n} readings dropped: cannot encode: {e}"
                                )),
                            })
                            .await;
                        let _ = self.journal.ack(id).await;
                        return;
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
        link.publish(&topic, payload, false, Tag::Batch(id), points);
        self.stats
            .points_published
            .fetch_add(points, Ordering::Relaxed);
    }

    async fn shutdown(&mut self, link: &mut Link) -> Result<(), UplinkError> {
        self.stats.connected.store(false, Ordering::Relaxed);
        if !link.session.is_up() {
            tracing::info!("uplink stopped (not connected)");
            return Ok(());
        }
        let death = Status::Offline(Death {
            gateway: self.gateway.clone(),
            boot_epoch: self.boot_epoch,
        });
        let topic = link.status_topic.clone();
        link.publish(&topic, json::encode(&death)?, true, Tag::Status, 0);
        let deadline = Instant::now() + self.shutdown_wait;
        let mut disconnecting = false;
        loop {
            if !link.session.is_up() {
                break;
            }
            if !disconnecting && link.session.window().is_empty() {
                link.el.pending.push_back(Request::Disconnect(Disconnect));
                disconnecting = true;
            }
            link.move_overflow();
            let r = tokio::select! {
                r = link.el.poll() => r,
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(outstanding = link.session.window().len(), "shutdown wait over");
                    break;
                }
            };
            match r {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                r => self.polled(link, r).await?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_plumbing::backoff::Schedule;
    use fieldlink_testkit::Mosquitto;

    /// Publishes queued faster than rumqttc's channel takes them wait in the overflow and still
    /// leave in the order they were queued: the n-th packet id is the n-th publish, and a
    /// subscriber receives them in that order.
    #[tokio::test]
    async fn publishes_keep_their_order_through_a_full_channel() {
        let broker = Mosquitto::start().unwrap();
        let (sub, mut sub_el) = AsyncClient::new(
            MqttOptions::new("order-subscriber", "127.0.0.1", broker.port()),
            8,
        );
        sub.subscribe("order/#", QoS::AtLeastOnce).await.unwrap();
        loop {
            if let Event::Incoming(Incoming::SubAck(_)) = sub_el.poll().await.unwrap() {
                break;
            }
        }
        let received = tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < 60 {
                if let Event::Incoming(Incoming::Publish(p)) = sub_el.poll().await.unwrap() {
                    got.push(u32::from_be_bytes(p.payload[..4].try_into().unwrap()));
                }
            }
            got
        });

        // A channel of one: almost every publish goes through the overflow.
        let options = MqttOptions::new("order-publisher", "127.0.0.1", broker.port());
        let (client, el) = AsyncClient::new(options, 1);
        let settings = SessionSettings {
            connect_timeout: Duration::from_secs(10),
            max_in_flight: 100,
            cmd_topic: "order-cmd".into(),
            control_topic: "order-control".into(),
        };
        let backoff = Backoff::jittered(Schedule::fixed(100, 1_000));
        let mut link = Link {
            el,
            client,
            overflow: VecDeque::new(),
            session: Session::new(settings, backoff, Instant::now()),
            seq: 0,
            status_topic: "order/status".into(),
            cmd_topic: "order-cmd".into(),
            control_topic: "order-control".into(),
            aliases: None,
        };
        loop {
            if let Event::Incoming(Incoming::ConnAck(_)) = link.el.poll().await.unwrap() {
                break;
            }
        }
        for i in 0..60u32 {
            link.publish("order/x", i.to_be_bytes().to_vec(), false, Tag::Status, 0);
        }
        assert!(
            link.overflow.len() >= 58,
            "the overflow holds what the channel cannot: {}",
            link.overflow.len()
        );
        let mut written = Vec::new();
        while written.len() < 60 {
            link.move_overflow();
            if let Event::Outgoing(Outgoing::Publish(pkid)) = link.el.poll().await.unwrap() {
                written.push(pkid);
            }
        }
        assert!(link.overflow.is_empty());
        assert_eq!(written, (1..=60).collect::<Vec<u16>>());
        let got = tokio::time::timeout(Duration::from_secs(10), received)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, (0..60).collect::<Vec<u32>>());
    }
}
