//! Ingest from a broker that requires TLS, a client certificate and a password: the settings
//! an operator gives for an external broker reach rumqttc, and points flow.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fieldlink_cloud::ingest::{self, IngestSettings, MqttSettings, TlsSettings};
use fieldlink_cloud::metrics::Metrics;
use fieldlink_cloud::store::{Store, StoreSpec};
use fieldlink_protocol::Encoding;
use fieldlink_testkit::tls::TestPki;
use fieldlink_testkit::Mosquitto;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_over_mutual_tls_with_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "fieldlink").unwrap();
    let broker = Mosquitto::builder()
        .tls(pki.server("broker").unwrap())
        .require_client_cert()
        .user("cloud", "cloud-secret")
        .user("gw", "gw-secret")
        .start()
        .expect("start mosquitto with TLS (package mosquitto)");
    let cloud_cert = pki.client("cloud").unwrap();
    let store = Store::open(&StoreSpec::Sqlite {
        path: dir.path().join("tls.db"),
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let store = Arc::new(store);
    let settings = MqttSettings {
        host: broker.host().to_string(),
        port: broker.port(),
        client_id: "cloud-tls".into(),
        credentials: Some(("cloud".into(), "cloud-secret".into())),
        tls: Some(TlsSettings {
            ca_file: pki.ca_cert().to_path_buf(),
            client_cert: Some((cloud_cert.cert.clone(), cloud_cert.key.clone())),
        }),
        keep_alive: Duration::from_secs(10),
        max_packet_bytes: 1 << 20,
    };
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let handle = ingest::start(
        &settings,
        IngestSettings::default(),
        store.clone(),
        Arc::new(Metrics::new()),
        stop.clone(),
        &tracker,
    )
    .unwrap();
    wait_for("subscribed over TLS", 30, || {
        let h = handle.clone();
        async move {
            h.broker_connected()
                .then_some(())
                .ok_or("not yet".to_string())
        }
    })
    .await;

    // A gateway publishing over TLS with its own certificate and password.
    let gw_cert = pki.client("gw").unwrap();
    let mut o = MqttOptions::new("gw-tls", broker.host(), broker.port());
    o.set_credentials("gw", "gw-secret");
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: std::fs::read(pki.ca_cert()).unwrap(),
        alpn: None,
        client_auth: Some((
            std::fs::read(&gw_cert.cert).unwrap(),
            std::fs::read(&gw_cert.key).unwrap(),
        )),
    }));
    let (client, mut el) = AsyncClient::new(o, 10);
    let b = batch("gw-tls", 1, now_ms() - 60_000, 2, 5, 3);
    client
        .publish(
            topic("gw-tls", "telemetry"),
            QoS::AtLeastOnce,
            false,
            encode(&b, Encoding::Binary),
        )
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), el.poll()).await {
            Ok(Ok(Event::Incoming(Incoming::PubAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("gateway over TLS: {e}"),
            Err(_) => panic!("no PUBACK over TLS within 30 s"),
        }
    }
    let st = store.clone();
    wait_for("30 points stored", 30, || {
        let st = st.clone();
        async move {
            let n = st.count_points().await.map_err(|e| e.to_string())?;
            (n == 30).then_some(()).ok_or(format!("{n}"))
        }
    })
    .await;
    stop.cancel();
    tracker.close();
    tracker.wait().await;
}
