//! Shared by the alert tests: a webhook receiver that is a real HTTP server (failing its first
//! requests on purpose), and an SMTP sink that is `aiosmtpd` (PyPI) writing a maildir.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: serde_json::Value,
    pub authorization: Option<String>,
    pub notification_header: Option<String>,
    /// The status it was answered with.
    pub status: u16,
}

#[derive(Clone, Default)]
struct HookState {
    fail_first: usize,
    delay: Duration,
    got: Arc<Mutex<Vec<Received>>>,
}

/// An HTTP server on 127.0.0.1:0 taking `POST /alerts`: answers 500 to its first `fail_first`
/// requests, 200 after, each after `delay`.
pub struct WebhookSink {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn take(State(s): State<HookState>, headers: HeaderMap, body: String) -> StatusCode {
    tokio::time::sleep(s.delay).await;
    let mut got = s.got.lock().unwrap();
    let status = if got.len() < s.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    got.push(Received {
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        authorization: h("authorization"),
        notification_header: h("fieldlink-notification-id"),
        status: status.as_u16(),
    });
    status
}

impl WebhookSink {
    pub async fn start(fail_first: usize, delay: Duration) -> WebhookSink {
        let got = Arc::new(Mutex::new(Vec::new()));
        let state = HookState {
            fail_first,
            delay,
            got: got.clone(),
        };
        let router = Router::new().route("/alerts", post(take)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
        });
        WebhookSink { addr, got, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}/alerts", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// `python3 -m aiosmtpd` on a free port, storing every message in a maildir; stopped on drop.
pub struct SmtpSink {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        SmtpSink::spawn(None)
    }

    /// Offers STARTTLS with this certificate and key, and refuses mail before it.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> SmtpSink {
        SmtpSink::spawn(Some((cert, key)))
    }

    fn spawn(tls: Option<(&std::path::Path, &std::path::Path)>) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let port = fieldlink_testkit::free_port();
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"));
        if let Some((cert, key)) = tls {
            cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
        }
        let child = cmd
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("box"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install -r scripts/requirements-test.txt)");
        let mut sink = SmtpSink { port, child, dir };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = sink.child.try_wait() {
                panic!("aiosmtpd exited with {status}: is it installed (scripts/requirements-test.txt)?");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "aiosmtpd did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sink
    }

    /// Every message received so far, as raw text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let d: PathBuf = self.dir.path().join("box").join(sub);
            if let Ok(entries) = std::fs::read_dir(d) {
                for e in entries.flatten() {
                    if let Ok(t) = std::fs::read_to_string(e.path()) {
                        out.push(t);
                    }
                }
            }
        }
        out
    }
}
