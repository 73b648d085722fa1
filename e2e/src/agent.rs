//! The real `fieldlink-agent` binary, run as a child process.
//!
//! Cargo hands a package's own binaries to its tests (`CARGO_BIN_EXE_*`), not another
//! package's, so the binary is looked up in the profile directory this test executable was
//! built into (`target/<profile>/deps/..`) after `cargo build -p fieldlink-agent` has brought
//! it up to date there (same target directory, same profile; once per process). Setting
//! `FIELDLINK_AGENT_BIN` runs that file instead and builds nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The agent binary to run: `FIELDLINK_AGENT_BIN`, or this workspace's, built when stale.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(locate_or_build) {
        Ok(path) => path,
        Err(why) => panic!("the fieldlink-agent binary: {why}"),
    }
}

fn locate_or_build() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("FIELDLINK_AGENT_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "FIELDLINK_AGENT_BIN={} is not a file",
                path.display()
            ))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // target/<profile>/deps/<this executable>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{} is not under target/<profile>/deps", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{} has no parent", profile_dir.display()))?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{} has no name", profile_dir.display()))?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    // `--locked`: the lock file the outer build used; this build never rewrites it.
    cmd.args([
        "build",
        "--quiet",
        "--locked",
        "-p",
        "fieldlink-agent",
        "--bin",
        "fieldlink-agent",
    ])
    .arg("--manifest-path")
    .arg(&manifest)
    .arg("--target-dir")
    .arg(target_dir);
    // `cargo bench` builds into target/release with the bench profile, which inherits release.
    if profile == "release" {
        cmd.arg("--release");
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build -p fieldlink-agent ({profile}) failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let path = profile_dir.join("fieldlink-agent");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("cargo built, but {} is missing", path.display()))
    }
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
pub struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    /// `fieldlink-agent --config CONFIG run`, its output appended to `log`.
    pub fn start(config: &Path, log: &Path) -> Agent {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the agent's log");
        let child = Command::new(binary())
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log handle"))
            .stderr(file)
            .spawn()
            .expect("start fieldlink-agent");
        Agent {
            child,
            log: log.to_path_buf(),
        }
    }

    /// SIGTERM, then waits for the exit: the agent commits, publishes `offline` and stops.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        if let Some(status) = self.child.try_wait().expect("wait for the agent") {
            return status;
        }
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).expect("signal the agent");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the agent") {
                return status;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the agent did not stop on SIGTERM; log:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
