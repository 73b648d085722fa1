//! No reading lost: with the broker stopped and restarted mid-stream and the agent SIGKILLed
//! and restarted several times, the readings at the broker are the readings the simulator
//! served, and every duplicate carries the same identity and value.
//!
//! Allowed gaps, and why: the last read the simulator answered before the agent was killed (or
//! before the simulator itself stopped) may never have been committed — the process died
//! holding it. A station polls again only once its previous poll is committed, so that is at
//! most one poll per device; everything older must be at the broker.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use fieldlink_protocol::Value;
use support::*;

const SIM: &str = r#"
[served_log]
capacity = 1000000
[[units]]
id = 1
[[units.points]]
name = "a"
table = "holding_register"
address = 0
type = "u32"
waveform = { kind = "counter", start = 0, increment = 1, interval_s = 0.02 }
[[units.points]]
name = "b"
table = "holding_register"
address = 2
type = "u32"
waveform = { kind = "counter", start = 1000000, increment = 3, interval_s = 0.02 }
[[units]]
id = 2
[[units.points]]
name = "a"
table = "holding_register"
address = 0
type = "u32"
waveform = { kind = "counter", start = 500, increment = 1, interval_s = 0.02 }
"#;

const POINTS_1: &str = r#"
[[devices.points]]
name = "a"
table = "holding_register"
address = 0
type = "u32"
[[devices.points]]
name = "b"
table = "holding_register"
address = 2
type = "u32"
"#;

const POINTS_2: &str = r#"
[[devices.points]]
name = "a"
table = "holding_register"
address = 0
type = "u32"
"#;

const POLL_MS: u64 = 100;
/// Reads per device that may die with a killed agent (see the module docs).
const IN_FLIGHT_READS: usize = 1;

type Key = (String, String, u64);

/// What the simulator served, per `(device, metric, value)`, with when.
fn served(sim: &SimServer) -> BTreeMap<Key, (u8, SystemTime)> {
    let mut out = BTreeMap::new();
    for read in sim.sim.served_log() {
        for v in sim.sim.decode_served(&read) {
            let device = format!("d{}", read.unit);
            let metric = v.point.name.clone().unwrap_or_default();
            let value = v.value.expect("numeric") as u64;
            out.insert((device, metric, value), (read.unit, read.served_at));
        }
    }
    out
}

/// Values the simulator served in exactly one read.
fn served_once(sim: &SimServer) -> BTreeSet<Key> {
    let mut reads: HashMap<Key, usize> = HashMap::new();
    for read in sim.sim.served_log() {
        for v in sim.sim.decode_served(&read) {
            let device = format!("d{}", read.unit);
            let metric = v.point.name.clone().unwrap_or_default();
            *reads
                .entry((device, metric, v.value.expect("numeric") as u64))
                .or_default() += 1;
        }
    }
    reads
        .into_iter()
        .filter(|(_, n)| *n == 1)
        .map(|(k, _)| k)
        .collect()
}

/// Reads that may be missing: the last few served to each unit before each cut.
fn allowed(sim: &SimServer, cuts: &[SystemTime]) -> BTreeSet<Key> {
    let log = sim.sim.served_log();
    let mut out = BTreeSet::new();
    for cut in cuts {
        for unit in [1u8, 2] {
            let mut before: Vec<_> = log
                .iter()
                .filter(|r| r.unit == unit && r.served_at <= *cut)
                .collect();
            before.sort_by_key(|r| r.served_at);
            for read in before.iter().rev().take(IN_FLIGHT_READS) {
                for v in sim.sim.decode_served(read) {
                    out.insert((
                        format!("d{unit}"),
                        v.point.name.clone().unwrap_or_default(),
                        v.value.unwrap_or(0.0) as u64,
                    ));
                }
            }
        }
    }
    out
}

fn received(rx: &Received) -> BTreeSet<Key> {
    rx.points()
        .filter(|p| p.device.as_str() != "_gateway")
        .filter_map(|p| match p.value {
            Value::Number(x) => Some((p.device.to_string(), p.metric.to_string(), x as u64)),
            _ => None,
        })
        .collect()
}

#[test]
fn broker_restarts_and_agent_kills_lose_no_reading() {
    let mut sim = SimServer::tcp(SIM);
    let mut broker = fieldlink_testkit::Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sub = Subscriber::start(broker.port(), "gw-r1");
    let devices = format!(
        "{}{}",
        tcp_device("d1", sim.port, 1, POLL_MS, POINTS_1),
        tcp_device("d2", sim.port, 2, POLL_MS, POINTS_2)
    );
    let cfg = agent_config(
        dir.path(),
        "gw-r1",
        &format!(
            "url = \"{}\"\nmax_in_flight = 4\nbatch_max_points = 20",
            broker.url()
        ),
        &devices,
    );
    let log = dir.path().join("agent.log");
    let mut agent = AgentProc::start(&cfg, &log);
    let mut cuts = Vec::new();
    let sleep = |ms| std::thread::sleep(Duration::from_millis(ms));
    sub.wait("first readings", |r| received(r).len() > 20);

    // The broker goes away for a while; readings pile up in the journal.
    broker.stop();
    sleep(3000);
    broker.restart().unwrap();
    sleep(1500);

    // SIGKILL at several phases: mid-stream, right after a restart, during a broker outage.
    for (i, pause) in [700u64, 250, 1300].into_iter().enumerate() {
        agent.kill9();
        cuts.push(SystemTime::now());
        sleep(300);
        if i == 2 {
            broker.stop();
        }
        agent = AgentProc::start(&cfg, &log);
        sleep(pause);
        if i == 2 {
            sleep(1500);
            broker.restart().unwrap();
        }
    }
    sleep(1500);

    // The simulator stops answering: from here on nothing new is served.
    sim.stop_tcp();
    cuts.push(SystemTime::now());
    let served_now = served(&sim);
    let may_miss = allowed(&sim, &cuts);
    let must: BTreeSet<Key> = served_now
        .keys()
        .filter(|k| !may_miss.contains(*k))
        .cloned()
        .collect();
    let rx = sub.wait("every served reading at the broker", |r| {
        must.is_subset(&received(r))
    });
    assert!(agent.terminate().success(), "{}", agent.log_text());

    let got = received(&rx);
    let served_keys: BTreeSet<Key> = served_now.keys().cloned().collect();
    let extra: Vec<_> = got.difference(&served_keys).collect();
    assert!(extra.is_empty(), "readings nobody served: {extra:?}");
    let missing: Vec<_> = served_keys.difference(&got).collect();
    assert!(
        missing.iter().all(|k| may_miss.contains(*k)),
        "lost readings: {missing:?}"
    );
    assert!(
        got.len() > 200,
        "the test moved {} readings only",
        got.len()
    );

    // Duplicates only with the same identity: one value per (device, metric, ts).
    let mut by_identity: HashMap<(String, String, i64), u64> = HashMap::new();
    let mut copies = 0;
    for p in rx.points().filter(|p| p.device.as_str() != "_gateway") {
        let Value::Number(x) = p.value else { continue };
        let id = (p.device.to_string(), p.metric.to_string(), p.ts_ms);
        if let Some(prev) = by_identity.insert(id.clone(), x as u64) {
            copies += 1;
            assert_eq!(prev, x as u64, "two values for identity {id:?}");
        }
    }
    // A value the simulator served once arrives under one identity. (Two polls inside one
    // counter step, which a loaded machine can produce, serve a value twice: those are two
    // readings and rightly carry two timestamps.)
    let served_once = served_once(&sim);
    let mut ids_per_value: HashMap<Key, BTreeSet<i64>> = HashMap::new();
    for p in rx.points().filter(|p| p.device.as_str() != "_gateway") {
        let Value::Number(x) = p.value else { continue };
        let key = (p.device.to_string(), p.metric.to_string(), x as u64);
        if served_once.contains(&key) {
            ids_per_value.entry(key).or_default().insert(p.ts_ms);
        }
    }
    let split: Vec<_> = ids_per_value
        .iter()
        .filter(|(_, ts)| ts.len() > 1)
        .collect();
    assert!(
        split.is_empty(),
        "one reading under several identities: {split:?}"
    );
    assert!(
        rx.telemetry.iter().any(|b| b.historical),
        "backlog after the outage was sent as historical"
    );
    let epochs: BTreeSet<u64> = rx.telemetry.iter().map(|b| b.boot_epoch).collect();
    assert_eq!(epochs.len(), 4, "one boot epoch per start: {epochs:?}");
    eprintln!(
        "served {}, received {} distinct ({} duplicate copies), allowed gap {}, missing {}",
        served_keys.len(),
        got.len(),
        copies,
        may_miss.len(),
        missing.len()
    );
}
