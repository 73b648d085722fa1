//! The systemd notification protocol, spoken directly: datagrams to `$NOTIFY_SOCKET`.
//!
//! `READY=1` once the agent runs, `WATCHDOG=1` while [`crate::health::Liveness`] says every loop
//! makes progress, `STOPPING=1` at shutdown. Without `NOTIFY_SOCKET` every call is a no-op. A
//! leading `@` names a Linux abstract socket.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::health::Liveness;

/// Where notifications go, if anywhere.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, Target)>,
    /// Half the watchdog interval systemd asked for (`WATCHDOG_USEC`), if it asked.
    pub watchdog_every: Option<Duration>,
}

#[derive(Debug)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From the environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|s| {
            let bytes = s.as_encoded_bytes();
            let target = match bytes.first() {
                Some(b'@') => Target::Abstract(bytes[1..].to_vec()),
                Some(b'/') => Target::Path(PathBuf::from(&s)),
                _ => return None,
            };
            UnixDatagram::unbound().ok().map(|sock| (sock, target))
        });
        let pid_ok = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && pid_ok)
            .map(|u| Duration::from_micros(u / 2));
        Notifier {
            target,
            watchdog_every,
        }
    }

    /// Notifications to the socket at `path` (`None`: nowhere), watchdog pings every
    /// `watchdog_every` (`None`: none).
    pub fn new(path: Option<PathBuf>, watchdog_every: Option<Duration>) -> Notifier {
        let target = path.and_then(|p| {
            UnixDatagram::unbound()
                .ok()
                .map(|sock| (sock, Target::Path(p)))
        });
        Notifier {
            target,
            watchdog_every,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one notification; errors are logged, never fatal.
    pub fn send(&self, state: &str) {
        let Some((sock, target)) = &self.target else {
            return;
        };
        let result = match target {
            Target::Path(p) => sock.send_to(state.as_bytes(), p),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, state, "sd_notify failed");
        }
    }

    pub fn ready(&self) {
        self.send("READY=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// Pings the watchdog while every loop is alive; stops pinging (and says why, once) when one
    /// stalls. Runs until `cancel`.
    pub async fn watchdog(&self, liveness: Liveness, cancel: CancellationToken) {
        let Some(every) = self.watchdog_every else {
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
                    self.send("WATCHDOG=1");
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
