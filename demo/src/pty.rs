//! A pseudo-terminal pair from `socat`, standing in for the RS-232 cable between the weather
//! station and the gateway: the simulator writes into one end, the agent reads the other.
//!
//! `socat` makes two ptys and copies bytes between them; the symlinks it creates in the data
//! directory give them stable names. The pair lives as long as the `socat` child, which is
//! killed when the [`PtyPair`] is dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// How long `socat` gets to create both links.
const READY_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    #[error("cannot start socat: {0}")]
    Spawn(std::io::Error),
    #[error("socat exited before creating the pty pair ({0})")]
    Exited(std::process::ExitStatus),
    #[error("socat did not create {0} within {READY_WITHIN:?}")]
    NotReady(PathBuf),
}

/// A running `socat` pty pair.
pub struct PtyPair {
    child: Child,
    device: PathBuf,
    gateway: PathBuf,
}

/// Whether `socat` is on `PATH`.
pub fn socat_available() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("socat").is_file()))
}

impl PtyPair {
    /// Starts `socat` with the two ends linked at `dir/<name>-device` and `dir/<name>`.
    pub async fn start(dir: &Path, name: &str) -> Result<PtyPair, PtyError> {
        let device = dir.join(format!("{name}-device"));
        let gateway = dir.join(name);
        for link in [&device, &gateway] {
            // A link left by a previous run that was killed points at a pty that is gone.
            let _ = std::fs::remove_file(link);
        }
        let end = |link: &Path| format!("pty,raw,echo=0,link={}", link.display());
        let mut child = Command::new("socat")
            .arg(end(&device))
            .arg(end(&gateway))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            // Its own process group: a Ctrl-C in the terminal reaches the demo, which stops the
            // agent while the pty still exists, and then stops socat itself.
            .process_group(0)
            .spawn()
            .map_err(PtyError::Spawn)?;
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        for link in [&device, &gateway] {
            while !link.exists() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(PtyError::Exited(status));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(PtyError::NotReady(link.clone()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(PtyPair {
            child,
            device,
            gateway,
        })
    }

    /// The end the simulated device writes to.
    pub fn device_end(&self) -> &Path {
        &self.device
    }

    /// The end the agent reads, as a serial port.
    pub fn gateway_end(&self) -> &Path {
        &self.gateway
    }

    /// Stops `socat` and removes the links.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let _ = std::fs::remove_file(&self.device);
        let _ = std::fs::remove_file(&self.gateway);
    }
}
