//! The real `fieldlink-agent` binary, run as a child process (found or built by
//! [`crate::binaries`]; `FIELDLINK_AGENT_BIN` runs another file).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fieldlink_testkit::Program;
use nix::sys::signal::Signal;

/// The agent binary to run: `FIELDLINK_AGENT_BIN`, or this workspace's, built when stale.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| crate::binaries::workspace_binary("fieldlink-agent", "FIELDLINK_AGENT_BIN"))
}

/// Writes the agent's configuration into `dir` (journal and state there too) and returns its
/// path: gateway [`crate::site::GATEWAY`], the broker on `broker_port`, fast reconnects.
pub fn write_config(dir: &Path, broker_port: u16, devices: &str) -> PathBuf {
    let text = format!(
        r#"
[gateway]
id = "{gateway}"
self_telemetry_s = 3600
shutdown_grace_s = 10

[mqtt]
url = "mqtt://127.0.0.1:{broker_port}"
keep_alive_s = 5
reconnect_min_ms = 100
reconnect_max_ms = 500

[journal]
path = "{journal}"

[logging]
level = "info"
{devices}
"#,
        gateway = crate::site::GATEWAY,
        journal = dir.join("journal.db").display(),
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).expect("write the agent configuration");
    path
}

/// A running agent; killed on drop if still running.
pub struct Agent(Program);

impl Agent {
    /// `fieldlink-agent --config CONFIG run`, its output appended to `log`.
    pub fn start(config: &Path, log: &Path) -> Agent {
        let args = [
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("run"),
        ];
        Agent(Program::start(binary(), &args, log, &[]).expect("start fieldlink-agent"))
    }

    /// SIGTERM, then waits for the exit: the agent commits, publishes `offline` and stops.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        if let Some(status) = self.0.exited() {
            return status;
        }
        self.0.signal(Signal::SIGTERM).expect("signal the agent");
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.exited() {
                return status;
            }
            if start.elapsed() > Duration::from_secs(30) {
                self.0.kill9();
                panic!(
                    "the agent did not stop on SIGTERM; log:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_text(&self) -> String {
        self.0.log_text()
    }
}
