//! Commands over a real Mosquitto: created over REST, checked against the gateway's retained
//! birth, published on the gateway's command topic, tracked from acknowledgements; queued for
//! an offline gateway and delivered on its next birth; an expired command is never published.
//!
//! The gateway side is a plain MQTT client in the test playing the agent's part of the
//! protocol (birth, death, acks), so each step can be asserted.

mod api_support;

use std::sync::Arc;
use std::time::Duration;

use api_support::*;
use fieldlink_cloud::api::{self, ApiSettings, ApiState};
use fieldlink_cloud::auth::Role;
use fieldlink_cloud::commands::{CommandSettings, Commands};
use fieldlink_cloud::ingest::MqttSettings;
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::store::{Store, StoreSpec};
use fieldlink_protocol::{
    json, Ack, AckStage, Birth, Command, CommandKind, DataKind, Death, DeviceInfo, Ident,
    PointInfo, Status, Value,
};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn birth(epoch: u64) -> Vec<u8> {
    json::encode(&Status::Online(Birth {
        gateway: id("gw-1"),
        boot_epoch: epoch,
        ts_ms: 1_700_000_000_000,
        agent_version: "0.1.0".into(),
        config_hash: "cafe".into(),
        devices: vec![DeviceInfo {
            name: id("pump"),
            points: vec![
                PointInfo {
                    name: id("setpoint"),
                    unit: Some("rpm".into()),
                    kind: DataKind::Number,
                    writable: true,
                },
                PointInfo {
                    name: id("speed"),
                    unit: Some("rpm".into()),
                    kind: DataKind::Number,
                    writable: false,
                },
            ],
        }],
    }))
    .unwrap()
}

fn death(epoch: u64) -> Vec<u8> {
    json::encode(&Status::Offline(Death {
        gateway: id("gw-1"),
        boot_epoch: epoch,
    }))
    .unwrap()
}

/// The gateway's side: publishes status and acks, forwards every command it gets.
struct Gateway {
    client: AsyncClient,
    commands: mpsc::UnboundedReceiver<Command>,
}

impl Gateway {
    async fn connect(port: u16) -> Gateway {
        let mut o = MqttOptions::new("gw-1-test", "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = AsyncClient::new(o, 64);
        let (tx, commands) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let sub = client.clone();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        sub.subscribe("fieldlink/v1/gw-1/cmd", QoS::AtLeastOnce)
                            .await
                            .unwrap();
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let _ = tx.send(json::decode::<Command>(&p.payload).unwrap());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        ready_rx.await.unwrap();
        Gateway { client, commands }
    }

    async fn status(&self, payload: Vec<u8>) {
        self.client
            .publish("fieldlink/v1/gw-1/status", QoS::AtLeastOnce, true, payload)
            .await
            .unwrap();
    }

    async fn ack(&self, command: &str, stage: AckStage, result: Option<Value>) {
        let ack = Ack {
            command_id: id(command),
            stage,
            result,
            error: None,
            ts_ms: 1_700_000_000_000,
        };
        self.client
            .publish(
                "fieldlink/v1/gw-1/ack",
                QoS::AtLeastOnce,
                false,
                json::encode(&ack).unwrap(),
            )
            .await
            .unwrap();
    }

    async fn next_command(&mut self) -> Command {
        tokio::time::timeout(Duration::from_secs(20), self.commands.recv())
            .await
            .expect("a command within 20 s")
            .expect("gateway task alive")
    }
}

async fn status_of(addr: std::net::SocketAddr, token: &str, command: &str) -> String {
    get(addr, &format!("/api/v1/commands/{command}"), token)
        .await
        .json()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn wait_status(
    addr: std::net::SocketAddr,
    token: &str,
    command: &str,
    want: &str,
) -> serde_json::Value {
    eventually(20, &format!("{command} to become {want}"), || async {
        let c = get(addr, &format!("/api/v1/commands/{command}"), token)
            .await
            .json();
        (c["status"] == want).then_some(c)
    })
    .await
}

#[test]
fn commands_flow_through_mosquitto() {
    let broker = fieldlink_testkit::Mosquitto::start().expect("start mosquitto");
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    };
    rt().block_on(async {
        let store = Store::open(&spec).await.unwrap();
        store.migrate().await.unwrap();
        let db = Arc::new(RecordsDb::open(&spec).await.unwrap());
        let mqtt = MqttSettings {
            host: "127.0.0.1".into(),
            port: broker.port(),
            client_id: "cloud-test".into(),
            credentials: None,
            tls: None,
            keep_alive: Duration::from_secs(30),
            max_packet_bytes: 1 << 20,
        };
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let settings = CommandSettings {
            expiry_check: Duration::from_millis(200),
            max_ttl: Duration::from_secs(3_600),
            ..CommandSettings::default()
        };
        let commands = Commands::start(&mqtt, settings, db.clone(), stop.clone(), &tracker).unwrap();
        let state = ApiState::new(Arc::new(store), db).with_commands(commands);
        let operator = state.tokens.create("op", Role::Operator).await.unwrap().1;
        let viewer = state.tokens.create("view", Role::Viewer).await.unwrap().1;
        let (a, _http) = serve_router(api::router(state, &ApiSettings::default())).await;
        let path = "/api/v1/gateways/gw-1/commands";
        let write = |v: serde_json::Value| {
            json!({"kind": {"command": "write_point", "device": "pump", "point": "setpoint", "value": v}})
        };

        // No birth yet: nothing to check the command against.
        let r = post(a, path, &operator, &write(json!(1500))).await;
        assert_eq!(r.status, 409, "{:?}", r.json());
        assert_eq!(r.json()["code"], "no_birth");

        let mut gw = Gateway::connect(broker.port()).await;
        gw.status(birth(1)).await;
        let created = eventually(20, "the birth to reach the command service", || async {
            let r = post(a, path, &operator, &write(json!(1500))).await;
            (r.status == 201).then(|| r.json())
        })
        .await;
        let cid = created["command_id"].as_str().unwrap().to_string();
        assert_eq!(created["status"], "sent", "the gateway is online: {created}");

        let got = gw.next_command().await;
        assert_eq!(got.id.as_str(), cid);
        assert_eq!(
            got.kind,
            CommandKind::WritePoint {
                device: id("pump"),
                point: id("setpoint"),
                value: Value::Number(1500.0)
            }
        );
        assert!(got.expires_at_ms > got.created_at_ms);

        // Checked against the birth, and operator-only.
        for (body, why) in [
            (json!({"kind": {"command": "write_point", "device": "fan", "point": "setpoint", "value": 1}}), "unknown device"),
            (json!({"kind": {"command": "write_point", "device": "pump", "point": "speed", "value": 1}}), "not writable"),
            (json!({"kind": {"command": "write_point", "device": "pump", "point": "setpoint", "value": true}}), "wrong type"),
            (json!({"kind": {"command": "read_now", "device": "pump", "points": ["nope"]}}), "unknown point"),
            (json!({"kind": {"command": "ping"}, "expires_in_secs": 7200}), "ttl above the maximum"),
        ] {
            let r = post(a, path, &operator, &body).await;
            assert_eq!(r.status, 400, "{why}: {:?}", r.json());
        }
        assert_eq!(post(a, path, &viewer, &write(json!(1))).await.status, 403);

        // Status follows the acknowledgements; a late `received` does not move it back.
        gw.ack(&cid, AckStage::Received, None).await;
        wait_status(a, &viewer, &cid, "received").await;
        gw.ack(&cid, AckStage::Executed, Some(Value::Number(1500.0))).await;
        let done = wait_status(a, &viewer, &cid, "executed").await;
        assert_eq!(done["result"], 1500.0);
        gw.ack(&cid, AckStage::Received, None).await;

        // Idempotency key: the second request returns the first command.
        let body = json!({"kind": {"command": "ping"}, "idempotency_key": "k-1"});
        let first = post(a, path, &operator, &body).await;
        assert_eq!(first.status, 201);
        let again = post(a, path, &operator, &body).await;
        assert_eq!(again.status, 200);
        assert_eq!(first.json()["command_id"], again.json()["command_id"]);
        let ping = gw.next_command().await;
        assert_eq!(ping.id.as_str(), first.json()["command_id"].as_str().unwrap());

        // Offline: commands queue as pending.
        gw.status(death(1)).await;
        let queued = eventually(20, "the death to reach the command service", || async {
            let r = post(a, path, &operator, &json!({"kind": {"command": "read_now", "device": "pump"}})).await;
            let c = r.json();
            (c["status"] == "pending").then_some(c)
        })
        .await;
        let queued_id = queued["command_id"].as_str().unwrap().to_string();
        let expiring = post(a, path, &operator, &json!({"kind": {"command": "ping"}, "expires_in_secs": 1})).await.json();
        let expiring_id = expiring["command_id"].as_str().unwrap().to_string();
        assert_eq!(expiring["status"], "pending");
        wait_status(a, &viewer, &expiring_id, "expired").await;
        assert_eq!(status_of(a, &viewer, &queued_id).await, "pending");

        // Back online: the queued command is delivered, the expired one is not.
        gw.status(birth(2)).await;
        wait_status(a, &viewer, &queued_id, "sent").await;
        let marker = eventually(20, "a command sent at once", || async {
            let c = post(a, path, &operator, &json!({"kind": {"command": "ping"}})).await.json();
            (c["status"] == "sent").then_some(c)
        })
        .await;
        let marker_id = marker["command_id"].as_str().unwrap().to_string();
        let mut seen = Vec::new();
        loop {
            let c = gw.next_command().await;
            seen.push(c.id.to_string());
            if c.id.as_str() == marker_id && seen.contains(&queued_id) {
                break;
            }
        }
        assert!(!seen.contains(&expiring_id), "an expired command was published: {seen:?}");
        assert_eq!(status_of(a, &viewer, &expiring_id).await, "expired");

        let page = get(a, "/api/v1/gateways/gw-1/commands?limit=2", &viewer).await.json();
        assert_eq!(page["items"].as_array().unwrap().len(), 2);
        assert_eq!(page["next_offset"], 2);
        stop.cancel();
    });
}
