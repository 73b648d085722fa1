//! Commands end to end: a write lands in the simulator and is acknowledged executed with the
//! read-back; an expired command is not run; a command delivered twice (and again after a
//! restart) runs once; invalid commands are rejected with their reason; ping and read-now.

mod support;

use fieldlink_protocol::{json, AckStage, Command, CommandKind, Ident, Value};
use fieldlink_sim::Table;
use support::*;

const SIM: &str = r#"
[[units]]
id = 1
size = { holding_registers = 32 }
[[units.points]]
table = "holding_register"
address = 0
type = "f32"
waveform = { kind = "constant", value = 230.5 }
"#;

const POINTS: &str = r#"
[[devices.points]]
name = "voltage"
unit = "V"
table = "holding_register"
address = 0
type = "f32"
[[devices.points]]
name = "setpoint"
unit = "Hz"
table = "holding_register"
address = 10
type = "u16"
scale = 0.1
writable = true
"#;

const GW: &str = "gw-cmd";

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn command(cmd_id: &str, kind: CommandKind) -> Command {
    Command {
        id: id(cmd_id),
        created_at_ms: now_ms(),
        expires_at_ms: now_ms() + 60_000,
        kind,
    }
}

fn write(cmd_id: &str, point: &str, value: f64) -> Command {
    command(
        cmd_id,
        CommandKind::WritePoint {
            device: id("meter"),
            point: id(point),
            value: Value::Number(value),
        },
    )
}

struct Rig {
    sim: SimServer,
    _broker: fieldlink_testkit::Mosquitto,
    sub: Subscriber,
    dir: tempfile::TempDir,
    cfg: std::path::PathBuf,
    agent: AgentProc,
}

impl Rig {
    fn start() -> Rig {
        let sim = SimServer::tcp(SIM);
        let broker = fieldlink_testkit::Mosquitto::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sub = Subscriber::start(broker.port(), GW);
        let cfg = agent_config(
            dir.path(),
            GW,
            &format!("url = \"{}\"", broker.url()),
            &tcp_device("meter", sim.port, 1, 500, POINTS),
        );
        let agent = AgentProc::start(&cfg, &dir.path().join("agent.log"));
        // Subscribed to its command topic once the birth is out.
        sub.wait("the birth", |r| !r.statuses.is_empty());
        Rig {
            sim,
            _broker: broker,
            sub,
            dir,
            cfg,
            agent,
        }
    }

    fn send(&self, c: &Command) {
        self.sub
            .publish(&format!("fieldlink/v1/{GW}/cmd"), json::encode(c).unwrap());
    }

    fn send_raw(&self, payload: &str) {
        self.sub.publish(
            &format!("fieldlink/v1/{GW}/cmd"),
            payload.as_bytes().to_vec(),
        );
    }

    /// Waits for the final acknowledgement of `cmd_id`.
    fn final_ack(&self, cmd_id: &str) -> fieldlink_protocol::Ack {
        let rx = self.sub.wait(&format!("the final ack of {cmd_id}"), |r| {
            r.acks_for(cmd_id).iter().any(|a| a.stage.is_final())
        });
        let acks = rx.acks_for(cmd_id);
        assert_eq!(acks[0].stage, AckStage::Received, "{acks:?}");
        acks.into_iter()
            .find(|a| a.stage.is_final())
            .unwrap()
            .clone()
    }

    fn writes_served(&self) -> u64 {
        let s = self.sim.sim.stats();
        [5u8, 6, 15, 16, 22, 23]
            .iter()
            .map(|f| s.requests_for(1, *f))
            .sum()
    }
}

#[test]
fn write_expiry_duplicates_and_rejections() {
    let mut rig = Rig::start();

    // A write lands in the simulator; the ack carries the value read back.
    rig.send(&write("w-1", "setpoint", 42.5));
    let ack = rig.final_ack("w-1");
    assert_eq!(ack.stage, AckStage::Executed, "{ack:?}");
    assert_eq!(ack.result, Some(Value::Number(42.5)));
    assert_eq!(
        rig.sim
            .sim
            .read_register(1, Table::HoldingRegister, 10)
            .unwrap(),
        425
    );

    // Expired: acknowledged as such, the register keeps its value.
    let mut expired = write("w-old", "setpoint", 9.9);
    expired.created_at_ms = now_ms() - 120_000;
    expired.expires_at_ms = now_ms() - 60_000;
    rig.send(&expired);
    let ack = rig.final_ack("w-old");
    assert_eq!(ack.stage, AckStage::Expired, "{ack:?}");
    assert_eq!(
        rig.sim
            .sim
            .read_register(1, Table::HoldingRegister, 10)
            .unwrap(),
        425
    );

    // Delivered twice: runs once.
    let writes_before = rig.writes_served();
    let dup = write("w-dup", "setpoint", 7.0);
    rig.send(&dup);
    rig.send(&dup);
    let ack = rig.final_ack("w-dup");
    assert_eq!(ack.stage, AckStage::Executed);
    // A ping behind both copies: once it is acknowledged, both copies have been handled.
    rig.send(&command("p-1", CommandKind::Ping));
    assert_eq!(rig.final_ack("p-1").stage, AckStage::Executed);
    assert_eq!(
        rig.writes_served() - writes_before,
        1,
        "one write for two deliveries"
    );
    assert_eq!(
        rig.sub.snapshot().acks_for("w-dup").len(),
        2,
        "received + executed once"
    );
    assert_eq!(
        rig.sim
            .sim
            .read_register(1, Table::HoldingRegister, 10)
            .unwrap(),
        70
    );

    // Rejections name their reason.
    rig.send(&write("w-ro", "voltage", 1.0));
    let ack = rig.final_ack("w-ro");
    assert_eq!(ack.stage, AckStage::Rejected);
    assert!(
        ack.error.as_deref().unwrap().contains("not writable"),
        "{ack:?}"
    );
    rig.send(&write("w-range", "setpoint", 100_000.0));
    let ack = rig.final_ack("w-range");
    assert_eq!(ack.stage, AckStage::Rejected, "{ack:?}");
    let mut unknown = write("w-nodev", "setpoint", 1.0);
    unknown.kind = CommandKind::WritePoint {
        device: id("nope"),
        point: id("setpoint"),
        value: Value::Number(1.0),
    };
    rig.send(&unknown);
    let ack = rig.final_ack("w-nodev");
    assert_eq!(ack.stage, AckStage::Rejected);
    assert!(
        ack.error.as_deref().unwrap().contains("no device"),
        "{ack:?}"
    );
    rig.send_raw(&format!(
        r#"{{"id":"bad-1","created_at_ms":{},"expires_at_ms":{},"command":"set_poll_interval","device":"meter","interval_ms":1}}"#,
        now_ms(),
        now_ms() + 60_000
    ));
    let ack = rig.final_ack("bad-1");
    assert_eq!(ack.stage, AckStage::Rejected);
    assert!(
        ack.error.as_deref().unwrap().contains("interval_ms"),
        "{ack:?}"
    );
    assert_eq!(
        rig.sim
            .sim
            .read_register(1, Table::HoldingRegister, 10)
            .unwrap(),
        70,
        "no rejected command wrote"
    );

    // Read now and a new poll interval.
    rig.send(&command(
        "r-1",
        CommandKind::ReadNow {
            device: id("meter"),
            points: vec![id("voltage")],
        },
    ));
    let ack = rig.final_ack("r-1");
    assert_eq!(ack.result, Some(Value::Number(230.5)), "{ack:?}");
    rig.send(&command(
        "i-1",
        CommandKind::SetPollInterval {
            device: id("meter"),
            interval_ms: 200,
        },
    ));
    assert_eq!(rig.final_ack("i-1").stage, AckStage::Executed);

    // After a restart the ledger still knows w-dup: a redelivery does not run it again.
    assert!(rig.agent.terminate().success());
    let log = rig.dir.path().join("agent2.log");
    rig.agent = AgentProc::start(&rig.cfg, &log);
    let before = rig.writes_served();
    rig.send(&dup);
    rig.send(&command("p-2", CommandKind::Ping));
    assert_eq!(rig.final_ack("p-2").stage, AckStage::Executed);
    assert_eq!(rig.writes_served(), before);
    assert_eq!(rig.sub.snapshot().acks_for("w-dup").len(), 2);
    assert!(rig.agent.terminate().success(), "{}", rig.agent.log_text());
}

#[test]
fn apply_config_swaps_devices_and_refuses_bad_documents() {
    let mut rig = Rig::start();
    let text = std::fs::read_to_string(&rig.cfg).unwrap();
    // The new configuration renames the device; the journal and session stay.
    let renamed = text.replace("name = \"meter\"", "name = \"meter2\"");
    rig.send(&command(
        "c-1",
        CommandKind::ApplyConfig {
            config: fieldlink_protocol::ConfigDocument::Toml(renamed.clone()),
        },
    ));
    let ack = rig.final_ack("c-1");
    assert_eq!(ack.stage, AckStage::Executed, "{ack:?}");
    rig.sub.wait("readings of the renamed device", |r| {
        r.points().any(|p| p.device.as_str() == "meter2")
    });
    // Kept in the state directory; the operator's file is never written.
    assert_eq!(std::fs::read_to_string(&rig.cfg).unwrap(), text);
    let applied = rig.dir.path().join("applied.toml");
    assert!(
        std::fs::read_to_string(&applied)
            .unwrap()
            .ends_with(&renamed),
        "saved in the state directory"
    );
    let rx = rig.sub.wait("a birth with the new device", |r| {
        r.statuses.iter().any(|(s, _)| match s {
            fieldlink_protocol::Status::Online(b) => {
                b.devices.iter().any(|d| d.name.as_str() == "meter2")
            }
            _ => false,
        })
    });
    assert!(rx
        .events
        .iter()
        .any(|e| matches!(e.kind, fieldlink_protocol::EventKind::ConfigApplied { .. })));

    // An invalid document is refused and nothing changes.
    let broken = renamed.replace("address = 10", "address = 70000");
    rig.send(&command(
        "c-2",
        CommandKind::ApplyConfig {
            config: fieldlink_protocol::ConfigDocument::Toml(broken),
        },
    ));
    let ack = rig.final_ack("c-2");
    assert_eq!(ack.stage, AckStage::Rejected, "{ack:?}");
    // Changing the broker needs a restart.
    let moved = renamed.replace("keep_alive_s = 5", "keep_alive_s = 6");
    rig.send(&command(
        "c-3",
        CommandKind::ApplyConfig {
            config: fieldlink_protocol::ConfigDocument::Toml(moved),
        },
    ));
    let ack = rig.final_ack("c-3");
    assert_eq!(ack.stage, AckStage::Rejected);
    assert!(ack.error.as_deref().unwrap().contains("[mqtt]"), "{ack:?}");
    assert!(std::fs::read_to_string(&applied)
        .unwrap()
        .ends_with(&renamed));
    assert!(rig.agent.terminate().success(), "{}", rig.agent.log_text());

    // A restart keeps the applied configuration while the operator's file is unchanged...
    let log = rig.dir.path().join("agent.log");
    let births = |device: &'static str| {
        move |r: &Received| {
            r.statuses.iter().any(|(s, _)| match s {
                fieldlink_protocol::Status::Online(b) => {
                    b.boot_epoch >= 2 && b.devices.iter().any(|d| d.name.as_str() == device)
                }
                _ => false,
            })
        }
    };
    rig.agent = AgentProc::start(&rig.cfg, &log);
    rig.sub.wait(
        "a birth with the applied device after a restart",
        births("meter2"),
    );
    assert!(rig.agent.terminate().success(), "{}", rig.agent.log_text());

    // ...and once the operator edits the file, the file wins and the applied copy is set aside.
    std::fs::write(
        &rig.cfg,
        text.replace("name = \"meter\"", "name = \"meter3\""),
    )
    .unwrap();
    rig.agent = AgentProc::start(&rig.cfg, &log);
    rig.sub
        .wait("a birth with the operator's device", births("meter3"));
    assert!(!applied.exists());
    assert!(rig.dir.path().join("applied.toml.superseded").exists());
    assert!(rig.agent.terminate().success(), "{}", rig.agent.log_text());
}
