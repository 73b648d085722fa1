//! A rule as an admin writes it over the API, and its validation. Every refusal names the field
//! at fault (`condition.threshold`, `silent_secs`, `receivers[1]`), so a client can point at it.

use super::rule::{Condition, RuleError, ValueRule};

/// How loud an alert is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
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

/// What a rule watches.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// The values of each matching series: `condition`, `clear`, `hold_secs`. Evaluated as
    /// readings are committed.
    #[default]
    Value,
    /// No reading from a matching series for `silent_secs`. Checked on a timer; resolves when
    /// a reading newer than that arrives.
    NoData,
    /// A matching gateway offline (its will or an offline status) for `silent_secs`: pending
    /// while it is offline for less. Checked on a timer; resolves on its next birth.
    GatewayOffline,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Value => "value",
            RuleKind::NoData => "no_data",
            RuleKind::GatewayOffline => "gateway_offline",
        }
    }
    pub fn parse(s: &str) -> Option<RuleKind> {
        [RuleKind::Value, RuleKind::NoData, RuleKind::GatewayOffline]
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
    /// value (when absent), no_data or gateway_offline.
    #[serde(default)]
    pub kind: RuleKind,
    /// Scope; each part absent matches every value. A gateway_offline rule takes only
    /// `gateway`.
    pub gateway: Option<String>,
    pub device: Option<String>,
    pub metric: Option<String>,
    /// Value rules only: `{"op": "gt", "threshold": 80}`; ops gt, ge, lt, le, eq, ne, and
    /// `{"op": "outside_range", "low": 10, "high": 20}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub condition: Option<Condition>,
    /// Value rules only: the clear threshold (hysteresis); for outside_range a margin inside
    /// the range.
    #[serde(default)]
    pub clear: Option<f64>,
    /// Value rules only: seconds the condition must hold before the alert fires.
    #[serde(default)]
    pub hold_secs: u32,
    /// no_data and gateway_offline rules: seconds of silence (no reading; offline) before the
    /// alert fires.
    #[serde(default)]
    pub silent_secs: Option<u32>,
    /// Seconds between notifications while the alert stays active and unacknowledged; absent:
    /// notify once.
    #[serde(default)]
    pub repeat_secs: Option<u32>,
    pub severity: Severity,
    /// Names of receivers from the configuration's `[notifications]` to notify; absent: every
    /// configured receiver whose `min_severity` this rule's severity reaches; `[]`: none.
    #[serde(default)]
    pub receivers: Option<Vec<String>>,
}

fn enabled_default() -> bool {
    true
}

/// A refused rule: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    pub field: String,
    pub reason: String,
}

fn refuse(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        reason: reason.into(),
    }
}

impl RuleSpec {
    /// The value rule, for value rules (`None` for the other kinds).
    pub fn value_rule(&self) -> Option<ValueRule> {
        Some(ValueRule {
            condition: self.condition?,
            clear: self.clear,
            hold_ms: self.hold_secs as i64 * 1_000,
            repeat_ms: self.repeat_ms(),
        })
    }

    pub fn repeat_ms(&self) -> Option<i64> {
        self.repeat_secs.map(|s| s as i64 * 1_000)
    }

    pub fn silent_ms(&self) -> i64 {
        self.silent_secs.unwrap_or(0) as i64 * 1_000
    }

    pub fn matches(&self, gateway: &str, device: &str, metric: &str) -> bool {
        let part = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        part(&self.gateway, gateway) && part(&self.device, device) && part(&self.metric, metric)
    }

    /// Refuses a rule that could not work: a missing or contradictory field, a threshold that
    /// could never resolve, a receiver the configuration does not name.
    pub fn validate(&self, receivers: &[String]) -> Result<(), SpecError> {
        let name = self.name.trim();
        if name.is_empty() || self.name.chars().count() > 200 {
            return Err(refuse("name", "must be 1 to 200 characters"));
        }
        for (field, part) in [
            ("gateway", &self.gateway),
            ("device", &self.device),
            ("metric", &self.metric),
        ] {
            if let Some(p) = part {
                fieldlink_protocol::Ident::validate(p).map_err(|e| refuse(field, e.to_string()))?;
            }
        }
        if self.repeat_secs == Some(0) {
            return Err(refuse(
                "repeat_secs",
                "must be at least 1 (leave it out to notify once)",
            ));
        }
        match self.kind {
            RuleKind::Value => {
                if self.silent_secs.is_some() {
                    return Err(refuse(
                        "silent_secs",
                        "only no_data and gateway_offline rules take it",
                    ));
                }
                let v = self.value_rule().ok_or_else(|| {
                    refuse(
                        "condition",
                        "required for a value rule, e.g. {\"op\": \"gt\", \"threshold\": 80}",
                    )
                })?;
                v.validate().map_err(|e| match e {
                    RuleError::NotFinite("clear") => refuse("clear", "must be finite"),
                    RuleError::NotFinite(what) => {
                        refuse(format!("condition.{what}"), "must be finite")
                    }
                    RuleError::ClearOnWrongSide(why) => refuse("clear", why),
                    RuleError::EmptyRange => refuse("condition.low", "must be below high"),
                })?;
            }
            kind @ (RuleKind::NoData | RuleKind::GatewayOffline) => {
                let k = kind.as_str();
                match self.silent_secs {
                    None => {
                        return Err(refuse(
                            "silent_secs",
                            format!("required for a {k} rule (seconds of silence before it fires)"),
                        ))
                    }
                    Some(0) => return Err(refuse("silent_secs", "must be at least 1")),
                    Some(_) => {}
                }
                if self.condition.is_some() {
                    return Err(refuse("condition", format!("a {k} rule takes none")));
                }
                if self.clear.is_some() {
                    return Err(refuse("clear", format!("a {k} rule takes none")));
                }
                if self.hold_secs != 0 {
                    return Err(refuse(
                        "hold_secs",
                        format!("a {k} rule takes none; silent_secs is how long it waits"),
                    ));
                }
                if kind == RuleKind::GatewayOffline {
                    for (field, part) in [("device", &self.device), ("metric", &self.metric)] {
                        if part.is_some() {
                            return Err(refuse(
                                field,
                                "a gateway_offline rule is about gateways: give only gateway",
                            ));
                        }
                    }
                }
            }
        }
        if let Some(names) = &self.receivers {
            for (i, n) in names.iter().enumerate() {
                if !receivers.iter().any(|r| r == n) {
                    let known = if receivers.is_empty() {
                        "none are configured".to_string()
                    } else {
                        format!("configured: {}", receivers.join(", "))
                    };
                    return Err(refuse(
                        format!("receivers[{i}]"),
                        format!("no receiver named {n:?} ({known})"),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> RuleSpec {
        serde_json::from_value(json).unwrap()
    }

    fn field_of(s: &RuleSpec) -> String {
        s.validate(&["ops".to_string()]).unwrap_err().field
    }

    #[test]
    fn errors_name_the_field() {
        let base = serde_json::json!({"name": "hot", "severity": "warning",
            "condition": {"op": "gt", "threshold": 80.0}, "clear": 75.0});
        assert!(spec(base.clone()).validate(&[]).is_ok());
        let cases = [
            (serde_json::json!({"clear": 85.0}), "clear"),
            (serde_json::json!({"name": " "}), "name"),
            (serde_json::json!({"condition": null}), "condition"),
            (
                serde_json::json!({"condition": {"op": "outside_range", "low": 5.0, "high": 1.0}, "clear": null}),
                "condition.low",
            ),
            (serde_json::json!({"silent_secs": 5}), "silent_secs"),
            (serde_json::json!({"repeat_secs": 0}), "repeat_secs"),
            (serde_json::json!({"gateway": "a/b"}), "gateway"),
            (
                serde_json::json!({"receivers": ["ops", "pager"]}),
                "receivers[1]",
            ),
            (
                serde_json::json!({"kind": "no_data", "condition": null, "clear": null}),
                "silent_secs",
            ),
            (
                serde_json::json!({"kind": "no_data", "silent_secs": 30}),
                "condition",
            ),
            (
                serde_json::json!({"kind": "gateway_offline", "silent_secs": 30, "condition": null,
                    "clear": null, "device": "pump"}),
                "device",
            ),
            (
                serde_json::json!({"kind": "gateway_offline", "silent_secs": 30, "condition": null,
                    "clear": null, "hold_secs": 3}),
                "hold_secs",
            ),
        ];
        for (patch, field) in cases {
            let mut j = base.clone();
            for (k, v) in patch.as_object().unwrap() {
                j[k] = v.clone();
            }
            assert_eq!(field_of(&spec(j.clone())), field, "{j}");
        }
        let offline = spec(
            serde_json::json!({"name": "gw down", "severity": "critical",
            "kind": "gateway_offline", "gateway": "gw-1", "silent_secs": 60, "receivers": ["ops"]}),
        );
        assert!(offline.validate(&["ops".to_string()]).is_ok());
        assert!(offline.value_rule().is_none());
    }

    #[test]
    fn the_earlier_rule_shape_still_reads() {
        let s = spec(
            serde_json::json!({"name": "x", "gateway": null, "device": null,
            "metric": "temp", "condition": {"op": "lt", "threshold": 3.0}, "clear": null,
            "hold_secs": 0, "repeat_secs": null, "severity": "info", "enabled": true}),
        );
        assert_eq!(s.kind, RuleKind::Value);
        assert_eq!(s.receivers, None);
        assert!(s.validate(&[]).is_ok());
    }
}
