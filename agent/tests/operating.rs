//! Operating the agent: systemd notifications over a fake `NOTIFY_SOCKET`, watchdog pings that
//! stop when a loop stalls, graceful stop on SIGTERM/SIGINT, configuration reload on SIGHUP.

mod support;

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fieldlink_agent::health::Liveness;
use fieldlink_agent::notify::Notifier;
use fieldlink_protocol::{EventKind, Status};
use nix::sys::signal::Signal;
use support::*;
use tokio_util::sync::CancellationToken;

const SIM: &str = r#"
[[units]]
id = 1
[[units.points]]
table = "holding_register"
address = 0
waveform = { kind = "constant", value = 5 }
"#;

const POINTS: &str = r#"
[[devices.points]]
name = "level"
table = "holding_register"
address = 0
"#;

/// Every datagram that arrived so far, without waiting.
fn drain(sock: &UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = sock.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

fn wait_for(sock: &UnixDatagram, seen: &mut Vec<String>, msg: &str) {
    wait_until(&format!("{msg} on the notify socket"), PATIENCE, || {
        seen.extend(drain(sock));
        seen.iter().any(|m| m.contains(msg))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_pings_stop_while_a_loop_stalls_and_resume_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_nonblocking(true).unwrap();
    let notifier = Notifier::new(Some(path), Some(Duration::from_millis(50)));
    let liveness = Liveness::new(Duration::from_millis(300));
    let poll = liveness.register("poll");
    let uplink = liveness.register("uplink");
    let uplink_stuck = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let beats = {
        let (stuck, stop) = (uplink_stuck.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                poll.beat();
                if !stuck.load(Ordering::Relaxed) {
                    uplink.beat();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let dog = {
        let (l, stop) = (liveness.clone(), stop.clone());
        tokio::spawn(async move { notifier.watchdog(l, stop).await })
    };
    let sock = Arc::new(sock);
    let s = sock.clone();
    let count = move || {
        drain(&s)
            .iter()
            .filter(|m| m.as_str() == "WATCHDOG=1")
            .count()
    };
    let mut pings = 0;
    tokio::task::block_in_place(|| {
        wait_until("pings", PATIENCE, || {
            pings += count();
            pings >= 3
        })
    });

    // The uplink loop stops making progress.
    uplink_stuck.store(true, Ordering::Relaxed);
    tokio::task::block_in_place(|| {
        wait_until("the stall to be seen", PATIENCE, || {
            liveness.stalled() == Some("uplink")
        })
    });
    tokio::time::sleep(Duration::from_millis(120)).await;
    count();
    // Twenty watchdog intervals without a single ping.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(count(), 0, "no pings while a loop is stalled");

    uplink_stuck.store(false, Ordering::Relaxed);
    let mut pings = 0;
    tokio::task::block_in_place(|| {
        wait_until("pings to resume", PATIENCE, || {
            pings += count();
            pings >= 1
        })
    });
    stop.cancel();
    beats.await.unwrap();
    dog.await.unwrap();
}

#[test]
fn ready_watchdog_and_stopping_from_the_real_agent() {
    let sim = SimServer::tcp(SIM);
    let broker = fieldlink_testkit::Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sub = Subscriber::start(broker.port(), "gw-sd");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_nonblocking(true).unwrap();
    let cfg = agent_config(
        dir.path(),
        "gw-sd",
        &format!("url = \"{}\"", broker.url()),
        &tcp_device("tank", sim.port, 1, 200, POINTS),
    );
    let mut agent = AgentProc::start_with_env(
        &cfg,
        &dir.path().join("agent.log"),
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen = Vec::new();
    wait_for(&sock, &mut seen, "READY=1");
    wait_for(&sock, &mut seen, "WATCHDOG=1");
    sub.wait("readings", |r| !r.values_of("tank", "level").is_empty());
    let status = agent.terminate();
    assert!(status.success(), "{status:?}\n{}", agent.log_text());
    wait_for(&sock, &mut seen, "STOPPING=1");
    let ready = seen.iter().position(|m| m == "READY=1").unwrap();
    let stopping = seen.iter().position(|m| m == "STOPPING=1").unwrap();
    assert!(ready < stopping, "{seen:?}");
    sub.wait("offline", |r| {
        matches!(r.statuses.last(), Some((Status::Offline(_), _)))
    });
}

/// The error texts of the config_rejected events received, in order.
fn rejections(r: &Received) -> Vec<String> {
    r.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ConfigRejected { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn sighup_reloads_the_configuration_and_sigint_stops() {
    let sim = SimServer::tcp(SIM);
    let broker = fieldlink_testkit::Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sub = Subscriber::start(broker.port(), "gw-hup");
    let cfg = agent_config(
        dir.path(),
        "gw-hup",
        &format!("url = \"{}\"", broker.url()),
        &tcp_device("tank", sim.port, 1, 200, POINTS),
    );
    let mut agent = AgentProc::start(&cfg, &dir.path().join("agent.log"));
    sub.wait("readings", |r| !r.values_of("tank", "level").is_empty());

    // A broken file is refused on SIGHUP; the running configuration stays.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, good.replace("address = 0", "address = -1")).unwrap();
    agent.signal(Signal::SIGHUP);
    sub.wait("a config_rejected event", |r| {
        r.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ConfigRejected { .. }))
    });

    // A refusal whose text is long and not ASCII is reported too: cut to the protocol's 1,024
    // bytes, not to a number of characters (600 '°' are 1,200 bytes, and the error names the key
    // more than once).
    let key = "°".repeat(600);
    std::fs::write(&cfg, format!("\"{key}\" = 1\n{good}")).unwrap();
    agent.signal(Signal::SIGHUP);
    let rx = sub.wait("a second config_rejected event", |r| {
        rejections(r).len() >= 2
    });
    let text = rejections(&rx)[1].clone();
    assert!(
        text.len() <= 1_024 && text.len() > 1_000,
        "{} bytes",
        text.len()
    );
    assert!(text.contains("°°°"), "{text}");

    std::fs::write(&cfg, good.replace("name = \"tank\"", "name = \"tank2\"")).unwrap();
    agent.signal(Signal::SIGHUP);
    let rx = sub.wait("readings of the reloaded device", |r| {
        !r.values_of("tank2", "level").is_empty()
    });
    assert!(rx
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::ConfigApplied { .. })));
    agent.signal(Signal::SIGINT);
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = agent.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < PATIENCE, "no exit on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{}", agent.log_text());
}

#[test]
fn self_telemetry_arrives_as_gateway_points() {
    let sim = SimServer::tcp(SIM);
    let broker = fieldlink_testkit::Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sub = Subscriber::start(broker.port(), "gw-self");
    let cfg = agent_config(
        dir.path(),
        "gw-self",
        &format!("url = \"{}\"", broker.url()),
        &tcp_device("tank", sim.port, 1, 200, POINTS),
    );
    let mut agent = AgentProc::start_with_env(
        &cfg,
        &dir.path().join("agent.log"),
        &[("FIELDLINK_AGENT__GATEWAY__SELF_TELEMETRY_S", "1")],
    );
    let rx = sub.wait("self-telemetry with every metric", |r| {
        [
            "rss_bytes",
            "uptime_s",
            "journal.depth_points",
            "journal.oldest_age_s",
            "dropped_points_total",
            "cpu_percent",
            "errors.tank",
            "uplink.connected",
        ]
        .iter()
        .all(|m| !r.values_of("_gateway", m).is_empty())
    });
    assert!(rx.values_of("_gateway", "rss_bytes")[0] > 1_000_000.0);
    assert_eq!(rx.values_of("_gateway", "errors.tank")[0], 0.0);
    assert_eq!(rx.values_of("_gateway", "uplink.connected")[0], 1.0);
    assert!(agent.terminate().success());
}
