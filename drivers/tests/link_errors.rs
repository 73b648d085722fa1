//! Device I/O errors say what happened, against real peers: plain TCP listeners that close,
//! reset, stay silent or answer wrong, the simulator's exceptions and dropped connections, and a
//! serial bus whose pseudo-terminal goes away. None of them may reach the operator as a bare
//! `errno` (a device closing its connection used to read "Resource temporarily unavailable
//! (os error 11)").

mod support;

use std::time::Duration;

use fieldlink_drivers::modbus::{
    LinkError, LinkOptions, ModbusLink, Op, SerialConnector, StationOptions, TcpConnector,
};
use fieldlink_drivers::pointmap::{SerialSettings, Table};
use fieldlink_drivers::{Acquisition, HealthState};
use fieldlink_sim::{SimConfig, Simulator};
use support::{point_map, wait_health, PtyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_millis(300);
/// Bytes of a Modbus TCP read request: MBAP header (7), function, address, quantity.
const READ_REQUEST_LEN: usize = 12;

/// A TCP peer on a free port that treats every connection with `serve`.
async fn peer<F, Fut>(serve: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    port
}

/// Reads one request and returns it.
async fn request(stream: &mut TcpStream) -> [u8; READ_REQUEST_LEN] {
    let mut req = [0u8; READ_REQUEST_LEN];
    stream.read_exact(&mut req).await.unwrap();
    req
}

fn tcp_link(port: u16) -> ModbusLink<TcpConnector> {
    ModbusLink::new(
        TcpConnector {
            host: "127.0.0.1".into(),
            port,
        },
        LinkOptions::tcp(TIMEOUT),
    )
}

/// Reads 10 holding registers from unit 1 at `port` and returns the link error, as text too.
async fn read_error(port: u16) -> (LinkError, String) {
    let mut link = tcp_link(port);
    let e = link
        .read(1, Table::HoldingRegister, 0, 10)
        .await
        .expect_err("the peer gives no registers");
    let text = e.to_string();
    assert!(!text.contains("os error"), "a bare errno: {text}");
    (e, text)
}

/// A read-holding-registers answer to `req` carrying `registers`.
fn answer(req: &[u8], registers: &[u16]) -> Vec<u8> {
    let pdu_len = 2 + 2 * registers.len();
    let mut out = vec![req[0], req[1], 0, 0];
    out.extend_from_slice(&(pdu_len as u16 + 1).to_be_bytes());
    out.extend_from_slice(&[req[6], 0x03, (2 * registers.len()) as u8]);
    for r in registers {
        out.extend_from_slice(&r.to_be_bytes());
    }
    out
}

#[tokio::test]
async fn a_device_that_closes_the_connection_is_reported_as_such() {
    // It takes the request, then hangs up without answering.
    let port = peer(|mut stream| async move {
        request(&mut stream).await;
    })
    .await;
    let (e, text) = read_error(port).await;
    assert!(matches!(e, LinkError::Io { .. }), "{e:?}");
    assert_eq!(
        text,
        format!("127.0.0.1:{port}: connection closed by the device")
    );

    // It hangs up as soon as it has accepted. Whether the request reached it first decides
    // whether its system answers with an orderly close or a reset: either is what happened.
    let port = peer(|stream| async move { drop(stream) }).await;
    let (_, text) = read_error(port).await;
    assert!(
        [
            format!("127.0.0.1:{port}: connection closed by the device"),
            format!("127.0.0.1:{port}: connection reset by the device"),
        ]
        .contains(&text),
        "{text}"
    );
}

#[tokio::test]
async fn a_device_that_never_answers_times_out_after_the_configured_time() {
    let port = peer(|mut stream| async move {
        request(&mut stream).await;
        // Holds the connection open and says nothing.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    })
    .await;
    let (e, text) = read_error(port).await;
    assert!(matches!(e, LinkError::Timeout { after, unit: 1, .. } if after == TIMEOUT));
    assert_eq!(
        text,
        format!("no answer from unit 1 at 127.0.0.1:{port} within 300 ms")
    );
}

#[tokio::test]
async fn refused_and_reset_connections_name_the_address() {
    let refused = support::free_port();
    let (e, text) = read_error(refused).await;
    assert!(matches!(e, LinkError::Connect { .. }), "{e:?}");
    assert_eq!(
        text,
        format!(
            "cannot connect to 127.0.0.1:{refused}: connection refused (nothing listens on that \
             port, or a firewall rejects it)"
        )
    );

    let port = peer(|mut stream| async move {
        request(&mut stream).await;
        // Closing with a zero linger sends a reset instead of an orderly close.
        stream.set_zero_linger().unwrap();
        drop(stream);
    })
    .await;
    let (_, text) = read_error(port).await;
    assert_eq!(
        text,
        format!("127.0.0.1:{port}: connection reset by the device")
    );
}

#[tokio::test]
async fn short_and_malformed_answers_say_what_was_wrong() {
    // Half an answer, then the connection closes.
    let port = peer(|mut stream| async move {
        let req = request(&mut stream).await;
        let full = answer(&req, &[7; 10]);
        stream.write_all(&full[..9]).await.unwrap();
    })
    .await;
    let (_, text) = read_error(port).await;
    assert_eq!(
        text,
        format!(
            "127.0.0.1:{port}: connection closed by the device after 9 bytes of an unfinished \
             answer"
        )
    );

    // A complete answer with 2 registers where 10 were asked for.
    let port = peer(|mut stream| async move {
        let req = request(&mut stream).await;
        stream.write_all(&answer(&req, &[7, 8])).await.unwrap();
        let _ = stream.read(&mut [0u8; 1]).await;
    })
    .await;
    let (e, text) = read_error(port).await;
    assert!(matches!(e, LinkError::Malformed { .. }), "{e:?}");
    assert_eq!(
        text,
        format!("malformed answer from 127.0.0.1:{port}: asked for 10 registers, got 2")
    );

    // A header whose length field is zero.
    let port = peer(|mut stream| async move {
        let req = request(&mut stream).await;
        let header = [req[0], req[1], 0, 0, 0, 0, req[6], 0x03];
        stream.write_all(&header).await.unwrap();
        let _ = stream.read(&mut [0u8; 1]).await;
    })
    .await;
    let (e, text) = read_error(port).await;
    assert!(matches!(e, LinkError::Malformed { .. }), "{e:?}");
    assert!(
        text.starts_with(&format!("malformed answer from 127.0.0.1:{port}: ")),
        "{text}"
    );
}

#[tokio::test]
async fn a_write_echoed_wrong_is_not_taken_as_done() {
    // The device acknowledges a write of register 5 as a write of register 6.
    let port = peer(|mut stream| async move {
        let mut echo = request(&mut stream).await;
        echo[8..10].copy_from_slice(&6u16.to_be_bytes());
        stream.write_all(&echo).await.unwrap();
        let _ = stream.read(&mut [0u8; 1]).await;
    })
    .await;
    let mut link = tcp_link(port);
    let e = link
        .call(
            1,
            Op::WriteRegisters {
                start: 5,
                words: vec![42],
            },
        )
        .await
        .expect_err("a wrong echo is no acknowledgement");
    assert!(matches!(e, LinkError::Mismatch { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "answer from 127.0.0.1:{port} does not match the request: wrote 42 to register 5, \
             the device echoed WriteSingleRegister(6, 42)"
        )),
        "{e}"
    );
}

const SIM: &str = r#"
[[units]]
id = 1
[[units.points]]
table = "holding_register"
address = 0
type = "u16"
waveform = { kind = "constant", value = 1 }
"#;

fn device(port: u16, unit: u8, address: u16) -> String {
    format!(
        r#"{{"devices": [{{"name": "plc", "poll_interval_ms": 50, "timeout_ms": 300, "max_gap": 0,
            "transport": {{"kind": "tcp", "host": "127.0.0.1", "port": {port}, "unit_id": {unit}}},
            "points": [{{"name": "p", "table": "holding_register", "address": {address}}}]}}]}}"#
    )
}

/// Polls one point through the drivers' acquisition until the device reaches `state`; returns
/// its health message.
async fn health_of(map_json: &str, state: HealthState) -> String {
    let map = point_map(map_json);
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let acq = Acquisition::start(&map, StationOptions::default(), tx, cancel.clone());
    let event = wait_health(&mut rx, "plc", state).await;
    cancel.cancel();
    acq.join().await;
    let text = event.last_error.expect("a health message");
    assert!(!text.contains("os error"), "a bare errno: {text}");
    text
}

#[tokio::test]
async fn exceptions_from_the_simulator_carry_their_number_and_name() {
    let sim = Simulator::from_config(SimConfig::from_toml_str(SIM).unwrap()).unwrap();
    let tcp = sim.bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let port = tcp.local_addr().port();
    assert_eq!(
        health_of(&device(port, 1, 500), HealthState::Degraded).await,
        "p: device answered Modbus exception 2, illegal data address (the device has no such \
         register)"
    );
    // Over TCP the simulator answers for a unit it does not have as a Modbus gateway would.
    assert_eq!(
        health_of(&device(port, 9, 0), HealthState::Degraded).await,
        "p: device answered Modbus exception 11, gateway target device failed to respond (the \
         unit behind the Modbus gateway did not answer it)"
    );
}

/// Reads a register of unit 1 over the serial `link` and returns the link error as text.
async fn serial_error(link: &mut ModbusLink<SerialConnector>) -> String {
    let e = link
        .read(1, Table::HoldingRegister, 0, 1)
        .await
        .expect_err("no registers");
    let text = e.to_string();
    assert!(!text.contains("os error"), "a bare errno: {text}");
    text
}

#[tokio::test]
async fn a_serial_bus_reports_a_missing_port_a_silent_unit_and_a_port_gone() {
    let dir = tempfile::tempdir().unwrap();
    let line = SerialSettings {
        baud: 19_200,
        ..SerialSettings::default()
    };
    let options = LinkOptions::rtu(TIMEOUT, line.baud, Duration::ZERO);

    let missing = dir.path().join("ttyUSB9").display().to_string();
    let mut link = ModbusLink::new(
        SerialConnector {
            path: missing.clone(),
            line,
        },
        options,
    );
    assert_eq!(
        serial_error(&mut link).await,
        format!("cannot connect to {missing}: no such serial port")
    );

    // Nothing on the other end of the line.
    let mut pty = PtyPair::new(dir.path());
    let mut link = ModbusLink::new(
        SerialConnector {
            path: pty.b(),
            line,
        },
        options,
    );
    assert_eq!(
        serial_error(&mut link).await,
        format!("no answer from unit 1 at {} within 300 ms", pty.b())
    );

    // The simulator answers; then the adapter is pulled while the port is open.
    let sim = Simulator::from_config(SimConfig::from_toml_str(SIM).unwrap()).unwrap();
    let rtu = sim
        .start_rtu(fieldlink_sim::SerialSettings::new(pty.a.clone(), line.baud))
        .unwrap();
    let mut answered = false;
    for _ in 0..20 {
        if let Ok(Ok(words)) = link.read(1, Table::HoldingRegister, 0, 1).await {
            assert_eq!(words, [1]);
            answered = true;
            break;
        }
    }
    assert!(answered, "the simulator never answered over the pty");
    pty.kill();
    let text = serial_error(&mut link).await;
    assert!(
        text.starts_with(&format!("{}: the serial port is gone", pty.b())),
        "{text}"
    );
    let _ = rtu.stop().await;
}
