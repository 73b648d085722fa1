//! Goals C2 and C4: what the WebSocket costs and how fast it is, measured on the real binary
//! (`fieldlink-cloud serve` on its embedded SQLite store) behind a real Mosquitto from testkit,
//! with a paced publisher offering 10,000 points/s: 10 gateways × 10 devices × 100 metrics,
//! one 100-point batch (binary encoding, QoS 1) every 10 ms, each series once a second.
//!
//! C2: each point carries its publish instant (microseconds since the Unix epoch) as its value.
//! One WebSocket client subscribed to all telemetry takes its latency at every point pushed;
//! a plain MQTT subscriber on the same broker (QoS 1, like the cloud) takes the latency of the
//! same batches as delivered by the broker: the baseline, measured in the same run.
//!
//! C4: the same load three times, each on a fresh cloud: with no WebSocket client (the
//! baseline), with 1,000 clients each watching one series (a dashboard tile: 1 point/s each),
//! and with 1,000 clients each watching one device (100 points/s each, 100,000 frames/s in
//! all). Reported: points committed per second, the mean time from a message's arrival to the
//! commit of its rows (the cloud's `ingest_lag` histogram), the cloud's peak RSS, and the frames
//! the clients got; each as a ratio to the baseline.
//!
//! Run: `cargo bench -p fieldlink-cloud --bench ws`. `FIELDLINK_BENCH_SECS` (default 20) sets
//! each measuring window, after 5 s of warm-up. Services are started by testkit on free ports;
//! nothing on the machine is used.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fieldlink_protocol::{
    decode_telemetry, encode_telemetry, Encoding, Ident, Point, TelemetryBatch,
};
use fieldlink_testkit::Mosquitto;
use futures::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use tokio_tungstenite::tungstenite::Message;

const GATEWAYS: usize = 10;
const DEVICES: usize = 10;
const METRICS: usize = 100;
/// One batch per tick: GATEWAYS × DEVICES batches a second, each series once a second.
const TICK: Duration = Duration::from_millis(10);
const POINTS_PER_SECOND: usize = METRICS * 100;
const WARM_UP: Duration = Duration::from_secs(5);
const CLIENTS: usize = 1_000;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn window() -> Duration {
    Duration::from_secs(
        std::env::var("FIELDLINK_BENCH_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20),
    )
}

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// A Mosquitto and a `fieldlink-cloud serve` process subscribed to it, on a fresh SQLite file.
struct Stack {
    _dir: tempfile::TempDir,
    broker: Mosquitto,
    cloud: std::process::Child,
    http: u16,
    token: String,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.cloud.kill();
        let _ = self.cloud.wait();
    }
}

impl Stack {
    async fn start(label: &str) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let broker = Mosquitto::start().expect("start mosquitto");
        let http = fieldlink_testkit::free_port();
        let settings = [
            (
                "DATABASE__SQLITE_PATH",
                dir.path().join("cloud.db").display().to_string(),
            ),
            ("MQTT__URL", broker.url()),
            ("MQTT__CLIENT_ID", format!("bench-cloud-{label}")),
            ("HTTP__LISTEN", format!("127.0.0.1:{http}")),
        ];
        let command = |args: &[&str]| {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_fieldlink-cloud"));
            c.args(args)
                .env_remove("FIELDLINK_CLOUD_CONFIG")
                .env("RUST_LOG", "warn");
            for (k, v) in &settings {
                c.env(format!("FIELDLINK_CLOUD__{k}"), v);
            }
            c
        };
        let out = command(&["token", "create", "--name", "bench", "--role", "viewer"])
            .output()
            .expect("fieldlink-cloud token create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        let cloud = command(&["serve"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("start fieldlink-cloud");
        let stack = Stack {
            _dir: dir,
            broker,
            cloud,
            http,
            token,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(http_get(http, "/health/ready").await, Ok((200, _))) {
            assert!(
                Instant::now() < deadline,
                "the cloud was not ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stack
    }

    async fn metric(&self, name: &str) -> f64 {
        let (_, text) = http_get(self.http, "/metrics").await.expect("GET /metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// Resident memory of the cloud process, KiB (`VmRSS` or `VmHWM`).
    fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.cloud.id()))
            .expect("read the cloud's /proc status");
        status
            .lines()
            .find_map(|l| {
                l.strip_prefix(field)?
                    .trim_start_matches(':')
                    .trim()
                    .strip_suffix("kB")
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    async fn websocket(&self, subscription: serde_json::Value) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://127.0.0.1:{}/api/v1/ws", self.http)
            .into_client_request()
            .expect("a WebSocket URL");
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", self.token)
                .parse()
                .expect("a header value"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("WebSocket connects");
        ws.send(Message::Text(subscription.to_string().into()))
            .await
            .unwrap();
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains("\"subscribed\"") => return ws,
                Some(Ok(_)) => {}
                other => panic!("no subscription answer: {other:?}"),
            }
        }
    }
}

/// A bare HTTP/1.1 GET on 127.0.0.1: status and body.
async fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Publishes 10,000 points/s for `run` (one MQTT client per gateway); returns the points
/// published.
async fn publish(broker: &Mosquitto, run: Duration) -> u64 {
    let mut clients = Vec::new();
    for g in 0..GATEWAYS {
        let mut o = MqttOptions::new(format!("bench-gw-{g}"), broker.host(), broker.port());
        o.set_inflight(100).set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut el) = AsyncClient::new(o, 1_000);
        tokio::spawn(async move { while el.poll().await.is_ok() {} });
        clients.push(client);
    }
    let names: Vec<Ident> = (0..METRICS).map(|m| id(&format!("reg{m:03}"))).collect();
    let mut tick = tokio::time::interval(TICK);
    let end = Instant::now() + run;
    let mut published = 0u64;
    let mut k = 0usize;
    while Instant::now() < end {
        tick.tick().await;
        let (g, d) = (k % GATEWAYS, (k / GATEWAYS) % DEVICES);
        let t_us = now_us();
        let mut b = TelemetryBatch::new(id(&format!("gw-{g}")), 1, k as u64);
        let dev = id(&format!("dev-{d}"));
        for m in &names {
            b.points.push(Point::new(
                dev.clone(),
                m.clone(),
                t_us / 1_000,
                t_us as f64,
            ));
        }
        let bytes = encode_telemetry(&b, Encoding::Binary).unwrap();
        clients[g]
            .publish(
                format!("fieldlink/v1/gw-{g}/telemetry"),
                QoS::AtLeastOnce,
                false,
                bytes,
            )
            .await
            .expect("publish");
        published += METRICS as u64;
        k += 1;
    }
    for c in clients {
        let _ = c.disconnect().await;
    }
    published
}

/// Latencies in microseconds of what was published inside `[from_us, to_us)`.
#[derive(Default)]
struct Latencies {
    from_us: i64,
    to_us: i64,
    samples: Vec<u32>,
}

impl Latencies {
    fn record(&mut self, published_us: i64, now: i64) {
        if (self.from_us..self.to_us).contains(&published_us) {
            self.samples.push((now - published_us).max(0) as u32);
        }
    }

    fn summary(&mut self) -> String {
        self.samples.sort_unstable();
        let q = |p: f64| {
            let n = self.samples.len();
            if n == 0 {
                return f64::NAN;
            }
            self.samples[((n as f64 * p) as usize).min(n - 1)] as f64 / 1_000.0
        };
        format!(
            "p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  ({} samples)",
            q(0.50),
            q(0.90),
            q(0.99),
            q(1.0),
            self.samples.len()
        )
    }

    fn p99_ms(&self) -> f64 {
        let n = self.samples.len();
        self.samples[((n as f64 * 0.99) as usize).min(n - 1)] as f64 / 1_000.0
    }
}

async fn c2() {
    println!("\n== C2: broker → WebSocket latency at {POINTS_PER_SECOND} points/s (embedded SQLite store) ==");
    let stack = Stack::start("c2").await;
    let ws_lat = Arc::new(Mutex::new(Latencies::default()));
    let mqtt_lat = Arc::new(Mutex::new(Latencies::default()));

    let mut ws = stack
        .websocket(serde_json::json!({"type": "subscribe", "topic": "telemetry"}))
        .await;
    let lat = ws_lat.clone();
    let lagged = Arc::new(AtomicU64::new(0));
    let lagged_in = lagged.clone();
    let ws_task = tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            let now = now_us();
            let Message::Text(t) = m else { continue };
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            match v["type"].as_str() {
                Some("telemetry") => {
                    if let Some(p) = v["value"].as_f64() {
                        lat.lock().unwrap().record(p as i64, now);
                    }
                }
                Some("lagged") => {
                    lagged_in.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });

    let mut o = MqttOptions::new("bench-baseline", stack.broker.host(), stack.broker.port());
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (sub, mut el) = AsyncClient::new(o, 100);
    sub.subscribe("fieldlink/v1/+/telemetry", QoS::AtLeastOnce)
        .await
        .unwrap();
    let lat = mqtt_lat.clone();
    let subscribed = Arc::new(AtomicBool::new(false));
    let subscribed_in = subscribed.clone();
    let mqtt_task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let now = now_us();
                    if let Ok(b) = decode_telemetry(&p.payload) {
                        let mut l = lat.lock().unwrap();
                        for pt in &b.points {
                            if let fieldlink_protocol::Value::Number(v) = pt.value {
                                l.record(v as i64, now);
                            }
                        }
                    }
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    subscribed_in.store(true, Ordering::Relaxed)
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    while !subscribed.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Only what is published after the warm-up counts.
    let start = now_us() + WARM_UP.as_micros() as i64;
    for l in [&ws_lat, &mqtt_lat] {
        let mut l = l.lock().unwrap();
        l.from_us = start;
        l.to_us = start + window().as_micros() as i64;
    }
    let published = publish(&stack.broker, WARM_UP + window()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ws_task.abort();
    mqtt_task.abort();
    let expected = POINTS_PER_SECOND as u64 * window().as_secs();
    let (mut w, mut m) = (
        std::mem::take(&mut *ws_lat.lock().unwrap()),
        std::mem::take(&mut *mqtt_lat.lock().unwrap()),
    );
    println!(
        "published {published} points over {:.0} s; measured the {expected} of the last {} s",
        (WARM_UP + window()).as_secs_f64(),
        window().as_secs()
    );
    println!("MQTT subscriber (baseline): {}", m.summary());
    println!("WebSocket client:           {}", w.summary());
    println!(
        "WebSocket / baseline: p99 {:.1} ×; lagged notices {}; goal C2 p99 ≤ 50 ms: {}",
        w.p99_ms() / m.p99_ms(),
        lagged.load(Ordering::Relaxed),
        if w.p99_ms() <= 50.0 { "met" } else { "NOT met" }
    );
}

/// What one C4 run measured.
struct Load {
    offered: f64,
    rate: f64,
    lag_ms: f64,
    peak_rss_kib: u64,
    frames: u64,
    lagged: u64,
    closed: u64,
}

/// 10,000 points/s into a fresh cloud with `clients` WebSocket clients subscribed as `watch`
/// says ("series" or "device").
async fn c4_run(clients: usize, watch: &str) -> Load {
    let stack = Stack::start(&format!("c4-{watch}")).await;
    let frames = Arc::new(AtomicU64::new(0));
    let lagged = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (g, d, m) = (
            i % GATEWAYS,
            (i / GATEWAYS) % DEVICES,
            i / (GATEWAYS * DEVICES),
        );
        let mut sub = serde_json::json!({"type": "subscribe", "topic": "telemetry",
            "gateway": format!("gw-{g}"), "device": format!("dev-{d}")});
        if watch == "series" {
            sub["metric"] = format!("reg{m:03}").into();
        }
        let mut ws = stack.websocket(sub).await;
        let (frames, lagged, closed) = (frames.clone(), lagged.clone(), closed.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(m)) = ws.next().await {
                match m {
                    Message::Text(t) => {
                        if t.contains("\"lagged\"") {
                            lagged.fetch_add(1, Ordering::Relaxed);
                        } else {
                            frames.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            closed.fetch_add(1, Ordering::Relaxed);
        }));
    }
    let rss_before = stack.memory_kib("VmRSS");
    let publisher = publish(&stack.broker, WARM_UP + window());
    let measure = async {
        tokio::time::sleep(WARM_UP).await;
        let stored0 = stack.metric("fieldlink_cloud_points_stored_total").await;
        let lag_sum0 = stack.metric("fieldlink_cloud_ingest_lag_seconds_sum").await;
        let lag_n0 = stack
            .metric("fieldlink_cloud_ingest_lag_seconds_count")
            .await;
        let frames0 = frames.load(Ordering::Relaxed);
        let t = Instant::now();
        let mut peak = 0;
        while t.elapsed() < window() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            peak = peak.max(stack.memory_kib("VmRSS"));
        }
        let elapsed = t.elapsed().as_secs_f64();
        let stored = stack.metric("fieldlink_cloud_points_stored_total").await - stored0;
        let lag_sum = stack.metric("fieldlink_cloud_ingest_lag_seconds_sum").await - lag_sum0;
        let lag_n = stack
            .metric("fieldlink_cloud_ingest_lag_seconds_count")
            .await
            - lag_n0;
        Load {
            rate: stored / elapsed,
            lag_ms: lag_sum / lag_n.max(1.0) * 1_000.0,
            peak_rss_kib: peak.max(stack.memory_kib("VmHWM")),
            frames: frames.load(Ordering::Relaxed) - frames0,
            lagged: 0,
            closed: 0,
            offered: 0.0,
        }
    };
    let (published, mut load) = tokio::join!(publisher, measure);
    load.offered = published as f64 / (WARM_UP + window()).as_secs_f64();
    load.lagged = lagged.load(Ordering::Relaxed);
    load.closed = closed.load(Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    println!(
        "{clients:>5} clients ({watch:<6}): {:>7.0} points/s offered, {:>7.0} committed, ingest lag mean {:>6.2} ms, \
         peak RSS {:>6.1} MiB (idle with clients {:.1} MiB), {:>9.0} frames/s to clients, {} lagged notices, {} closed",
        load.offered,
        load.rate,
        load.lag_ms,
        load.peak_rss_kib as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        load.frames as f64 / window().as_secs_f64(),
        load.lagged,
        load.closed,
    );
    load
}

async fn c4() {
    println!("\n== C4: {CLIENTS} WebSocket clients at {POINTS_PER_SECOND} points/s (embedded SQLite store) ==");
    let base = c4_run(0, "none").await;
    for watch in ["series", "device"] {
        let l = c4_run(CLIENTS, watch).await;
        println!(
            "  vs 0 clients: ingest rate {:.3} ×, ingest lag {:.2} ×, peak RSS {:.2} × ({:.1} MiB; goal ≤ 150 MiB: {})",
            l.rate / base.rate,
            l.lag_ms / base.lag_ms,
            l.peak_rss_kib as f64 / base.peak_rss_kib as f64,
            l.peak_rss_kib as f64 / 1024.0,
            if l.peak_rss_kib <= 150 * 1024 { "met" } else { "NOT met" }
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (a filter) selects goals by name.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |g: &str| filter.is_empty() || filter.iter().any(|f| g.contains(f.as_str()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if wants("c2") {
            c2().await;
        }
        if wants("c4") {
            c4().await;
        }
    });
}
