//! The cloud's deployment examples in `docs/examples/cloud/`, checked against the real binary:
//!
//! - every configuration shipped there passes `fieldlink-cloud check-config` (a file added there
//!   is picked up without any change to this test);
//! - the scaled-out example (`cluster-timescaledb.toml`), pointed at a test PostgreSQL, runs
//!   through the example Mosquitto configuration and ACL (`docs/examples/mosquitto/`): over
//!   mutual TLS with its own credentials it subscribes (shared and plain) without a refusal,
//!   stores a gateway's birth and telemetry, and delivers a command to the gateway.

mod api_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use api_support::{eventually, get, post, request, rt};
use fieldlink_protocol::{
    json, Birth, CommandKind, DataKind, DeviceInfo, Ident, Point, PointInfo, Status,
    TelemetryBatch, Value,
};
use fieldlink_testkit::tls::TestPki;
use fieldlink_testkit::{free_port, Postgres, ShippedBroker};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};

const BIN: &str = env!("CARGO_BIN_EXE_fieldlink-cloud");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/examples")
        .canonicalize()
        .expect("docs/examples exists")
}

/// `fieldlink-cloud` with only the given `FIELDLINK_CLOUD__…` variables (keys without the
/// prefix) of the environment.
fn cloud(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("FIELDLINK_CLOUD") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(format!("FIELDLINK_CLOUD__{k}"), v);
    }
    cmd
}

#[test]
fn every_shipped_cloud_example_passes_check_config() {
    let dir = examples().join("cloud");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in {}", dir.display());
    // check-config opens every TLS file a configuration names. The examples name where a
    // deployment keeps them (/etc/fieldlink/…), which a test machine lacks: stand-ins are given
    // for exactly those keys, through the documented environment overrides.
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::new(tmp.path(), "fleet").unwrap();
    let client = pki.client("fieldlink-cloud").unwrap();
    let mut failures = Vec::new();
    for file in files {
        assert!(
            file.is_file() && file.extension().is_some_and(|x| x == "toml"),
            "{} is not a .toml file; only cloud configurations belong in {}",
            file.display(),
            dir.display()
        );
        let raw = fieldlink_cloud::config::load_raw(Some(&file), Vec::new())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let path = |p: &Path| p.to_str().unwrap().to_string();
        let mut env = Vec::new();
        for (key, set, stand_in) in [
            (
                "MQTT__CA_FILE",
                raw.mqtt.ca_file.is_some(),
                path(pki.ca_cert()),
            ),
            (
                "MQTT__CLIENT_CERT_FILE",
                raw.mqtt.client_cert_file.is_some(),
                path(&client.cert),
            ),
            (
                "MQTT__CLIENT_KEY_FILE",
                raw.mqtt.client_key_file.is_some(),
                path(&client.key),
            ),
        ] {
            if set {
                env.push((key, stand_in));
            }
        }
        let out = cloud(&["--config", file.to_str().unwrap(), "check-config"], &env)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains("configuration is valid") {
            failures.push(format!(
                "{} ({}): {stdout}{}",
                file.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "examples refused by check-config:\n{}",
        failures.join("\n")
    );
}

#[test]
fn check_config_and_serve_open_every_tls_file() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::new(tmp.path(), "fleet").unwrap();
    let client = pki.client("fieldlink-cloud").unwrap();
    let not_pem = tmp.path().join("not-a-certificate.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let missing = tmp.path().join("missing.pem");
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let example = examples().join("cloud/cluster-timescaledb.toml");
    let good = [
        ("MQTT__CA_FILE", path(pki.ca_cert())),
        ("MQTT__CLIENT_CERT_FILE", path(&client.cert)),
        ("MQTT__CLIENT_KEY_FILE", path(&client.key)),
    ];
    let out = cloud(
        &["--config", example.to_str().unwrap(), "check-config"],
        &good,
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (i, bad, want) in [
        (0, &missing, "mqtt.ca_file"),
        (0, &not_pem, "mqtt.ca_file"),
        (1, &not_pem, "mqtt.client_cert_file"),
        (2, &missing, "mqtt.client_key_file"),
        (2, &client.cert, "mqtt.client_key_file"),
    ] {
        let mut env = good.clone();
        env[i].1 = path(bad);
        refused_by_check_config_and_serve(&example, &env, &[want, bad.to_str().unwrap()]);
    }
}

#[test]
fn check_config_and_serve_refuse_certificates_out_of_their_dates() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::new(tmp.path(), "fleet").unwrap();
    let client = pki.client("fieldlink-cloud").unwrap();
    let dated = pki.dated_clients(std::time::SystemTime::now(), 20).unwrap();
    let (expired, future, soon) = (dated.expired, dated.not_yet_valid, dated.expiring);
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let example = examples().join("cloud/cluster-timescaledb.toml");
    let env = |ca: &Path, cert: &Path, key: &Path| {
        [
            ("MQTT__CA_FILE", path(ca)),
            ("MQTT__CLIENT_CERT_FILE", path(cert)),
            ("MQTT__CLIENT_KEY_FILE", path(key)),
        ]
    };
    for (bad, as_ca, word) in [
        (&expired, true, "expired on"),
        (&expired, false, "expired on"),
        (&future, true, "not valid before"),
        (&future, false, "not valid before"),
    ] {
        let (env, want) = if as_ca {
            (env(&bad.cert, &client.cert, &client.key), "mqtt.ca_file")
        } else {
            (
                env(pki.ca_cert(), &bad.cert, &bad.key),
                "mqtt.client_cert_file",
            )
        };
        refused_by_check_config_and_serve(
            &example,
            &env,
            &[
                want,
                bad.cert.to_str().unwrap(),
                word,
                "valid from",
                "until",
            ],
        );
    }
    let out = cloud(
        &["--config", example.to_str().unwrap(), "check-config"],
        &env(pki.ca_cert(), &soon.cert, &soon.key),
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("warning: mqtt.client_cert_file: ")
            && stdout.contains(soon.cert.to_str().unwrap())
            && stdout.contains("in 20 days"),
        "{stdout}"
    );
}

/// `check-config` and `serve` of `example` with `env` both exit 2 saying every one of `parts`.
fn refused_by_check_config_and_serve(example: &Path, env: &[(&str, String)], parts: &[&str]) {
    for command in ["check-config", "serve"] {
        let out = cloud(&["--config", example.to_str().unwrap(), command], env)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        for part in parts {
            assert!(stderr.contains(part), "{command}: {part} in {stderr}");
        }
    }
}

/// The cloud process; killed on drop, its log kept for failure messages.
struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn birth() -> Vec<u8> {
    let point = |name: &str, unit: &str, writable| PointInfo {
        name: id(name),
        unit: Some(unit.into()),
        kind: DataKind::Number,
        writable,
    };
    json::encode(&Status::Online(Birth {
        gateway: id("ps-north"),
        boot_epoch: 1,
        ts_ms: now_ms(),
        agent_version: "0.1.0".into(),
        config_hash: "0123456789abcdef".into(),
        devices: vec![DeviceInfo {
            name: id("pump-1"),
            points: vec![
                point("speed", "rpm", false),
                point("frequency_setpoint", "Hz", true),
            ],
        }],
    }))
    .unwrap()
}

#[test]
fn the_cluster_example_runs_through_the_example_broker() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "fleet").unwrap();
    let server = pki.server("broker").unwrap();
    let gateway = pki.client("ps-north").unwrap();
    let service_cert = pki.client("fieldlink-cloud").unwrap();
    // The shipped configuration: gateways' users on one listener, the cloud's on the other.
    let ShippedBroker { broker, cloud_port } = ShippedBroker::start(
        dir.path(),
        pki.ca_cert(),
        &server,
        &[("ps-north", "north-secret")],
        ("fieldlink-cloud", "cloud-secret"),
    )
    .unwrap();
    let pg = Postgres::start().unwrap();
    let database = pg.create_database("fieldlink").unwrap();

    // The shipped file with what a test machine must supply instead: its database (plain
    // PostgreSQL here, hence timescale = auto; the TimescaleDB variant has its own store
    // tests), its broker, its certificates and passwords, and a free HTTP port.
    let example = examples().join("cloud/cluster-timescaledb.toml");
    let http = free_port();
    let file = |p: &Path| p.to_str().unwrap().to_string();
    let env = vec![
        ("DATABASE__URL", database),
        ("DATABASE__TIMESCALE", "auto".to_string()),
        ("MQTT__URL", format!("mqtts://127.0.0.1:{cloud_port}")),
        ("MQTT__PASSWORD", "cloud-secret".to_string()),
        ("MQTT__CA_FILE", file(pki.ca_cert())),
        ("MQTT__CLIENT_CERT_FILE", file(&service_cert.cert)),
        ("MQTT__CLIENT_KEY_FILE", file(&service_cert.key)),
        ("HTTP__LISTEN", format!("127.0.0.1:{http}")),
    ];
    let log = dir.path().join("cloud.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = cloud(&["--config", example.to_str().unwrap(), "serve"], &env)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let service = Service { child, log };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], http));
    let fail = |what: &str| {
        format!(
            "{what}\ncloud log:\n{}\nbroker log:\n{}",
            service.log(),
            broker.log()
        )
    };

    let rt = rt();
    rt.block_on(async {
        eventually(
            60,
            "the cloud to be ready (database and broker)",
            || async {
                // Not listening yet is no answer.
                tokio::net::TcpStream::connect(addr).await.ok()?;
                let r = request(addr, "GET", "/health/ready", &[], None).await;
                (r.status == 200).then_some(())
            },
        )
        .await;
    });
    // Ready means connected; the subscriptions must also have been granted, which only the
    // SUBACK's return codes (in the log) tell.
    let suback = eventually_blocking("the cloud's subscriptions to be acknowledged", || {
        service
            .log()
            .lines()
            .find(|l| l.contains("subscribed return_codes"))
            .map(str::to_owned)
    });
    assert!(
        suback.contains("Success") && !suback.contains("Failure"),
        "{}",
        fail("the broker refused a subscription of the cloud")
    );

    let token_out = cloud(
        &[
            "--config",
            example.to_str().unwrap(),
            "token",
            "create",
            "--name",
            "deployment test",
            "--role",
            "operator",
        ],
        &env,
    )
    .output()
    .unwrap();
    assert!(token_out.status.success(), "{token_out:?}");
    let token = String::from_utf8_lossy(&token_out.stdout)
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();

    rt.block_on(async {
        // A gateway on the same broker, with its own certificate and password.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options_on = |client_id: &str, port: u16| {
            let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
            o.set_credentials("ps-north", "north-secret")
                .set_keep_alive(Duration::from_secs(10))
                .set_max_packet_size(4 << 20, 4 << 20);
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                ca: std::fs::read(pki.ca_cert()).unwrap(),
                alpn: None,
                client_auth: Some((
                    std::fs::read(&gateway.cert).unwrap(),
                    std::fs::read(&gateway.key).unwrap(),
                )),
            }));
            o
        };
        let options = |client_id: &str| options_on(client_id, broker.port());
        let (client, mut el) = AsyncClient::new(options("ps-north"), 16);
        let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        let (sub_tx, sub_rx) = tokio::sync::oneshot::channel();
        let c = client.clone();
        tokio::spawn(async move {
            let mut sub_tx = Some(sub_tx);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        c.subscribe("fieldlink/v1/ps-north/cmd", QoS::AtLeastOnce)
                            .await
                            .unwrap();
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        if let Some(tx) = sub_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let _ = cmd_tx.send(p.payload.to_vec()).await;
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(60), sub_rx)
            .await
            .expect("the gateway subscribes to its commands")
            .unwrap();

        client
            .publish(
                "fieldlink/v1/ps-north/status",
                QoS::AtLeastOnce,
                true,
                birth(),
            )
            .await
            .unwrap();
        let mut batch = TelemetryBatch::new(id("ps-north"), 1, 1);
        batch
            .points
            .push(Point::new(id("pump-1"), id("speed"), now_ms(), 1450.0));
        let payload =
            fieldlink_protocol::encode_telemetry(&batch, fieldlink_protocol::Encoding::Binary)
                .unwrap();
        client
            .publish(
                "fieldlink/v1/ps-north/telemetry",
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .unwrap();

        // Stored: the reading is served by the API.
        let latest = eventually(60, "the reading in the store", || async {
            let r = get(
                addr,
                "/api/v1/gateways/ps-north/devices/pump-1/latest",
                &token,
            )
            .await;
            let v = (r.status == 200).then(|| r.json())?;
            v.as_array()?
                .iter()
                .find(|l| l["metric"] == "speed")
                .map(|l| l["reading"]["value"].clone())
        })
        .await;
        assert_eq!(latest.as_f64(), Some(1450.0), "{}", fail("wrong value"));

        // A command goes out on the gateway's own topic.
        let body = serde_json::json!({"kind": {"command": "write_point", "device": "pump-1",
            "point": "frequency_setpoint", "value": 42.5}});
        let created = eventually(60, "the command to be accepted", || async {
            // Until the command service has seen the birth, the command is refused with 409.
            let r = post(addr, "/api/v1/gateways/ps-north/commands", &token, &body).await;
            (r.status == 201).then(|| r.json())
        })
        .await;
        let command_id = created["command_id"].as_str().unwrap().to_string();
        let received = tokio::time::timeout(Duration::from_secs(60), cmd_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{}", fail("no command reached the gateway")))
            .unwrap();
        let command: fieldlink_protocol::Command = json::decode(&received).unwrap();
        assert_eq!(command.id.as_str(), command_id);
        assert_eq!(
            command.kind,
            CommandKind::WritePoint {
                device: id("pump-1"),
                point: id("frequency_setpoint"),
                value: Value::Number(42.5),
            }
        );

        // Sizes (issue 14, finding 1): a payload over the protocol's limit but within the
        // broker's reaches the cloud as a counted dead letter; one over the broker's
        // max_packet_size closes the sender's connection and never reaches the cloud, whose
        // session is untouched (no oversized packet, no reconnect).
        let telemetry = "fieldlink/v1/ps-north/telemetry";
        let over_protocol = vec![b'{'; fieldlink_protocol::limits::MAX_PAYLOAD_BYTES + 1_000];
        assert!(publish_once(options("ps-north-big"), telemetry, over_protocol).await);
        assert!(!publish_once(options("ps-north-big"), telemetry, vec![b'{'; 1_572_864]).await);
        let metric = |name: &'static str| async move {
            let r = request(addr, "GET", "/metrics", &[], None).await;
            let text = String::from_utf8_lossy(&r.body).into_owned();
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(name)
                        .and_then(|v| v.trim().parse::<f64>().ok())
                })
                .unwrap_or(0.0)
        };
        eventually(60, "the too_large dead letter", || async {
            (metric("fieldlink_cloud_dead_letters_total{reason=\"too_large\"}").await == 1.0)
                .then_some(())
        })
        .await;
        assert_eq!(
            metric("fieldlink_cloud_mqtt_oversized_packets_total").await,
            0.0,
            "{}",
            fail("the broker forwarded a packet over the cloud's limit")
        );

        // Identity (issue 14, finding 3): a gateway asking for the cloud's client id gets its
        // own (its user name), so the cloud is never closed; on the cloud's listener a
        // gateway's credentials are refused.
        for _ in 0..5 {
            let o = options("fieldlink-cloud-1");
            assert!(publish_once(o, "fieldlink/v1/ps-north/events", b"{}".to_vec()).await);
        }
        let on_cloud_port = options_on("fieldlink-cloud-1", cloud_port);
        assert!(
            !publish_once(
                on_cloud_port,
                "fieldlink/v1/ps-north/events",
                b"{}".to_vec()
            )
            .await,
            "a gateway's credentials were accepted on the cloud's listener"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            metric("fieldlink_cloud_mqtt_session_closed_by_broker_total").await,
            0.0,
            "{}",
            fail("the broker closed the cloud's session")
        );
        let r = request(addr, "GET", "/health/ready", &[], None).await;
        assert_eq!(r.status, 200, "{}", fail(&format!("{:?}", r.body)));
        assert!(
            !service.log().contains("broker connection lost"),
            "{}",
            fail("the cloud lost its connection")
        );
    });
}

/// Publishes one message on a connection of its own; true when the broker acknowledged it,
/// false when it closed the connection instead.
async fn publish_once(o: MqttOptions, topic: &str, payload: Vec<u8>) -> bool {
    let (client, mut el) = AsyncClient::new(o, 4);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    let acked = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::PubAck(_))) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .expect("an answer from the broker within 30 s");
    let _ = client.disconnect().await;
    acked
}

/// Polls `f` every 50 ms for up to 60 s.
fn eventually_blocking<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
