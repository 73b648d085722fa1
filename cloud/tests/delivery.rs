//! Delivery guarantees across processes, against a real Mosquitto and PostgreSQL:
//! - SIGKILL of the cloud during sustained ingest, then a restart: every point the publisher
//!   got a PUBACK for is stored exactly once;
//! - two cloud processes in one shared-subscription group split the load and store each point
//!   exactly once.
//!
//! "Exactly once" is checked as: the table holds as many rows as distinct points were
//! published, and every published point is found. Rows can only come from published points,
//! so equal counts with every point present leave no room for a duplicate.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fieldlink_cloud::store::{SeriesKey, Store, StoreSpec, TimescaleMode};
use fieldlink_protocol::{Encoding, TelemetryBatch, Value};
use fieldlink_testkit::{Mosquitto, Postgres};

/// `n` batches of 100 points, spread over `gateways` gateways, alternating encodings.
fn workload(n: usize, gateways: usize) -> (Vec<TelemetryBatch>, Vec<(String, Vec<u8>)>) {
    let t0 = now_ms() - 24 * 3_600_000;
    let mut batches = Vec::new();
    let mut msgs = Vec::new();
    for i in 0..n {
        let gw = format!("site-{}", i % gateways);
        let seq = (i / gateways) as u64;
        let b = batch(&gw, seq, t0 + seq as i64 * 10_000, 2, 5, 10);
        let enc = if i % 2 == 0 {
            Encoding::Binary
        } else {
            Encoding::Json
        };
        msgs.push((topic(&gw, "telemetry"), encode(&b, enc)));
        batches.push(b);
    }
    (batches, msgs)
}

async fn assert_each_point_once(store: &Store, batches: &[TelemetryBatch]) {
    let total: usize = batches.iter().map(|b| b.points.len()).sum();
    wait_for("every point stored", 120, || async move {
        let n = store.count_points().await.map_err(|e| e.to_string())?;
        (n as usize == total)
            .then_some(())
            .ok_or(format!("{n} of {total} rows"))
    })
    .await;
    // Per series, the stored (time, value) pairs are exactly the published ones.
    let mut want: BTreeMap<SeriesKey, Vec<(i64, Value)>> = BTreeMap::new();
    for b in batches {
        for p in &b.points {
            let key = SeriesKey {
                gateway: b.gateway.clone(),
                device: p.device.clone(),
                metric: p.metric.clone(),
            };
            want.entry(key)
                .or_default()
                .push((p.ts_ms, p.value.clone()));
        }
    }
    for (key, mut points) in want {
        points.sort_by_key(|(t, _)| *t);
        let sid = store.series_id(&key).await.unwrap().expect("series exists");
        let got: Vec<(i64, Value)> = store
            .raw_points(sid, i64::MIN, i64::MAX, 1_000_000)
            .await
            .unwrap()
            .into_iter()
            .map(|p| (p.ts_ms, p.value))
            .collect();
        assert_eq!(got, points, "{key:?}");
    }
    assert_eq!(store.count_points().await.unwrap() as usize, total);
}

fn cloud_env(broker: &Mosquitto, db_url: &str, client_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE__URL", db_url.to_string()),
        (
            "MQTT__URL",
            format!("mqtt://{}:{}", broker.host(), broker.port()),
        ),
        ("MQTT__CLIENT_ID", client_id.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingest_loses_and_duplicates_nothing() {
    let broker = Mosquitto::builder()
        .max_queued_messages(1_000_000)
        .start()
        .expect("start mosquitto (package mosquitto)");
    let pg = Postgres::start().expect("start PostgreSQL (package postgresql)");
    let url = pg.create_database("crash").unwrap();
    let env = cloud_env(&broker, &url, "cloud-crash");

    let mut cloud = CloudProcess::serve(&env);
    cloud.ready().await;

    let (batches, msgs) = workload(600, 3);
    let acked = Arc::new(AtomicUsize::new(0));
    let publisher = {
        let (host, port, acked) = (broker.host(), broker.port(), acked.clone());
        tokio::spawn(async move {
            publish_counting(
                host,
                port,
                "gateways",
                msgs,
                Duration::from_millis(10),
                acked,
            )
            .await
        })
    };
    // Kill once the cloud has committed some of the stream and the publisher is still going.
    let c = &cloud;
    wait_for("the cloud commits part of the stream", 60, || async move {
        let stored = c.metric("fieldlink_cloud_points_stored_total").await;
        (stored >= 5_000.0)
            .then_some(())
            .ok_or(format!("{stored} stored"))
    })
    .await;
    let acked_at_kill = acked.load(Ordering::Relaxed);
    cloud.sigkill();
    assert!(
        acked_at_kill < 600,
        "the publisher had finished before the kill"
    );

    let mut cloud = CloudProcess::serve(&env);
    cloud.ready().await;
    publisher.await.unwrap();
    assert_eq!(acked.load(Ordering::Relaxed), 600);

    let store = Store::open(&StoreSpec::postgres(url, TimescaleMode::Off))
        .await
        .unwrap();
    assert_each_point_once(&store, &batches).await;
    assert!(cloud.metric("fieldlink_cloud_points_received_total").await > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_in_a_shared_group_split_the_load() {
    let broker = Mosquitto::start().expect("start mosquitto (package mosquitto)");
    let pg = Postgres::start().expect("start PostgreSQL (package postgresql)");
    let url = pg.create_database("shared").unwrap();
    let mut clouds = Vec::new();
    for name in ["cloud-a", "cloud-b"] {
        let mut env = cloud_env(&broker, &url, name);
        env.push(("INGEST__SHARE_GROUP", "ingest".into()));
        clouds.push(CloudProcess::serve(&env));
    }
    for c in &mut clouds {
        c.ready().await;
    }
    let (batches, msgs) = workload(300, 4);
    publish_all(broker.host(), broker.port(), "gateways", msgs).await;
    let store = Store::open(&StoreSpec::postgres(url, TimescaleMode::Off))
        .await
        .unwrap();
    assert_each_point_once(&store, &batches).await;

    let a = clouds[0]
        .metric("fieldlink_cloud_points_received_total")
        .await;
    let b = clouds[1]
        .metric("fieldlink_cloud_points_received_total")
        .await;
    assert!(
        a > 0.0 && b > 0.0,
        "both instances took a share: {a} and {b}"
    );
    assert_eq!(a + b, 30_000.0, "each message went to exactly one instance");
}
