//! The fan-out's messages, version [`VERSION`]: the bodies (see the table in the parent module)
//! and the envelope, and the fan-out's own types for commands, alerts and device health.
//!
//! Those types copy the fields of the API's views (`CommandView`, `AlertView`, `Device`) as of
//! version 1 and convert from and to them; they do not reuse them, so a field added to, renamed
//! in or removed from the API is a compile error or a deliberate change here, and the test that
//! pins version 1's bytes says whether it changed the wire.

use fieldlink_protocol::{Quality, Value};
use serde::{Deserialize, Serialize};

use crate::alerts::{AlertView, RuleKind, Severity};
use crate::commands::{CommandStatus, CommandView};
use crate::registry::Device;
use crate::store::{DeviceState, ReportedState};

/// The version of the format this instance writes and the newest it reads.
pub const VERSION: u64 = 1;

/// A body as the sender writes it.
#[derive(Serialize)]
pub(super) enum Out<'a> {
    #[serde(rename = "g")]
    Status {
        g: &'a str,
        on: bool,
        at: i64,
        e: Option<i64>,
        v: Option<&'a str>,
        h: Option<&'a str>,
    },
    #[serde(rename = "c")]
    Command(&'a CommandMsg),
    #[serde(rename = "a")]
    Alert(&'a AlertMsg),
    #[serde(rename = "d")]
    Device(&'a DeviceMsg),
    #[serde(rename = "part")]
    Part { n: u32, of: u32, d: &'a str },
}

pub(super) type Run = (String, String, String, Vec<(i64, Value, u8)>);

/// A body as the receiver reads it.
#[derive(Deserialize)]
pub(super) enum In {
    #[serde(rename = "p")]
    Points { t: i64, r: Vec<Run> },
    #[serde(rename = "g")]
    Status {
        g: String,
        on: bool,
        at: i64,
        e: Option<i64>,
        v: Option<String>,
        h: Option<String>,
    },
    #[serde(rename = "c")]
    Command(CommandMsg),
    #[serde(rename = "a")]
    Alert(AlertMsg),
    #[serde(rename = "d")]
    Device(DeviceMsg),
    #[serde(rename = "part")]
    Part { n: u32, of: u32, d: String },
}

/// A payload as the receiver reads it.
#[derive(Deserialize)]
pub(super) struct Envelope {
    pub i: String,
    pub s: u64,
    #[serde(default = "first_version")]
    pub v: u64,
    pub b: In,
}

/// A payload's head alone: what a receiver still reads of a payload whose body it cannot (one
/// of a newer version).
#[derive(Deserialize)]
pub(super) struct Head {
    pub i: String,
    pub s: u64,
    #[serde(default = "first_version")]
    pub v: u64,
}

fn first_version() -> u64 {
    1
}

/// A command and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct CommandMsg {
    pub command_id: String,
    pub gateway: String,
    /// The protocol's command, as JSON.
    pub kind: serde_json::Value,
    pub status: CommandStatus,
    /// RFC 3339.
    pub created_at: String,
    pub expires_at: String,
    pub updated_at: String,
    pub idempotency_key: Option<String>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
}

impl From<&CommandView> for CommandMsg {
    fn from(c: &CommandView) -> CommandMsg {
        CommandMsg {
            command_id: c.command_id.clone(),
            gateway: c.gateway.clone(),
            kind: c.kind.clone(),
            status: c.status,
            created_at: c.created_at.clone(),
            expires_at: c.expires_at.clone(),
            updated_at: c.updated_at.clone(),
            idempotency_key: c.idempotency_key.clone(),
            result: c.result.clone(),
            error: c.error.clone(),
        }
    }
}

impl From<CommandMsg> for CommandView {
    fn from(c: CommandMsg) -> CommandView {
        CommandView {
            command_id: c.command_id,
            gateway: c.gateway,
            kind: c.kind,
            status: c.status,
            created_at: c.created_at,
            expires_at: c.expires_at,
            updated_at: c.updated_at,
            idempotency_key: c.idempotency_key,
            result: c.result,
            error: c.error,
        }
    }
}

/// An alert's state after a transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct AlertMsg {
    pub alert_id: String,
    pub rule_id: String,
    pub gateway: String,
    pub device: String,
    pub metric: String,
    #[serde(default)]
    pub kind: RuleKind,
    pub severity: Severity,
    pub status: String,
    /// RFC 3339.
    pub started_at: String,
    pub updated_at: String,
    pub last_value: Option<f64>,
}

impl From<&AlertView> for AlertMsg {
    fn from(a: &AlertView) -> AlertMsg {
        AlertMsg {
            alert_id: a.alert_id.clone(),
            rule_id: a.rule_id.clone(),
            gateway: a.gateway.clone(),
            device: a.device.clone(),
            metric: a.metric.clone(),
            kind: a.kind,
            severity: a.severity,
            status: a.status.clone(),
            started_at: a.started_at.clone(),
            updated_at: a.updated_at.clone(),
            last_value: a.last_value,
        }
    }
}

impl From<AlertMsg> for AlertView {
    fn from(a: AlertMsg) -> AlertView {
        AlertView {
            alert_id: a.alert_id,
            rule_id: a.rule_id,
            gateway: a.gateway,
            device: a.device,
            metric: a.metric,
            kind: a.kind,
            severity: a.severity,
            status: a.status,
            // Internal to the instance that evaluates the rule; receivers show `started_at`.
            started_at_ms: 0,
            started_at: a.started_at,
            updated_at: a.updated_at,
            last_value: a.last_value,
        }
    }
}

/// A device's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct DeviceMsg {
    pub gateway: String,
    pub device: String,
    pub state: DeviceState,
    /// RFC 3339.
    pub since: Option<String>,
    pub reported_state: Option<ReportedState>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

impl From<&Device> for DeviceMsg {
    fn from(d: &Device) -> DeviceMsg {
        DeviceMsg {
            gateway: d.gateway.clone(),
            device: d.device.clone(),
            state: d.state,
            since: d.since.clone(),
            reported_state: d.reported_state,
            last_error: d.last_error.clone(),
            last_error_at: d.last_error_at.clone(),
        }
    }
}

impl From<DeviceMsg> for Device {
    fn from(d: DeviceMsg) -> Device {
        Device {
            gateway: d.gateway,
            device: d.device,
            state: d.state,
            since: d.since,
            reported_state: d.reported_state,
            last_error: d.last_error,
            last_error_at: d.last_error_at,
        }
    }
}

pub(super) fn quality_code(q: Quality) -> u8 {
    match q {
        Quality::Good => 0,
        Quality::Uncertain => 1,
        Quality::Bad => 2,
    }
}

pub(super) fn quality_of(code: u8) -> Option<Quality> {
    match code {
        0 => Some(Quality::Good),
        1 => Some(Quality::Uncertain),
        2 => Some(Quality::Bad),
        _ => None,
    }
}

/// Bytes `c` takes inside a JSON string as serde_json writes it.
pub(super) fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{08}' | '\u{0c}' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

pub(super) fn json_str(out: &mut String, s: &str) {
    // Writing JSON into a String cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}
