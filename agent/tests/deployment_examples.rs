//! The deployment examples of `docs/examples/`, checked against the real agent binary and a real
//! Mosquitto:
//!
//! - every agent configuration shipped in `docs/examples/agent/` passes `check-config` (a file
//!   added there is picked up by this test without any change to it);
//! - the Mosquitto configuration and ACL shipped in `docs/examples/mosquitto/`, with the
//!   agent running on `pumping-station.toml`, let that gateway publish its own telemetry,
//!   status, events and acknowledgements and receive its own commands; another gateway can
//!   neither publish on its topics nor read them nor its commands; the cloud's account reads
//!   everything (with and without a shared subscription) and publishes commands; a wrong
//!   password or a missing client certificate is refused.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fieldlink_agent::config::{load_raw, TlsSettings};
use fieldlink_agent::uplink::tls::client_config;
use fieldlink_protocol::{
    json, Ack, AckStage, Command as Cmd, CommandKind, Ident, Status, TopicPrefix,
};
use fieldlink_testkit::tls::TestPki;
use fieldlink_testkit::ShippedBroker;
use rumqttc_ring as rumqttc;
use support::{wait_until, AgentProc, BIN, PATIENCE};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/examples")
        .canonicalize()
        .expect("docs/examples exists")
}

/// Every file of `docs/examples/<kind>/`; anything but a `.toml` file there is an error, so a
/// misnamed example cannot slip past the check.
fn toml_files(kind: &str) -> Vec<PathBuf> {
    let dir = examples().join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in &files {
        assert!(
            f.is_file() && f.extension().is_some_and(|x| x == "toml"),
            "{} is not a .toml file; only agent configurations belong in {}",
            f.display(),
            dir.display()
        );
    }
    assert!(!files.is_empty(), "no examples in {}", dir.display());
    files
}

/// `fieldlink-agent --config FILE check-config` with `env` added and no inherited
/// `FIELDLINK_AGENT__…` variables.
fn check_config(file: &Path, env: &[(String, PathBuf)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config").arg(file).arg("check-config");
    for (k, _) in std::env::vars() {
        if k.starts_with("FIELDLINK_AGENT__") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("fieldlink-agent runs")
}

#[test]
fn every_shipped_agent_example_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "fleet").unwrap();
    let client = pki.client("gateway").unwrap();
    let mut failures = Vec::new();
    for file in toml_files("agent") {
        // check-config insists that certificate files exist. The examples name where a
        // deployment keeps them (/etc/fieldlink/tls/…), which a test machine lacks: stand-ins
        // are given for exactly those keys, through the documented environment overrides.
        let raw = load_raw(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut env = Vec::new();
        let stand_ins = [
            (
                "CA_FILE",
                raw.mqtt.ca_file.is_some(),
                pki.ca_cert().to_path_buf(),
            ),
            (
                "CLIENT_CERT",
                raw.mqtt.client_cert.is_some(),
                client.cert.clone(),
            ),
            (
                "CLIENT_KEY",
                raw.mqtt.client_key.is_some(),
                client.key.clone(),
            ),
        ];
        for (key, set, path) in stand_ins {
            if set {
                env.push((format!("FIELDLINK_AGENT__MQTT__{key}"), path));
            }
        }
        let out = check_config(&file, &env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let gateway_line = format!("gateway {} ", raw.gateway.id);
        if !out.status.success()
            || !stdout.contains("configuration OK")
            || !stdout.starts_with(&gateway_line)
        {
            failures.push(format!(
                "{} ({}):\n{stdout}{stderr}",
                file.display(),
                out.status
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "examples refused by check-config:\n{}",
        failures.join("\n")
    );
}

/// What one test client received: (topic, payload) in order.
#[derive(Default)]
struct Inbox {
    messages: Mutex<Vec<(String, Vec<u8>)>>,
    subscribed: AtomicBool,
    /// Connections the broker accepted (more than one: this client was disconnected).
    connects: std::sync::atomic::AtomicUsize,
}

impl Inbox {
    fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        self.messages.lock().unwrap().clone()
    }

    fn wait(&self, what: &str, f: impl Fn(&[(String, Vec<u8>)]) -> bool) {
        wait_until(what, PATIENCE, || f(&self.messages.lock().unwrap()));
    }
}

/// A TLS client of the example broker that subscribes to `filters` and records what arrives.
struct Client {
    client: rumqttc::Client,
    inbox: Arc<Inbox>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn options(
    id: &str,
    port: u16,
    user: &str,
    password: &str,
    tls: TlsSettings,
) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10))
        .set_credentials(user, password)
        .set_max_packet_size(1 << 20, 1 << 20);
    o.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(Arc::new(client_config(&tls).unwrap())),
    ));
    o
}

impl Client {
    fn start(o: rumqttc::MqttOptions, filters: &[String]) -> Client {
        let (client, mut conn) = rumqttc::Client::new(o, 100);
        let inbox = Arc::new(Inbox::default());
        let (c, i, filters) = (client.clone(), inbox.clone(), filters.to_vec());
        let thread = std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::ConnAck(_))) => {
                        i.connects.fetch_add(1, Ordering::Relaxed);
                        for f in &filters {
                            c.subscribe(f.clone(), rumqttc::QoS::AtLeastOnce).unwrap();
                        }
                        if filters.is_empty() {
                            i.subscribed.store(true, Ordering::Relaxed);
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::SubAck(_))) => {
                        i.subscribed.store(true, Ordering::Relaxed);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p))) => {
                        i.messages
                            .lock()
                            .unwrap()
                            .push((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(rumqttc::ConnectionError::RequestsDone) => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        let me = Client {
            client,
            inbox,
            thread: Some(thread),
        };
        wait_until("a test client to connect and subscribe", PATIENCE, || {
            me.inbox.subscribed.load(Ordering::Relaxed)
        });
        me
    }

    fn publish(&self, topic: &str, payload: &[u8]) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.to_vec())
            .unwrap();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The first thing a connection attempt yields: `Ok` for an accepted CONNACK, else the error.
fn connect_once(o: rumqttc::MqttOptions) -> Result<(), String> {
    let (_client, mut conn) = rumqttc::Client::new(o, 10);
    match conn.iter().next() {
        Some(Ok(rumqttc::Event::Incoming(rumqttc::Incoming::ConnAck(a))))
            if a.code == rumqttc::ConnectReturnCode::Success =>
        {
            Ok(())
        }
        other => Err(format!("{other:?}")),
    }
}

fn command(id: &str, kind: CommandKind) -> Vec<u8> {
    let now = fieldlink_agent::clock::wall_ms();
    json::encode(&Cmd {
        id: Ident::new(id).unwrap(),
        created_at_ms: now,
        expires_at_ms: now + 600_000,
        kind,
    })
    .unwrap()
}

fn acks(messages: &[(String, Vec<u8>)], topic: &str) -> Vec<Ack> {
    messages
        .iter()
        .filter(|(t, _)| t == topic)
        .filter_map(|(_, p)| json::decode::<Ack>(p).ok())
        .collect()
}

fn count_on(messages: &[(String, Vec<u8>)], topic: &str) -> usize {
    messages.iter().filter(|(t, _)| t == topic).count()
}

#[test]
fn the_example_broker_confines_each_gateway_to_its_own_topics() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "fleet").unwrap();
    let server = pki.server("broker").unwrap();
    let north = pki.client("ps-north").unwrap();
    let south = pki.client("ps-south").unwrap();
    let cloud = pki.client("fieldlink-cloud").unwrap();
    // The shipped configuration and ACL, with this test's ports, password files and
    // certificates: gateways on the first listener, the cloud on the second.
    let ShippedBroker { broker, cloud_port } = ShippedBroker::start(
        dir.path(),
        pki.ca_cert(),
        &server,
        &[("ps-north", "north-secret"), ("ps-south", "south-secret")],
        ("fieldlink-cloud", "cloud-secret"),
    )
    .unwrap();
    let port = broker.port();
    let tls = |c: &fieldlink_testkit::tls::ClientFiles| TlsSettings {
        ca_file: Some(pki.ca_cert().to_path_buf()),
        client_auth: Some((c.cert.clone(), c.key.clone())),
        insecure: false,
    };

    // Refused at the door: a wrong password, and a right password without a certificate.
    let wrong = connect_once(options("t-wrong", port, "ps-south", "guess", tls(&south)));
    assert!(wrong.is_err(), "a wrong password was accepted");
    let no_cert = TlsSettings {
        client_auth: None,
        ..tls(&south)
    };
    let bare = connect_once(options("t-bare", port, "ps-south", "south-secret", no_cert));
    assert!(bare.is_err(), "a client without a certificate was accepted");

    // The cloud's account: everything, and the shared subscriptions the cloud makes.
    let monitor = Client::start(
        options(
            "t-cloud-all",
            cloud_port,
            "fieldlink-cloud",
            "cloud-secret",
            tls(&cloud),
        ),
        &["fieldlink/v1/#".to_string()],
    );
    let shared = Client::start(
        options(
            "t-cloud-shared",
            cloud_port,
            "fieldlink-cloud",
            "cloud-secret",
            tls(&cloud),
        ),
        &TopicPrefix::default()
            .cloud_filters(Some("fieldlink-cloud"))
            .unwrap(),
    );

    // The real agent on the shipped example, pointed at this broker and these files.
    let example = examples().join("agent/pumping-station.toml");
    let raw = load_raw(&example).unwrap();
    assert_eq!(raw.gateway.id, "ps-north");
    assert_eq!(raw.mqtt.username.as_deref(), Some("ps-north"));
    let url = format!("mqtts://127.0.0.1:{port}");
    let journal = dir.path().join("journal.db");
    let env = [
        ("FIELDLINK_AGENT__MQTT__URL", url.as_str()),
        ("FIELDLINK_AGENT__MQTT__PASSWORD", "north-secret"),
        ("FIELDLINK_AGENT__MQTT__CA_FILE", path(pki.ca_cert())),
        ("FIELDLINK_AGENT__MQTT__CLIENT_CERT", path(&north.cert)),
        ("FIELDLINK_AGENT__MQTT__CLIENT_KEY", path(&north.key)),
        ("FIELDLINK_AGENT__JOURNAL__PATH", path(&journal)),
        ("FIELDLINK_AGENT__GATEWAY__SELF_TELEMETRY_S", "1"),
    ];
    let agent = AgentProc::start_with_env(&example, &dir.path().join("agent.log"), &env);
    let fail = |what: &str| -> String {
        format!(
            "{what}\nagent log:\n{}\nbroker log:\n{}",
            agent.log_text(),
            broker.log()
        )
    };

    // The gateway publishes its own topics, seen by the cloud's account directly and through
    // the shared subscription.
    let status = "fieldlink/v1/ps-north/status";
    let telemetry = "fieldlink/v1/ps-north/telemetry";
    let events = "fieldlink/v1/ps-north/events";
    let ack = "fieldlink/v1/ps-north/ack";
    wait_until("ps-north's birth, telemetry and events", PATIENCE, || {
        let m = monitor.inbox.snapshot();
        let born = m.iter().any(|(t, p)| {
            t == status && matches!(json::decode::<Status>(p), Ok(Status::Online(_)))
        });
        born && count_on(&m, telemetry) > 0 && count_on(&m, events) > 0
    });
    wait_until(
        "ps-north's telemetry and events through the shared subscription",
        PATIENCE,
        || {
            let m = shared.inbox.snapshot();
            count_on(&m, telemetry) > 0 && count_on(&m, events) > 0
        },
    );

    // The cloud's account sends a command; the gateway receives it and acknowledges it.
    monitor.publish(
        "fieldlink/v1/ps-north/cmd",
        &command("c-ping-1", CommandKind::Ping),
    );
    wait_until("ps-north to acknowledge c-ping-1", PATIENCE, || {
        acks(&monitor.inbox.snapshot(), ack)
            .iter()
            .any(|a| a.command_id.as_str() == "c-ping-1" && a.stage == AckStage::Executed)
    });
    assert!(
        acks(&shared.inbox.snapshot(), ack)
            .iter()
            .any(|a| a.command_id.as_str() == "c-ping-1"),
        "{}",
        fail("the acknowledgement did not reach the shared subscription")
    );

    // Another gateway, fully authenticated, tries to read everything.
    let intruder = Client::start(
        options("t-ps-south", port, "ps-south", "south-secret", tls(&south)),
        &[
            "fieldlink/v1/#".to_string(),
            "fieldlink/v1/+/cmd".to_string(),
        ],
    );

    // It tries to publish as ps-north on every kind of topic, then on its own events topic.
    // The broker handles one client's publishes in order and the cloud's account reads every
    // topic, so once the marker has arrived, any forged message the ACL let through would have
    // arrived before it.
    for kind in ["telemetry", "status", "events", "ack", "cmd"] {
        intruder.publish(
            &format!("fieldlink/v1/ps-north/{kind}"),
            b"forged by ps-south",
        );
    }
    intruder.publish("fieldlink/v1/ps-south/events", b"marker from ps-south");
    monitor.inbox.wait("ps-south's own event", |m| {
        m.iter().any(|(_, p)| p == b"marker from ps-south")
    });
    let forged: Vec<String> = monitor
        .inbox
        .snapshot()
        .iter()
        .filter(|(_, p)| p == b"forged by ps-south")
        .map(|(t, _)| t.clone())
        .collect();
    assert!(
        forged.is_empty(),
        "{}",
        fail(&format!("ps-south published as ps-north on {forged:?}"))
    );

    // ps-north keeps publishing; once the cloud's account has seen a new message of it, the
    // broker has routed that message. The cloud then commands ps-north and ps-south, in that
    // order. Mosquitto routes in the order it receives, so anything of ps-north's that the ACL
    // let through to ps-south would reach ps-south before ps-south's own command.
    let seen = count_on(&monitor.inbox.snapshot(), telemetry);
    monitor
        .inbox
        .wait("more ps-north telemetry", |m| count_on(m, telemetry) > seen);
    monitor.publish(
        "fieldlink/v1/ps-north/cmd",
        &command("c-ping-2", CommandKind::Ping),
    );
    monitor.publish(
        "fieldlink/v1/ps-south/cmd",
        &command("c-south-1", CommandKind::Ping),
    );
    intruder.inbox.wait("ps-south's own command", |m| {
        m.iter().any(|(t, _)| t == "fieldlink/v1/ps-south/cmd")
    });
    let leaked: Vec<String> = intruder
        .inbox
        .snapshot()
        .iter()
        .map(|(t, _)| t.clone())
        .filter(|t| t != "fieldlink/v1/ps-south/cmd")
        .collect();
    assert!(
        leaked.is_empty(),
        "{}",
        fail(&format!("ps-south read other topics: {leaked:?}"))
    );
    // ps-north still takes its own commands.
    wait_until("ps-north to acknowledge c-ping-2", PATIENCE, || {
        acks(&monitor.inbox.snapshot(), ack)
            .iter()
            .any(|a| a.command_id.as_str() == "c-ping-2" && a.stage == AckStage::Executed)
    });

    // Identity (issue 14, finding 3): ps-south's credentials asking for ps-north's client id,
    // or for the cloud's, get ps-south's own (its user name), so neither the agent nor the
    // cloud's connections are closed; on the cloud's listener they are refused outright.
    let births = |m: &[(String, Vec<u8>)]| {
        m.iter()
            .filter(|(t, p)| {
                t == status && matches!(json::decode::<Status>(p), Ok(Status::Online(_)))
            })
            .count()
    };
    let births_before = births(&monitor.inbox.snapshot());
    for id in [
        "ps-north",
        "fieldlink-ps-north",
        "t-cloud-all",
        "t-cloud-shared",
    ] {
        let taken = connect_once(options(id, port, "ps-south", "south-secret", tls(&south)));
        assert!(taken.is_ok(), "{}", fail(&format!("{id}: {taken:?}")));
    }
    let on_cloud = connect_once(options(
        "t-cloud-all",
        cloud_port,
        "ps-south",
        "south-secret",
        tls(&south),
    ));
    assert!(
        on_cloud.is_err(),
        "a gateway's credentials were accepted on the cloud's listener"
    );
    let seen = count_on(&monitor.inbox.snapshot(), telemetry);
    monitor.inbox.wait("more ps-north telemetry", |m| {
        count_on(m, telemetry) > seen + 1
    });
    assert_eq!(
        births(&monitor.inbox.snapshot()),
        births_before,
        "{}",
        fail("ps-north reconnected (a new birth): another client took its session")
    );
    for c in [&monitor, &shared] {
        assert_eq!(
            c.inbox.connects.load(Ordering::Relaxed),
            1,
            "{}",
            fail("a cloud connection was closed by another client")
        );
    }
    drop(agent);
}

fn path(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}
