//! Byte-level tests of the JSON forms, including the examples in the README.

use super::*;
use crate::error::DecodeError;
use crate::{
    Ack, AckStage, Birth, Command, CommandKind, ConfigDocument, DataKind, Death, DeviceInfo, Event,
    EventKind, Ident, Point, PointInfo, Quality, Status, TelemetryBatch, Value,
};

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn text<M: Message + Serialize>(m: &M) -> String {
    String::from_utf8(encode(m).unwrap()).unwrap()
}

fn batch() -> TelemetryBatch {
    let mut b = TelemetryBatch::new(id("gw-01"), 7, 42);
    let t0 = 1_700_000_000_000;
    for (k, (v, open)) in [(230.1, false), (230.2, false), (230.2, true)]
        .into_iter()
        .enumerate()
    {
        let ts = t0 + 1000 * k as i64;
        let q = if k == 1 {
            Quality::Uncertain
        } else {
            Quality::Good
        };
        b.points
            .push(Point::new(id("meter-01"), id("voltage_l1"), ts, v).with_quality(q));
        b.points
            .push(Point::new(id("meter-01"), id("breaker_open"), ts, open));
    }
    b.points
        .push(Point::new(id("meter-02"), id("state"), t0 + 500, "running"));
    b
}

const BATCH_JSON: &str = r#"{"gateway":"gw-01","boot_epoch":7,"seq":42,"historical":false,"groups":[{"device":"meter-01","t0":1700000000000,"dt":[1000,1000],"values":{"voltage_l1":[230.1,230.2,230.2],"breaker_open":[false,false,true]},"quality":{"voltage_l1":["good","uncertain","good"]}},{"device":"meter-02","t0":1700000000500,"values":{"state":["running"]}}]}"#;

#[test]
fn telemetry_example_is_exact_and_reads_back_in_series_order() {
    let b = batch();
    assert_eq!(text(&b), BATCH_JSON);
    let back: TelemetryBatch = decode(BATCH_JSON.as_bytes()).unwrap();
    assert_eq!(back, b.in_series_order());
}

#[test]
fn telemetry_groups_split_on_device_and_on_timestamps() {
    let mut b = TelemetryBatch::new(id("gw"), 1, 1);
    b.points.push(Point::new(id("d"), id("a"), 10, 1.0));
    b.points.push(Point::new(id("d"), id("b"), 11, 2.0));
    b.points.push(Point::new(id("e"), id("a"), 11, 3.0));
    b.historical = true;
    let t = text(&b);
    assert_eq!(
        t,
        r#"{"gateway":"gw","boot_epoch":1,"seq":1,"historical":true,"groups":[{"device":"d","t0":10,"values":{"a":[1]}},{"device":"d","t0":11,"values":{"b":[2]}},{"device":"e","t0":11,"values":{"a":[3]}}]}"#
    );
    assert_eq!(decode::<TelemetryBatch>(t.as_bytes()).unwrap(), b);
}

#[test]
fn telemetry_decoder_accepts_any_key_order_white_space_and_unknown_keys() {
    let j = r#" {
        "groups": [ { "values": {"m": [1, 2.5]}, "quality": {"m": ["bad", "good"]},
                      "dt": [-5], "extra": [1, {"x": 2}], "t0": 100, "device": "d" } ],
        "seq": 3, "boot_epoch": 2, "gateway": "g", "future_field": null
    } "#;
    let b: TelemetryBatch = decode(j.as_bytes()).unwrap();
    assert!(!b.historical);
    assert_eq!(b.points.len(), 2);
    assert_eq!(b.points[0].ts_ms, 100);
    assert_eq!(b.points[0].quality, Quality::Bad);
    assert_eq!(b.points[1].ts_ms, 95);
    assert_eq!(b.points[1].value, Value::Number(2.5));
}

fn json_err(j: &str) -> String {
    match decode::<TelemetryBatch>(j.as_bytes()) {
        Err(e) => e.to_string(),
        Ok(b) => panic!("{j} decoded to {b:?}"),
    }
}

#[test]
fn telemetry_decoder_errors_say_what_is_wrong() {
    let head = r#"{"gateway":"g","boot_epoch":1,"seq":1,"groups":"#;
    let cases = [
        (
            format!(r#"{head}[{{"device":"d","t0":1,"dt":[1],"values":{{"m":[1]}}}}]}}"#),
            "has 1 values but t0 and dt give 2 timestamps",
        ),
        (
            format!(r#"{head}[{{"device":"d","t0":1,"values":{{}}}}]}}"#),
            "names no metric",
        ),
        (
            format!(r#"{head}[{{"t0":1,"values":{{"m":[1]}}}}]}}"#),
            "groups[0]: missing field `device`",
        ),
        (
            format!(r#"{head}[{{"device":"d","values":{{"m":[1]}}}}]}}"#),
            "missing field `t0`",
        ),
        (
            format!(r#"{head}[{{"device":"d","t0":1,"values":{{"m":[1],"m":[2]}}}}]}}"#),
            "appears twice",
        ),
        (
            format!(
                r#"{head}[{{"device":"d","t0":1,"values":{{"m":[1]}},"quality":{{"n":["bad"]}}}}]}}"#
            ),
            "quality names metric \"n\"",
        ),
        (
            format!(
                r#"{head}[{{"device":"d","t0":1,"values":{{"m":[1]}},"quality":{{"m":["bad","bad"]}}}}]}}"#
            ),
            "has 2 entries",
        ),
        (
            format!(r#"{head}[{{"device":"d","t0":1,"values":{{"m":[null]}}}}]}}"#),
            "a number, a boolean or a string",
        ),
        (
            format!(r#"{head}[{{"device":"d/x","t0":1,"values":{{"m":[1]}}}}]}}"#),
            "'/'",
        ),
        (
            format!(
                r#"{head}[{{"device":"d","t0":9223372036854775807,"dt":[1],"values":{{"m":[1,2]}}}}]}}"#
            ),
            "overflows",
        ),
        (
            format!(r#"{head}[{{"device":"d","t0":-1,"values":{{"m":[1]}}}}]}}"#),
            "points[0].ts_ms",
        ),
        (
            format!(r#"{head}[{{"device":"d","t0":1,"values":{{"m":[1e999]}}}}]}}"#),
            "number out of range",
        ),
        (
            r#"{"gateway":"g","boot_epoch":1,"groups":[]}"#.to_string(),
            "missing field `seq`",
        ),
        (
            r#"{"gateway":"g","gateway":"g","boot_epoch":1,"seq":1,"groups":[]}"#.to_string(),
            "duplicate field `gateway`",
        ),
        (
            r#"{"gateway":"g","boot_epoch":-1,"seq":1,"groups":[]}"#.to_string(),
            "invalid value",
        ),
    ];
    for (j, want) in cases {
        let e = json_err(&j);
        assert!(e.contains(want), "{j}\n  gave {e}\n  want {want}");
    }
}

#[test]
fn telemetry_decoder_stops_at_the_point_limit() {
    use crate::limits::MAX_POINTS_PER_BATCH;
    let zeros = vec!["0"; MAX_POINTS_PER_BATCH / 2 + 1].join(",");
    let dt = vec!["0"; MAX_POINTS_PER_BATCH / 2].join(",");
    let j = format!(
        r#"{{"gateway":"g","boot_epoch":1,"seq":1,"groups":[{{"device":"d","t0":1,"dt":[{dt}],"values":{{"a":[{zeros}],"b":[{zeros}]}}}}]}}"#
    );
    assert!(json_err(&j).contains("over the limit of points per batch"));
    let dt = vec!["0"; MAX_POINTS_PER_BATCH + 1].join(",");
    let j = format!(
        r#"{{"gateway":"g","boot_epoch":1,"seq":1,"groups":[{{"device":"d","t0":1,"dt":[{dt}],"values":{{"a":[1]}}}}]}}"#
    );
    assert!(json_err(&j).contains("more than 10000 intervals"));
}

#[test]
fn truncated_json_is_an_error_at_every_length() {
    for cut in 0..BATCH_JSON.len() {
        assert!(
            decode::<TelemetryBatch>(&BATCH_JSON.as_bytes()[..cut]).is_err(),
            "{cut}"
        );
    }
}

#[test]
fn payload_checks_come_before_parsing() {
    assert!(matches!(
        decode::<TelemetryBatch>(b""),
        Err(DecodeError::Empty)
    ));
    assert!(matches!(
        decode::<TelemetryBatch>(b" \n"),
        Err(DecodeError::Empty)
    ));
    assert!(matches!(
        decode::<TelemetryBatch>(b"[1]"),
        Err(DecodeError::UnknownEncoding(b'['))
    ));
    let big = vec![b' '; crate::limits::MAX_PAYLOAD_BYTES + 1];
    assert!(matches!(
        decode::<TelemetryBatch>(&big),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn encode_refuses_invalid_and_oversized_messages() {
    let mut b = batch();
    b.points[0].value = Value::Number(f64::NAN);
    assert!(matches!(encode(&b), Err(EncodeError::Invalid(_))));
    let mut b = TelemetryBatch::new(id("g"), 1, 1);
    for i in 0..1_500 {
        b.points.push(Point::new(
            id("d"),
            id(&format!("m{i}")),
            i,
            "x".repeat(200).as_str(),
        ));
    }
    assert!(matches!(encode(&b), Err(EncodeError::TooLarge { .. })));
}

fn birth() -> Status {
    Status::Online(Birth {
        gateway: id("gw-01"),
        boot_epoch: 7,
        ts_ms: 1_700_000_000_000,
        agent_version: "0.1.0".into(),
        config_hash: "9f2c4e".into(),
        devices: vec![DeviceInfo {
            name: id("meter-01"),
            points: vec![
                PointInfo {
                    name: id("voltage_l1"),
                    unit: Some("V".into()),
                    kind: DataKind::Number,
                    writable: false,
                },
                PointInfo {
                    name: id("setpoint"),
                    unit: None,
                    kind: DataKind::Number,
                    writable: true,
                },
            ],
        }],
    })
}

fn command(kind: CommandKind) -> Command {
    Command {
        id: id("c-42"),
        created_at_ms: 1_700_000_000_000,
        expires_at_ms: 1_700_000_060_000,
        kind,
    }
}

fn event(kind: EventKind) -> Event {
    Event {
        gateway: id("gw-01"),
        boot_epoch: 7,
        seq: 3,
        ts_ms: 1_700_000_000_000,
        kind,
    }
}

/// Every message of the README, encoded exactly as documented, and read back.
#[test]
fn readme_examples() {
    fn check<M>(m: M, want: &str)
    where
        M: Message + Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        assert_eq!(text(&m), want);
        assert_eq!(decode::<M>(want.as_bytes()).unwrap(), m);
    }
    check(
        birth(),
        r#"{"state":"online","gateway":"gw-01","boot_epoch":7,"ts_ms":1700000000000,"agent_version":"0.1.0","config_hash":"9f2c4e","devices":[{"name":"meter-01","points":[{"name":"voltage_l1","unit":"V","kind":"number","writable":false},{"name":"setpoint","kind":"number","writable":true}]}]}"#,
    );
    check(
        Status::Offline(Death {
            gateway: id("gw-01"),
            boot_epoch: 7,
        }),
        r#"{"state":"offline","gateway":"gw-01","boot_epoch":7}"#,
    );
    let dev = id("meter-01");
    let head = r#"{"gateway":"gw-01","boot_epoch":7,"seq":3,"ts_ms":1700000000000,"#;
    check(
        event(EventKind::DeviceUp {
            device: dev.clone(),
        }),
        &format!(r#"{head}"event":"device_up","device":"meter-01"}}"#),
    );
    check(
        event(EventKind::DeviceDown {
            device: dev.clone(),
            error: "timeout after 3 retries".into(),
        }),
        &format!(
            r#"{head}"event":"device_down","device":"meter-01","error":"timeout after 3 retries"}}"#
        ),
    );
    check(
        event(EventKind::DeviceDegraded {
            device: dev.clone(),
            error: "2 of 10 reads failed".into(),
        }),
        &format!(
            r#"{head}"event":"device_degraded","device":"meter-01","error":"2 of 10 reads failed"}}"#
        ),
    );
    check(
        event(EventKind::Error {
            device: None,
            message: "serial port /dev/ttyUSB0 vanished".into(),
        }),
        &format!(r#"{head}"event":"error","message":"serial port /dev/ttyUSB0 vanished"}}"#),
    );
    check(
        event(EventKind::TelemetryDropped {
            points: 1200,
            oldest_ts_ms: Some(1_699_990_000_000),
            newest_ts_ms: Some(1_699_990_011_999),
        }),
        &format!(
            r#"{head}"event":"telemetry_dropped","points":1200,"oldest_ts_ms":1699990000000,"newest_ts_ms":1699990011999}}"#
        ),
    );
    check(
        event(EventKind::ConfigApplied {
            config_hash: "9f2c4e".into(),
        }),
        &format!(r#"{head}"event":"config_applied","config_hash":"9f2c4e"}}"#),
    );
    check(
        event(EventKind::ConfigRejected {
            config_hash: Some("77aa01".into()),
            error: "devices[2].points[5].address: 70000 is above 65535".into(),
        }),
        &format!(
            r#"{head}"event":"config_rejected","config_hash":"77aa01","error":"devices[2].points[5].address: 70000 is above 65535"}}"#
        ),
    );
    check(
        event(EventKind::JournalQuarantined {
            file: "journal.db.corrupt-1700000000".into(),
            error: "database disk image is malformed".into(),
        }),
        &format!(
            r#"{head}"event":"journal_quarantined","file":"journal.db.corrupt-1700000000","error":"database disk image is malformed"}}"#
        ),
    );
    check(
        event(EventKind::Other {
            kind: id("ntp_synced"),
            message: "clock stepped by +3.2 s".into(),
        }),
        &format!(
            r#"{head}"event":"other","kind":"ntp_synced","message":"clock stepped by +3.2 s"}}"#
        ),
    );
    let head = r#"{"id":"c-42","created_at_ms":1700000000000,"expires_at_ms":1700000060000,"#;
    check(
        command(CommandKind::WritePoint {
            device: dev.clone(),
            point: id("setpoint"),
            value: Value::Number(21.5),
        }),
        &format!(
            r#"{head}"command":"write_point","device":"meter-01","point":"setpoint","value":21.5}}"#
        ),
    );
    check(
        command(CommandKind::ReadNow {
            device: dev.clone(),
            points: vec![id("voltage_l1"), id("voltage_l2")],
        }),
        &format!(
            r#"{head}"command":"read_now","device":"meter-01","points":["voltage_l1","voltage_l2"]}}"#
        ),
    );
    check(
        command(CommandKind::SetPollInterval {
            device: dev.clone(),
            interval_ms: 5000,
        }),
        &format!(r#"{head}"command":"set_poll_interval","device":"meter-01","interval_ms":5000}}"#),
    );
    check(
        command(CommandKind::ApplyConfig {
            config: ConfigDocument::Toml("[agent]\ngateway = \"gw-01\"\n".into()),
        }),
        &format!(
            r#"{head}"command":"apply_config","config":{{"toml":"[agent]\ngateway = \"gw-01\"\n"}}}}"#
        ),
    );
    check(
        command(CommandKind::ApplyConfig {
            config: ConfigDocument::Document(serde_json::json!({"agent": {"gateway": "gw-01"}})),
        }),
        &format!(
            r#"{head}"command":"apply_config","config":{{"document":{{"agent":{{"gateway":"gw-01"}}}}}}}}"#
        ),
    );
    check(
        command(CommandKind::Ping),
        &format!(r#"{head}"command":"ping"}}"#),
    );
    check(
        Ack {
            command_id: id("c-42"),
            stage: AckStage::Received,
            result: None,
            error: None,
            ts_ms: 1_700_000_000_020,
        },
        r#"{"command_id":"c-42","stage":"received","ts_ms":1700000000020}"#,
    );
    check(
        Ack {
            command_id: id("c-42"),
            stage: AckStage::Executed,
            result: Some(Value::Number(21.5)),
            error: None,
            ts_ms: 1_700_000_000_045,
        },
        r#"{"command_id":"c-42","stage":"executed","result":21.5,"ts_ms":1700000000045}"#,
    );
    check(
        Ack {
            command_id: id("c-42"),
            stage: AckStage::Failed,
            result: None,
            error: Some("Modbus exception 2: illegal data address".into()),
            ts_ms: 1_700_000_000_045,
        },
        r#"{"command_id":"c-42","stage":"failed","error":"Modbus exception 2: illegal data address","ts_ms":1700000000045}"#,
    );
}

#[test]
fn other_messages_reject_what_validation_rejects() {
    let j = r#"{"id":"c","created_at_ms":10,"expires_at_ms":5,"command":"ping"}"#;
    assert!(matches!(
        decode::<Command>(j.as_bytes()),
        Err(DecodeError::Invalid(_))
    ));
    let j = r#"{"id":"c","created_at_ms":1,"expires_at_ms":5,"command":"reboot"}"#;
    let e = decode::<Command>(j.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("reboot"), "{e}");
    let j = r#"{"command_id":"c","stage":"done","ts_ms":1}"#;
    assert!(matches!(
        decode::<Ack>(j.as_bytes()),
        Err(DecodeError::Json(_))
    ));
    let j = r#"{"state":"sleeping","gateway":"g","boot_epoch":1}"#;
    assert!(decode::<Status>(j.as_bytes()).is_err());
    let j = r#"{"gateway":"g","boot_epoch":1,"seq":1,"ts_ms":1,"event":"device_up"}"#;
    let e = decode::<Event>(j.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("device"), "{e}");
}

#[test]
fn lists_stop_at_their_limit_while_parsing() {
    let names = vec![r#""p""#; crate::limits::MAX_READ_POINTS + 1].join(",");
    let j = format!(
        r#"{{"id":"c","created_at_ms":1,"expires_at_ms":5,"command":"read_now","device":"d","points":[{names}]}}"#
    );
    let e = decode::<Command>(j.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("more than 1024 points to read"), "{e}");
    let devices =
        vec![r#"{"name":"d","points":[]}"#; crate::limits::MAX_DEVICES_PER_BIRTH + 1].join(",");
    let j = format!(
        r#"{{"state":"online","gateway":"g","boot_epoch":1,"ts_ms":1,"agent_version":"1","config_hash":"h","devices":[{devices}]}}"#
    );
    let e = decode::<Status>(j.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("more than 256 devices"), "{e}");
}

#[test]
fn every_message_fails_cleanly_when_truncated() {
    let payloads = [
        encode(&birth()).unwrap(),
        encode(&command(CommandKind::Ping)).unwrap(),
        encode(&event(EventKind::ConfigApplied {
            config_hash: "x".into(),
        }))
        .unwrap(),
    ];
    for p in payloads {
        for cut in 0..p.len() {
            let bytes = &p[..cut];
            assert!(decode::<Status>(bytes).is_err());
            assert!(decode::<Command>(bytes).is_err());
            assert!(decode::<Event>(bytes).is_err());
            assert!(decode::<Ack>(bytes).is_err());
        }
    }
}

/// Every line of every `json` block in the README decodes, and encodes back to the same bytes.
#[test]
fn readme_json_blocks_are_exact() {
    fn again<M>(line: &str) -> String
    where
        M: Message + Serialize + serde::de::DeserializeOwned,
    {
        let m: M = decode(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
        text(&m)
    }
    let readme = include_str!("../../README.md");
    let mut checked = 0;
    for block in readme.split("```json\n").skip(1) {
        let block = &block[..block.find("```").expect("closed block")];
        for line in block.lines().filter(|l| !l.is_empty()) {
            let out = if line.contains("\"groups\"") {
                again::<TelemetryBatch>(line)
            } else if line.starts_with("{\"state\"") {
                again::<Status>(line)
            } else if line.contains("\"event\"") {
                again::<Event>(line)
            } else if line.starts_with("{\"command_id\"") {
                again::<Ack>(line)
            } else if line.starts_with("{\"control\"") {
                again::<crate::Control>(line)
            } else {
                again::<Command>(line)
            };
            assert_eq!(out, line);
            checked += 1;
        }
    }
    assert_eq!(checked, 1 + 2 + 9 + 6 + 3 + 2);
}

fn aliases_of(devices: &[(&str, &[&str])]) -> crate::SeriesAliases {
    crate::SeriesAliases::from_birth(&crate::alias::tests::birth_with("c1", devices))
}

#[test]
fn aliased_telemetry_example_is_exact() {
    // meter-01's two series are in the birth (aliases 0 and 1), but voltage_l1 has an
    // uncertain point: it goes by name, breaker_open as a run; meter-02/state is not in the
    // birth.
    let a = aliases_of(&[("meter-01", &["voltage_l1", "breaker_open"])]);
    let b = batch();
    let bytes = encode_aliased(&b, &a).unwrap();
    let want = format!(
        "{{\"gateway\":\"gw-01\",\"boot_epoch\":7,\"seq\":42,\"historical\":false,\
         \"birth\":{{\"config_hash\":\"c1\",\"check\":{}}},\"groups\":[\
         {{\"device\":\"meter-01\",\"t0\":1700000000000,\"dt\":[1000,1000],\
         \"values\":{{\"voltage_l1\":[230.1,230.2,230.2]}},\
         \"quality\":{{\"voltage_l1\":[\"good\",\"uncertain\",\"good\"]}}}},\
         {{\"from\":1,\"t0\":1700000000000,\"dt\":[1000,1000],\"values\":[false,false,true]}},\
         {{\"device\":\"meter-02\",\"t0\":1700000000500,\"values\":{{\"state\":[\"running\"]}}}}]}}",
        a.check()
    );
    assert_eq!(String::from_utf8(bytes.clone()).unwrap(), want);
    assert_eq!(decode_aliased(&bytes, &a).unwrap(), b.in_series_order());
    assert_eq!(birth_ref(&bytes).unwrap(), Some(a.birth_ref()));
    assert_eq!(birth_ref(&encode(&b).unwrap()).unwrap(), None);
}

#[test]
fn aliased_runs_are_refused_without_their_birth() {
    let a = aliases_of(&[("meter-01", &["voltage_l1", "breaker_open"])]);
    let bytes = encode_aliased(&batch(), &a).unwrap();
    // A receiver reading names only (an older cloud, or no birth at hand) refuses the batch
    // instead of dropping the run.
    let e = decode::<TelemetryBatch>(&bytes).unwrap_err().to_string();
    assert!(e.contains("needs the batch's birth"), "{e}");
    // Another birth's table.
    let other = aliases_of(&[("meter-01", &["breaker_open", "voltage_l1"])]);
    let e = decode_aliased(&bytes, &other).unwrap_err().to_string();
    assert!(e.contains("not the one"), "{e}");
    // Malformed runs say what is wrong.
    let run = |body: &str| {
        format!(
            "{{\"gateway\":\"g\",\"boot_epoch\":1,\"seq\":1,\"birth\":{{\"config_hash\":\"c1\",\
             \"check\":{}}},\"groups\":[{body}]}}",
            a.check()
        )
    };
    for (body, says) in [
        (r#"{"from":1,"t0":1,"values":[1,2]}"#, "beyond the birth"),
        (
            r#"{"from":0,"t0":1,"dt":[1],"values":[1,2,3]}"#,
            "whole number",
        ),
        (r#"{"from":0,"t0":1,"values":{"x":[1]}}"#, "one array"),
        (r#"{"device":"d","t0":1,"values":[1]}"#, "only a run"),
        (r#"{"from":0,"device":"d","t0":1,"values":[1]}"#, "neither"),
        (r#"{"from":0,"t0":1,"values":[]}"#, "whole number"),
    ] {
        let e = decode_aliased(run(body).as_bytes(), &a)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{body}: {e}");
    }
    let no_birth =
        r#"{"gateway":"g","boot_epoch":1,"seq":1,"groups":[{"from":0,"t0":1,"values":[1]}]}"#;
    let e = decode_aliased(no_birth.as_bytes(), &a)
        .unwrap_err()
        .to_string();
    assert!(e.contains("names no `birth`"), "{e}");
}

#[test]
fn aliased_json_meets_its_size_goal_on_a_poll_cycle() {
    // One poll cycle of a reference meter: 100 registers at 0.1 kW a count.
    let names: Vec<String> = (0..100).map(|r| format!("r{r:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let a = aliases_of(&[("meter-1", &refs)]);
    let mut b = TelemetryBatch::new(id("bench-gw"), 1, 1234);
    for (i, n) in names.iter().enumerate() {
        let count = 400 + (i * 37) % 600;
        b.points.push(Point::new(
            id("meter-1"),
            id(n),
            1_700_000_000_123,
            count as f64 / 10.0,
        ));
    }
    let named = encode(&b).unwrap().len() as f64 / 100.0;
    let aliased = encode_aliased(&b, &a).unwrap().len() as f64 / 100.0;
    assert!(aliased <= 7.0, "{aliased} bytes a point (named {named})");
    assert!(named > 12.0, "{named}");
}
