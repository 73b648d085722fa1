//! The embedded MQTT broker (rumqttd), for a single node that needs nothing else.
//!
//! It runs on its own threads and lives as long as the process. It keeps messages in memory
//! and acknowledges a gateway's publish when it has it, so a crash of this process loses what
//! ingest had not committed yet; an external broker with persistence closes that gap.
//!
//! Size limits agree with ingest's: the broker closes a client's connection on a packet over
//! [`MAX_PACKET_BYTES`] (the protocol's payload limit and 8 KiB for the topic and header: a
//! payload a little over the limit still reaches ingest and is counted as a `too_large` dead
//! letter, while every byte the broker takes is close to what a real message may hold), and the
//! configuration refuses an `mqtt.max_packet_bytes` that could not take every packet the broker
//! forwards.

use std::collections::HashMap;
use std::net::SocketAddr;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

#[derive(Debug, thiserror::Error)]
#[error("embedded broker on {listen}: {reason}")]
pub struct BrokerError {
    pub listen: SocketAddr,
    pub reason: String,
}

/// The largest packet (MQTT remaining length) the broker takes from a client.
pub const MAX_PACKET_BYTES: usize = fieldlink_protocol::limits::MAX_PAYLOAD_BYTES + 8 * 1024;

/// What a forwarded packet may add to the one received (packet id, a longer header).
pub const HEADER_SLACK_BYTES: usize = 1_024;

/// Starts the broker listening on `listen` and returns once its port accepts connections.
pub fn start(listen: SocketAddr) -> Result<(), BrokerError> {
    let fail = |reason: String| BrokerError { listen, reason };
    // Refuse early and clearly when the port is taken; rumqttd would fail on its own thread.
    drop(std::net::TcpListener::bind(listen).map_err(|e| fail(e.to_string()))?);
    let server = ServerSettings {
        name: "v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: MAX_PACKET_BYTES,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 500,
            max_segment_size: 100 << 20,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("v4".to_string(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("fieldlink-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded broker stopped");
            }
        })
        .map_err(|e| fail(e.to_string()))?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(listen).is_ok() {
            tracing::info!(%listen, "embedded MQTT broker listening");
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(fail("did not start listening within 2 s".into()))
}
