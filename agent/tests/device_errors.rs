//! What the cloud hears when a device fails: the real agent's device events carry errors that
//! say what happened and where. A device that takes each request and hangs up used to be
//! reported as "Resource temporarily unavailable (os error 11)".

mod support;

use std::io::Read;
use std::net::TcpListener;

use fieldlink_protocol::EventKind;
use support::*;

const SIM: &str = r#"
[[units]]
id = 1
[[units.points]]
table = "holding_register"
address = 0
waveform = { kind = "constant", value = 5 }
"#;

/// A TCP peer that reads each request and closes the connection without answering.
fn hanging_up_peer() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 12];
            let _ = stream.read_exact(&mut request);
        }
    });
    port
}

fn point(name: &str, address: u16) -> String {
    format!(
        "[[devices.points]]\nname = \"{name}\"\ntable = \"holding_register\"\naddress = {address}\n"
    )
}

#[test]
fn device_events_say_what_happened_to_the_device() {
    let sim = SimServer::tcp(SIM);
    let peer = hanging_up_peer();
    let broker = fieldlink_testkit::Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sub = Subscriber::start(broker.port(), "gw-errors");
    let devices = [
        tcp_device("closer", peer, 1, 200, &point("p", 0)),
        // Address 500 is not configured in the simulator: it answers exception 2.
        tcp_device("meter", sim.port, 1, 200, &point("missing", 500)),
    ]
    .concat();
    let cfg = agent_config(
        dir.path(),
        "gw-errors",
        &format!("url = \"{}\"", broker.url()),
        &devices,
    );
    let agent = AgentProc::start(&cfg, &dir.path().join("agent.log"));
    let down = |r: &Received| {
        r.events.iter().find_map(|e| match &e.kind {
            EventKind::DeviceDown { device, error } if device.as_str() == "closer" => {
                Some(error.clone())
            }
            _ => None,
        })
    };
    let degraded = |r: &Received| {
        r.events.iter().find_map(|e| match &e.kind {
            EventKind::DeviceDegraded { device, error } if device.as_str() == "meter" => {
                Some(error.clone())
            }
            _ => None,
        })
    };
    let rx = sub.wait("both devices' events", |r| {
        down(r).is_some() && degraded(r).is_some()
    });
    assert_eq!(
        down(&rx).unwrap(),
        format!("127.0.0.1:{peer}: connection closed by the device")
    );
    assert_eq!(
        degraded(&rx).unwrap(),
        "missing: device answered Modbus exception 2, illegal data address (the device has no \
         such register)"
    );
    let log = agent.log_text();
    assert!(
        log.contains("connection closed by the device") && !log.contains("os error"),
        "{log}"
    );
}
