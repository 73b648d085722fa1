//! Modbus RTU over a socat pseudo-terminal pair: several unit ids on one bus, one of them dead.
//! The dead unit is backed off and must not starve the others.

mod support;

use std::collections::BTreeMap;

use fieldlink_drivers::health::DeviceCounters;
use fieldlink_drivers::modbus::StationOptions;
use fieldlink_drivers::{Acquisition, DriverEvent, HealthState};
use fieldlink_plumbing::backoff::Schedule;
use fieldlink_protocol::Value;
use fieldlink_sim::{SerialSettings, SimConfig, Simulator, Table};
use support::{number, point_map, PtyPair, PATIENCE};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn sim_config() -> String {
    let mut s = String::new();
    for unit in 1..=3u16 {
        s += &format!(
            r#"
[[units]]
id = {unit}
[[units.points]]
table = "holding_register"
address = 0
type = "u16"
waveform = {{ kind = "constant", value = {v} }}
[[units.points]]
table = "holding_register"
address = 1
type = "f32"
order = "CDAB"
waveform = {{ kind = "constant", value = {f} }}
[[units.points]]
name = "sp"
table = "holding_register"
address = 3
type = "i16"
writable = true
[[units.points]]
table = "coil"
address = 0
waveform = {{ kind = "constant", value = true }}
"#,
            v = unit * 100,
            f = f64::from(unit) + 0.5,
        );
    }
    s
}

fn device(name: &str, port: &str, unit: u8) -> String {
    format!(
        r#"{{"name": "{name}", "poll_interval_ms": 100, "timeout_ms": 200,
           "transport": {{"kind": "rtu", "port": "{port}", "baud": 19200, "unit_id": {unit},
                          "turnaround_us": 500}},
           "points": [
             {{"name": "v", "table": "holding_register", "address": 0}},
             {{"name": "f", "table": "holding_register", "address": 1, "type": "f32", "order": "CDAB"}},
             {{"name": "sp", "table": "holding_register", "address": 3, "type": "i16", "writable": true}},
             {{"name": "c", "table": "coil", "address": 0, "type": "bool"}}
           ]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_unit_is_backed_off_and_does_not_starve_the_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pty = PtyPair::new(dir.path());
    let sim = Simulator::from_config(SimConfig::from_toml_str(&sim_config()).unwrap()).unwrap();
    let rtu = sim
        .start_rtu(SerialSettings::new(&pty.a, 19_200))
        .expect("simulator opens its end of the bus");

    let port = pty.b();
    let map = point_map(&format!(
        r#"{{"devices": [{}, {}, {}, {}]}}"#,
        device("m1", &port, 1),
        device("m2", &port, 2),
        device("m3", &port, 3),
        device("dead", &port, 9),
    ));
    let (tx, mut rx) = mpsc::channel(256);
    let cancel = CancellationToken::new();
    let options = StationOptions {
        backoff: Schedule::fixed(200, 5_000),
        ..StationOptions::default()
    };
    let acq = Acquisition::start(&map, options, tx, cancel.clone());

    let mut readings: BTreeMap<String, usize> = BTreeMap::new();
    let mut health: BTreeMap<String, Vec<HealthState>> = BTreeMap::new();
    let target = 30;
    tokio::time::timeout(PATIENCE * 2, async {
        while ["m1", "m2", "m3"]
            .iter()
            .any(|d| readings.get(*d).copied().unwrap_or(0) < target)
        {
            match rx.recv().await.unwrap() {
                DriverEvent::Readings(r, _) => {
                    let unit = match r.device.as_str() {
                        "m1" => 1.0,
                        "m2" => 2.0,
                        "m3" => 3.0,
                        other => panic!("readings from {other}"),
                    };
                    // Each unit's own values: answers were never mixed up between units.
                    assert_eq!(number(&r, "v"), unit * 100.0);
                    assert_eq!(number(&r, "f"), unit + 0.5);
                    assert_eq!(support::value_of(&r, "c"), &Value::Bool(true));
                    assert!(r.failures.is_empty(), "{r:?}");
                    *readings.entry(r.device.to_string()).or_default() += 1;
                }
                DriverEvent::Health(h) => health
                    .entry(h.device.to_string())
                    .or_default()
                    .push(h.state),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("live units starved: {readings:?}, health {health:?}"));

    let dead = acq.counters("dead").unwrap();
    let dead_attempts = DeviceCounters::get(&dead.requests_total);
    assert!(DeviceCounters::get(&dead.timeouts_total) >= 1);
    // Without backoff the dead unit would be tried on every one of the ~30 cycles.
    assert!(
        dead_attempts <= 10,
        "dead unit tried {dead_attempts} times while the live ones polled {target} times"
    );
    assert_eq!(health["dead"], [HealthState::Offline]);
    for live in ["m1", "m2", "m3"] {
        assert_eq!(health[live], [HealthState::Online], "{live}");
    }

    // A write on the shared bus goes to the right unit only.
    let out = acq
        .write("m2", "sp", Value::Number(-321.0))
        .await
        .expect("write over RTU");
    assert_eq!(out.read_back, Some(Value::Number(-321.0)));
    assert_eq!(
        sim.read_register(2, Table::HoldingRegister, 3).unwrap(),
        (-321i16) as u16
    );
    assert_eq!(sim.read_register(1, Table::HoldingRegister, 3).unwrap(), 0);
    assert_eq!(sim.read_register(3, Table::HoldingRegister, 3).unwrap(), 0);

    cancel.cancel();
    acq.join().await;
    rtu.stop().await.unwrap();
}
