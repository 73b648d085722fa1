//! The reference workload, end to end with the real agent binary (release build):
//! 10 Modbus TCP devices × 100 holding registers polled every second from the simulator,
//! published to a Mosquitto broker from testkit, received by a subscriber that decodes every
//! batch.
//!
//! Reports (goals in `docs`/design.md):
//! - A1/A2: agent RSS and CPU share of one core in steady state;
//! - A3: Modbus requests per second served by the simulator;
//! - A4: bytes per point on the wire, binary (the aliased layout every cloud reads, and the
//!   packed layout a cloud that announces it gets) and JSON (named, and aliased when
//!   announced): each telemetry PUBLISH packet
//!   whole (fixed header, topic, packet id, payload) and the payload alone; the birth's size,
//!   sent once per connection, separately with its share over an hour's connection;
//! - A6: a one-hour backlog (3.6 million points, written into the agent's journal while the
//!   broker is down): time to drain it after the broker returns, delay to the first backlog
//!   point, and the delay of live points meanwhile;
//! - A7: poll → broker latency p50/p99 (point timestamp → arrival at a subscriber on loopback,
//!   so it includes the broker's forwarding).
//!
//! `cargo bench -p fieldlink-agent --bench reference --profile gateway` measures the agent as it
//! ships (the `gateway` profile; the default bench profile builds the agent's dependencies for
//! speed instead of size, which costs 0.7-1 MiB of RSS). `BENCH_STEADY_S` sets the
//! steady-state window (default 60 s), `BENCH_BACKLOG_S` the backlog length in seconds (default
//! 3600).
//! `BENCH_AGENT` names another agent binary to measure instead of this build's, so an earlier
//! build (kept aside) is measured as a baseline in the same session, against the same
//! simulator, broker and subscriber code.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fieldlink_buffer::{BlockingJournal, JournalConfig, Wait};
use fieldlink_protocol::{
    binary, decode_telemetry, decode_telemetry_aliased, json, telemetry_birth_ref, Control, Ident,
    Point, SeriesAliases, Status,
};
use fieldlink_sim::{SimConfig, Simulator};
use fieldlink_testkit::Mosquitto;
use rumqttc_ring as rumqttc;

const BIN: &str = env!("CARGO_BIN_EXE_fieldlink-agent");
const DEVICES: u8 = 10;
const REGISTERS: u16 = 100;
const GW: &str = "bench-gw";

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn sim_config() -> String {
    let mut s = String::new();
    for unit in 1..=DEVICES {
        let _ = writeln!(s, "[[units]]\nid = {unit}");
        for r in 0..REGISTERS {
            let seed = u64::from(unit) * 1000 + u64::from(r);
            let _ = writeln!(
                s,
                "[[units.points]]\ntable = \"holding_register\"\naddress = {r}\ntype = \"u16\"\n\
                 waveform = {{ kind = \"random_walk\", start = 500, max_step = 3, min = 0, \
                 max = 1000, interval_s = 1, seed = {seed} }}"
            );
        }
    }
    s
}

/// The shipped reference-workload configuration (ten meters from one template, 28 lines), with
/// this run's gateway id, broker, journal, log level and the simulator as the meters' address.
fn agent_config(dir: &Path, url: &str, sim_port: u16) -> std::path::PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/examples/agent/reference-workload.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let mut doc: toml::Table = toml::from_str(&text).unwrap();
    let mut set = |section: &str, key: &str, value: toml::Value| {
        doc.entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .unwrap()
            .insert(key.to_owned(), value);
    };
    set("gateway", "id", GW.into());
    set("mqtt", "url", url.into());
    let journal = dir.join("journal.db");
    set("journal", "path", journal.to_str().unwrap().into());
    set("logging", "level", "warn".into());
    let devices = doc["devices"].as_array_mut().unwrap();
    assert_eq!(devices.len(), usize::from(DEVICES));
    for d in devices {
        let transport = d["transport"].as_table_mut().unwrap();
        transport.insert("host".into(), "127.0.0.1".into());
        transport.insert("port".into(), i64::from(sim_port).into());
    }
    let path = dir.join("agent.toml");
    std::fs::write(&path, toml::to_string(&doc).unwrap()).unwrap();
    path
}

/// What the subscriber measured since the last reset.
#[derive(Default)]
struct Seen {
    live_points: u64,
    live_bytes: u64,
    /// Whole PUBLISH packets of live telemetry: fixed header, topic, packet id, payload.
    live_packet_bytes: u64,
    /// The first payload that did not decode, and why.
    first_undecodable: Option<String>,
    /// Binary layout versions of live telemetry payloads seen, by version.
    layouts: std::collections::BTreeMap<u8, u64>,
    /// `(point timestamp, arrival minus timestamp)` of live points, ms.
    live_delay_ms: Vec<(i64, i64)>,
    historical_points: u64,
    /// Telemetry payloads the subscriber could not read (none expected).
    undecodable: u64,
    first_historical: Option<Instant>,
    last_historical: Option<Instant>,
}

/// Bytes of a QoS 1 PUBLISH packet with this topic and payload length.
fn publish_packet_len(topic: &str, payload: usize) -> u64 {
    let remaining = 2 + topic.len() + 2 + payload;
    let mut len_bytes = 1;
    while remaining >= 128usize.pow(len_bytes) {
        len_bytes += 1;
    }
    (1 + len_bytes as usize + remaining) as u64
}

/// The subscriber stands in for the cloud: with `announce` set it answers every birth, as a
/// cloud does, with the layouts it reads (which lets the agent write the packed layout).
fn subscriber(
    port: u16,
    seen: Arc<Mutex<Seen>>,
    announce: Arc<AtomicBool>,
    birth_bytes: Arc<AtomicU64>,
) -> rumqttc::Client {
    let mut o = rumqttc::MqttOptions::new("bench-sub", "127.0.0.1", port);
    o.set_clean_session(false)
        .set_keep_alive(Duration::from_secs(10))
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut conn) = rumqttc::Client::new(o, 100);
    let c = client.clone();
    std::thread::spawn(move || {
        // Births seen, for telemetry that names series by alias.
        let mut births: Vec<SeriesAliases> = Vec::new();
        for ev in conn.iter() {
            match ev {
                Ok(rumqttc::Event::Incoming(rumqttc::Incoming::ConnAck(_))) => {
                    for kind in ["status", "telemetry"] {
                        let _ = c.subscribe(
                            format!("fieldlink/v1/{GW}/{kind}"),
                            rumqttc::QoS::AtLeastOnce,
                        );
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p)))
                    if p.topic.ends_with("/status") =>
                {
                    if let Ok(Status::Online(b)) = json::decode::<Status>(&p.payload) {
                        births.push(SeriesAliases::from_birth(&b));
                        birth_bytes.store(
                            publish_packet_len(&p.topic, p.payload.len()),
                            Ordering::Relaxed,
                        );
                        if announce.load(Ordering::Relaxed) {
                            let _ = c.try_publish(
                                format!("fieldlink/v1/{GW}/control"),
                                rumqttc::QoS::AtLeastOnce,
                                false,
                                json::encode(&Control::accepts_all()).unwrap(),
                            );
                        }
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p))) => {
                    let now_ms = wall_ms();
                    let now = Instant::now();
                    let decoded = match telemetry_birth_ref(&p.payload) {
                        Ok(Some(r)) => match births.iter().rev().find(|a| a.matches(&r)) {
                            Some(a) => decode_telemetry_aliased(&p.payload, a),
                            None => decode_telemetry(&p.payload),
                        },
                        _ => decode_telemetry(&p.payload),
                    };
                    let b = match decoded {
                        Ok(b) => b,
                        Err(e) => {
                            let mut s = seen.lock().unwrap();
                            s.undecodable += 1;
                            s.first_undecodable.get_or_insert_with(|| {
                                format!(
                                    "{e} ({} bytes: {:02x?})",
                                    p.payload.len(),
                                    &p.payload[..p.payload.len().min(48)]
                                )
                            });
                            continue;
                        }
                    };
                    let mut s = seen.lock().unwrap();
                    if b.historical {
                        s.historical_points += b.points.len() as u64;
                        s.first_historical.get_or_insert(now);
                        s.last_historical = Some(now);
                    } else {
                        let ours: Vec<&Point> = b
                            .points
                            .iter()
                            .filter(|p| p.device.as_str() != "_gateway")
                            .collect();
                        s.live_points += ours.len() as u64;
                        s.live_bytes += p.payload.len() as u64;
                        s.live_packet_bytes += publish_packet_len(&p.topic, p.payload.len());
                        if p.payload.first() == Some(&binary::MAGIC) {
                            *s.layouts.entry(p.payload[1]).or_default() += 1;
                        }
                        s.live_delay_ms
                            .extend(ours.iter().map(|p| (p.ts_ms, now_ms - p.ts_ms)));
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    client
}

fn proc_figures(pid: u32) -> (u64, u64, Duration) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    // By position (tpgid may be -1): utime and stime are fields 14 and 15 of the line, 11 and
    // 12 counting from the state field.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(11) + field(12);
    // Clock ticks move in 10 ms steps, 0.05 % of a core over a 20 s window; the scheduler's
    // nanosecond run time of each thread resolves the goal's 0.5 %. The agent's threads live as
    // long as it does, so the sum over live threads is its whole CPU time.
    let cpu = threads_run_time(pid).unwrap_or(Duration::from_millis(ticks * 10));
    (kb("VmRSS:") * 1024, kb("VmHWM:") * 1024, cpu)
}

/// The time every live thread of `pid` has run, from `/proc/PID/task/*/schedstat` (its first
/// field, nanoseconds); `None` where the kernel does not provide it.
fn threads_run_time(pid: u32) -> Option<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let line = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += line.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

/// RSS by kind (heap and stacks, file-backed code and data, shared memory), from
/// `/proc/PID/status`.
fn rss_parts(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mut parts = Vec::new();
    for key in ["RssAnon:", "RssFile:", "RssShmem:", "Threads:"] {
        if let Some(l) = status.lines().find(|l| l.starts_with(key)) {
            parts.push(l.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    parts.join(", ")
}

fn percentile(v: &mut [i64], p: f64) -> i64 {
    if v.is_empty() {
        return -1;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// The binary measured: `BENCH_AGENT` if set, else the one this bench was built with.
fn agent_bin() -> String {
    std::env::var("BENCH_AGENT").unwrap_or_else(|_| BIN.to_string())
}

fn start_agent(cfg: &Path, log: &Path, env: &[(&str, &str)]) -> Child {
    let file = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(agent_bin());
    cmd.args(["--config", cfg.to_str().unwrap(), "run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "bench: timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn steady(
    label: &str,
    child: &Child,
    sim: &Simulator,
    seen: &Arc<Mutex<Seen>>,
    birth_bytes: &AtomicU64,
    secs: u64,
) -> (f64, f64) {
    // Warm up: connections made, first polls through.
    wait("first live points", Duration::from_secs(60), || {
        seen.lock().unwrap().live_points >= 2000
    });
    std::thread::sleep(Duration::from_secs(2));
    *seen.lock().unwrap() = Seen::default();
    let req0 = sim.stats().requests_total();
    let (_, _, cpu0) = proc_figures(child.id());
    let t0 = Instant::now();
    let mut rss_max = 0;
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(500));
        rss_max = rss_max.max(proc_figures(child.id()).0);
    }
    let wall = t0.elapsed().as_secs_f64();
    let (rss, hwm, cpu1) = proc_figures(child.id());
    let requests = sim.stats().requests_total() - req0;
    let s = seen.lock().unwrap();
    let bytes_per_point = s.live_bytes as f64 / s.live_points.max(1) as f64;
    let packet_bytes_per_point = s.live_packet_bytes as f64 / s.live_points.max(1) as f64;
    let birth = birth_bytes.load(Ordering::Relaxed);
    let birth_per_point_hour = birth as f64 / (s.live_points as f64 / wall * 3600.0);
    let mut delays: Vec<i64> = s.live_delay_ms.iter().map(|d| d.1).collect();
    let p50 = percentile(&mut delays, 0.5);
    let p99 = percentile(&mut delays, 0.99);
    let cpu = (cpu1 - cpu0).as_secs_f64() / wall * 100.0;
    println!(
        "[{label}] window {wall:.1} s, {} points received",
        s.live_points
    );
    println!(
        "[{label}] A1 RSS now {:.2} MiB, max sampled {:.2} MiB, peak (VmHWM) {:.2} MiB",
        rss as f64 / 1048576.0,
        rss_max as f64 / 1048576.0,
        hwm as f64 / 1048576.0
    );
    println!("[{label}] A1 of which {}", rss_parts(child.id()));
    println!("[{label}] A2 CPU {cpu:.2} % of one core");
    println!(
        "[{label}] A3 Modbus requests {:.2} per second",
        requests as f64 / wall
    );
    println!(
        "[{label}] A4 {packet_bytes_per_point:.2} bytes per point in PUBLISH packets, \
         {bytes_per_point:.2} in payloads ({} payloads undecodable; binary layouts seen {:?})",
        s.undecodable, s.layouts
    );
    if let Some(e) = &s.first_undecodable {
        println!("[{label}] first undecodable payload: {e}");
    }
    println!(
        "[{label}] A4 birth {} bytes once per connection: {birth_per_point_hour:.3} bytes per \
         point over an hour's connection",
        birth
    );
    println!("[{label}] A7 poll → subscriber latency p50 {p50} ms, p99 {p99} ms");
    (bytes_per_point, cpu)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let steady_s = env_secs("BENCH_STEADY_S", 60);
    let backlog_s = env_secs("BENCH_BACKLOG_S", 3600);
    println!("agent binary: {}", agent_bin());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sim = Simulator::from_config(SimConfig::from_toml_str(&sim_config()).unwrap()).unwrap();
    let tcp = rt
        .block_on(sim.bind_tcp("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let mut broker = Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = agent_config(dir.path(), &broker.url(), tcp.local_addr().port());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let announce = Arc::new(AtomicBool::new(false));
    let birth_bytes = Arc::new(AtomicU64::new(0));
    let _sub = subscriber(
        broker.port(),
        seen.clone(),
        announce.clone(),
        birth_bytes.clone(),
    );
    std::thread::sleep(Duration::from_millis(500));

    // Steady state, binary encoding (the default), to a receiver that does not announce what
    // it reads: the aliased layout (version 2), as to a cloud that predates the packed one.
    let mut agent = start_agent(&cfg, &dir.path().join("agent.log"), &[]);
    steady("binary v2", &agent, &sim, &seen, &birth_bytes, steady_s);
    terminate(&mut agent);

    // The same to a receiver that announces the packed layout, as the cloud does.
    announce.store(true, Ordering::Relaxed);
    let mut agent = start_agent(&cfg, &dir.path().join("agent-v3.log"), &[]);
    steady("binary v3", &agent, &sim, &seen, &birth_bytes, steady_s);
    terminate(&mut agent);

    // Steady state, JSON (shorter): the aliased form (version 2) the announcement allows, then
    // the named form (version 1) to a receiver that announces nothing.
    let json = [("FIELDLINK_AGENT__MQTT__ENCODING", "json")];
    let mut agent = start_agent(&cfg, &dir.path().join("agent-json.log"), &json);
    steady(
        "json v2",
        &agent,
        &sim,
        &seen,
        &birth_bytes,
        steady_s.min(20),
    );
    terminate(&mut agent);
    announce.store(false, Ordering::Relaxed);
    let mut agent = start_agent(&cfg, &dir.path().join("agent-json1.log"), &json);
    steady(
        "json v1",
        &agent,
        &sim,
        &seen,
        &birth_bytes,
        steady_s.min(20),
    );
    terminate(&mut agent);
    announce.store(true, Ordering::Relaxed);

    // A6: the broker is down; an hour of readings sits in the journal.
    broker.stop();
    let fill = Instant::now();
    {
        let journal =
            BlockingJournal::open(JournalConfig::new(dir.path().join("journal.db"))).unwrap();
        let start_ms = wall_ms() - backlog_s as i64 * 1000;
        let names: Vec<(Ident, Vec<Ident>)> = (1..=DEVICES)
            .map(|u| {
                (
                    Ident::new(&format!("meter-{u}")).unwrap(),
                    (0..REGISTERS)
                        .map(|r| Ident::new(&format!("r{r:03}")).unwrap())
                        .collect(),
                )
            })
            .collect();
        for s in 0..backlog_s as i64 {
            for (d, metrics) in &names {
                let points = metrics
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        Point::new(
                            d.clone(),
                            m.clone(),
                            start_ms + s * 1000,
                            50.0 + i as f64 * 0.1,
                        )
                    })
                    .collect();
                journal.append_points(points, Wait::Commit).unwrap();
            }
        }
        journal.close().unwrap();
    }
    let backlog_points = backlog_s * u64::from(DEVICES) * u64::from(REGISTERS);
    println!(
        "[backlog] {backlog_points} points written to the journal in {:.1} s",
        fill.elapsed().as_secs_f64()
    );
    let mut agent = start_agent(&cfg, &dir.path().join("agent-backlog.log"), &[]);
    // Live readings pile up behind the outage too, and the reconnect backoff reaches its
    // ceiling, as after a long outage.
    std::thread::sleep(Duration::from_secs(20));
    *seen.lock().unwrap() = Seen::default();
    broker.restart().unwrap();
    let back = Instant::now();
    let back_ms = wall_ms();
    wait("the backlog to drain", Duration::from_secs(600), || {
        seen.lock().unwrap().historical_points >= backlog_points
    });
    let drained = back.elapsed();
    // A few more seconds of live data after the drain.
    std::thread::sleep(Duration::from_secs(3));
    let (rss, hwm, _) = proc_figures(agent.id());
    let s = seen.lock().unwrap();
    let first = s.first_historical.map(|t| t.duration_since(back));
    // Live points taken after the broker returned; those queued during the outage are backlog
    // in all but name.
    let mut delays: Vec<i64> = s
        .live_delay_ms
        .iter()
        .filter(|(ts, _)| *ts >= back_ms)
        .map(|d| d.1)
        .collect();
    let p50 = percentile(&mut delays, 0.5);
    let p99 = percentile(&mut delays, 0.99);
    let max = delays.iter().copied().max().unwrap_or(-1);
    println!(
        "[backlog] A6 {} historical points drained in {:.1} s after the broker returned",
        s.historical_points,
        drained.as_secs_f64()
    );
    println!(
        "[backlog] A6 first backlog point {:.0} ms after the broker returned",
        first.map_or(-1.0, |d| d.as_secs_f64() * 1000.0)
    );
    println!(
        "[backlog] A6 live points taken after the broker returned: {}, delay p50 {p50} ms, p99 {p99} ms, max {max} ms",
        delays.len()
    );
    println!(
        "[backlog] RSS after the drain {:.2} MiB, peak {:.2} MiB",
        rss as f64 / 1048576.0,
        hwm as f64 / 1048576.0
    );
    drop(s);
    terminate(&mut agent);
    let _ = rt.block_on(tcp.stop());
}
