//! Modbus TCP against the device simulator on 127.0.0.1:0: decoding, the exception-split
//! fallback, timeouts with connection reset, health, and writes.

mod support;

use std::time::Duration;

use fieldlink_drivers::health::DeviceCounters;
use fieldlink_drivers::modbus::{
    spawn_station, ExceptionCode, LinkError, LinkOptions, ReadNowError, StationOptions,
    TcpConnector,
};
use fieldlink_drivers::pointmap::PointMap;
use fieldlink_drivers::{Acquisition, DriverEvent, HealthState, PointError, WriteError};
use fieldlink_plumbing::backoff::Schedule;
use fieldlink_protocol::Value;
use fieldlink_sim::{SimConfig, Simulator, Table};
use support::{next_readings, number, point_map, value_of, wait_health};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SIM: &str = r#"
[[units]]
id = 1
size = { holding_registers = 200, coils = 16 }

[[units.faults.exceptions]]
table = "holding_register"
address = 150
code = 2

[[units.points]]
table = "holding_register"
address = 0
type = "u16"
waveform = { kind = "constant", value = 1234 }

[[units.points]]
table = "holding_register"
address = 1
type = "i16"
waveform = { kind = "constant", value = -5 }

[[units.points]]
table = "holding_register"
address = 2
type = "u32"
order = "CDAB"
waveform = { kind = "constant", value = 305419896 }

[[units.points]]
table = "holding_register"
address = 4
type = "f32"
scale = 0.1
waveform = { kind = "constant", value = 230.5 }

[[units.points]]
table = "holding_register"
address = 6
type = "f64"
order = "DCBA"
waveform = { kind = "constant", value = -1.25e10 }

[[units.points]]
table = "holding_register"
address = 10
type = "string:4"
waveform = { kind = "constant", value = "EM-42" }

[[units.points]]
table = "holding_register"
address = 14
type = "i64"
order = "BADC"
waveform = { kind = "constant", value = -9000000000 }

[[units.points]]
table = "input_register"
address = 0
type = "u16"
waveform = { kind = "constant", value = 77 }

[[units.points]]
table = "discrete_input"
address = 3
waveform = { kind = "constant", value = true }

[[units.points]]
name = "setpoint"
table = "holding_register"
address = 40
type = "f32"
order = "CDAB"
writable = true
waveform = { kind = "constant", value = 20.0 }

[[units.points]]
name = "status"
table = "holding_register"
address = 42
type = "u16"
writable = true
waveform = { kind = "constant", value = 0x00F0 }

[[units]]
id = 2
faults = { delay_ms = 600 }

[[units.points]]
table = "holding_register"
address = 0
waveform = { kind = "constant", value = 9 }
"#;

fn device_map(port: u16, unit: u8, timeout_ms: u64, poll_ms: u64) -> String {
    format!(
        r#"{{"devices": [{{"name": "meter-1", "poll_interval_ms": {poll_ms}, "timeout_ms": {timeout_ms},
        "transport": {{"kind": "tcp", "host": "127.0.0.1", "port": {port}, "unit_id": {unit}}},
        "points": [
          {{"name": "u16", "table": "holding_register", "address": 0, "type": "u16"}},
          {{"name": "i16", "table": "holding_register", "address": 1, "type": "i16"}},
          {{"name": "u32", "table": "holding_register", "address": 2, "type": "u32", "order": "CDAB"}},
          {{"name": "volts", "unit": "V", "table": "holding_register", "address": 4, "type": "f32", "scale": 0.1}},
          {{"name": "f64", "table": "holding_register", "address": 6, "type": "f64", "order": "DCBA"}},
          {{"name": "label", "table": "holding_register", "address": 10, "type": "string:4"}},
          {{"name": "i64", "table": "holding_register", "address": 14, "type": "i64", "order": "BADC"}},
          {{"name": "ir0", "table": "input_register", "address": 0}},
          {{"name": "di3", "table": "discrete_input", "address": 3, "type": "bool"}},
          {{"name": "setpoint", "table": "holding_register", "address": 40, "type": "f32", "order": "CDAB", "writable": true}},
          {{"name": "flag4", "table": "holding_register", "address": 42, "type": "bit:4", "writable": true}},
          {{"name": "flag9", "table": "holding_register", "address": 42, "type": "bit:9", "writable": true}},
          {{"name": "r148", "table": "holding_register", "address": 148}},
          {{"name": "r149", "table": "holding_register", "address": 149}},
          {{"name": "r150", "table": "holding_register", "address": 150}},
          {{"name": "r151", "table": "holding_register", "address": 151}},
          {{"name": "r152", "table": "holding_register", "address": 152, "type": "u32"}}
        ]}}]}}"#
    )
}

async fn simulator() -> (Simulator, fieldlink_sim::TcpServerHandle) {
    let sim = Simulator::from_config(SimConfig::from_toml_str(SIM).expect("sim config"))
        .expect("sim config valid");
    let tcp = sim
        .bind_tcp("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind sim");
    (sim, tcp)
}

fn start(map: &PointMap) -> (Acquisition, mpsc::Receiver<DriverEvent>, CancellationToken) {
    let (tx, rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let acq = Acquisition::start(map, StationOptions::default(), tx, cancel.clone());
    (acq, rx, cancel)
}

#[tokio::test]
async fn every_type_decodes_and_a_refused_register_is_isolated() {
    let (_sim, tcp) = simulator().await;
    let map = point_map(&device_map(tcp.local_addr().port(), 1, 1_000, 3_600_000));
    let (acq, mut rx, cancel) = start(&map);

    let r = next_readings(&mut rx, "meter-1").await;
    assert_eq!(number(&r, "u16"), 1234.0);
    assert_eq!(number(&r, "i16"), -5.0);
    assert_eq!(number(&r, "u32"), 305_419_896.0);
    assert!((number(&r, "volts") - 230.5).abs() < 1e-3, "{r:?}");
    assert_eq!(number(&r, "f64"), -1.25e10);
    assert_eq!(value_of(&r, "label"), &Value::Str("EM-42".into()));
    assert_eq!(number(&r, "i64"), -9_000_000_000.0);
    assert_eq!(number(&r, "ir0"), 77.0);
    assert_eq!(value_of(&r, "di3"), &Value::Bool(true));
    assert_eq!(value_of(&r, "flag4"), &Value::Bool(true));
    assert_eq!(value_of(&r, "flag9"), &Value::Bool(false));
    for good in ["r148", "r149", "r151", "r152"] {
        assert_eq!(number(&r, good), 0.0, "{good}");
    }
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    assert_eq!(r.failures[0].metric.as_str(), "r150");
    assert_eq!(
        r.failures[0].error,
        PointError::Exception(ExceptionCode::IllegalDataAddress)
    );
    let ts = r.points[0].ts_ms;
    assert!(r.points.iter().all(|p| (p.ts_ms - ts).abs() < 60_000));
    let health = wait_health(&mut rx, "meter-1", HealthState::Degraded).await;
    assert!(health.last_error.unwrap().contains("r150"));

    // The split plan is remembered: every later poll meets exactly one exception, the isolated
    // register's own read, and sends the same number of requests.
    let counters = acq.counters("meter-1").unwrap();
    let snapshot = || {
        (
            DeviceCounters::get(&counters.requests_total),
            DeviceCounters::get(&counters.exceptions_total),
        )
    };
    let mut deltas = Vec::new();
    for _ in 0..3 {
        let before = snapshot();
        let again = acq.read_now("meter-1").await.expect("read now");
        assert_eq!(again.points.len(), r.points.len());
        let after = snapshot();
        deltas.push((after.0 - before.0, after.1 - before.1));
    }
    assert!(deltas.iter().all(|d| d.1 == 1), "{deltas:?}");
    assert!(deltas.windows(2).all(|w| w[0].0 == w[1].0), "{deltas:?}");

    cancel.cancel();
    acq.join().await;
}

#[tokio::test]
async fn a_timeout_resets_the_connection_so_a_late_answer_is_never_taken_for_the_next() {
    let (sim, tcp) = simulator().await;
    let port = tcp.local_addr().port();
    // Unit 2 answers after 600 ms; the link gives up after 150 ms. Both units share one link.
    let map = point_map(&format!(
        r#"{{"devices": [
          {{"name": "fast", "poll_interval_ms": 3600000, "transport": {{"kind": "tcp", "host": "127.0.0.1", "port": {port}, "unit_id": 1}},
            "points": [{{"name": "v", "table": "holding_register", "address": 0}}]}},
          {{"name": "slow", "poll_interval_ms": 3600000, "transport": {{"kind": "tcp", "host": "127.0.0.1", "port": {port}, "unit_id": 2}},
            "points": [{{"name": "v", "table": "holding_register", "address": 0}}]}}
        ]}}"#
    ));
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let connector = TcpConnector {
        host: "127.0.0.1".into(),
        port,
    };
    let (station, task) = spawn_station(
        connector,
        LinkOptions::tcp(Duration::from_millis(150)),
        &map.devices,
        StationOptions::default(),
        tx,
        cancel.clone(),
    );
    wait_health(&mut rx, "slow", HealthState::Offline).await;

    for _ in 0..3 {
        let connections_before = sim.stats().tcp_connections;
        let (reply, answer) = tokio::sync::oneshot::channel();
        station
            .commands
            .send(fieldlink_drivers::modbus::Command::ReadNow {
                device: map.devices[1].name.clone(),
                reply,
            })
            .await
            .unwrap();
        match answer.await.unwrap() {
            Err(ReadNowError::Link(e @ LinkError::Timeout { after, .. })) => {
                assert_eq!(after, Duration::from_millis(150));
                assert_eq!(
                    e.to_string(),
                    format!("no answer from unit 2 at 127.0.0.1:{port} within 150 ms")
                );
            }
            other => panic!("slow unit should time out, got {other:?}"),
        }
        // Straight after the timeout, while unit 2's answer is still on its way.
        let (reply, answer) = tokio::sync::oneshot::channel();
        station
            .commands
            .send(fieldlink_drivers::modbus::Command::ReadNow {
                device: map.devices[0].name.clone(),
                reply,
            })
            .await
            .unwrap();
        let r = answer.await.unwrap().expect("fast unit reads");
        assert_eq!(
            number(&r, "v"),
            1234.0,
            "fast unit got another unit's answer"
        );
        assert!(
            sim.stats().tcp_connections > connections_before,
            "the link was not reset after the timeout"
        );
    }
    let slow = station.counters.get(&map.devices[1].name).unwrap();
    assert!(DeviceCounters::get(&slow.timeouts_total) >= 4);
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn health_goes_offline_without_a_server_and_online_when_it_appears() {
    let port = support::free_port();
    let map = point_map(&format!(
        r#"{{"devices": [{{"name": "plc", "poll_interval_ms": 100, "timeout_ms": 300,
            "transport": {{"kind": "tcp", "host": "127.0.0.1", "port": {port}, "unit_id": 1}},
            "points": [{{"name": "v", "table": "holding_register", "address": 0}}]}}]}}"#
    ));
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let options = StationOptions {
        backoff: Schedule::fixed(50, 200),
        ..StationOptions::default()
    };
    let acq = Acquisition::start(&map, options, tx, cancel.clone());
    let down = wait_health(&mut rx, "plc", HealthState::Offline).await;
    assert_eq!(
        down.last_error.as_deref(),
        Some(
            format!(
                "cannot connect to 127.0.0.1:{port}: connection refused (nothing listens on \
                 that port, or a firewall rejects it)"
            )
            .as_str()
        ),
    );

    let sim = Simulator::from_config(SimConfig::from_toml_str(SIM).unwrap()).unwrap();
    let _tcp = sim
        .bind_tcp(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .expect("bind the port the device points at");
    let up = wait_health(&mut rx, "plc", HealthState::Online).await;
    assert_eq!(up.last_error, None);
    let r = next_readings(&mut rx, "plc").await;
    assert_eq!(number(&r, "v"), 1234.0);
    cancel.cancel();
    acq.join().await;
}

#[tokio::test]
async fn writes_encode_with_the_map_and_refuse_what_they_must() {
    let (sim, tcp) = simulator().await;
    let map = point_map(&device_map(tcp.local_addr().port(), 1, 1_000, 3_600_000));
    let (acq, mut rx, cancel) = start(&map);
    next_readings(&mut rx, "meter-1").await;

    let outcome = acq
        .write("meter-1", "setpoint", Value::Number(21.5))
        .await
        .expect("write setpoint");
    assert_eq!(outcome.read_back, Some(Value::Number(21.5)));
    // f32 21.5 = 0x41AC0000, CDAB puts the low word first.
    assert_eq!(
        sim.read_registers(1, Table::HoldingRegister, 40, 2)
            .unwrap(),
        [0x0000, 0x41AC]
    );

    // A bit of a status word: the other bits stay as they were.
    acq.write("meter-1", "flag9", Value::Bool(true))
        .await
        .expect("set bit 9");
    acq.write("meter-1", "flag4", Value::Bool(false))
        .await
        .expect("clear bit 4");
    assert_eq!(
        sim.read_register(1, Table::HoldingRegister, 42).unwrap(),
        0x02E0
    );

    let e = acq
        .write("meter-1", "u16", Value::Number(1.0))
        .await
        .unwrap_err();
    assert!(
        matches!(e, WriteError::NotWritable(ref p) if p == "u16"),
        "{e}"
    );
    let e = acq
        .write("meter-1", "setpoint", Value::Number(1e300))
        .await
        .unwrap_err();
    assert!(matches!(e, WriteError::Value(_)), "{e}");
    let e = acq
        .write("meter-1", "flag4", Value::Number(1.0))
        .await
        .unwrap_err();
    assert!(matches!(e, WriteError::Value(_)), "{e}");
    let e = acq
        .write("meter-1", "nope", Value::Number(1.0))
        .await
        .unwrap_err();
    assert!(matches!(e, WriteError::UnknownPoint { .. }), "{e}");
    let e = acq
        .write("meter-2", "x", Value::Number(1.0))
        .await
        .unwrap_err();
    assert!(matches!(e, WriteError::UnknownDevice(_)), "{e}");
    assert!(sim
        .read_registers(1, Table::HoldingRegister, 0, 1)
        .is_ok_and(|w| w == [1234]));

    cancel.cancel();
    acq.join().await;
}

/// A fault injector behind the connector seam: a TCP stream to the simulator whose next answer
/// can be corrupted in its transaction id, as a confused gateway or a bit flip might.
mod garbler {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use fieldlink_drivers::modbus::{Connector, Framing};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::TcpStream;

    #[derive(Debug)]
    pub struct Garbled {
        inner: TcpStream,
        corrupt_next: Arc<AtomicBool>,
    }

    impl AsyncRead for Garbled {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let before = buf.filled().len();
            let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
            if buf.filled().len() > before && self.corrupt_next.swap(false, Ordering::SeqCst) {
                buf.filled_mut()[before] ^= 0x5A;
            }
            polled
        }
    }

    impl AsyncWrite for Garbled {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.inner).poll_write(cx, data)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    pub struct GarblingConnector {
        pub port: u16,
        pub corrupt_next: Arc<AtomicBool>,
    }

    impl Connector for GarblingConnector {
        type Io = Garbled;
        fn framing(&self) -> Framing {
            Framing::Tcp
        }
        async fn connect(&mut self) -> std::io::Result<Garbled> {
            Ok(Garbled {
                inner: TcpStream::connect(("127.0.0.1", self.port)).await?,
                corrupt_next: self.corrupt_next.clone(),
            })
        }
        fn target(&self) -> String {
            format!("garbled 127.0.0.1:{}", self.port)
        }
    }
}

#[tokio::test]
async fn a_corrupted_answer_is_a_link_error_never_a_value_and_the_link_recovers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let (sim, tcp) = simulator().await;
    let port = tcp.local_addr().port();
    let map = point_map(&device_map(port, 1, 1_000, 3_600_000));
    let corrupt_next = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let (station, task) = spawn_station(
        garbler::GarblingConnector {
            port,
            corrupt_next: corrupt_next.clone(),
        },
        LinkOptions::tcp(Duration::from_secs(1)),
        &map.devices,
        StationOptions::default(),
        tx,
        cancel.clone(),
    );
    next_readings(&mut rx, "meter-1").await;
    let read_now = || async {
        let (reply, answer) = tokio::sync::oneshot::channel();
        station
            .commands
            .send(fieldlink_drivers::modbus::Command::ReadNow {
                device: map.devices[0].name.clone(),
                reply,
            })
            .await
            .unwrap();
        answer.await.unwrap()
    };
    let connections = sim.stats().tcp_connections;
    corrupt_next.store(true, Ordering::SeqCst);
    match read_now().await {
        Err(ReadNowError::Link(LinkError::Mismatch { target, .. })) => {
            assert_eq!(target, format!("garbled 127.0.0.1:{port}"));
        }
        other => panic!("a corrupted answer must be a link error, got {other:?}"),
    }
    let r = read_now()
        .await
        .expect("the link recovers on the next request");
    assert_eq!(number(&r, "u16"), 1234.0);
    assert!(sim.stats().tcp_connections > connections);
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn dropped_connections_are_survived() {
    // Every 20th request to unit 1 goes unanswered and its connection is closed.
    let config = SIM.replacen(
        "[[units.faults.exceptions]]",
        "[units.faults]\ndrop_every = 20\n\n[[units.faults.exceptions]]",
        1,
    );
    let sim = Simulator::from_config(SimConfig::from_toml_str(&config).unwrap()).unwrap();
    let tcp = sim.bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let map = point_map(&device_map(tcp.local_addr().port(), 1, 300, 50));
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let options = StationOptions {
        backoff: Schedule::fixed(20, 100),
        ..StationOptions::default()
    };
    let acq = Acquisition::start(&map, options, tx, cancel.clone());
    // Regression: this was reported as "Resource temporarily unavailable (os error 11)", the
    // errno tokio-modbus picks up when the device closes the connection.
    let down = wait_health(&mut rx, "meter-1", HealthState::Offline).await;
    assert_eq!(
        down.last_error,
        Some(format!(
            "127.0.0.1:{}: connection closed by the device",
            tcp.local_addr().port()
        ))
    );
    // After drops the device keeps delivering complete, correct readings.
    let mut complete = 0;
    while complete < 5 {
        let r = next_readings(&mut rx, "meter-1").await;
        if r.points.len() == 16 {
            assert_eq!(number(&r, "u16"), 1234.0);
            complete += 1;
        }
    }
    let counters = acq.counters("meter-1").unwrap();
    assert!(DeviceCounters::get(&counters.link_errors_total) >= 1);
    assert!(sim.stats().tcp_connections >= 2);
    cancel.cancel();
    acq.join().await;
}

#[tokio::test]
async fn tcp_devices_poll_concurrently_so_a_slow_one_does_not_hold_up_the_others() {
    let (_sim, tcp) = simulator().await;
    let port = tcp.local_addr().port();
    // Unit 2 takes 600 ms per answer; unit 1 answers at once. Both poll every 50 ms.
    let map = point_map(&format!(
        r#"{{"devices": [
          {{"name": "fast", "poll_interval_ms": 50, "transport": {{"kind": "tcp", "host": "127.0.0.1", "port": {port}, "unit_id": 1}},
            "points": [{{"name": "v", "table": "holding_register", "address": 0}}]}},
          {{"name": "slow", "poll_interval_ms": 50, "timeout_ms": 2000, "transport": {{"kind": "tcp", "host": "127.0.0.1", "port": {port}, "unit_id": 2}},
            "points": [{{"name": "v", "table": "holding_register", "address": 0}}]}}
        ]}}"#
    ));
    let (acq, mut rx, cancel) = start(&map);
    let (mut fast, mut slow) = (0u32, 0u32);
    while slow < 3 {
        match tokio::time::timeout(support::PATIENCE, rx.recv()).await {
            Ok(Some(DriverEvent::Readings(r, _))) if r.device.as_str() == "fast" => {
                assert_eq!(number(&r, "v"), 1234.0);
                fast += 1;
            }
            Ok(Some(DriverEvent::Readings(r, _))) => {
                assert_eq!(number(&r, "v"), 9.0);
                slow += 1;
            }
            Ok(Some(DriverEvent::Health(_))) => {}
            other => panic!("no readings: {other:?}"),
        }
    }
    // Sharing one task, the fast device would get about one poll per slow answer.
    assert!(fast >= 4 * slow, "fast {fast} polls while slow made {slow}");
    cancel.cancel();
    acq.join().await;
}
