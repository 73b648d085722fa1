//! The real agent binary over bad field links (testkit's link emulator between the agent and a
//! real Mosquitto), judged against the simulator's ground truth: every reading served reaches
//! the broker, none is invented, a reading seen twice is the same reading (the cloud's store is
//! idempotent on its identity), and the backlog drains after the link recovers.
//!
//! Links: 1 s and 3 s round trip, 64 kbit/s, a link flapping every 10 s, and a frozen link
//! (10 minutes by default; `FIELDLINK_FREEZE_SECS` sets another length). Each test prints its
//! figures (time to the first CONNACK, drain time, bytes on the wire per point) with
//! `--nocapture`; no timing is asserted, only counts.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fieldlink_testkit::{Flapping, Impairment, Link, Outage, Shape};
use support::*;

const POLL_MS: u64 = 100;

/// A reading by what identifies it in this test: metric and counter value.
type Key = (String, u64);

struct Rig {
    sim: SimServer,
    _broker: fieldlink_testkit::Mosquitto,
    link: Link,
    sub: Subscriber,
    agent: Option<AgentProc>,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn start(gateway: &str, shape: Shape, extra_mqtt: &str) -> Rig {
        let (sim_toml, points) = counter_site(&["a", "b"], 0.05);
        let sim = SimServer::tcp(&sim_toml);
        let broker = fieldlink_testkit::Mosquitto::start().expect("mosquitto");
        let link = Link::builder(([127, 0, 0, 1], broker.port()).into())
            .shape(shape)
            .start()
            .expect("the link emulator");
        let sub = Subscriber::start(broker.port(), gateway);
        let dir = tempfile::tempdir().unwrap();
        let cfg = agent_config(
            dir.path(),
            gateway,
            &format!("url = \"mqtt://127.0.0.1:{}\"\n{extra_mqtt}", link.port()),
            &tcp_device("d1", sim.port, 1, POLL_MS, &points),
        );
        let agent = AgentProc::start(&cfg, &dir.path().join("agent.log"));
        Rig {
            sim,
            _broker: broker,
            link,
            sub,
            agent: Some(agent),
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        self.agent
            .as_ref()
            .map(|a| a.log_text())
            .unwrap_or_default()
    }

    /// How long the first connection took, as the agent logged it.
    fn first_connack_ms(&self, limit: Duration) -> u64 {
        wait_until("the agent's first CONNACK", limit, || {
            self.log().contains("connected to the broker")
        });
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("connected to the broker"))
            .unwrap_or_default();
        line.split("took_ms=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no took_ms in {line:?}"))
    }

    fn served(&self) -> BTreeMap<Key, usize> {
        let mut out = BTreeMap::new();
        for read in self.sim.sim.served_log() {
            for v in self.sim.sim.decode_served(&read) {
                let key = (
                    v.point.name.clone().unwrap_or_default(),
                    v.value.expect("numeric") as u64,
                );
                *out.entry(key).or_insert(0) += 1;
            }
        }
        out
    }

    /// Stops the simulator, then waits until every reading it served is at the broker (all
    /// but the last poll, which may not have been committed when the simulator stopped), and
    /// checks that nothing was invented and repeats are the same reading. Returns how long the
    /// wait took and the points received.
    fn settle(&mut self, limit: Duration) -> (Duration, usize) {
        self.sim.stop_tcp();
        let served = self.served();
        let t0 = Instant::now();
        let rx = self
            .sub
            .wait_for("every served reading at the broker", limit, |r| {
                missing(&served, r).len() <= 2
            });
        let took = t0.elapsed();
        let lost = missing(&served, &rx);
        assert!(lost.len() <= 2, "lost readings: {lost:?}");
        let mut seen: BTreeMap<Key, BTreeSet<i64>> = BTreeMap::new();
        for p in rx.points().filter(|p| p.device.as_str() != "_gateway") {
            let fieldlink_protocol::Value::Number(x) = p.value else {
                panic!("not a number: {p:?}")
            };
            let key = (p.metric.to_string(), x as u64);
            assert!(served.contains_key(&key), "never served: {key:?}");
            seen.entry(key).or_default().insert(p.ts_ms);
        }
        for (key, times) in &seen {
            assert!(
                times.len() <= served[key],
                "{key:?} received at {} times but served {} times: a duplicate that is not \
                 the same reading",
                times.len(),
                served[key]
            );
        }
        (took, rx.points().count())
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let _ = a.terminate();
        }
    }
}

fn missing(served: &BTreeMap<Key, usize>, rx: &Received) -> Vec<Key> {
    let got: BTreeSet<Key> = rx
        .points()
        .filter_map(|p| match p.value {
            fieldlink_protocol::Value::Number(x) => Some((p.metric.to_string(), x as u64)),
            _ => None,
        })
        .collect();
    served
        .keys()
        .filter(|k| !got.contains(*k))
        .cloned()
        .collect()
}

fn one_way(ms: u64) -> Shape {
    Shape::symmetric(Impairment::latency(Duration::from_millis(ms)))
}

#[test]
fn one_second_round_trip() {
    let mut rig = Rig::start("gw-rtt1", one_way(500), "");
    let connack = rig.first_connack_ms(PATIENCE);
    std::thread::sleep(Duration::from_secs(8));
    let (drain, points) = rig.settle(PATIENCE);
    let c = rig.link.counters();
    eprintln!(
        "1 s RTT: first CONNACK after {connack} ms; {points} points at the broker, the rest \
         within {} ms of the last poll; {} connections",
        drain.as_millis(),
        c.accepted
    );
    assert_eq!(c.accepted, 1, "one connection, never abandoned");
}

#[test]
fn three_second_round_trip() {
    let mut rig = Rig::start("gw-rtt3", one_way(1_500), "");
    let connack = rig.first_connack_ms(PATIENCE);
    std::thread::sleep(Duration::from_secs(10));
    let (drain, points) = rig.settle(PATIENCE);
    let c = rig.link.counters();
    eprintln!(
        "3 s RTT: first CONNACK after {connack} ms; {points} points; the rest within {} ms; \
         {} connections",
        drain.as_millis(),
        c.accepted
    );
    assert_eq!(c.accepted, 1, "one connection, never abandoned");
}

#[test]
fn sixty_four_kbit_per_second() {
    let shape =
        Shape::symmetric(Impairment::latency(Duration::from_millis(100)).with_kbit_per_second(64));
    let mut rig = Rig::start("gw-64k", shape, "");
    rig.first_connack_ms(PATIENCE);
    std::thread::sleep(Duration::from_secs(10));
    let (drain, points) = rig.settle(PATIENCE);
    let c = rig.link.counters();
    eprintln!(
        "64 kbit/s: {points} points in {} bytes towards the broker: {:.2} bytes per point on \
         the wire (MQTT framing, topics, the birth and keep-alives included); drained within \
         {} ms",
        c.uplink.bytes,
        c.uplink.bytes as f64 / points.max(1) as f64,
        drain.as_millis()
    );
}

#[test]
fn a_link_flapping_every_ten_seconds() {
    let mut rig = Rig::start("gw-flap", Shape::perfect(), "");
    rig.first_connack_ms(PATIENCE);
    rig.link.flap(Flapping {
        up: Duration::from_secs(10),
        down: Duration::from_secs(10),
        outage: Outage::Reset,
    });
    std::thread::sleep(Duration::from_secs(45));
    rig.link.stop_flapping();
    let (drain, points) = rig.settle(PATIENCE);
    let c = rig.link.counters();
    eprintln!(
        "flapping 10 s up / 10 s down for 45 s: {} outages, {} connections, {points} points, \
         backlog drained {} ms after the last poll",
        c.outages,
        c.accepted,
        drain.as_millis()
    );
    assert!(c.outages >= 2, "{c:?}");
}

#[test]
fn a_frozen_link() {
    let freeze = Duration::from_secs(
        std::env::var("FIELDLINK_FREEZE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600),
    );
    let connect_timeout = Duration::from_secs(20);
    let mut rig = Rig::start(
        "gw-freeze",
        Shape::perfect(),
        &format!("connect_timeout_s = {}", connect_timeout.as_secs()),
    );
    rig.first_connack_ms(PATIENCE);
    std::thread::sleep(Duration::from_secs(3));
    rig.link.freeze();
    std::thread::sleep(freeze);
    let during = rig.link.counters().accepted;
    rig.link.thaw();
    let thawed = Instant::now();
    wait_until("a connection after the thaw", PATIENCE + freeze, || {
        rig.log().matches("connected to the broker").count() >= 2
    });
    let reconnect = thawed.elapsed();
    let (drain, points) = rig.settle(PATIENCE * 3);
    eprintln!(
        "frozen {} s: {during} connections opened in all by the end of the freeze (one \
         attempt at a time, each to its {} s timeout); reconnected {} ms after the thaw; {points} \
         points, the backlog at the broker within {} ms",
        freeze.as_secs(),
        connect_timeout.as_secs(),
        reconnect.as_millis(),
        drain.as_millis()
    );
    // One attempt at a time, each running to its timeout, plus the backoff between them: no
    // pile of stale attempts to reach the broker on the thaw.
    let bound = 2 + freeze.as_secs() / connect_timeout.as_secs();
    assert!(
        during <= bound,
        "{during} connections during the freeze (bound {bound})"
    );
}
