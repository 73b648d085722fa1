//! Configuration checking, through the library and through the binary.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use fieldlink_sim::{ConfigError, SimConfig, Simulator};

const BIN: &str = env!("CARGO_BIN_EXE_fieldlink-sim");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/plant.toml");

fn error_of(toml_text: &str) -> String {
    let config = SimConfig::from_toml_str(toml_text);
    let err: ConfigError = match config {
        Err(err) => err,
        Ok(config) => Simulator::from_config(config).expect_err("configuration must be refused"),
    };
    err.to_string()
}

#[test]
fn the_shipped_example_is_valid_and_printed_by_the_binary() {
    let config = SimConfig::load(EXAMPLE).unwrap();
    config.validate().unwrap();
    let sim = Simulator::from_config(config).unwrap();
    assert_eq!(sim.unit_ids(), [1, 2, 3, 4]);
    assert!(sim.line_sensor("weather").is_some());

    let out = Command::new(BIN)
        .arg("print-example-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, std::fs::read(EXAMPLE).unwrap());
    let out = Command::new(BIN)
        .args(["check-config", EXAMPLE])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn mistakes_are_reported_with_the_unit_and_point_they_are_in() {
    let cases = [
        (
            r#"
            [[units]]
            id = 1
            [[units]]
            id = 7
            [[units.points]]
            table = "holding_register"
            address = 100
            type = "u32"
            [[units.points]]
            table = "holding_register"
            address = 101
            "#,
            "units[1] (unit 7).points[1] (holding_register 101): overlaps points[0] (holding_register 100) (u32)",
        ),
        (
            r#"
            [[units]]
            id = 2
            [[units.points]]
            table = "input_register"
            address = 5
            type = "i16"
            scale = 0.1
            waveform = { kind = "sine", offset = 0, amplitude = 5000, period_s = 10 }
            "#,
            "units[0] (unit 2).points[0] (input_register 5): waveform reaches -5000",
        ),
        (
            r#"
            [[units]]
            id = 2
            [[units]]
            id = 2
            "#,
            "units[1] (unit 2): unit id 2 is already used by units[0]",
        ),
        (
            r#"
            [[units]]
            id = 0
            "#,
            "units[0] (unit 0): unit id must be in 1..=247",
        ),
        (
            r#"
            [[units]]
            id = 4
            [[units.points]]
            table = "input_register"
            address = 3
            writable = true
            "#,
            "units[0] (unit 4).points[0] (input_register 3): input_register points cannot be written",
        ),
        (
            r#"
            [[units]]
            id = 4
            [[units.points]]
            table = "coil"
            address = 3
            type = "u16"
            "#,
            "units[0] (unit 4).points[0] (coil 3): coil points are single bits",
        ),
        (
            r#"
            [[units]]
            id = 5
            [[units.points]]
            table = "holding_register"
            address = 65534
            type = "f32"
            repeat = 2
            "#,
            "units[0] (unit 5).points[0] (holding_register 65536, copy 2 of 2): f32 at 65536 ends past address 65535",
        ),
        (
            r#"
            [[units]]
            id = 5
            [[units.points]]
            table = "holding_register"
            address = 0
            type = "string:2"
            waveform = { kind = "constant", value = "TOO LONG" }
            "#,
            "units[0] (unit 5).points[0] (holding_register 0): string of 8 bytes does not fit",
        ),
        (
            r#"
            [[units]]
            id = 6
            [[units.points]]
            table = "holding_register"
            address = 9
            waveform = { kind = "ramp", min = 10, max = 1, period_s = 5 }
            "#,
            "units[0] (unit 6).points[0] (holding_register 9): waveform: ramp min 10 must be below max 1",
        ),
        (
            r#"
            [[units]]
            id = 6
            faults = { drop_every = 0 }
            "#,
            "units[0] (unit 6).faults.drop_every: must be at least 1",
        ),
        (
            r#"
            [[units]]
            id = 6
            [[units.faults.exceptions]]
            table = "coil"
            address = 1
            code = 0
            "#,
            "units[0] (unit 6).faults.exceptions[0]: exception code 0",
        ),
    ];
    for (text, expected) in cases {
        let err = error_of(text);
        assert!(
            err.contains(expected),
            "expected {expected:?}\n     got {err:?}"
        );
    }
}

#[test]
fn syntax_and_unknown_names_are_refused_by_the_parser() {
    let typo = error_of(
        r#"
        [[units]]
        id = 1
        [[units.points]]
        table = "holding_register"
        adress = 3
        "#,
    );
    assert!(typo.contains("adress"), "{typo}");
    let kind = error_of(
        r#"
        [[units]]
        id = 1
        [[units.points]]
        table = "holding_register"
        address = 3
        waveform = { kind = "sawtooth", period_s = 1 }
        "#,
    );
    assert!(kind.contains("sawtooth"), "{kind}");
    let data_type = error_of(
        r#"
        [[units]]
        id = 1
        [[units.points]]
        table = "holding_register"
        address = 3
        type = "float"
        "#,
    );
    assert!(data_type.contains("unknown data type"), "{data_type}");
}

#[test]
fn the_binary_exits_3_naming_the_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[units]]\nid = 9\n[[units.points]]\ntable = \"holding_register\"\naddress = 1\ntype = \"u16\"\nwaveform = { kind = \"constant\", value = -1 }\n",
    )
    .unwrap();
    for args in [
        vec!["check-config".to_owned(), path.display().to_string()],
        vec![
            "run".to_owned(),
            "--config".to_owned(),
            path.display().to_string(),
        ],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("units[0] (unit 9).points[0] (holding_register 1)"),
            "{stderr}"
        );
    }
    let out = Command::new(BIN).args(["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args([
            "run",
            "--config",
            EXAMPLE,
            "--line",
            "nope=/dev/null",
            "--stats-interval",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"nope\""));
}

#[test]
fn the_binary_serves_tcp_and_stops_cleanly_on_sigint_and_sigterm() {
    for signal in ["-INT", "-TERM"] {
        serve_then_stop(signal);
    }
}

fn serve_then_stop(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served.jsonl");
    let mut child = Command::new(BIN)
        .args(["run", "--config", EXAMPLE, "--tcp", "127.0.0.1:0"])
        .args(["--stats-interval", "0.1", "--served-log"])
        .arg(&served)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("tcp ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .parse()
        .unwrap();
    let (log_tx, log_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if log_tx.send(line).is_err() {
                break;
            }
        }
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let serial = runtime.block_on(async {
        use tokio_modbus::client::Reader;
        let mut c = common::tcp_client(addr, 1).await;
        common::within("read", c.read_holding_registers(100, 4)).await
    });
    let words = serial.unwrap().unwrap();
    let text = fieldlink_drivers::codec::decode(
        &words,
        fieldlink_drivers::codec::DataType::String(4),
        fieldlink_drivers::codec::WordOrder::Abcd,
    )
    .unwrap();
    assert_eq!(
        text,
        fieldlink_drivers::codec::TypedValue::Str("EM-0042".into())
    );

    // The periodic counters report the request.
    let reported = loop {
        let line = log_rx
            .recv_timeout(common::PATIENCE)
            .expect("no counter report on stderr");
        if line.contains("simulator totals") && line.contains("requests=1 ") {
            break line;
        }
    };
    assert!(reported.contains("exceptions=0"), "{reported}");

    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(0), "{signal}");

    // The read reached the served-log file, drained on the way out, decoded per point.
    let text = std::fs::read_to_string(&served).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let read = &lines[0];
    assert_eq!(read["unit"], 1);
    assert_eq!(read["table"], "holding_register");
    assert_eq!(read["address"], 100);
    assert_eq!(read["words"], serde_json::json!(words));
    assert_eq!(read["points"][0]["name"], "serial_number");
    assert_eq!(read["points"][0]["type"], "string:4");
    assert_eq!(read["points"][0]["raw"], "EM-0042");
    assert!(read["points"][0]["value"].is_null());
    assert!(read["elapsed_s"].as_f64().unwrap() > 0.0);
}
