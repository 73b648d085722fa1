//! Flow control from the cloud to a gateway, on `{prefix}/{gateway}/control`.
//!
//! A cloud sends [`Control::SlowDown`] when a gateway exceeds its quota. The agent keeps the
//! readings it holds back in its journal and sends them later, so an honest gateway that slows
//! down loses nothing; one that ignores the request has what it sends past the quota (after a
//! grace period) counted and dropped by the cloud. An agent that does not know this message
//! never subscribes to the topic; one that does obeys the newest request until it lapses.
//!
//! A cloud also answers every birth with [`Control::Accepts`]: the telemetry layouts it reads.
//! A gateway sends a layout newer than the aliased binary form (version 2, which every cloud
//! reads) only once its current connection has heard that the cloud reads it, so an agent
//! newer than its cloud keeps working. An agent that predates the message logs it as a
//! control message it cannot read, once per connection, and carries on.

use serde::{Deserialize, Serialize};

use super::Message;
use crate::error::ValidationError;
use crate::topic::TopicKind;

/// The longest a single request may hold a gateway back; the cloud repeats it while needed.
pub const MAX_SLOW_DOWN_MS: u64 = 10 * 60 * 1_000;

/// Most layout versions one announcement may list per encoding.
pub const MAX_ACCEPTED_VERSIONS: usize = 32;

/// A flow-control request, tagged by `"control"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "snake_case")]
pub enum Control {
    /// Send telemetry at no more than these rates for `for_ms` from receipt.
    SlowDown {
        points_per_s: u32,
        messages_per_s: u32,
        for_ms: u64,
    },
    /// The telemetry layouts this cloud reads: binary layout versions (1 named, 2 aliased,
    /// 3 packed) and JSON versions (1 named, 2 aliased).
    Accepts { binary: Vec<u8>, json: Vec<u8> },
}

impl Control {
    /// What this build of the protocol reads.
    pub fn accepts_all() -> Control {
        Control::Accepts {
            binary: vec![
                crate::binary::VERSION,
                crate::binary::VERSION_ALIASED,
                crate::binary::VERSION_PACKED,
            ],
            json: vec![1, crate::json::VERSION_ALIASED],
        }
    }
}

impl Message for Control {
    const TOPIC: TopicKind = TopicKind::Control;

    fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Control::SlowDown {
                points_per_s,
                messages_per_s,
                for_ms,
            } => {
                let range = |field: &str, value: u64, max: u64| {
                    if (1..=max).contains(&value) {
                        Ok(())
                    } else {
                        Err(ValidationError::OutOfRange {
                            field: field.into(),
                            value,
                            min: 1,
                            max,
                        })
                    }
                };
                range(
                    "points_per_s",
                    u64::from(*points_per_s),
                    u64::from(u32::MAX),
                )?;
                range(
                    "messages_per_s",
                    u64::from(*messages_per_s),
                    u64::from(u32::MAX),
                )?;
                range("for_ms", *for_ms, MAX_SLOW_DOWN_MS)
            }
            Control::Accepts { binary, json } => {
                for (field, list) in [("binary", binary), ("json", json)] {
                    if list.len() > MAX_ACCEPTED_VERSIONS {
                        return Err(ValidationError::TooMany {
                            field: field.into(),
                            count: list.len(),
                            max: MAX_ACCEPTED_VERSIONS,
                        });
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[test]
    fn a_slow_down_round_trips_and_bad_ones_are_refused() {
        let c = Control::SlowDown {
            points_per_s: 2_000,
            messages_per_s: 20,
            for_ms: 10_000,
        };
        let bytes = json::encode(&c).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"control":"slow_down","points_per_s":2000,"messages_per_s":20,"for_ms":10000}"#
        );
        assert_eq!(json::decode::<Control>(&bytes).unwrap(), c);
        for bad in [
            r#"{"control":"slow_down","points_per_s":0,"messages_per_s":20,"for_ms":1}"#,
            r#"{"control":"slow_down","points_per_s":1,"messages_per_s":0,"for_ms":1}"#,
            r#"{"control":"slow_down","points_per_s":1,"messages_per_s":1,"for_ms":0}"#,
            r#"{"control":"slow_down","points_per_s":1,"messages_per_s":1,"for_ms":600001}"#,
            r#"{"control":"speed_up"}"#,
            r#"{"control":"accepts","binary":[1,2,300],"json":[1]}"#,
            r#"{"control":"accepts","binary":[1,2]}"#,
            r#"{"control":"slow_down","points_per_s":-1,"messages_per_s":1,"for_ms":1}"#,
        ] {
            assert!(json::decode::<Control>(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_announcement_round_trips_and_unknown_versions_are_kept() {
        let bytes = json::encode(&Control::accepts_all()).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"control":"accepts","binary":[1,2,3],"json":[1,2]}"#
        );
        assert_eq!(
            json::decode::<Control>(&bytes).unwrap(),
            Control::accepts_all()
        );
        // A newer cloud may list versions this build does not know; they are simply unused.
        let newer = br#"{"control":"accepts","binary":[1,2,3,4],"json":[1,2]}"#;
        assert!(json::decode::<Control>(newer).is_ok());
        let many = format!(
            r#"{{"control":"accepts","binary":[{}],"json":[]}}"#,
            vec!["1"; MAX_ACCEPTED_VERSIONS + 1].join(",")
        );
        assert!(json::decode::<Control>(many.as_bytes()).is_err());
    }
}
