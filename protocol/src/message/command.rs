//! Commands from the cloud to a gateway.
//!
//! The cloud persists a command before sending it; the agent journals it before running it,
//! keyed by `id`, so a redelivered command runs once. A command received after `expires_at_ms`
//! is not run but acknowledged as expired.

use serde::{Deserialize, Serialize};

use super::Message;
use crate::error::ValidationError;
use crate::limits::{
    MAX_CONFIG_BYTES, MAX_POLL_INTERVAL_MS, MAX_READ_POINTS, MIN_POLL_INTERVAL_MS,
};
use crate::topic::TopicKind;
use crate::{validate, Ident, Value};

/// One command. On the wire the kind's fields sit beside the common ones, tagged by
/// `"command"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub id: Ident,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    #[serde(flatten)]
    pub kind: CommandKind,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum CommandKind {
    /// Write `value` to a writable point.
    WritePoint {
        device: Ident,
        point: Ident,
        value: Value,
    },
    /// Read the named points at once (all of the device's points when the list is empty).
    ReadNow {
        device: Ident,
        #[serde(default, deserialize_with = "crate::json::bounded::read_points")]
        points: Vec<Ident>,
    },
    /// Change how often a device is polled.
    SetPollInterval { device: Ident, interval_ms: u64 },
    /// Replace the agent's configuration.
    ApplyConfig { config: ConfigDocument },
    /// Acknowledge and do nothing: measures the round trip.
    Ping,
}

/// A configuration as carried by [`CommandKind::ApplyConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigDocument {
    /// The agent's TOML file, verbatim.
    Toml(String),
    /// A structured document the agent interprets; the protocol only bounds its size.
    Document(serde_json::Value),
}

impl Command {
    /// Whether the command must no longer run at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms > self.expires_at_ms
    }
}

impl Message for Command {
    const TOPIC: TopicKind = TopicKind::Cmd;

    fn validate(&self) -> Result<(), ValidationError> {
        validate::timestamp(self.created_at_ms, || "created_at_ms".into())?;
        validate::timestamp(self.expires_at_ms, || "expires_at_ms".into())?;
        if self.expires_at_ms < self.created_at_ms {
            return Err(ValidationError::OutOfOrder {
                field: "expires_at_ms".into(),
                earlier: self.created_at_ms,
                later: self.expires_at_ms,
            });
        }
        match &self.kind {
            CommandKind::WritePoint { value, .. } => validate::value(value, || "value".into()),
            CommandKind::ReadNow { points, .. } => {
                validate::count(points.len(), MAX_READ_POINTS, || "points".into())
            }
            CommandKind::SetPollInterval { interval_ms, .. } => validate::range(
                *interval_ms,
                MIN_POLL_INTERVAL_MS,
                MAX_POLL_INTERVAL_MS,
                || "interval_ms".into(),
            ),
            CommandKind::ApplyConfig { config } => config.validate(),
            CommandKind::Ping => Ok(()),
        }
    }
}

impl ConfigDocument {
    fn validate(&self) -> Result<(), ValidationError> {
        let len = match self {
            ConfigDocument::Toml(text) => text.len(),
            // Serializing a `serde_json::Value` cannot fail: its keys are strings.
            ConfigDocument::Document(doc) => {
                serde_json::to_vec(doc).map_or(usize::MAX, |v| v.len())
            }
        };
        if len > MAX_CONFIG_BYTES {
            return Err(ValidationError::TooLong {
                field: "config".into(),
                len,
                max: MAX_CONFIG_BYTES,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(kind: CommandKind) -> Command {
        Command {
            id: Ident::new("c-1").unwrap(),
            created_at_ms: 1_000,
            expires_at_ms: 61_000,
            kind,
        }
    }

    #[test]
    fn rules() {
        assert_eq!(cmd(CommandKind::Ping).validate(), Ok(()));
        let mut c = cmd(CommandKind::Ping);
        c.expires_at_ms = 999;
        assert!(matches!(
            c.validate(),
            Err(ValidationError::OutOfOrder { .. })
        ));
        let dev = Ident::new("d").unwrap();
        for (ms, ok) in [
            (9, false),
            (10, true),
            (86_400_000, true),
            (86_400_001, false),
        ] {
            let c = cmd(CommandKind::SetPollInterval {
                device: dev.clone(),
                interval_ms: ms,
            });
            assert_eq!(c.validate().is_ok(), ok, "{ms}");
        }
        let c = cmd(CommandKind::WritePoint {
            device: dev.clone(),
            point: dev.clone(),
            value: Value::Number(f64::INFINITY),
        });
        assert!(c.validate().is_err());
        let c = cmd(CommandKind::ReadNow {
            device: dev.clone(),
            points: vec![dev.clone(); MAX_READ_POINTS + 1],
        });
        assert!(c.validate().is_err());
        let c = cmd(CommandKind::ApplyConfig {
            config: ConfigDocument::Toml("x".repeat(MAX_CONFIG_BYTES + 1)),
        });
        assert!(matches!(c.validate(), Err(ValidationError::TooLong { .. })));
        let c = cmd(CommandKind::ApplyConfig {
            config: ConfigDocument::Document(serde_json::Value::String(
                "x".repeat(MAX_CONFIG_BYTES),
            )),
        });
        assert!(c.validate().is_err(), "the quotes count");
    }

    #[test]
    fn expiry() {
        let c = cmd(CommandKind::Ping);
        assert!(!c.is_expired(61_000));
        assert!(c.is_expired(61_001));
    }
}
