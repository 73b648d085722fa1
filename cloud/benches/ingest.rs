//! Goal C1 and the choice of insert path, measured on this machine in one run.
//!
//! 1. Insert paths: the same rows written through the store's three idempotent paths (binary
//!    COPY into a staging table + INSERT … SELECT … ON CONFLICT DO NOTHING, UNNEST arrays,
//!    multi-row VALUES), each into a fresh database, then written again (all conflicts).
//! 2. End to end, PostgreSQL: publishers of realistic batches (several gateways, 10 devices ×
//!    100 registers per batch, binary encoding) → Mosquitto → ingest → PostgreSQL for
//!    `FIELDLINK_BENCH_SECS` (default 30) seconds; points/s committed. Then the same rows are
//!    read back, the table emptied, and the rows written again by raw binary COPY into the same
//!    table: the baseline. The ratio is the figure C1 is judged by.
//! 3. The same end to end for SQLite, against plain prepared INSERTs of the same rows in one
//!    transaction (SQLite has no COPY).
//!
//! Run: `cargo bench -p fieldlink-cloud --bench ingest`. Services are started by testkit on free
//! ports; nothing on the machine is used.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fieldlink_cloud::ingest::{self, FlushPolicy, IngestSettings, MqttSettings};
use fieldlink_cloud::metrics::Metrics;
use fieldlink_cloud::store::*;
use fieldlink_protocol::{encode_telemetry, Encoding, Ident, Point, Quality, TelemetryBatch};
use fieldlink_testkit::{Mosquitto, Postgres};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const GATEWAYS: usize = 8;
const DEVICES: usize = 10;
const REGISTERS: usize = 100;

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn secs() -> u64 {
    std::env::var("FIELDLINK_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

/// One poll cycle of one gateway: 10 devices × 100 registers at one timestamp.
fn cycle(gw: &str, seq: u64, ts: i64) -> TelemetryBatch {
    let mut b = TelemetryBatch::new(id(gw), 1, seq);
    for d in 0..DEVICES {
        let dev = id(&format!("meter-{d:02}"));
        for r in 0..REGISTERS {
            let raw = ((seq as usize * 31 + d * 7 + r * 13) % 5_000) as f64;
            b.points.push(Point::new(
                dev.clone(),
                id(&format!("reg{r:03}")),
                ts,
                raw / 10.0,
            ));
        }
    }
    b
}

fn rows_for(batches: &[TelemetryBatch]) -> Vec<WriteBatch> {
    let mut keys = std::collections::HashMap::new();
    batches
        .iter()
        .map(|b| WriteBatch {
            points: b
                .points
                .iter()
                .map(|p| PointRow {
                    key: keys
                        .entry((b.gateway.clone(), p.device.clone(), p.metric.clone()))
                        .or_insert_with(|| {
                            Arc::new(SeriesKey {
                                gateway: b.gateway.clone(),
                                device: p.device.clone(),
                                metric: p.metric.clone(),
                            })
                        })
                        .clone(),
                    ts_ms: p.ts_ms,
                    value: p.value.clone(),
                    quality: Quality::Good,
                })
                .collect(),
            ..Default::default()
        })
        .collect()
}

async fn insert_paths(pg: &Postgres) {
    println!("\n== idempotent insert paths (PostgreSQL, 10,000-point batches) ==");
    let t0 = 1_704_067_200_000;
    let batches: Vec<TelemetryBatch> = (0..40u64)
        .map(|i| cycle(&format!("gw-{}", i % 4), i, t0 + (i / 4) as i64 * 1_000))
        .collect();
    // Ten 1,000-point cycles per write.
    let mut writes = rows_for(&batches);
    let mut merged: Vec<WriteBatch> = Vec::new();
    for chunk in writes.chunks_mut(10) {
        let mut w = WriteBatch::default();
        for c in chunk {
            w.points.append(&mut c.points);
        }
        merged.push(w);
    }
    let total: usize = merged.iter().map(|w| w.points.len()).sum();
    for (name, path) in [
        ("copy_staging", InsertPath::CopyStaging),
        ("unnest", InsertPath::Unnest),
        ("values", InsertPath::Values),
    ] {
        let url = pg.create_database(&format!("paths_{name}")).unwrap();
        let spec = StoreSpec::Postgres {
            url,
            timescale: TimescaleMode::Off,
            insert_path: path,
            statement_rows: DEFAULT_STATEMENT_ROWS,
        };
        let store = Store::open(&spec).await.unwrap();
        store.migrate().await.unwrap();
        // Warm the series dictionary so only point inserts are timed.
        store.write(merged[0].clone()).await.unwrap();
        let Store::Postgres(pg_store) = &store else {
            unreachable!("opened as PostgreSQL")
        };
        pg_store.clear_points().await.unwrap();
        let mut rates = Vec::new();
        for round in ["new", "replay"] {
            let t = Instant::now();
            let mut inserted = 0;
            for w in &merged {
                inserted += store.write(w.clone()).await.unwrap().points_inserted;
            }
            let rate = total as f64 / t.elapsed().as_secs_f64();
            rates.push(format!(
                "{round}: {rate:>9.0} points/s ({inserted} inserted)"
            ));
        }
        println!("{name:<13} {}   {}", rates[0], rates[1]);
    }
}

/// Publishes cycles from one MQTT client per gateway until `stop`, up to 100 publishes in
/// flight each, counting the points published.
async fn publishers(
    broker: &Mosquitto,
    stop: Arc<AtomicBool>,
    published: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 30 * 86_400_000;
    for g in 0..GATEWAYS {
        let gw = format!("site-{g:02}");
        let mut o = MqttOptions::new(format!("bench-{gw}"), broker.host(), broker.port());
        o.set_inflight(100).set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut el) = AsyncClient::new(o, 200);
        let stop = stop.clone();
        let published = published.clone();
        handles.push(tokio::spawn(async move {
            tokio::spawn(async move { while el.poll().await.is_ok() {} });
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let b = cycle(&gw, seq, t0 + seq as i64 * 1_000);
                let bytes = encode_telemetry(&b, Encoding::Binary).unwrap();
                let topic = format!("fieldlink/v1/{gw}/telemetry");
                if client
                    .publish(topic, QoS::AtLeastOnce, false, bytes)
                    .await
                    .is_err()
                {
                    break;
                }
                published.fetch_add(b.points.len() as u64, Ordering::Relaxed);
                seq += 1;
            }
        }));
    }
    handles
}

/// Runs ingest against `store` for the configured time; returns committed points/s.
async fn end_to_end(label: &str, store: Arc<Store>) -> (f64, u64) {
    let broker = Mosquitto::start().expect("start mosquitto");
    let metrics = Arc::new(Metrics::new());
    let stop_ingest = CancellationToken::new();
    let tracker = TaskTracker::new();
    let settings = IngestSettings {
        flush: FlushPolicy {
            max_points: 50_000,
            max_delay: Duration::from_millis(200),
            idle: Duration::from_millis(3),
        },
        ..Default::default()
    };
    let mqtt = MqttSettings {
        host: broker.host().into(),
        port: broker.port(),
        client_id: format!("bench-cloud-{label}"),
        credentials: None,
        tls: None,
        keep_alive: Duration::from_secs(30),
        max_packet_bytes: 1 << 20,
    };
    let handle = ingest::start(
        &mqtt,
        settings,
        store.clone(),
        metrics.clone(),
        stop_ingest.clone(),
        &tracker,
    )
    .unwrap();
    while !handle.broker_connected() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stop_pub = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let pubs = publishers(&broker, stop_pub.clone(), published.clone()).await;
    // Warm-up, then measure committed points over the window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stored0 = metrics.points_stored.get();
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs())).await;
    let stored1 = metrics.points_stored.get();
    let elapsed = t.elapsed().as_secs_f64();
    stop_pub.store(true, Ordering::Relaxed);
    for p in pubs {
        let _ = p.await;
    }
    let rate = (stored1 - stored0) as f64 / elapsed;
    println!(
        "{label:<10} MQTT → store: {rate:>9.0} points/s committed over {elapsed:.1} s ({} points published, {} stored in all, {} batches)",
        published.load(Ordering::Relaxed),
        metrics.points_stored.get(),
        metrics.batches.get(),
    );
    stop_ingest.cancel();
    tracker.close();
    tracker.wait().await;
    (rate, metrics.points_stored.get())
}

async fn postgres_c1(pg: &Postgres) {
    println!("\n== C1: PostgreSQL ==");
    let url = pg.create_database("c1").unwrap();
    let store = Arc::new(
        Store::open(&StoreSpec::postgres(url.clone(), TimescaleMode::Off))
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    let (rate, stored) = end_to_end("postgres", store.clone()).await;

    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows: Vec<(i64, i64, f64)> = client
        .query(
            "SELECT series_id, (extract(epoch FROM time) * 1000)::int8, value FROM points",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(rows.len() as u64, stored);
    let Store::Postgres(pg_store) = &*store else {
        unreachable!()
    };
    pg_store.clear_points().await.unwrap();
    let t = Instant::now();
    for chunk in rows.chunks(50_000) {
        pg_store.raw_copy(chunk).await.unwrap();
    }
    let copy_rate = rows.len() as f64 / t.elapsed().as_secs_f64();
    println!("postgres   raw binary COPY of the same {} rows into the same table: {copy_rate:>9.0} points/s", rows.len());
    println!(
        "postgres   ratio ingest / raw COPY = {:.2}",
        rate / copy_rate
    );
}

async fn sqlite_c1() {
    println!("\n== C1: SQLite ==");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let store = Arc::new(
        Store::open(&StoreSpec::Sqlite { path: path.clone() })
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    let (rate, stored) = end_to_end("sqlite", store.clone()).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: Vec<(i64, i64, f64)> = conn
        .prepare("SELECT series_id, time, value FROM points")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(conn);
    assert_eq!(rows.len() as u64, stored);
    let Store::Sqlite(sq) = &*store else {
        unreachable!()
    };
    sq.clear_points().await.unwrap();
    let t = Instant::now();
    for chunk in rows.chunks(50_000) {
        sq.raw_insert(chunk.to_vec()).await.unwrap();
    }
    let base = rows.len() as f64 / t.elapsed().as_secs_f64();
    println!("sqlite     plain INSERTs of the same {} rows, one transaction per 50,000: {base:>9.0} points/s", rows.len());
    println!(
        "sqlite     ratio ingest / plain INSERT = {:.2}",
        rate / base
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful: run only when
    // benchmarking.
    if !std::env::args().any(|a| a == "--bench") {
        println!("run with `cargo bench -p fieldlink-cloud --bench ingest`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pg = Postgres::start().expect("start PostgreSQL");
    rt.block_on(async {
        insert_paths(&pg).await;
        postgres_c1(&pg).await;
        sqlite_c1().await;
    });
}
