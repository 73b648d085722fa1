//! The harness itself: each service starts on a free port, answers, survives a restart where
//! the tests rely on it, and is gone after drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use fieldlink_testkit::{tls::TestPki, Mosquitto, Postgres, Timescale};

fn port_is_closed(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_err()
}

fn mosquitto_pub(args: &[&str]) -> std::process::Output {
    Command::new("mosquitto_pub")
        .args(args)
        .output()
        .expect("mosquitto_pub (Debian's mosquitto-clients) must be installed")
}

/// Publishes a retained message and reads it back with the real command-line clients.
fn roundtrip(port: u16, extra: &[&str]) -> String {
    let port = port.to_string();
    let mut args = vec![
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "t/x",
        "-m",
        "hello",
        "-r",
        "-q",
        "1",
    ];
    args.extend_from_slice(extra);
    let out = mosquitto_pub(&args);
    assert!(
        out.status.success(),
        "publish failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut sub = vec![
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "t/x",
        "-C",
        "1",
        "-W",
        "5",
    ];
    sub.extend_from_slice(extra);
    let out = Command::new("mosquitto_sub").args(&sub).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn mosquitto_starts_serves_restarts_with_its_retained_state_and_stops() {
    let mut broker = Mosquitto::start().expect("start mosquitto");
    let port = broker.port();
    assert_eq!(roundtrip(port, &[]), "hello");

    broker.restart().expect("restart");
    assert_eq!(broker.port(), port, "a restart keeps the port");
    let out = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "t/x",
            "-C",
            "1",
            "-W",
            "5",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello",
        "the retained message survives a clean restart; log:\n{}",
        broker.log()
    );

    drop(broker);
    assert!(port_is_closed(port), "the broker is gone after drop");
}

#[test]
fn mosquitto_with_users_refuses_anonymous_clients() {
    let broker = Mosquitto::builder().user("g1", "secret").start().unwrap();
    let port = broker.port().to_string();
    let anonymous = mosquitto_pub(&["-h", "127.0.0.1", "-p", &port, "-t", "a", "-m", "x"]);
    assert!(
        !anonymous.status.success(),
        "anonymous publish must be refused"
    );
    let authed = mosquitto_pub(&[
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "a",
        "-m",
        "x",
        "-u",
        "g1",
        "-P",
        "secret",
    ]);
    assert!(
        authed.status.success(),
        "{}",
        String::from_utf8_lossy(&authed.stderr)
    );
}

#[test]
fn mosquitto_mtls_accepts_our_client_and_refuses_a_stranger() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "site").unwrap();
    let broker = Mosquitto::builder()
        .tls(pki.server("broker").unwrap())
        .require_client_cert()
        .start()
        .unwrap();
    assert!(broker.url().starts_with("mqtts://"));
    let client = pki.client("g1").unwrap();
    let ca = pki.ca_cert().to_str().unwrap().to_owned();
    let (cert, key) = (client.cert.to_str().unwrap(), client.key.to_str().unwrap());
    assert_eq!(
        roundtrip(
            broker.port(),
            &["--cafile", &ca, "--cert", cert, "--key", key]
        ),
        "hello"
    );

    let stranger_pki = TestPki::new(dir.path(), "elsewhere").unwrap();
    let stranger = stranger_pki.client("intruder").unwrap();
    let port = broker.port().to_string();
    let refused = mosquitto_pub(&[
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "a",
        "-m",
        "x",
        "--cafile",
        &ca,
        "--cert",
        stranger.cert.to_str().unwrap(),
        "--key",
        stranger.key.to_str().unwrap(),
    ]);
    assert!(
        !refused.status.success(),
        "a certificate from another CA must be refused"
    );
}

#[test]
fn postgres_starts_answers_restarts_and_stops() {
    let mut pg = Postgres::start().expect("start postgres");
    let port = pg.port();
    let url = pg.create_database("harness").unwrap();
    assert!(url.contains(&format!(":{port}/harness")));
    pg.psql(
        "harness",
        "CREATE TABLE t (x int); INSERT INTO t VALUES (41), (1)",
    )
    .unwrap();
    pg.restart().unwrap();
    assert_eq!(pg.psql("harness", "SELECT sum(x) FROM t").unwrap(), "42");
    drop(pg);
    assert!(port_is_closed(port), "postgres is gone after drop");
}

/// Speaks just enough of the PostgreSQL wire protocol to see the double answer a startup packet.
#[test]
fn timescale_double_speaks_the_postgres_protocol() {
    let ts = Timescale::start().expect("start the TimescaleDB double");
    let mut stream = TcpStream::connect(("127.0.0.1", ts.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for kv in ["user", "postgres", "database", "postgres"] {
        body.extend_from_slice(kv.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    stream.write_all(&packet).unwrap();
    let mut tag = [0u8; 1];
    stream.read_exact(&mut tag).unwrap();
    assert!(
        tag[0] == b'R' || tag[0] == b'E',
        "expected an authentication request or error, got {:?}",
        tag[0] as char
    );
    let port = ts.port();
    drop(ts);
    assert!(port_is_closed(port));
}
