//! Per-gateway quotas against a real Mosquitto and the cloud's ingest on SQLite and PostgreSQL:
//! one gateway sending ten times its quota is asked to slow down on its control topic, is
//! stored in full through the grace period, then has what it sends beyond its rate dropped and
//! counted; every point it sent is either stored or counted as dropped, none unaccounted for;
//! an honest gateway beside it keeps every reading and is never charged.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fieldlink_cloud::ingest::{IngestSettings, QuotaSettings};
use fieldlink_cloud::store::*;
use fieldlink_protocol::{Control, Encoding};
use fieldlink_testkit::Mosquitto;

const QUOTA: QuotaSettings = QuotaSettings {
    points_per_s: 1_000,
    messages_per_s: 100,
    burst: Duration::from_secs(1),
    grace: Duration::from_secs(2),
};

async fn scenario(store: Store) {
    store.migrate().await.unwrap();
    let store = Arc::new(store);
    let broker = Mosquitto::start().expect("start mosquitto (package mosquitto)");
    let (host, port) = (broker.host().to_string(), broker.port());
    let ingest = RunningIngest::start(
        &broker,
        "cloud-quota",
        IngestSettings {
            quota: QUOTA,
            ..Default::default()
        },
        store.clone(),
    )
    .await;
    let metrics = ingest.metrics.clone();
    let mut control = control_listener(&broker, "flood").await;

    // 6 s of the flood: 20 messages of 500 points per second, ten times its points quota; the
    // honest gateway sends 10 messages of 10 points per second, within its quota.
    // Batches 50 s apart, all in the past (the future is refused).
    let t0 = now_ms() - 3 * 3_600_000;
    let flood: Vec<_> = (0..120u64)
        .map(|i| {
            let b = batch("flood", i + 1, t0 + i as i64 * 50_000, 10, 5, 10);
            (topic("flood", "telemetry"), encode(&b, Encoding::Binary))
        })
        .collect();
    let honest: Vec<_> = (0..60u64)
        .map(|i| {
            let b = batch("honest", i + 1, t0 + i as i64 * 10_000, 2, 5, 1);
            (topic("honest", "telemetry"), encode(&b, Encoding::Binary))
        })
        .collect();
    let sent_flood_points = 120 * 500;
    let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = host.clone();
    let flooding = tokio::spawn(async move {
        publish_counting(&h, port, "flood", flood, Duration::from_millis(50), acked).await
    });
    let honest_acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    publish_counting(
        &host,
        port,
        "honest",
        honest,
        Duration::from_millis(100),
        honest_acked,
    )
    .await;
    flooding.await.unwrap();

    // Asked to slow down, at a rate within its quota.
    let asked = tokio::time::timeout(Duration::from_secs(10), control.recv())
        .await
        .expect("a slow-down request within 10 s")
        .unwrap();
    let Control::SlowDown {
        points_per_s,
        messages_per_s,
        for_ms,
    } = asked
    else {
        panic!("a slow-down request, not {asked:?}")
    };
    assert!(points_per_s <= QUOTA.points_per_s && points_per_s > 0);
    assert!(messages_per_s <= QUOTA.messages_per_s && messages_per_s > 0);
    assert!(for_ms > 0);

    // Every point of the flood is stored or counted as dropped; some of each.
    let flood_info = wait_for("the flood accounted for", 30, || {
        let s = store.clone();
        async move {
            let info = s
                .gateway(&id("flood"))
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no gateway yet")?;
            let mut stored = 0i64;
            for d in 0..10 {
                for m in 0..5 {
                    let key = SeriesKey {
                        gateway: id("flood"),
                        device: id(&format!("dev{d}")),
                        metric: id(&format!("m{m}")),
                    };
                    if let Some(sid) = s.series_id(&key).await.map_err(|e| e.to_string())? {
                        stored += s
                            .raw_points(sid, 0, i64::MAX / 2, 100_000)
                            .await
                            .map_err(|e| e.to_string())?
                            .len() as i64;
                    }
                }
            }
            let dropped = info.quota.points;
            (stored + dropped == sent_flood_points)
                .then_some((info, stored))
                .ok_or(format!(
                    "{stored} stored + {dropped} dropped of {sent_flood_points}"
                ))
        }
    })
    .await;
    let (info, stored) = flood_info;
    assert!(info.quota.messages > 0 && info.quota.points > 0, "{info:?}");
    assert!(info.quota.last_at_ms.is_some());
    assert!(
        stored > 0,
        "the flood's rate worth and its grace were stored"
    );
    assert_eq!(info.quota.points % 500, 0, "whole messages are dropped");
    assert_eq!(info.quota.messages * 500, info.quota.points);

    // The honest gateway kept everything and was never charged.
    let honest = store.gateway(&id("honest")).await.unwrap().unwrap();
    assert_eq!(honest.quota, QuotaDrops::default());
    wait_for("the honest gateway's points", 20, || {
        let s = store.clone();
        async move {
            let mut n = 0;
            for d in 0..2 {
                for m in 0..5 {
                    let key = SeriesKey {
                        gateway: id("honest"),
                        device: id(&format!("dev{d}")),
                        metric: id(&format!("m{m}")),
                    };
                    if let Some(sid) = s.series_id(&key).await.map_err(|e| e.to_string())? {
                        n += s
                            .raw_points(sid, 0, i64::MAX / 2, 10_000)
                            .await
                            .map_err(|e| e.to_string())?
                            .len();
                    }
                }
            }
            (n == 600).then_some(()).ok_or(format!("{n} of 600"))
        }
    })
    .await;

    // A sample of what was dropped, and the counters.
    let dead = store.dead_letters(100).await.unwrap();
    assert!(
        dead.iter()
            .any(|d| d.reason == "over_quota" && d.topic == topic("flood", "telemetry")),
        "{dead:?}"
    );
    let text = metrics.render();
    let slow_downs = metric_value(&text, "fieldlink_cloud_quota_slow_downs_total");
    assert!(slow_downs.is_some_and(|n| n >= 1.0), "{text}");
    let dropped = metric_value(
        &text,
        "fieldlink_cloud_quota_messages_total{outcome=\"dropped\"}",
    );
    assert_eq!(dropped, Some(info.quota.messages as f64), "{text}");
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_over_quota_is_slowed_then_shed_and_counted_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(sqlite_store(dir.path()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_over_quota_is_slowed_then_shed_and_counted_on_postgres() {
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    scenario(postgres_store(&pg).await).await;
}
