//! The simulator over real Modbus TCP on 127.0.0.1:0, read and written with tokio-modbus's client.

mod common;

use std::f64::consts::TAU;
use std::time::Duration;

use common::{sim, tcp_client, unanswered, within};
use fieldlink_drivers::codec::{decode, DataType, TypedValue, WordOrder};
use fieldlink_sim::{ExceptionCode, Table};
use tokio_modbus::client::{Client, Reader, Writer};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{Request, Response, Slave};

const WAVES: &str = r#"
[served_log]
capacity = 100

[[units]]
id = 1

[[units.points]]
table = "holding_register"
address = 0
type = "f32"
order = "CDAB"
waveform = { kind = "sine", offset = 230, amplitude = 5, period_s = 2 }

[[units.points]]
table = "holding_register"
address = 2
type = "u16"
scale = 0.1
waveform = { kind = "ramp", min = 0, max = 100, period_s = 3 }

[[units.points]]
table = "holding_register"
address = 3
type = "i32"
order = "DCBA"
waveform = { kind = "counter", start = -5, increment = 1, interval_s = 0.05 }

[[units.points]]
table = "holding_register"
address = 5
type = "u64"
order = "BADC"
waveform = { kind = "counter", start = 4294967290, increment = 1, interval_s = 0.02 }

[[units.points]]
table = "holding_register"
address = 9
type = "f64"
waveform = { kind = "random_walk", start = 10, max_step = 0.5, min = 0, max = 20, interval_s = 0.01, seed = 9 }

[[units.points]]
table = "holding_register"
address = 13
type = "i16"
offset = 100
waveform = { kind = "step", values = [90, 110, 95], interval_s = 0.03 }

[[units.points]]
table = "holding_register"
address = 14
type = "string:3"
waveform = { kind = "constant", value = "PUMP1" }

[[units.points]]
table = "holding_register"
address = 17
type = "bit:0"
waveform = { kind = "step", values = [0, 1], interval_s = 0.04 }

[[units.points]]
table = "holding_register"
address = 17
type = "bit:5"
waveform = { kind = "constant", value = true }

[[units.points]]
table = "input_register"
address = 0
type = "u32"
order = "CDAB"
waveform = { kind = "constant", value = 123456 }

[[units.points]]
table = "coil"
address = 0
waveform = { kind = "step", values = [1, 0], interval_s = 0.03 }

[[units.points]]
table = "coil"
address = 1
waveform = { kind = "constant", value = true }

[[units.points]]
table = "discrete_input"
address = 0
waveform = { kind = "step", values = [0, 0, 1], interval_s = 0.02 }
"#;

fn number(words: &[u16], data_type: DataType, order: WordOrder) -> f64 {
    decode(words, data_type, order)
        .expect("decodes")
        .as_f64()
        .expect("a number")
}

#[tokio::test]
async fn served_values_follow_the_waveforms_in_every_type_and_order() {
    let sim = sim(WAVES);
    let server = sim.bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut client = tcp_client(server.local_addr(), 1).await;

    let mut holding = Vec::new();
    let mut coils = Vec::new();
    for _ in 0..6 {
        let h = within("read holding", client.read_holding_registers(0, 18)).await;
        holding.push(h.unwrap().unwrap());
        let c = within("read coils", client.read_coils(0, 2)).await;
        coils.push(c.unwrap().unwrap());
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let input = within("read input", client.read_input_registers(0, 2)).await;
    let discrete = within("read discrete", client.read_discrete_inputs(0, 1)).await;
    let discrete = discrete.unwrap().unwrap();
    assert_eq!(
        number(&input.unwrap().unwrap(), DataType::U32, WordOrder::Cdab),
        123_456.0
    );

    let log = sim.served_log();
    assert_eq!(log.len(), 6 * 2 + 2, "{log:?}");
    let holding_log: Vec<_> = log
        .iter()
        .filter(|r| r.table == Table::HoldingRegister)
        .collect();
    let coil_log: Vec<_> = log.iter().filter(|r| r.table == Table::Coil).collect();

    for (words, served) in holding.iter().zip(&holding_log) {
        // The log holds exactly what the client received, and the ground-truth API agrees.
        assert_eq!(&served.words, words);
        assert_eq!((served.unit, served.address), (1, 0));
        let truth = sim
            .registers_at(1, Table::HoldingRegister, 0, 18, served.elapsed)
            .unwrap();
        assert_eq!(&truth, words);

        // And the values are the waveforms, computed here independently, at the served time.
        let t = served.elapsed.as_secs_f64();
        let sine = 230.0 + 5.0 * (TAU * t / 2.0).sin();
        assert!((number(&words[0..2], DataType::F32, WordOrder::Cdab) - sine).abs() < 1e-3);
        let ramp = 100.0 * (t / 3.0).fract();
        assert!(
            (number(&words[2..3], DataType::U16, WordOrder::Abcd) * 0.1 - ramp).abs()
                <= 0.05 + 1e-9
        );
        let counter = -5.0 + (t / 0.05).floor();
        assert_eq!(
            number(&words[3..5], DataType::I32, WordOrder::Dcba),
            counter
        );
        let big = 4_294_967_290.0 + (t / 0.02).floor();
        assert_eq!(number(&words[5..9], DataType::U64, WordOrder::Badc), big);
        let walk = number(&words[9..13], DataType::F64, WordOrder::Abcd);
        assert!((0.0..=20.0).contains(&walk), "{walk}");
        let step = [90.0, 110.0, 95.0][((t / 0.03).floor() as usize) % 3];
        assert_eq!(
            number(&words[13..14], DataType::I16, WordOrder::Abcd) + 100.0,
            step
        );
        assert_eq!(
            decode(&words[14..17], DataType::String(3), WordOrder::Abcd).unwrap(),
            TypedValue::Str("PUMP1".into())
        );
        let bit0 = ((t / 0.04).floor() as u64) % 2;
        assert_eq!(u64::from(words[17]), bit0 | 0b10_0000);
    }
    for (bits, served) in coils.iter().zip(&coil_log) {
        let t = served.elapsed.as_secs_f64();
        let expected0 = ((t / 0.03).floor() as u64).is_multiple_of(2);
        assert_eq!(&bits[..2], &[expected0, true]);
        assert_eq!(served.words, vec![u16::from(expected0), 1]);
    }
    let served_discrete = log
        .iter()
        .find(|r| r.table == Table::DiscreteInput)
        .unwrap();
    let t = served_discrete.elapsed.as_secs_f64();
    assert_eq!(discrete[0], ((t / 0.02).floor() as u64) % 3 == 2);

    let stats = sim.stats();
    assert_eq!(stats.requests_for(1, 3), 6);
    assert_eq!(stats.requests_for(1, 1), 6);
    assert_eq!(stats.requests_for(1, 4), 1);
    assert_eq!(stats.requests_for(1, 2), 1);
    assert_eq!(stats.requests_total(), 14);
    assert_eq!(stats.exceptions_total(), 0);
    assert_eq!(stats.tcp_connections, 1);
    server.stop().await.unwrap();
}

const WRITABLE: &str = r#"
[[units]]
id = 3
size = { holding_registers = 10, coils = 8 }

[[units.points]]
table = "holding_register"
address = 100
type = "f32"
writable = true
waveform = { kind = "constant", value = 1.5 }

[[units.points]]
table = "holding_register"
address = 102
type = "u16"
writable = true
waveform = { kind = "counter", interval_s = 0.01 }

[[units.points]]
table = "holding_register"
address = 103
type = "u16"
waveform = { kind = "constant", value = 7 }

[[units.points]]
table = "coil"
address = 20
writable = true

[[units.points]]
table = "input_register"
address = 0
waveform = { kind = "constant", value = 11 }
"#;

#[tokio::test]
async fn writes_are_kept_and_read_only_points_refuse_them() {
    let sim = sim(WRITABLE);
    let server = sim.bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut c = tcp_client(server.local_addr(), 3).await;

    // A two-register float written in one request.
    let words =
        fieldlink_drivers::codec::encode(&TypedValue::F32(-42.25), DataType::F32, WordOrder::Abcd)
            .unwrap();
    within("write f32", c.write_multiple_registers(100, &words))
        .await
        .unwrap()
        .unwrap();
    let back = within("read f32", c.read_holding_registers(100, 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, words);

    // A written counter stops counting: it keeps the written value.
    within("write counter", c.write_single_register(102, 500))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let kept = within("read counter", c.read_holding_registers(102, 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept, [500]);
    assert_eq!(
        sim.read_register(3, Table::HoldingRegister, 102).unwrap(),
        500
    );

    // Mask write: (current & and) | (or & !and).
    within("mask", c.masked_write_register(102, 0x00F0, 0x0F03))
        .await
        .unwrap()
        .unwrap();
    let masked = within("read masked", c.read_holding_registers(102, 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(masked, [(500 & 0x00F0) | (0x0F03 & !0x00F0)]);

    // Function code 23 writes before it reads.
    let rw = within(
        "read/write",
        c.read_write_multiple_registers(0, 3, 1, &[9, 8]),
    )
    .await;
    assert_eq!(rw.unwrap().unwrap(), [0, 9, 8]);

    // A read-only point refuses, and a write spanning it changes nothing at all.
    let refused = within("write ro", c.write_single_register(103, 1))
        .await
        .unwrap();
    assert_eq!(refused, Err(ExceptionCode::IllegalDataAddress));
    let refused = within("write span", c.write_multiple_registers(102, &[1, 2]))
        .await
        .unwrap();
    assert_eq!(refused, Err(ExceptionCode::IllegalDataAddress));
    let unchanged = within("read", c.read_holding_registers(102, 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged[1], 7);
    assert_ne!(unchanged[0], 1);

    // Coils: a writable point and plain memory.
    within("coil", c.write_single_coil(20, true))
        .await
        .unwrap()
        .unwrap();
    within("coils", c.write_multiple_coils(0, &[true, false, true]))
        .await
        .unwrap()
        .unwrap();
    let coils = within("read coil", c.read_coils(20, 1))
        .await
        .unwrap()
        .unwrap();
    assert!(coils[0]);
    let memory = within("read coils", c.read_coils(0, 4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&memory[..4], &[true, false, true, false]);

    // A test forcing an input register through the API; a client sees it.
    sim.write_register(3, Table::InputRegister, 0, 4242)
        .unwrap();
    let forced = within("read input", c.read_input_registers(0, 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(forced, [4242]);

    assert_eq!(sim.stats().exceptions_for(3, 2), 2);
    assert_eq!(sim.stats().requests_for(3, 16), 2);
    drop(server);
}

#[tokio::test]
async fn requests_outside_the_map_get_the_matching_exception() {
    let sim = sim(WRITABLE);
    let server = sim.bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut c = tcp_client(server.local_addr(), 3).await;

    // 10..100 is neither memory nor a point.
    let gap = within("gap", c.read_holding_registers(8, 3)).await.unwrap();
    assert_eq!(gap, Err(ExceptionCode::IllegalDataAddress));
    let past = within("past end", c.read_holding_registers(103, 2))
        .await
        .unwrap();
    assert_eq!(past, Err(ExceptionCode::IllegalDataAddress));
    let oversized = within("oversized", c.read_holding_registers(0, 126))
        .await
        .unwrap();
    assert_eq!(oversized, Err(ExceptionCode::IllegalDataValue));
    let unsupported = within("fc 17", c.call(Request::ReportServerId))
        .await
        .unwrap();
    assert_eq!(unsupported, Err(ExceptionCode::IllegalFunction));

    c.set_slave(Slave(99));
    let unknown = within("unit 99", c.read_holding_registers(0, 1))
        .await
        .unwrap();
    assert_eq!(unknown, Err(ExceptionCode::GatewayTargetDevice));
    // With a single unit configured, id 255 reaches it.
    c.set_slave(Slave(255));
    let only = within("unit 255", c.call(Request::ReadInputRegisters(0, 1))).await;
    assert_eq!(only.unwrap(), Ok(Response::ReadInputRegisters(vec![11])));

    let stats = sim.stats();
    assert_eq!(stats.exceptions_for(3, 2), 2);
    assert_eq!(stats.exceptions_for(3, 3), 1);
    assert_eq!(stats.exceptions_for(3, 1), 1);
    assert_eq!(stats.unknown_unit_requests, 1);
    assert_eq!(stats.requests_for(3, 4), 1);
    drop(server);
}

const FAULTS: &str = r#"
[[units]]
id = 1
size = { holding_registers = 100 }
[[units.faults.exceptions]]
table = "holding_register"
address = 40
count = 5
code = 4

[[units]]
id = 2
size = { holding_registers = 10 }
faults = { delay_ms = 600 }

[[units]]
id = 3
size = { holding_registers = 10 }
faults = { silent = true }

[[units]]
id = 4
size = { holding_registers = 10 }
faults = { drop_every = 3 }
"#;

#[tokio::test]
async fn injected_exceptions_cover_their_range_only() {
    let sim = sim(FAULTS);
    let server = sim.bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut c = tcp_client(server.local_addr(), 1).await;
    let hit = within("read 38..42", c.read_holding_registers(38, 4))
        .await
        .unwrap();
    assert_eq!(hit, Err(ExceptionCode::ServerDeviceFailure));
    let write = within("write 44", c.write_single_register(44, 1))
        .await
        .unwrap();
    assert_eq!(write, Err(ExceptionCode::ServerDeviceFailure));
    let clear = within("read 30..40", c.read_holding_registers(30, 10))
        .await
        .unwrap();
    assert_eq!(clear.unwrap().len(), 10);
    let after = within("read 45", c.read_holding_registers(45, 1))
        .await
        .unwrap();
    assert!(after.is_ok());
    let stats = sim.stats();
    assert_eq!(stats.faults.injected_exceptions, 2);
    assert_eq!(stats.exceptions_for(1, 4), 2);
    drop(server);
}

#[tokio::test]
async fn a_slow_unit_answers_late_and_a_silent_unit_never() {
    let sim = sim(FAULTS);
    let server = sim.bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();

    let mut slow = tcp_client(server.local_addr(), 2).await;
    // The answer cannot come before the 600 ms delay, so a 400 ms wait sees nothing…
    assert!(unanswered(slow.read_holding_registers(0, 1)).await);
    // …and a patient client gets it (on a fresh connection: the timed-out one is abandoned).
    let mut slow = tcp_client(server.local_addr(), 2).await;
    let late = within("slow read", slow.read_holding_registers(0, 2))
        .await
        .unwrap();
    assert_eq!(late, Ok(vec![0, 0]));

    let mut silent = tcp_client(server.local_addr(), 3).await;
    assert!(unanswered(silent.read_holding_registers(0, 1)).await);
    // The connection is still there: the next request is ignored too, not refused.
    assert!(unanswered(silent.read_holding_registers(0, 1)).await);

    let stats = sim.stats();
    assert_eq!(stats.faults.delayed, 2);
    assert_eq!(stats.faults.silenced, 2);
    assert_eq!(stats.requests_for_unit(3), 2);
    drop(server);
}

#[tokio::test]
async fn every_nth_request_drops_the_connection() {
    let sim = sim(FAULTS);
    let server = sim.bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut c = tcp_client(server.local_addr(), 4).await;
    for _ in 0..2 {
        within("read", c.read_holding_registers(0, 1))
            .await
            .unwrap()
            .unwrap();
    }
    // The third request closes the connection: the client sees a transport error, not an
    // exception and not a hang.
    let dropped = within("third read", c.read_holding_registers(0, 1)).await;
    assert!(
        matches!(dropped, Err(tokio_modbus::Error::Transport(_))),
        "{dropped:?}"
    );
    let again = within("read on closed", c.read_holding_registers(0, 1)).await;
    assert!(again.is_err(), "{again:?}");

    // A new connection works until the sixth request overall.
    let mut c = tcp_client(server.local_addr(), 4).await;
    for _ in 0..2 {
        within("read", c.read_holding_registers(0, 1))
            .await
            .unwrap()
            .unwrap();
    }
    let dropped = within("sixth read", c.read_holding_registers(0, 1)).await;
    assert!(dropped.is_err(), "{dropped:?}");

    let stats = sim.stats();
    assert_eq!(stats.faults.dropped, 2);
    assert_eq!(stats.tcp_connections, 2);
    drop(server);
}

#[tokio::test]
async fn stopping_the_server_closes_its_connections() {
    let sim = sim(FAULTS);
    let server = sim.bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = server.local_addr();
    let mut c = tcp_client(addr, 1).await;
    within("read", c.read_holding_registers(0, 1))
        .await
        .unwrap()
        .unwrap();
    within("stop", server.stop()).await.unwrap();
    let after = within("read after stop", c.read_holding_registers(0, 1)).await;
    assert!(after.is_err(), "{after:?}");
    let reconnect = tokio::net::TcpStream::connect(addr).await;
    assert!(reconnect.is_err(), "listener still accepting");
}

const NAMED: &str = r#"
[served_log]
capacity = 10

[[units]]
id = 5
size = { holding_registers = 2 }

[[units.points]]
name = "voltage"
table = "holding_register"
address = 2
type = "i32"
scale = 0.01
offset = 200
waveform = { kind = "sine", offset = 230, amplitude = 7, period_s = 5 }

[[units.points]]
name = "block"
table = "holding_register"
address = 4
repeat = 3
waveform = { kind = "counter", start = 10, interval_s = 0.01 }
"#;

#[tokio::test]
async fn served_reads_decode_into_named_point_values() {
    let sim = sim(NAMED);
    let server = sim.bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut c = tcp_client(server.local_addr(), 5).await;
    within("read all", c.read_holding_registers(0, 7))
        .await
        .unwrap()
        .unwrap();
    within("read part", c.read_holding_registers(3, 2))
        .await
        .unwrap()
        .unwrap();

    let log = sim.served_log();
    let all = sim.decode_served(&log[0]);
    let names: Vec<_> = all.iter().map(|v| v.point.name.clone().unwrap()).collect();
    assert_eq!(names, ["voltage", "block[0]", "block[1]", "block[2]"]);
    let t = log[0].elapsed.as_secs_f64();
    let sine = 230.0 + 7.0 * (TAU * t / 5.0).sin();
    // i32 with scale 0.01: the served value is rounded to the nearest hundredth.
    assert!((all[0].value.unwrap() - sine).abs() <= 0.005 + 1e-9);
    assert_eq!(
        all[0].raw,
        TypedValue::I32(((sine - 200.0) / 0.01).round() as i32)
    );
    let counter = 10.0 + (t / 0.01).floor();
    for v in &all[1..] {
        assert_eq!(v.value, Some(counter));
        assert_eq!(v.elapsed, log[0].elapsed);
    }
    // The second read covered half of the voltage and all of block[0].
    let part = sim.decode_served(&log[1]);
    assert_eq!(part.len(), 1);
    assert_eq!(part[0].point.name.as_deref(), Some("block[0]"));

    let points = sim.points(5).unwrap();
    assert_eq!(points.len(), 4);
    assert_eq!((points[0].address, points[0].data_type), (2, DataType::I32));
    assert_eq!(points[3].address, 6);
    drop(server);
}

const WIRE: &str = r#"
[[units]]
id = 17
[[units.points]]
table = "holding_register"
address = 0
type = "u32"
waveform = { kind = "constant", value = 305419896 }
[[units.points]]
table = "coil"
address = 0
waveform = { kind = "constant", value = true }
[[units.points]]
table = "coil"
address = 2
waveform = { kind = "constant", value = true }
[[units.points]]
table = "coil"
address = 1
"#;

/// Frames written byte by byte from the Modbus specification, so the server is checked against
/// the standard rather than against tokio-modbus's own client.
#[tokio::test]
async fn the_wire_bytes_follow_the_modbus_tcp_specification() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = sim(WIRE);
    let server = sim.bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut socket = within(
        "connect",
        tokio::net::TcpStream::connect(server.local_addr()),
    )
    .await
    .unwrap();
    let cases: [(&[u8], &[u8]); 4] = [
        // Read 2 holding registers at 0: 0x12345678 big-endian.
        (
            &[0, 1, 0, 0, 0, 6, 17, 0x03, 0, 0, 0, 2],
            &[0, 1, 0, 0, 0, 7, 17, 0x03, 4, 0x12, 0x34, 0x56, 0x78],
        ),
        // Read 3 coils: 1, 0, 1 packed LSB first.
        (
            &[0, 2, 0, 0, 0, 6, 17, 0x01, 0, 0, 0, 3],
            &[0, 2, 0, 0, 0, 4, 17, 0x01, 1, 0b101],
        ),
        // Register 2 does not exist: exception 2 on function 0x83.
        (
            &[0, 3, 0, 0, 0, 6, 17, 0x03, 0, 1, 0, 2],
            &[0, 3, 0, 0, 0, 3, 17, 0x83, 0x02],
        ),
        // A register write to a read-only point: exception 2 on function 0x86.
        (
            &[0, 4, 0, 0, 0, 6, 17, 0x06, 0, 0, 0xAB, 0xCD],
            &[0, 4, 0, 0, 0, 3, 17, 0x86, 0x02],
        ),
    ];
    for (request, expected) in cases {
        socket.write_all(request).await.unwrap();
        let mut answer = vec![0; expected.len()];
        within("answer", socket.read_exact(&mut answer))
            .await
            .unwrap();
        assert_eq!(answer, expected);
    }
    drop(server);
}
