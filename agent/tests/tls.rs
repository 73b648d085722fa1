//! TLS to the broker: server verification against a CA file, mutual TLS with a client
//! certificate, and refusal of a broker whose certificate another CA signed.

mod support;

use std::path::Path;
use std::sync::Arc;

use fieldlink_agent::config::TlsSettings;
use fieldlink_agent::uplink::tls::client_config;
use fieldlink_testkit::tls::TestPki;
use fieldlink_testkit::Mosquitto;
use rumqttc_ring as rumqttc;
use support::*;

const SIM: &str = r#"
[[units]]
id = 1
[[units.points]]
table = "holding_register"
address = 0
waveform = { kind = "constant", value = 77 }
"#;

const POINTS: &str = r#"
[[devices.points]]
name = "level"
table = "holding_register"
address = 0
"#;

fn tls_subscriber(port: u16, gw: &str, ca: &Path, client: Option<(&Path, &Path)>) -> Subscriber {
    let settings = TlsSettings {
        ca_file: Some(ca.to_path_buf()),
        client_auth: client.map(|(c, k)| (c.to_path_buf(), k.to_path_buf())),
        insecure: false,
    };
    let config = client_config(&settings).unwrap();
    Subscriber::start_with(port, gw, move |o| {
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(config)),
        ));
    })
}

fn mqtts(broker: &Mosquitto, ca: &Path, client: Option<(&Path, &Path)>) -> String {
    let mut s = format!("url = \"{}\"\nca_file = \"{}\"", broker.url(), ca.display());
    if let Some((c, k)) = client {
        s += &format!(
            "\nclient_cert = \"{}\"\nclient_key = \"{}\"",
            c.display(),
            k.display()
        );
    }
    s
}

fn wait_log(agent: &AgentProc, needle: &[&str]) {
    wait_until(&format!("{needle:?} in the agent log"), PATIENCE, || {
        let log = agent.log_text();
        needle.iter().any(|n| log.contains(n))
    });
}

#[test]
fn tls_with_ca_file_works_and_a_wrong_ca_is_refused() {
    let sim = SimServer::tcp(SIM);
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "fieldlink").unwrap();
    let broker = Mosquitto::builder()
        .tls(pki.server("broker").unwrap())
        .start()
        .unwrap();
    assert!(broker.url().starts_with("mqtts://"));
    let sub = tls_subscriber(broker.port(), "gw-tls", pki.ca_cert(), None);
    let device = tcp_device("tank", sim.port, 1, 300, POINTS);

    let good = dir.path().join("good");
    std::fs::create_dir_all(&good).unwrap();
    let cfg = agent_config(
        &good,
        "gw-tls",
        &mqtts(&broker, pki.ca_cert(), None),
        &device,
    );
    let mut agent = AgentProc::start(&cfg, &good.join("agent.log"));
    let rx = sub.wait("readings over TLS", |r| {
        !r.values_of("tank", "level").is_empty()
    });
    assert_eq!(rx.values_of("tank", "level")[0], 77.0);
    assert!(agent.terminate().success());

    // A CA that did not sign the broker's certificate: the handshake fails, nothing is sent.
    let other = TestPki::new(dir.path(), "other").unwrap();
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let sub_bad = tls_subscriber(broker.port(), "gw-bad", pki.ca_cert(), None);
    let cfg = agent_config(
        &bad,
        "gw-bad",
        &mqtts(&broker, other.ca_cert(), None),
        &device,
    );
    let mut agent = AgentProc::start(&cfg, &bad.join("agent.log"));
    wait_log(&agent, &["UnknownIssuer", "invalid peer certificate"]);
    assert!(
        sub_bad.snapshot().statuses.is_empty() && sub_bad.snapshot().telemetry.is_empty(),
        "nothing reached the broker"
    );
    assert!(agent.terminate().success());
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let sim = SimServer::tcp(SIM);
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "mtls").unwrap();
    let broker = Mosquitto::builder()
        .tls(pki.server("broker").unwrap())
        .require_client_cert()
        .start()
        .unwrap();
    let sub_cert = pki.client("subscriber").unwrap();
    let sub = tls_subscriber(
        broker.port(),
        "gw-mtls",
        pki.ca_cert(),
        Some((&sub_cert.cert, &sub_cert.key)),
    );
    let gw_cert = pki.client("gw-mtls").unwrap();
    let device = tcp_device("tank", sim.port, 1, 300, POINTS);

    let with = dir.path().join("with");
    std::fs::create_dir_all(&with).unwrap();
    let cfg = agent_config(
        &with,
        "gw-mtls",
        &mqtts(&broker, pki.ca_cert(), Some((&gw_cert.cert, &gw_cert.key))),
        &device,
    );
    let mut agent = AgentProc::start(&cfg, &with.join("agent.log"));
    sub.wait("readings over mTLS", |r| {
        !r.values_of("tank", "level").is_empty()
    });
    assert!(agent.terminate().success());

    let without = dir.path().join("without");
    std::fs::create_dir_all(&without).unwrap();
    let sub_none = tls_subscriber(
        broker.port(),
        "gw-nocert",
        pki.ca_cert(),
        Some((&sub_cert.cert, &sub_cert.key)),
    );
    let cfg = agent_config(
        &without,
        "gw-nocert",
        &mqtts(&broker, pki.ca_cert(), None),
        &device,
    );
    let mut agent = AgentProc::start(&cfg, &without.join("agent.log"));
    wait_log(&agent, &["cannot connect to the broker"]);
    assert!(sub_none.snapshot().statuses.is_empty());
    assert!(agent.terminate().success());
}

#[test]
fn insecure_skips_verification_only_when_asked_and_says_so() {
    let sim = SimServer::tcp(SIM);
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "lab").unwrap();
    let broker = Mosquitto::builder()
        .tls(pki.server("broker").unwrap())
        .start()
        .unwrap();
    let sub = tls_subscriber(broker.port(), "gw-lab", pki.ca_cert(), None);
    let cfg = agent_config(
        dir.path(),
        "gw-lab",
        &format!("url = \"{}\"\ninsecure = true", broker.url()),
        &tcp_device("tank", sim.port, 1, 300, POINTS),
    );
    let mut agent = AgentProc::start(&cfg, &dir.path().join("agent.log"));
    sub.wait("readings with verification off", |r| {
        !r.values_of("tank", "level").is_empty()
    });
    assert!(
        agent.log_text().contains("NOT verified"),
        "{}",
        agent.log_text()
    );
    assert!(agent.terminate().success());
    // Without the flag and without a CA file the system roots do not know the test CA.
    let strict = dir.path().join("strict");
    std::fs::create_dir_all(&strict).unwrap();
    let cfg = agent_config(
        &strict,
        "gw-lab",
        &format!("url = \"{}\"", broker.url()),
        &tcp_device("tank", sim.port, 1, 300, POINTS),
    );
    let mut agent = AgentProc::start(&cfg, &strict.join("agent.log"));
    wait_log(
        &agent,
        &[
            "UnknownIssuer",
            "invalid peer certificate",
            "no usable root",
        ],
    );
    if agent.log_text().contains("no usable root") {
        // A machine without CA certificates: the agent refuses to start the uplink at all.
        let status = agent.child.wait().unwrap();
        assert_eq!(status.code(), Some(1));
    } else {
        assert!(agent.terminate().success());
    }
}
