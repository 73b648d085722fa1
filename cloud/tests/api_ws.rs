//! The WebSocket over real ingest from a real Mosquitto: auth before the upgrade, telemetry
//! filtered by gateway/device/metric, gateway status from births, and command status pushed as
//! acknowledgements arrive.

mod api_support;

use std::sync::Arc;
use std::time::Duration;

use api_support::*;
use fieldlink_cloud::api::{self, ApiSettings, ApiState};
use fieldlink_cloud::auth::Role;
use fieldlink_cloud::commands::{CommandSettings, Commands};
use fieldlink_cloud::ingest::{self, IngestSettings, MqttSettings};
use fieldlink_cloud::metrics::Metrics;
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::store::{Store, StoreSpec};
use fieldlink_protocol::{
    encode_telemetry, json, Ack, AckStage, Birth, DataKind, DeviceInfo, Encoding, Ident, Point,
    PointInfo, Status, TelemetryBatch,
};
use futures::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn mqtt(port: u16, client_id: &str) -> MqttSettings {
    MqttSettings {
        host: "127.0.0.1".into(),
        port,
        client_id: client_id.into(),
        credentials: None,
        tls: None,
        keep_alive: Duration::from_secs(30),
        max_packet_bytes: 1 << 20,
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message within 20 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// The next message of one type, skipping others.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let m = next_json(ws).await;
        if m["type"] == kind {
            return m;
        }
    }
}

#[test]
fn websocket_auth_telemetry_status_and_commands() {
    let broker = fieldlink_testkit::Mosquitto::start().expect("start mosquitto");
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    };
    rt().block_on(async {
        let store = Arc::new(Store::open(&spec).await.unwrap());
        store.migrate().await.unwrap();
        let db = Arc::new(RecordsDb::open(&spec).await.unwrap());
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let handle = ingest::start(
            &mqtt(broker.port(), "cloud-ws"),
            IngestSettings::default(),
            store.clone(),
            Arc::new(Metrics::new()),
            stop.clone(),
            &tracker,
        )
        .unwrap();
        let commands = Commands::start(
            &mqtt(broker.port(), "cloud-ws"),
            CommandSettings::default(),
            db.clone(),
            stop.clone(),
            &tracker,
        )
        .unwrap();
        let state = ApiState::new(store, db).with_commands(commands).with_ingest(handle);
        let viewer = state.tokens.create("v", Role::Viewer).await.unwrap().1;
        let operator = state.tokens.create("o", Role::Operator).await.unwrap().1;
        let (a, _http) = serve_router(api::router(state, &ApiSettings::default())).await;

        // Auth before the upgrade: 401 without a valid token.
        for url in [format!("ws://{a}/api/v1/ws"), format!("ws://{a}/api/v1/ws?token=flk_00")] {
            match tokio_tungstenite::connect_async(url.as_str()).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                    assert_eq!(r.status().as_u16(), 401, "{url}")
                }
                other => panic!("{url}: expected 401, got {:?}", other.map(|_| ())),
            }
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(&format!("ws://{a}/api/v1/ws"), &viewer))
            .await
            .expect("a viewer connects");
        for sub in [
            json!({"type": "subscribe", "topic": "telemetry", "gateway": "gw-1", "device": "dev0", "metric": "m1"}),
            json!({"type": "subscribe", "topic": "gateway_status"}),
            json!({"type": "subscribe", "topic": "commands", "gateway": "gw-1"}),
        ] {
            ws.send(Message::Text(sub.to_string().into())).await.unwrap();
            assert_eq!(next_json(&mut ws).await["type"], "subscribed");
        }
        ws.send(Message::Text("{\"type\":\"subscribe\",\"topic\":\"weather\"}".into()))
            .await
            .unwrap();
        assert_eq!(next_json(&mut ws).await["type"], "error");

        let (gw, mut el) = AsyncClient::new(MqttOptions::new("gw-1-ws", "127.0.0.1", broker.port()), 64);
        tokio::spawn(async move { while el.poll().await.is_ok() {} });
        let birth = Status::Online(Birth {
            gateway: id("gw-1"),
            boot_epoch: 1,
            ts_ms: now(),
            agent_version: "0.1.0".into(),
            config_hash: "cafe".into(),
            devices: vec![DeviceInfo {
                name: id("dev0"),
                points: vec![PointInfo {
                    name: id("m1"),
                    unit: None,
                    kind: DataKind::Number,
                    writable: true,
                }],
            }],
        });
        gw.publish("fieldlink/v1/gw-1/status", QoS::AtLeastOnce, true, json::encode(&birth).unwrap())
            .await
            .unwrap();
        let status = next_of(&mut ws, "gateway_status").await;
        assert_eq!(status["gateway"], "gw-1");
        assert_eq!(status["online"], true);

        // Telemetry: only dev0/m1 of gw-1 reaches this client.
        let t0 = now() - 10_000;
        let mut batch = TelemetryBatch::new(id("gw-1"), 1, 1);
        for row in 0..3i64 {
            for d in ["dev0", "dev1"] {
                for m in ["m0", "m1"] {
                    batch.points.push(Point::new(id(d), id(m), t0 + row * 1_000, row as f64));
                }
            }
        }
        let publish = |b: &TelemetryBatch| encode_telemetry(b, Encoding::Json).unwrap();
        gw.publish("fieldlink/v1/gw-1/telemetry", QoS::AtLeastOnce, false, publish(&batch))
            .await
            .unwrap();
        let mut marker = TelemetryBatch::new(id("gw-1"), 1, 2);
        marker.points.push(Point::new(id("dev0"), id("m1"), t0 + 5_000, 99.0));
        gw.publish("fieldlink/v1/gw-1/telemetry", QoS::AtLeastOnce, false, publish(&marker))
            .await
            .unwrap();
        let mut got = Vec::new();
        loop {
            let m = next_of(&mut ws, "telemetry").await;
            assert_eq!((m["gateway"].as_str(), m["device"].as_str(), m["metric"].as_str()),
                (Some("gw-1"), Some("dev0"), Some("m1")), "filtered out: {m}");
            got.push(m["value"].as_f64().unwrap());
            if m["value"] == 99.0 {
                break;
            }
        }
        assert_eq!(got, [0.0, 1.0, 2.0, 99.0]);

        // Command status is pushed as it changes.
        let created = eventually(20, "the birth to reach the command service", || async {
            let r = post(a, "/api/v1/gateways/gw-1/commands", &operator, &json!({"kind": {"command": "ping"}})).await;
            (r.status == 201).then(|| r.json())
        })
        .await;
        let cid = created["command_id"].as_str().unwrap().to_string();
        let mut statuses = Vec::new();
        let ack = |stage| Ack { command_id: id(&cid), stage, result: None, error: None, ts_ms: now() };
        for stage in [AckStage::Received, AckStage::Executed] {
            gw.publish("fieldlink/v1/gw-1/ack", QoS::AtLeastOnce, false, json::encode(&ack(stage)).unwrap())
                .await
                .unwrap();
        }
        loop {
            let m = next_of(&mut ws, "command").await;
            if m["command"]["command_id"] != cid.as_str() {
                continue;
            }
            statuses.push(m["command"]["status"].as_str().unwrap().to_string());
            if m["command"]["status"] == "executed" {
                break;
            }
        }
        assert_eq!(statuses, ["pending", "sent", "received", "executed"]);
        stop.cancel();
    });
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
