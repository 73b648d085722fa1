//! Serial-line sensors over a socat pty pair: each line format, garbage counted and skipped,
//! and the port vanishing (socat killed) and coming back (socat restarted at the same paths).

mod support;

use std::io::Write;
use std::time::Duration;

use fieldlink_drivers::health::DeviceCounters;
use fieldlink_drivers::modbus::StationOptions;
use fieldlink_drivers::{Acquisition, DriverEvent, HealthState, Readings};
use fieldlink_protocol::Value;
use support::{next_readings, number, point_map, value_of, wait_health, PtyPair};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The sensor's end of the pair: what the test writes is what the reader receives.
fn sensor(pty: &PtyPair) -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open(&pty.a)
        .expect("open the sensor end of the pty")
}

fn send(port: &mut std::fs::File, bytes: &[u8]) {
    port.write_all(bytes).expect("write to pty");
    port.flush().unwrap();
}

fn start(
    pty: &PtyPair,
    framing: &str,
    format: serde_json::Value,
    points: serde_json::Value,
) -> (Acquisition, mpsc::Receiver<DriverEvent>, CancellationToken) {
    let map = point_map(
        &serde_json::json!({"devices": [{
            "name": "wx",
            "transport": {"kind": "serial_line", "port": pty.b(), "baud": 9600,
                          "framing": framing, "max_line_len": 64, "format": format},
            "points": points,
        }]})
        .to_string(),
    );
    let (tx, rx) = mpsc::channel(256);
    let cancel = CancellationToken::new();
    let acq = Acquisition::start(&map, StationOptions::default(), tx, cancel.clone());
    (acq, rx, cancel)
}

/// Waits until the reader has the port open (it reports nothing before the first line, so the
/// test sends probe lines until one comes through).
async fn first_readings(
    port: &mut std::fs::File,
    rx: &mut mpsc::Receiver<DriverEvent>,
    probe: &[u8],
) -> Readings {
    for _ in 0..200 {
        send(port, probe);
        if let Ok(Some(DriverEvent::Readings(r, _))) =
            tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
        {
            return r;
        }
    }
    panic!("the reader never received a line");
}

#[tokio::test]
async fn regex_lines_with_crlf_framing() {
    let dir = tempfile::tempdir().unwrap();
    let pty = PtyPair::new(dir.path());
    let (acq, mut rx, cancel) = start(
        &pty,
        "crlf",
        serde_json::json!({"kind": "regex",
            "pattern": r"^T=(?P<temp>-?[0-9.]+)C H=(?P<hum>[0-9.]+)% ID=(?P<id>\w+)$"}),
        serde_json::json!([
            {"name": "temperature", "unit": "C", "field": "temp"},
            {"name": "humidity_frac", "field": "hum", "scale": 0.01},
            {"name": "station", "field": "id"}
        ]),
    );
    let mut port = sensor(&pty);
    first_readings(&mut port, &mut rx, b"T=0C H=0% ID=probe\r\n").await;
    send(&mut port, b"T=-3.5C H=81.0% ID=wx7\r\n");
    let r = next_readings(&mut rx, "wx").await;
    assert_eq!(number(&r, "temperature"), -3.5);
    assert!((number(&r, "humidity_frac") - 0.81).abs() < 1e-12);
    assert_eq!(value_of(&r, "station"), &Value::Str("wx7".into()));
    cancel.cancel();
    acq.join().await;
}

#[tokio::test]
async fn key_value_lines_and_garbage_is_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let pty = PtyPair::new(dir.path());
    let (acq, mut rx, cancel) = start(
        &pty,
        "lf",
        serde_json::json!({"kind": "key_value"}),
        serde_json::json!([{"name": "t"}, {"name": "p", "unit": "hPa"}]),
    );
    let mut port = sensor(&pty);
    first_readings(&mut port, &mut rx, b"t=0 p=0\n").await;
    let counters = acq.counters("wx").unwrap();
    let garbage_before = DeviceCounters::get(&counters.garbage_lines_total);

    // Noise, a line over 64 bytes, invalid UTF-8, a line of none of our fields, then a good one.
    send(&mut port, b"%%&/ no pairs here\n");
    send(&mut port, format!("t={}\n", "9".repeat(100)).as_bytes());
    send(&mut port, b"t=\xff\xfe\n");
    send(&mut port, b"x=1 y=2\n");
    send(&mut port, b"t=21.5, p=1013.2\n");
    let r = next_readings(&mut rx, "wx").await;
    assert_eq!(number(&r, "t"), 21.5);
    assert_eq!(number(&r, "p"), 1013.2);
    assert_eq!(
        DeviceCounters::get(&counters.garbage_lines_total) - garbage_before,
        4
    );
    // A partial line followed by the rest in another write is one line.
    send(&mut port, b"t=1");
    send(&mut port, b"7 p=990\n");
    let r = next_readings(&mut rx, "wx").await;
    assert_eq!(number(&r, "t"), 17.0);
    cancel.cancel();
    acq.join().await;
}

#[tokio::test]
async fn json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let pty = PtyPair::new(dir.path());
    let (acq, mut rx, cancel) = start(
        &pty,
        "lf",
        serde_json::json!({"kind": "json_lines"}),
        serde_json::json!([{"name": "temp"}, {"name": "door_open", "field": "door"},
                           {"name": "f", "field": "temp", "scale": 1.8, "offset": 32}]),
    );
    let mut port = sensor(&pty);
    first_readings(&mut port, &mut rx, b"{\"temp\": 0}\n").await;
    send(
        &mut port,
        b"{\"temp\": 25.0, \"door\": true, \"extra\": [1]}\n",
    );
    let r = next_readings(&mut rx, "wx").await;
    assert_eq!(number(&r, "temp"), 25.0);
    assert_eq!(number(&r, "f"), 77.0);
    assert_eq!(value_of(&r, "door_open"), &Value::Bool(true));
    send(&mut port, b"[not an object]\n{\"temp\": 26}\n");
    let r = next_readings(&mut rx, "wx").await;
    assert_eq!(number(&r, "temp"), 26.0);
    cancel.cancel();
    acq.join().await;
}

#[tokio::test]
async fn the_port_vanishing_and_coming_back_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let mut pty = PtyPair::new(dir.path());
    let (acq, mut rx, cancel) = start(
        &pty,
        "lf",
        serde_json::json!({"kind": "key_value"}),
        serde_json::json!([{"name": "n"}]),
    );
    let mut port = sensor(&pty);
    first_readings(&mut port, &mut rx, b"n=0\n").await;
    wait_health(&mut rx, "wx", HealthState::Online).await;

    // The adapter is pulled: both pty ends disappear.
    drop(port);
    pty.kill();
    let down = wait_health(&mut rx, "wx", HealthState::Offline).await;
    let why = down.last_error.expect("a reason");
    assert!(
        why.starts_with(&format!("{}: the serial port is gone", pty.b())),
        "{why}"
    );

    // It comes back at the same path; the reader reopens it by itself.
    pty.start();
    let mut port = sensor(&pty);
    let r = first_readings(&mut port, &mut rx, b"n=42\n").await;
    assert_eq!(number(&r, "n"), 42.0);
    wait_health(&mut rx, "wx", HealthState::Online).await;
    cancel.cancel();
    acq.join().await;
}
