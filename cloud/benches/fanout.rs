//! Whether the live fan-out between instances keeps up with ingest, measured on this machine in
//! one run against one PostgreSQL:
//!
//! 1. Baseline: batches of eight gateways' poll cycles (8 × 10 devices × 100 registers) written
//!    by the store (`Store::write`, the ingest writer's path) for `FIELDLINK_BENCH_SECS`
//!    (default 10) seconds: points/s committed.
//! 2. Fan-out: the same batches encoded into payloads and sent with `pg_notify` on a
//!    connection of their own, one statement per batch, while a listener on another connection
//!    decodes every payload: points/s from the first send to the last point decoded, and the
//!    payloads missed (none expected).
//!
//! The ratio fan-out / store above 1 means an instance publishes its points faster than it
//! commits them, so at full ingest rate nothing is shed for want of speed.
//!
//! Run: `cargo bench -p fieldlink-cloud --bench fanout`. PostgreSQL is started by testkit on a
//! free port.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fieldlink_cloud::store::pg_channel::{self, ListenerEvent, NotifySender};
use fieldlink_cloud::store::*;
use fieldlink_cloud::ws::fanout::wire::{Encoder, Inbox, Remote};
use fieldlink_protocol::{Ident, Quality, Value};
use fieldlink_testkit::Postgres;
use tokio_util::sync::CancellationToken;

const GATEWAYS: usize = 8;
const DEVICES: usize = 10;
const REGISTERS: usize = 100;

fn secs() -> u64 {
    std::env::var("FIELDLINK_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

fn keys() -> Vec<Arc<SeriesKey>> {
    let id = |s: String| Ident::new(&s).unwrap();
    let mut keys = Vec::new();
    for g in 0..GATEWAYS {
        for d in 0..DEVICES {
            for r in 0..REGISTERS {
                keys.push(Arc::new(SeriesKey {
                    gateway: id(format!("gw-{g}")),
                    device: id(format!("meter-{d:02}")),
                    metric: id(format!("reg{r:03}")),
                }));
            }
        }
    }
    keys
}

/// Every series once, at time `ts`.
fn batch(keys: &[Arc<SeriesKey>], n: u64, ts: i64) -> WriteBatch {
    WriteBatch {
        points: keys
            .iter()
            .enumerate()
            .map(|(i, k)| PointRow {
                key: k.clone(),
                ts_ms: ts,
                value: Value::Number(((n as usize * 31 + i * 13) % 5_000) as f64 / 10.0),
                quality: Quality::Good,
            })
            .collect(),
        ..WriteBatch::default()
    }
}

async fn store_rate(url: &str, keys: &[Arc<SeriesKey>]) -> f64 {
    let store = Store::open(&StoreSpec::postgres(url, TimescaleMode::Off))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let t0 = 1_700_000_000_000;
    store.write(batch(keys, 0, t0)).await.unwrap();
    let (start, mut points, mut n) = (Instant::now(), 0u64, 1u64);
    while start.elapsed() < Duration::from_secs(secs()) {
        let b = Arc::new(batch(keys, n, t0 + n as i64 * 1_000));
        points += b.points.len() as u64;
        store.write(b).await.unwrap();
        n += 1;
    }
    points as f64 / start.elapsed().as_secs_f64()
}

async fn fanout_rate(url: &str, keys: &[Arc<SeriesKey>]) -> (f64, u64, u64) {
    const CHANNEL: &str = "bench_live";
    let received = Arc::new(AtomicU64::new(0));
    let missed = Arc::new(AtomicU64::new(0));
    let last = Arc::new(std::sync::Mutex::new(Instant::now()));
    let (listening_tx, listening_rx) = tokio::sync::oneshot::channel();
    let stop = CancellationToken::new();
    let listener = {
        let (received, missed, last) = (received.clone(), missed.clone(), last.clone());
        let (url, stop) = (url.to_string(), stop.clone());
        tokio::spawn(async move {
            let mut inbox = Inbox::new("receiver");
            let mut listening = Some(listening_tx);
            pg_channel::listen(&url, CHANNEL, stop, |ev| match ev {
                ListenerEvent::Listening { .. } => {
                    if let Some(tx) = listening.take() {
                        let _ = tx.send(());
                    }
                }
                ListenerEvent::Lost { error, .. } => panic!("listener lost: {error}"),
                ListenerEvent::Notification { payload } => {
                    let t = inbox.take(payload, Instant::now());
                    missed.fetch_add(t.missed, Ordering::Relaxed);
                    if let Some(Remote::Batch(b)) = t.event {
                        received.fetch_add(b.points.len() as u64, Ordering::Relaxed);
                        *last.lock().unwrap() = Instant::now();
                    }
                }
            })
            .await;
        })
    };
    listening_rx.await.expect("listening");
    let mut encoder = Encoder::new("sender", pg_channel::MAX_PAYLOAD_BYTES);
    let mut sender = NotifySender::new(url);
    let (start, mut sent, mut payloads, mut bytes, mut n) =
        (Instant::now(), 0u64, 0u64, 0u64, 0u64);
    let mut out = Vec::new();
    while start.elapsed() < Duration::from_secs(secs()) {
        let b = batch(keys, n, 1_700_000_000_000 + n as i64 * 1_000);
        out.clear();
        assert_eq!(encoder.batch(&b, &mut out), 0);
        sender.send(CHANNEL, &out).await.unwrap();
        sent += b.points.len() as u64;
        payloads += out.len() as u64;
        bytes += out.iter().map(|p| p.len() as u64).sum::<u64>();
        n += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    listener.await.unwrap();
    let got = received.load(Ordering::Relaxed);
    assert_eq!(got, sent, "every point sent was decoded");
    let elapsed = last.lock().unwrap().duration_since(start).as_secs_f64();
    println!(
        "  {sent} points in {payloads} payloads, {:.1} bytes per point",
        bytes as f64 / sent as f64
    );
    (
        got as f64 / elapsed,
        payloads,
        missed.load(Ordering::Relaxed),
    )
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("run with `cargo bench -p fieldlink-cloud --bench fanout`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pg = Postgres::start().expect("start PostgreSQL");
    let store_url = pg.create_database("bench_store").unwrap();
    let keys = keys();
    rt.block_on(async {
        println!("batches of {} points, {} s each", keys.len(), secs());
        let store = store_rate(&store_url, &keys).await;
        println!("store (baseline): {store:.0} points/s committed");
        let (fanout, _, missed) = fanout_rate(&pg.url_for("bench_store"), &keys).await;
        println!("fan-out: {fanout:.0} points/s sent and decoded, {missed} payloads missed");
        println!("ratio fan-out / store: {:.2}", fanout / store);
    });
}
