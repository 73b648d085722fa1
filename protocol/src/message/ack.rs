//! Command acknowledgements: how far a command got.
//!
//! An agent acknowledges each command at least twice: `received` once it is journaled, then
//! one final stage. Acknowledgements travel through the agent's journal ahead of telemetry and
//! are never dropped.

use serde::{Deserialize, Serialize};

use super::Message;
use crate::error::ValidationError;
use crate::limits::MAX_TEXT_LEN;
use crate::topic::TopicKind;
use crate::{validate, Ident, Value};

/// The acknowledgement of one stage of one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub command_id: Ident,
    pub stage: AckStage,
    /// What a read or write returned, when it returned a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why the command failed, was rejected or expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub ts_ms: i64,
}

/// How far a command got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStage {
    /// Journaled by the agent; it will run once.
    Received,
    /// Ran successfully.
    Executed,
    /// Ran and failed (the device refused, timed out, …).
    Failed,
    /// Not run: malformed, unknown device, point not writable, …
    Rejected,
    /// Not run: arrived after its expiry.
    Expired,
}

impl AckStage {
    /// Whether no later stage follows.
    pub fn is_final(self) -> bool {
        !matches!(self, AckStage::Received)
    }
}

impl Message for Ack {
    const TOPIC: TopicKind = TopicKind::Ack;

    fn validate(&self) -> Result<(), ValidationError> {
        validate::timestamp(self.ts_ms, || "ts_ms".into())?;
        if let Some(v) = &self.result {
            validate::value(v, || "result".into())?;
        }
        if let Some(e) = &self.error {
            validate::text(e, MAX_TEXT_LEN, || "error".into())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let mut a = Ack {
            command_id: Ident::new("c-1").unwrap(),
            stage: AckStage::Executed,
            result: Some(Value::Number(1.0)),
            error: None,
            ts_ms: 5,
        };
        assert_eq!(a.validate(), Ok(()));
        a.result = Some(Value::Number(f64::NAN));
        assert!(a.validate().is_err());
        a.result = None;
        a.error = Some("e".repeat(MAX_TEXT_LEN + 1));
        assert!(a.validate().is_err());
        assert!(!AckStage::Received.is_final());
        assert!(AckStage::Expired.is_final());
    }
}
