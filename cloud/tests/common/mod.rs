//! Shared by the integration tests: a QoS 1 publisher that counts PUBACKs, telemetry builders,
//! and polling with a deadline (a test that times out fails with what it saw).

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use fieldlink_protocol::{encode_telemetry, Encoding, Ident, Point, TelemetryBatch};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Outgoing, QoS};

pub fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A batch of `devices × metrics` points at one timestamp per row, `rows` rows, 1 s apart,
/// starting at `t0`.
pub fn batch(
    gw: &str,
    seq: u64,
    t0: i64,
    devices: usize,
    metrics: usize,
    rows: usize,
) -> TelemetryBatch {
    let mut b = TelemetryBatch::new(id(gw), 1, seq);
    for r in 0..rows {
        for d in 0..devices {
            for m in 0..metrics {
                let v = ((seq as usize * 7 + r * 3 + d * 5 + m) % 1000) as f64 / 10.0;
                b.points.push(Point::new(
                    id(&format!("dev{d}")),
                    id(&format!("m{m}")),
                    t0 + r as i64 * 1_000,
                    v,
                ));
            }
        }
    }
    b
}

pub fn encode(b: &TelemetryBatch, enc: Encoding) -> Vec<u8> {
    encode_telemetry(b, enc).unwrap()
}

pub fn topic(gw: &str, kind: &str) -> String {
    format!("fieldlink/v1/{gw}/{kind}")
}

/// Publishes every message with QoS 1 (retained on status topics, as gateways do) and returns
/// once the broker acknowledged all of them.
pub async fn publish_all(host: &str, port: u16, client_id: &str, msgs: Vec<(String, Vec<u8>)>) {
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    publish_counting(host, port, client_id, msgs, Duration::ZERO, acked).await
}

/// Like [`publish_all`], pausing `pace` between publishes and counting PUBACKs in `acked` as
/// they arrive, so a test can act in the middle of the stream.
pub async fn publish_counting(
    host: &str,
    port: u16,
    client_id: &str,
    msgs: Vec<(String, Vec<u8>)>,
    pace: Duration,
    acked_out: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_max_packet_size(4 << 20, 4 << 20);
    o.set_inflight(100);
    let (client, mut el) = AsyncClient::new(o, 64);
    let n = msgs.len();
    tokio::spawn(async move {
        for (t, p) in msgs {
            let retain = t.ends_with("/status");
            client
                .publish(t, QoS::AtLeastOnce, retain, p)
                .await
                .unwrap();
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
        }
    });
    let mut acked = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while acked < n {
        let Ok(ev) = tokio::time::timeout_at(deadline, el.poll()).await else {
            panic!("only {acked} of {n} publishes acknowledged in 120 s");
        };
        match ev {
            Ok(Event::Incoming(Incoming::PubAck(_))) => {
                acked += 1;
                acked_out.store(acked, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => panic!("publisher disconnected"),
            Ok(_) => {}
            Err(e) => panic!("publisher: {e}"),
        }
    }
}

/// Polls `probe` until it returns `Some`, failing after `secs` with the last value it saw.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if tokio::time::Instant::now() > deadline => {
                panic!("{what}: not reached within {secs} s; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A `fieldlink-cloud` process configured through the environment; killed on drop.
pub struct CloudProcess {
    pub child: std::process::Child,
    pub http: u16,
}

impl CloudProcess {
    /// Starts `fieldlink-cloud serve` with `FIELDLINK_CLOUD__…` settings (keys without the
    /// prefix, e.g. `DATABASE__URL`) and an HTTP port of its own.
    pub fn serve(settings: &[(&str, String)]) -> CloudProcess {
        Self::serve_logging(settings, None)
    }

    /// [`CloudProcess::serve`], with the service's log (stdout and stderr, level info) in `log`.
    pub fn serve_logging(
        settings: &[(&str, String)],
        log: Option<&std::path::Path>,
    ) -> CloudProcess {
        let http = fieldlink_testkit::free_port();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fieldlink-cloud"));
        cmd.arg("serve")
            .env("FIELDLINK_CLOUD__HTTP__LISTEN", format!("127.0.0.1:{http}"))
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null());
        for (k, v) in settings {
            cmd.env(format!("FIELDLINK_CLOUD__{k}"), v);
        }
        if let Some(path) = log {
            let out = std::fs::File::create(path).expect("create the log file");
            cmd.env("NO_COLOR", "1")
                .env("RUST_LOG", "info")
                .stdout(out.try_clone().expect("log file"))
                .stderr(out);
        }
        let child = cmd.spawn().expect("start fieldlink-cloud");
        CloudProcess { child, http }
    }

    /// Waits until `/health/ready` answers 200.
    pub async fn ready(&mut self) {
        let port = self.http;
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("fieldlink-cloud exited before it was ready: {status}");
            }
            if let Ok((200, _)) = http_get(port, "/health/ready").await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fieldlink-cloud not ready within 30 s");
    }

    pub async fn metrics(&self) -> String {
        http_get(self.http, "/metrics")
            .await
            .expect("GET /metrics")
            .1
    }

    /// A metric's value from `/metrics`, 0 when absent.
    pub async fn metric(&self, name: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    pub fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL fieldlink-cloud");
        self.child.wait().unwrap();
    }

    pub fn sigterm_and_wait(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -TERM {pid}");
        for _ in 0..600 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("fieldlink-cloud did not stop within 30 s of SIGTERM");
    }
}

impl Drop for CloudProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A bare HTTP/1.1 GET on 127.0.0.1: status and body.
pub async fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("timeout"))??;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Ingest's broker settings for a plain connection to `broker` as `client_id`.
pub fn mqtt(
    broker: &fieldlink_testkit::Mosquitto,
    client_id: &str,
) -> fieldlink_cloud::ingest::MqttSettings {
    fieldlink_cloud::ingest::MqttSettings {
        host: broker.host().to_string(),
        port: broker.port(),
        client_id: client_id.to_string(),
        credentials: None,
        tls: None,
        keep_alive: Duration::from_secs(10),
        max_packet_bytes: 1 << 20,
    }
}

/// Ingest's tasks on a store, through a test broker: started, connected, stopped on request.
pub struct RunningIngest {
    pub handle: fieldlink_cloud::ingest::IngestHandle,
    pub metrics: std::sync::Arc<fieldlink_cloud::metrics::Metrics>,
    stop: tokio_util::sync::CancellationToken,
    tracker: tokio_util::task::TaskTracker,
}

impl RunningIngest {
    /// Starts ingest as `client_id` and returns once its broker connection is up.
    pub async fn start(
        broker: &fieldlink_testkit::Mosquitto,
        client_id: &str,
        settings: fieldlink_cloud::ingest::IngestSettings,
        store: std::sync::Arc<fieldlink_cloud::store::Store>,
    ) -> RunningIngest {
        let metrics = std::sync::Arc::new(fieldlink_cloud::metrics::Metrics::new());
        let stop = tokio_util::sync::CancellationToken::new();
        let tracker = tokio_util::task::TaskTracker::new();
        let handle = fieldlink_cloud::ingest::start(
            &mqtt(broker, client_id),
            settings,
            store,
            metrics.clone(),
            stop.clone(),
            &tracker,
        )
        .expect("ingest starts");
        wait_for("broker connection", 20, || {
            let h = handle.clone();
            async move { h.broker_connected().then_some(()).ok_or("down".to_string()) }
        })
        .await;
        RunningIngest {
            handle,
            metrics,
            stop,
            tracker,
        }
    }

    /// Stops the tasks and waits for them (the writer's last commit and acknowledgements).
    pub async fn stop(self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// A store on a SQLite file in `dir`, not yet migrated.
pub async fn sqlite_store(dir: &std::path::Path) -> fieldlink_cloud::store::Store {
    fieldlink_cloud::store::Store::open(&fieldlink_cloud::store::StoreSpec::Sqlite {
        path: dir.join("cloud.db"),
    })
    .await
    .expect("open the SQLite store")
}

/// A store on `pg` (TimescaleDB when it offers the extension), not yet migrated.
pub async fn postgres_store(pg: &fieldlink_testkit::Postgres) -> fieldlink_cloud::store::Store {
    fieldlink_cloud::store::Store::open(&fieldlink_cloud::store::StoreSpec::postgres(
        pg.url(),
        fieldlink_cloud::store::TimescaleMode::Auto,
    ))
    .await
    .expect("open the PostgreSQL store")
}

/// The value of the metric sample named exactly `name` (labels included) in `text`, if any.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Listens on a gateway's control topic, as an agent would.
pub async fn control_listener(
    broker: &fieldlink_testkit::Mosquitto,
    gw: &str,
) -> tokio::sync::mpsc::Receiver<fieldlink_protocol::Control> {
    let mut o = MqttOptions::new(format!("{gw}-control"), broker.host(), broker.port());
    o.set_clean_session(true);
    let (client, mut el) = AsyncClient::new(o, 16);
    client
        .subscribe(topic(gw, "control"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready = Some(ready_tx);
    tokio::spawn(async move {
        let _client = client;
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let c =
                        fieldlink_protocol::json::decode::<fieldlink_protocol::Control>(&p.payload)
                            .expect("a valid control message");
                    if tx.send(c).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    ready_rx.await.unwrap();
    rx
}
