//! The evaluator: reads ingest's committed batches (never ingest's own path, so it cannot slow
//! it), runs each enabled value rule's [`AlertMachine`] per matching series, stores every
//! transition, and broadcasts the alert as stored.
//!
//! State: the machines live in memory, rebuilt at start from the open alerts in the database,
//! so a restart continues where the stored transitions left off. Timing uses the readings'
//! own timestamps, so a replayed backlog is judged by when the values were measured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::machine::{AlertMachine, AlertState, Transition};
use super::records::{AlertRecords, AlertView, RuleSpec, StoredRule};
use crate::api::db::{ApiDb, DbError};
use crate::api::time::{now_ms, rfc3339};
use crate::store::{SeriesKey, WriteBatch};
use fieldlink_protocol::Value;

type Key = (String, SeriesKey);

struct Open {
    alert_id: String,
    machine: AlertMachine,
}

struct Inner {
    records: AlertRecords,
    rules: Mutex<Vec<StoredRule>>,
    open: Mutex<HashMap<Key, Open>>,
    updates: broadcast::Sender<AlertView>,
}

/// The running evaluator. Cheap to clone.
#[derive(Clone)]
pub struct AlertEngine {
    inner: Arc<Inner>,
}

fn status_of(state: AlertState) -> &'static str {
    match state {
        AlertState::Inactive => "resolved",
        AlertState::Pending { .. } => "pending",
        AlertState::Active { .. } => "active",
        AlertState::Acknowledged { .. } => "acknowledged",
    }
}

fn transition_name(t: Transition) -> &'static str {
    match t {
        Transition::Pending => "pending",
        Transition::Cancelled => "cancelled",
        Transition::Fired => "active",
        Transition::Repeated => "repeated",
        Transition::Acknowledged => "acknowledged",
        Transition::Resolved { by_hand: false } => "resolved",
        Transition::Resolved { by_hand: true } => "resolved_by_hand",
    }
}

impl AlertEngine {
    /// Loads the rules and open alerts.
    pub async fn load(db: Arc<ApiDb>) -> Result<AlertEngine, DbError> {
        let records = AlertRecords::new(db);
        let rules = records.rules().await?;
        let mut open = HashMap::new();
        for a in records.open_alerts().await? {
            let Some(rule) = rules.iter().find(|r| r.rule_id == a.rule_id) else {
                continue;
            };
            let (Ok(g), Ok(d), Ok(m)) = (
                fieldlink_protocol::Ident::new(&a.gateway),
                fieldlink_protocol::Ident::new(&a.device),
                fieldlink_protocol::Ident::new(&a.metric),
            ) else {
                continue;
            };
            let v = rule.rule.value_rule();
            let mut machine = AlertMachine::new(v.hold_ms, v.repeat_ms);
            machine.state = match a.status.as_str() {
                "pending" => AlertState::Pending {
                    since_ms: a.started_at_ms,
                },
                "acknowledged" => AlertState::Acknowledged {
                    since_ms: a.started_at_ms,
                },
                _ => AlertState::Active {
                    since_ms: a.started_at_ms,
                    notified_ms: a.started_at_ms,
                },
            };
            let key = SeriesKey {
                gateway: g,
                device: d,
                metric: m,
            };
            open.insert(
                (a.rule_id.clone(), key),
                Open {
                    alert_id: a.alert_id,
                    machine,
                },
            );
        }
        let (updates, _) = broadcast::channel(1_024);
        Ok(AlertEngine {
            inner: Arc::new(Inner {
                records,
                rules: Mutex::new(rules),
                open: Mutex::new(open),
                updates,
            }),
        })
    }

    pub fn records(&self) -> &AlertRecords {
        &self.inner.records
    }

    /// Every alert change, as stored.
    pub fn subscribe(&self) -> broadcast::Receiver<AlertView> {
        self.inner.updates.subscribe()
    }

    /// Re-reads the rules after a change through the API.
    pub async fn reload_rules(&self) -> Result<(), DbError> {
        let rules = self.inner.records.rules().await?;
        *self.inner.rules.lock().expect("rules lock") = rules;
        Ok(())
    }

    /// Evaluates committed batches until `stop` fires.
    pub async fn run(
        self,
        mut batches: broadcast::Receiver<Arc<WriteBatch>>,
        stop: CancellationToken,
    ) {
        loop {
            let batch = tokio::select! {
                _ = stop.cancelled() => return,
                b = batches.recv() => b,
            };
            match batch {
                Ok(b) => self.evaluate(&b).await,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        batches = n,
                        "alert evaluation fell behind ingest; those batches were not evaluated"
                    )
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Evaluates one committed batch.
    pub async fn evaluate(&self, batch: &WriteBatch) {
        let rules: Vec<StoredRule> = self
            .inner
            .rules
            .lock()
            .expect("rules lock")
            .iter()
            .filter(|r| r.rule.enabled)
            .cloned()
            .collect();
        if rules.is_empty() {
            return;
        }
        for p in &batch.points {
            let Value::Number(v) = p.value else { continue };
            let k = &p.key;
            for rule in &rules {
                if rule
                    .rule
                    .matches(k.gateway.as_str(), k.device.as_str(), k.metric.as_str())
                {
                    self.observe(rule, (**k).clone(), v, p.ts_ms).await;
                }
            }
        }
    }

    async fn observe(&self, rule: &StoredRule, key: SeriesKey, v: f64, ts_ms: i64) {
        let vr = rule.rule.value_rule();
        let signal = vr.signal(v);
        let map_key = (rule.rule_id.clone(), key.clone());
        let (transition, alert_id, state) = {
            let mut open = self.inner.open.lock().expect("open alerts lock");
            let entry = open.entry(map_key.clone()).or_insert_with(|| Open {
                alert_id: String::new(),
                machine: AlertMachine::new(vr.hold_ms, vr.repeat_ms),
            });
            let Some(t) = entry.machine.observe(signal, ts_ms) else {
                if entry.machine.state == AlertState::Inactive {
                    open.remove(&map_key);
                }
                return;
            };
            if entry.alert_id.is_empty() {
                entry.alert_id = format!(
                    "a-{}",
                    crate::auth::random_hex(8).unwrap_or_else(|_| ts_ms.to_string())
                );
            }
            let out = (t, entry.alert_id.clone(), entry.machine.state);
            if entry.machine.state == AlertState::Inactive {
                open.remove(&map_key);
            }
            out
        };
        let now = now_ms();
        let stored = match transition {
            Transition::Pending | Transition::Fired
                if matches!(state, AlertState::Pending { .. }) || self.is_new(&alert_id).await =>
            {
                let view = AlertView {
                    alert_id: alert_id.clone(),
                    rule_id: rule.rule_id.clone(),
                    gateway: key.gateway.to_string(),
                    device: key.device.to_string(),
                    metric: key.metric.to_string(),
                    severity: rule.rule.severity,
                    status: status_of(state).to_string(),
                    started_at_ms: ts_ms,
                    started_at: rfc3339(ts_ms),
                    updated_at: rfc3339(now),
                    last_value: Some(v),
                };
                self.inner.records.open(&view, now).await.map(|_| ())
            }
            t => self
                .inner
                .records
                .set_status(
                    &alert_id,
                    status_of(state),
                    transition_name(t),
                    Some(v),
                    now,
                )
                .await
                .map(|_| ()),
        };
        if let Err(e) = stored {
            tracing::warn!(error = %e, alert = %alert_id, "could not store an alert transition");
            return;
        }
        self.publish(&alert_id).await;
    }

    async fn is_new(&self, alert_id: &str) -> bool {
        matches!(self.inner.records.alert(alert_id).await, Ok(None))
    }

    async fn publish(&self, alert_id: &str) {
        if let Ok(Some(a)) = self.inner.records.alert(alert_id).await {
            let _ = self.inner.updates.send(a);
        }
    }

    /// An operator acknowledged or resolved an alert. Returns the stored alert, or `None` when
    /// it is not open.
    pub async fn operator(
        &self,
        alert_id: &str,
        resolve: bool,
    ) -> Result<Option<AlertView>, DbError> {
        let t = {
            let mut open = self.inner.open.lock().expect("open alerts lock");
            let key = open
                .iter()
                .find(|(_, o)| o.alert_id == alert_id)
                .map(|(k, _)| k.clone());
            match key {
                Some(k) => {
                    let o = open.get_mut(&k).expect("found above");
                    let t = if resolve {
                        o.machine.resolve()
                    } else {
                        o.machine.acknowledge()
                    };
                    if o.machine.state == AlertState::Inactive {
                        open.remove(&k);
                    }
                    t
                }
                None => None,
            }
        };
        let Some(t) = t else { return Ok(None) };
        let status = if resolve { "resolved" } else { "acknowledged" };
        self.inner
            .records
            .set_status(alert_id, status, transition_name(t), None, now_ms())
            .await?;
        self.publish(alert_id).await;
        self.inner.records.alert(alert_id).await
    }
}

/// Validates a rule spec for the API.
pub fn validate(spec: &RuleSpec) -> Result<(), String> {
    if spec.name.trim().is_empty() || spec.name.chars().count() > 200 {
        return Err("name must be 1 to 200 characters".into());
    }
    spec.value_rule().validate().map_err(|e| e.to_string())
}
