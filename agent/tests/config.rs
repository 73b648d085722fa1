//! Configuration: the shipped example, environment overrides, errors that name their key, and
//! the binary's subcommands and exit codes.

use std::path::Path;
use std::process::{Command, Output};

use fieldlink_agent::config::{self, ConfigError};

const BIN: &str = env!("CARGO_BIN_EXE_fieldlink-agent");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/agent.example.toml");

#[test]
fn check_config_accepts_the_shipped_example_and_prints_the_read_plan() {
    let out = Command::new(BIN)
        .args(["--config", EXAMPLE, "check-config"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("gateway site-1-gw"), "{stdout}");
    assert!(stdout.contains("meter-1"), "{stdout}");
    // The meter's three registers 0..11 are one read.
    assert!(
        stdout.contains("1 request(s): holding_register 0+11"),
        "{stdout}"
    );
    assert!(stdout.contains("configuration OK"), "{stdout}");
}

#[test]
fn print_default_config_is_the_example_and_validates() {
    let out = Command::new(BIN)
        .arg("print-default-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, std::fs::read_to_string(EXAMPLE).unwrap());
    let c = config::parse(&text).unwrap();
    assert_eq!(c.gateway.as_str(), "site-1-gw");
    assert_eq!(c.point_map.devices.len(), 6);
    assert!(c.mqtt.tls.is_some());
    // The template's two interleaved blocks, its plain point, and inverter-2's own block.
    let inverter = c.point_map.device("inverter-2").unwrap();
    assert_eq!(inverter.poll_interval, std::time::Duration::from_secs(10));
    let fieldlink_drivers::pointmap::DeviceKind::Modbus(m) = &inverter.kind else {
        panic!("inverter-2 is Modbus")
    };
    let at = |name: &str| m.point(name).map(|p| p.address);
    assert_eq!(m.points.len(), 19);
    assert_eq!(
        [
            at("string_1_voltage"),
            at("string_1_current"),
            at("string_8_current")
        ],
        [Some(100), Some(102), Some(130)]
    );
    assert_eq!([at("fan_1"), at("fan_2")], [Some(200), Some(201)]);
}

#[test]
fn version_and_bad_usage() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("fieldlink-agent "));
    let out = Command::new(BIN).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn invalid_configuration_names_every_bad_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        r#"
[gateway]
id = "bad id"
[mqtt]
url = "mqtt://broker:99999"
encoding = "xml"
[journal]
durability = "sometimes"
[[reporting.rules]]
device = "nope"
[[devices]]
name = "m"
transport = { kind = "tcp", host = "127.0.0.1" }
[[devices.points]]
name = "p"
table = "holding_register"
address = 65535
type = "u32"
"#,
    )
    .unwrap();
    let err = config::load(&path).unwrap_err();
    let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
    for want in [
        "gateway.id",
        "mqtt.url",
        "mqtt.encoding",
        "journal.durability",
        "reporting.rules[0].device",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("devices[") && p.contains("points[")),
        "{paths:?}"
    );
    let out = check_config(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mqtt.encoding"));
    // `run` refuses it the same way, before starting anything.
    let out = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unknown_keys_and_missing_files_are_load_errors() {
    assert!(matches!(
        config::parse("[gateway]\nid = \"g\"\ncolour = 1\n"),
        Err(ConfigError::Load(_))
    ));
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/agent.toml", "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn environment_overrides_keys() {
    let out = Command::new(BIN)
        .args(["--config", EXAMPLE, "check-config"])
        .env("FIELDLINK_AGENT__MQTT__URL", "mqtt://10.0.0.9:1884")
        .env("FIELDLINK_AGENT__GATEWAY__ID", "other-gw")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("mqtt://10.0.0.9:1884"), "{stdout}");
    assert!(stdout.contains("gateway other-gw"), "{stdout}");
    let out = Command::new(BIN)
        .args(["--config", EXAMPLE, "check-config"])
        .env("FIELDLINK_AGENT__MQTT__MAX_IN_FLIGHT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mqtt.max_in_flight"));
}

/// A minimal valid file, with `mqtt` and `device` lines to vary.
fn file_with(mqtt: &str, device: &str) -> String {
    format!(
        "[gateway]\nid = \"g\"\n[mqtt]\n{mqtt}\n[[devices]]\nname = \"m\"\n{device}\n\
         [[devices.points]]\nname = \"p\"\ntable = \"holding_register\"\naddress = 0\n\
         type = \"u16\"\n"
    )
}

const TCP: &str = "transport = { kind = \"tcp\", host = \"127.0.0.1\", port = 502, unit_id = 1 }";

#[test]
fn wrong_types_are_errors_that_name_the_dotted_key() {
    assert!(config::parse(&file_with("url = \"mqtt://b:1883\"", TCP)).is_ok());
    // A number written as a string is not coerced.
    let text = file_with(
        "url = \"mqtt://b:1883\"",
        &format!("poll_interval_ms = \"1000\"\n{TCP}"),
    );
    let Err(ConfigError::Load(msg)) = config::parse(&text) else {
        panic!("a string for a number was accepted")
    };
    assert!(msg.contains("devices[0].poll_interval_ms"), "{msg}");
    assert!(msg.contains("string"), "{msg}");
    // An out-of-range unit id is named down to its key.
    let text = file_with(
        "url = \"mqtt://b:1883\"",
        "transport = { kind = \"tcp\", host = \"127.0.0.1\", port = 502, unit_id = 300 }",
    );
    let err = config::parse(&text).expect_err("unit_id 300 was accepted");
    let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["devices[m].transport.unit_id"], "{err}");
    // The real binary says the same and exits 2; a type error names the file too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, &text).unwrap();
    let out = check_config(&path);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("devices[m].transport.unit_id"), "{stderr}");
    assert!(stderr.contains("300"), "{stderr}");
}

#[test]
fn the_broker_url_is_required() {
    let err = config::parse(&file_with("", TCP)).unwrap_err();
    let problem = err
        .problems()
        .iter()
        .find(|p| p.path == "mqtt.url")
        .expect("mqtt.url named");
    assert!(problem.problem.contains("required"), "{problem:?}");
}

#[test]
fn check_config_opens_every_tls_file_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fieldlink_testkit::tls::TestPki::new(dir.path(), "ca").unwrap();
    let client = pki.client("g").unwrap();
    let not_pem = dir.path().join("not-a-certificate.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let run = |ca: &Path, cert: &Path, key: &Path| check_config_with_tls(dir.path(), ca, cert, key);
    let ok = run(pki.ca_cert(), &client.cert, &client.key);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for (ca, cert, key, want) in [
        (
            not_pem.as_path(),
            client.cert.as_path(),
            client.key.as_path(),
            "mqtt.ca_file",
        ),
        (
            pki.ca_cert(),
            not_pem.as_path(),
            client.key.as_path(),
            "mqtt.client_cert",
        ),
        (
            pki.ca_cert(),
            client.cert.as_path(),
            client.cert.as_path(),
            "mqtt.client_key",
        ),
    ] {
        let out = run(ca, cert, key);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{want}: {stderr}");
        assert!(stderr.contains(want), "{want}: {stderr}");
    }
}

#[test]
fn check_config_refuses_certificates_out_of_their_dates_and_warns_of_one_expiring_soon() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fieldlink_testkit::tls::TestPki::new(dir.path(), "ca").unwrap();
    let valid = pki.client("g").unwrap();
    let dated = pki.dated_clients(std::time::SystemTime::now(), 12).unwrap();
    let (expired, future, soon) = (dated.expired, dated.not_yet_valid, dated.expiring);
    let check = |ca: &Path, cert: &Path, key: &Path| {
        let out = check_config_with_tls(dir.path(), ca, cert, key);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = check(pki.ca_cert(), &valid.cert, &valid.key);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("warning"), "{text}");

    // An expired or not-yet-valid certificate, as the CA file or as the client certificate:
    // exit 2, naming the key, the file and the dates (not before, not after, now).
    let ca = pki.ca_cert();
    for (key, bad, word) in [
        ("mqtt.ca_file", &expired, "expired on"),
        ("mqtt.client_cert", &expired, "expired on"),
        ("mqtt.ca_file", &future, "not valid before"),
        ("mqtt.client_cert", &future, "not valid before"),
    ] {
        let (code, text) = if key == "mqtt.ca_file" {
            check(&bad.cert, &valid.cert, &valid.key)
        } else {
            check(ca, &bad.cert, &bad.key)
        };
        assert_eq!(code, Some(2), "{key}: {text}");
        assert!(text.contains(&format!("{key}: ")), "{key}: {text}");
        assert!(text.contains(bad.cert.to_str().unwrap()), "{key}: {text}");
        assert!(text.contains(word), "{key}: {text}");
        assert_eq!(rfc3339_stamps(&text), 4, "{key}: {text}");
    }

    // One that expires within 30 days passes with a warning naming it.
    let (code, text) = check(pki.ca_cert(), &soon.cert, &soon.key);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("warning: mqtt.client_cert: ") && text.contains("in 12 days"),
        "{text}"
    );
    assert!(text.contains(soon.cert.to_str().unwrap()), "{text}");
}

/// How many RFC 3339 UTC stamps (`2025-01-31T12:00:00Z`) `text` holds.
fn rfc3339_stamps(text: &str) -> usize {
    text.split(|c: char| c.is_whitespace() || "(),;".contains(c))
        .filter(|w| {
            let b = w.trim_end_matches(':').as_bytes();
            b.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'Z'
        })
        .count()
}

/// `check-config` of a minimal file in `dir` whose broker uses TLS with these files.
fn check_config_with_tls(dir: &Path, ca: &Path, cert: &Path, key: &Path) -> Output {
    let path = dir.join("agent.toml");
    let mqtt = format!(
        "url = \"mqtts://b:8883\"\nca_file = {:?}\nclient_cert = {:?}\nclient_key = {:?}",
        ca.display().to_string(),
        cert.display().to_string(),
        key.display().to_string()
    );
    std::fs::write(&path, file_with(&mqtt, TCP)).unwrap();
    check_config(&path)
}

/// `check-config` of the file at `path`.
fn check_config(path: &Path) -> Output {
    Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .output()
        .unwrap()
}

#[test]
fn log_filters_are_target_directives_checked_before_start() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.db");
    let text = format!(
        "{}[journal]\npath = {:?}\n",
        file_with("url = \"mqtt://127.0.0.1:1\"", TCP),
        journal.to_str().unwrap()
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!("{text}[logging]\nlevel = \"info,rumqttc=loud\"\n"),
    )
    .unwrap();
    let out = check_config(&bad);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("logging.level"));
    for refused in [
        "info,rumqttc=loud",
        "fieldlink_agent[uplink]=debug",
        "x[{a=1}]",
    ] {
        let e = config::log_filter(refused).unwrap_err();
        assert!(e.contains(refused), "{e}");
    }
    assert!(config::log_filter("info,fieldlink_agent::uplink=debug,rumqttc=off").is_ok());

    // A refused broker: the uplink warns at once, and says it starts at info level.
    let good = dir.path().join("good.toml");
    std::fs::write(&good, &text).unwrap();
    let run_with = |filter: &str| {
        let mut child = Command::new(BIN)
            .args(["--config", good.to_str().unwrap(), "run"])
            .env("RUST_LOG", filter)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        child.kill().unwrap();
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr).into_owned()
    };
    let chosen = run_with("warn,fieldlink_agent::uplink=info");
    assert!(chosen.contains("uplink starting"), "{chosen}");
    assert!(chosen.contains("cannot connect to the broker"), "{chosen}");
    let quiet = run_with("warn");
    assert!(!quiet.contains("uplink starting"), "{quiet}");
    assert!(quiet.contains("cannot connect to the broker"), "{quiet}");
    // A span filter is not a target directive: named, and the configured level (info) applies.
    let refused = run_with("fieldlink_agent[uplink]=debug");
    assert!(refused.contains("RUST_LOG refused"), "{refused}");
    assert!(refused.contains("span and field filters"), "{refused}");
    assert!(refused.contains("uplink starting"), "{refused}");
}
