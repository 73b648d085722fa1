//! The systemd notification protocol, spoken directly: datagrams to `$NOTIFY_SOCKET`.
//!
//! `READY=1` once the agent runs, `WATCHDOG=1` while [`crate::health::Liveness`] says every loop
//! makes progress, `STOPPING=1` at shutdown. The protocol itself is
//! [`fieldlink_plumbing::sd_notify`], shared with the cloud.

use std::path::PathBuf;
use std::time::Duration;

use fieldlink_plumbing::sd_notify;
use tokio_util::sync::CancellationToken;

use crate::health::Liveness;

/// Where notifications go, if anywhere ([`sd_notify::Notifier`]), and the agent's watchdog rule.
#[derive(Debug)]
pub struct Notifier {
    inner: sd_notify::Notifier,
}

impl Notifier {
    /// From the environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        Notifier {
            inner: sd_notify::Notifier::from_env(),
        }
    }

    /// Notifications to the socket at `path` (`None`: nowhere), watchdog pings every
    /// `watchdog_every` (`None`: none).
    pub fn new(path: Option<PathBuf>, watchdog_every: Option<Duration>) -> Notifier {
        Notifier {
            inner: sd_notify::Notifier::to_path(path, watchdog_every),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_enabled()
    }

    /// Half the watchdog interval systemd asked for (`WATCHDOG_USEC`), if it asked.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.inner.watchdog_every()
    }

    pub fn ready(&self) {
        self.inner.send("READY=1");
    }

    pub fn stopping(&self) {
        self.inner.send("STOPPING=1");
    }

    /// Pings the watchdog while every loop is alive; stops pinging (and says why, once) when one
    /// stalls. Runs until `cancel`.
    pub async fn watchdog(&self, liveness: Liveness, cancel: CancellationToken) {
        let Some(every) = self.inner.watchdog_every() else {
            return;
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_stalled = false;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            match liveness.stalled() {
                None => {
                    if was_stalled {
                        tracing::warn!("all loops progress again; watchdog pings resume");
                    }
                    was_stalled = false;
                    self.inner.ping();
                }
                Some(name) => {
                    if !was_stalled {
                        tracing::error!(loop_name = name, "loop stalled; watchdog pings stop");
                    }
                    was_stalled = true;
                }
            }
        }
    }
}
