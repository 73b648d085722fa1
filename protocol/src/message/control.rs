//! Flow control from the cloud to a gateway, on `{prefix}/{gateway}/control`.
//!
//! A cloud sends [`Control::SlowDown`] when a gateway exceeds its quota. The agent keeps the
//! readings it holds back in its journal and sends them later, so an honest gateway that slows
//! down loses nothing; one that ignores the request has what it sends past the quota (after a
//! grace period) counted and dropped by the cloud. An agent that does not know this message
//! never subscribes to the topic; one that does obeys the newest request until it lapses.

use serde::{Deserialize, Serialize};

use super::Message;
use crate::error::ValidationError;
use crate::topic::TopicKind;

/// The longest a single request may hold a gateway back; the cloud repeats it while needed.
pub const MAX_SLOW_DOWN_MS: u64 = 10 * 60 * 1_000;

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
            r#"{"control":"slow_down","points_per_s":-1,"messages_per_s":1,"for_ms":1}"#,
        ] {
            assert!(json::decode::<Control>(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
