//! Shared helpers for the integration tests: real peers (socat pty pairs, pymodbus servers),
//! point maps from JSON, and waiting for driver events.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fieldlink_drivers::{
    DriverEvent, HealthEvent, HealthState, PointMap, PointMapConfig, Readings,
};
use fieldlink_protocol::Value;
use tokio::sync::mpsc;

/// How long a test waits for something that should happen within a poll or two.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn point_map(json: &str) -> PointMap {
    let config: PointMapConfig = serde_json::from_str(json).expect("test point map parses");
    PointMap::from_config(&config).unwrap_or_else(|e| panic!("test point map is valid: {e}"))
}

/// The next readings of `device`, skipping other events.
pub async fn next_readings(rx: &mut mpsc::Receiver<DriverEvent>, device: &str) -> Readings {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match rx.recv().await.expect("event channel open") {
                DriverEvent::Readings(r, _) if r.device.as_str() == device => return r,
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no readings from {device} within {PATIENCE:?}"))
}

/// Waits until `device` reports `state`, skipping other events.
pub async fn wait_health(
    rx: &mut mpsc::Receiver<DriverEvent>,
    device: &str,
    state: HealthState,
) -> HealthEvent {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match rx.recv().await.expect("event channel open") {
                DriverEvent::Health(h) if h.device.as_str() == device && h.state == state => {
                    return h
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{device} did not become {state:?} within {PATIENCE:?}"))
}

pub fn value_of<'a>(r: &'a Readings, metric: &str) -> &'a Value {
    &r.points
        .iter()
        .find(|p| p.metric.as_str() == metric)
        .unwrap_or_else(|| panic!("no reading for {metric} in {r:#?}"))
        .value
}

pub fn number(r: &Readings, metric: &str) -> f64 {
    match value_of(r, metric) {
        Value::Number(x) => *x,
        other => panic!("{metric} is {other:?}, not a number"),
    }
}

/// Fails with a clear message when a tool the test needs is not installed.
pub fn require_tool(program: &str, probe_arg: &str, install_hint: &str) {
    let ok = Command::new(program)
        .arg(probe_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs `{program}`, which is not installed or does not run; {install_hint}"
    );
}

pub fn require_socat() {
    require_tool("socat", "-V", "install it with `apt-get install socat`");
}

pub fn require_pymodbus() {
    let ok = Command::new("python3")
        .args(["-c", "import pymodbus, serial"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs python3 with pymodbus and pyserial; install them with \
         `pip install pymodbus pyserial`"
    );
}

/// A pair of connected pseudo-terminals made by socat, reachable at fixed symlinks so they can
/// be recreated at the same paths after the socat process is killed.
pub struct PtyPair {
    child: Option<Child>,
    pub a: PathBuf,
    pub b: PathBuf,
}

impl PtyPair {
    pub fn new(dir: &Path) -> PtyPair {
        require_socat();
        let mut pair = PtyPair {
            child: None,
            a: dir.join("ttyA"),
            b: dir.join("ttyB"),
        };
        pair.start();
        pair
    }

    /// Starts socat and waits for both ends to exist.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "socat already running");
        let end = |p: &Path| format!("pty,raw,echo=0,link={}", p.display());
        let child = Command::new("socat")
            .args([end(&self.a), end(&self.b)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat starts");
        self.child = Some(child);
        for _ in 0..500 {
            if self.a.exists() && self.b.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "socat did not create {} and {}",
            self.a.display(),
            self.b.display()
        );
    }

    /// Kills socat: both ends vanish, as when a USB adapter is pulled.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for _ in 0..500 {
            if !self.a.exists() && !self.b.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn a(&self) -> String {
        self.a.display().to_string()
    }

    pub fn b(&self) -> String {
        self.b.display().to_string()
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The pymodbus server script shipped beside the tests, run as a child process.
pub struct PymodbusServer {
    child: Child,
    /// The TCP port it listens on, for TCP servers.
    pub port: Option<u16>,
}

impl PymodbusServer {
    /// Starts `pymodbus_server.py` with `args` and waits for it to print `READY [port]`.
    pub fn start(args: &[&str]) -> PymodbusServer {
        use std::io::BufRead;
        require_pymodbus();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pymodbus_server.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let ready = lines
            .next()
            .and_then(|l| l.ok())
            .unwrap_or_else(|| panic!("pymodbus server exited before READY"));
        let mut words = ready.split_whitespace();
        assert_eq!(
            words.next(),
            Some("READY"),
            "unexpected first line {ready:?}"
        );
        let port = words.next().map(|p| p.parse().expect("port number"));
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        PymodbusServer { child, port }
    }
}

impl Drop for PymodbusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}
