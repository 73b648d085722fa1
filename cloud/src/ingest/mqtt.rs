//! The MQTT connection: options, subscriptions, and the event-loop task that owns it.
//!
//! The session is persistent (`clean_session = false`) with manual acknowledgements, so a
//! message the cloud has not acknowledged stays with the broker and comes back after a
//! reconnect or a crash. Subscriptions are made on a connection that found no session on the
//! broker; on a resumed session they are still there.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fieldlink_plumbing::backoff::{Backoff, Schedule};
use fieldlink_tlsfiles::{check_certificates, read_private_key, Expiring};

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Incoming, MqttOptions,
    Outgoing, Publish, QoS, StateError, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::oversize::{self, Oversized, PacketLimit};
use super::session::{BrokerProblem, SessionWatch, SiblingCloses, Verdict, TAKEN_OVER_AFTER};
use super::writer::Item;
use super::IngestError;
use crate::metrics::Metrics;

/// TLS towards the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM bundle of the certificate authorities to trust.
    pub ca_file: PathBuf,
    /// PEM client certificate chain and key, for brokers that require one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// How to reach the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    /// Stable across restarts: the broker keeps the persistent session under this id.
    pub client_id: String,
    pub credentials: Option<(String, String)>,
    pub tls: Option<TlsSettings>,
    pub keep_alive: Duration,
    /// Largest packet accepted. Larger than the protocol's payload limit on purpose, so an
    /// oversized payload arrives and is dead-lettered instead of breaking the connection.
    pub max_packet_bytes: usize,
}

/// Opens and parses every file `tls` names, before anything connects: the CA file and the
/// client certificate must hold PEM certificates within their validity dates at `now`, the key
/// a PEM private key. A failure gives the configuration key and why, naming the file; on
/// success, the certificates that expire soon, each with its key.
pub fn check_tls_files(
    tls: &TlsSettings,
    now: SystemTime,
) -> Result<Vec<(&'static str, Expiring)>, (&'static str, String)> {
    let mut expiring = Vec::new();
    let mut certs = |key: &'static str, path: &PathBuf| {
        let soon = check_certificates(path, Some(now)).map_err(|e| (key, e.to_string()))?;
        expiring.extend(soon.into_iter().map(|e| (key, e)));
        Ok::<_, (&'static str, String)>(())
    };
    certs("mqtt.ca_file", &tls.ca_file)?;
    if let Some((cert, key)) = &tls.client_cert {
        certs("mqtt.client_cert_file", cert)?;
        read_private_key(key).map_err(|e| ("mqtt.client_key_file", e.to_string()))?;
    }
    Ok(expiring)
}

/// Socket options of every cloud MQTT connection. Nagle's algorithm is off: a command or a
/// manual PUBACK is a small write that would otherwise wait for the broker's delayed ACK of the
/// previous one (about 40 ms on Linux); rumqttc already gathers what is ready into one write.
pub(crate) fn network_options() -> rumqttc::NetworkOptions {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n
}

pub(crate) fn options(s: &MqttSettings) -> Result<MqttOptions, IngestError> {
    let mut o = MqttOptions::new(s.client_id.clone(), s.host.clone(), s.port);
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(s.keep_alive)
        .set_max_packet_size(s.max_packet_bytes, s.max_packet_bytes)
        .set_request_channel_capacity(4_096);
    if let Some((user, password)) = &s.credentials {
        o.set_credentials(user.clone(), password.clone());
    }
    if let Some(tls) = &s.tls {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| IngestError::TlsFile {
                path: path.clone(),
                source,
            })
        };
        let client_auth = match &tls.client_cert {
            Some((cert, key)) => Some((read(cert)?, read(key)?)),
            None => None,
        };
        // rustls picks a process-wide crypto provider from its crate features only when exactly
        // one is enabled; a build that links the agent too (the demo, the workspace's tests)
        // enables two. Choose ring explicitly, as the agent does; an earlier choice stands.
        let _ = rustls::crypto::ring::default_provider().install_default();
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca: read(&tls.ca_file)?,
            alpn: None,
            client_auth,
        }));
    }
    Ok(o)
}

/// Runs the event loop: forwards publishes to the classifier (over the protocol's payload
/// limit already cut to a dead letter, which the classifier passes on), keeps `connected`
/// current, subscribes on fresh sessions, copes with packets over the connection's limit
/// ([`oversize`]) and watches for takeovers of the session ([`super::session`]). On `stop`
/// it stops forwarding (what arrives later is not acknowledged, so the broker keeps it) and
/// keeps polling until `writer_done` fires, so the writer's last acknowledgements reach the
/// broker; then it disconnects.
pub(super) struct EventLoopTask {
    pub eventloop: EventLoop,
    pub client: AsyncClient,
    pub client_id: String,
    pub filters: Vec<String>,
    /// The classifier's queue. Oversized messages go through it too, already made dead
    /// letters: one queue keeps every message in arrival order up to the writer, and so its
    /// acknowledgements too (a broker may close a client that acknowledges out of order).
    pub inbound: mpsc::Sender<Inbound>,
    pub limit: PacketLimit,
    pub metrics: Arc<Metrics>,
    pub problem: BrokerProblem,
    pub sibling: SiblingCloses,
    pub connected: Arc<AtomicBool>,
    pub stop: CancellationToken,
    pub writer_done: CancellationToken,
    pub grace: Duration,
}

/// What the event loop hands the classifier, in the order the broker sent it.
pub(super) enum Inbound {
    /// A message to classify.
    Publish(Publish),
    /// A message refused before classification (over the protocol's payload limit), as the
    /// dead letter the writer stores; the classifier passes it on in its place in the order.
    Refused(Box<Item>),
}

/// How long a session that cannot move past a message over the cap waits between attempts.
const OVER_CAP_RETRY: Duration = Duration::from_secs(30);

/// Waits between broker connection attempts: 100 ms doubling to 5 s, jittered.
const RECONNECT: Schedule = Schedule::fixed(100, 5_000);

/// Whether an error ends a connection the broker closed (rather than one that failed).
fn closed_by_peer(e: &ConnectionError) -> bool {
    use std::io::ErrorKind;
    let io_closed = |e: &std::io::Error| {
        matches!(
            e.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof
        )
    };
    match e {
        ConnectionError::MqttState(StateError::ConnectionAborted) => true,
        ConnectionError::MqttState(StateError::Io(e)) | ConnectionError::Io(e) => io_closed(e),
        _ => false,
    }
}

/// The remaining length of the packet that failed the connection, when it was too large.
fn too_large(e: &ConnectionError) -> Option<usize> {
    match e {
        ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::Error::PayloadSizeLimitExceeded(n),
        )) => Some(*n),
        _ => None,
    }
}

pub(super) async fn run_event_loop(task: EventLoopTask) {
    let EventLoopTask {
        mut eventloop,
        client,
        client_id,
        filters,
        inbound,
        mut limit,
        metrics,
        problem,
        sibling,
        connected,
        stop,
        writer_done,
        grace,
    } = task;
    let mut inbound = Some(inbound);
    let mut backoff = Backoff::jittered(RECONNECT);
    let mut watch = SessionWatch::default();
    let mut up = false;
    let deadline = async {
        stop.cancelled().await;
        tokio::select! {
            _ = writer_done.cancelled() => {}
            _ = tokio::time::sleep(grace) => {
                tracing::warn!("the writer did not finish within the grace period");
            }
        }
    };
    tokio::pin!(deadline);
    loop {
        let event = tokio::select! {
            _ = &mut deadline => break,
            _ = stop.cancelled(), if inbound.is_some() => {
                // Dropping the sender lets the classifier and the writer drain and finish.
                inbound = None;
                continue;
            }
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                if ack.code != ConnectReturnCode::Success {
                    tracing::error!(code = ?ack.code, "the broker refused the connection");
                    watch.connect_failed();
                    continue;
                }
                up = true;
                backoff.succeed();
                connected.store(true, Ordering::Relaxed);
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                if limit.is_raised() {
                    // Only this connection is raised; any later one has the normal limit.
                    let normal = limit.normal();
                    eventloop.mqtt_options.set_max_packet_size(normal, normal);
                }
                let now = tokio::time::Instant::now();
                if let Verdict::Kicked { count } = watch.connected(now, sibling.last()) {
                    metrics.mqtt_session_closed_by_broker.inc();
                    if count >= TAKEN_OVER_AFTER {
                        let text = format!(
                            "session taken over: the broker closed this connection {count} times \
                             in the last minute and accepted it again at once; another client \
                             is connecting with client id {client_id:?}"
                        );
                        tracing::error!(client_id = ?client_id, closes = count,
                            "session taken over: another client is connecting with this client id");
                        if let Some(until) = watch.clears_at() {
                            problem.set(text, until);
                        }
                    } else {
                        tracing::warn!(client_id = ?client_id,
                            "the broker closed the connection and accepted it again at once; \
                             another client may have connected with this client id");
                    }
                }
                if !ack.session_present {
                    let subs = filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                    if let Err(e) = client.try_subscribe_many(subs) {
                        tracing::error!(error = %e, "could not queue the subscriptions");
                    }
                }
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                let Some(tx) = &inbound else { continue };
                if p.payload.len() > fieldlink_protocol::limits::MAX_PAYLOAD_BYTES {
                    let Some(item) =
                        oversize::dead_letter_item(p, std::time::Instant::now(), super::now_ms())
                    else {
                        continue;
                    };
                    metrics.unacked_messages.inc();
                    metrics.message("dead_letter");
                    metrics.dead_letter("too_large");
                    if let super::Content::Dead(d) = &item.content {
                        tracing::info!(topic = ?d.topic, reason = ?d.reason, bytes = d.size,
                            "message dead-lettered");
                    }
                    tokio::select! {
                        sent = tx.send(Inbound::Refused(Box::new(item))) => if sent.is_err() { inbound = None },
                        _ = stop.cancelled() => inbound = None,
                    }
                    continue;
                }
                // A full queue holds the event loop (backpressure). A stop while waiting
                // drops the message unacknowledged: the broker keeps it for next time.
                tokio::select! {
                    sent = tx.send(Inbound::Publish(p)) => if sent.is_err() { inbound = None },
                    _ = stop.cancelled() => inbound = None,
                }
            }
            Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                tracing::info!(return_codes = ?ack.return_codes, "subscribed");
                connected.store(true, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => {
                connected.store(false, Ordering::Relaxed);
                let was_up = std::mem::replace(&mut up, false);
                if was_up && closed_by_peer(&e) {
                    watch.closed_by_broker(tokio::time::Instant::now());
                } else if !was_up {
                    watch.connect_failed();
                }
                if let Some(n) = too_large(&e) {
                    metrics.mqtt_oversized_packets.inc();
                    match limit.too_large(n) {
                        Oversized::Raise(to) => {
                            tracing::warn!(packet_bytes = n, limit_bytes = limit.normal(),
                                setting = "mqtt.max_packet_bytes",
                                "a message from the broker is over mqtt.max_packet_bytes; \
                                 reconnecting once with the limit raised to take it as a dead letter");
                            eventloop
                                .mqtt_options
                                .set_max_packet_size(to, limit.normal());
                            // At once: every gateway's messages wait behind this one.
                            continue;
                        }
                        Oversized::OverCap => {
                            let text = format!(
                                "blocked: the broker holds a message of {n} bytes for this \
                                 session, over ingest.max_oversized_packet_bytes ({}); set the \
                                 broker's max_packet_size below mqtt.max_packet_bytes ({}) or raise \
                                 ingest.max_oversized_packet_bytes",
                                limit.cap(),
                                limit.normal()
                            );
                            tracing::error!(packet_bytes = n, cap_bytes = limit.cap(),
                                setting = "ingest.max_oversized_packet_bytes",
                                retry_in = ?OVER_CAP_RETRY,
                                "a message from the broker is over the oversized-packet cap; \
                                 ingest is blocked until an operator acts");
                            problem.set(text, tokio::time::Instant::now() + OVER_CAP_RETRY * 2);
                            tokio::select! {
                                _ = &mut deadline => break,
                                _ = tokio::time::sleep(OVER_CAP_RETRY) => {}
                            }
                            continue;
                        }
                    }
                }
                if limit.is_raised() {
                    // A raised connection that failed otherwise: the next has the normal limit.
                    limit.lowered();
                    let normal = limit.normal();
                    eventloop.mqtt_options.set_max_packet_size(normal, normal);
                }
                let wait = backoff.fail();
                tracing::warn!(error = %e, retry_in = ?wait, "broker connection lost");
                tokio::select! {
                    _ = &mut deadline => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    connected.store(false, Ordering::Relaxed);
    // Flush what the writer queued (its acknowledgements) and say goodbye; the session stays.
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}
