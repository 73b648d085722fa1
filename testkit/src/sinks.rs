//! Where alert notifications go in tests: a webhook receiver that is a real HTTP server (axum,
//! on a thread and runtime of its own, like the link emulator), and an SMTP sink that is
//! `aiosmtpd` (PyPI, `scripts/requirements-test.txt`) storing every message in a maildir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio::sync::oneshot;

use crate::port::{free_port, wait_for_listener};

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The JSON body; `Null` when it was not JSON (answered 400).
    pub body: serde_json::Value,
    pub authorization: Option<String>,
    pub notification_header: Option<String>,
    /// The status it was answered with.
    pub status: u16,
}

#[derive(Clone)]
struct HookState {
    fail_first: usize,
    delay: Duration,
    got: Arc<Mutex<Vec<Received>>>,
}

/// An HTTP server on 127.0.0.1 taking `POST /alerts` and keeping every request; stops on drop.
pub struct WebhookSink {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn take(State(s): State<HookState>, headers: HeaderMap, body: String) -> StatusCode {
    tokio::time::sleep(s.delay).await;
    let parsed = serde_json::from_str(&body);
    let mut got = s.got.lock().unwrap();
    let status = if parsed.is_err() {
        StatusCode::BAD_REQUEST
    } else if got.len() < s.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    got.push(Received {
        body: parsed.unwrap_or(serde_json::Value::Null),
        authorization: header("authorization"),
        notification_header: header("fieldlink-notification-id"),
        status: status.as_u16(),
    });
    status
}

impl WebhookSink {
    /// Answers 200 to every JSON body.
    pub fn start() -> WebhookSink {
        WebhookSink::failing(0, Duration::ZERO)
    }

    /// Answers 500 to its first `fail_first` requests and 200 after, each after `delay`.
    pub fn failing(fail_first: usize, delay: Duration) -> WebhookSink {
        let got = Arc::new(Mutex::new(Vec::new()));
        let state = HookState {
            fail_first,
            delay,
            got: got.clone(),
        };
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the webhook receiver");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("its address");
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("webhook-sink".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the webhook receiver's runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("the listener on the runtime");
                    let router = Router::new().route("/alerts", post(take)).with_state(state);
                    let _ = axum::serve(listener, router)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .expect("start the webhook receiver's thread");
        WebhookSink {
            addr,
            got,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/alerts", self.addr)
    }

    /// Every request received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The `event` of each notification for `rule_id` (`fired`, `resolved`, …), in order.
    pub fn events_of(&self, rule_id: &str) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| r.body["rule_id"] == rule_id)
            .filter_map(|r| r.body["event"].as_str().map(String::from))
            .collect()
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
    pub fn start_tls(cert: &Path, key: &Path) -> SmtpSink {
        SmtpSink::spawn(Some((cert, key)))
    }

    fn spawn(tls: Option<(&Path, &Path)>) -> SmtpSink {
        let dir = tempfile::tempdir().expect("a maildir directory");
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"));
        if let Some((cert, key)) = tls {
            cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
        }
        let child = cmd
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("box"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install -r scripts/requirements-test.txt)");
        let mut sink = SmtpSink { port, child, dir };
        if !wait_for_listener(port, Duration::from_secs(20)) {
            match sink.child.try_wait() {
                Ok(Some(status)) => panic!(
                    "aiosmtpd exited with {status}: is it installed (scripts/requirements-test.txt)?"
                ),
                _ => panic!("aiosmtpd did not listen on {port} within 20 s"),
            }
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
