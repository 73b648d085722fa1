//! A command as the API and the WebSocket show it: times in RFC 3339, the protocol's command
//! as JSON.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CommandRecord, CommandStatus};
use crate::clock::rfc3339;

/// A command and how far it got.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommandView {
    pub command_id: String,
    pub gateway: String,
    /// The protocol's command, as created.
    pub kind: serde_json::Value,
    pub status: CommandStatus,
    /// RFC 3339.
    pub created_at: String,
    pub expires_at: String,
    pub updated_at: String,
    pub idempotency_key: Option<String>,
    /// What a read or write returned: any JSON value, or null before it has answered.
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
}

impl From<CommandRecord> for CommandView {
    fn from(c: CommandRecord) -> CommandView {
        CommandView {
            command_id: c.command_id.to_string(),
            gateway: c.gateway.to_string(),
            kind: serde_json::to_value(&c.kind).unwrap_or(serde_json::Value::Null),
            status: c.status,
            created_at: rfc3339(c.created_at_ms),
            expires_at: rfc3339(c.expires_at_ms),
            updated_at: rfc3339(c.updated_at_ms),
            idempotency_key: c.idempotency_key,
            result: c.result,
            error: c.error,
        }
    }
}
