//! The cloud's slow-down request, obeyed by the real agent binary against a real Mosquitto and
//! the simulator: while the request holds, telemetry leaves at no more than the rate asked for;
//! what was held back waits in the journal and arrives after the request lapses, so every
//! reading the simulator served reaches the broker.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use fieldlink_protocol::{json, Control, Value};
use support::*;

/// 4 points every 20 ms: 200 points/s.
const POLL_MS: u64 = 20;
/// What the cloud asks for: a tenth of that.
const PACED_POINTS_PER_S: u32 = 20;

type Key = (String, u64);

fn received(rx: &Received) -> BTreeSet<Key> {
    rx.points()
        .filter(|p| p.device.as_str() != "_gateway")
        .filter_map(|p| match p.value {
            Value::Number(x) => Some((p.metric.to_string(), x as u64)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_slowed_agent_keeps_to_the_rate_then_delivers_what_it_held_back() {
    let (sim_toml, points) = counter_site(&["a", "b", "c", "d"], 0.01);
    let mut sim = SimServer::tcp(&sim_toml);
    let broker = fieldlink_testkit::Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sub = Subscriber::start(broker.port(), "gw-fc");
    let cfg = agent_config(
        dir.path(),
        "gw-fc",
        &format!("url = \"{}\"", broker.url()),
        &tcp_device("d1", sim.port, 1, POLL_MS, &points),
    );
    let log = dir.path().join("agent.log");
    let agent = AgentProc::start(&cfg, &log);
    sub.wait("readings flowing", |r| received(r).len() > 200);

    let request = Control::SlowDown {
        points_per_s: PACED_POINTS_PER_S,
        messages_per_s: 50,
        for_ms: 5_000,
    };
    sub.publish(
        "fieldlink/v1/gw-fc/control",
        json::encode(&request).unwrap(),
    );
    wait_until("the agent to log the request", PATIENCE, || {
        agent.log_text().contains("the cloud asked to slow down")
    });
    // Over 3 s of the request: at most its rate's worth, one second's batch of debt, and what
    // was already in flight when it arrived (the default window: 16 batches of the live poll).
    let before = received(&sub.snapshot()).len();
    std::thread::sleep(Duration::from_secs(3));
    let during = received(&sub.snapshot()).len() - before;
    let bound = 3 * PACED_POINTS_PER_S as usize + PACED_POINTS_PER_S as usize + 16 * 4;
    assert!(
        during <= bound,
        "{during} points in 3 s while asked for {PACED_POINTS_PER_S}/s (bound {bound}; \
         unpaced it sends 600)"
    );

    // The request lapses; everything served reaches the broker, the held-back backlog too.
    wait_until("the request to lapse", PATIENCE, || {
        agent
            .log_text()
            .contains("the cloud's slow-down lapsed; sending at full rate")
    });
    std::thread::sleep(Duration::from_millis(500));
    sim.stop_tcp();
    let served: BTreeSet<Key> = sim
        .sim
        .served_log()
        .iter()
        .flat_map(|read| sim.sim.decode_served(read))
        .map(|v| {
            (
                v.point.name.clone().unwrap_or_default(),
                v.value.expect("numeric") as u64,
            )
        })
        .collect();
    // The last poll before the simulator stopped may still be on its way into the journal.
    let rx = sub.wait("every served reading at the broker", |r| {
        served.difference(&received(r)).count() <= 4
    });
    let got = received(&rx);
    let missing: Vec<_> = served.difference(&got).collect();
    assert!(missing.len() <= 4, "missing: {missing:?}");
    drop(agent);
}
