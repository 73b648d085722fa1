//! The `commands` table: one row per command, its status moving forward only
//! (see [`CommandStatus::predecessors`]). Every status change is a conditional `UPDATE`, so two
//! cloud instances applying the same acknowledgement agree, and a late or repeated one changes
//! nothing.

use std::sync::Arc;

use fieldlink_protocol::{CommandKind, Ident};

use super::CommandStatus;
use crate::records::{DbError, Fields, Param, RecordsDb, Row};

/// A stored command.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRecord {
    pub command_id: Ident,
    pub gateway: Ident,
    pub kind: CommandKind,
    pub status: CommandStatus,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub updated_at_ms: i64,
    pub idempotency_key: Option<String>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_by: String,
}

impl CommandRecord {
    /// The message published to the gateway.
    pub fn message(&self) -> fieldlink_protocol::Command {
        fieldlink_protocol::Command {
            id: self.command_id.clone(),
            created_at_ms: self.created_at_ms,
            expires_at_ms: self.expires_at_ms,
            kind: self.kind.clone(),
        }
    }
}

const COLUMNS: &str = "command_id, gateway, kind, status, created_at, expires_at, updated_at, \
                       idempotency_key, result, error, created_by";

fn record(r: &Row) -> Result<CommandRecord, DbError> {
    fn json<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
        serde_json::from_str(s).ok()
    }
    let f = Fields::of(r, "commands");
    Ok(CommandRecord {
        command_id: f.parsed(0, "command_id", |s| Ident::new(s).ok())?,
        gateway: f.parsed(1, "gateway", |s| Ident::new(s).ok())?,
        kind: f.parsed(2, "kind", json)?,
        status: f.parsed(3, "status", CommandStatus::parse)?,
        created_at_ms: f.int(4, "created_at")?,
        expires_at_ms: f.int(5, "expires_at")?,
        updated_at_ms: f.int(6, "updated_at")?,
        idempotency_key: f.opt_text(7, "idempotency_key")?,
        result: f.opt_parsed(8, "result", json)?,
        error: f.opt_text(9, "error")?,
        created_by: f.text(10, "created_by")?,
    })
}

#[derive(Clone)]
pub struct CommandRecords {
    db: Arc<RecordsDb>,
}

impl CommandRecords {
    pub fn new(db: Arc<RecordsDb>) -> CommandRecords {
        CommandRecords { db }
    }

    /// Stores a new pending command. With an idempotency key already used for this gateway,
    /// stores nothing and returns the earlier command and `false`.
    pub async fn insert(&self, c: &CommandRecord) -> Result<(CommandRecord, bool), DbError> {
        let kind =
            serde_json::to_string(&c.kind).map_err(|e| DbError::ColumnType(e.to_string()))?;
        let r = self
            .db
            .execute(
                &format!(
                    "INSERT INTO commands ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ),
                vec![
                    c.command_id.to_string().into(),
                    c.gateway.to_string().into(),
                    kind.into(),
                    c.status.as_str().into(),
                    c.created_at_ms.into(),
                    c.expires_at_ms.into(),
                    c.updated_at_ms.into(),
                    c.idempotency_key.clone().into(),
                    Param::Text(None),
                    Param::Text(None),
                    c.created_by.clone().into(),
                ],
            )
            .await;
        match (r, &c.idempotency_key) {
            (Ok(_), _) => Ok((c.clone(), true)),
            (Err(e), Some(key)) if e.is_constraint() => {
                let rows = self
                    .db
                    .query(
                        &format!(
                            "SELECT {COLUMNS} FROM commands WHERE gateway = $1 AND idempotency_key = $2"
                        ),
                        vec![c.gateway.to_string().into(), key.clone().into()],
                    )
                    .await?;
                match rows.first() {
                    Some(r) => Ok((record(r)?, false)),
                    None => Err(e),
                }
            }
            (Err(e), _) => Err(e),
        }
    }

    pub async fn get(&self, command_id: &str) -> Result<Option<CommandRecord>, DbError> {
        let rows = self
            .db
            .query(
                &format!("SELECT {COLUMNS} FROM commands WHERE command_id = $1"),
                vec![command_id.into()],
            )
            .await?;
        rows.first().map(record).transpose()
    }

    /// A gateway's commands, newest first.
    pub async fn list(
        &self,
        gateway: &Ident,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<CommandRecord>, DbError> {
        let rows = self
            .db
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM commands WHERE gateway = $1 \
                     ORDER BY created_at DESC, command_id DESC LIMIT $2 OFFSET $3"
                ),
                vec![gateway.to_string().into(), limit.into(), offset.into()],
            )
            .await?;
        rows.iter().map(record).collect()
    }

    /// A gateway's pending commands that have not expired at `now_ms`, oldest first: what to
    /// publish when it comes online.
    pub async fn due(&self, gateway: &Ident, now_ms: i64) -> Result<Vec<CommandRecord>, DbError> {
        let rows = self
            .db
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM commands WHERE gateway = $1 AND status = 'pending' \
                     AND expires_at >= $2 ORDER BY created_at, command_id"
                ),
                vec![gateway.to_string().into(), now_ms.into()],
            )
            .await?;
        rows.iter().map(record).collect()
    }

    /// Moves a command to `to` if it is at one of `to`'s predecessors; returns the updated
    /// record, or `None` when nothing changed.
    pub async fn advance(
        &self,
        command_id: &str,
        to: CommandStatus,
        result: Option<&serde_json::Value>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<CommandRecord>, DbError> {
        let from = to.predecessors();
        if from.is_empty() {
            return Ok(None);
        }
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 6)).collect();
        let mut params: Vec<Param> = vec![
            to.as_str().into(),
            now_ms.into(),
            result.map(|v| v.to_string()).into(),
            error.map(str::to_string).into(),
            command_id.into(),
        ];
        params.extend(from.iter().map(|s| Param::from(s.as_str())));
        let n = self
            .db
            .execute(
                &format!(
                    "UPDATE commands SET status = $1, updated_at = $2, \
                     result = COALESCE($3, result), error = COALESCE($4, error) \
                     WHERE command_id = $5 AND status IN ({})",
                    placeholders.join(", ")
                ),
                params,
            )
            .await?;
        if n == 0 {
            return Ok(None);
        }
        self.get(command_id).await
    }

    /// Marks every pending or sent command whose expiry is before `now_ms` as expired and
    /// returns them. A received command is left to the agent, which has it journaled and
    /// answers with its own final stage.
    pub async fn expire_due(&self, now_ms: i64) -> Result<Vec<CommandRecord>, DbError> {
        let rows = self
            .db
            .query(
                "SELECT command_id FROM commands WHERE status IN ('pending', 'sent') \
                 AND expires_at < $1",
                vec![now_ms.into()],
            )
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let id = Fields::of(&r, "commands").text(0, "command_id")?;
            let n = self
                .db
                .execute(
                    "UPDATE commands SET status = 'expired', updated_at = $1, \
                     error = 'expired before the gateway had it' \
                     WHERE command_id = $2 AND status IN ('pending', 'sent')",
                    vec![now_ms.into(), id.clone().into()],
                )
                .await?;
            if n > 0 {
                if let Some(rec) = self.get(&id).await? {
                    out.push(rec);
                }
            }
        }
        Ok(out)
    }
}
