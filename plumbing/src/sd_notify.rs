//! systemd's notification protocol (`sd_notify`), spoken directly: one datagram of `KEY=value`
//! lines per message to the Unix socket `$NOTIFY_SOCKET` names, a path or, after a leading
//! `@`, a Linux abstract name. Without that variable (not run by systemd, or the unit is not
//! `Type=notify`) every call is a no-op; a failure to send is logged, never fatal, because the
//! programs run the same without a service manager.
//!
//! The watchdog interval is half of `$WATCHDOG_USEC`, and only when `$WATCHDOG_PID` is unset or
//! names this process (a child must not ping for its parent) and there is a socket to ping.

use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Where notifications go, if anywhere, and how often the watchdog wants a ping.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, SocketName)>,
    watchdog_every: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SocketName {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From this process's environment: `NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`.
    pub fn from_env() -> Notifier {
        Notifier::from_vars(|name| std::env::var_os(name), std::process::id())
    }

    /// From variables looked up by `var`, for the process `pid`.
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>, pid: u32) -> Notifier {
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
        let text = |name: &str| var(name).and_then(|v| v.into_string().ok());
        let for_us = text("WATCHDOG_PID").is_none_or(|p| p.trim().parse::<u32>() == Ok(pid));
        let usec = text("WATCHDOG_USEC")
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us);
        Notifier::open(name, usec.map(|u| Duration::from_micros(u / 2)))
    }

    /// Notifications to the socket at `path` (`None`: nowhere), the watchdog pinged every
    /// `watchdog_every` (`None`: not at all).
    pub fn to_path(path: Option<PathBuf>, watchdog_every: Option<Duration>) -> Notifier {
        Notifier::open(path.map(SocketName::Path), watchdog_every)
    }

    fn open(name: Option<SocketName>, watchdog_every: Option<Duration>) -> Notifier {
        let socket = name.and_then(|name| match UnixDatagram::unbound() {
            Ok(sock) => Some((sock, name)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot create a socket for systemd notifications");
                None
            }
        });
        let watchdog_every = watchdog_every.filter(|_| socket.is_some());
        Notifier {
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

    /// Sends one datagram of `KEY=value` lines.
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

    /// `WATCHDOG=1`.
    pub fn ping(&self) {
        self.send("WATCHDOG=1");
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

    fn notifier(vars: &[(&str, &str)], pid: u32) -> Notifier {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Notifier::from_vars(|name| vars.get(name).cloned(), pid)
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
    fn ready_stopping_and_pings_reach_a_socket_named_by_path() {
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
        n.ping();
        assert_eq!(recv(&sock), "WATCHDOG=1");
        n.stopping("draining ingest");
        assert_eq!(recv(&sock), "STOPPING=1\nSTATUS=draining ingest");
        let direct = Notifier::to_path(Some(path.clone()), Some(Duration::from_millis(5)));
        assert_eq!(direct.watchdog_every(), Some(Duration::from_millis(5)));
        direct.ping();
        assert_eq!(recv(&sock), "WATCHDOG=1");
    }

    #[test]
    fn an_abstract_socket_name_is_reached() {
        let name = format!("fieldlink-plumbing-test-{}", std::process::id());
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
        assert_eq!(
            Notifier::to_path(None, Some(Duration::from_secs(1))).watchdog_every(),
            None
        );
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
                ("WATCHDOG_USEC", " 30000000\n"),
                ("WATCHDOG_PID", "42 ")
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
}
