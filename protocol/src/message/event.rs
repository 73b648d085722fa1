//! Events: what happened on the gateway besides readings.
//!
//! Events are never dropped (telemetry is, oldest first, and the drop is itself an event).
//! `(gateway, boot_epoch, seq)` names an event so that the cloud can store a redelivered one
//! once.

use serde::{Deserialize, Serialize};

use super::Message;
use crate::error::ValidationError;
use crate::limits::{MAX_CONFIG_HASH_LEN, MAX_TEXT_LEN};
use crate::topic::TopicKind;
use crate::{validate, Ident};

/// One event. On the wire the kind's fields sit beside the common ones, tagged by `"event"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub gateway: Ident,
    pub boot_epoch: u64,
    pub seq: u64,
    pub ts_ms: i64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The device answers again (or for the first time).
    DeviceUp { device: Ident },
    /// The device stopped answering.
    DeviceDown { device: Ident, error: String },
    /// The device answers, but some reads fail or time out.
    DeviceDegraded { device: Ident, error: String },
    /// An error not tied to a reading, optionally about one device.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<Ident>,
        message: String,
    },
    /// The journal was full and shed its oldest readings.
    TelemetryDropped {
        /// Readings dropped since the previous such event.
        points: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        oldest_ts_ms: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        newest_ts_ms: Option<i64>,
    },
    /// A new configuration is in force.
    ConfigApplied { config_hash: String },
    /// A configuration was refused; the previous one stays in force.
    ConfigRejected {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config_hash: Option<String>,
        error: String,
    },
    /// A corrupt journal was moved aside and a fresh one started.
    JournalQuarantined { file: String, error: String },
    /// Anything else, named by `kind`.
    Other { kind: Ident, message: String },
}

impl EventKind {
    fn validate(&self) -> Result<(), ValidationError> {
        let text = |s: &str, f: &'static str| validate::text(s, MAX_TEXT_LEN, || f.into());
        match self {
            EventKind::DeviceUp { .. } => Ok(()),
            EventKind::DeviceDown { error, .. } | EventKind::DeviceDegraded { error, .. } => {
                text(error, "error")
            }
            EventKind::Error { message, .. } | EventKind::Other { message, .. } => {
                text(message, "message")
            }
            EventKind::TelemetryDropped {
                oldest_ts_ms,
                newest_ts_ms,
                ..
            } => {
                if let Some(ts) = oldest_ts_ms {
                    validate::timestamp(*ts, || "oldest_ts_ms".into())?;
                }
                if let Some(ts) = newest_ts_ms {
                    validate::timestamp(*ts, || "newest_ts_ms".into())?;
                }
                match (oldest_ts_ms, newest_ts_ms) {
                    (Some(a), Some(b)) if b < a => Err(ValidationError::OutOfOrder {
                        field: "newest_ts_ms".into(),
                        earlier: *a,
                        later: *b,
                    }),
                    _ => Ok(()),
                }
            }
            EventKind::ConfigApplied { config_hash } => {
                validate::label(config_hash, MAX_CONFIG_HASH_LEN, || "config_hash".into())
            }
            EventKind::ConfigRejected { config_hash, error } => {
                if let Some(h) = config_hash {
                    validate::label(h, MAX_CONFIG_HASH_LEN, || "config_hash".into())?;
                }
                text(error, "error")
            }
            EventKind::JournalQuarantined { file, error } => {
                validate::label(file, MAX_TEXT_LEN, || "file".into())?;
                text(error, "error")
            }
        }
    }
}

impl Message for Event {
    const TOPIC: TopicKind = TopicKind::Events;

    fn validate(&self) -> Result<(), ValidationError> {
        validate::timestamp(self.ts_ms, || "ts_ms".into())?;
        self.kind.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind) -> Event {
        Event {
            gateway: Ident::new("gw").unwrap(),
            boot_epoch: 1,
            seq: 1,
            ts_ms: 1_000,
            kind,
        }
    }

    #[test]
    fn rules() {
        let long = "e".repeat(MAX_TEXT_LEN + 1);
        let dev = Ident::new("d").unwrap();
        assert!(ev(EventKind::DeviceDown {
            device: dev.clone(),
            error: long.clone()
        })
        .validate()
        .is_err());
        assert!(ev(EventKind::DeviceDown {
            device: dev,
            error: "timeout".into()
        })
        .validate()
        .is_ok());
        assert!(matches!(
            ev(EventKind::TelemetryDropped {
                points: 5,
                oldest_ts_ms: Some(10),
                newest_ts_ms: Some(9)
            })
            .validate(),
            Err(ValidationError::OutOfOrder { .. })
        ));
        assert!(ev(EventKind::ConfigApplied {
            config_hash: String::new()
        })
        .validate()
        .is_err());
        assert!(ev(EventKind::JournalQuarantined {
            file: "journal.db.corrupt-1".into(),
            error: "malformed".into()
        })
        .validate()
        .is_ok());
        let mut e = ev(EventKind::Error {
            device: None,
            message: "x".into(),
        });
        e.ts_ms = -5;
        assert!(e.validate().is_err());
    }
}
