//! Proptest strategies for every protocol message, shared by the property tests.

#![allow(dead_code)]

use fieldlink_protocol::limits::{MAX_TIMESTAMP_MS, MIN_POLL_INTERVAL_MS};
use fieldlink_protocol::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

pub fn ident() -> impl Strategy<Value = Ident> {
    "[a-z0-9_][a-z0-9_.-]{0,12}".prop_map(|s| Ident::new(&s).unwrap())
}

/// A small pool of names, so that generated points share series.
pub fn pooled_ident(pool: &'static [&'static str]) -> impl Strategy<Value = Ident> {
    prop::sample::select(pool).prop_map(|s| Ident::new(s).unwrap())
}

pub fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        1_600_000_000_000i64..1_800_000_000_000,
        0..=MAX_TIMESTAMP_MS,
        Just(0),
        Just(MAX_TIMESTAMP_MS),
    ]
}

pub fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        // Register values times a decimal scale: the common case.
        (-1_000_000i64..1_000_000, 0u32..6).prop_map(|(n, k)| n as f64 / 10f64.powi(k as i32)),
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
        Just(-0.0),
        Just(0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
    ]
}

pub fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => finite().prop_map(Value::Number),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => "\\PC{0,40}".prop_map(Value::Str),
    ]
}

pub fn quality() -> impl Strategy<Value = Quality> {
    prop_oneof![
        4 => Just(Quality::Good),
        1 => Just(Quality::Uncertain),
        1 => Just(Quality::Bad),
    ]
}

const DEVICES: &[&str] = &["meter-01", "meter-02", "plc", "_gateway"];
const METRICS: &[&str] = &["v", "i", "p", "state", "alarm", "energy_kwh"];

pub fn point() -> impl Strategy<Value = Point> {
    (
        pooled_ident(DEVICES),
        pooled_ident(METRICS),
        timestamp(),
        value(),
        quality(),
    )
        .prop_map(|(device, metric, ts_ms, value, quality)| Point {
            device,
            metric,
            ts_ms,
            value,
            quality,
        })
}

/// Points of a few series polled together at a steady or jittery cadence, as an agent sends
/// them, so that shared timestamps and zero runs are exercised.
pub fn polled_points() -> impl Strategy<Value = Vec<Point>> {
    (
        1_600_000_000_000i64..1_700_000_000_000,
        1i64..5_000,
        1usize..12,
        vec((pooled_ident(DEVICES), pooled_ident(METRICS)), 1..6),
        vec(0i64..3, 12),
        value(),
    )
        .prop_map(|(t0, dt, n, series, jitter, v)| {
            let mut out = Vec::new();
            for (k, jitter) in jitter.iter().enumerate().take(n) {
                for (d, m) in &series {
                    out.push(Point::new(
                        d.clone(),
                        m.clone(),
                        t0 + dt * k as i64 + jitter,
                        v.clone(),
                    ));
                }
            }
            out
        })
}

/// The alias table of a birth announcing some of the pooled series (those of [`point`] and
/// [`polled_points`]) in a random order, so that batches mix aliased and named series and
/// aliases come in and out of order.
pub fn aliases() -> impl Strategy<Value = SeriesAliases> {
    let all: Vec<(&str, &str)> = DEVICES
        .iter()
        .flat_map(|d| METRICS.iter().map(move |m| (*d, *m)))
        .collect();
    let n = all.len();
    (
        "[0-9a-f]{1,16}",
        prop::sample::subsequence(all, 0..=n).prop_shuffle(),
    )
        .prop_map(|(config_hash, series)| {
            let mut devices: Vec<DeviceInfo> = Vec::new();
            for (d, m) in series {
                let d = Ident::new(d).unwrap();
                let at = match devices.iter().position(|x| x.name == d) {
                    Some(at) => at,
                    None => {
                        devices.push(DeviceInfo {
                            name: d,
                            points: Vec::new(),
                        });
                        devices.len() - 1
                    }
                };
                devices[at].points.push(PointInfo {
                    name: Ident::new(m).unwrap(),
                    unit: None,
                    kind: DataKind::Number,
                    writable: false,
                });
            }
            SeriesAliases::from_birth(&Birth {
                gateway: Ident::new("gw").unwrap(),
                boot_epoch: 1,
                ts_ms: 0,
                agent_version: "0.1.0".into(),
                config_hash,
                devices,
            })
        })
}

pub fn batch() -> impl Strategy<Value = TelemetryBatch> {
    (
        ident(),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        prop_oneof![vec(point(), 0..60), polled_points()],
    )
        .prop_map(
            |(gateway, boot_epoch, seq, historical, points)| TelemetryBatch {
                gateway,
                boot_epoch,
                seq,
                historical,
                points,
            },
        )
}

pub fn short_text() -> impl Strategy<Value = String> {
    "\\PC{0,30}"
}

pub fn label() -> impl Strategy<Value = String> {
    "[ -~]{1,20}"
}

pub fn status() -> impl Strategy<Value = Status> {
    let point_info = (
        ident(),
        option::of("[a-zA-Z°³/%]{1,6}"),
        prop_oneof![
            Just(DataKind::Number),
            Just(DataKind::Bool),
            Just(DataKind::Str)
        ],
        any::<bool>(),
    )
        .prop_map(|(name, unit, kind, writable)| PointInfo {
            name,
            unit,
            kind,
            writable,
        });
    let device = (ident(), vec(point_info, 0..5)).prop_map(|(name, mut points)| {
        dedup_by_name(&mut points, |p| p.name.clone());
        DeviceInfo { name, points }
    });
    let birth = (
        ident(),
        any::<u64>(),
        timestamp(),
        label(),
        label(),
        vec(device, 0..4),
    )
        .prop_map(
            |(gateway, boot_epoch, ts_ms, agent_version, config_hash, mut devices)| {
                dedup_by_name(&mut devices, |d| d.name.clone());
                Status::Online(Birth {
                    gateway,
                    boot_epoch,
                    ts_ms,
                    agent_version,
                    config_hash,
                    devices,
                })
            },
        );
    let death = (ident(), any::<u64>()).prop_map(|(gateway, boot_epoch)| {
        Status::Offline(Death {
            gateway,
            boot_epoch,
        })
    });
    prop_oneof![birth, death]
}

fn dedup_by_name<T>(items: &mut Vec<T>, name: impl Fn(&T) -> Ident) {
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert(name(i)));
}

pub fn event() -> impl Strategy<Value = Event> {
    let kind = prop_oneof![
        ident().prop_map(|device| EventKind::DeviceUp { device }),
        (ident(), short_text()).prop_map(|(device, error)| EventKind::DeviceDown { device, error }),
        (ident(), short_text())
            .prop_map(|(device, error)| EventKind::DeviceDegraded { device, error }),
        (option::of(ident()), short_text())
            .prop_map(|(device, message)| EventKind::Error { device, message }),
        (
            any::<u64>(),
            option::of(0i64..1_000_000),
            option::of(1_000_000i64..2_000_000)
        )
            .prop_map(
                |(points, oldest_ts_ms, newest_ts_ms)| EventKind::TelemetryDropped {
                    points,
                    oldest_ts_ms,
                    newest_ts_ms
                }
            ),
        label().prop_map(|config_hash| EventKind::ConfigApplied { config_hash }),
        (option::of(label()), short_text())
            .prop_map(|(config_hash, error)| EventKind::ConfigRejected { config_hash, error }),
        (label(), short_text())
            .prop_map(|(file, error)| EventKind::JournalQuarantined { file, error }),
        (ident(), short_text()).prop_map(|(kind, message)| EventKind::Other { kind, message }),
    ];
    (ident(), any::<u64>(), any::<u64>(), timestamp(), kind).prop_map(
        |(gateway, boot_epoch, seq, ts_ms, kind)| Event {
            gateway,
            boot_epoch,
            seq,
            ts_ms,
            kind,
        },
    )
}

fn json_document() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::Value::Number(n.into())),
        short_text().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 20, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            vec(("[a-z]{1,6}", inner), 0..4)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

pub fn command() -> impl Strategy<Value = Command> {
    let kind = prop_oneof![
        (ident(), ident(), value()).prop_map(|(device, point, value)| CommandKind::WritePoint {
            device,
            point,
            value
        }),
        (ident(), vec(ident(), 0..5))
            .prop_map(|(device, points)| CommandKind::ReadNow { device, points }),
        (ident(), MIN_POLL_INTERVAL_MS..=limits::MAX_POLL_INTERVAL_MS).prop_map(
            |(device, interval_ms)| CommandKind::SetPollInterval {
                device,
                interval_ms
            }
        ),
        "\\PC{0,80}".prop_map(|t| CommandKind::ApplyConfig {
            config: ConfigDocument::Toml(t)
        }),
        json_document().prop_map(|d| CommandKind::ApplyConfig {
            config: ConfigDocument::Document(d)
        }),
        Just(CommandKind::Ping),
    ];
    (ident(), timestamp(), 0i64..1_000_000, kind).prop_map(|(id, created, ttl, kind)| Command {
        id,
        created_at_ms: created.min(limits::MAX_TIMESTAMP_MS - ttl),
        expires_at_ms: created.min(limits::MAX_TIMESTAMP_MS - ttl) + ttl,
        kind,
    })
}

pub fn ack() -> impl Strategy<Value = Ack> {
    let stage = prop_oneof![
        Just(AckStage::Received),
        Just(AckStage::Executed),
        Just(AckStage::Failed),
        Just(AckStage::Rejected),
        Just(AckStage::Expired),
    ];
    (
        ident(),
        stage,
        option::of(value()),
        option::of(short_text()),
        timestamp(),
    )
        .prop_map(|(command_id, stage, result, error, ts_ms)| Ack {
            command_id,
            stage,
            result,
            error,
            ts_ms,
        })
}

/// Equality that tells `0.0` from `-0.0`: `f64`'s `==` would hide a lost sign.
pub fn assert_same_points(a: &[Point], b: &[Point]) {
    assert_eq!(a, b);
    for (x, y) in a.iter().zip(b) {
        if let (Value::Number(p), Value::Number(q)) = (&x.value, &y.value) {
            assert_eq!(p.to_bits(), q.to_bits(), "{x:?} vs {y:?}");
        }
    }
}
