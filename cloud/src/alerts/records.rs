//! `alert_rules`, `alerts` and `alert_transitions`: rules CRUD (each change bumps
//! `alert_clock.rules`, so every instance reloads) and the alert queries of the API.

use std::sync::Arc;

pub use super::spec::{RuleKind, RuleSpec, Severity};
use crate::records::{Committed, DbError, Fields, Param, RecordsDb, Row, Step};

/// A stored rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct StoredRule {
    pub rule_id: String,
    pub rule: RuleSpec,
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AlertView {
    pub alert_id: String,
    pub rule_id: String,
    pub gateway: String,
    pub device: String,
    pub metric: String,
    /// The rule's kind. A gateway_offline alert is about a gateway: `device` and `metric` are
    /// empty.
    #[serde(default)]
    pub kind: RuleKind,
    pub severity: Severity,
    /// pending, active, acknowledged or resolved.
    pub status: String,
    /// Milliseconds since the Unix epoch (internal); RFC 3339 in `started_at`.
    #[serde(skip)]
    pub started_at_ms: i64,
    /// RFC 3339.
    pub started_at: String,
    pub updated_at: String,
    /// The value that caused the last transition.
    pub last_value: Option<f64>,
}

#[derive(Clone)]
pub struct AlertRecords {
    db: Arc<RecordsDb>,
}

const RULE_COLUMNS: &str = "rule_id, name, enabled, gateway, device, metric, condition, clear, \
                            hold_ms, repeat_ms, severity, kind, silent_ms, receivers";
pub(crate) const ALERT_COLUMNS: &str = "alert_id, rule_id, gateway, device, metric, severity, \
                                        status, started_at, updated_at, last_value, kind";

fn rule_row(r: &Row) -> Result<StoredRule, DbError> {
    let f = Fields::of(r, "alert_rules");
    let secs = |ms: i64| (ms / 1_000) as u32;
    Ok(StoredRule {
        rule_id: f.text(0, "rule_id")?,
        rule: RuleSpec {
            name: f.text(1, "name")?,
            enabled: f.int(2, "enabled")? == 1,
            gateway: f.opt_text(3, "gateway")?,
            device: f.opt_text(4, "device")?,
            metric: f.opt_text(5, "metric")?,
            condition: f.parsed(6, "condition", |s| serde_json::from_str(s).ok())?,
            clear: f.opt_parsed(7, "clear", |s| s.parse().ok())?,
            hold_secs: secs(f.int(8, "hold_ms")?),
            repeat_secs: f.opt_int(9, "repeat_ms")?.map(secs),
            severity: f.parsed(10, "severity", Severity::parse)?,
            kind: f.parsed(11, "kind", RuleKind::parse)?,
            silent_secs: f.opt_int(12, "silent_ms")?.map(secs),
            receivers: f.opt_parsed(13, "receivers", |s| serde_json::from_str(s).ok())?,
        },
    })
}

pub(crate) fn alert_row(r: &Row) -> Result<AlertView, DbError> {
    let f = Fields::of(r, "alerts");
    let started = f.int(7, "started_at")?;
    Ok(AlertView {
        alert_id: f.text(0, "alert_id")?,
        rule_id: f.text(1, "rule_id")?,
        gateway: f.text(2, "gateway")?,
        device: f.text(3, "device")?,
        metric: f.text(4, "metric")?,
        kind: f.parsed(10, "kind", RuleKind::parse)?,
        severity: f.parsed(5, "severity", Severity::parse)?,
        status: f.text(6, "status")?,
        started_at_ms: started,
        started_at: crate::clock::rfc3339(started),
        updated_at: crate::clock::rfc3339(f.int(8, "updated_at")?),
        last_value: f.opt_parsed(9, "last_value", |s| s.parse().ok())?,
    })
}

fn rule_params(rule_id: &str, s: &RuleSpec, now: i64) -> Vec<Param> {
    vec![
        rule_id.into(),
        s.name.clone().into(),
        (s.enabled as i64).into(),
        s.gateway.clone().into(),
        s.device.clone().into(),
        s.metric.clone().into(),
        serde_json::to_string(&s.condition)
            .unwrap_or_default()
            .into(),
        s.clear.map(|c| c.to_string()).into(),
        (s.hold_secs as i64 * 1_000).into(),
        s.repeat_secs.map(|r| r as i64 * 1_000).into(),
        s.severity.as_str().into(),
        now.into(),
        s.kind.as_str().into(),
        s.silent_secs.map(|v| v as i64 * 1_000).into(),
        s.receivers
            .as_ref()
            .map(|r| serde_json::to_string(r).unwrap_or_default())
            .into(),
    ]
}

fn bump_rules() -> Step {
    Step::execute(
        "UPDATE alert_clock SET rules = rules + 1 WHERE id = 1",
        vec![],
    )
}

impl AlertRecords {
    pub fn new(db: Arc<RecordsDb>) -> AlertRecords {
        AlertRecords { db }
    }

    pub async fn insert_rule(&self, rule_id: &str, s: &RuleSpec, now: i64) -> Result<(), DbError> {
        self.db
            .transaction(vec![
                bump_rules(),
                Step::execute(
                    format!(
                        "INSERT INTO alert_rules ({RULE_COLUMNS}, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13, $14, $15, \
                         $12, $12)"
                    ),
                    rule_params(rule_id, s, now),
                ),
            ])
            .await
            .map(|_| ())
    }

    pub async fn update_rule(
        &self,
        rule_id: &str,
        s: &RuleSpec,
        now: i64,
    ) -> Result<bool, DbError> {
        let r = self
            .db
            .transaction(vec![
                bump_rules(),
                Step::guarded(
                    "UPDATE alert_rules SET name = $2, enabled = $3, gateway = $4, device = $5, \
                     metric = $6, condition = $7, clear = $8, hold_ms = $9, repeat_ms = $10, \
                     severity = $11, updated_at = $12, kind = $13, silent_ms = $14, \
                     receivers = $15 WHERE rule_id = $1",
                    rule_params(rule_id, s, now),
                ),
            ])
            .await?;
        Ok(matches!(r, Committed::Done(_)))
    }

    /// Deletes a rule; its open alerts are resolved (transition `rule_deleted`, not notified)
    /// and its stored states go inactive, in the same transaction.
    pub async fn delete_rule(&self, rule_id: &str, now: i64) -> Result<bool, DbError> {
        let r = self
            .db
            .transaction(vec![
                bump_rules(),
                Step::guarded(
                    "DELETE FROM alert_rules WHERE rule_id = $1",
                    vec![rule_id.into()],
                ),
                Step::execute(
                    "INSERT INTO alert_transitions (alert_id, at, transition, value) \
                     SELECT alert_id, $2, 'rule_deleted', NULL FROM alerts \
                     WHERE rule_id = $1 AND status <> 'resolved'",
                    vec![rule_id.into(), now.into()],
                ),
                Step::execute(
                    "UPDATE alerts SET status = 'resolved', updated_at = $2 \
                     WHERE rule_id = $1 AND status <> 'resolved'",
                    vec![rule_id.into(), now.into()],
                ),
                Step::execute(
                    "UPDATE alert_clock SET states = states + 1 WHERE id = 1",
                    vec![],
                ),
                Step::execute(
                    "UPDATE alert_states SET state = 'inactive', alert_id = NULL, \
                     since_ms = NULL, notified_ms = NULL, \
                     version = (SELECT states FROM alert_clock WHERE id = 1) \
                     WHERE rule_id = $1 AND state <> 'inactive'",
                    vec![rule_id.into()],
                ),
            ])
            .await?;
        Ok(matches!(r, Committed::Done(_)))
    }

    /// The versions of the rules and of the alert states (`alert_clock`).
    pub async fn clock(&self) -> Result<(i64, i64), DbError> {
        let rows = self
            .db
            .query("SELECT rules, states FROM alert_clock WHERE id = 1", vec![])
            .await?;
        let r = rows.first().ok_or(DbError::Column {
            table: "alert_clock",
            column: "id",
            expected: "the row with id 1",
            found: "no row",
        })?;
        let f = Fields::of(r, "alert_clock");
        Ok((f.int(0, "rules")?, f.int(1, "states")?))
    }

    pub async fn rules(&self) -> Result<Vec<StoredRule>, DbError> {
        let rows = self
            .db
            .query(
                &format!("SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY created_at, rule_id"),
                vec![],
            )
            .await?;
        rows.iter().map(rule_row).collect()
    }

    pub async fn alert(&self, alert_id: &str) -> Result<Option<AlertView>, DbError> {
        let rows = self
            .db
            .query(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE alert_id = $1"),
                vec![alert_id.into()],
            )
            .await?;
        rows.first().map(alert_row).transpose()
    }

    /// Alerts, newest first, filtered by what is given.
    pub async fn alerts(
        &self,
        status: Option<&str>,
        severity: Option<Severity>,
        gateway: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<AlertView>, DbError> {
        let rows = self
            .db
            .query(
                &format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts \
                     WHERE (CAST($1 AS text) IS NULL OR status = CAST($1 AS text)) \
                     AND (CAST($2 AS text) IS NULL OR severity = CAST($2 AS text)) \
                     AND (CAST($3 AS text) IS NULL OR gateway = CAST($3 AS text)) \
                     ORDER BY started_at DESC, alert_id DESC LIMIT $4 OFFSET $5"
                ),
                vec![
                    status.map(str::to_string).into(),
                    severity.map(|s| s.as_str().to_string()).into(),
                    gateway.map(str::to_string).into(),
                    limit.into(),
                    offset.into(),
                ],
            )
            .await?;
        rows.iter().map(alert_row).collect()
    }

    /// The transitions of an alert, oldest first: (time, transition).
    pub async fn transitions(&self, alert_id: &str) -> Result<Vec<(i64, String)>, DbError> {
        let rows = self
            .db
            .query(
                "SELECT at, transition FROM alert_transitions WHERE alert_id = $1 ORDER BY at, transition",
                vec![alert_id.into()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let f = Fields::of(r, "alert_transitions");
                Ok((f.int(0, "at")?, f.text(1, "transition")?))
            })
            .collect()
    }
}
