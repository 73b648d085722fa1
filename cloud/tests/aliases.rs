//! Aliased telemetry (binary version 2) end to end: a real Mosquitto, the cloud's ingest tasks,
//! SQLite and PostgreSQL.
//! - a batch that arrives before its birth is parked in the store and acknowledged at once, and
//!   stored once the birth arrives: parked batches never hold the broker's in-flight window, so
//!   one gateway naming births nobody saw does not delay another, and past its share
//!   (`max_parked_per_gateway`) its batches are dead-lettered at once;
//! - births are kept per (gateway, config hash): after a restart, with the retained birth gone,
//!   a batch written against it is still read, and so is one against an earlier birth;
//! - a batch whose birth never comes becomes a dead letter `unknown_birth` with its payload.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fieldlink_cloud::ingest::IngestSettings;
use fieldlink_cloud::store::*;
use fieldlink_protocol::{
    binary, encode_telemetry_aliased, json, Birth, Control, Encoding, SeriesAliases, Status,
    TelemetryBatch,
};
use fieldlink_testkit::Mosquitto;

/// The birth of `gw` for `batch`'s series (2 devices × 5 metrics), with `hash`.
fn birth(gw: &str, hash: &str) -> Birth {
    let b = batch(gw, 0, 0, 2, 5, 1);
    let mut devices: Vec<fieldlink_protocol::DeviceInfo> = Vec::new();
    for p in &b.points {
        if devices.last().map(|d| &d.name) != Some(&p.device) {
            devices.push(fieldlink_protocol::DeviceInfo {
                name: p.device.clone(),
                points: Vec::new(),
            });
        }
        if let Some(d) = devices.last_mut() {
            d.points.push(fieldlink_protocol::PointInfo {
                name: p.metric.clone(),
                unit: Some("V".into()),
                kind: fieldlink_protocol::DataKind::Number,
                writable: false,
            });
        }
    }
    Birth {
        gateway: id(gw),
        boot_epoch: 1,
        ts_ms: now_ms(),
        agent_version: "0.1.0".into(),
        config_hash: hash.into(),
        devices,
    }
}

/// Most messages of one gateway parked at once in these tests.
const PARK_SHARE: usize = 30;

async fn start(
    broker: &Mosquitto,
    store: &Arc<Store>,
    client_id: &str,
    wait: Duration,
) -> RunningIngest {
    let settings = IngestSettings {
        birth_wait: wait,
        max_parked_per_gateway: PARK_SHARE,
        ..Default::default()
    };
    RunningIngest::start(broker, client_id, settings, store.clone()).await
}

fn aliased(b: &TelemetryBatch, birth: &Birth) -> Vec<u8> {
    encode_telemetry_aliased(b, Encoding::Binary, &SeriesAliases::from_birth(birth)).unwrap()
}

async fn wait_points(store: &Store, want: i64) {
    wait_for("points stored", 60, || async move {
        let n = store.count_points().await.map_err(|e| e.to_string())?;
        (n == want)
            .then_some(())
            .ok_or(format!("{n} of {want} rows"))
    })
    .await;
}

async fn stored_values(store: &Store, b: &TelemetryBatch) -> Vec<(i64, fieldlink_protocol::Value)> {
    let mut out = Vec::new();
    for p in &b.points {
        let key = SeriesKey {
            gateway: b.gateway.clone(),
            device: p.device.clone(),
            metric: p.metric.clone(),
        };
        let sid = store.series_id(&key).await.unwrap().expect("series exists");
        let rows = store
            .raw_points(sid, p.ts_ms, p.ts_ms + 1, 10)
            .await
            .unwrap();
        out.extend(rows.into_iter().map(|r| (r.ts_ms, r.value)));
    }
    out
}

async fn scenario(store: Store) {
    store.migrate().await.unwrap();
    let store = Arc::new(store);
    let broker = Mosquitto::start().expect("start mosquitto (package mosquitto)");
    let (host, port) = (broker.host().to_string(), broker.port());
    let t0 = now_ms() - 3_600_000;
    let first = start(&broker, &store, "cloud-a", Duration::from_secs(20)).await;

    // 1. Telemetry before its birth: parked and acknowledged, then stored once the birth
    //    arrives. Meanwhile another gateway sends 40 batches naming a birth nobody saw (more
    //    than Mosquitto's 20 messages in flight towards the cloud): PARK_SHARE of them are
    //    parked, the rest dead-lettered at once, and a third gateway's batch is stored while
    //    they all still wait.
    let b1 = birth("gw-a", "h1");
    let early = batch("gw-a", 1, t0, 2, 5, 3);
    let unseen = birth("gw-x", "hx");
    let mut stray: Vec<_> = (0..40)
        .map(|i| {
            let b = batch("gw-x", 100 + i, t0 + i as i64 * 1_000, 2, 5, 1);
            (topic("gw-x", "telemetry"), aliased(&b, &unseen))
        })
        .collect();
    stray.insert(0, (topic("gw-a", "telemetry"), aliased(&early, &b1)));
    publish_all(&host, port, "gw-a-1", stray).await;
    let other = batch("gw-b", 1, t0, 2, 5, 1);
    publish_all(
        &host,
        port,
        "gw-b-1",
        vec![(topic("gw-b", "telemetry"), encode(&other, Encoding::Binary))],
    )
    .await;
    wait_points(&store, 10).await;
    let parked = |store: Arc<Store>| async move {
        let groups = store.parked_groups().await.unwrap();
        groups
            .iter()
            .map(|g| (g.gateway.to_string(), g.messages))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let want_parked: std::collections::BTreeMap<_, _> = [
        ("gw-a".to_string(), 1),
        ("gw-x".to_string(), PARK_SHARE as i64),
    ]
    .into();
    wait_for("parked batches", 20, || {
        let p = parked(store.clone());
        let want = want_parked.clone();
        async move {
            let got = p.await;
            (got == want).then_some(()).ok_or(format!("{got:?}"))
        }
    })
    .await;
    let over_share = store.dead_letters(100).await.unwrap();
    assert_eq!(
        over_share
            .iter()
            .filter(|d| d.reason == "unknown_birth" && d.topic.contains("gw-x"))
            .count(),
        40 - PARK_SHARE,
        "past its share a gateway's batches are dead-lettered at once"
    );
    assert_eq!(
        store.count_points().await.unwrap(),
        10,
        "read before its birth"
    );
    // They were acknowledged: the same session after a restart gets none of them again.
    first.stop().await;
    let first = start(&broker, &store, "cloud-a", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        parked(store.clone()).await,
        want_parked,
        "parked batches were not redelivered"
    );
    let birth1 = json::encode(&Status::Online(b1.clone())).unwrap();
    publish_all(
        &host,
        port,
        "gw-a-2",
        vec![(topic("gw-a", "status"), birth1)],
    )
    .await;
    wait_points(&store, 10 + 30).await;
    let want: Vec<_> = early
        .points
        .iter()
        .map(|p| (p.ts_ms, p.value.clone()))
        .collect();
    assert_eq!(stored_values(&store, &early).await, want);
    let kept = store
        .birth(&id("gw-a"), "h1")
        .await
        .unwrap()
        .expect("birth kept");
    assert_eq!(
        kept.table_check,
        i64::from(SeriesAliases::from_birth(&b1).check())
    );

    // 2. A new configuration: the birth changes; both births stay readable. The cloud answers
    //    the birth on the gateway's control topic with the layouts it reads.
    let mut b2 = birth("gw-a", "h2");
    b2.devices.reverse();
    let birth2 = json::encode(&Status::Online(b2.clone())).unwrap();
    let mut control = control_listener(&broker, "gw-a").await;
    publish_all(
        &host,
        port,
        "gw-a-3",
        vec![(topic("gw-a", "status"), birth2)],
    )
    .await;
    wait_for("second birth kept", 20, || {
        let s = store.clone();
        async move {
            s.birth(&id("gw-a"), "h2")
                .await
                .map_err(|e| e.to_string())?
                .map(|_| ())
                .ok_or("not yet".to_string())
        }
    })
    .await;
    let announced = tokio::time::timeout(Duration::from_secs(10), control.recv())
        .await
        .expect("an announcement within 10 s of the birth")
        .unwrap();
    assert_eq!(announced, Control::accepts_all());
    first.stop().await;

    // 3. Restart with the retained birth cleared: births come from the store.
    publish_all(
        &host,
        port,
        "gw-a-4",
        vec![(topic("gw-a", "status"), Vec::new())],
    )
    .await;
    let second = start(&broker, &store, "cloud-b", Duration::from_secs(2)).await;
    let late_old = batch("gw-a", 2, t0 + 10_000, 2, 5, 2);
    let late_new = batch("gw-a", 3, t0 + 20_000, 2, 5, 2);
    let named = batch("gw-a", 4, t0 + 30_000, 2, 5, 1);
    // The packed layout (version 3) and aliased JSON (version 2), as an agent writes them once
    // told.
    let packed = batch("gw-a", 5, t0 + 40_000, 2, 5, 3);
    let aliased_json = batch("gw-a", 6, t0 + 50_000, 2, 5, 2);
    publish_all(
        &host,
        port,
        "gw-a-5",
        vec![
            (topic("gw-a", "telemetry"), aliased(&late_old, &b1)),
            (topic("gw-a", "telemetry"), aliased(&late_new, &b2)),
            (topic("gw-a", "telemetry"), encode(&named, Encoding::Binary)),
            (
                topic("gw-a", "telemetry"),
                binary::encode_packed(&packed, &SeriesAliases::from_birth(&b2)).unwrap(),
            ),
            (
                topic("gw-a", "telemetry"),
                json::encode_aliased(&aliased_json, &SeriesAliases::from_birth(&b1)).unwrap(),
            ),
        ],
    )
    .await;
    wait_points(&store, 10 + 30 + 20 + 20 + 10 + 30 + 20).await;
    for b in [&late_old, &late_new, &named, &packed, &aliased_json] {
        let want: Vec<_> = b
            .points
            .iter()
            .map(|p| (p.ts_ms, p.value.clone()))
            .collect();
        assert_eq!(stored_values(&store, b).await, want);
    }

    // 4. A birth that never comes: a dead letter after the wait, payload kept.
    let stray = aliased(
        &batch("gw-a", 5, t0 + 40_000, 2, 5, 1),
        &birth("gw-a", "h9"),
    );
    publish_all(
        &host,
        port,
        "gw-a-6",
        vec![(topic("gw-a", "telemetry"), stray.clone())],
    )
    .await;
    let dead = wait_for("the dead letter", 30, || {
        let s = store.clone();
        async move {
            let d = s.dead_letters(100).await.map_err(|e| e.to_string())?;
            d.into_iter()
                .find(|d| d.reason == "unknown_birth" && d.detail.contains("h9"))
                .ok_or("none yet".to_string())
        }
    })
    .await;
    assert_eq!(dead.payload, stray);
    assert_eq!(store.count_points().await.unwrap(), 140);
    // The other gateway's parked batches expired too, and nothing is left parked.
    wait_for("parked batches expired", 30, || {
        let s = store.clone();
        async move {
            let g = s.parked_groups().await.map_err(|e| e.to_string())?;
            g.is_empty().then_some(()).ok_or(format!("{g:?}"))
        }
    })
    .await;
    let expired = store.dead_letters(100).await.unwrap();
    assert_eq!(
        expired
            .iter()
            .filter(|d| d.reason == "unknown_birth" && d.topic.contains("gw-x"))
            .count(),
        40,
        "every batch of the unseen birth is a dead letter, none lost"
    );
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliased_telemetry_into_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(sqlite_store(dir.path()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliased_telemetry_into_postgres() {
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    scenario(postgres_store(&pg).await).await;
}
