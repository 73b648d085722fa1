//! The real `fieldlink-cloud serve` under a stand-in for systemd: a Unix datagram socket as
//! `NOTIFY_SOCKET`. `READY=1` arrives only once HTTP answers, `WATCHDOG=1` pings follow while it
//! runs, and SIGTERM gives `STOPPING=1` before a clean exit. A failed start sends no `READY=1`.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Datagrams received so far, in order, each split into its `KEY=value` lines.
struct Notifications {
    sock: UnixDatagram,
    seen: Vec<Vec<String>>,
}

impl Notifications {
    fn bind(path: &std::path::Path) -> Notifications {
        let sock = UnixDatagram::bind(path).unwrap();
        sock.set_nonblocking(true).unwrap();
        Notifications {
            sock,
            seen: Vec::new(),
        }
    }

    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            self.seen.push(text.lines().map(str::to_owned).collect());
        }
    }

    /// Index of the first datagram holding `line`.
    fn position(&self, line: &str) -> Option<usize> {
        self.seen.iter().position(|d| d.iter().any(|l| l == line))
    }

    fn count(&self, line: &str) -> usize {
        self.seen
            .iter()
            .filter(|d| d.iter().any(|l| l == line))
            .count()
    }

    /// Waits for a datagram holding `line` while `child` runs; returns its index.
    fn wait_for(&mut self, line: &str, child: &mut std::process::Child) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.drain();
            if let Some(i) = self.position(line) {
                return i;
            }
            if let Some(status) = child.try_wait().unwrap() {
                self.drain();
                if let Some(i) = self.position(line) {
                    return i;
                }
                panic!(
                    "fieldlink-cloud exited ({status}) before {line}; seen {:?}",
                    self.seen
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {line} within 30 s; seen {:?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn cloud(dir: &std::path::Path, notify: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fieldlink-cloud"));
    cmd.arg("serve")
        .env_remove("FIELDLINK_CLOUD_CONFIG")
        .env(
            "FIELDLINK_CLOUD__DATABASE__SQLITE_PATH",
            dir.join("cloud.db"),
        )
        .env(
            "FIELDLINK_CLOUD__MQTT__EMBEDDED_LISTEN",
            format!("127.0.0.1:{}", fieldlink_testkit::free_port()),
        )
        // Port 0: the READY status must name the address actually bound.
        .env("FIELDLINK_CLOUD__HTTP__LISTEN", "127.0.0.1:0")
        .env("NOTIFY_SOCKET", notify)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_once_serving_watchdog_pings_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let mut notes = Notifications::bind(&path);
    let child = cloud(dir.path(), &path)
        .env("WATCHDOG_USEC", "200000")
        .spawn()
        .unwrap();
    let mut cloud = CloudProcess { child, http: 0 };

    let ready = tokio::task::block_in_place(|| notes.wait_for("READY=1", &mut cloud.child));
    let status = notes.seen[ready]
        .iter()
        .find_map(|l| l.strip_prefix("STATUS=serving HTTP on 127.0.0.1:"))
        .unwrap_or_else(|| panic!("READY=1 without the HTTP address: {:?}", notes.seen));
    cloud.http = status.parse().expect("a port in the READY status");
    // Ready means serving: the very next request is answered, with no retry.
    let (code, body) = http_get(cloud.http, "/health/live").await.unwrap();
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    assert_eq!(notes.position("STOPPING=1"), None);

    let first_ping = tokio::task::block_in_place(|| notes.wait_for("WATCHDOG=1", &mut cloud.child));
    assert!(
        first_ping > ready,
        "a ping before READY=1: {:?}",
        notes.seen
    );
    // 100 ms apart (half of WATCHDOG_USEC): a few more within a second.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    notes.drain();
    assert!(
        notes.count("WATCHDOG=1") >= 3,
        "watchdog pings: {:?}",
        notes.seen
    );

    let exit = cloud.sigterm_and_wait();
    assert!(exit.success(), "{exit:?}");
    notes.drain();
    let stopping = notes
        .position("STOPPING=1")
        .unwrap_or_else(|| panic!("no STOPPING=1: {:?}", notes.seen));
    assert!(stopping > ready);
    assert_eq!(
        notes.count("READY=1"),
        1,
        "READY=1 sent once: {:?}",
        notes.seen
    );
}

#[test]
fn no_watchdog_pings_unless_asked_and_none_for_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let mut notes = Notifications::bind(&path);
    // WATCHDOG_PID names another process: the pings are not this one's to send.
    let child = cloud(dir.path(), &path)
        .env("WATCHDOG_USEC", "100000")
        .env("WATCHDOG_PID", "1")
        .spawn()
        .unwrap();
    let mut cloud = CloudProcess { child, http: 0 };
    notes.wait_for("READY=1", &mut cloud.child);
    std::thread::sleep(Duration::from_millis(500));
    notes.drain();
    assert_eq!(notes.count("WATCHDOG=1"), 0, "{:?}", notes.seen);
    assert!(cloud.sigterm_and_wait().success());
}

#[test]
fn a_failed_start_is_never_reported_ready() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let mut notes = Notifications::bind(&path);
    // Something already listens on the HTTP port: binding fails after the migrations.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = cloud(dir.path(), &path)
        .env(
            "FIELDLINK_CLOUD__HTTP__LISTEN",
            taken.local_addr().unwrap().to_string(),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    notes.drain();
    assert_eq!(notes.position("READY=1"), None, "{:?}", notes.seen);
    assert!(
        notes.position("STOPPING=1").is_some(),
        "a failed start still says it stops: {:?}",
        notes.seen
    );
}
