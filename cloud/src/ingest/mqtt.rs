//! The MQTT connection: options, subscriptions, and the event-loop task that owns it.
//!
//! The session is persistent (`clean_session = false`) with manual acknowledgements, so a
//! message the cloud has not acknowledged stays with the broker and comes back after a
//! reconnect or a crash. Subscriptions are made on a connection that found no session on the
//! broker; on a resumed session they are still there.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, Incoming, MqttOptions, Outgoing, Publish,
    QoS, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::IngestError;

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

/// Runs the event loop: forwards publishes to the classifier, keeps `connected` current,
/// subscribes on fresh sessions. On `stop` it stops forwarding (what arrives later is not
/// acknowledged, so the broker keeps it) and keeps polling until `writer_done` fires, so the
/// writer's last acknowledgements reach the broker; then it disconnects.
pub(super) struct EventLoopTask {
    pub eventloop: EventLoop,
    pub client: AsyncClient,
    pub filters: Vec<String>,
    pub inbound: mpsc::Sender<Publish>,
    pub connected: Arc<AtomicBool>,
    pub stop: CancellationToken,
    pub writer_done: CancellationToken,
    pub grace: Duration,
}

pub(super) async fn run_event_loop(task: EventLoopTask) {
    let EventLoopTask {
        mut eventloop,
        client,
        filters,
        inbound,
        connected,
        stop,
        writer_done,
        grace,
    } = task;
    let mut inbound = Some(inbound);
    let mut backoff = Duration::from_millis(100);
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
                    continue;
                }
                backoff = Duration::from_millis(100);
                connected.store(true, Ordering::Relaxed);
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
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
                if let Some(tx) = &inbound {
                    // A full queue holds the event loop (backpressure). A stop while waiting
                    // drops the message unacknowledged: the broker keeps it for next time.
                    tokio::select! {
                        sent = tx.send(p) => if sent.is_err() { inbound = None },
                        _ = stop.cancelled() => inbound = None,
                    }
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
                tracing::warn!(error = %e, retry_in = ?backoff, "broker connection lost");
                tokio::select! {
                    _ = &mut deadline => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
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
