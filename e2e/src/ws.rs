//! A WebSocket client of `/api/v1/ws` that records every message with the time it arrived,
//! so a test can read the order of what was pushed and the benchmark can read when.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

/// One pushed message.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub at: Instant,
    pub message: Value,
}

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<Pushed>>,
    arrived: Notify,
}

/// A connected, subscribed WebSocket; its reader task stops when the feed is dropped.
pub struct Feed {
    shared: Arc<Shared>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The WebSocket request for the API at `addr`, authenticated with `token` in its header.
pub fn request(
    addr: SocketAddr,
    token: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/api/v1/ws")
        .into_client_request()
        .expect("a WebSocket URL");
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("a header value"),
    );
    req
}

/// A WebSocket open on the API at `addr` with `token`, each of `subscriptions`
/// (`{"topic": …, filters}`) sent and answered `subscribed`.
pub async fn subscribed(
    addr: SocketAddr,
    token: &str,
    subscriptions: &[Value],
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(request(addr, token))
        .await
        .expect("the WebSocket connects");
    for sub in subscriptions {
        let mut msg = sub.clone();
        msg["type"] = json!("subscribe");
        ws.send(Message::Text(msg.to_string().into()))
            .await
            .expect("send a subscription");
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("an answer to the subscription")
                .expect("the socket is open")
                .expect("a frame");
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON from the server");
                assert_eq!(v["type"], "subscribed", "subscribing {sub}: {v}");
                break;
            }
        }
    }
    ws
}

impl Feed {
    /// Connects with `token` and sends each subscription (`{"topic": …, filters}`), waiting
    /// for its `subscribed`.
    pub async fn connect(addr: SocketAddr, token: &str, subscriptions: &[Value]) -> Feed {
        let mut ws = subscribed(addr, token, subscriptions).await;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(m)) = ws.next().await {
                let Message::Text(t) = m else { continue };
                let at = Instant::now();
                let Ok(message) = serde_json::from_str::<Value>(t.as_str()) else {
                    continue;
                };
                s.got.lock().unwrap().push(Pushed { at, message });
                s.arrived.notify_waiters();
            }
        });
        Feed { shared, reader }
    }

    /// Everything pushed so far, in order.
    pub fn messages(&self) -> Vec<Pushed> {
        self.shared.got.lock().unwrap().clone()
    }

    /// Waits until a pushed message satisfies `f`; returns the first that does. Wakes on each
    /// message, so the time it returns is the time the message arrived, give or take a wake-up.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Pushed {
        let deadline = tokio::time::Instant::now() + limit;
        let mut seen = 0;
        loop {
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let got = self.shared.got.lock().unwrap();
                if let Some(p) = got[seen..].iter().find(|p| f(&p.message)) {
                    return p.clone();
                }
                seen = got.len();
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "timed out after {limit:?} waiting for {what} on the WebSocket; got {:?}",
                    self.messages()
                        .iter()
                        .map(|p| &p.message)
                        .collect::<Vec<_>>()
                );
            }
        }
    }

    /// The statuses pushed for one command, in order.
    pub fn command_statuses(&self, command_id: &str) -> Vec<String> {
        self.messages()
            .iter()
            .filter(|p| {
                p.message["type"] == "command" && p.message["command"]["command_id"] == command_id
            })
            .filter_map(|p| p.message["command"]["status"].as_str().map(String::from))
            .collect()
    }

    /// The statuses pushed for the alerts of one rule, in order.
    pub fn alert_statuses(&self, rule_id: &str) -> Vec<String> {
        self.messages()
            .iter()
            .filter(|p| p.message["type"] == "alert" && p.message["alert"]["rule_id"] == rule_id)
            .filter_map(|p| p.message["alert"]["status"].as_str().map(String::from))
            .collect()
    }
}

/// A pushed command message for `command_id` with `status`.
pub fn is_command(m: &Value, command_id: &str, status: &str) -> bool {
    m["type"] == "command"
        && m["command"]["command_id"] == command_id
        && m["command"]["status"] == status
}
