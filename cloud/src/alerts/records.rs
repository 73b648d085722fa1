//! `alert_rules`, `alerts` and `alert_transitions` on the API's connection.

use std::sync::Arc;

use super::rule::{Condition, ValueRule};
use crate::api::db::{ApiDb, DbError, Param, Row};

/// How loud an alert is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// A rule as written by an admin.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RuleSpec {
    pub name: String,
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// Scope; each part absent matches every value.
    pub gateway: Option<String>,
    pub device: Option<String>,
    pub metric: Option<String>,
    /// `{"op": "gt", "threshold": 80}`; ops gt, ge, lt, le, eq, ne, and
    /// `{"op": "outside_range", "low": 10, "high": 20}`.
    #[schema(value_type = Object)]
    pub condition: Condition,
    /// The clear threshold (hysteresis); for outside_range a margin inside the range.
    pub clear: Option<f64>,
    /// Seconds the condition must hold before the alert fires.
    #[serde(default)]
    pub hold_secs: u32,
    /// Seconds between notifications while the alert stays active and unacknowledged.
    pub repeat_secs: Option<u32>,
    pub severity: Severity,
}

fn enabled_default() -> bool {
    true
}

impl RuleSpec {
    pub fn value_rule(&self) -> ValueRule {
        ValueRule {
            condition: self.condition,
            clear: self.clear,
            hold_ms: self.hold_secs as i64 * 1_000,
            repeat_ms: self.repeat_secs.map(|s| s as i64 * 1_000),
        }
    }

    pub fn matches(&self, gateway: &str, device: &str, metric: &str) -> bool {
        let part = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        part(&self.gateway, gateway) && part(&self.device, device) && part(&self.metric, metric)
    }
}

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
    db: Arc<ApiDb>,
}

const RULE_COLUMNS: &str = "rule_id, name, enabled, gateway, device, metric, condition, clear, \
                            hold_ms, repeat_ms, severity";
const ALERT_COLUMNS: &str =
    "alert_id, rule_id, gateway, device, metric, severity, status, started_at, updated_at, last_value";

fn bad(what: &str) -> DbError {
    DbError::ColumnType(format!("alert_rules.{what}"))
}

fn rule_row(r: &Row) -> Result<StoredRule, DbError> {
    Ok(StoredRule {
        rule_id: r[0].text().unwrap_or_default(),
        rule: RuleSpec {
            name: r[1].text().unwrap_or_default(),
            enabled: r[2].int() == Some(1),
            gateway: r[3].text(),
            device: r[4].text(),
            metric: r[5].text(),
            condition: serde_json::from_str(&r[6].text().unwrap_or_default())
                .map_err(|_| bad("condition"))?,
            clear: r[7].text().and_then(|s| s.parse().ok()),
            hold_secs: (r[8].int().unwrap_or(0) / 1_000) as u32,
            repeat_secs: r[9].int().map(|ms| (ms / 1_000) as u32),
            severity: Severity::parse(&r[10].text().unwrap_or_default())
                .ok_or_else(|| bad("severity"))?,
        },
    })
}

fn alert_row(r: &Row) -> AlertView {
    let started = r[7].int().unwrap_or(0);
    AlertView {
        alert_id: r[0].text().unwrap_or_default(),
        rule_id: r[1].text().unwrap_or_default(),
        gateway: r[2].text().unwrap_or_default(),
        device: r[3].text().unwrap_or_default(),
        metric: r[4].text().unwrap_or_default(),
        severity: Severity::parse(&r[5].text().unwrap_or_default()).unwrap_or(Severity::Info),
        status: r[6].text().unwrap_or_default(),
        started_at_ms: started,
        started_at: crate::api::time::rfc3339(started),
        updated_at: crate::api::time::rfc3339(r[8].int().unwrap_or(0)),
        last_value: r[9].text().and_then(|s| s.parse().ok()),
    }
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
    ]
}

impl AlertRecords {
    pub fn new(db: Arc<ApiDb>) -> AlertRecords {
        AlertRecords { db }
    }

    pub async fn insert_rule(&self, rule_id: &str, s: &RuleSpec, now: i64) -> Result<(), DbError> {
        self.db
            .execute(
                &format!(
                    "INSERT INTO alert_rules ({RULE_COLUMNS}, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)"
                ),
                rule_params(rule_id, s, now),
            )
            .await
            .map(|_| ())
    }

    pub async fn update_rule(
        &self,
        rule_id: &str,
        s: &RuleSpec,
        now: i64,
    ) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(
                "UPDATE alert_rules SET name = $2, enabled = $3, gateway = $4, device = $5, \
                 metric = $6, condition = $7, clear = $8, hold_ms = $9, repeat_ms = $10, \
                 severity = $11, updated_at = $12 WHERE rule_id = $1",
                rule_params(rule_id, s, now),
            )
            .await?;
        Ok(n > 0)
    }

    pub async fn delete_rule(&self, rule_id: &str) -> Result<bool, DbError> {
        Ok(self
            .db
            .execute(
                "DELETE FROM alert_rules WHERE rule_id = $1",
                vec![rule_id.into()],
            )
            .await?
            > 0)
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
        Ok(rows.first().map(alert_row))
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
        Ok(rows.iter().map(alert_row).collect())
    }

    /// Alerts not yet resolved, to rebuild the evaluator's state at start.
    pub async fn open_alerts(&self) -> Result<Vec<AlertView>, DbError> {
        let rows = self
            .db
            .query(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE status <> 'resolved'"),
                vec![],
            )
            .await?;
        Ok(rows.iter().map(alert_row).collect())
    }

    /// Opens an alert; false when another evaluator already holds one open for this rule and
    /// series (the partial unique index).
    pub async fn open(&self, a: &AlertView, now: i64) -> Result<bool, DbError> {
        let r = self
            .db
            .execute(
                &format!(
                    "INSERT INTO alerts ({ALERT_COLUMNS}, notified_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10)"
                ),
                vec![
                    a.alert_id.clone().into(),
                    a.rule_id.clone().into(),
                    a.gateway.clone().into(),
                    a.device.clone().into(),
                    a.metric.clone().into(),
                    a.severity.as_str().into(),
                    a.status.clone().into(),
                    now.into(),
                    a.last_value.map(|v| v.to_string()).into(),
                    (a.status == "active").then_some(now).into(),
                ],
            )
            .await;
        match r {
            Ok(_) => {
                self.transition(&a.alert_id, &a.status, a.last_value, now)
                    .await?;
                Ok(true)
            }
            Err(e) if e.is_constraint() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Moves an open alert to `status` and records `transition`.
    pub async fn set_status(
        &self,
        alert_id: &str,
        status: &str,
        transition: &str,
        value: Option<f64>,
        now: i64,
    ) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(
                "UPDATE alerts SET status = $1, updated_at = $2, \
                 last_value = COALESCE($3, last_value) WHERE alert_id = $4 AND status <> 'resolved'",
                vec![
                    status.into(),
                    now.into(),
                    value.map(|v| v.to_string()).into(),
                    alert_id.into(),
                ],
            )
            .await?;
        if n > 0 {
            self.transition(alert_id, transition, value, now).await?;
        }
        Ok(n > 0)
    }

    async fn transition(
        &self,
        alert_id: &str,
        transition: &str,
        value: Option<f64>,
        now: i64,
    ) -> Result<(), DbError> {
        self.db
            .execute(
                "INSERT INTO alert_transitions (alert_id, at, transition, value) VALUES ($1, $2, $3, $4)",
                vec![
                    alert_id.into(),
                    now.into(),
                    transition.into(),
                    value.map(|v| v.to_string()).into(),
                ],
            )
            .await
            .map(|_| ())
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
        Ok(rows
            .iter()
            .map(|r| (r[0].int().unwrap_or(0), r[1].text().unwrap_or_default()))
            .collect())
    }
}
