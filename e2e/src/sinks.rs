//! Where alert notifications go: a webhook receiver that is a real HTTP server, and an SMTP
//! sink that is `aiosmtpd` (PyPI) storing every message in a maildir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// An HTTP server on 127.0.0.1:0 answering 200 to every `POST /alerts` and keeping the JSON
/// bodies; stops on drop.
pub struct WebhookSink {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Value>>>,
    stop: CancellationToken,
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn take(State(got): State<Arc<Mutex<Vec<Value>>>>, body: String) -> StatusCode {
    match serde_json::from_str(&body) {
        Ok(v) => {
            got.lock().unwrap().push(v);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

impl WebhookSink {
    pub async fn start() -> WebhookSink {
        let got = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new()
            .route("/alerts", post(take))
            .with_state(got.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook receiver");
        let addr = listener.local_addr().expect("its address");
        let stop = CancellationToken::new();
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

    /// Every notification received, in order.
    pub fn received(&self) -> Vec<Value> {
        self.got.lock().unwrap().clone()
    }

    /// The `event` of each notification for `rule_id` (`fired`, `resolved`, …), in order.
    pub fn events_of(&self, rule_id: &str) -> Vec<String> {
        self.received()
            .iter()
            .filter(|n| n["rule_id"] == rule_id)
            .filter_map(|n| n["event"].as_str().map(String::from))
            .collect()
    }
}

/// `python3 -m aiosmtpd` on a free port with a maildir; stopped on drop.
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
        let dir = tempfile::tempdir().expect("a maildir directory");
        let port = fieldlink_testkit::free_port();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("box"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install -r scripts/requirements-test.txt)");
        let mut sink = SmtpSink { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = sink.child.try_wait() {
                panic!("aiosmtpd exited with {status}; is it installed (scripts/requirements-test.txt)?");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sink
    }

    /// Every message received so far, raw.
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
