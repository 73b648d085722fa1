//! Issue 14, finding 6 (ingest's part): what a gateway sends cannot write the cloud's log. A
//! topic holding a newline, a forged log line and a terminal escape is dead-lettered and logged
//! with those characters escaped inside a quoted field. Mosquitto refuses control characters in
//! topics; the embedded broker (rumqttd) passes them on, so it is the broker here.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_topic_is_logged_escaped() {
    let mqtt_port = fieldlink_testkit::free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cloud.log");
    let mut cloud = CloudProcess::serve_logging(
        &[
            (
                "DATABASE__SQLITE_PATH",
                dir.path().join("cloud.db").display().to_string(),
            ),
            ("MQTT__EMBEDDED_LISTEN", format!("127.0.0.1:{mqtt_port}")),
        ],
        Some(&log),
    );
    cloud.ready().await;
    let forged = "2026-01-01T00:00:00.000000Z  INFO fieldlink_cloud::auth: admin token created";
    let topic = format!("fieldlink/v1/gw\n{forged}\u{1b}[2J/telemetry");
    publish_all(
        "127.0.0.1",
        mqtt_port,
        "pub-hostile",
        vec![(topic, b"{}".to_vec())],
    )
    .await;
    let c = &cloud;
    wait_for("the dead letter", 30, || async move {
        let n = c
            .metric("fieldlink_cloud_mqtt_messages_total{kind=\"dead_letter\"}")
            .await;
        (n >= 1.0).then_some(()).ok_or(format!("{n}"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("message dead-lettered"))
        .unwrap_or_else(|| panic!("no dead-letter line in:\n{text}"));
    assert!(
        line.contains(r#"fieldlink/v1/gw\n2026-01-01T00:00:00.000000Z  INFO"#)
            && line.contains(r"\u{1b}[2J"),
        "{line}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with(forged)),
        "a forged line:\n{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "a raw escape in the log:\n{text:?}"
    );
    cloud.sigterm_and_wait();
}
