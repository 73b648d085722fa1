//! Which receivers hear of a transition, and what they are sent.

use super::{AlertView, RuleSpec, Severity};
use crate::clock::rfc3339;

/// The body of every notification: the JSON a webhook receives, and what an email is written
/// from. `notification_id` is the same on every attempt, so a receiver can drop repeats.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct NotificationBody {
    pub notification_id: String,
    /// fired, repeated or resolved.
    pub event: String,
    /// A resolve made by an operator rather than by the condition clearing.
    pub by_hand: bool,
    /// When the transition was stored, RFC 3339.
    pub at: String,
    pub receiver: String,
    pub rule_id: String,
    pub rule_name: String,
    /// The alert after the transition.
    pub alert: AlertView,
}

/// The configured receivers, by name and least severity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    receivers: Vec<(String, Severity)>,
}

impl Routing {
    pub fn new(receivers: Vec<(String, Severity)>) -> Routing {
        Routing { receivers }
    }

    pub fn names(&self) -> Vec<String> {
        self.receivers.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The receivers of a rule's notifications: those it names (whatever their least
    /// severity), or, when it names none, every receiver its severity reaches.
    pub fn receivers_of(&self, rule: &RuleSpec) -> Vec<String> {
        match &rule.receivers {
            Some(names) => self
                .receivers
                .iter()
                .filter(|(n, _)| names.contains(n))
                .map(|(n, _)| n.clone())
                .collect(),
            None => self
                .receivers
                .iter()
                .filter(|(_, min)| rule.severity >= *min)
                .map(|(n, _)| n.clone())
                .collect(),
        }
    }

    /// (notification id, receiver, JSON body) for each receiver of the rule.
    pub fn notifications(
        &self,
        rule: &RuleSpec,
        rule_id: &str,
        alert: &AlertView,
        event: &str,
        by_hand: bool,
        now_ms: i64,
    ) -> Vec<(String, String, String)> {
        self.receivers_of(rule)
            .into_iter()
            .map(|receiver| {
                let id = crate::auth::random_hex(8)
                    .map(|h| format!("n-{h}"))
                    .unwrap_or_else(|_| format!("n-{}-{receiver}-{now_ms}", alert.alert_id));
                let body = NotificationBody {
                    notification_id: id.clone(),
                    event: event.to_string(),
                    by_hand,
                    at: rfc3339(now_ms),
                    receiver: receiver.clone(),
                    rule_id: rule_id.to_string(),
                    rule_name: rule.name.clone(),
                    alert: alert.clone(),
                };
                let json = serde_json::to_string(&body).unwrap_or_default();
                (id, receiver, json)
            })
            .collect()
    }
}

impl NotificationBody {
    /// An email's subject line.
    pub fn subject(&self) -> String {
        let a = &self.alert;
        let what = match self.event.as_str() {
            "fired" => "FIRING",
            "repeated" => "STILL FIRING",
            _ => "RESOLVED",
        };
        format!(
            "[fieldlink] {what} {}: {} on {}",
            a.severity.as_str(),
            self.rule_name,
            subject_of(a)
        )
    }

    /// An email's plain-text body.
    pub fn text(&self) -> String {
        let a = &self.alert;
        let mut t = format!(
            "Rule:     {} ({})\nEvent:    {}{}\nSeverity: {}\nSubject:  {}\nStatus:   {}\nStarted:  {}\nAt:       {}\n",
            self.rule_name,
            self.rule_id,
            self.event,
            if self.by_hand { " (by an operator)" } else { "" },
            a.severity.as_str(),
            subject_of(a),
            a.status,
            a.started_at,
            self.at
        );
        if let Some(v) = a.last_value {
            t.push_str(&format!("Value:    {v}\n"));
        }
        t.push_str(&format!(
            "Alert:    {}\nNotification: {}\n",
            a.alert_id, self.notification_id
        ));
        t
    }
}

fn subject_of(a: &AlertView) -> String {
    if a.device.is_empty() && a.metric.is_empty() {
        format!("gateway {}", a.gateway)
    } else {
        format!("{}/{}/{}", a.gateway, a.device, a.metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(severity: &str, receivers: Option<&[&str]>) -> RuleSpec {
        let mut j = serde_json::json!({"name": "r", "severity": severity,
            "condition": {"op": "gt", "threshold": 1.0}});
        if let Some(r) = receivers {
            j["receivers"] = serde_json::json!(r);
        }
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn a_rule_reaches_named_receivers_or_those_its_severity_reaches() {
        let r = Routing::new(vec![
            ("ops".into(), Severity::Info),
            ("pager".into(), Severity::Critical),
        ]);
        assert_eq!(r.receivers_of(&rule("warning", None)), ["ops"]);
        assert_eq!(r.receivers_of(&rule("critical", None)), ["ops", "pager"]);
        assert_eq!(r.receivers_of(&rule("info", Some(&["pager"]))), ["pager"]);
        assert!(r.receivers_of(&rule("critical", Some(&[]))).is_empty());
    }
}
