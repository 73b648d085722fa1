//! One of the workspace's own programs (the agent, the cloud) run as a child by a test: its
//! output appended to a log file the test reads, signalled as systemd would, killed on drop if
//! still running.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{Result, ServiceError};

/// A running program of the workspace.
#[derive(Debug)]
pub struct Program {
    pub child: Child,
    log: PathBuf,
}

impl Program {
    /// `binary args…` with `RUST_LOG=info` and `env`, stdin closed, stdout and stderr appended
    /// to `log`.
    pub fn start(
        binary: &Path,
        args: &[&OsStr],
        log: &Path,
        env: &[(&str, &str)],
    ) -> Result<Program> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| ServiceError(format!("open the log {}: {e}", log.display())))?;
        let mut cmd = Command::new(binary);
        cmd.args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| ServiceError(format!("start {}: {e}", binary.display())))?;
        Ok(Program {
            child,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: Signal) -> Result<()> {
        kill(Pid::from_raw(self.child.id() as i32), sig)
            .map_err(|e| ServiceError(format!("{sig} to {}: {e}", self.child.id())))
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.exited().is_none()
    }

    /// SIGKILL, and the exit collected.
    pub fn kill9(&mut self) {
        let _ = self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGTERM, then its exit status; if it has not exited within `patience`, SIGKILL and an
    /// error carrying the log.
    pub fn terminate(&mut self, patience: Duration) -> Result<ExitStatus> {
        if let Some(s) = self.exited() {
            return Ok(s);
        }
        self.signal(Signal::SIGTERM)?;
        let start = Instant::now();
        loop {
            if let Some(s) = self.exited() {
                return Ok(s);
            }
            if start.elapsed() > patience {
                self.kill9();
                return Err(ServiceError(format!(
                    "{} did not stop within {patience:?} of SIGTERM; log:\n{}",
                    self.pid(),
                    self.log_text()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if self.running() {
            self.kill9();
        }
    }
}
