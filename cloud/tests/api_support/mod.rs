//! Shared by the API tests: an API served on 127.0.0.1:0 over a real store, a small HTTP/1.1
//! client (one request per connection), and tokens of each role.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use fieldlink_cloud::api::{self, ApiSettings, ApiState};
use fieldlink_cloud::auth::Role;
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::store::{Store, StoreSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

pub struct Served {
    pub addr: SocketAddr,
    pub state: ApiState,
    pub stop: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Opens and migrates the store, then serves the API on a free port.
pub async fn serve(spec: &StoreSpec, settings: ApiSettings) -> Served {
    serve_with(
        spec,
        settings,
        fieldlink_cloud::http::ServerSettings::default(),
    )
    .await
}

/// [`serve`] with these server settings (timeouts, connection cap).
pub async fn serve_with(
    spec: &StoreSpec,
    settings: ApiSettings,
    server: fieldlink_cloud::http::ServerSettings,
) -> Served {
    let store = Store::open(spec).await.expect("open store");
    store.migrate().await.expect("migrate");
    let db = RecordsDb::open(spec).await.expect("open api db");
    let state = ApiState::new(Arc::new(store), Arc::new(db));
    let stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let router = api::router(state.clone(), &settings);
    let stopping = stop.clone();
    let counters = state.counters.clone();
    tokio::spawn(async move {
        fieldlink_cloud::http::serve(
            "127.0.0.1:0".parse().unwrap(),
            router,
            &server,
            counters,
            stopping,
            tx,
        )
        .await
    });
    let addr = rx.await.expect("bound");
    Served { addr, state, stop }
}

pub async fn token(s: &Served, role: Role) -> String {
    s.state
        .tokens
        .create(&format!("test {role}"), role)
        .await
        .expect("create token")
        .1
}

/// A response: status, headers (lower-case names) and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request over a fresh connection; `headers` are extra `Name: value` lines.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> Response {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

/// GET with a bearer token.
pub async fn get(addr: SocketAddr, path: &str, token: &str) -> Response {
    let auth = format!("Bearer {token}");
    request(addr, "GET", path, &[("Authorization", &auth)], None).await
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Serves a ready router on a free port until the returned token is cancelled (or dropped
/// with the runtime).
pub async fn serve_router(router: axum::Router) -> (SocketAddr, CancellationToken) {
    let stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(api::serve(
        "127.0.0.1:0".parse().unwrap(),
        router,
        stop.clone(),
        tx,
    ));
    (rx.await.expect("bound"), stop)
}

/// POST a JSON body with a bearer token.
pub async fn post(addr: SocketAddr, path: &str, token: &str, body: &serde_json::Value) -> Response {
    let auth = format!("Bearer {token}");
    request(addr, "POST", path, &[("Authorization", &auth)], Some(body)).await
}

/// Polls `f` until it returns `Some`, or panics after `secs` with `what`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A WebSocket handshake for `url` carrying `token` the way a browser can: as the
/// subprotocol `fieldlink.bearer.<token>` next to `fieldlink.v1`.
pub fn ws_request(
    url: &str,
    token: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().expect("a WebSocket URL");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("fieldlink.v1, fieldlink.bearer.{token}")
            .parse()
            .expect("a header value"),
    );
    req
}
