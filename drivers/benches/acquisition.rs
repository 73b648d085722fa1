//! Acquisition figures on the reference workload (10 Modbus TCP devices × 100 holding
//! registers) against the device simulator on loopback, each next to a baseline measured in the
//! same run:
//!
//! - requests per poll cycle (goal A3: 10), against a one-request-per-register plan;
//! - one poll cycle's latency, one device and all ten at once, against the same baseline;
//! - decoded points per second, mixed types, against a bare `u16` → `Point` loop.
//!
//! Run with `cargo bench -p fieldlink-drivers --bench acquisition`. Prints figures; asserts
//! nothing about time.

use std::time::{Duration, Instant};

use fieldlink_drivers::event::Readings;
use fieldlink_drivers::modbus::poll::decode_request;
use fieldlink_drivers::modbus::StationOptions;
use fieldlink_drivers::plan::{PlanItem, PlanLimits, ReadPlan};
use fieldlink_drivers::pointmap::{DeviceKind, PointMap, PointMapConfig};
use fieldlink_drivers::{Acquisition, DriverEvent};
use fieldlink_protocol::{Ident, Point, Quality, Value};
use fieldlink_sim::{SimConfig, Simulator};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const DEVICES: u8 = 10;
const REGISTERS: u16 = 100;

fn sim_config() -> String {
    let mut s = String::new();
    for unit in 1..=DEVICES {
        s += &format!(
            "[[units]]\nid = {unit}\n[[units.points]]\ntable = \"holding_register\"\naddress = 0\n\
             repeat = {REGISTERS}\nwaveform = {{ kind = \"counter\", start = 0, increment = 1, interval_s = 1 }}\n"
        );
    }
    s
}

fn point_map(port: u16, poll_ms: u64) -> PointMap {
    let devices: Vec<serde_json::Value> = (1..=DEVICES)
        .map(|unit| {
            let points: Vec<serde_json::Value> = (0..REGISTERS)
                .map(|a| serde_json::json!({"name": format!("r{a}"), "table": "holding_register", "address": a}))
                .collect();
            serde_json::json!({"name": format!("meter-{unit}"), "poll_interval_ms": poll_ms,
                "transport": {"kind": "tcp", "host": "127.0.0.1", "port": port, "unit_id": unit},
                "points": points})
        })
        .collect();
    let config: PointMapConfig =
        serde_json::from_value(serde_json::json!({ "devices": devices })).expect("map parses");
    PointMap::from_config(&config).expect("map is valid")
}

/// Merged reads (the planner's default) and the baseline: one register per request.
fn options(merged: bool) -> StationOptions {
    if merged {
        StationOptions::default()
    } else {
        StationOptions {
            max_registers: 1,
            ..StationOptions::default()
        }
    }
}

struct CycleFigures {
    requests_per_cycle: f64,
    cycles: u64,
}

/// Polls every 200 ms for `window` and counts the simulator's requests per completed cycle.
async fn requests_per_cycle(
    sim: &Simulator,
    port: u16,
    merged: bool,
    window: Duration,
) -> CycleFigures {
    let map = point_map(port, 200);
    let (tx, mut rx) = mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let acq = Acquisition::start(&map, options(merged), tx, cancel.clone());
    // Let every device finish a first poll before counting.
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < usize::from(DEVICES) {
        if let Some(DriverEvent::Readings(r, _)) = rx.recv().await {
            seen.insert(r.device.to_string());
        }
    }
    // Devices poll on one 200 ms grid and a poll takes a few milliseconds, so when every
    // device has reported the same number of polls none is on the wire: the simulator's request
    // count is read only at those moments, and no request of an unreported poll is counted.
    let before = sim.stats().requests_total();
    let mut readings = 0u64;
    let mut counted = (0u64, before);
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if let DriverEvent::Readings(r, _) = ev {
            assert_eq!(r.points.len(), usize::from(REGISTERS), "{:?}", r.failures);
            readings += 1;
            if readings.is_multiple_of(u64::from(DEVICES)) {
                counted = (readings, sim.stats().requests_total());
            }
        }
    }
    cancel.cancel();
    acq.join().await;
    let (readings, after) = counted;
    let requests = after - before;
    let cycles = readings / u64::from(DEVICES);
    CycleFigures {
        requests_per_cycle: requests as f64 * f64::from(DEVICES) / readings.max(1) as f64,
        cycles,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Latency {
    one_p50: Duration,
    one_p99: Duration,
    all_p50: Duration,
    all_p99: Duration,
}

/// Read-now round trips: one device, then all ten concurrently (a whole poll cycle).
async fn cycle_latency(port: u16, merged: bool, rounds: usize) -> Latency {
    let map = point_map(port, 3_600_000);
    let (tx, mut rx) = mpsc::channel(1024);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let cancel = CancellationToken::new();
    let acq = Acquisition::start(&map, options(merged), tx, cancel.clone());
    for d in 1..=DEVICES {
        acq.read_now(&format!("meter-{d}"))
            .await
            .expect("warm-up read");
    }
    let mut one = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let r = acq.read_now("meter-1").await.expect("read");
        one.push(t.elapsed());
        assert_eq!(r.points.len(), usize::from(REGISTERS));
    }
    let names: Vec<String> = (1..=DEVICES).map(|d| format!("meter-{d}")).collect();
    let mut all = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let results = futures::future::join_all(names.iter().map(|n| acq.read_now(n))).await;
        all.push(t.elapsed());
        assert!(results.iter().all(|r| r.is_ok()));
    }
    cancel.cancel();
    acq.join().await;
    drain.abort();
    one.sort();
    all.sort();
    Latency {
        one_p50: percentile(&one, 0.5),
        one_p99: percentile(&one, 0.99),
        all_p50: percentile(&all, 0.5),
        all_p99: percentile(&all, 0.99),
    }
}

/// Decoded points per second for a mixed map of 100 registers, and for the bare baseline.
fn decode_throughput(window: Duration) -> (f64, f64) {
    let kinds = [
        ("u16", "ABCD"),
        ("i32", "CDAB"),
        ("f32", "ABCD"),
        ("f64", "DCBA"),
        ("bit:3", "ABCD"),
    ];
    let mut points = Vec::new();
    let mut address = 0u16;
    let mut i = 0;
    while address < 96 {
        let (kind, order) = kinds[i % kinds.len()];
        let scaled = !kind.starts_with("bit");
        points.push(serde_json::json!({"name": format!("p{i}"), "table": "holding_register",
            "address": address, "type": kind, "order": order, "scale": if scaled { 0.1 } else { 1.0 }}));
        address += match kind {
            "i32" | "f32" => 2,
            "f64" => 4,
            _ => 1,
        };
        i += 1;
    }
    let config: PointMapConfig = serde_json::from_value(serde_json::json!({"devices": [{
        "name": "d", "transport": {"kind": "tcp", "host": "x", "unit_id": 1}, "points": points}]}))
    .unwrap();
    let map = PointMap::from_config(&config).unwrap();
    let DeviceKind::Modbus(m) = &map.devices[0].kind else {
        unreachable!()
    };
    let items = m.points.iter().enumerate().map(|(index, p)| PlanItem {
        index,
        table: p.table,
        address: p.address,
        count: p.count(),
    });
    let plan = ReadPlan::new(items, PlanLimits::with_gap(0));
    assert_eq!(plan.len(), 1);
    let req = &plan.requests()[0];
    let words: Vec<u16> = (0..req.count)
        .map(|i| i.wrapping_mul(2654).wrapping_add(7))
        .collect();
    let device = Ident::new("d").unwrap();

    let start = Instant::now();
    let mut decoded = 0u64;
    while start.elapsed() < window {
        for _ in 0..100 {
            let mut out = Readings::new(device.clone());
            decode_request(&device, &m.points, req, &words, 1, &mut out);
            decoded += out.points.len() as u64;
            std::hint::black_box(&out);
        }
    }
    let mixed = decoded as f64 / start.elapsed().as_secs_f64();

    let metrics: Vec<Ident> = (0..words.len())
        .map(|i| Ident::new(&format!("r{i}")).unwrap())
        .collect();
    let start = Instant::now();
    let mut made = 0u64;
    while start.elapsed() < window {
        for _ in 0..100 {
            let out: Vec<Point> = words
                .iter()
                .zip(&metrics)
                .map(|(w, m)| Point {
                    device: device.clone(),
                    metric: m.clone(),
                    ts_ms: 1,
                    value: Value::Number(f64::from(*w)),
                    quality: Quality::Good,
                })
                .collect();
            made += out.len() as u64;
            std::hint::black_box(&out);
        }
    }
    let bare = made as f64 / start.elapsed().as_secs_f64();
    (mixed, bare)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sim = Simulator::from_config(SimConfig::from_toml_str(&sim_config()).expect("sim config"))
            .expect("sim valid");
        let tcp = sim.bind_tcp("127.0.0.1:0".parse().unwrap()).await.expect("bind");
        let port = tcp.local_addr().port();

        let window = Duration::from_secs(4);
        let merged = requests_per_cycle(&sim, port, true, window).await;
        let naive = requests_per_cycle(&sim, port, false, window).await;
        println!("reference workload: {DEVICES} Modbus TCP devices x {REGISTERS} holding registers, simulator on loopback");
        println!(
            "requests per poll cycle: {:.1} planned ({} cycles), {:.1} one-register-per-request baseline ({} cycles); ratio {:.0}x fewer",
            merged.requests_per_cycle,
            merged.cycles,
            naive.requests_per_cycle,
            naive.cycles,
            naive.requests_per_cycle / merged.requests_per_cycle
        );

        let planned = cycle_latency(port, true, 300).await;
        let baseline = cycle_latency(port, false, 30).await;
        println!(
            "poll latency, one device: p50 {:?} p99 {:?} planned; p50 {:?} p99 {:?} baseline; p50 ratio {:.0}x",
            planned.one_p50, planned.one_p99, baseline.one_p50, baseline.one_p99,
            baseline.one_p50.as_secs_f64() / planned.one_p50.as_secs_f64()
        );
        println!(
            "poll latency, all {DEVICES} devices concurrently: p50 {:?} p99 {:?} planned; p50 {:?} p99 {:?} baseline; p50 ratio {:.0}x",
            planned.all_p50, planned.all_p99, baseline.all_p50, baseline.all_p99,
            baseline.all_p50.as_secs_f64() / planned.all_p50.as_secs_f64()
        );
        tcp.stop().await.expect("stop sim");
    });
    let (mixed, bare) = decode_throughput(Duration::from_secs(2));
    println!(
        "decoded points/s: {:.2} M mixed types with scale (u16, i32 CDAB, f32, f64 DCBA, bit); {:.2} M bare u16 -> Point baseline; ratio {:.2}",
        mixed / 1e6,
        bare / 1e6,
        mixed / bare
    );
}
