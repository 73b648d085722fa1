//! Device health end to end through a real Mosquitto, on SQLite and on PostgreSQL: a gateway's
//! device_up / device_degraded / device_down events become each device's state in the
//! registry, served on REST and pushed on the WebSocket (`device_status`); a replayed old event
//! changes nothing; the gateway's death makes its devices unknown, a birth in the same boot
//! epoch vouches for the last reports again, and a birth in a new epoch does not. With
//! PostgreSQL, a second instance's WebSocket clients get the first instance's changes over
//! LISTEN/NOTIFY.

mod api_support;

use std::sync::Arc;
use std::time::Duration;

use api_support::*;
use fieldlink_cloud::api::{self, ApiSettings, ApiState};
use fieldlink_cloud::auth::Role;
use fieldlink_cloud::ingest::{self, IngestSettings, MqttSettings};
use fieldlink_cloud::metrics::Metrics;
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::store::{Store, StoreSpec, TimescaleMode};
use fieldlink_protocol::{
    json, Birth, DataKind, Death, DeviceInfo, Event, EventKind, Ident, PointInfo, Status,
};
use futures::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const GW: &str = "gw-h";

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn mqtt(port: u16) -> MqttSettings {
    MqttSettings {
        host: "127.0.0.1".into(),
        port,
        client_id: "cloud-health".into(),
        credentials: None,
        tls: None,
        keep_alive: Duration::from_secs(30),
        max_packet_bytes: 1 << 20,
    }
}

fn birth(epoch: u64) -> Vec<u8> {
    let device = |name: &str| DeviceInfo {
        name: id(name),
        points: vec![PointInfo {
            name: id("power"),
            unit: Some("kW".into()),
            kind: DataKind::Number,
            writable: false,
        }],
    };
    json::encode(&Status::Online(Birth {
        gateway: id(GW),
        boot_epoch: epoch,
        ts_ms: now(),
        agent_version: "0.1.0".into(),
        config_hash: "cafe".into(),
        devices: vec![device("meter"), device("pump")],
    }))
    .unwrap()
}

fn death(epoch: u64) -> Vec<u8> {
    json::encode(&Status::Offline(Death {
        gateway: id(GW),
        boot_epoch: epoch,
    }))
    .unwrap()
}

fn event(epoch: u64, seq: u64, ts_ms: i64, kind: EventKind) -> Vec<u8> {
    json::encode(&Event {
        gateway: id(GW),
        boot_epoch: epoch,
        seq,
        ts_ms,
        kind,
    })
    .unwrap()
}

fn up(device: &str) -> EventKind {
    EventKind::DeviceUp { device: id(device) }
}

fn down(device: &str, error: &str) -> EventKind {
    EventKind::DeviceDown {
        device: id(device),
        error: error.into(),
    }
}

/// The next `device_status` message for `device`, skipping anything else.
async fn next_status(ws: &mut Ws, device: &str) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message within 20 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "device_status" && v["device"]["device"] == device {
                return v["device"].clone();
            }
        }
    }
}

/// Skips `device_status` messages for `device` until one in `state`.
async fn status_until(ws: &mut Ws, device: &str, state: &str) -> Value {
    loop {
        let d = next_status(ws, device).await;
        if d["state"] == state {
            return d;
        }
    }
}

async fn device(a: std::net::SocketAddr, t: &str, name: &str) -> Value {
    let r = get(a, &format!("/api/v1/gateways/{GW}/devices/{name}"), t).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn scenario(spec: StoreSpec) {
    let broker = fieldlink_testkit::Mosquitto::start().expect("start mosquitto");
    let store = Arc::new(Store::open(&spec).await.unwrap());
    store.migrate().await.unwrap();
    let db = Arc::new(RecordsDb::open(&spec).await.unwrap());
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let handle = ingest::start(
        &mqtt(broker.port()),
        IngestSettings::default(),
        store.clone(),
        Arc::new(Metrics::new()),
        stop.clone(),
        &tracker,
    )
    .unwrap();
    let state = ApiState::new(store, db).with_ingest(handle);
    let t = state.tokens.create("v", Role::Viewer).await.unwrap().1;
    let (a, _http) = serve_router(api::router(state, &ApiSettings::default())).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(ws_request(&format!("ws://{a}/api/v1/ws"), &t))
            .await
            .expect("connect");
    let sub = json!({"type": "subscribe", "topic": "device_status", "gateway": GW});
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .unwrap();

    let (gw, mut el) = AsyncClient::new(
        MqttOptions::new("gw-h-agent", "127.0.0.1", broker.port()),
        64,
    );
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let status = |body: Vec<u8>| {
        let gw = gw.clone();
        async move {
            gw.publish(
                format!("fieldlink/v1/{GW}/status"),
                QoS::AtLeastOnce,
                true,
                body,
            )
            .await
            .unwrap()
        }
    };
    let events = |bodies: Vec<Vec<u8>>| {
        let gw = gw.clone();
        async move {
            for b in bodies {
                gw.publish(
                    format!("fieldlink/v1/{GW}/events"),
                    QoS::AtLeastOnce,
                    false,
                    b,
                )
                .await
                .unwrap();
            }
        }
    };

    // The birth registers both devices; nothing has reported their health yet.
    status(birth(1)).await;
    let d = next_status(&mut ws, "meter").await;
    assert_eq!(
        (d["state"].as_str(), d["gateway"].as_str()),
        (Some("unknown"), Some(GW))
    );
    assert!(d["since"].is_null() && d["reported_state"].is_null(), "{d}");

    // Health changes, in order (one commit may carry several: a push gives the state after
    // it); then an old report redelivered, then a marker.
    let t0 = now() - 60_000;
    events(vec![event(1, 1, t0, up("meter"))]).await;
    assert_eq!(
        status_until(&mut ws, "meter", "online").await["since"],
        fieldlink_cloud::clock::rfc3339(t0)
    );
    let degraded = EventKind::DeviceDegraded {
        device: id("meter"),
        error: "exception 2 at 40001".into(),
    };
    events(vec![event(1, 2, t0 + 1_000, degraded)]).await;
    let d = status_until(&mut ws, "meter", "degraded").await;
    assert_eq!(d["last_error"], "exception 2 at 40001");
    events(vec![
        event(1, 3, t0 + 2_000, down("pump", "timeout")),
        event(1, 4, t0 + 3_000, down("meter", "no answer")),
        event(1, 1, t0, up("meter")),
        event(1, 5, t0 + 4_000, up("pump")),
    ])
    .await;
    status_until(&mut ws, "pump", "online").await;
    // The replayed device_up (seq 1) came before the marker and changed nothing.
    let meter = device(a, &t, "meter").await;
    assert_eq!(meter["state"], "offline", "{meter}");
    assert_eq!(meter["reported_state"], "offline");
    assert_eq!(meter["last_error"], "no answer");
    assert_eq!(
        meter["last_error_at"],
        fieldlink_cloud::clock::rfc3339(t0 + 3_000)
    );
    let pump = device(a, &t, "pump").await;
    assert_eq!(pump["state"], "online", "{pump}");
    // Back online, the last error stays readable.
    assert_eq!(pump["last_error"], "timeout");
    let list = get(a, &format!("/api/v1/gateways/{GW}/devices"), &t)
        .await
        .json();
    let states: Vec<(&str, &str)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["device"].as_str().unwrap(), d["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("meter", "offline"), ("pump", "online")]);
    let missing = get(a, &format!("/api/v1/gateways/{GW}/devices/nope"), &t).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], "not_found");

    // The gateway dies: nobody vouches for its devices any more.
    let before_death = now();
    status(death(1)).await;
    let d = status_until(&mut ws, "meter", "unknown").await;
    assert_eq!(d["reported_state"], "offline", "{d}");
    let since = time::OffsetDateTime::parse(
        d["since"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        since.unix_timestamp_nanos() / 1_000_000 >= before_death as i128,
        "{d}"
    );
    assert_eq!(
        status_until(&mut ws, "pump", "unknown").await["reported_state"],
        "online"
    );
    assert_eq!(device(a, &t, "pump").await["state"], "unknown");

    // Reconnected in the same boot epoch: the agent kept its state, so its reports hold again.
    status(birth(1)).await;
    status_until(&mut ws, "meter", "offline").await;
    assert_eq!(device(a, &t, "pump").await["state"], "online");

    // A new boot epoch: unknown until the restarted agent reports each device again.
    status(birth(2)).await;
    status_until(&mut ws, "meter", "unknown").await;
    events(vec![event(2, 1, now(), up("meter"))]).await;
    let d = status_until(&mut ws, "meter", "online").await;
    assert_eq!(d["last_error"], "no answer", "{d}");
    assert_eq!(device(a, &t, "meter").await["state"], "online");
    assert_eq!(device(a, &t, "pump").await["state"], "unknown");
    stop.cancel();
    tracker.close();
    tracker.wait().await;
}

#[test]
fn device_health_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(scenario(StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    }));
}

#[test]
fn device_health_on_postgres() {
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    let url = pg
        .create_database("device_health")
        .expect("create database");
    rt().block_on(scenario(StoreSpec::postgres(url, TimescaleMode::Off)));
}

/// Instance A ingests; instance B has no ingest of its own and serves a WebSocket client that
/// gets A's device health changes through the database's notifications.
#[test]
fn device_status_reaches_another_instance_through_postgres() {
    use fieldlink_cloud::ws::fanout::{self, LocalEvents};
    use tokio::sync::broadcast;
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    let url = pg
        .create_database("device_fanout")
        .expect("create database");
    let spec = StoreSpec::postgres(url, TimescaleMode::Off);
    rt().block_on(async {
        let broker = fieldlink_testkit::Mosquitto::start().expect("start mosquitto");
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let metrics = Arc::new(Metrics::new());
        // Neither instance sends commands or evaluates alerts here: idle broadcasts stand in.
        let (commands, _) = broadcast::channel(16);
        let (alerts, _) = broadcast::channel(16);
        let (batches_b, _) = broadcast::channel(16);
        let (health_b, _) = broadcast::channel(16);

        let store_a = Arc::new(Store::open(&spec).await.unwrap());
        store_a.migrate().await.unwrap();
        let handle = ingest::start(
            &mqtt(broker.port()),
            IngestSettings::default(),
            store_a,
            metrics.clone(),
            stop.clone(),
            &tracker,
        )
        .unwrap();
        let local_a = LocalEvents {
            batches: handle.subscribe_committed(),
            commands: commands.subscribe(),
            alerts: alerts.subscribe(),
            health: handle.subscribe_device_health(),
        };
        fanout::start(&spec, local_a, metrics.clone(), stop.clone(), &tracker)
            .unwrap()
            .expect("fan-out on PostgreSQL");

        let local_b = LocalEvents {
            batches: batches_b.subscribe(),
            commands: commands.subscribe(),
            alerts: alerts.subscribe(),
            health: health_b.subscribe(),
        };
        let feed_b = fanout::start(&spec, local_b, metrics, stop.clone(), &tracker)
            .unwrap()
            .expect("fan-out on PostgreSQL");
        let state_b = ApiState::new(
            Arc::new(Store::open(&spec).await.unwrap()),
            Arc::new(RecordsDb::open(&spec).await.unwrap()),
        );
        let t = state_b.tokens.create("v", Role::Viewer).await.unwrap().1;
        let router_b =
            api::router(state_b, &ApiSettings::default()).layer(axum::Extension(feed_b));
        let (b, _http) = serve_router(router_b).await;
        let (mut ws, _) =
            tokio_tungstenite::connect_async(ws_request(&format!("ws://{b}/api/v1/ws"), &t))
                .await
                .expect("connect to instance B");
        let sub = json!({"type": "subscribe", "topic": "device_status", "gateway": GW, "device": "meter"});
        ws.send(Message::Text(sub.to_string().into())).await.unwrap();

        let (gw, mut el) =
            AsyncClient::new(MqttOptions::new("gw-h-agent", "127.0.0.1", broker.port()), 64);
        tokio::spawn(async move { while el.poll().await.is_ok() {} });
        // Births until B's listener is in place and one comes through.
        let first = loop {
            gw.publish(format!("fieldlink/v1/{GW}/status"), QoS::AtLeastOnce, true, birth(1))
                .await
                .unwrap();
            match tokio::time::timeout(Duration::from_millis(500), next_status(&mut ws, "meter"))
                .await
            {
                Ok(d) => break d,
                Err(_) => continue,
            }
        };
        assert_eq!(first["state"], "unknown", "{first}");
        gw.publish(
            format!("fieldlink/v1/{GW}/events"),
            QoS::AtLeastOnce,
            false,
            event(1, 1, now(), down("meter", "no answer")),
        )
        .await
        .unwrap();
        let d = status_until(&mut ws, "meter", "offline").await;
        assert_eq!(d["last_error"], "no answer", "{d}");
        stop.cancel();
        tracker.close();
        tracker.wait().await;
    });
}
