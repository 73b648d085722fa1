//! The format round trip, chunking and the receiver's bookkeeping, and version 1 pinned.

use std::sync::Arc;
use std::time::Instant;

use fieldlink_protocol::{Ident, Quality, Value};

use super::*;
use crate::store::{GatewayStatus, PointRow, SeriesKey};
use proptest::prelude::*;
use serde_json::json;

const LIMIT: usize = 7_999;

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn point(gw: &str, dev: &str, metric: &str, ts_ms: i64, value: Value) -> PointRow {
    PointRow {
        key: Arc::new(SeriesKey {
            gateway: id(gw),
            device: id(dev),
            metric: id(metric),
        }),
        ts_ms,
        value,
        quality: Quality::Good,
    }
}

fn command(kind: serde_json::Value) -> CommandView {
    CommandView {
        command_id: "c-1".into(),
        gateway: "gw-1".into(),
        kind,
        status: crate::commands::CommandStatus::Sent,
        created_at: "2026-01-01T00:00:00.000Z".into(),
        expires_at: "2026-01-01T00:05:00.000Z".into(),
        updated_at: "2026-01-01T00:00:01.000Z".into(),
        idempotency_key: None,
        result: None,
        error: None,
    }
}

/// Everything the receiver delivers for `payloads`, in order.
fn receive(inbox: &mut Inbox, payloads: &[String]) -> Vec<Taken> {
    payloads
        .iter()
        .map(|p| inbox.take(p, Instant::now()))
        .collect()
}

fn points_of(taken: &[Taken]) -> Vec<PointRow> {
    taken
        .iter()
        .filter_map(|t| match &t.event {
            Some(Remote::Batch(b)) => Some(b.points.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Orders points by series, then by position within the series (as the encoder groups).
fn by_series(points: &[PointRow]) -> Vec<PointRow> {
    let mut order: Vec<SeriesKey> = Vec::new();
    for p in points {
        if !order.contains(&p.key) {
            order.push((*p.key).clone());
        }
    }
    order
        .iter()
        .flat_map(|k| points.iter().filter(move |p| &*p.key == k).cloned())
        .collect()
}

#[test]
fn a_large_batch_is_chunked_into_self_contained_payloads_under_the_limit() {
    let mut points = Vec::new();
    for row in 0..500 {
        for dev in ["meter-1", "meter-2", "pump"] {
            for metric in ["power", "energy", "state"] {
                let value = match metric {
                    "state" => Value::Str(format!("run \"{row}\"\n\u{1}é")),
                    "energy" => Value::Number(row as f64 * 0.1 + 1e-9),
                    _ => Value::Bool(row % 2 == 0),
                };
                let mut p = point("gw-1", dev, metric, 1_700_000_000_000 + row, value);
                p.quality = [Quality::Good, Quality::Uncertain, Quality::Bad][row as usize % 3];
                points.push(p);
            }
        }
    }
    let batch = WriteBatch {
        points: points.clone(),
        statuses: vec![GatewayStatus {
            gateway: id("gw-1"),
            online: true,
            at_ms: 1_700_000_000_000,
            boot_epoch: Some(7),
            agent_version: Some("0.1.0".into()),
            config_hash: Some("abc".into()),
        }],
        ..WriteBatch::default()
    };
    let mut enc = Encoder::new("aaaa", LIMIT);
    let mut out = Vec::new();
    assert_eq!(enc.batch(&batch, &mut out), 0);
    assert!(out.len() > 10, "{} payloads", out.len());
    for p in &out {
        assert!(p.len() <= LIMIT, "{} bytes", p.len());
        serde_json::from_str::<serde_json::Value>(p).expect("each payload is JSON");
    }
    let mut inbox = Inbox::new("bbbb");
    let taken = receive(&mut inbox, &out);
    assert!(taken
        .iter()
        .all(|t| t.outcome == Outcome::Delivered && t.missed == 0));
    // The status comes first, on its own.
    match &taken[0].event {
        Some(Remote::Batch(b)) => assert_eq!(b.statuses, batch.statuses),
        other => panic!("{other:?}"),
    }
    assert_eq!(points_of(&taken), by_series(&points));

    // Each payload stands alone: losing one loses its points only, and is counted.
    let mut inbox = Inbox::new("bbbb");
    let mut kept = out.clone();
    let lost = kept.remove(3);
    let taken = receive(&mut inbox, &kept);
    assert_eq!(taken.iter().map(|t| t.missed).sum::<u64>(), 1);
    let lost_points = points_of(&receive(&mut Inbox::new("cccc"), &[lost])).len();
    assert!(lost_points > 0);
    assert_eq!(points_of(&taken).len() + lost_points, points.len());
}

#[test]
fn own_payloads_and_repeats_are_dropped_and_holes_counted() {
    let mut enc = Encoder::new("aaaa", LIMIT);
    let mut out = Vec::new();
    for t in 0..4 {
        let b = WriteBatch {
            points: vec![point("gw-1", "d", "m", t, Value::Number(t as f64))],
            ..WriteBatch::default()
        };
        enc.batch(&b, &mut out);
    }
    assert_eq!(out.len(), 4);
    let mut own = Inbox::new("aaaa");
    assert!(receive(&mut own, &out)
        .iter()
        .all(|t| t.outcome == Outcome::Own && t.event.is_none()));

    let mut inbox = Inbox::new("bbbb");
    let t = inbox.take(&out[0], Instant::now());
    assert_eq!((t.outcome, t.missed), (Outcome::Delivered, 0));
    assert_eq!(t.source.as_deref(), Some("aaaa"));
    let t = inbox.take(&out[0], Instant::now());
    assert_eq!(t.outcome, Outcome::Duplicate);
    assert!(t.event.is_none());
    let t = inbox.take(&out[3], Instant::now());
    assert_eq!((t.outcome, t.missed), (Outcome::Delivered, 2));
    assert_eq!(
        inbox.take(&out[2], Instant::now()).outcome,
        Outcome::Duplicate
    );

    // A source first heard in the middle of its sequence has missed nothing yet.
    let mut late = Inbox::new("cccc");
    assert_eq!(late.take(&out[2], Instant::now()).missed, 0);

    assert_eq!(
        inbox.take("not json", Instant::now()).outcome,
        Outcome::Undecodable
    );
    assert_eq!(
        inbox
            .take(r#"{"i":"dddd","s":0,"b":{"zz":{}}}"#, Instant::now())
            .outcome,
        Outcome::Undecodable
    );
    for bad in [
        r#"{"i":"dddd","s":1,"b":{"p":{"t":0,"r":[["gw 1","d","m",[[1,2.0,0]]]]}}}"#,
        // An elided gateway with no run before it to take it from.
        r#"{"i":"dddd","s":2,"b":{"p":{"t":0,"r":[["","d","m",[[1,2.0,0]]]]}}}"#,
        r#"{"i":"dddd","s":3,"b":{"p":{"t":0,"r":[["g","d","m",[[1,2.0,3]]]]}}}"#,
    ] {
        assert_eq!(
            inbox.take(bad, Instant::now()).outcome,
            Outcome::Undecodable,
            "{bad}"
        );
    }
    let elided = r#"{"i":"dddd","s":4,"b":{"p":{"t":10,"r":[["g","d","m",[[1,2.0,0]]],["","","n",[[-1,true,2]]],["h","","m",[[0,"x",1]]]]}}}"#;
    match inbox.take(elided, Instant::now()).event {
        Some(Remote::Batch(b)) => assert_eq!(
            b.points,
            [
                point("g", "d", "m", 11, Value::Number(2.0)),
                PointRow {
                    quality: Quality::Bad,
                    ..point("g", "d", "n", 9, Value::Bool(true))
                },
                PointRow {
                    quality: Quality::Uncertain,
                    ..point("h", "d", "m", 10, Value::Str("x".into()))
                },
            ]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn device_health_round_trips() {
    let device = Device {
        last_error: Some("no answer \"quoted\"\n".into()),
        ..pinned_device()
    };
    let mut out = Vec::new();
    Encoder::new("aaaa", LIMIT)
        .device(&device, &mut out)
        .unwrap();
    assert_eq!(out.len(), 1);
    let taken = receive(&mut Inbox::new("bbbb"), &out);
    match &taken[0].event {
        Some(Remote::Device(d)) => assert_eq!(
            serde_json::to_value(&**d).unwrap(),
            serde_json::to_value(&device).unwrap()
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn commands_and_alerts_round_trip_and_a_large_command_goes_in_pieces() {
    let mut enc = Encoder::new("aaaa", LIMIT);
    let mut out = Vec::new();
    let small = command(json!({"command": "ping"}));
    enc.command(&small, &mut out).unwrap();
    let alert = pinned_alert();
    enc.alert(&alert, &mut out).unwrap();
    // A configuration of 100 KB with quotes, newlines and non-ASCII text.
    let config: String = (0..2_500)
        .map(|i| format!("[device.\"d{i}\"]\naddress = \"é{i}\"\t\n"))
        .collect();
    let large = command(json!({"command": "apply_config", "config": {"toml": config}}));
    let before = out.len();
    enc.command(&large, &mut out).unwrap();
    let pieces = out.len() - before;
    assert!(pieces > 10, "{pieces}");
    assert!(out.iter().all(|p| p.len() <= LIMIT));

    let mut inbox = Inbox::new("bbbb");
    let taken = receive(&mut inbox, &out);
    assert_eq!(taken.iter().filter(|t| t.event.is_some()).count(), 3);
    assert_eq!(
        taken.iter().filter(|t| t.outcome == Outcome::Part).count(),
        pieces - 1
    );
    match (
        &taken[0].event,
        &taken[1].event,
        &taken.last().unwrap().event,
    ) {
        (Some(Remote::Command(c)), Some(Remote::Alert(a)), Some(Remote::Command(l))) => {
            assert_eq!(
                serde_json::to_value(&**c).unwrap(),
                serde_json::to_value(&small).unwrap()
            );
            assert_eq!(
                serde_json::to_value(&**a).unwrap(),
                serde_json::to_value(&alert).unwrap()
            );
            assert_eq!(
                serde_json::to_value(&**l).unwrap(),
                serde_json::to_value(&large).unwrap()
            );
        }
        other => panic!("{other:?}"),
    }

    // A hole among the pieces drops the whole command; what follows still arrives.
    let mut inbox = Inbox::new("bbbb");
    let mut holed = out.clone();
    holed.remove(before + 2);
    enc.command(&small, &mut holed).unwrap();
    let taken = receive(&mut inbox, &holed);
    let commands: Vec<&Taken> = taken
        .iter()
        .filter(|t| matches!(t.event, Some(Remote::Command(_))))
        .collect();
    assert_eq!(commands.len(), 2, "the first and the last small one");
    assert_eq!(taken.iter().map(|t| t.missed).sum::<u64>(), 1);

    // Beyond MAX_PARTS pieces it is not published at all, and uses no sequence number.
    let huge = command(json!({"toml": "x".repeat(MAX_PARTS as usize * LIMIT)}));
    let mut none = Vec::new();
    assert_eq!(enc.command(&huge, &mut none), Err(Shed::Oversized));
    assert!(none.is_empty());
    enc.command(&small, &mut none).unwrap();
    let t = inbox.take(&none[0], Instant::now());
    assert_eq!((t.outcome, t.missed), (Outcome::Delivered, 0));
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (-1e300f64..1e300).prop_map(Value::Number),
        "\\PC{0,40}|[\"\\\\\u{0}-\u{1f}]{0,256}".prop_map(Value::Str),
    ]
}

proptest! {
    /// Whatever the values and the limit, every payload fits and the receiver gets every
    /// point back, exactly.
    #[test]
    fn every_payload_fits_and_every_point_comes_back(
        limit in MIN_LIMIT..LIMIT,
        values in proptest::collection::vec((0usize..5, value()), 1..400),
    ) {
        let points: Vec<PointRow> = values
            .into_iter()
            .enumerate()
            .map(|(i, (series, v))| {
                point("gw-1", &format!("dev-{series}"), &"m".repeat(1 + series * 15), i as i64, v)
            })
            .collect();
        let mut enc = Encoder::new("0123456789abcdef", limit);
        let mut out = Vec::new();
        let batch = WriteBatch { points: points.clone(), ..WriteBatch::default() };
        prop_assert_eq!(enc.batch(&batch, &mut out), 0);
        for p in &out {
            prop_assert!(p.len() <= limit, "{} > {}", p.len(), limit);
        }
        let taken = receive(&mut Inbox::new("other"), &out);
        prop_assert!(taken.iter().all(|t| t.outcome == Outcome::Delivered && t.missed == 0));
        prop_assert_eq!(points_of(&taken), by_series(&points));
    }
}

/// Version 1's bytes, one payload of each body: an instance of a rolling upgrade reads exactly
/// these, so a change here is a change of the wire (and takes a new version unless it only adds
/// fields).
#[test]
fn version_1_is_pinned_byte_for_byte() {
    let mut enc = Encoder::new("i-1", LIMIT);
    let mut out = Vec::new();
    let batch = WriteBatch {
        points: vec![
            point(
                "gw-1",
                "meter",
                "power",
                1_700_000_000_000,
                Value::Number(1.5),
            ),
            point(
                "gw-1",
                "meter",
                "power",
                1_700_000_001_000,
                Value::Bool(true),
            ),
            point(
                "gw-1",
                "pump",
                "state",
                1_700_000_000_500,
                Value::Str("run".into()),
            ),
        ],
        statuses: vec![GatewayStatus {
            gateway: id("gw-1"),
            online: true,
            at_ms: 1_700_000_000_000,
            boot_epoch: Some(7),
            agent_version: Some("0.1.0".into()),
            config_hash: None,
        }],
        ..WriteBatch::default()
    };
    assert_eq!(enc.batch(&batch, &mut out), 0);
    let mut c = command(json!({"command": "ping"}));
    c.result = Some(json!(42));
    enc.command(&c, &mut out).unwrap();
    enc.alert(&pinned_alert(), &mut out).unwrap();
    enc.device(&pinned_device(), &mut out).unwrap();
    let expected = [
        PINNED_STATUS,
        PINNED_POINTS,
        PINNED_COMMAND,
        PINNED_ALERT,
        PINNED_DEVICE,
    ];
    assert_eq!(out, expected);
}

const PINNED_STATUS: &str = r#"{"i":"i-1","s":0,"v":1,"b":{"g":{"g":"gw-1","on":true,"at":1700000000000,"e":7,"v":"0.1.0","h":null}}}"#;
const PINNED_POINTS: &str = r#"{"i":"i-1","s":1,"v":1,"b":{"p":{"t":1700000000000,"r":[["gw-1","meter","power",[[0,1.5,0],[1000,true,0]]],["","pump","state",[[500,"run",0]]]]}}}"#;
const PINNED_COMMAND: &str = r#"{"i":"i-1","s":2,"v":1,"b":{"c":{"command_id":"c-1","gateway":"gw-1","kind":{"command":"ping"},"status":"sent","created_at":"2026-01-01T00:00:00.000Z","expires_at":"2026-01-01T00:05:00.000Z","updated_at":"2026-01-01T00:00:01.000Z","idempotency_key":null,"result":42,"error":null}}}"#;
const PINNED_ALERT: &str = r#"{"i":"i-1","s":3,"v":1,"b":{"a":{"alert_id":"a-1","rule_id":"r-1","gateway":"gw-1","device":"boiler","metric":"temp","kind":"value","severity":"critical","status":"active","started_at":"2023-11-14T22:13:20.000Z","updated_at":"2023-11-14T22:13:21.000Z","last_value":85.5}}}"#;
const PINNED_DEVICE: &str = r#"{"i":"i-1","s":4,"v":1,"b":{"d":{"gateway":"gw-1","device":"meter","state":"unknown","since":"2023-11-14T22:13:20.000Z","reported_state":"offline","last_error":"no answer","last_error_at":null}}}"#;

fn pinned_alert() -> AlertView {
    AlertView {
        alert_id: "a-1".into(),
        rule_id: "r-1".into(),
        gateway: "gw-1".into(),
        device: "boiler".into(),
        metric: "temp".into(),
        kind: crate::alerts::records::RuleKind::Value,
        severity: crate::alerts::records::Severity::Critical,
        status: "active".into(),
        started_at_ms: 1_700_000_000_000,
        started_at: "2023-11-14T22:13:20.000Z".into(),
        updated_at: "2023-11-14T22:13:21.000Z".into(),
        last_value: Some(85.5),
    }
}

fn pinned_device() -> Device {
    Device {
        gateway: "gw-1".into(),
        device: "meter".into(),
        state: crate::store::DeviceState::Unknown,
        since: Some("2023-11-14T22:13:20.000Z".into()),
        reported_state: Some(crate::store::ReportedState::Offline),
        last_error: Some("no answer".into()),
        last_error_at: None,
    }
}

/// What the first instances sent had no version: it is version 1, and read as before.
#[test]
fn a_payload_without_a_version_is_version_1() {
    let unversioned = PINNED_COMMAND.replacen(",\"v\":1", "", 1);
    assert_ne!(unversioned, PINNED_COMMAND);
    let t = Inbox::new("other").take(&unversioned, Instant::now());
    assert_eq!(t.outcome, Outcome::Delivered);
    match t.event {
        Some(Remote::Command(c)) => {
            assert_eq!(c.command_id, "c-1");
            assert_eq!(c.result, Some(json!(42)));
        }
        other => panic!("{other:?}"),
    }
}

/// A newer instance's payloads are dropped and counted, whether or not their body parses, and
/// take their sequence numbers: the next payload this version reads shows no hole.
#[test]
fn a_newer_version_is_dropped_without_a_hole() {
    let mut inbox = Inbox::new("other");
    let now = Instant::now();
    let first = PINNED_STATUS;
    let t = inbox.take(first, now);
    assert_eq!((t.outcome, t.missed), (Outcome::Delivered, 0));
    let next_v = VERSION + 1;
    let unknown_body = format!("{{\"i\":\"i-1\",\"s\":1,\"v\":{next_v},\"b\":{{\"q\":[1,2]}}}}");
    let known_body = PINNED_POINTS.replacen(",\"v\":1,", &format!(",\"v\":{next_v},"), 1);
    for (payload, seq) in [(unknown_body, 1), (known_body, 1)] {
        let mut inbox = Inbox::new("other");
        inbox.take(first, now);
        let t = inbox.take(&payload, now);
        assert_eq!(
            (t.outcome, t.missed, t.event.is_none()),
            (Outcome::Newer, 0, true),
            "{payload}"
        );
        assert_eq!(t.source.as_deref(), Some("i-1"));
        let following = PINNED_COMMAND.replacen("\"s\":2,", &format!("\"s\":{},", seq + 1), 1);
        let t = inbox.take(&following, now);
        assert_eq!(
            (t.outcome, t.missed),
            (Outcome::Delivered, 0),
            "{following}"
        );
    }
    // Broken text is still undecodable, and takes no sequence number.
    let t = inbox.take("{\"i\":\"i-1\",\"s\":5,\"b\":", now);
    assert_eq!(t.outcome, Outcome::Undecodable);
}
