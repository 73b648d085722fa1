//! Live events across cloud instances: two whole services (`service::serve`) on one PostgreSQL
//! and one Mosquitto, ingesting through one shared subscription, with a WebSocket client on
//! each.
//! - Each client sees every gateway status, every telemetry point, every command status and
//!   every alert change once, whichever instance ingested or produced it; the metrics show
//!   that both instances ingested a share and delivered the other's notifications.
//! - Commands and alert changes made through the REST API of one instance reach the client of
//!   the other.
//! - PostgreSQL restarts: each instance reports the gap in listening (metrics, and a `gap`
//!   message to its clients), and the fan-out resumes (telemetry ingested after the restart by
//!   either instance reaches both clients, once).

mod api_support;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_support::{eventually, post, request, rt, ws_request};
use fieldlink_cloud::auth::{Role, TokenStore};
use fieldlink_cloud::config::{load_raw, Settings};
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::service::ServiceError;
use fieldlink_cloud::store::{StoreSpec, TimescaleMode};
use fieldlink_protocol::{
    encode_telemetry, json, Ack, AckStage, Birth, DataKind, DeviceInfo, Encoding, Ident, Point,
    PointInfo, Status, TelemetryBatch,
};
use futures::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A telemetry point as a client sees it: (device, metric, time) of gateway gw-1.
type PointKey = (String, String, String);

struct Instance {
    http: SocketAddr,
    stop: CancellationToken,
    served: tokio::task::JoinHandle<Result<(), ServiceError>>,
    _dir: tempfile::TempDir,
}

/// A whole cloud service configured from TOML, as an operator would run each instance.
async fn instance(name: &str, database: &str, mqtt_port: u16) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cloud.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[database]
url = "{database}"
timescale = "off"

[mqtt]
url = "mqtt://127.0.0.1:{mqtt_port}"
client_id = "cloud-{name}"

[ingest]
share_group = "fanout"

[http]
listen = "127.0.0.1:0"

[alerts]
check_interval_ms = 200
"#
        ),
    )
    .unwrap();
    let settings = Settings::from_raw(load_raw(Some(&config), Vec::new()).unwrap()).unwrap();
    let stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let served = tokio::spawn(fieldlink_cloud::service::serve(
        settings,
        stop.clone(),
        Some(tx),
    ));
    let http = rx.await.expect("the cloud started").http;
    Instance {
        http,
        stop,
        served,
        _dir: dir,
    }
}

/// A metric's value (the sample whose name and labels are exactly `sample`), 0 when absent.
async fn metric(addr: SocketAddr, sample: &str) -> f64 {
    let r = request(addr, "GET", "/metrics", &[], None).await;
    String::from_utf8_lossy(&r.body)
        .lines()
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// Every message a WebSocket client got, collected as it arrives.
struct Client {
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Client {
    /// Connects with `token` and subscribes to every topic, unfiltered.
    async fn connect(addr: SocketAddr, token: &str) -> Client {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(ws_request(&format!("ws://{addr}/api/v1/ws"), token))
                .await
                .expect("a viewer connects");
        for topic in ["telemetry", "gateway_status", "commands", "alerts"] {
            ws.send(Message::Text(
                json!({"type": "subscribe", "topic": topic})
                    .to_string()
                    .into(),
            ))
            .await
            .unwrap();
        }
        let mut subscribed = 0;
        while subscribed < 4 {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("an answer within 10 s")
                .expect("socket open")
                .expect("frame");
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                assert_eq!(v["type"], "subscribed", "{v}");
                subscribed += 1;
            }
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    into.lock()
                        .unwrap()
                        .push(serde_json::from_str(t.as_str()).unwrap());
                }
            }
        });
        Client { seen }
    }

    fn of(&self, kind: &str) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["type"] == kind)
            .cloned()
            .collect()
    }

    /// Telemetry seen, as (device, metric, time) of gateway gw-1, in arrival order.
    fn points(&self) -> Vec<PointKey> {
        self.of("telemetry")
            .iter()
            .map(|m| {
                assert_eq!(m["gateway"], "gw-1", "{m}");
                let s = |k: &str| m[k].as_str().unwrap().to_string();
                (s("device"), s("metric"), s("time"))
            })
            .collect()
    }

    /// Statuses seen of one command, in order.
    fn command(&self, command_id: &str) -> Vec<String> {
        self.of("command")
            .iter()
            .filter(|m| m["command"]["command_id"] == command_id)
            .map(|m| m["command"]["status"].as_str().unwrap().to_string())
            .collect()
    }

    /// (alert id, status) of every alert change seen of one rule, in order.
    fn alerts(&self, rule_id: &str) -> Vec<(String, String)> {
        self.of("alert")
            .iter()
            .filter(|m| m["alert"]["rule_id"] == rule_id)
            .map(|m| {
                let s = |k: &str| m["alert"][k].as_str().unwrap().to_string();
                (s("alert_id"), s("status"))
            })
            .collect()
    }
}

/// Waits until `client` has seen exactly `want` points (as a set, each once).
async fn points_seen(client: &Client, want: &BTreeSet<PointKey>, who: &str) -> Vec<PointKey> {
    eventually(
        30,
        &format!("{} points on {who}'s client", want.len()),
        || async {
            let got = client.points();
            (got.len() >= want.len()).then_some(got)
        },
    )
    .await
}

fn assert_once(got: &[PointKey], want: &BTreeSet<PointKey>) {
    let set: BTreeSet<_> = got.iter().cloned().collect();
    assert_eq!(set.len(), got.len(), "a point was pushed twice");
    assert_eq!(&set, want);
}

/// Telemetry batches of gw-1: `messages` messages of 2 devices × 5 metrics at one time each,
/// from `t0`, 1 s apart. Returns the payloads and the (device, metric, time) they carry.
fn telemetry(t0: i64, first_seq: u64, messages: u64) -> (Vec<Vec<u8>>, BTreeSet<PointKey>) {
    let mut payloads = Vec::new();
    let mut keys = BTreeSet::new();
    for i in 0..messages {
        let t = t0 + i as i64 * 1_000;
        let mut b = TelemetryBatch::new(id("gw-1"), 1, first_seq + i);
        for d in ["meter", "pump"] {
            for m in 0..5 {
                let metric = format!("m{m}");
                b.points
                    .push(Point::new(id(d), id(&metric), t, (i * 10 + m) as f64));
                keys.insert((d.to_string(), metric, fieldlink_cloud::clock::rfc3339(t)));
            }
        }
        payloads.push(encode_telemetry(&b, Encoding::Binary).unwrap());
    }
    (payloads, keys)
}

fn birth(gateway: &str) -> Vec<u8> {
    json::encode(&Status::Online(Birth {
        gateway: id(gateway),
        boot_epoch: 1,
        ts_ms: now(),
        agent_version: "0.1.0".into(),
        config_hash: "cafe".into(),
        devices: vec![DeviceInfo {
            name: id("boiler"),
            points: vec![PointInfo {
                name: id("temp"),
                unit: Some("degC".into()),
                kind: DataKind::Number,
                writable: false,
            }],
        }],
    }))
    .unwrap()
}

/// Messages of one kind ingested by an instance.
async fn ingested(addr: SocketAddr, kind: &str) -> f64 {
    metric(
        addr,
        &format!("fieldlink_cloud_mqtt_messages_total{{kind=\"{kind}\"}}"),
    )
    .await
}

#[test]
fn instances_on_one_database_fan_out_live_events_to_each_others_clients() {
    let mut pg =
        fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    let url = pg.create_database("fanout").expect("create database");
    let broker = fieldlink_testkit::Mosquitto::start().expect("start mosquitto");
    rt().block_on(async {
        let a = instance("a", &url, broker.port()).await;
        let b = instance("b", &url, broker.port()).await;
        // Shared subscriptions get no retained messages: publish only once both are in.
        for i in [&a, &b] {
            eventually(30, "both instances ready", || async {
                let r = request(i.http, "GET", "/health/ready", &[], None).await;
                let listening = metric(i.http, "fieldlink_cloud_fanout_listening").await;
                (r.status == 200 && listening == 1.0).then_some(())
            })
            .await;
        }
        let tokens = TokenStore::new(Arc::new(
            RecordsDb::open(&StoreSpec::postgres(url.clone(), TimescaleMode::Off))
                .await
                .unwrap(),
        ));
        let viewer = tokens.create("v", Role::Viewer).await.unwrap().1;
        let operator = tokens.create("o", Role::Operator).await.unwrap().1;
        let admin = tokens.create("a", Role::Admin).await.unwrap().1;
        let on_a = Client::connect(a.http, &viewer).await;
        let on_b = Client::connect(b.http, &viewer).await;

        let mut opts = MqttOptions::new("gw-sim", "127.0.0.1", broker.port());
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (gw, mut el) = AsyncClient::new(opts, 256);
        tokio::spawn(async move { while el.poll().await.is_ok() {} });

        // Gateway statuses: four births, split between the instances by the broker.
        let gateways = ["gw-1", "gw-2", "gw-3", "gw-4"];
        for g in gateways {
            let topic = format!("fieldlink/v1/{g}/status");
            gw.publish(topic, QoS::AtLeastOnce, true, birth(g))
                .await
                .unwrap();
        }
        for (client, who) in [(&on_a, "a"), (&on_b, "b")] {
            eventually(30, &format!("four births on {who}'s client"), || async {
                (client.of("gateway_status").len() >= 4).then_some(())
            })
            .await;
        }

        // Telemetry: twenty messages, split between the instances by the broker.
        let (payloads, want) = telemetry(now() - 60_000, 1, 20);
        for p in payloads {
            gw.publish("fieldlink/v1/gw-1/telemetry", QoS::AtLeastOnce, false, p)
                .await
                .unwrap();
        }
        points_seen(&on_a, &want, "a").await;
        points_seen(&on_b, &want, "b").await;

        // A command created through A, acknowledged by the gateway.
        let created = eventually(30, "gw-1's birth at A's command service", || async {
            let r = post(
                a.http,
                "/api/v1/gateways/gw-1/commands",
                &operator,
                &json!({"kind": {"command": "ping"}}),
            )
            .await;
            (r.status == 201).then(|| r.json())
        })
        .await;
        let cid = created["command_id"].as_str().unwrap().to_string();
        for stage in [AckStage::Received, AckStage::Executed] {
            let ack = Ack {
                command_id: id(&cid),
                stage,
                result: None,
                error: None,
                ts_ms: now(),
            };
            gw.publish(
                "fieldlink/v1/gw-1/ack",
                QoS::AtLeastOnce,
                false,
                json::encode(&ack).unwrap(),
            )
            .await
            .unwrap();
        }
        for (client, who) in [(&on_a, "a"), (&on_b, "b")] {
            eventually(
                30,
                &format!("the command executed on {who}'s client"),
                || async {
                    client
                        .command(&cid)
                        .contains(&"executed".to_string())
                        .then_some(())
                },
            )
            .await;
        }

        // An alert: rule created through A, fired by whichever instance ingests the reading,
        // acknowledged and resolved through A.
        let r = post(
            a.http,
            "/api/v1/alert-rules",
            &admin,
            &json!({"name": "hot", "gateway": "gw-1", "device": "boiler", "metric": "temp",
                "condition": {"op": "gt", "threshold": 80.0}, "severity": "critical"}),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.json());
        let rule = r.json()["rule_id"].as_str().unwrap().to_string();
        let mut hot = TelemetryBatch::new(id("gw-1"), 1, 100);
        hot.points
            .push(Point::new(id("boiler"), id("temp"), now(), 85.0));
        gw.publish(
            "fieldlink/v1/gw-1/telemetry",
            QoS::AtLeastOnce,
            false,
            encode_telemetry(&hot, Encoding::Json).unwrap(),
        )
        .await
        .unwrap();
        let (alert_id, _) = eventually(30, "the alert active on b's client", || async {
            on_b.alerts(&rule).into_iter().find(|(_, s)| s == "active")
        })
        .await;
        for action in ["acknowledge", "resolve"] {
            let path = format!("/api/v1/alerts/{alert_id}/{action}");
            let r = post(a.http, &path, &operator, &json!({})).await;
            assert_eq!(r.status, 200, "{action}: {:?}", r.json());
        }
        for (client, who) in [(&on_a, "a"), (&on_b, "b")] {
            eventually(
                30,
                &format!("the alert resolved on {who}'s client"),
                || async {
                    client
                        .alerts(&rule)
                        .iter()
                        .any(|(_, s)| s == "resolved")
                        .then_some(())
                },
            )
            .await;
        }

        // Nothing more arrives late: every event was pushed once to each client.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut expected_points = want.clone();
        expected_points.insert((
            "boiler".into(),
            "temp".into(),
            fieldlink_cloud::clock::rfc3339(hot.points[0].ts_ms),
        ));
        for (client, who) in [(&on_a, "a"), (&on_b, "b")] {
            let statuses: Vec<String> = client
                .of("gateway_status")
                .iter()
                .map(|m| m["gateway"].as_str().unwrap().to_string())
                .collect();
            let mut sorted = statuses.clone();
            sorted.sort();
            assert_eq!(sorted, gateways, "{who}: each birth once");
            assert_once(&client.points(), &expected_points);
            // Every status once and only forward. `received` and `executed` may be ingested
            // by different instances, and one of them then reaches this client after the
            // other: a client is never moved back, so a late `received` is not pushed.
            let seen = client.command(&cid);
            let rank = |s: &String| {
                ["pending", "sent", "received", "executed"]
                    .iter()
                    .position(|r| r == s)
                    .unwrap_or_else(|| panic!("{who}: unexpected status {s} in {seen:?}"))
            };
            let ranks: Vec<usize> = seen.iter().map(rank).collect();
            assert!(
                ranks.first() == Some(&0)
                    && ranks.last() == Some(&3)
                    && ranks.windows(2).all(|w| w[0] < w[1]),
                "{who}: {seen:?}"
            );
            let changes = client.alerts(&rule);
            assert!(changes.iter().all(|(id, _)| *id == alert_id), "{changes:?}");
            let changes: Vec<&str> = changes.iter().map(|(_, s)| s.as_str()).collect();
            assert_eq!(changes, ["active", "acknowledged", "resolved"], "{who}");
            assert!(client.of("lagged").is_empty(), "{who}");
        }

        // Both instances ingested a share, so each client got some of its events from the
        // other instance; each instance also heard (and dropped) its own notifications.
        let mut shares = HashMap::new();
        for (i, who) in [(&a, "a"), (&b, "b")] {
            let telemetry = ingested(i.http, "telemetry").await;
            let status = ingested(i.http, "status").await;
            assert!(
                telemetry >= 1.0 && status >= 1.0,
                "{who}: {telemetry} {status}"
            );
            shares.insert(who, telemetry);
            let outcome = |o: &str| {
                format!("fieldlink_cloud_fanout_notifications_received_total{{outcome=\"{o}\"}}")
            };
            assert!(metric(i.http, &outcome("delivered")).await >= 1.0, "{who}");
            assert!(metric(i.http, &outcome("own")).await >= 1.0, "{who}");
            assert_eq!(metric(i.http, &outcome("undecodable")).await, 0.0, "{who}");
            assert_eq!(
                metric(i.http, "fieldlink_cloud_fanout_notifications_missed_total").await,
                0.0,
                "{who}"
            );
        }
        assert_eq!(shares["a"] + shares["b"], 21.0, "{shares:?}");

        // PostgreSQL restarts: both instances lose their listening connection, report the
        // gap, and listen again.
        tokio::task::block_in_place(|| pg.restart()).expect("restart PostgreSQL");
        for (i, who) in [(&a, "a"), (&b, "b")] {
            eventually(
                60,
                &format!("{who} listening again after the restart"),
                || async {
                    let gaps =
                        metric(i.http, "fieldlink_cloud_fanout_listen_gap_seconds_count").await;
                    let listening = metric(i.http, "fieldlink_cloud_fanout_listening").await;
                    (gaps >= 1.0 && listening == 1.0).then_some(())
                },
            )
            .await;
        }
        // Their clients are told what time the gap covers.
        for (client, who) in [(&on_a, "a"), (&on_b, "b")] {
            let gap = eventually(10, &format!("a gap message on {who}'s client"), || async {
                client.of("gap").pop()
            })
            .await;
            let (from, to) = (gap["from"].as_str().unwrap(), gap["to"].as_str().unwrap());
            assert!(from < to, "{gap}");
        }
        let before = (
            ingested(a.http, "telemetry").await,
            ingested(b.http, "telemetry").await,
        );
        let (payloads, after) = telemetry(now() - 30_000, 200, 10);
        for p in payloads {
            gw.publish("fieldlink/v1/gw-1/telemetry", QoS::AtLeastOnce, false, p)
                .await
                .unwrap();
        }
        let mut all = expected_points.clone();
        all.extend(after.iter().cloned());
        points_seen(&on_a, &all, "a").await;
        points_seen(&on_b, &all, "b").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_once(&on_a.points(), &all);
        assert_once(&on_b.points(), &all);
        assert_eq!(on_a.of("gap").len(), 1, "one gap, one message");
        assert_eq!(on_b.of("gap").len(), 1, "one gap, one message");
        let shares_after = (
            ingested(a.http, "telemetry").await - before.0,
            ingested(b.http, "telemetry").await - before.1,
        );
        assert!(
            shares_after.0 >= 1.0 && shares_after.1 >= 1.0,
            "both ingested after the restart: {shares_after:?}"
        );

        for i in [a, b] {
            i.stop.cancel();
            i.served.await.unwrap().unwrap();
        }
    });
}
