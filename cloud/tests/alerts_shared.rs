//! Several cloud instances on one PostgreSQL: two alert engines, each with its own
//! connection, as two instances sharing the ingest would run.
//! - Both see the same points at the same time: each transition is stored once, with its
//!   notifications queued once.
//! - A shared subscription splits one series between them: they behave as one evaluator (a
//!   spike cancelled on one is not fired by the other from a stale state).
//! - Both check a gateway that went offline at the same moment: one alert, fired once,
//!   resolved once.
//! - A restarted engine continues the alert another left open; an operator on one instance
//!   acknowledges an alert opened by the other.
//! - Two notifiers drain one outbox: every notification reaches the webhook once.

mod api_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use api_support::{eventually, rt};
use fieldlink_cloud::alerts::{AlertEngine, RuleSpec, Severity, SilenceReads};
use fieldlink_cloud::notify::{Notifier, NotifySettings, Outbox, Routing, WebhookReceiver};
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::store::{
    GatewayStatus, PointRow, SeriesKey, Store, StoreSpec, TimescaleMode, WriteBatch,
};
use fieldlink_protocol::{Ident, Quality, Value};
use fieldlink_testkit::sinks::WebhookSink;
use serde_json::json;
use tokio::sync::Notify;

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn batch(device: &str, points: &[(i64, f64)]) -> WriteBatch {
    let key = Arc::new(SeriesKey {
        gateway: id("gw-1"),
        device: id(device),
        metric: id("temp"),
    });
    WriteBatch {
        points: points
            .iter()
            .map(|(t, v)| PointRow {
                key: key.clone(),
                ts_ms: *t,
                value: Value::Number(*v),
                quality: Quality::Good,
            })
            .collect(),
        ..WriteBatch::default()
    }
}

fn routing() -> Routing {
    Routing::new(vec![("hook".into(), Severity::Info)])
}

struct Shared {
    spec: StoreSpec,
    store: Arc<Store>,
    _pg: fieldlink_testkit::Postgres,
}

async fn shared(name: &str) -> Shared {
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    let url = pg.create_database(name).expect("create database");
    let spec = StoreSpec::postgres(url, TimescaleMode::Off);
    let store = Store::open(&spec).await.unwrap();
    store.migrate().await.unwrap();
    Shared {
        spec,
        store: Arc::new(store),
        _pg: pg,
    }
}

async fn engine(spec: &StoreSpec) -> (AlertEngine, Arc<RecordsDb>) {
    let db = Arc::new(RecordsDb::open(spec).await.unwrap());
    let e = AlertEngine::load_with(db.clone(), routing(), Arc::new(Notify::new()))
        .await
        .unwrap();
    (e, db)
}

async fn add_rule(e: &AlertEngine, id: &str, rule: serde_json::Value) {
    let spec: RuleSpec = serde_json::from_value(rule).unwrap();
    spec.validate(&e.receiver_names()).unwrap();
    e.records().insert_rule(id, &spec, now()).await.unwrap();
}

async fn transitions_of_rule(e: &AlertEngine, rule: &str) -> Vec<(String, Vec<String>)> {
    let alerts = e
        .records()
        .alerts(None, None, None, 1_000, 0)
        .await
        .unwrap();
    let mut out = Vec::new();
    for a in alerts.iter().rev().filter(|a| a.rule_id == rule) {
        let t = e.records().transitions(&a.alert_id).await.unwrap();
        out.push((
            a.alert_id.clone(),
            t.into_iter().map(|(_, name)| name).collect(),
        ));
    }
    out
}

async fn queued(db: &Arc<RecordsDb>) -> Vec<(String, String)> {
    Outbox::new(db.clone())
        .list(None, None, 1_000, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.alert_id, n.event))
        .collect()
}

#[test]
fn two_engines_seeing_the_same_points_store_each_transition_once() {
    rt().block_on(async {
        let s = shared("same_points").await;
        let (a, db) = engine(&s.spec).await;
        let (b, _) = engine(&s.spec).await;
        add_rule(
            &a,
            "r-hot",
            json!({"name": "hot", "metric": "temp", "condition": {"op": "gt", "threshold": 80.0},
                "clear": 75.0, "severity": "critical"}),
        )
        .await;
        a.reload_rules().await.unwrap();
        b.reload_rules().await.unwrap();
        let t0 = now() - 60_000;
        let series: Vec<Vec<(i64, f64)>> = vec![
            vec![(t0, 70.0)],
            vec![(t0 + 1_000, 85.0)],
            vec![(t0 + 2_000, 79.0), (t0 + 3_000, 82.0)],
            vec![(t0 + 4_000, 76.0)],
            vec![(t0 + 5_000, 70.0)],
        ];
        for round in 0..10 {
            let device = format!("boiler{round}");
            for points in &series {
                let batch = batch(&device, points);
                tokio::join!(a.evaluate(&batch), b.evaluate(&batch));
            }
        }
        let per_alert = transitions_of_rule(&a, "r-hot").await;
        assert_eq!(per_alert.len(), 10, "one alert per series: {per_alert:?}");
        for (alert, t) in &per_alert {
            assert_eq!(t, &["active", "resolved"], "{alert}");
        }
        let mut q = queued(&db).await;
        q.sort();
        q.dedup();
        assert_eq!(
            q.len(),
            20,
            "fired and resolved per alert, once each: {q:?}"
        );
        assert_eq!(queued(&db).await.len(), 20);
    });
}

#[test]
fn a_series_split_between_engines_behaves_as_one() {
    rt().block_on(async {
        let s = shared("split_series").await;
        let (a, _) = engine(&s.spec).await;
        let (b, _) = engine(&s.spec).await;
        add_rule(
            &b,
            "r-hold",
            json!({"name": "hot for 2 s", "metric": "temp", "hold_secs": 2,
                "condition": {"op": "gt", "threshold": 80.0}, "clear": 75.0,
                "severity": "warning"}),
        )
        .await;
        a.reload_rules().await.unwrap();
        b.reload_rules().await.unwrap();
        let t0 = now() - 60_000;
        // Alternating instances, as a shared subscription hands out one gateway's messages.
        let steps: [(&AlertEngine, i64, f64); 6] = [
            (&a, 0, 90.0),     // pending
            (&b, 1_000, 70.0), // cancelled: b must know a's pending
            (&a, 2_500, 90.0), // pending again, from 2.5 s
            (&b, 3_000, 91.0), // still pending (held 0.5 s)
            (&a, 5_000, 92.0), // fires (held 2.5 s)
            (&b, 6_000, 70.0), // resolves
        ];
        for (e, t, v) in steps {
            e.evaluate(&batch("boiler", &[(t0 + t, v)])).await;
        }
        // A reading older than the last change is a late replay: not evaluated.
        a.evaluate(&batch("boiler", &[(t0 + 5_500, 95.0)])).await;
        let all: Vec<String> = transitions_of_rule(&a, "r-hold")
            .await
            .into_iter()
            .flat_map(|(_, t)| t)
            .collect();
        assert_eq!(
            all,
            ["pending", "cancelled", "pending", "active", "resolved"]
        );
    });
}

#[test]
fn two_engines_checking_an_offline_gateway_fire_and_resolve_once() {
    rt().block_on(async {
        let s = shared("offline_gateway").await;
        let (a, db_a) = engine(&s.spec).await;
        let (b, db_b) = engine(&s.spec).await;
        add_rule(
            &a,
            "r-down",
            json!({"name": "down", "kind": "gateway_offline", "gateway": "gw-1",
                "silent_secs": 1, "severity": "critical"}),
        )
        .await;
        let status = |online: bool, at_ms: i64| WriteBatch {
            statuses: vec![GatewayStatus {
                gateway: id("gw-1"),
                online,
                at_ms,
                boot_epoch: Some(1),
                agent_version: None,
                config_hash: None,
            }],
            ..WriteBatch::default()
        };
        s.store.write(status(false, now() - 5_000)).await.unwrap();
        let (ra, rb) = (SilenceReads::new(db_a.clone()), SilenceReads::new(db_b));
        for _ in 0..5 {
            tokio::join!(a.check(&ra), b.check(&rb));
        }
        s.store.write(status(true, now())).await.unwrap();
        for _ in 0..5 {
            tokio::join!(a.check(&ra), b.check(&rb));
        }
        let per_alert = transitions_of_rule(&a, "r-down").await;
        assert_eq!(per_alert.len(), 1, "{per_alert:?}");
        assert_eq!(per_alert[0].1, ["active", "resolved"]);
        let alert = a.records().alert(&per_alert[0].0).await.unwrap().unwrap();
        assert_eq!((alert.device.as_str(), alert.metric.as_str()), ("", ""));
        assert_eq!(queued(&db_a).await.len(), 2);
    });
}

#[test]
fn a_restarted_engine_continues_and_operators_act_through_either() {
    rt().block_on(async {
        let s = shared("restart").await;
        let t0 = now() - 60_000;
        let (a, _) = engine(&s.spec).await;
        add_rule(
            &a,
            "r-hot",
            json!({"name": "hot", "metric": "temp", "condition": {"op": "gt", "threshold": 80.0},
                "clear": 75.0, "severity": "critical", "repeat_secs": 1}),
        )
        .await;
        a.reload_rules().await.unwrap();
        a.evaluate(&batch("boiler", &[(t0, 90.0)])).await;
        a.evaluate(&batch("pump", &[(t0, 90.0)])).await;
        drop(a);

        let (c, db) = engine(&s.spec).await;
        c.evaluate(&batch("boiler", &[(t0 + 2_000, 91.0)])).await; // repeats
        c.evaluate(&batch("boiler", &[(t0 + 3_000, 70.0)])).await; // resolves
        let per_alert = transitions_of_rule(&c, "r-hot").await;
        let boiler = per_alert
            .iter()
            .find(|(id, _)| {
                futures::executor::block_on(c.records().alert(id))
                    .unwrap()
                    .unwrap()
                    .device
                    == "boiler"
            })
            .unwrap();
        assert_eq!(boiler.1, ["active", "repeated", "resolved"]);

        // The pump's alert, opened by the first engine, acknowledged through a second one
        // and resolved through the restarted one.
        let (d, _) = engine(&s.spec).await;
        let pump = per_alert.iter().find(|(id, _)| id != &boiler.0).unwrap();
        let acked = d.operator(&pump.0, false).await.unwrap().unwrap();
        assert_eq!(acked.status, "acknowledged");
        assert!(d.operator(&pump.0, false).await.unwrap().is_none());
        // Acknowledged: no more repeats.
        c.evaluate(&batch("pump", &[(t0 + 5_000, 95.0)])).await;
        let resolved = c.operator(&pump.0, true).await.unwrap().unwrap();
        assert_eq!(resolved.status, "resolved");
        let t = c.records().transitions(&pump.0).await.unwrap();
        let names: Vec<&str> = t.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["active", "acknowledged", "resolved_by_hand"]);
        let events: HashMap<String, usize> =
            queued(&db)
                .await
                .into_iter()
                .fold(HashMap::new(), |mut m, (_, e)| {
                    *m.entry(e).or_default() += 1;
                    m
                });
        assert_eq!(events.get("fired"), Some(&2));
        assert_eq!(events.get("repeated"), Some(&1));
        assert_eq!(events.get("resolved"), Some(&2));
    });
}

#[test]
fn two_notifiers_deliver_each_notification_once() {
    rt().block_on(async {
        let s = shared("two_notifiers").await;
        let hook = WebhookSink::failing(0, Duration::from_millis(30));
        let (e, db) = engine(&s.spec).await;
        add_rule(
            &e,
            "r-hot",
            json!({"name": "hot", "metric": "temp", "condition": {"op": "gt", "threshold": 80.0},
                "severity": "critical"}),
        )
        .await;
        e.reload_rules().await.unwrap();
        let t0 = now() - 60_000;
        for i in 0..30 {
            e.evaluate(&batch(&format!("boiler{i}"), &[(t0, 90.0)]))
                .await;
        }
        assert_eq!(queued(&db).await.len(), 30);
        let settings = NotifySettings {
            webhooks: vec![WebhookReceiver {
                name: "hook".into(),
                url: hook.url().parse().unwrap(),
                headers: Vec::new(),
                min_severity: Severity::Info,
            }],
            max_in_flight: 4,
            poll_interval: Duration::from_millis(20),
            ..NotifySettings::default()
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let mut runs = Vec::new();
        for name in ["cloud-a", "cloud-b"] {
            let db = Arc::new(RecordsDb::open(&s.spec).await.unwrap());
            let n = Notifier::new(db, settings.clone(), name).unwrap();
            runs.push(tokio::spawn(n.run(stop.clone(), Duration::from_secs(5))));
        }
        let views = eventually(60, "30 notifications delivered", || async {
            let v = Outbox::new(db.clone())
                .list(None, None, 100, 0)
                .await
                .unwrap();
            v.iter().all(|n| n.status == "delivered").then_some(v)
        })
        .await;
        stop.cancel();
        for r in runs {
            r.await.unwrap();
        }
        let got = hook.received();
        let mut per_id: HashMap<String, usize> = HashMap::new();
        for r in &got {
            *per_id
                .entry(r.body["notification_id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        assert_eq!(per_id.len(), 30);
        assert!(per_id.values().all(|n| *n == 1), "{per_id:?}");
        let instances: std::collections::HashSet<&str> = views
            .iter()
            .map(|n| {
                assert_eq!(n.attempts.len(), 1, "{n:?}");
                n.attempts[0].instance.as_str()
            })
            .collect();
        assert!(!instances.is_empty());
    });
}
