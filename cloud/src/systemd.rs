//! The service manager's notification protocol (`sd_notify`), spoken directly: one datagram per
//! message to the Unix socket named by `$NOTIFY_SOCKET` (a path, or a Linux abstract name after
//! a leading `@`). Without that variable, or when not run by systemd, every call is a no-op.
//!
//! What `fieldlink-cloud serve` says and when:
//! - `READY=1` (with `STATUS=` naming the HTTP address) once `service::serve` reports that it
//!   serves: migrations applied, the embedded broker (if configured) listening, ingest started
//!   and the HTTP listener bound. It does not wait for the external broker's SUBACK: a broker
//!   that is down must not keep the unit "activating" until `TimeoutStartSec=` kills it and
//!   restarts it in a loop, while the API could serve history; ingest reconnects by itself and
//!   `/health/ready` tells load balancers whether this node ingests.
//! - `WATCHDOG=1` every `$WATCHDOG_USEC / 2` from a task on the service's runtime, when the unit
//!   sets `WatchdogSec=` and `$WATCHDOG_PID` (if set) is this process. The pings stop when no
//!   runtime worker can run tasks any more (a blocking call or a lock held on every worker),
//!   which otherwise leaves a process that is "active" but neither ingests nor answers; systemd
//!   then aborts and restarts it. That is safe because the cloud acknowledges an MQTT message
//!   only after its rows are committed: the broker redelivers whatever was in flight.
//! - `STOPPING=1` as soon as a stop begins (SIGTERM, Ctrl-C), before ingest drains.

use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Where notifications go, if anywhere, and how often the watchdog wants a ping.
#[derive(Debug)]
pub struct SystemdNotifier {
    socket: Option<(UnixDatagram, SocketName)>,
    watchdog_every: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SocketName {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl SystemdNotifier {
    /// From this process's environment: `NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`.
    pub fn from_env() -> SystemdNotifier {
        SystemdNotifier::from_vars(|name| std::env::var_os(name), std::process::id())
    }

    /// From variables looked up by `var`, for the process `pid`.
    fn from_vars(var: impl Fn(&str) -> Option<OsString>, pid: u32) -> SystemdNotifier {
        let name = var("NOTIFY_SOCKET").and_then(|s| {
            let bytes = s.as_encoded_bytes();
            match bytes.first() {
                Some(b'@') if bytes.len() > 1 => Some(SocketName::Abstract(bytes[1..].to_vec())),
                Some(b'/') => Some(SocketName::Path(PathBuf::from(s))),
                _ => {
                    tracing::warn!(notify_socket = ?s, "NOTIFY_SOCKET is neither an absolute path nor an abstract name; not notifying");
                    None
                }
            }
        });
        let socket = name.and_then(|name| match UnixDatagram::unbound() {
            Ok(sock) => Some((sock, name)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot create a socket for systemd notifications");
                None
            }
        });
        let text = |name: &str| var(name).and_then(|v| v.into_string().ok());
        let for_us = text("WATCHDOG_PID").is_none_or(|p| p.trim().parse::<u32>() == Ok(pid));
        let watchdog_every = text("WATCHDOG_USEC")
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us && socket.is_some())
            .map(|u| Duration::from_micros(u / 2));
        SystemdNotifier {
            socket,
            watchdog_every,
        }
    }

    /// Whether a service manager listens.
    pub fn is_enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Half the watchdog interval the unit asked for, if it asked.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog_every
    }

    /// Sends one datagram of `KEY=value` lines. A failure is logged, never fatal: the service
    /// runs the same without a service manager.
    pub fn send(&self, message: &str) {
        let Some((sock, name)) = &self.socket else {
            return;
        };
        let sent = match name {
            SocketName::Path(path) => sock.send_to(message.as_bytes(), path),
            SocketName::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|addr| sock.send_to_addr(message.as_bytes(), &addr))
            }
        };
        match sent {
            Ok(n) if n == message.len() => {}
            Ok(n) => tracing::warn!(message, sent = n, "systemd notification truncated"),
            Err(e) => tracing::warn!(error = %e, message, "systemd notification failed"),
        }
    }

    /// `READY=1`, with a status line for `systemctl status`.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `STOPPING=1`, with a status line.
    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    /// Pings the watchdog until `stop` fires; returns at once when no watchdog was asked for.
    pub async fn watchdog(&self, stop: CancellationToken) {
        let Some(every) = self.watchdog_every else {
            return;
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.send("WATCHDOG=1"),
            }
        }
    }
}

/// A status text fit for one `STATUS=` line.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::os::linux::net::SocketAddrExt;

    use super::*;

    fn notifier(vars: &[(&str, &str)], pid: u32) -> SystemdNotifier {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        SystemdNotifier::from_vars(|name| vars.get(name).cloned(), pid)
    }

    /// A bound datagram socket that never blocks the test for long.
    fn listener(path: &std::path::Path) -> UnixDatagram {
        let sock = UnixDatagram::bind(path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 1024];
        let n = sock.recv(&mut buf).expect("a datagram within 5 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn ready_and_stopping_reach_a_socket_named_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = listener(&path);
        let n = notifier(&[("NOTIFY_SOCKET", path.to_str().unwrap())], 42);
        assert!(n.is_enabled());
        assert_eq!(n.watchdog_every(), None);
        n.ready("serving HTTP on 127.0.0.1:8080\nand more");
        assert_eq!(
            recv(&sock),
            "READY=1\nSTATUS=serving HTTP on 127.0.0.1:8080 and more"
        );
        n.stopping("draining ingest");
        assert_eq!(recv(&sock), "STOPPING=1\nSTATUS=draining ingest");
    }

    #[test]
    fn an_abstract_socket_name_is_reached() {
        let name = format!("fieldlink-cloud-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = notifier(&[("NOTIFY_SOCKET", &format!("@{name}"))], 42);
        n.ready("serving");
        assert_eq!(recv(&sock), "READY=1\nSTATUS=serving");
    }

    #[test]
    fn without_a_usable_socket_nothing_is_sent_and_nothing_fails() {
        for vars in [
            &[][..],
            &[("NOTIFY_SOCKET", "relative/notify.sock")][..],
            &[("NOTIFY_SOCKET", "@")][..],
            &[("NOTIFY_SOCKET", ""), ("WATCHDOG_USEC", "1000000")][..],
        ] {
            let n = notifier(vars, 42);
            assert!(!n.is_enabled(), "{vars:?}");
            assert_eq!(n.watchdog_every(), None, "{vars:?}");
            n.ready("serving");
            n.stopping("stopping");
        }
        // A socket nobody listens on any more: logged, not fatal.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.sock");
        drop(listener(&path));
        let n = notifier(&[("NOTIFY_SOCKET", path.to_str().unwrap())], 42);
        n.ready("serving");
    }

    #[test]
    fn the_watchdog_interval_is_half_of_watchdog_usec_and_only_for_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let _sock = listener(&path);
        let socket = ("NOTIFY_SOCKET", path.to_str().unwrap());
        let every = |vars: &[(&str, &str)]| notifier(vars, 42).watchdog_every();
        assert_eq!(
            every(&[socket, ("WATCHDOG_USEC", "30000000")]),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            every(&[
                socket,
                ("WATCHDOG_USEC", "30000000"),
                ("WATCHDOG_PID", "42")
            ]),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            every(&[socket, ("WATCHDOG_USEC", "30000000"), ("WATCHDOG_PID", "7")]),
            None,
            "a watchdog meant for another process"
        );
        assert_eq!(every(&[socket, ("WATCHDOG_USEC", "0")]), None);
        assert_eq!(every(&[socket, ("WATCHDOG_USEC", "soon")]), None);
        assert_eq!(every(&[socket]), None);
    }

    #[tokio::test]
    async fn the_watchdog_pings_until_the_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = listener(&path);
        let n = notifier(
            &[
                ("NOTIFY_SOCKET", path.to_str().unwrap()),
                ("WATCHDOG_USEC", "40000"),
            ],
            42,
        );
        assert_eq!(n.watchdog_every(), Some(Duration::from_millis(20)));
        let stop = CancellationToken::new();
        let dog = tokio::spawn({
            let stop = stop.clone();
            async move { n.watchdog(stop).await }
        });
        let sock = tokio::task::spawn_blocking(move || {
            for _ in 0..3 {
                assert_eq!(recv(&sock), "WATCHDOG=1");
            }
            sock
        })
        .await
        .unwrap();
        stop.cancel();
        dog.await.unwrap();
        // Whatever was sent before the stop is read; after it, silence.
        sock.set_nonblocking(true).unwrap();
        while sock.recv(&mut [0u8; 64]).is_ok() {}
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            sock.recv(&mut [0u8; 64]).is_err(),
            "a ping after the watchdog stopped"
        );
    }
}
