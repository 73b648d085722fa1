//! Interoperability with pymodbus, an implementation we did not write: every data type in all
//! four word orders, over Modbus TCP and over RTU on a socat pty pair, read back exactly; writes
//! land in the registers a hand-computed layout says.
//!
//! Needs `python3` with `pymodbus` and `pyserial` (`pip install pymodbus pyserial`) and `socat`;
//! the tests fail with a message saying so when they are missing.

mod support;

use fieldlink_drivers::modbus::StationOptions;
use fieldlink_drivers::{Acquisition, Readings};
use fieldlink_protocol::Value;
use serde_json::json;
use support::{point_map, value_of, PtyPair, PymodbusServer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const ORDERS: [&str; 4] = ["ABCD", "CDAB", "BADC", "DCBA"];

/// Values whose bytes all differ, so any order mix-up shows. 64-bit integers stay below 2^53 so
/// the reading's f64 holds them exactly.
fn samples() -> Vec<(&'static str, serde_json::Value, Value)> {
    vec![
        ("u16", json!(0xA1B2), Value::Number(41394.0)),
        ("i16", json!(-12345), Value::Number(-12345.0)),
        ("u32", json!(0xA1B2_C3D4u32), Value::Number(2_712_847_316.0)),
        ("i32", json!(-123_456_789), Value::Number(-123_456_789.0)),
        (
            "u64",
            json!(0x001A_2B3C_4D5E_6F70u64),
            Value::Number(0x001A_2B3C_4D5E_6F70u64 as f64),
        ),
        (
            "i64",
            json!(-0x0012_3456_789A_BCDEi64),
            Value::Number(-0x0012_3456_789A_BCDEi64 as f64),
        ),
        ("f32", json!(-1234.5625), Value::Number(-1234.5625)),
        (
            "f64",
            json!(std::f64::consts::PI),
            Value::Number(std::f64::consts::PI),
        ),
        ("string:4", json!("Fieldlnk"), Value::Str("Fieldlnk".into())),
    ]
}

/// The server layout and the device's points for it, with the expected readings.
fn layout_and_points() -> (
    serde_json::Value,
    Vec<serde_json::Value>,
    Vec<(String, Value)>,
) {
    let mut holding = Vec::new();
    let mut input = Vec::new();
    let mut points = Vec::new();
    let mut expected = Vec::new();
    let mut address = 0u16;
    for order in ORDERS {
        for (kind, raw, value) in samples() {
            let count = match kind {
                "u16" | "i16" => 1,
                "u32" | "i32" | "f32" => 2,
                _ => 4,
            };
            let name = format!("{}_{order}", kind.replace(':', "_"));
            holding.push(json!({"address": address, "type": kind, "order": order, "value": raw}));
            points.push(
                json!({"name": name, "table": "holding_register", "address": address,
                               "type": kind, "order": order}),
            );
            expected.push((name.clone(), value.clone()));
            // The same value once more in the input registers, read through the other function.
            input.push(json!({"address": address, "type": kind, "order": order, "value": raw}));
            let ir_name = format!("ir_{name}");
            points.push(
                json!({"name": ir_name, "table": "input_register", "address": address,
                               "type": kind, "order": order}),
            );
            expected.push((ir_name, value));
            // A register of padding between points, read through by the planner.
            address += count + 1;
        }
    }
    // Bits of a status word, coils and discrete inputs.
    holding.push(json!({"address": 400, "type": "u16", "value": 0b1010_0000_0000_0101}));
    for (bit, set) in [
        (0, true),
        (1, false),
        (2, true),
        (13, true),
        (15, true),
        (14, false),
    ] {
        let name = format!("status_bit{bit}");
        points.push(
            json!({"name": name, "table": "holding_register", "address": 400,
                           "type": format!("bit:{bit}")}),
        );
        expected.push((name, Value::Bool(set)));
    }
    let coils = [true, false, true, true, false, false, false, true, true];
    let mut coil_layout = Vec::new();
    let mut di_layout = Vec::new();
    for (i, c) in coils.iter().enumerate() {
        coil_layout.push(json!({"address": 10 + i, "value": c}));
        di_layout.push(json!({"address": 20 + i, "value": !c}));
        points.push(
            json!({"name": format!("coil{i}"), "table": "coil", "address": 10 + i, "type": "bool"}),
        );
        points.push(json!({"name": format!("di{i}"), "table": "discrete_input", "address": 20 + i, "type": "bool"}));
        expected.push((format!("coil{i}"), Value::Bool(*c)));
        expected.push((format!("di{i}"), Value::Bool(!c)));
    }
    // Writable points for the write test, in plain memory.
    for (name, kind, order, address) in [
        ("w_u32_cdab", "u32", "CDAB", 500),
        ("w_f32_badc", "f32", "BADC", 510),
        ("w_i16", "i16", "ABCD", 520),
        ("w_coil", "bool", "ABCD", 600),
    ] {
        let table = if kind == "bool" {
            "coil"
        } else {
            "holding_register"
        };
        points.push(
            json!({"name": name, "table": table, "address": address, "type": kind,
                           "order": order, "writable": true}),
        );
    }
    for a in 500..=523u16 {
        points.push(json!({"name": format!("raw{a}"), "table": "holding_register", "address": a}));
    }
    let layout = json!({
        "size": 1000,
        "units": [1, 2],
        "holding_registers": holding,
        "input_registers": input,
        "coils": coil_layout,
        "discrete_inputs": di_layout,
    });
    (layout, points, expected)
}

fn device_json(
    name: &str,
    transport: serde_json::Value,
    points: &[serde_json::Value],
) -> serde_json::Value {
    json!({"name": name, "poll_interval_ms": 3_600_000, "timeout_ms": 1000, "max_gap": 4,
           "transport": transport, "points": points})
}

fn check(r: &Readings, expected: &[(String, Value)]) {
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    for (name, value) in expected {
        assert_eq!(value_of(r, name), value, "{} {name}", r.device);
    }
}

fn raw(r: &Readings, from: u16, n: u16) -> Vec<u16> {
    (from..from + n)
        .map(|a| match value_of(r, &format!("raw{a}")) {
            Value::Number(x) => *x as u16,
            other => panic!("raw{a} is {other:?}"),
        })
        .collect()
}

async fn read_write_and_check(acq: &Acquisition, device: &str, expected: &[(String, Value)]) {
    let r = acq.read_now(device).await.expect("read all points");
    check(&r, expected);

    // Writes, checked against registers laid out by hand (not by our codec).
    let w = |point: &'static str, v: Value| async move {
        acq.write(device, point, v)
            .await
            .unwrap_or_else(|e| panic!("write {point}: {e}"))
    };
    w("w_u32_cdab", Value::Number(f64::from(0x1234_5678u32))).await;
    w("w_f32_badc", Value::Number(1.0)).await; // 0x3F800000
    w("w_i16", Value::Number(-2.0)).await;
    let out = w("w_coil", Value::Bool(true)).await;
    assert_eq!(out.read_back, Some(Value::Bool(true)));
    let r = acq.read_now(device).await.expect("read after writes");
    assert_eq!(raw(&r, 500, 2), [0x5678, 0x1234]);
    assert_eq!(raw(&r, 510, 2), [0x803F, 0x0000]);
    assert_eq!(raw(&r, 520, 1), [0xFFFE]);
    assert_eq!(value_of(&r, "w_coil"), &Value::Bool(true));
    assert_eq!(value_of(&r, "w_u32_cdab"), &Value::Number(305_419_896.0));
}

fn start(
    map_json: serde_json::Value,
) -> (
    Acquisition,
    CancellationToken,
    mpsc::Receiver<fieldlink_drivers::DriverEvent>,
) {
    let map = point_map(&map_json.to_string());
    let (tx, rx) = mpsc::channel(256);
    let cancel = CancellationToken::new();
    let acq = Acquisition::start(&map, StationOptions::default(), tx, cancel.clone());
    (acq, cancel, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymodbus_tcp_all_types_all_orders() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, points, expected) = layout_and_points();
    let layout_path = dir.path().join("layout.json");
    std::fs::write(&layout_path, layout.to_string()).unwrap();
    let port = support::free_port().to_string();
    let _server = PymodbusServer::start(&[
        "--layout",
        layout_path.to_str().unwrap(),
        "tcp",
        "--port",
        &port,
    ]);
    let transport = json!({"kind": "tcp", "host": "127.0.0.1", "port": port.parse::<u16>().unwrap(), "unit_id": 1});
    let (acq, cancel, _rx) = start(json!({"devices": [device_json("py-tcp", transport, &points)]}));
    read_write_and_check(&acq, "py-tcp", &expected).await;
    cancel.cancel();
    acq.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymodbus_rtu_all_types_all_orders_two_units_on_one_bus() {
    let dir = tempfile::tempdir().unwrap();
    let pty = PtyPair::new(dir.path());
    let (layout, points, expected) = layout_and_points();
    let layout_path = dir.path().join("layout.json");
    std::fs::write(&layout_path, layout.to_string()).unwrap();
    let _server = PymodbusServer::start(&[
        "--layout",
        layout_path.to_str().unwrap(),
        "rtu",
        "--device",
        &pty.a(),
        "--baud",
        "38400",
    ]);
    let transport =
        |unit: u8| json!({"kind": "rtu", "port": pty.b(), "baud": 38400, "unit_id": unit});
    let (acq, cancel, _rx) = start(json!({"devices": [
        device_json("py-rtu-1", transport(1), &points),
        device_json("py-rtu-2", transport(2), &points),
    ]}));
    read_write_and_check(&acq, "py-rtu-1", &expected).await;
    let r = acq.read_now("py-rtu-2").await.expect("second unit");
    check(&r, &expected);
    cancel.cancel();
    acq.join().await;
}
