//! Simulator registers arrive at the broker as the right readings, over Modbus TCP and RTU, and
//! the gateway's status goes online (retained birth) and offline (on SIGTERM).

mod support;

use fieldlink_protocol::{Status, Value};
use fieldlink_sim::SerialSettings;
use support::*;

const SIM: &str = r#"
[[units]]
id = 1
[[units.points]]
table = "holding_register"
address = 0
type = "f32"
waveform = { kind = "constant", value = 230.5 }
[[units.points]]
table = "holding_register"
address = 2
type = "i16"
scale = 0.1
waveform = { kind = "constant", value = -12.3 }
[[units.points]]
table = "holding_register"
address = 3
type = "u32"
order = "CDAB"
waveform = { kind = "constant", value = 123456 }
[[units.points]]
table = "coil"
address = 0
waveform = { kind = "constant", value = true }
"#;

const POINTS: &str = r#"
[[devices.points]]
name = "voltage"
unit = "V"
table = "holding_register"
address = 0
type = "f32"
[[devices.points]]
name = "temp"
unit = "°C"
table = "holding_register"
address = 2
type = "i16"
scale = 0.1
[[devices.points]]
name = "energy"
unit = "Wh"
table = "holding_register"
address = 3
type = "u32"
order = "CDAB"
[[devices.points]]
name = "running"
table = "coil"
address = 0
type = "bool"
writable = true
"#;

fn check_values(rx: &Received, device: &str) {
    let latest = |m: &str| {
        rx.points()
            .filter(|p| p.device.as_str() == device && p.metric.as_str() == m)
            .last()
            .map(|p| p.value.clone())
    };
    assert_eq!(latest("voltage"), Some(Value::Number(230.5)));
    match latest("temp") {
        Some(Value::Number(x)) => assert!((x + 12.3).abs() < 1e-9, "{x}"),
        other => panic!("temp: {other:?}"),
    }
    assert_eq!(latest("energy"), Some(Value::Number(123456.0)));
    assert_eq!(latest("running"), Some(Value::Bool(true)));
}

fn has_all(rx: &Received, device: &str) -> bool {
    ["voltage", "temp", "energy", "running"].iter().all(|m| {
        rx.points()
            .any(|p| p.device.as_str() == device && p.metric.as_str() == *m)
    })
}

#[test]
fn tcp_readings_birth_and_offline_reach_the_broker() {
    let sim = SimServer::tcp(SIM);
    let broker = fieldlink_testkit::Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sub = Subscriber::start(broker.port(), "gw-tcp");
    let cfg = agent_config(
        dir.path(),
        "gw-tcp",
        &format!("url = \"{}\"", broker.url()),
        &tcp_device("meter", sim.port, 1, 200, POINTS),
    );
    let mut agent = AgentProc::start(&cfg, &dir.path().join("agent.log"));
    let rx = sub.wait("all four points", |r| has_all(r, "meter"));
    check_values(&rx, "meter");
    assert!(rx.undecodable.is_empty(), "{:?}", rx.undecodable);
    let b = &rx.telemetry[0];
    assert_eq!(b.gateway.as_str(), "gw-tcp");
    assert_eq!(b.boot_epoch, 1);
    assert!(rx.telemetry.windows(2).all(|w| w[1].seq > w[0].seq));
    // A subscriber arriving later gets the birth because it is retained.
    let late = Subscriber::start_with(broker.port(), "gw-tcp", |o| {
        o.set_client_id("late-subscriber".into());
    });
    let late_rx = late.wait("the retained birth", |r| !r.statuses.is_empty());
    let birth = match &late_rx.statuses[0] {
        (Status::Online(b), true) => b.clone(),
        other => panic!("expected a retained birth, got {other:?}"),
    };
    let meter = birth
        .devices
        .iter()
        .find(|d| d.name.as_str() == "meter")
        .unwrap();
    let volt = meter
        .points
        .iter()
        .find(|p| p.name.as_str() == "voltage")
        .unwrap();
    assert_eq!(volt.unit.as_deref(), Some("V"));
    assert!(meter
        .points
        .iter()
        .any(|p| p.name.as_str() == "running" && p.writable));
    assert!(birth.devices.iter().any(|d| d.name.as_str() == "_gateway"));
    assert!(rx
        .events
        .iter()
        .any(|e| matches!(&e.kind, fieldlink_protocol::EventKind::DeviceUp { device } if device.as_str() == "meter")));

    let status = agent.terminate();
    assert!(
        status.success(),
        "exit {status:?}; log:\n{}",
        agent.log_text()
    );
    let rx = sub.wait("the offline status", |r| {
        matches!(r.statuses.last(), Some((Status::Offline(_), _)))
    });
    assert!(matches!(&rx.statuses.last().unwrap().0, Status::Offline(d) if d.boot_epoch == 1));
    drop(late);
    let later = Subscriber::start_with(broker.port(), "gw-tcp", |o| {
        o.set_client_id("later-subscriber".into());
    });
    let r = later.wait("the retained status", |r| !r.statuses.is_empty());
    assert!(
        matches!(&r.statuses[0], (Status::Offline(_), true)),
        "offline is retained: {:?}",
        r.statuses
    );
}

#[test]
fn rtu_readings_reach_the_broker_as_json() {
    let pty = PtyPair::new();
    let sim = SimServer::tcp(SIM);
    let rtu = {
        let _guard = sim.rt.enter();
        sim.sim
            .start_rtu(SerialSettings::new(pty.a.clone(), 19200))
            .unwrap()
    };
    let broker = fieldlink_testkit::Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sub = Subscriber::start(broker.port(), "gw-rtu");
    let device = format!(
        r#"
[[devices]]
name = "bus-meter"
poll_interval_ms = 300
timeout_ms = 500
transport = {{ kind = "rtu", port = "{}", baud = 19200, unit_id = 1 }}
{POINTS}
"#,
        pty.b.display()
    );
    let cfg = agent_config(
        dir.path(),
        "gw-rtu",
        &format!("url = \"{}\"\nencoding = \"json\"", broker.url()),
        &device,
    );
    let mut agent = AgentProc::start(&cfg, &dir.path().join("agent.log"));
    let rx = sub.wait("all four RTU points", |r| has_all(r, "bus-meter"));
    check_values(&rx, "bus-meter");
    assert!(rx.undecodable.is_empty(), "{:?}", rx.undecodable);
    assert!(agent.terminate().success(), "{}", agent.log_text());
    let _ = sim.rt.block_on(rtu.stop());
}
