//! The simulator on real serial devices: Modbus RTU with several units on one bus, and the
//! serial-line sensor, each over a `socat` pseudo-terminal pair.

mod common;

use common::{sim, unanswered, within, PtyPair, NO_ANSWER};
use fieldlink_drivers::codec::{decode, DataType, TypedValue, WordOrder};
use fieldlink_sim::{ExceptionCode, SerialSettings, Table};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::Slave;
use tokio_serial::SerialStream;

const BAUD: u32 = 38_400;

const BUS: &str = r#"
[served_log]
capacity = 100

[[units]]
id = 1
[[units.points]]
table = "holding_register"
address = 0
type = "f32"
order = "BADC"
waveform = { kind = "ramp", min = 0, max = 10, period_s = 1 }
[[units.points]]
table = "holding_register"
address = 2
type = "string:2"
waveform = { kind = "constant", value = "U1" }

[[units]]
id = 2
size = { holding_registers = 4, coils = 4 }
[[units.points]]
table = "holding_register"
address = 0
type = "i32"
order = "CDAB"
waveform = { kind = "constant", value = -70000 }
[[units.points]]
table = "holding_register"
address = 10
type = "u16"
writable = true
[[units.faults.exceptions]]
table = "holding_register"
address = 20
code = 6

[[units]]
id = 3
faults = { silent = true }
[[units.points]]
table = "holding_register"
address = 0

[[units]]
id = 4
faults = { drop_every = 2 }
[[units.points]]
table = "holding_register"
address = 0
waveform = { kind = "constant", value = 44 }
"#;

fn open(path: &std::path::Path) -> SerialStream {
    SerialStream::open(&tokio_serial::new(path.to_string_lossy(), BAUD)).expect("open pty")
}

fn rtu_client(path: &std::path::Path, unit: u8) -> Context {
    tokio_modbus::client::rtu::attach_slave(open(path), Slave(unit))
}

#[tokio::test]
async fn several_units_share_one_rtu_bus_and_a_dead_one_starves_nobody() {
    let pty = PtyPair::new();
    let sim = sim(BUS);
    let server = sim.start_rtu(SerialSettings::new(&pty.a, BAUD)).unwrap();
    let mut bus = rtu_client(&pty.b, 1);

    for round in 0..3 {
        bus.set_slave(Slave(1));
        let one = within("unit 1", bus.read_holding_registers(0, 4))
            .await
            .unwrap()
            .unwrap();
        let served = sim.served_log().last().cloned().unwrap();
        assert_eq!((served.unit, &served.words), (1, &one));
        let ramp = 10.0 * served.elapsed.as_secs_f64().fract();
        let value = decode(&one[..2], DataType::F32, WordOrder::Badc).unwrap();
        assert!(
            (value.as_f64().unwrap() - ramp).abs() < 1e-4,
            "{value:?} vs {ramp}"
        );
        assert_eq!(
            decode(&one[2..], DataType::String(2), WordOrder::Abcd).unwrap(),
            TypedValue::Str("U1".into())
        );

        bus.set_slave(Slave(2));
        let two = within("unit 2", bus.read_holding_registers(0, 2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            decode(&two, DataType::I32, WordOrder::Cdab).unwrap(),
            TypedValue::I32(-70_000)
        );

        // The dead unit never answers, and the next unit is served right after it.
        bus.set_slave(Slave(3));
        assert!(
            unanswered(bus.read_holding_registers(0, 1)).await,
            "round {round}"
        );
    }

    bus.set_slave(Slave(2));
    within("write", bus.write_single_register(10, 777))
        .await
        .unwrap()
        .unwrap();
    let kept = within("read back", bus.read_holding_registers(10, 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept, [777]);
    let busy = within("exception", bus.read_holding_registers(20, 1))
        .await
        .unwrap();
    assert_eq!(busy, Err(ExceptionCode::ServerDeviceBusy));
    let gap = within("gap", bus.read_holding_registers(4, 1))
        .await
        .unwrap();
    assert_eq!(gap, Err(ExceptionCode::IllegalDataAddress));

    // An unconfigured id is not answered on a bus.
    bus.set_slave(Slave(9));
    assert!(unanswered(bus.read_holding_registers(0, 1)).await);

    let stats = sim.stats();
    assert_eq!(stats.requests_for(1, 3), 3);
    assert_eq!(stats.requests_for(2, 3), 6);
    assert_eq!(stats.requests_for(2, 6), 1);
    assert_eq!(stats.faults.silenced, 3);
    assert_eq!(stats.unknown_unit_requests, 1);
    assert_eq!(stats.exceptions_for(2, 6), 1);
    within("stop", server.stop()).await.unwrap();
}

#[tokio::test]
async fn rtu_broadcasts_reach_every_unit_and_dropped_requests_go_unanswered() {
    let pty = PtyPair::new();
    let sim = sim(BUS);
    let _server = sim.start_rtu(SerialSettings::new(&pty.a, BAUD)).unwrap();
    let mut bus = rtu_client(&pty.b, 0);

    // Broadcast: written everywhere it is writable, answered by nobody.
    assert!(unanswered(bus.write_single_coil(1, true)).await);
    assert_eq!(sim.stats().broadcasts, 1);
    assert_eq!(sim.read_register(2, Table::Coil, 1).unwrap(), 1);

    bus.set_slave(Slave(4));
    let first = within("unit 4", bus.read_holding_registers(0, 1))
        .await
        .unwrap();
    assert_eq!(first, Ok(vec![44]));
    assert!(unanswered(bus.read_holding_registers(0, 1)).await);
    let third = within("unit 4 again", bus.read_holding_registers(0, 1))
        .await
        .unwrap();
    assert_eq!(third, Ok(vec![44]));
    assert_eq!(sim.stats().faults.dropped, 1);
}

#[tokio::test]
async fn the_rtu_server_resynchronises_after_line_noise() {
    let pty = PtyPair::new();
    let sim = sim(BUS);
    let _server = sim.start_rtu(SerialSettings::new(&pty.a, BAUD)).unwrap();

    let mut raw = open(&pty.b);
    raw.write_all(&[0xFF; 64]).await.unwrap();
    raw.write_all(&[0x00, 0x7F, 0x13, 0x37]).await.unwrap();
    raw.flush().await.unwrap();
    let mut bus = tokio_modbus::client::rtu::attach_slave(raw, Slave(4));

    // Some requests may be lost while the noise is skipped; the bus must come back.
    let mut answered = false;
    for _ in 0..10 {
        if let Ok(Ok(Ok(words))) =
            tokio::time::timeout(NO_ANSWER, bus.read_holding_registers(0, 1)).await
        {
            assert_eq!(words, [44]);
            answered = true;
            break;
        }
    }
    assert!(
        answered,
        "no answer after line noise; stats: {:?}",
        sim.stats()
    );
}

const SENSORS: &str = r#"
[served_log]
capacity = 50

[[line_sensors]]
name = "weather"
interval_s = 0.02
line_ending = "crlf"
garbage_every = 4
[[line_sensors.fields]]
key = "T"
decimals = 2
waveform = { kind = "ramp", min = -10, max = 30, period_s = 2 }
[[line_sensors.fields]]
key = "P"
decimals = 1
waveform = { kind = "constant", value = 1013.2 }

[[line_sensors]]
name = "flow"
interval_s = 0.02
format = "json"
[[line_sensors.fields]]
key = "q"
waveform = { kind = "counter", start = 5, interval_s = 0.05 }
"#;

/// Reads `n` lines from the device at `path`, as bytes with their endings.
async fn read_lines(path: &std::path::Path, n: usize) -> Vec<Vec<u8>> {
    let mut reader = BufReader::new(open(path));
    let mut lines = Vec::new();
    while lines.len() < n {
        let mut line = Vec::new();
        within("line", reader.read_until(b'\n', &mut line))
            .await
            .unwrap();
        lines.push(line);
    }
    lines
}

#[tokio::test]
async fn a_key_value_sensor_writes_its_waveforms_and_garbage_lines() {
    let pty = PtyPair::new();
    let sim = sim(SENSORS);
    let sensor = sim.line_sensor("weather").unwrap();
    let reader = tokio::spawn({
        let path = pty.b.clone();
        async move { read_lines(&path, 8).await }
    });
    let running = sensor.start(SerialSettings::new(&pty.a, BAUD)).unwrap();
    let lines = within("reader", reader).await.unwrap();
    within("stop", running.stop()).await.unwrap();

    let written = sensor.written_log();
    assert!(written.len() >= 8);
    for (line, sent) in lines.iter().zip(&written) {
        assert_eq!(line, &sent.bytes, "seq {}", sent.seq);
        assert!(line.ends_with(b"\r\n"));
        if sent.seq % 4 == 0 {
            assert!(sent.garbage);
            continue;
        }
        let text = std::str::from_utf8(line).unwrap().trim_end();
        let pairs: Vec<(&str, f64)> = text
            .split(' ')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k, v.parse().unwrap())
            })
            .collect();
        let ramp = -10.0 + 40.0 * (sent.elapsed.as_secs_f64() / 2.0).fract();
        assert_eq!(pairs[0].0, "T");
        assert!(
            (pairs[0].1 - ramp).abs() <= 0.005 + 1e-9,
            "{text} vs {ramp}"
        );
        assert_eq!(pairs[1], ("P", 1013.2));
    }
    assert_eq!(
        written.iter().map(|l| l.seq).take(8).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    assert!(sensor.lines_written() >= 8);
}

#[tokio::test]
async fn a_json_sensor_writes_one_object_per_line() {
    let pty = PtyPair::new();
    let sim = sim(SENSORS);
    let sensor = sim.line_sensor("flow").unwrap();
    let reader = tokio::spawn({
        let path = pty.b.clone();
        async move { read_lines(&path, 5).await }
    });
    let _running = sensor.start(SerialSettings::new(&pty.a, BAUD)).unwrap();
    let lines = within("reader", reader).await.unwrap();
    let written = sensor.written_log();
    for (line, sent) in lines.iter().zip(&written) {
        assert_eq!(line, &sent.bytes);
        let object: serde_json::Value = serde_json::from_slice(line).unwrap();
        let expected = 5.0 + (sent.elapsed.as_secs_f64() / 0.05).floor();
        assert_eq!(object["q"].as_f64(), Some(expected), "{object}");
    }
}

/// CRC-16/MODBUS, written out here so the check does not lean on the server's own code.
fn crc16(bytes: &[u8]) -> [u8; 2] {
    let mut crc: u16 = 0xFFFF;
    for b in bytes {
        crc ^= u16::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc.to_le_bytes()
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = body.to_vec();
    f.extend_from_slice(&crc16(body));
    f
}

#[tokio::test]
async fn the_wire_bytes_follow_the_modbus_rtu_specification() {
    use tokio::io::AsyncReadExt;
    // The specification's own example frame pins the CRC helper.
    assert_eq!(frame(&[1, 3, 0, 0, 0, 1]), [1, 3, 0, 0, 0, 1, 0x84, 0x0A]);

    let pty = PtyPair::new();
    let sim = sim(BUS);
    let _server = sim.start_rtu(SerialSettings::new(&pty.a, BAUD)).unwrap();
    let mut line = open(&pty.b);
    let cases: [(Vec<u8>, Vec<u8>); 3] = [
        // Unit 2, read 2 holding registers: -70000 as i32 CDAB is 0xFFFEEE90 -> EE90 FFFE.
        (
            frame(&[2, 3, 0, 0, 0, 2]),
            frame(&[2, 3, 4, 0xEE, 0x90, 0xFF, 0xFE]),
        ),
        // Unit 2, write 0x1234 to writable register 10: echoed.
        (
            frame(&[2, 6, 0, 10, 0x12, 0x34]),
            frame(&[2, 6, 0, 10, 0x12, 0x34]),
        ),
        // Unit 2, injected exception 6 at register 20.
        (frame(&[2, 3, 0, 20, 0, 1]), frame(&[2, 0x83, 6])),
    ];
    for (request, expected) in cases {
        line.write_all(&request).await.unwrap();
        let mut answer = vec![0; expected.len()];
        within("answer", line.read_exact(&mut answer))
            .await
            .unwrap();
        assert_eq!(answer, expected);
    }
}
