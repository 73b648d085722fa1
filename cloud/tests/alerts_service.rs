//! Alerts end to end in a running cloud (`service::serve`, configured from TOML) on a real
//! Mosquitto, with a plain MQTT client playing the gateway:
//! - a value rule fires when the value crosses, does not flap while it hovers between the clear
//!   threshold and the threshold, and resolves when it comes back; on REST and the WebSocket;
//! - a no_data rule fires when a series goes silent and resolves when it reports again;
//! - a gateway_offline rule goes pending on the gateway's offline status, fires, and resolves
//!   on its next birth;
//! - every fired and resolved transition reaches a webhook receiver (a real HTTP server that
//!   fails its first two requests, so the retries and every attempt are recorded and listed
//!   over REST) and an SMTP sink (aiosmtpd);
//! - rule validation names the field.
//!
//! On SQLite and on PostgreSQL.

mod api_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use api_support::{get, post, rt, ws_request};
use fieldlink_cloud::auth::{Role, TokenStore};
use fieldlink_cloud::config::{load_raw, Settings};
use fieldlink_cloud::records::RecordsDb;
use fieldlink_protocol::{encode_telemetry, Encoding, Ident, Point, TelemetryBatch};
use fieldlink_testkit::sinks::{SmtpSink, WebhookSink};
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

#[test]
fn alerts_and_notifications_in_a_running_cloud_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite_path = {:?}", dir.path().join("cloud.db"));
    rt().block_on(scenario(db, "sqlite"));
}

#[test]
fn alerts_and_notifications_in_a_running_cloud_on_postgres() {
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    let url = pg
        .create_database("alerts_service")
        .expect("create database");
    rt().block_on(scenario(
        format!("url = {url:?}\ntimescale = \"off\""),
        "postgres",
    ));
}

const BIRTH: &str = r#"{"state":"online","gateway":"gw-1","boot_epoch":1,"ts_ms":0,
    "agent_version":"0.1.0","config_hash":"abc","devices":[
    {"name":"boiler","points":[{"name":"temp","unit":"degC","kind":"number"}]},
    {"name":"pump","points":[{"name":"flow","unit":"m3/h","kind":"number"}]}]}"#;
const DEATH: &str = r#"{"state":"offline","gateway":"gw-1","boot_epoch":1}"#;

struct Gateway {
    client: AsyncClient,
    seq: u64,
}

impl Gateway {
    async fn status(&self, body: &str) {
        self.client
            .publish("fieldlink/v1/gw-1/status", QoS::AtLeastOnce, true, body)
            .await
            .unwrap();
    }
    async fn send(&mut self, device: &str, metric: &str, values: &[f64]) {
        let mut b = TelemetryBatch::new(id("gw-1"), 1, self.seq);
        self.seq += 1;
        let t = now();
        for (i, v) in values.iter().enumerate() {
            b.points
                .push(Point::new(id(device), id(metric), t + i as i64, *v));
        }
        self.client
            .publish(
                "fieldlink/v1/gw-1/telemetry",
                QoS::AtLeastOnce,
                false,
                encode_telemetry(&b, Encoding::Json).unwrap(),
            )
            .await
            .unwrap();
    }
}

/// Alert statuses seen on the WebSocket, by rule, in order.
#[derive(Default)]
struct Seen {
    by_rule: HashMap<String, Vec<String>>,
}

impl Seen {
    fn of(&self, rule: &str) -> Vec<String> {
        self.by_rule.get(rule).cloned().unwrap_or_default()
    }
}

async fn scenario(database: String, backend: &str) {
    let broker = fieldlink_testkit::Mosquitto::start().expect("start mosquitto");
    let hook = WebhookSink::failing(2, Duration::ZERO);
    let smtp = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cloud.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[database]
{database}

[mqtt]
url = "mqtt://127.0.0.1:{mqtt}"
client_id = "cloud-alerts-{backend}"

[http]
listen = "127.0.0.1:0"

[alerts]
check_interval_ms = 200

[notifications]
retry_initial_ms = 100
retry_max_secs = 1
poll_interval_ms = 200
attempt_timeout_secs = 5

[[notifications.webhook]]
name = "hook"
url = "{hook}"
headers = {{ Authorization = "Bearer hook-secret" }}

[[notifications.email]]
name = "mail"
to = ["On Call <oncall@plant.example>"]
min_severity = "critical"

[notifications.smtp]
host = "127.0.0.1"
port = {smtp}
security = "none"
from = "Fieldlink <alerts@plant.example>"
"#,
            mqtt = broker.port(),
            hook = hook.url(),
            smtp = smtp.port,
        ),
    )
    .unwrap();
    let settings = Settings::from_raw(load_raw(Some(&config), Vec::new()).unwrap()).unwrap();
    let store_spec = settings.store.clone();
    let stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let served = tokio::spawn(fieldlink_cloud::service::serve(
        settings,
        stop.clone(),
        Some(tx),
    ));
    let a = rx.await.expect("the cloud started").http;
    let tokens = TokenStore::new(Arc::new(RecordsDb::open(&store_spec).await.unwrap()));
    let admin = tokens.create("a", Role::Admin).await.unwrap().1;
    let operator = tokens.create("o", Role::Operator).await.unwrap().1;
    let viewer = tokens.create("v", Role::Viewer).await.unwrap().1;

    // Validation names the field.
    for (body, field) in [
        (
            json!({"name": "x", "kind": "no_data", "metric": "flow", "severity": "info"}),
            "silent_secs",
        ),
        (
            json!({"name": "x", "condition": {"op": "gt", "threshold": 1.0},
                "severity": "info", "receivers": ["pager"]}),
            "receivers[0]",
        ),
        (
            json!({"name": "x", "kind": "gateway_offline", "silent_secs": 5,
                "metric": "flow", "severity": "info"}),
            "metric",
        ),
    ] {
        let r = post(a, "/api/v1/alert-rules", &admin, &body).await;
        assert_eq!(r.status, 400, "{body}");
        let message = r.json()["message"].as_str().unwrap().to_string();
        assert!(message.starts_with(field), "{body}: {message}");
    }
    let receivers = get(a, "/api/v1/notification-receivers", &admin)
        .await
        .json();
    assert_eq!(receivers["receivers"], json!(["hook", "mail"]));

    let mut rule_ids = HashMap::new();
    for (key, body) in [
        (
            "value",
            json!({"name": "boiler too hot", "gateway": "gw-1", "device": "boiler",
                "metric": "temp", "condition": {"op": "gt", "threshold": 80.0}, "clear": 75.0,
                "severity": "critical"}),
        ),
        (
            "no_data",
            json!({"name": "flow silent", "kind": "no_data", "gateway": "gw-1",
                "device": "pump", "metric": "flow", "silent_secs": 2, "severity": "warning",
                "receivers": ["hook"]}),
        ),
        (
            "offline",
            json!({"name": "gateway down", "kind": "gateway_offline", "gateway": "gw-1",
                "silent_secs": 1, "severity": "warning", "receivers": ["hook"]}),
        ),
    ] {
        let r = post(a, "/api/v1/alert-rules", &admin, &body).await;
        assert_eq!(r.status, 201, "{:?}", r.json());
        rule_ids.insert(key, r.json()["rule_id"].as_str().unwrap().to_string());
    }

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
    let seen = Arc::new(tokio::sync::Mutex::new(Seen::default()));
    {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = ws.next().await {
                let Message::Text(t) = m else { continue };
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "alert" {
                    let rule = v["alert"]["rule_id"].as_str().unwrap().to_string();
                    let status = v["alert"]["status"].as_str().unwrap().to_string();
                    seen.lock()
                        .await
                        .by_rule
                        .entry(rule)
                        .or_default()
                        .push(status);
                }
            }
        });
    }

    let mut opts = MqttOptions::new("gw-1-sim", "127.0.0.1", broker.port());
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut el) = AsyncClient::new(opts, 64);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let mut gw = Gateway { client, seq: 0 };
    gw.status(BIRTH).await;
    gw.send("pump", "flow", &[5.0]).await;

    // The value rule: crosses, hovers in the band, comes back.
    gw.send("boiler", "temp", &[70.0]).await;
    gw.send("boiler", "temp", &[85.0]).await;
    for values in [[79.0, 82.0], [78.0, 81.0], [76.0, 83.0]] {
        gw.send("boiler", "temp", &values).await;
    }
    gw.send("boiler", "temp", &[70.0]).await;
    let value_rule = rule_ids["value"].clone();
    let statuses = wait(&seen, &value_rule, "resolved").await;
    assert_eq!(statuses, ["active", "resolved"], "one alert, no flapping");

    // The no_data rule: flow has been silent since the first reading; it fires, then flow
    // reports again (and keeps reporting) and it resolves.
    let no_data = rule_ids["no_data"].clone();
    wait(&seen, &no_data, "active").await;
    let reporting = {
        let client = gw.client.clone();
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            let mut g = Gateway { client, seq: 1_000 };
            while !s.is_cancelled() {
                g.send("pump", "flow", &[6.0]).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        stop
    };
    let statuses = wait(&seen, &no_data, "resolved").await;
    assert_eq!(&statuses[..2], ["active", "resolved"]);

    // The gateway_offline rule: pending on the offline status, fires, resolves on the birth.
    let offline = rule_ids["offline"].clone();
    gw.status(DEATH).await;
    wait(&seen, &offline, "active").await;
    gw.status(BIRTH).await;
    let statuses = wait(&seen, &offline, "resolved").await;
    assert_eq!(statuses.last().map(String::as_str), Some("resolved"));
    assert_eq!(
        statuses.iter().filter(|s| *s == "active").count(),
        1,
        "{statuses:?}"
    );
    if statuses.len() == 3 {
        assert_eq!(statuses[0], "pending", "{statuses:?}");
    }
    reporting.cancel();

    // REST shows the three alerts, all resolved.
    let list = get(a, "/api/v1/alerts?gateway=gw-1", &viewer).await.json();
    let items = list["items"].as_array().unwrap();
    for rule in [&value_rule, &no_data, &offline] {
        let mine: Vec<&Value> = items.iter().filter(|i| i["rule_id"] == **rule).collect();
        assert!(!mine.is_empty(), "{rule}: {list}");
        assert_eq!(mine[mine.len() - 1]["status"], "resolved", "{list}");
    }
    let off = items.iter().find(|i| i["rule_id"] == *offline).unwrap();
    assert_eq!(
        (off["kind"].as_str(), off["device"].as_str()),
        (Some("gateway_offline"), Some(""))
    );

    // Notifications: the webhook got fired and resolved of each alert, after retries; every
    // attempt is listed; the mail receiver (critical only) got the value alert's two.
    assert_eq!(get(a, "/api/v1/notifications", &viewer).await.status, 403);
    let page = api_support::eventually(30, "every notification delivered", || async {
        let p = get(a, "/api/v1/notifications?limit=100", &operator)
            .await
            .json();
        let items = p["items"].as_array().cloned().unwrap_or_default();
        let done = items.len() >= 8 && items.iter().all(|n| n["status"] == "delivered");
        done.then_some(items)
    })
    .await;
    let events = |receiver: &str, rule: &str| -> Vec<String> {
        let mut e: Vec<String> = page
            .iter()
            .filter(|n| n["receiver"] == receiver && n["rule_id"] == rule)
            .map(|n| n["event"].as_str().unwrap().to_string())
            .collect();
        e.sort();
        e
    };
    assert_eq!(events("hook", &value_rule), ["fired", "resolved"]);
    assert_eq!(events("mail", &value_rule), ["fired", "resolved"]);
    assert_eq!(events("hook", &no_data)[..2], ["fired", "resolved"]);
    assert_eq!(events("hook", &offline), ["fired", "resolved"]);
    assert!(
        events("mail", &no_data).is_empty(),
        "warning is below mail's min_severity"
    );
    let hook_attempts: Vec<&Value> = page
        .iter()
        .filter(|n| n["receiver"] == "hook")
        .flat_map(|n| n["attempts"].as_array().unwrap())
        .collect();
    let failed: Vec<&&Value> = hook_attempts
        .iter()
        .filter(|a| a["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 2, "{hook_attempts:?}");
    assert!(failed.iter().all(|a| a["detail"] == "HTTP 500"));
    assert!(page
        .iter()
        .all(|n| n["attempts"].as_array().unwrap().last().unwrap()["outcome"] == "delivered"));
    assert!(page
        .iter()
        .any(|n| n["attempts"].as_array().unwrap().len() >= 2));

    let got = hook.received();
    let ok: Vec<_> = got.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        ok.len(),
        page.iter().filter(|n| n["receiver"] == "hook").count(),
        "each hook notification delivered once"
    );
    for r in &got {
        assert_eq!(r.authorization.as_deref(), Some("Bearer hook-secret"));
        assert_eq!(
            r.notification_header.as_deref(),
            r.body["notification_id"].as_str()
        );
    }
    let fired = ok
        .iter()
        .find(|r| r.body["rule_id"] == *value_rule && r.body["event"] == "fired")
        .expect("the value alert's fired notification");
    assert_eq!(fired.body["alert"]["last_value"], 85.0);
    assert_eq!(fired.body["alert"]["severity"], "critical");
    assert_eq!(fired.body["rule_name"], "boiler too hot");

    let mails = api_support::eventually(10, "two mails", || async {
        let m = smtp.messages();
        (m.len() >= 2).then_some(m)
    })
    .await;
    assert!(
        mails
            .iter()
            .any(|m| m.contains("FIRING critical: boiler too hot on gw-1/boiler/temp")),
        "{mails:?}"
    );
    assert!(mails
        .iter()
        .any(|m| m.contains("RESOLVED critical: boiler too hot")));
    assert!(mails.iter().all(|m| m.contains("oncall@plant.example")));

    stop.cancel();
    served.await.unwrap().unwrap();
}

/// Waits until the WebSocket showed `status` for the rule; returns its statuses so far.
async fn wait(seen: &Arc<tokio::sync::Mutex<Seen>>, rule: &str, status: &str) -> Vec<String> {
    api_support::eventually(30, &format!("{rule} {status} on the WebSocket"), || async {
        let s = seen.lock().await.of(rule);
        s.iter().any(|x| x == status).then_some(s)
    })
    .await
}
