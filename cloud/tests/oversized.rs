//! Issue 14, finding 1: one oversized publish must never put ingest into a reconnect loop.
//!
//! - On a broker that limits nothing (the testkit's plain Mosquitto), a 1.5 MiB message over
//!   `mqtt.max_packet_bytes` (1 MiB) costs one raised reconnect, becomes a `too_large` dead
//!   letter with its size and hash, and the other gateway's batches before and after it are all
//!   stored; the next connection has the normal limit again, so a second such message costs
//!   one more.
//! - Over `ingest.max_oversized_packet_bytes` the session cannot move: reported on readiness,
//!   retried slowly, never in a loop.
//! - The embedded broker refuses a packet over its limit from the gateway itself; a payload over
//!   the protocol's limit but within the broker's reaches the cloud as a dead letter.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fieldlink_cloud::ingest::{self, IngestHandle, IngestSettings};
use fieldlink_cloud::metrics::Metrics;
use fieldlink_cloud::store::*;
use fieldlink_protocol::Encoding;
use fieldlink_testkit::Mosquitto;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use sha2::Digest;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const BIG: usize = 1_572_864;

struct Ingest {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    handle: IngestHandle,
    stop: CancellationToken,
    tracker: TaskTracker,
    _dir: tempfile::TempDir,
}

impl Ingest {
    async fn start(broker: &Mosquitto, settings: IngestSettings) -> Ingest {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreSpec::Sqlite {
            path: dir.path().join("cloud.db"),
        })
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let store = Arc::new(store);
        let metrics = Arc::new(Metrics::new());
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let handle = ingest::start(
            &mqtt(broker, "cloud-oversized"),
            settings,
            store.clone(),
            metrics.clone(),
            stop.clone(),
            &tracker,
        )
        .unwrap();
        let h = handle.clone();
        wait_for("broker connection", 20, || {
            let h = h.clone();
            async move { h.broker_connected().then_some(()).ok_or("down".to_string()) }
        })
        .await;
        // Subscribed once a retained birth comes through.
        let birth = br#"{"state":"online","gateway":"gw-a","boot_epoch":1,"ts_ms":1704067200000,
            "agent_version":"0.3.0","config_hash":"h1","devices":[]}"#;
        publish_all(
            broker.host(),
            broker.port(),
            "pub-birth",
            vec![(topic("gw-a", "status"), birth.to_vec())],
        )
        .await;
        let st = store.clone();
        wait_for("the birth", 30, || {
            let st = st.clone();
            async move {
                match st.gateway(&id("gw-a")).await {
                    Ok(Some(g)) if g.online => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        })
        .await;
        Ingest {
            store,
            metrics,
            handle,
            stop,
            tracker,
            _dir: dir,
        }
    }

    fn metric(&self, name: &str) -> f64 {
        self.metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    async fn wait_dead_letters(&self, n: usize) -> Vec<DeadLetter> {
        let st = self.store.clone();
        wait_for("dead letters", 60, || {
            let st = st.clone();
            async move {
                let d = st.dead_letters(100).await.map_err(|e| e.to_string())?;
                (d.len() == n).then_some(d.clone()).ok_or(format!("{d:?}"))
            }
        })
        .await
    }

    async fn stop(self) {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(20), self.tracker.wait())
            .await
            .expect("ingest stops within 20 s");
    }
}

fn honest(seq: u64) -> (String, Vec<u8>) {
    let b = batch(
        "gw-a",
        seq,
        now_ms() - 100_000 + seq as i64 * 1_000,
        1,
        5,
        1,
    );
    (topic("gw-a", "telemetry"), encode(&b, Encoding::Binary))
}

fn big_payload(fill: u8) -> Vec<u8> {
    let mut p = vec![fill; BIG];
    p[0] = b'{';
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_packet_limit_is_a_dead_letter_not_a_reconnect_loop() {
    let broker = Mosquitto::start().expect("start mosquitto (package mosquitto)");
    let ingest = Ingest::start(&broker, IngestSettings::default()).await;
    let big = big_payload(b'x');
    let mut msgs: Vec<_> = (0..3).map(honest).collect();
    msgs.push((topic("gw-x", "telemetry"), big.clone()));
    msgs.extend((3..6).map(honest));
    publish_all(broker.host(), broker.port(), "pub-1", msgs).await;

    let st = ingest.store.clone();
    wait_for("the honest gateway's 30 points", 60, || {
        let st = st.clone();
        async move {
            let n = st.count_points().await.map_err(|e| e.to_string())?;
            (n == 30).then_some(()).ok_or(format!("{n} points"))
        }
    })
    .await;
    let dead = ingest.wait_dead_letters(1).await;
    let d = &dead[0];
    assert_eq!(
        (d.reason.as_str(), d.topic.as_str()),
        ("too_large", "fieldlink/v1/gw-x/telemetry")
    );
    assert_eq!(d.size, BIG as u64);
    assert_eq!(d.sha256, Some(sha2::Sha256::digest(&big).into()));
    // The store's default prefix.
    assert_eq!(d.payload, big[..4_096]);
    assert_eq!(
        ingest.metric("fieldlink_cloud_mqtt_oversized_packets_total"),
        1.0
    );
    assert_eq!(ingest.handle.broker_problem(), None);

    // The raised connection stays up and takes a second message of that size as another dead
    // letter, without a reconnect; the honest messages behind it flow.
    let mut msgs = vec![(topic("gw-x", "telemetry"), big_payload(b'y'))];
    msgs.extend((6..8).map(honest));
    publish_all(broker.host(), broker.port(), "pub-2", msgs).await;
    ingest.wait_dead_letters(2).await;
    let st = ingest.store.clone();
    wait_for("40 points", 60, || {
        let st = st.clone();
        async move {
            let n = st.count_points().await.map_err(|e| e.to_string())?;
            (n == 40).then_some(()).ok_or(format!("{n} points"))
        }
    })
    .await;
    assert_eq!(
        ingest.metric("fieldlink_cloud_mqtt_oversized_packets_total"),
        1.0,
        "no second reconnect"
    );
    assert_eq!(
        ingest.metric("fieldlink_cloud_dead_letters_total{reason=\"too_large\"}"),
        2.0
    );
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_cap_is_reported_and_retried_slowly() {
    let broker = Mosquitto::start().expect("start mosquitto (package mosquitto)");
    let settings = IngestSettings {
        max_oversized_packet_bytes: 1_200_000,
        ..Default::default()
    };
    let ingest = Ingest::start(&broker, settings).await;
    publish_all(
        broker.host(),
        broker.port(),
        "pub-1",
        vec![(topic("gw-x", "telemetry"), big_payload(b'x'))],
    )
    .await;
    let h = ingest.handle.clone();
    let problem = wait_for("the problem on readiness", 30, || {
        let h = h.clone();
        async move { h.broker_problem().ok_or("none".to_string()) }
    })
    .await;
    assert!(
        problem.contains("blocked") && problem.contains("1572") && problem.contains("1200000"),
        "{problem}"
    );
    // No loop: the session is tried again only after a long pause.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        ingest.metric("fieldlink_cloud_mqtt_oversized_packets_total"),
        1.0
    );
    ingest.stop().await;
}

/// Publishes one message as `client_id` and returns whether the broker acknowledged it (false:
/// the broker closed the connection instead).
async fn publish_one(port: u16, client_id: &str, topic: String, payload: Vec<u8>) -> bool {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut el) = AsyncClient::new(o, 4);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::PubAck(_))) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .expect("an answer from the broker within 20 s");
    let _ = client.disconnect().await;
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_refuses_what_ingest_could_not_take() {
    let dir = tempfile::tempdir().unwrap();
    let mqtt_port = fieldlink_testkit::free_port();
    let mut cloud = CloudProcess::serve(&[
        (
            "DATABASE__SQLITE_PATH",
            dir.path().join("cloud.db").display().to_string(),
        ),
        ("MQTT__EMBEDDED_LISTEN", format!("127.0.0.1:{mqtt_port}")),
    ]);
    cloud.ready().await;
    // Over the protocol's limit, within the broker's: a dead letter.
    let over = vec![b'{'; fieldlink_protocol::limits::MAX_PAYLOAD_BYTES + 1_000];
    assert!(publish_one(mqtt_port, "gw-x", topic("gw-x", "telemetry"), over).await);
    let c = &cloud;
    wait_for("the too_large dead letter", 30, || async move {
        let n = c
            .metric("fieldlink_cloud_dead_letters_total{reason=\"too_large\"}")
            .await;
        (n == 1.0).then_some(()).ok_or(format!("{n}"))
    })
    .await;
    // Over the broker's limit: the gateway is disconnected, the cloud never sees it.
    assert!(
        !publish_one(
            mqtt_port,
            "gw-x",
            topic("gw-x", "telemetry"),
            big_payload(b'x')
        )
        .await
    );
    let batch = batch("gw-a", 1, now_ms() - 5_000, 1, 5, 1);
    assert!(
        publish_one(
            mqtt_port,
            "gw-a",
            topic("gw-a", "telemetry"),
            encode(&batch, Encoding::Binary)
        )
        .await
    );
    wait_for("the honest batch", 30, || async move {
        let n = c.metric("fieldlink_cloud_points_received_total").await;
        (n == 5.0).then_some(()).ok_or(format!("{n}"))
    })
    .await;
    assert_eq!(
        cloud
            .metric("fieldlink_cloud_mqtt_oversized_packets_total")
            .await,
        0.0
    );
    let (code, body) = http_get(cloud.http, "/health/ready").await.unwrap();
    assert_eq!(code, 200, "{body}");
    cloud.sigterm_and_wait();
}
