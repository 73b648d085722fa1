//! Shared by the integration tests: a QoS 1 publisher that counts PUBACKs, telemetry builders,
//! and polling with a deadline (a test that times out fails with what it saw).

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use fieldlink_protocol::{encode_telemetry, Encoding, Ident, Point, TelemetryBatch};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Outgoing, QoS};

pub fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A batch of `devices × metrics` points at one timestamp per row, `rows` rows, 1 s apart,
/// starting at `t0`.
pub fn batch(
    gw: &str,
    seq: u64,
    t0: i64,
    devices: usize,
    metrics: usize,
    rows: usize,
) -> TelemetryBatch {
    let mut b = TelemetryBatch::new(id(gw), 1, seq);
    for r in 0..rows {
        for d in 0..devices {
            for m in 0..metrics {
                let v = ((seq as usize * 7 + r * 3 + d * 5 + m) % 1000) as f64 / 10.0;
                b.points.push(Point::new(
                    id(&format!("dev{d}")),
                    id(&format!("m{m}")),
                    t0 + r as i64 * 1_000,
                    v,
                ));
            }
        }
    }
    b
}

pub fn encode(b: &TelemetryBatch, enc: Encoding) -> Vec<u8> {
    encode_telemetry(b, enc).unwrap()
}

pub fn topic(gw: &str, kind: &str) -> String {
    format!("fieldlink/v1/{gw}/{kind}")
}

/// Publishes every message with QoS 1 (retained on status topics, as gateways do) and returns
/// once the broker acknowledged all of them.
pub async fn publish_all(host: &str, port: u16, client_id: &str, msgs: Vec<(String, Vec<u8>)>) {
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_max_packet_size(4 << 20, 4 << 20);
    o.set_inflight(100);
    let (client, mut el) = AsyncClient::new(o, 64);
    let n = msgs.len();
    tokio::spawn(async move {
        for (t, p) in msgs {
            let retain = t.ends_with("/status");
            client
                .publish(t, QoS::AtLeastOnce, retain, p)
                .await
                .unwrap();
        }
    });
    let mut acked = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked < n {
        let Ok(ev) = tokio::time::timeout_at(deadline, el.poll()).await else {
            panic!("only {acked} of {n} publishes acknowledged in 60 s");
        };
        match ev {
            Ok(Event::Incoming(Incoming::PubAck(_))) => acked += 1,
            Ok(Event::Outgoing(Outgoing::Disconnect)) => panic!("publisher disconnected"),
            Ok(_) => {}
            Err(e) => panic!("publisher: {e}"),
        }
    }
}

/// Polls `probe` until it returns `Some`, failing after `secs` with the last value it saw.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if tokio::time::Instant::now() > deadline => {
                panic!("{what}: not reached within {secs} s; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
