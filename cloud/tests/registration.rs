//! Gateway registration for `require_registration = true`: the `gateway` subcommand of the real
//! binary against SQLite and PostgreSQL files/databases, and the admin routes with ingest from
//! a real Mosquitto: a registered gateway's readings are stored, an unregistered one's are
//! dead-lettered, and after removal (which keeps the history) they are dead-lettered too.

mod api_support;
mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use api_support::{post, request, rt, serve_router};
use common::{batch, encode, id, now_ms, publish_all, topic, wait_for};
use fieldlink_cloud::api::{self, ApiSettings, ApiState};
use fieldlink_cloud::auth::Role;
use fieldlink_cloud::ingest::{self, IngestSettings, MqttSettings, REGISTRATION_REFRESH};
use fieldlink_cloud::metrics::Metrics;
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::store::{GatewayStatus, Store, StoreSpec, TimescaleMode, WriteBatch};
use fieldlink_protocol::Encoding;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Runs `fieldlink-cloud gateway …` with the database in `db` (`KEY`, value): exit success,
/// stdout, stderr.
fn gateway_cli(db: &(&str, String), args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fieldlink-cloud"))
        .arg("gateway")
        .args(args)
        .env(format!("FIELDLINK_CLOUD__DATABASE__{}", db.0), &db.1)
        .env("FIELDLINK_CLOUD__DATABASE__TIMESCALE", "off")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run fieldlink-cloud");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_scenario(db: (&str, String), spec: StoreSpec) {
    let ok = |args: &[&str]| {
        let (success, out, err) = gateway_cli(&db, args);
        assert!(success, "gateway {args:?} failed: {err}");
        out
    };
    assert_eq!(
        ok(&["register", "ps-north", "--name", "North pumping station"]),
        "registered ps-north\n"
    );
    assert_eq!(
        ok(&["register", "ps-north"]),
        "ps-north was already registered\n"
    );
    let (success, _, err) = gateway_cli(&db, &["register", "bad id"]);
    assert!(!success);
    assert!(err.contains("gateway id \"bad id\""), "{err}");
    let (success, _, err) = gateway_cli(&db, &["register", "ps-x", "--name", "  "]);
    assert!(!success);
    assert!(err.contains("name must be 1 to 200 characters"), "{err}");

    // A gateway that sent data before being registered, through the store as ingest writes.
    rt().block_on(async {
        let store = Store::open(&spec).await.unwrap();
        let mut b = WriteBatch::default();
        let t = batch("ps-south", 1, now_ms() - 10_000, 1, 2, 3);
        for p in &t.points {
            b.points.push(fieldlink_cloud::store::PointRow {
                key: Arc::new(fieldlink_cloud::store::SeriesKey {
                    gateway: id("ps-south"),
                    device: p.device.clone(),
                    metric: p.metric.clone(),
                }),
                ts_ms: p.ts_ms,
                value: p.value.clone(),
                quality: p.quality,
            });
        }
        b.seen = vec![(id("ps-south"), now_ms())];
        b.statuses = vec![GatewayStatus {
            gateway: id("ps-south"),
            online: true,
            at_ms: now_ms(),
            boot_epoch: Some(1),
            agent_version: Some("0.1.0".into()),
            config_hash: Some("cafe".into()),
        }];
        store.write(b).await.unwrap();
    });
    assert_eq!(ok(&["register", "ps-south"]), "registered ps-south\n");

    let list = ok(&["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert_eq!(
        lines[0],
        "ps-north\tregistered\toffline\tnever seen\tNorth pumping station"
    );
    assert!(
        lines[1].starts_with("ps-south\tregistered\tonline\tlast seen 20"),
        "{list}"
    );

    // Never heard from: the entry goes. Heard from: the registration goes, the data stays.
    assert_eq!(
        ok(&["remove", "ps-north"]),
        "removed ps-north (it had never connected)\n"
    );
    assert_eq!(
        ok(&["remove", "ps-south"]),
        "ps-south is no longer registered; its devices, series and history are kept\n"
    );
    let (success, _, err) = gateway_cli(&db, &["remove", "ps-south"]);
    assert!(!success);
    assert!(err.contains("gateway ps-south is not registered"), "{err}");
    let list = ok(&["list"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with("ps-south\tunregistered\t"), "{list}");
    rt().block_on(async {
        let store = Store::open(&spec).await.unwrap();
        assert_eq!(store.count_points().await.unwrap(), 6);
        assert_eq!(store.devices(&id("ps-south")).await.unwrap().len(), 1);
    });
}

#[test]
fn gateway_cli_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.db");
    cli_scenario(
        ("SQLITE_PATH", path.display().to_string()),
        StoreSpec::Sqlite { path },
    );
}

#[test]
fn gateway_cli_on_postgres() {
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    let url = pg.create_database("gateway_cli").expect("create database");
    cli_scenario(
        ("URL", url.clone()),
        StoreSpec::postgres(url, TimescaleMode::Off),
    );
}

fn mqtt(port: u16) -> MqttSettings {
    MqttSettings {
        host: "127.0.0.1".into(),
        port,
        client_id: "cloud-registration".into(),
        credentials: None,
        tls: None,
        keep_alive: Duration::from_secs(30),
        max_packet_bytes: 1 << 20,
    }
}

async fn routes_scenario(spec: StoreSpec) {
    let broker = fieldlink_testkit::Mosquitto::start().expect("start mosquitto");
    let store = Arc::new(Store::open(&spec).await.unwrap());
    store.migrate().await.unwrap();
    let db = Arc::new(RecordsDb::open(&spec).await.unwrap());
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let settings = IngestSettings {
        require_registration: true,
        ..Default::default()
    };
    let handle = ingest::start(
        &mqtt(broker.port()),
        settings,
        store.clone(),
        Arc::new(Metrics::new()),
        stop.clone(),
        &tracker,
    )
    .unwrap();
    let state = ApiState::new(store.clone(), db).with_ingest(handle.clone());
    let mut tokens = Vec::new();
    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        tokens.push((role, state.tokens.create("t", role).await.unwrap().1));
    }
    let admin = tokens[2].1.clone();
    let (a, _http) = serve_router(api::router(state, &ApiSettings::default())).await;

    // Admin only.
    let body = json!({"gateway": "gw-reg", "name": "Registered one"});
    for (role, secret) in &tokens[..2] {
        assert_eq!(
            post(a, "/api/v1/gateways", secret, &body).await.status,
            403,
            "{role}"
        );
        let auth = format!("Bearer {secret}");
        let r = request(
            a,
            "DELETE",
            "/api/v1/gateways/gw-reg",
            &[("Authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(r.status, 403, "{role}");
    }
    let r = post(a, "/api/v1/gateways", &admin, &body).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let g = r.json();
    assert_eq!(
        (g["gateway"].as_str(), g["registered"].as_bool()),
        (Some("gw-reg"), Some(true))
    );
    assert_eq!(g["name"], "Registered one");
    assert!(g["last_seen"].is_null());
    let r = post(a, "/api/v1/gateways", &admin, &json!({"gateway": "gw-reg"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["name"],
        "Registered one",
        "an absent name keeps the old one"
    );
    for bad in [
        json!({"gateway": "bad id"}),
        json!({"gateway": "gw-x", "name": ""}),
    ] {
        let r = post(a, "/api/v1/gateways", &admin, &bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["code"], "bad_request");
    }
    let r = post(a, "/api/v1/gateways", &admin, &json!({"name": "no id"})).await;
    assert_eq!(r.status, 422);

    wait_for("broker connection", 20, || {
        let h = handle.clone();
        async move { h.broker_connected().then_some(()).ok_or("down".to_string()) }
    })
    .await;
    let dead_unregistered = || {
        let store = store.clone();
        async move {
            store
                .dead_letters(1_000)
                .await
                .unwrap()
                .iter()
                .filter(|d| d.reason == "unregistered")
                .map(|d| d.topic.clone())
                .collect::<Vec<_>>()
        }
    };
    // Publish until the subscription is in place: the registered gateway's points are stored,
    // the stranger's are dead-lettered.
    let t0 = now_ms() - 60_000;
    let mut seq = 0;
    wait_for("registered gateway stored", 30, || {
        seq += 1;
        let store = store.clone();
        let port = broker.port();
        let msgs = vec![
            (
                topic("stranger", "telemetry"),
                encode(&batch("stranger", seq, t0, 1, 1, 1), Encoding::Binary),
            ),
            (
                topic("gw-reg", "telemetry"),
                encode(&batch("gw-reg", seq, t0, 1, 1, 1), Encoding::Binary),
            ),
        ];
        async move {
            publish_all("127.0.0.1", port, "pub-reg", msgs).await;
            let n = store.count_points().await.unwrap();
            (n > 0).then_some(()).ok_or(format!("{n} points"))
        }
    })
    .await;
    let stored = store.count_points().await.unwrap();
    let dead = dead_unregistered().await;
    assert!(
        !dead.is_empty() && dead.iter().all(|t| t.contains("/stranger/")),
        "{dead:?}"
    );
    assert!(store.gateway(&id("stranger")).await.unwrap().is_none());

    // Removed: its history stays readable, its new messages are refused within the refresh.
    let auth = format!("Bearer {admin}");
    let del = |path: &'static str| {
        let auth = auth.clone();
        async move { request(a, "DELETE", path, &[("Authorization", &auth)], None).await }
    };
    assert_eq!(del("/api/v1/gateways/gw-reg").await.status, 204);
    let again = del("/api/v1/gateways/gw-reg").await;
    assert_eq!(again.status, 404);
    assert_eq!(again.json()["code"], "not_found");
    assert_eq!(del("/api/v1/gateways/bad%20id").await.status, 400);
    let g = api_support::get(a, "/api/v1/gateways/gw-reg", &admin)
        .await
        .json();
    assert_eq!(g["registered"], false, "{g}");
    tokio::time::sleep(REGISTRATION_REFRESH + Duration::from_millis(500)).await;
    publish_all(
        "127.0.0.1",
        broker.port(),
        "pub-reg",
        vec![(
            topic("gw-reg", "telemetry"),
            encode(
                &batch("gw-reg", 1_000, t0 + 5_000, 1, 1, 1),
                Encoding::Binary,
            ),
        )],
    )
    .await;
    wait_for(
        "the removed gateway's message dead-lettered",
        20,
        || async {
            let dead = dead_unregistered().await;
            dead.iter()
                .any(|t| t.contains("/gw-reg/"))
                .then_some(())
                .ok_or(format!("{dead:?}"))
        },
    )
    .await;
    assert_eq!(store.count_points().await.unwrap(), stored);

    // Registered again: accepted at once.
    assert_eq!(post(a, "/api/v1/gateways", &admin, &body).await.status, 201);
    publish_all(
        "127.0.0.1",
        broker.port(),
        "pub-reg",
        vec![(
            topic("gw-reg", "telemetry"),
            encode(
                &batch("gw-reg", 1_001, t0 + 9_000, 1, 1, 1),
                Encoding::Binary,
            ),
        )],
    )
    .await;
    wait_for("the registered gateway stored again", 20, || {
        let store = store.clone();
        async move {
            let n = store.count_points().await.unwrap();
            (n == stored + 1).then_some(()).ok_or(format!("{n} points"))
        }
    })
    .await;
    stop.cancel();
    tracker.close();
    tracker.wait().await;
}

#[test]
fn admin_routes_and_required_registration_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(routes_scenario(StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    }));
}

#[test]
fn admin_routes_and_required_registration_on_postgres() {
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    let url = pg.create_database("registration").expect("create database");
    rt().block_on(routes_scenario(StoreSpec::postgres(
        url,
        TimescaleMode::Off,
    )));
}
