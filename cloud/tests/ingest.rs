//! Ingest end to end: a real Mosquitto, the cloud's ingest tasks, and each of the three stores.
//! Good batches are stored, a duplicate is stored once, bad payloads become dead letters with
//! their reasons while good traffic keeps flowing, and the registry follows births and deaths.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fieldlink_cloud::ingest::{self, IngestSettings};
use fieldlink_cloud::metrics::Metrics;
use fieldlink_cloud::store::*;
use fieldlink_protocol::Encoding;
use fieldlink_testkit::Mosquitto;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Runs the scenario against `store`. `oversized` is false for the TimescaleDB double, which
/// cannot take a 256 KiB row.
async fn scenario(store: Store, oversized: bool) {
    store.migrate().await.unwrap();
    let store = Arc::new(store);
    let broker = Mosquitto::start().expect("start mosquitto (package mosquitto)");
    let metrics = Arc::new(Metrics::new());
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let handle = ingest::start(
        &mqtt(&broker, "cloud-test"),
        IngestSettings::default(),
        store.clone(),
        metrics.clone(),
        stop.clone(),
        &tracker,
    )
    .unwrap();
    wait_for("broker connection", 20, || {
        let h = handle.clone();
        async move { h.broker_connected().then_some(()).ok_or("down".to_string()) }
    })
    .await;
    // The birth is retained, so it reaches the cloud even if it is published before the
    // subscription is in place; once it is registered, the subscription exists.
    let birth = br#"{"state":"online","gateway":"gw-a","boot_epoch":1,"ts_ms":1704067200000,
        "agent_version":"0.3.0","config_hash":"h1","devices":[{"name":"dev0","points":[
        {"name":"m0","unit":"V","kind":"number"},{"name":"m1","kind":"number","writable":true}]}]}"#;
    publish_all(
        broker.host(),
        broker.port(),
        "pub-birth",
        vec![(topic("gw-a", "status"), birth.to_vec())],
    )
    .await;
    let st = store.clone();
    wait_for("the birth registers gw-a", 30, || {
        let st = st.clone();
        async move {
            match st.gateway(&id("gw-a")).await {
                Ok(Some(g)) if g.online => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;

    let t0 = now_ms() - 3_600_000;
    let a1 = batch("gw-a", 1, t0, 2, 5, 10); // 100 points
    let a2 = batch("gw-a", 2, t0 + 10_000, 2, 5, 10);
    let b1 = batch("gw-b", 1, t0, 3, 4, 5); // 60 points
    let mut nan = batch("gw-b", 9, t0 + 500_000, 1, 1, 1);
    nan.points[0].value = fieldlink_protocol::Value::Number(1.0f64 / 3.0);
    let mut nan_bytes = encode(&nan, Encoding::Binary);
    let needle = (1.0f64 / 3.0).to_le_bytes();
    let at = nan_bytes
        .windows(8)
        .position(|w| w == needle)
        .expect("raw f64 in the binary form");
    nan_bytes[at..at + 8].copy_from_slice(&f64::INFINITY.to_le_bytes());

    let mut msgs = vec![
        (topic("gw-a", "telemetry"), encode(&a1, Encoding::Binary)),
        (topic("gw-a", "telemetry"), b"{\"gateway\": \"gw-a\", broken".to_vec()),
        (topic("gw-b", "telemetry"), encode(&b1, Encoding::Json)),
        // gw-b's batch on gw-a's topic.
        (topic("gw-a", "telemetry"), encode(&b1, Encoding::Binary)),
        (topic("gw-b", "telemetry"), nan_bytes),
        // The same batch again, as after a reconnect.
        (topic("gw-a", "telemetry"), encode(&a1, Encoding::Json)),
        (topic("gw-a", "telemetry"), encode(&a2, Encoding::Binary)),
        (topic("gw-a", "events"), br#"{"gateway":"gw-a","boot_epoch":1,"seq":1,"ts_ms":1704067200000,"event":"device_up","device":"dev0"}"#.to_vec()),
    ];
    let mut expected_dead = vec!["decode", "topic_mismatch", "non_finite"];
    if oversized {
        let big = vec![b'{'; fieldlink_protocol::limits::MAX_PAYLOAD_BYTES + 10];
        msgs.insert(3, (topic("gw-a", "telemetry"), big));
        expected_dead.push("too_large");
    }
    publish_all(broker.host(), broker.port(), "pub-1", msgs).await;

    let st = store.clone();
    wait_for("260 points stored", 60, || {
        let st = st.clone();
        async move {
            let n = st.count_points().await.map_err(|e| e.to_string())?;
            (n == 260).then_some(()).ok_or(format!("{n} points"))
        }
    })
    .await;
    let st = store.clone();
    let dead = wait_for("dead letters", 30, || {
        let st = st.clone();
        let want = expected_dead.len();
        async move {
            let d = st.dead_letters(100).await.map_err(|e| e.to_string())?;
            (d.len() == want)
                .then_some(d.clone())
                .ok_or(format!("{d:?}"))
        }
    })
    .await;
    let mut reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    reasons.sort();
    expected_dead.sort();
    assert_eq!(reasons, expected_dead);
    assert!(dead.iter().all(|d| d.topic.starts_with("fieldlink/v1/")));
    let broken = dead.iter().find(|d| d.reason == "decode").unwrap();
    assert_eq!(broken.payload, b"{\"gateway\": \"gw-a\", broken");

    // Every point of every good batch is there with its value, once.
    for b in [&a1, &a2, &b1] {
        for p in &b.points {
            let key = SeriesKey {
                gateway: b.gateway.clone(),
                device: p.device.clone(),
                metric: p.metric.clone(),
            };
            let sid = store.series_id(&key).await.unwrap().expect("series");
            let got = store
                .raw_points(sid, p.ts_ms, p.ts_ms + 1, 10)
                .await
                .unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].value, p.value);
        }
    }
    let dev0 = store
        .series_of_device(&id("gw-a"), &id("dev0"))
        .await
        .unwrap();
    let m0 = dev0.iter().find(|s| s.key.metric.as_str() == "m0").unwrap();
    assert_eq!(m0.unit.as_deref(), Some("V"));
    assert!(
        dev0.iter()
            .find(|s| s.key.metric.as_str() == "m1")
            .unwrap()
            .writable
    );
    let gwb = store
        .gateway(&id("gw-b"))
        .await
        .unwrap()
        .expect("gw-b auto-registered");
    assert!(!gwb.registered && gwb.last_seen_ms.is_some());

    // A death from the same boot marks the gateway offline.
    publish_all(
        broker.host(),
        broker.port(),
        "pub-2",
        vec![(
            topic("gw-a", "status"),
            br#"{"state":"offline","gateway":"gw-a","boot_epoch":1}"#.to_vec(),
        )],
    )
    .await;
    let st = store.clone();
    wait_for("gw-a offline", 30, || {
        let st = st.clone();
        async move {
            match st.gateway(&id("gw-a")).await {
                Ok(Some(g)) if !g.online => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    let text = metrics.render();
    assert!(
        text.contains("fieldlink_cloud_points_stored_total 260"),
        "{text}"
    );
    assert!(
        text.contains("fieldlink_cloud_dead_letters_total{reason=\"non_finite\"} 1"),
        "{text}"
    );

    stop.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(20), tracker.wait())
        .await
        .expect("ingest stops within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_into_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    })
    .await
    .unwrap();
    scenario(store, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_into_postgres() {
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    let store = Store::open(&StoreSpec::postgres(pg.url(), TimescaleMode::Auto))
        .await
        .unwrap();
    scenario(store, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_into_timescale() {
    let ts = fieldlink_testkit::Timescale::start().expect("start the TimescaleDB double");
    let spec = StoreSpec::Postgres {
        url: ts.url(),
        timescale: TimescaleMode::Require,
        insert_path: InsertPath::Unnest,
        statement_rows: 500,
    };
    let store = Store::open(&spec).await.unwrap();
    assert_eq!(store.backend(), Backend::Timescale);
    scenario(store, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_gateways_are_dead_lettered_when_registration_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    store.register_gateway(&id("known")).await.unwrap();
    let store = Arc::new(store);
    let broker = Mosquitto::start().expect("start mosquitto (package mosquitto)");
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let settings = IngestSettings {
        require_registration: true,
        ..Default::default()
    };
    let handle = ingest::start(
        &mqtt(&broker, "cloud-reg"),
        settings,
        store.clone(),
        Arc::new(Metrics::new()),
        stop.clone(),
        &tracker,
    )
    .unwrap();
    wait_for("broker connection", 20, || {
        let h = handle.clone();
        async move { h.broker_connected().then_some(()).ok_or("down".to_string()) }
    })
    .await;
    // Publish until the subscription is in place: the known gateway's points show up.
    let t0 = now_ms() - 60_000;
    let st = store.clone();
    let mut seq = 0;
    wait_for("known gateway stored", 30, || {
        seq += 1;
        let st = st.clone();
        let (host, port) = (broker.host(), broker.port());
        let msgs = vec![
            (
                topic("stranger", "telemetry"),
                encode(&batch("stranger", seq, t0, 1, 1, 1), Encoding::Binary),
            ),
            (
                topic("known", "telemetry"),
                encode(&batch("known", seq, t0, 1, 1, 1), Encoding::Binary),
            ),
        ];
        async move {
            publish_all(host, port, "pub-reg", msgs).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let n = st.count_points().await.map_err(|e| e.to_string())?;
            (n >= 1).then_some(()).ok_or(format!("{n}"))
        }
    })
    .await;
    let st = store.clone();
    wait_for("stranger dead-lettered", 30, || {
        let st = st.clone();
        async move {
            let d = st.dead_letters(10).await.map_err(|e| e.to_string())?;
            d.iter()
                .any(|d| d.reason == "unregistered" && d.topic == "fieldlink/v1/stranger/telemetry")
                .then_some(())
                .ok_or(format!("{d:?}"))
        }
    })
    .await;
    assert!(store.gateway(&id("stranger")).await.unwrap().is_none());
    assert!(store.devices(&id("stranger")).await.unwrap().is_empty());
    stop.cancel();
    tracker.close();
    tracker.wait().await;
}
