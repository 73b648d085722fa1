//! Issue 14, finding 3, on a broker that does not tie client ids to users (the testkit's plain
//! Mosquitto): a client connecting again and again with the cloud's client id is noticed. The
//! cloud reports "session taken over" on `/health/ready` (503) and logs it as an ERROR, and the
//! report clears once the other client stops. (The shipped configuration prevents the takeover
//! itself: `cloud/tests/deployment_examples.rs`.)

mod common;

use std::time::Duration;

use common::*;
use fieldlink_testkit::Mosquitto;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions};

/// Connects as `client_id` once and returns after the broker accepted it.
async fn connect_as(port: u16, client_id: &str) {
    let o = MqttOptions::new(client_id, "127.0.0.1", port);
    let (client, mut el) = AsyncClient::new(o, 4);
    let accepted = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(accepted, "the broker did not accept {client_id}");
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(200), el.poll()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_using_the_clouds_id_is_reported_as_a_session_takeover() {
    let broker = Mosquitto::start().expect("start mosquitto (package mosquitto)");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cloud.log");
    let mut cloud = CloudProcess::serve_logging(
        &[
            (
                "DATABASE__SQLITE_PATH",
                dir.path().join("cloud.db").display().to_string(),
            ),
            ("MQTT__URL", broker.url()),
            ("MQTT__CLIENT_ID", "cloud-1".into()),
        ],
        Some(&log),
    );
    cloud.ready().await;
    let (code, body) = http_get(cloud.http, "/health/ready").await.unwrap();
    assert_eq!(code, 200, "{body}");

    // A few connections under the cloud's id, one every 600 ms.
    for _ in 0..4 {
        connect_as(broker.port(), "cloud-1").await;
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let c = &cloud;
    let body = wait_for("the takeover on readiness", 30, || async move {
        let (code, body) = http_get(c.http, "/health/ready")
            .await
            .map_err(|e| e.to_string())?;
        (code == 503 && body.contains("session taken over"))
            .then_some(body.clone())
            .ok_or(format!("{code} {body}"))
    })
    .await;
    assert!(body.contains("cloud-1"), "{body}");
    assert!(
        cloud
            .metric("fieldlink_cloud_mqtt_session_closed_by_broker_total")
            .await
            >= 2.0
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("ERROR") && l.contains("session taken over")),
        "{text}"
    );
    cloud.sigterm_and_wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_is_no_takeover() {
    let mut broker = Mosquitto::start().expect("start mosquitto (package mosquitto)");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cloud.log");
    let mut cloud = CloudProcess::serve_logging(
        &[
            (
                "DATABASE__SQLITE_PATH",
                dir.path().join("cloud.db").display().to_string(),
            ),
            ("MQTT__URL", broker.url()),
        ],
        Some(&log),
    );
    cloud.ready().await;
    for _ in 0..3 {
        broker.restart().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (c, log) = (&cloud, &log);
        wait_for("ready again", 30, || async move {
            let (code, body) = http_get(c.http, "/health/ready")
                .await
                .map_err(|e| e.to_string())?;
            (code == 200).then_some(()).ok_or(format!(
                "{code} {body}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ))
        })
        .await;
    }
    assert_eq!(
        cloud
            .metric("fieldlink_cloud_mqtt_session_closed_by_broker_total")
            .await,
        0.0
    );
    let (code, body) = http_get(cloud.http, "/health/ready").await.unwrap();
    assert_eq!(code, 200, "{body}");
    cloud.sigterm_and_wait();
}
