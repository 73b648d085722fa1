//! Goal R5, the flood case of issue 14: the honest gateways' ingest lag while one gateway
//! publishes at 50× a normal gateway's rate, against the same fleet without the flood, in the
//! same run.
//!
//!     cargo bench -p fieldlink-e2e --bench flood
//!     FLOOD_BENCH_SECS=60 FLOOD_BENCH_BROKERS=mosquitto cargo bench -p fieldlink-e2e --bench flood
//!
//! For each broker (`FLOOD_BENCH_BROKERS`: `mosquitto`, `embedded` or `both`, the default): the
//! fleet of `fieldlink_e2e::fleet` (two honest agents polling every 100 ms, the cloud binary,
//! Mosquitto on the shipped configuration with PostgreSQL, or the embedded broker with SQLite),
//! a baseline phase of `FLOOD_BENCH_SECS` seconds (default 15) with only the honest gateways,
//! then a phase as long with `mallory` flooding at 50× [`NORMAL_POINTS_PER_S`] points/s in 50×
//! [`NORMAL_MESSAGES_PER_S`] messages/s, then up to 60 s for the honest readings to be complete.
//! Lag is measured as in the tests (`fieldlink_e2e::hostile`): WebSocket push arrival minus the
//! reading's timestamp, per reading taken during the phase, and the worst staleness sampled.

use std::time::{Duration, SystemTime};

use fieldlink_e2e::fleet::{BrokerKind, Fleet, ATTACKER};
use fieldlink_e2e::hostile::{
    check_delivery, flood, mib, Attacker, LagFigures, LagProbe, Verdict, NORMAL_MESSAGES_PER_S,
    NORMAL_POINTS_PER_S,
};

const TIMES: u64 = 50;

struct Row {
    broker: &'static str,
    phase: String,
    figures: Vec<LagFigures>,
    rss: Option<u64>,
}

fn main() {
    let secs: u64 = std::env::var("FLOOD_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let kinds: Vec<BrokerKind> = match std::env::var("FLOOD_BENCH_BROKERS").as_deref() {
        Ok("mosquitto") => vec![BrokerKind::Mosquitto],
        Ok("embedded") => vec![BrokerKind::Embedded],
        Ok("both") | Err(_) => vec![BrokerKind::Mosquitto, BrokerKind::Embedded],
        Ok(other) => panic!("FLOOD_BENCH_BROKERS={other}: mosquitto, embedded or both"),
    };
    let phase = Duration::from_secs(secs);
    let rt = fieldlink_e2e::runtime();
    let mut rows = Vec::new();
    for kind in kinds {
        rows.extend(rt.block_on(run(kind, phase)));
    }
    println!();
    println!(
        "honest gateways' ingest lag (ms), {secs} s per phase, flood at {TIMES}× ({} points/s in {} messages/s asked)",
        NORMAL_POINTS_PER_S * TIMES,
        NORMAL_MESSAGES_PER_S * TIMES
    );
    println!(
        "| broker | phase | gateway | readings | p50 | p99 | max | max staleness | cloud peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        for f in &r.figures {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.broker,
                r.phase,
                f.gateway,
                f.readings,
                f.p50_ms,
                f.p99_ms,
                f.max_ms,
                f.max_staleness_ms,
                r.rss.map_or("?".into(), mib)
            );
        }
    }
}

async fn run(kind: BrokerKind, phase: Duration) -> Vec<Row> {
    let broker = match kind {
        BrokerKind::Mosquitto => "Mosquitto + PostgreSQL",
        BrokerKind::Embedded => "embedded + SQLite",
    };
    eprintln!("{broker}: starting the fleet");
    let fleet = Fleet::start(kind).await;
    let probe = LagProbe::start(&fleet).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let b0 = SystemTime::now();
    tokio::time::sleep(phase).await;
    let b1 = SystemTime::now();

    let attacker = Attacker::connect(&fleet.endpoint(ATTACKER), "fieldlink-mallory", false);
    assert!(
        attacker.connected(Duration::from_secs(10)).await,
        "the attacker connects: {:?}",
        attacker.counts()
    );
    let f0 = SystemTime::now();
    let f = flood(&attacker, ATTACKER, TIMES, phase).await;
    let f1 = SystemTime::now();
    drop(attacker);
    eprintln!(
        "{broker}: flood sent {} messages, {} points in {:.1} s ({:.0} points/s)",
        f.messages,
        f.points,
        f.elapsed.as_secs_f64(),
        f.points_per_s()
    );
    // Late readings count with their full lag.
    let mut v = Verdict::new(format!("flood bench, {broker}"));
    check_delivery(&fleet, f1, Duration::from_secs(60), &mut v).await;
    vec![
        Row {
            broker,
            phase: "baseline".into(),
            figures: probe.figures(b0, b1),
            rss: probe.peak_rss(b0, b1),
        },
        Row {
            broker,
            phase: format!("flood, {:.0} points/s sent", f.points_per_s()),
            figures: probe.figures(f0, f1),
            rss: probe.peak_rss(f0, f1),
        },
    ]
}
