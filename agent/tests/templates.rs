//! Point blocks and device templates, on the shipped reference workload
//! (`docs/examples/agent/reference-workload.toml`: 10 Modbus TCP meters × 100 holding registers
//! every second): the file stays under 30 lines, expands to exactly the 1,000 points it stands
//! for, `check-config --points` lists them, and the real agent polls every one of them from the
//! simulator in one request per meter. Mistakes in the short form are named by key.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use fieldlink_agent::config;
use fieldlink_drivers::pointmap::{DeviceKind, ModbusLink, Table};
use fieldlink_drivers::DataType;
use support::*;

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/examples/agent/reference-workload.toml"
);
/// Where the example's meters are; tests put the simulator there instead.
const EXAMPLE_GATEWAY: &str = r#"host = "192.168.1.50", port = 502"#;
const METERS: u8 = 10;
const REGISTERS: u16 = 100;

fn example_text() -> String {
    std::fs::read_to_string(EXAMPLE).unwrap_or_else(|e| panic!("{EXAMPLE}: {e}"))
}

/// The raw value the simulator serves at `register` of `unit`: distinct everywhere.
fn raw_value(unit: u8, register: u16) -> u16 {
    u16::from(unit) * 1000 + register
}

#[test]
fn the_reference_workload_is_short_and_expands_to_its_1000_points() {
    let text = example_text();
    let lines = text.lines().count();
    assert!(lines < 30, "the reference workload takes {lines} lines");
    let c = config::parse(&text).unwrap_or_else(|e| panic!("{EXAMPLE}: {e}"));
    assert_eq!(c.point_map.devices.len(), usize::from(METERS));
    let mut total = 0;
    for (i, d) in c.point_map.devices.iter().enumerate() {
        let unit = i as u8 + 1;
        assert_eq!(d.name.as_str(), format!("meter-{unit}"));
        assert_eq!(d.poll_interval, Duration::from_secs(1));
        let DeviceKind::Modbus(m) = &d.kind else {
            panic!("{} is not a Modbus device", d.name)
        };
        assert_eq!(m.unit_id, unit);
        assert_eq!(
            m.link,
            ModbusLink::Tcp {
                host: "192.168.1.50".into(),
                port: 502
            }
        );
        let layout: Vec<(String, Table, u16, DataType)> = m
            .points
            .iter()
            .map(|p| (p.name.to_string(), p.table, p.address, p.data_type))
            .collect();
        let wanted: Vec<(String, Table, u16, DataType)> = (0..REGISTERS)
            .map(|r| (format!("r{r:03}"), Table::HoldingRegister, r, DataType::U16))
            .collect();
        assert_eq!(layout, wanted, "{}", d.name);
        assert!(m.points.iter().all(|p| p.scale == 0.1
            && p.offset == 0.0
            && p.unit.as_deref() == Some("kW")
            && !p.writable
            && p.poll_interval == Duration::from_secs(1)));
        // Goal A3: the 100 registers are one request.
        let plans = fieldlink_agent::summary::read_plans(m);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].1.len(), 1, "{}", d.name);
        total += m.points.len();
    }
    assert_eq!(total, 1_000);
}

#[test]
fn check_config_points_lists_every_expanded_point() {
    let out = Command::new(BIN)
        .args(["--config", EXAMPLE, "check-config", "--points"])
        .env_remove("FIELDLINK_AGENT__MQTT__URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("configuration OK"), "{stderr}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["device", "point", "table", "address", "type", "scale", "unit", "writable", "poll_ms"]
    );
    assert_eq!(rows.len(), 1 + 1_000, "{stdout}");
    let mut expected = Vec::new();
    for unit in 1..=METERS {
        for r in 0..REGISTERS {
            expected.push(vec![
                format!("meter-{unit}"),
                format!("r{r:03}"),
                "holding_register".into(),
                r.to_string(),
                "u16".into(),
                "0.1".into(),
                "kW".into(),
                "no".into(),
                "1000".into(),
            ]);
        }
    }
    assert_eq!(rows[1..], expected);

    // The list is for check-config only.
    let out = Command::new(BIN)
        .args(["--config", EXAMPLE, "run", "--points"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--points goes with check-config"));
}

/// `check-config` on `file`, which must refuse it with exit code 2; returns what it said.
fn refused(file: &std::path::Path) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(file)
        .arg("check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn mistakes_in_templates_and_blocks_are_named_by_key_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        r#"
[gateway]
id = "gw"
[mqtt]
url = "mqtt://127.0.0.1:1883"
[[templates]]
name = "meter"
points = [{ name = "r{n:03}", count = 100, table = "holding_register", address = 65500 }]
[[devices]]
name = "m1"
template = "meter"
transport = { kind = "tcp", host = "127.0.0.1" }
[[devices]]
name = "m2"
template = "metre"
transport = { kind = "tcp", host = "127.0.0.1" }
points = [{ name = "hr", count = 2, table = "holding_register", address = 0, stride = 0 }]
"#,
    )
    .unwrap();
    let stderr = refused(&file);
    for e in [
        "templates[meter].points[r{n:03}]: the block's 100 points run past address 65535 (the last would start at 65599)",
        "devices[m2].template: no template \"metre\" (defined: meter)",
        "devices[m2].points[hr]: the name has no `{n}` or `{address}`",
        "devices[m2].points[hr]: stride 0 is less than the 1 registers a u16 spans",
    ] {
        assert!(stderr.contains(e), "missing {e:?} in:\n{stderr}");
    }
    // Reported once, though two devices use the template (one by a misspelt name).
    assert_eq!(stderr.matches("templates[meter]").count(), 1, "{stderr}");

    // A mistyped key of the new form is a load error naming the dotted key.
    std::fs::write(
        &file,
        "[gateway]\nid = \"gw\"\n[mqtt]\nurl = \"mqtt://h\"\n[[templates]]\nname = \"t\"\n\
         points = [{ name = \"r{n}\", count = \"100\", table = \"coil\", address = 0 }]\n",
    )
    .unwrap();
    let stderr = refused(&file);
    assert!(stderr.contains("templates[0].points[0].count"), "{stderr}");
}

/// The simulator's ten units, each with its 100 holding registers at distinct constants.
fn reference_simulator() -> String {
    let mut s = String::from("[served_log]\ncapacity = 100000\n");
    for unit in 1..=METERS {
        s.push_str(&format!("[[units]]\nid = {unit}\n"));
        for r in 0..REGISTERS {
            s.push_str(&format!(
                "[[units.points]]\ntable = \"holding_register\"\naddress = {r}\ntype = \"u16\"\n\
                 waveform = {{ kind = \"constant\", value = {} }}\n",
                raw_value(unit, r)
            ));
        }
    }
    s
}

#[test]
fn the_agent_polls_the_reference_workload_from_the_simulator() {
    let sim = SimServer::tcp(&reference_simulator());
    let broker = fieldlink_testkit::Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = example_text();
    assert_eq!(text.matches(EXAMPLE_GATEWAY).count(), usize::from(METERS));
    let cfg = dir.path().join("reference-workload.toml");
    std::fs::write(
        &cfg,
        text.replace(
            EXAMPLE_GATEWAY,
            &format!(r#"host = "127.0.0.1", port = {}"#, sim.port),
        ),
    )
    .unwrap();
    let sub = Subscriber::start(broker.port(), "plant-7");
    let journal = dir.path().join("journal.db");
    let agent = AgentProc::start_with_env(
        &cfg,
        &dir.path().join("agent.log"),
        &[
            ("FIELDLINK_AGENT__MQTT__URL", broker.url().as_str()),
            ("FIELDLINK_AGENT__JOURNAL__PATH", journal.to_str().unwrap()),
        ],
    );
    let rx = sub.wait("a reading of each of the 1,000 points", |r| {
        let mut seen = std::collections::HashSet::new();
        for p in r.points() {
            seen.insert((p.device.as_str(), p.metric.as_str()));
        }
        seen.iter().filter(|(d, _)| d.starts_with("meter-")).count() == 1_000
    });
    let mut latest: BTreeMap<(String, String), f64> = BTreeMap::new();
    for p in rx.points() {
        if let fieldlink_protocol::Value::Number(x) = p.value {
            latest.insert((p.device.to_string(), p.metric.to_string()), x);
        }
    }
    for unit in 1..=METERS {
        for r in 0..REGISTERS {
            let key = (format!("meter-{unit}"), format!("r{r:03}"));
            let wanted = f64::from(raw_value(unit, r)) / 10.0;
            let got = latest.get(&key).copied();
            assert!(
                got.is_some_and(|x| (x - wanted).abs() < 1e-9),
                "{key:?}: {got:?}, wanted {wanted}; agent log:\n{}",
                agent.log_text()
            );
        }
    }
    // One read of registers 0..100 per meter and poll: nothing else was asked of the simulator.
    let served = sim.sim.served_log();
    assert!(!served.is_empty());
    assert!(
        served
            .iter()
            .all(|s| s.table == fieldlink_sim::Table::HoldingRegister
                && s.address == 0
                && s.words.len() == 100),
        "reads other than one of 100 registers per meter"
    );
    let units: std::collections::BTreeSet<u8> = served.iter().map(|s| s.unit).collect();
    assert_eq!(units.len(), usize::from(METERS));
    assert!(rx.undecodable.is_empty(), "{:?}", rx.undecodable);
}
