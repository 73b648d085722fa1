//! Turning one MQTT message into rows, or into a dead letter that says why not.
//!
//! Pure: no I/O, no clock (the receive time is passed in), so every rule is tested byte for
//! byte below. The protocol crate's decoders already check identifiers, finite numbers, sizes
//! and timestamp ranges; this adds what only the cloud knows: the topic's gateway must be the
//! payload's, and no reading may be further in the future than the configured skew.

use std::collections::HashMap;
use std::sync::Arc;

use fieldlink_protocol::binary::BinaryError;
use fieldlink_protocol::{
    decode_telemetry, decode_telemetry_aliased, json, Ack, DecodeError, Event, EventKind, Ident,
    SeriesAliases, Status, TopicKind, TopicPrefix, ValidationError,
};

use crate::store::{
    DeadLetter, GatewayMessage, GatewayStatus, HealthReport, ParkedTelemetry, PointRow,
    ReportedState, SeriesKey, SeriesMeta, StoredBirth,
};

/// What the classifier needs to know.
#[derive(Debug, Clone)]
pub struct Rules {
    pub prefix: TopicPrefix,
    /// A reading stamped later than receive time plus this is refused.
    pub max_future_skew_ms: i64,
}

/// One message, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Telemetry {
        gateway: Ident,
        points: Vec<PointRow>,
        /// Backlog replayed after an outage.
        historical: bool,
    },
    Status {
        status: GatewayStatus,
        series: Vec<SeriesMeta>,
        /// A birth: the row that keeps it and its alias table.
        birth: Option<BirthRecord>,
    },
    /// An event, with the device health it reports when it is a device_up, device_degraded
    /// or device_down event.
    Event(GatewayMessage, Option<HealthReport>),
    Ack(GatewayMessage),
    /// An empty retained message clearing a status: nothing to store.
    Ignore,
    Dead(DeadLetter),
    /// Aliased telemetry whose birth is not known yet, kept in the store until it is.
    Parked(ParkedTelemetry),
    /// Dropped for being over the gateway's quota: counted, and sometimes kept as a sample.
    OverQuota {
        gateway: Ident,
        points: usize,
        sample: Option<DeadLetter>,
    },
}

impl Content {
    /// The gateway the message is from, when it is not a dead letter.
    pub fn gateway(&self) -> Option<&Ident> {
        match self {
            Content::Telemetry { gateway, .. } => Some(gateway),
            Content::Status { status, .. } => Some(&status.gateway),
            Content::Event(m, _) | Content::Ack(m) => Some(&m.gateway),
            Content::Parked(p) => Some(&p.gateway),
            Content::OverQuota { gateway, .. } => Some(gateway),
            Content::Ignore | Content::Dead(_) => None,
        }
    }
}

/// A birth as stored, with the alias table aliased telemetry is read with.
#[derive(Debug, Clone, PartialEq)]
pub struct BirthRecord {
    pub stored: StoredBirth,
    pub aliases: Arc<SeriesAliases>,
}

impl BirthRecord {
    /// The table of a stored birth, if its body is still a valid birth.
    pub fn from_stored(stored: StoredBirth) -> Result<BirthRecord, DecodeError> {
        match json::decode::<Status>(stored.body.as_bytes())? {
            Status::Online(b) => Ok(BirthRecord {
                aliases: Arc::new(SeriesAliases::from_birth(&b)),
                stored,
            }),
            Status::Offline(_) => Err(DecodeError::Invalid(ValidationError::Empty {
                field: "stored birth: a death has no devices".into(),
            })),
        }
    }
}

/// Builds a dead letter for a message refused after classification (an unregistered gateway).
pub fn dead_letter(
    topic: &str,
    payload: &[u8],
    received_ms: i64,
    reason: &str,
    detail: String,
) -> Content {
    Content::Dead(dead_letter_row(topic, payload, received_ms, reason, detail))
}

/// The dead letter of a message: what [`dead_letter`] wraps.
pub fn dead_letter_row(
    topic: &str,
    payload: &[u8],
    received_ms: i64,
    reason: &str,
    detail: String,
) -> DeadLetter {
    DeadLetter::new(
        received_ms,
        topic.to_string(),
        reason.to_string(),
        detail,
        payload,
    )
}

fn decode_reason(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::TooLarge { .. } => "too_large",
        DecodeError::Invalid(ValidationError::NotFinite { .. }) => "non_finite",
        DecodeError::Invalid(ValidationError::TimestampOutOfRange { .. }) => "bad_timestamp",
        DecodeError::Invalid(_) => "invalid",
        DecodeError::Binary(BinaryError::NeedsBirth(_) | BinaryError::WrongBirth { .. }) => {
            "unknown_birth"
        }
        _ => "decode",
    }
}

/// Classifies a message. Aliased telemetry needs its birth's table: see [`classify_aliased`].
pub fn classify(rules: &Rules, topic: &str, payload: &[u8], received_ms: i64) -> Content {
    classify_aliased(rules, topic, payload, received_ms, None)
}

/// [`classify`], reading aliased telemetry with `aliases` (the table of the birth the payload
/// names; without it, or with another one, the payload is a dead letter `unknown_birth`).
pub fn classify_aliased(
    rules: &Rules,
    topic: &str,
    payload: &[u8],
    received_ms: i64,
    aliases: Option<&SeriesAliases>,
) -> Content {
    let dead =
        |reason: &str, detail: String| dead_letter(topic, payload, received_ms, reason, detail);
    let parsed = match rules.prefix.parse(topic) {
        Ok(t) => t,
        Err(e) => return dead("topic", e.to_string()),
    };
    let mismatch = |inner: &Ident| {
        dead(
            "topic_mismatch",
            format!(
                "topic names gateway {} but the payload names {inner}",
                parsed.gateway
            ),
        )
    };
    match parsed.kind {
        TopicKind::Telemetry => {
            let decoded = match aliases {
                Some(a) => decode_telemetry_aliased(payload, a),
                None => decode_telemetry(payload),
            };
            let batch = match decoded {
                Ok(b) => b,
                Err(e) => return dead(decode_reason(&e), e.to_string()),
            };
            if batch.gateway != parsed.gateway {
                return mismatch(&batch.gateway);
            }
            let limit = received_ms.saturating_add(rules.max_future_skew_ms);
            if let Some((i, p)) = batch
                .points
                .iter()
                .enumerate()
                .find(|(_, p)| p.ts_ms > limit)
            {
                return dead(
                    "future_timestamp",
                    format!(
                        "points[{i}].ts_ms {} is {} ms ahead of the receive time, more than the allowed {} ms",
                        p.ts_ms,
                        p.ts_ms - received_ms,
                        rules.max_future_skew_ms
                    ),
                );
            }
            let mut keys: HashMap<(&Ident, &Ident), Arc<SeriesKey>> = HashMap::new();
            let mut points = Vec::with_capacity(batch.points.len());
            for p in &batch.points {
                let key = keys
                    .entry((&p.device, &p.metric))
                    .or_insert_with(|| {
                        Arc::new(SeriesKey {
                            gateway: batch.gateway.clone(),
                            device: p.device.clone(),
                            metric: p.metric.clone(),
                        })
                    })
                    .clone();
                points.push(PointRow {
                    key,
                    ts_ms: p.ts_ms,
                    value: p.value.clone(),
                    quality: p.quality,
                });
            }
            Content::Telemetry {
                gateway: batch.gateway.clone(),
                points,
                historical: batch.historical,
            }
        }
        TopicKind::Status => {
            if payload.is_empty() {
                return Content::Ignore;
            }
            let status: Status = match json::decode(payload) {
                Ok(s) => s,
                Err(e) => return dead(decode_reason(&e), e.to_string()),
            };
            if *status.gateway() != parsed.gateway {
                return mismatch(status.gateway());
            }
            match status {
                Status::Online(b) => {
                    let aliases = Arc::new(SeriesAliases::from_birth(&b));
                    let birth = BirthRecord {
                        stored: StoredBirth {
                            gateway: b.gateway.clone(),
                            config_hash: b.config_hash.clone(),
                            table_check: i64::from(aliases.check()),
                            received_ms,
                            body: String::from_utf8_lossy(payload).into_owned(),
                        },
                        aliases,
                    };
                    let series = b
                        .devices
                        .iter()
                        .flat_map(|d| {
                            d.points.iter().map(|p| SeriesMeta {
                                key: SeriesKey {
                                    gateway: b.gateway.clone(),
                                    device: d.name.clone(),
                                    metric: p.name.clone(),
                                },
                                unit: p.unit.clone(),
                                writable: p.writable,
                            })
                        })
                        .collect();
                    Content::Status {
                        status: GatewayStatus {
                            gateway: b.gateway,
                            online: true,
                            at_ms: received_ms,
                            boot_epoch: Some(b.boot_epoch as i64),
                            agent_version: Some(b.agent_version),
                            config_hash: Some(b.config_hash),
                        },
                        series,
                        birth: Some(birth),
                    }
                }
                Status::Offline(d) => Content::Status {
                    status: GatewayStatus {
                        gateway: d.gateway,
                        online: false,
                        at_ms: received_ms,
                        boot_epoch: Some(d.boot_epoch as i64),
                        agent_version: None,
                        config_hash: None,
                    },
                    series: Vec::new(),
                    birth: None,
                },
            }
        }
        TopicKind::Events => match json::decode::<Event>(payload) {
            Err(e) => dead(decode_reason(&e), e.to_string()),
            Ok(ev) if ev.gateway != parsed.gateway => mismatch(&ev.gateway),
            Ok(ev) => match serde_json::to_value(&ev) {
                Ok(body) => {
                    let health = health_report(&ev, received_ms);
                    Content::Event(
                        GatewayMessage {
                            gateway: ev.gateway,
                            received_ms,
                            body,
                        },
                        health,
                    )
                }
                Err(e) => dead("decode", e.to_string()),
            },
        },
        TopicKind::Ack => match json::decode::<Ack>(payload) {
            Err(e) => dead(decode_reason(&e), e.to_string()),
            Ok(ack) => match serde_json::to_value(&ack) {
                Ok(body) => Content::Ack(GatewayMessage {
                    gateway: parsed.gateway,
                    received_ms,
                    body,
                }),
                Err(e) => dead("decode", e.to_string()),
            },
        },
        TopicKind::Cmd | TopicKind::Control => dead(
            "topic",
            "command and control topics flow from the cloud to gateways; the cloud does not \
             ingest them"
                .into(),
        ),
    }
}

/// The device health an event reports. Its time is the gateway's, but never later than the
/// receive time (a gateway clock running ahead cannot date a state in the future).
fn health_report(ev: &Event, received_ms: i64) -> Option<HealthReport> {
    let (device, state, error) = match &ev.kind {
        EventKind::DeviceUp { device } => (device, ReportedState::Online, None),
        EventKind::DeviceDegraded { device, error } => {
            (device, ReportedState::Degraded, Some(error.clone()))
        }
        EventKind::DeviceDown { device, error } => {
            (device, ReportedState::Offline, Some(error.clone()))
        }
        _ => return None,
    };
    Some(HealthReport {
        gateway: ev.gateway.clone(),
        device: device.clone(),
        state,
        error,
        at_ms: ev.ts_ms.min(received_ms),
        boot_epoch: i64::try_from(ev.boot_epoch).unwrap_or(i64::MAX),
        seq: i64::try_from(ev.seq).unwrap_or(i64::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_protocol::{encode_telemetry, Encoding, Point, TelemetryBatch};

    const NOW: i64 = 1_704_067_200_000;

    fn rules() -> Rules {
        Rules {
            prefix: TopicPrefix::default(),
            max_future_skew_ms: 60_000,
        }
    }

    fn id(s: &str) -> Ident {
        Ident::new(s).unwrap()
    }

    fn batch(gw: &str, ts: &[i64]) -> TelemetryBatch {
        let mut b = TelemetryBatch::new(id(gw), 1, 7);
        for (i, t) in ts.iter().enumerate() {
            b.points
                .push(Point::new(id("m1"), id("power"), *t, i as f64));
        }
        b
    }

    fn reason(c: &Content) -> &str {
        match c {
            Content::Dead(d) => &d.reason,
            other => panic!("expected a dead letter, got {other:?}"),
        }
    }

    #[test]
    fn telemetry_in_either_encoding_becomes_rows_sharing_one_key() {
        let b = batch("gw-1", &[NOW - 2_000, NOW - 1_000]);
        for enc in [Encoding::Json, Encoding::Binary] {
            let bytes = encode_telemetry(&b, enc).unwrap();
            let c = classify(&rules(), "fieldlink/v1/gw-1/telemetry", &bytes, NOW);
            let Content::Telemetry {
                gateway,
                points,
                historical,
            } = c
            else {
                panic!("{c:?}")
            };
            assert_eq!(gateway, id("gw-1"));
            assert!(!historical);
            assert_eq!(points.len(), 2);
            assert!(Arc::ptr_eq(&points[0].key, &points[1].key));
            assert_eq!(points[1].ts_ms, NOW - 1_000);
        }
    }

    #[test]
    fn refusals_name_their_reason_and_keep_the_bytes() {
        let r = rules();
        let topic = "fieldlink/v1/gw-1/telemetry";
        let c = classify(&r, topic, b"{not json", NOW);
        assert_eq!(reason(&c), "decode");
        let Content::Dead(d) = &c else { unreachable!() };
        assert_eq!(d.payload, b"{not json");
        assert_eq!(d.topic, topic);

        let other = encode_telemetry(&batch("gw-2", &[NOW]), Encoding::Binary).unwrap();
        assert_eq!(reason(&classify(&r, topic, &other, NOW)), "topic_mismatch");

        let future =
            encode_telemetry(&batch("gw-1", &[NOW, NOW + 61_000]), Encoding::Json).unwrap();
        assert_eq!(
            reason(&classify(&r, topic, &future, NOW)),
            "future_timestamp"
        );
        let near = encode_telemetry(&batch("gw-1", &[NOW + 59_000]), Encoding::Json).unwrap();
        assert!(matches!(
            classify(&r, topic, &near, NOW),
            Content::Telemetry { .. }
        ));

        let big = vec![b' '; fieldlink_protocol::limits::MAX_PAYLOAD_BYTES + 1];
        assert_eq!(reason(&classify(&r, topic, &big, NOW)), "too_large");

        assert_eq!(
            reason(&classify(&r, "elsewhere/gw-1/telemetry", b"{}", NOW)),
            "topic"
        );
        assert_eq!(
            reason(&classify(&r, "fieldlink/v1/gw-1/cmd", b"{}", NOW)),
            "topic"
        );
        assert_eq!(reason(&classify(&r, topic, b"", NOW)), "decode");
    }

    #[test]
    fn a_non_finite_binary_value_is_refused() {
        // A number that is no short decimal is written as its raw f64 bits; overwrite them
        // with NaN, which no encoder would produce.
        let mut b = batch("gw-1", &[NOW]);
        b.points[0].value = fieldlink_protocol::Value::Number(1.0f64 / 3.0);
        let mut bytes = encode_telemetry(&b, Encoding::Binary).unwrap();
        let needle = (1.0f64 / 3.0).to_le_bytes();
        let at = bytes
            .windows(8)
            .position(|w| w == needle)
            .expect("the binary encoding carries the f64 little-endian");
        bytes[at..at + 8].copy_from_slice(&f64::NAN.to_le_bytes());
        let c = classify(&rules(), "fieldlink/v1/gw-1/telemetry", &bytes, NOW);
        assert_eq!(reason(&c), "non_finite");
    }

    #[test]
    fn aliased_telemetry_is_read_with_its_birth_only() {
        let birth = br#"{"state":"online","gateway":"gw-1","boot_epoch":1,"ts_ms":1704067200000,
            "agent_version":"0.1.0","config_hash":"h1","devices":[{"name":"m1","points":[
            {"name":"power","kind":"number"}]}]}"#;
        let Content::Status {
            birth: Some(record),
            ..
        } = classify(&rules(), "fieldlink/v1/gw-1/status", birth, NOW)
        else {
            panic!("a birth")
        };
        let b = batch("gw-1", &[NOW - 2_000, NOW - 1_000]);
        let bytes =
            fieldlink_protocol::encode_telemetry_aliased(&b, Encoding::Binary, &record.aliases)
                .unwrap();
        let topic = "fieldlink/v1/gw-1/telemetry";
        let c = classify_aliased(&rules(), topic, &bytes, NOW, Some(&record.aliases));
        let Content::Telemetry { points, .. } = c else {
            panic!("{c:?}")
        };
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].key.metric, id("power"));
        // Without the birth, or with another one: a dead letter that says so.
        let c = classify(&rules(), topic, &bytes, NOW);
        assert_eq!(reason(&c), "unknown_birth");
        let Content::Dead(d) = c else { unreachable!() };
        assert!(d.detail.contains("h1"), "{}", d.detail);
        let other = SeriesAliases::from_birth(&fieldlink_protocol::Birth {
            config_hash: "h2".into(),
            ..match json::decode::<Status>(birth).unwrap() {
                Status::Online(b) => b,
                Status::Offline(_) => unreachable!(),
            }
        });
        assert_eq!(
            reason(&classify_aliased(
                &rules(),
                topic,
                &bytes,
                NOW,
                Some(&other)
            )),
            "unknown_birth"
        );
    }

    #[test]
    fn births_carry_series_metadata_and_deaths_their_epoch() {
        let birth_bytes = br#"{"state":"online","gateway":"gw-1","boot_epoch":3,"ts_ms":1704067200000,
            "agent_version":"0.1.0","config_hash":"abc","devices":[{"name":"m1","points":[
            {"name":"power","unit":"kW","kind":"number"},{"name":"set","kind":"number","writable":true}]}]}"#;
        let c = classify(&rules(), "fieldlink/v1/gw-1/status", birth_bytes, NOW);
        let Content::Status {
            status,
            series,
            birth,
        } = c
        else {
            panic!("{c:?}")
        };
        assert!(status.online);
        assert_eq!(status.boot_epoch, Some(3));
        assert_eq!(status.agent_version.as_deref(), Some("0.1.0"));
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].unit.as_deref(), Some("kW"));
        assert!(series[1].writable);
        let birth = birth.expect("a birth record");
        assert_eq!(birth.stored.config_hash, "abc");
        assert_eq!(birth.stored.body.as_bytes(), birth_bytes);
        assert_eq!(birth.aliases.len(), 2);
        assert_eq!(
            BirthRecord::from_stored(birth.stored.clone()).unwrap(),
            birth
        );

        let death = br#"{"state":"offline","gateway":"gw-1","boot_epoch":3}"#;
        let c = classify(&rules(), "fieldlink/v1/gw-1/status", death, NOW);
        let Content::Status { status, .. } = c else {
            panic!("{c:?}")
        };
        assert!(!status.online);
        let c = classify(&rules(), "fieldlink/v1/gw-2/status", death, NOW);
        assert_eq!(reason(&c), "topic_mismatch");
        assert_eq!(
            classify(&rules(), "fieldlink/v1/gw-1/status", b"", NOW),
            Content::Ignore
        );
    }

    #[test]
    fn device_events_carry_health_dated_no_later_than_receipt() {
        let event = |kind: EventKind, ts_ms: i64| {
            json::encode(&Event {
                gateway: id("gw"),
                boot_epoch: 2,
                seq: 7,
                ts_ms,
                kind,
            })
            .unwrap()
        };
        let down = event(
            EventKind::DeviceDown {
                device: id("meter"),
                error: "timeout".into(),
            },
            NOW - 5_000,
        );
        let Content::Event(m, Some(h)) = classify(&rules(), "fieldlink/v1/gw/events", &down, NOW)
        else {
            panic!("not a health event");
        };
        assert_eq!(m.body["event"], "device_down");
        assert_eq!(
            (h.device.as_str(), h.state, h.error.as_deref(), h.at_ms),
            (
                "meter",
                ReportedState::Offline,
                Some("timeout"),
                NOW - 5_000
            )
        );
        assert_eq!((h.boot_epoch, h.seq), (2, 7));
        let ahead = event(
            EventKind::DeviceUp {
                device: id("meter"),
            },
            NOW + 60_000,
        );
        let Content::Event(_, Some(h)) = classify(&rules(), "fieldlink/v1/gw/events", &ahead, NOW)
        else {
            panic!("not a health event");
        };
        assert_eq!(
            (h.state, h.error, h.at_ms),
            (ReportedState::Online, None, NOW)
        );
        let other = event(
            EventKind::ConfigApplied {
                config_hash: "cafe".into(),
            },
            NOW,
        );
        assert!(matches!(
            classify(&rules(), "fieldlink/v1/gw/events", &other, NOW),
            Content::Event(_, None)
        ));
    }
}
