//! Helpers shared by the integration tests: simulators from TOML text, Modbus clients with
//! timeouts, and `socat` pseudo-terminal pairs.

#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fieldlink_sim::{SimConfig, Simulator};
use tokio_modbus::client::Context;
use tokio_modbus::Slave;

/// Long enough for any answer on a loaded machine; only a broken test waits this long.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How long a test waits before deciding an answer is not coming.
pub const NO_ANSWER: Duration = Duration::from_millis(400);

pub fn sim(toml_text: &str) -> Simulator {
    let config = SimConfig::from_toml_str(toml_text).expect("test configuration parses");
    Simulator::from_config(config).expect("test configuration is valid")
}

/// Awaits `f`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {PATIENCE:?}"))
}

/// Whether `f` stays unanswered for [`NO_ANSWER`].
pub async fn unanswered<F: Future>(f: F) -> bool {
    tokio::time::timeout(NO_ANSWER, f).await.is_err()
}

pub async fn tcp_client(addr: SocketAddr, unit: u8) -> Context {
    within(
        "connect",
        tokio_modbus::client::tcp::connect_slave(addr, Slave(unit)),
    )
    .await
    .expect("connect to the simulator")
}

/// The two ends of a `socat` pseudo-terminal pair; socat is stopped on drop.
pub struct PtyPair {
    child: Child,
    pub a: PathBuf,
    pub b: PathBuf,
}

impl PtyPair {
    /// Starts `socat -d -d pty,raw,echo=0 pty,raw,echo=0` and reads the two device paths it
    /// reports. Panics with an explanation when socat is not installed.
    pub fn new() -> PtyPair {
        let mut child = match Command::new("socat")
            .args(["-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
                "these tests need socat for serial pseudo-terminal pairs, and it is not \
                 installed: apt-get install socat"
            ),
            Err(err) => panic!("cannot start socat: {err}"),
        };
        let stderr = child.stderr.take().expect("socat stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let mut paths = Vec::new();
        while paths.len() < 2 {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => panic!("socat exited before reporting two pseudo-terminals"),
            };
            if let Some((_, path)) = line.split_once("PTY is ") {
                paths.push(PathBuf::from(path.trim()));
            }
        }
        // Keep draining socat's log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let b = paths.pop().expect("two paths");
        let a = paths.pop().expect("two paths");
        PtyPair { child, a, b }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
