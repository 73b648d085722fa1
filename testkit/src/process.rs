//! A child process that is stopped when its guard is dropped.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{Result, ServiceError};

pub(crate) struct ChildGuard {
    name: &'static str,
    child: Option<Child>,
    /// The signal that asks this service for a clean, fast shutdown.
    stop_signal: Signal,
}

impl ChildGuard {
    pub(crate) fn spawn(
        name: &'static str,
        cmd: &mut Command,
        stop_signal: Signal,
    ) -> Result<Self> {
        let child = cmd.spawn().map_err(|e| {
            ServiceError(format!(
                "cannot start {name} ({:?}): {e}",
                cmd.get_program()
            ))
        })?;
        Ok(ChildGuard {
            name,
            child: Some(child),
            stop_signal,
        })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub(crate) fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.as_mut().and_then(|c| c.stdout.take())
    }

    /// `Some(status)` if the process has already exited.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Asks for a clean shutdown and waits up to `grace`, then kills.
    pub(crate) fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = kill(Pid::from_raw(child.id() as i32), self.stop_signal);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "testkit: {} did not stop within {grace:?}; killing it",
            self.name
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the process with SIGKILL, as a crash or power cut would.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Finds an executable on PATH or in the given extra directories.
pub(crate) fn find_binary(
    name: &str,
    extra_dirs: &[&str],
    package: &str,
) -> Result<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(extra_dirs.iter().map(std::path::PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(ServiceError(format!(
        "`{name}` not found on PATH or in {extra_dirs:?}; install Debian's `{package}` package \
         (scripts/test.sh does this)"
    )))
}

/// The effective user id of this process, read from /proc (root needs special handling by
/// services that refuse to run as root or drop privileges by themselves).
pub(crate) fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(u32::MAX)
}
