//! Shared pieces of the end-to-end tests: the simulator on its own runtime, a subscriber that
//! decodes everything the agent publishes, the real agent binary as a child process.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fieldlink_protocol::{
    binary, decode_telemetry, decode_telemetry_aliased, json, Ack, Event, SeriesAliases, Status,
    TelemetryBatch,
};
use fieldlink_sim::{SimConfig, Simulator, TcpServerHandle};
use fieldlink_testkit::Program;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use rumqttc_ring as rumqttc;

pub const BIN: &str = env!("CARGO_BIN_EXE_fieldlink-agent");

/// How long a test waits for something that should happen within seconds.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `f` until it holds; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The simulator, served over TCP from a runtime of its own.
pub struct SimServer {
    pub rt: tokio::runtime::Runtime,
    pub sim: Simulator,
    pub tcp: Option<TcpServerHandle>,
    pub port: u16,
}

impl SimServer {
    pub fn tcp(toml: &str) -> SimServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sim = Simulator::from_config(SimConfig::from_toml_str(toml).unwrap()).unwrap();
        let tcp = rt
            .block_on(sim.bind_tcp("127.0.0.1:0".parse().unwrap()))
            .unwrap();
        let port = tcp.local_addr().port();
        SimServer {
            rt,
            sim,
            tcp: Some(tcp),
            port,
        }
    }

    /// Stops answering; returns when the server is down.
    pub fn stop_tcp(&mut self) {
        if let Some(tcp) = self.tcp.take() {
            let _ = self.rt.block_on(tcp.stop());
        }
    }
}

/// Everything the agent published that the subscriber saw, decoded.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub telemetry: Vec<TelemetryBatch>,
    /// Status messages with their retain flag.
    pub statuses: Vec<(Status, bool)>,
    pub acks: Vec<Ack>,
    pub events: Vec<Event>,
    pub undecodable: Vec<String>,
    /// Bytes of telemetry payloads.
    pub telemetry_bytes: usize,
    /// The alias tables of the births received, oldest first.
    pub births: Vec<SeriesAliases>,
}

impl Received {
    pub fn points(&self) -> impl Iterator<Item = &fieldlink_protocol::Point> {
        self.telemetry.iter().flat_map(|b| b.points.iter())
    }

    /// `(device, metric, value)` of points of `device`.
    pub fn values_of(&self, device: &str, metric: &str) -> Vec<f64> {
        self.points()
            .filter(|p| p.device.as_str() == device && p.metric.as_str() == metric)
            .filter_map(|p| match p.value {
                fieldlink_protocol::Value::Number(x) => Some(x),
                _ => None,
            })
            .collect()
    }

    pub fn acks_for(&self, id: &str) -> Vec<&Ack> {
        self.acks
            .iter()
            .filter(|a| a.command_id.as_str() == id)
            .collect()
    }
}

/// A persistent-session subscriber to one gateway's topics (it keeps its queue across broker
/// restarts, so it misses nothing the broker accepted).
pub struct Subscriber {
    pub data: Arc<Mutex<Received>>,
    client: rumqttc::Client,
    stop: Arc<AtomicBool>,
    subscribed: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscriber {
    pub fn start(port: u16, gateway: &str) -> Subscriber {
        Self::start_with(port, gateway, |_| {})
    }

    pub fn start_with(
        port: u16,
        gateway: &str,
        tweak: impl FnOnce(&mut rumqttc::MqttOptions),
    ) -> Subscriber {
        let mut o = rumqttc::MqttOptions::new(format!("test-sub-{gateway}"), "127.0.0.1", port);
        o.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        tweak(&mut o);
        let (client, mut conn) = rumqttc::Client::new(o, 100);
        let data = Arc::new(Mutex::new(Received::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let subscribed = Arc::new(AtomicBool::new(false));
        let filter = format!("fieldlink/v1/{gateway}/#");
        let (d, s, sub, c) = (
            data.clone(),
            stop.clone(),
            subscribed.clone(),
            client.clone(),
        );
        let thread = std::thread::spawn(move || {
            for ev in conn.iter() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::ConnAck(_))) => {
                        let _ = c.subscribe(filter.clone(), rumqttc::QoS::AtLeastOnce);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::SubAck(_))) => {
                        sub.store(true, Ordering::Relaxed);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p))) => {
                        record(&d, &p);
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        let me = Subscriber {
            data,
            client,
            stop,
            subscribed,
            thread: Some(thread),
        };
        wait_until("the test subscriber to subscribe", PATIENCE, || {
            me.subscribed.load(Ordering::Relaxed)
        });
        me
    }

    pub fn snapshot(&self) -> Received {
        self.data.lock().unwrap().clone()
    }

    /// Waits until `f` holds for what was received.
    pub fn wait(&self, what: &str, f: impl Fn(&Received) -> bool) -> Received {
        self.wait_for(what, PATIENCE, f)
    }

    /// Like [`Subscriber::wait`], for at most `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, f: impl Fn(&Received) -> bool) -> Received {
        wait_until(what, limit, || f(&self.data.lock().unwrap()));
        self.snapshot()
    }

    pub fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .unwrap();
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.disconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn record(d: &Mutex<Received>, p: &rumqttc::Publish) {
    let mut r = d.lock().unwrap();
    let kind = p.topic.rsplit('/').next().unwrap_or("");
    let bytes = &p.payload[..];
    let ok = match kind {
        "telemetry" => decode_with_births(&r.births, bytes).map(|b| {
            r.telemetry_bytes += bytes.len();
            r.telemetry.push(b)
        }),
        "status" => json::decode::<Status>(bytes).map(|s| {
            if let Status::Online(b) = &s {
                r.births.push(SeriesAliases::from_birth(b));
            }
            r.statuses.push((s, p.retain))
        }),
        "ack" => json::decode::<Ack>(bytes).map(|a| r.acks.push(a)),
        "events" => json::decode::<Event>(bytes).map(|e| r.events.push(e)),
        _ => return,
    };
    if let Err(e) = ok {
        r.undecodable.push(format!("{}: {e}", p.topic));
    }
}

/// Reads telemetry, aliased with one of the births received before it or named.
fn decode_with_births(
    births: &[SeriesAliases],
    bytes: &[u8],
) -> Result<TelemetryBatch, fieldlink_protocol::DecodeError> {
    match binary::birth_ref(bytes) {
        Ok(Some(r)) => match births.iter().rev().find(|a| a.matches(&r)) {
            Some(a) => decode_telemetry_aliased(bytes, a),
            None => decode_telemetry(bytes),
        },
        _ => decode_telemetry(bytes),
    }
}

/// The agent binary running as a child, its log in a file (testkit's [`Program`], whose `child`
/// the tests reach through it).
pub struct AgentProc(Program);

impl std::ops::Deref for AgentProc {
    type Target = Program;
    fn deref(&self) -> &Program {
        &self.0
    }
}

impl std::ops::DerefMut for AgentProc {
    fn deref_mut(&mut self) -> &mut Program {
        &mut self.0
    }
}

impl AgentProc {
    pub fn start(config: &Path, log: &Path) -> AgentProc {
        Self::start_with_env(config, log, &[])
    }

    pub fn start_with_env(config: &Path, log: &Path, env: &[(&str, &str)]) -> AgentProc {
        let args = [
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("run"),
        ];
        AgentProc(Program::start(Path::new(BIN), &args, log, env).unwrap())
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.0.pid() as i32)
    }

    pub fn signal(&self, sig: Signal) {
        self.0.signal(sig).unwrap();
    }

    /// SIGTERM, then waits for the exit (SIGKILL and a panic with the log after a generous
    /// deadline).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.0
            .terminate(PATIENCE)
            .unwrap_or_else(|e| panic!("the agent: {e}"))
    }
}

/// A simulator unit (id 1) of u32 counters named `names`, in consecutive register pairs from
/// 0, each starting a million apart and advancing by one every `interval_s`; and the agent's
/// point map for them. Counters make every served reading unique, so ground truth is exact.
pub fn counter_site(names: &[&str], interval_s: f64) -> (String, String) {
    let mut sim = String::from("[served_log]\ncapacity = 1000000\n[[units]]\nid = 1\n");
    let mut points = String::new();
    for (i, name) in names.iter().enumerate() {
        let (address, start) = (2 * i, 1_000_000 * i);
        sim.push_str(&format!(
            "[[units.points]]\nname = \"{name}\"\ntable = \"holding_register\"\n\
             address = {address}\ntype = \"u32\"\nwaveform = {{ kind = \"counter\", \
             start = {start}, increment = 1, interval_s = {interval_s} }}\n"
        ));
        points.push_str(&format!(
            "[[devices.points]]\nname = \"{name}\"\ntable = \"holding_register\"\n\
             address = {address}\ntype = \"u32\"\n"
        ));
    }
    (sim, points)
}

/// An agent configuration for tests: fast reconnects, journal in `dir`.
pub fn agent_config(dir: &Path, gateway: &str, mqtt: &str, devices: &str) -> PathBuf {
    let text = format!(
        r#"
[gateway]
id = "{gateway}"
self_telemetry_s = 3600
shutdown_grace_s = 10

[mqtt]
{mqtt}
keep_alive_s = 5
reconnect_min_ms = 100
reconnect_max_ms = 1000

[journal]
path = "{journal}"

[logging]
level = "info"

{devices}
"#,
        journal = dir.join("journal.db").display(),
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A Modbus TCP device section.
pub fn tcp_device(name: &str, port: u16, unit: u8, poll_ms: u64, points: &str) -> String {
    format!(
        r#"
[[devices]]
name = "{name}"
poll_interval_ms = {poll_ms}
timeout_ms = 1000
transport = {{ kind = "tcp", host = "127.0.0.1", port = {port}, unit_id = {unit} }}
{points}
"#
    )
}

/// `socat` pseudo-terminal pair.
pub struct PtyPair {
    child: Child,
    pub a: PathBuf,
    pub b: PathBuf,
}

impl PtyPair {
    pub fn new() -> PtyPair {
        let mut child = Command::new("socat")
            .args(["-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("socat is needed for serial tests: apt-get install socat");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut paths = Vec::new();
        while paths.len() < 2 {
            let line = lines.next().expect("socat reports two ptys").unwrap();
            if let Some((_, p)) = line.split_once("PTY is ") {
                paths.push(PathBuf::from(p.trim()));
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let b = paths.pop().unwrap();
        let a = paths.pop().unwrap();
        PtyPair { child, a, b }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
