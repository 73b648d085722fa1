//! Alerts over real ingest from a real Mosquitto: a rule created over REST fires when the value
//! crosses, shows on REST and the WebSocket, does not flap while the value hovers between the
//! clear threshold and the threshold, resolves when the value comes back, and every transition
//! is stored; acknowledge and manual resolve by an operator.

mod api_support;

use std::sync::Arc;
use std::time::Duration;

use api_support::*;
use fieldlink_cloud::alerts::AlertEngine;
use fieldlink_cloud::api::{self, ApiSettings, ApiState};
use fieldlink_cloud::auth::Role;
use fieldlink_cloud::ingest::{self, IngestSettings, MqttSettings};
use fieldlink_cloud::metrics::Metrics;
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::store::{Store, StoreSpec, TimescaleMode};
use fieldlink_protocol::{encode_telemetry, Encoding, Ident, Point, TelemetryBatch};
use futures::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn a_rule_fires_resolves_and_does_not_flap_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    };
    rt().block_on(scenario(spec));
}

#[test]
fn a_rule_fires_resolves_and_does_not_flap_on_postgres() {
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    let url = pg.create_database("alerts").expect("create database");
    rt().block_on(scenario(StoreSpec::postgres(url, TimescaleMode::Off)));
}

async fn scenario(spec: StoreSpec) {
    let broker = fieldlink_testkit::Mosquitto::start().expect("start mosquitto");
    {
        let store = Arc::new(Store::open(&spec).await.unwrap());
        store.migrate().await.unwrap();
        let db = Arc::new(RecordsDb::open(&spec).await.unwrap());
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mqtt = MqttSettings {
            host: "127.0.0.1".into(),
            port: broker.port(),
            client_id: "cloud-alerts".into(),
            credentials: None,
            tls: None,
            keep_alive: Duration::from_secs(30),
            max_packet_bytes: 1 << 20,
        };
        let handle = ingest::start(
            &mqtt,
            IngestSettings::default(),
            store.clone(),
            Arc::new(Metrics::new()),
            stop.clone(),
            &tracker,
        )
        .unwrap();
        let engine = AlertEngine::load(db.clone()).await.unwrap();
        tokio::spawn(
            engine
                .clone()
                .run(handle.subscribe_committed(), stop.clone()),
        );
        let state = ApiState::new(store, db)
            .with_ingest(handle)
            .with_alerts(engine.clone());
        let admin = state.tokens.create("a", Role::Admin).await.unwrap().1;
        let operator = state.tokens.create("o", Role::Operator).await.unwrap().1;
        let viewer = state.tokens.create("v", Role::Viewer).await.unwrap().1;
        let (a, _http) = serve_router(api::router(state, &ApiSettings::default())).await;

        let rule = json!({
            "name": "boiler too hot", "gateway": "gw-1", "metric": "temp",
            "condition": {"op": "gt", "threshold": 80.0}, "clear": 75.0,
            "severity": "critical"
        });
        assert_eq!(
            post(a, "/api/v1/alert-rules", &operator, &rule)
                .await
                .status,
            403
        );
        let mut bad = rule.clone();
        bad["clear"] = json!(85.0);
        let r = post(a, "/api/v1/alert-rules", &admin, &bad).await;
        assert_eq!(
            r.status, 400,
            "a clear threshold above the threshold could never resolve"
        );
        let r = post(a, "/api/v1/alert-rules", &admin, &rule).await;
        assert_eq!(r.status, 201, "{:?}", r.json());
        let rules = get(a, "/api/v1/alert-rules", &viewer).await.json();
        assert_eq!(rules[0]["rule"]["name"], "boiler too hot");

        let (mut ws, _) =
            tokio_tungstenite::connect_async(ws_request(&format!("ws://{a}/api/v1/ws"), &viewer))
                .await
                .unwrap();
        ws.send(Message::Text(
            json!({"type": "subscribe", "topic": "alerts", "gateway": "gw-1"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        loop {
            let m = ws.next().await.unwrap().unwrap();
            if let Message::Text(t) = m {
                assert_eq!(
                    serde_json::from_str::<Value>(t.as_str()).unwrap()["type"],
                    "subscribed"
                );
                break;
            }
        }

        let (gw, mut el) = AsyncClient::new(
            MqttOptions::new("gw-1-alerts", "127.0.0.1", broker.port()),
            64,
        );
        tokio::spawn(async move { while el.poll().await.is_ok() {} });
        let t0 = now() - 60_000;
        let mut seq = 0;
        let mut send = |values: Vec<f64>| {
            let mut b = TelemetryBatch::new(id("gw-1"), 1, seq);
            for v in values {
                b.points.push(Point::new(
                    id("boiler"),
                    id("temp"),
                    t0 + seq as i64 * 1_000,
                    v,
                ));
                seq += 1;
            }
            encode_telemetry(&b, Encoding::Json).unwrap()
        };
        // Crosses, hovers around the threshold (never below the clear threshold), comes back.
        for values in [
            vec![70.0, 85.0],
            vec![79.0, 82.0, 78.0],
            vec![81.0, 76.0, 83.0],
            vec![70.0],
        ] {
            gw.publish(
                "fieldlink/v1/gw-1/telemetry",
                QoS::AtLeastOnce,
                false,
                send(values),
            )
            .await
            .unwrap();
        }
        let mut seen = Vec::new();
        let alert_id = loop {
            let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
                .await
                .expect("an alert message within 20 s")
                .unwrap()
                .unwrap();
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            assert_eq!(v["type"], "alert");
            seen.push(v["alert"]["status"].as_str().unwrap().to_string());
            if v["alert"]["status"] == "resolved" {
                break v["alert"]["alert_id"].as_str().unwrap().to_string();
            }
        };
        assert_eq!(seen, ["active", "resolved"], "one alert, no flapping");
        let list = get(a, "/api/v1/alerts?gateway=gw-1", &viewer).await.json();
        assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
        assert_eq!(list["items"][0]["status"], "resolved");
        assert_eq!(list["items"][0]["severity"], "critical");
        assert_eq!(list["items"][0]["last_value"], 70.0);
        let transitions: Vec<String> = engine
            .records()
            .transitions(&alert_id)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(transitions.len(), 2, "{transitions:?}");
        assert!(
            transitions.contains(&"active".to_string())
                && transitions.contains(&"resolved".to_string())
        );

        // A second excursion: acknowledged, then resolved by hand.
        gw.publish(
            "fieldlink/v1/gw-1/telemetry",
            QoS::AtLeastOnce,
            false,
            send(vec![95.0]),
        )
        .await
        .unwrap();
        let open = eventually(20, "the second alert", || async {
            let l = get(a, "/api/v1/alerts?status=active", &viewer).await.json();
            l["items"][0]["alert_id"].as_str().map(str::to_string)
        })
        .await;
        assert_ne!(open, alert_id);
        let ack = format!("/api/v1/alerts/{open}/acknowledge");
        assert_eq!(post(a, &ack, &viewer, &json!({})).await.status, 403);
        let r = post(a, &ack, &operator, &json!({})).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["status"], "acknowledged");
        let res = format!("/api/v1/alerts/{open}/resolve");
        let r = post(a, &res, &operator, &json!({})).await;
        assert_eq!(r.json()["status"], "resolved");
        assert_eq!(post(a, &res, &operator, &json!({})).await.status, 409);
        assert_eq!(
            get(a, "/api/v1/alerts?status=resolved", &viewer)
                .await
                .json()["items"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        stop.cancel();
    }
}
