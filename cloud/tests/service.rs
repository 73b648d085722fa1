//! The binary: subcommands, exit codes, configuration errors, a full `serve` on SQLite with
//! the embedded broker (ingest, health, metrics, graceful stop that flushes), and concurrent
//! migrations against one empty PostgreSQL database.

mod common;

use std::process::Command;

use common::*;
use fieldlink_protocol::Encoding;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fieldlink-cloud"));
    c.env_remove("FIELDLINK_CLOUD_CONFIG");
    c
}

#[test]
fn subcommands_and_exit_codes() {
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));

    let out = bin().arg("print-default-config").output().unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.toml");
    std::fs::write(&path, &out.stdout).unwrap();
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(&path, "[ingest]\nflush_max_points = 0\n").unwrap();
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ingest.flush_max_points"));

    let out = bin()
        .arg("check-config")
        .env("FIELDLINK_CLOUD__MQTT__URL", "mqtts://broker:8883")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mqtt.ca_file"));

    let out = bin()
        .args(["check-config", "--config", "/nonexistent/cloud.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_sqlite_with_the_embedded_broker_and_stop_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let mqtt_port = fieldlink_testkit::free_port();
    let mut cloud = CloudProcess::serve(&[
        ("DATABASE__SQLITE_PATH", db.display().to_string()),
        ("MQTT__EMBEDDED_LISTEN", format!("127.0.0.1:{mqtt_port}")),
        // Nothing flushes on its own within the test: only the stop can.
        ("INGEST__FLUSH_MAX_DELAY_MS", "600000".into()),
        ("INGEST__FLUSH_IDLE_MS", "600000".into()),
        ("INGEST__FLUSH_MAX_POINTS", "1000000".into()),
    ]);
    cloud.ready().await;
    assert_eq!(http_get(cloud.http, "/health/live").await.unwrap().0, 200);
    let (_, ready) = http_get(cloud.http, "/health/ready").await.unwrap();
    assert!(ready.contains("\"backend\":\"sqlite\""), "{ready}");

    // Readiness means subscribed, so a single publish reaches the cloud. Eight messages stay
    // under the embedded broker's window of unacknowledged deliveries.
    let t0 = now_ms() - 10_000;
    let mut msgs = Vec::new();
    for seq in 0..8u64 {
        let b = batch("edge-1", seq, t0 + seq as i64 * 10_000, 2, 5, 10);
        msgs.push((topic("edge-1", "telemetry"), encode(&b, Encoding::Binary)));
    }
    publish_all("127.0.0.1", mqtt_port, "pub-1", msgs).await;
    let cloud_ref = &cloud;
    wait_for("points received", 60, || async move {
        let n = cloud_ref
            .metric("fieldlink_cloud_points_received_total")
            .await;
        (n >= 800.0).then_some(()).ok_or(format!("{n} received"))
    })
    .await;
    let text = cloud.metrics().await;
    assert!(
        text.contains("fieldlink_cloud_write_latency_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("fieldlink_cloud_ingest_lag_seconds_count"),
        "{text}"
    );
    assert_eq!(
        cloud.metric("fieldlink_cloud_write_batches_total").await,
        0.0
    );

    let status = cloud.sigterm_and_wait();
    assert!(status.success(), "{status}");
    let store = fieldlink_cloud::store::Store::open(&fieldlink_cloud::store::StoreSpec::Sqlite {
        path: db.clone(),
    })
    .await
    .unwrap();
    assert_eq!(store.count_points().await.unwrap(), 800);
}

#[test]
fn concurrent_migrations_on_an_empty_database_apply_each_version_once() {
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    let url = pg.create_database("concurrent").unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            bin()
                .arg("migrate")
                .env("FIELDLINK_CLOUD__DATABASE__URL", &url)
                .env("RUST_LOG", "warn")
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Each version once, all in plain mode, and ingest's versions among them.
    let rows = pg
        .psql(
            "concurrent",
            "SELECT count(*) = count(DISTINCT version), bool_and(mode = 'postgres'), \
             count(*) FILTER (WHERE version IN (1, 2, 3)) FROM schema_migrations",
        )
        .unwrap();
    assert_eq!(rows.trim(), "t|t|3");
    // And once more, on a database that is current.
    let out = bin()
        .arg("migrate")
        .env("FIELDLINK_CLOUD__DATABASE__URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success());
}
