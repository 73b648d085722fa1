//! The agent in the field, with real failures: a broker that is not there is named by its
//! address; a journal on a read-only file system is named with why it cannot be written; and a
//! journal on a small file system that fills up (a tmpfs the test mounts; the broker away, so
//! nothing drains), across a restart while still full, then room and the broker returning:
//! every dropped reading is reported, exactly, against the simulator's ground truth, and the
//! log says so in a bounded number of lines.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use fieldlink_buffer::{BlockingJournal, JournalConfig};
use fieldlink_protocol::EventKind;
use fieldlink_testkit::fs::{ReadOnlyDir, SmallFs};
use fieldlink_testkit::{free_port, Mosquitto};
use support::*;

#[test]
fn a_broker_nobody_answers_for_is_named_by_host_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (sim_toml, points) = counter_site(&["a"], 1.0);
    let sim = SimServer::tcp(&sim_toml);
    let config = agent_config(
        dir.path(),
        "g-nobroker",
        &format!("url = \"mqtt://127.0.0.1:{port}\""),
        &tcp_device("d1", sim.port, 1, 500, &points),
    );
    let agent = AgentProc::start(&config, &dir.path().join("agent.log"));
    let want = format!("broker=127.0.0.1:{port}");
    wait_until("a failed attempt naming the broker", PATIENCE, || {
        agent
            .log_text()
            .lines()
            .any(|l| l.contains("cannot connect to the broker") && l.contains(&want))
    });
}

#[test]
fn a_journal_on_a_read_only_file_system_is_named_with_why() {
    let dir = tempfile::tempdir().unwrap();
    let ro = match ReadOnlyDir::with(|_| {}) {
        Ok(ro) => ro,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let journal = ro.path().join("journal.db");
    let (sim_toml, points) = counter_site(&["a"], 1.0);
    let sim = SimServer::tcp(&sim_toml);
    let config = agent_config(
        dir.path(),
        "g-readonly",
        &format!("url = \"mqtt://127.0.0.1:{}\"", free_port()),
        &tcp_device("d1", sim.port, 1, 500, &points),
    );
    move_journal(&config, dir.path(), &journal);
    let mut agent = AgentProc::start(&config, &dir.path().join("agent.log"));
    let status = agent.child.wait().unwrap();
    let log = agent.log_text();
    assert_eq!(status.code(), Some(1), "{log}");
    let reason = match ro {
        ReadOnlyDir::Mounted(_) => "Read-only file system",
        ReadOnlyDir::Chmod(_) => "Permission denied",
    };
    let line = log
        .lines()
        .find(|l| l.contains("agent failed"))
        .unwrap_or_else(|| panic!("no failure line in {log}"));
    assert!(line.contains(journal.to_str().unwrap()), "{line}");
    assert!(line.contains("open"), "{line}");
    assert!(line.contains(reason), "{line}");
}

/// Points per poll and the poll interval of the disk-full test: enough to fill its file system
/// within seconds.
const POINTS: usize = 40;
const POLL_MS: u64 = 10;
/// The small file system: a few hundred KiB, then room enough for everything.
const SMALL: u64 = 256 * 1024;
const ROOMY: u64 = 64 << 20;

#[test]
fn a_full_disk_loses_no_drop_report_across_a_restart_and_logs_a_bounded_number_of_lines() {
    let fs = match SmallFs::mount(SMALL) {
        Ok(fs) => fs,
        Err(why) => {
            return eprintln!(
                "skipped: this test needs a tmpfs of its own and mounting one was refused: {why}"
            )
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..POINTS).map(|i| format!("p{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    // A fresh value at every read, so no reading repeats another.
    let (sim_toml, points) = counter_site(&names, 0.001);
    let mut sim = SimServer::tcp(&sim_toml);
    let sim_port = sim.port;

    // The broker, with the test's persistent subscriber, then away: nothing drains.
    let mut broker = Mosquitto::start().unwrap();
    let sub = Subscriber::start(broker.port(), "g-full");
    broker.stop();

    let journal = fs.path().join("journal.db");
    let config = agent_config(
        dir.path(),
        "g-full",
        &format!("url = \"mqtt://127.0.0.1:{}\"", broker.port()),
        &tcp_device("d1", sim_port, 1, POLL_MS, &points),
    );
    move_journal(&config, dir.path(), &journal);
    let log1 = dir.path().join("agent-1.log");
    let log2 = dir.path().join("agent-2.log");

    let mut agent = AgentProc::start(&config, &log1);
    wait_until("the journal to fill", PATIENCE, || {
        agent.log_text().contains("journal full: readings dropped")
    });
    // Full for a while, then a restart while still full. The simulator stops first, so that
    // every reading it served was handed to the agent before the agent stops.
    std::thread::sleep(Duration::from_secs(3));
    sim.stop_tcp();
    std::thread::sleep(Duration::from_millis(500));
    assert!(agent.terminate().success(), "{}", agent.log_text());
    rebind(&mut sim, sim_port);

    let mut agent = AgentProc::start(&config, &log2);
    wait_until(
        "the restarted agent to find the journal full",
        PATIENCE,
        || agent.log_text().contains("journal full: readings dropped"),
    );
    // Long enough for the periodic summary of a spell that lasts.
    let full_since = Instant::now();
    wait_until(
        "a summary of the full spell",
        Duration::from_secs(120),
        || agent.log_text().contains("journal still full"),
    );
    assert!(
        full_since.elapsed() >= Duration::from_secs(30),
        "summary too early"
    );

    // Room returns, then the broker.
    fs.resize(ROOMY).unwrap();
    wait_until("room to return", PATIENCE, || {
        agent.log_text().contains("journal has room again")
    });
    broker.restart().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    sim.stop_tcp();
    std::thread::sleep(Duration::from_millis(500));

    let served: u64 = sim
        .sim
        .served_log()
        .iter()
        .map(|r| sim.sim.decode_served(r).len() as u64)
        .sum();
    let delivered = |r: &Received| {
        let mut seen = std::collections::HashSet::new();
        r.points()
            .filter(|p| p.device.as_str() == "d1")
            .filter(|p| seen.insert((p.metric.clone(), p.ts_ms)))
            .count() as u64
    };
    let reported = |r: &Received| -> u64 {
        r.events
            .iter()
            .map(|e| match &e.kind {
                EventKind::TelemetryDropped { points, .. } => *points,
                _ => 0,
            })
            .sum()
    };
    let got = sub.wait_for(
        "every served reading delivered or reported dropped",
        Duration::from_secs(120),
        |r| delivered(r) + reported(r) >= served,
    );
    assert!(agent.terminate().success(), "{}", agent.log_text());
    let (delivered, reported) = (delivered(&got), reported(&got));

    // The agent's exact counter, from its journal.
    let j = BlockingJournal::open(JournalConfig::new(&journal)).unwrap();
    let stats = j.stats().unwrap();
    j.close().unwrap();
    let dropped = stats.dropped.total();
    eprintln!(
        "served {served}, delivered {delivered}, dropped {dropped} ({:?}), reported {reported}",
        stats.dropped
    );
    assert!(dropped > 0, "nothing was dropped: the disk never filled");
    assert!(delivered > 0, "nothing was delivered");
    assert_eq!(
        reported, dropped,
        "drop events against the journal's counter"
    );
    assert_eq!(stats.drops_reported, dropped);
    assert_eq!(
        served - delivered,
        dropped,
        "served {served}, delivered {delivered}"
    );

    // One line when a spell starts and one when it ends per run, plus the summaries.
    let lines = |path: &Path, what: &str| {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| l.contains(what))
            .count()
    };
    for (log, ended) in [(&log1, false), (&log2, true)] {
        let starts = lines(log, "journal full: readings dropped until space returns");
        let ends = lines(log, "journal has room again: readings are stored");
        let summaries = lines(log, "journal still full");
        let store_starts = lines(log, "journal full: refusing points until space returns");
        eprintln!(
            "{}: {starts} spells ({store_starts} in the journal's own lines; a spell that \
             goes on across the restart is not announced again there), {ends} ends, \
             {summaries} summaries",
            log.display()
        );
        assert!(starts >= 1, "{}", log.display());
        assert!(store_starts <= starts, "{}", log.display());
        assert!(
            starts - ends <= 1 && ends <= starts,
            "{}: {starts} spells, {ends} ends",
            log.display()
        );
        assert!(starts <= 3, "{}: {starts} spells: flapping", log.display());
        assert!(
            summaries <= 1 + starts * 2,
            "{}: {summaries} summaries",
            log.display()
        );
        if ended {
            assert!(ends >= 1, "{}", log.display());
        }
    }
}

/// Puts the journal of the configuration `agent_config` wrote into `dir` at `journal`, and the
/// boot counter and command ledger (`gateway.state_dir`, by default beside the journal) in
/// `dir`: the file system under test holds the journal alone.
fn move_journal(config: &Path, dir: &Path, journal: &Path) {
    let text = std::fs::read_to_string(config)
        .unwrap()
        .replace(
            &format!("path = \"{}\"", dir.join("journal.db").display()),
            &format!("path = \"{}\"", journal.display()),
        )
        .replace(
            "[gateway]\n",
            &format!("[gateway]\nstate_dir = \"{}\"\n", dir.display()),
        );
    std::fs::write(config, text).unwrap();
}

/// Serves the simulator on `port` again (the agent's configuration names it).
fn rebind(sim: &mut SimServer, port: u16) {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let started = Instant::now();
    let tcp = loop {
        match sim.rt.block_on(sim.sim.bind_tcp(addr)) {
            Ok(tcp) => break tcp,
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("cannot serve the simulator on {port} again: {e}"),
        }
    };
    sim.tcp = Some(tcp);
}
