//! The evaluator: value rules on ingest's committed batches (never on ingest's own path, so it
//! cannot slow it), no-data and gateway-offline rules on a timer ([`super::silence`]), and
//! operators' acknowledge and resolve. Every transition is stored through
//! [`StateStore::commit`] and then broadcast as the stored [`AlertView`].
//!
//! Several instances may evaluate the same rules: a shared subscription splits one gateway's
//! messages among them, and each runs the timer. They agree through the stored state: before
//! evaluating, an instance reads what changed since the version it last saw (one query of
//! `alert_clock`, and the changed rows if any); every transition is a compare-and-set on the
//! (rule, subject) row; one that loses reloads the row and evaluates the same observation
//! again. So a transition is stored and notified once, whichever instance sees the value, and
//! a restart resumes from the stored rows.
//!
//! In memory: the rules, and the rows that are not inactive (an absent row is inactive). One
//! async lock covers syncing and applying, so this instance's own changes and what it reads
//! back never race. Only transitions touch the database: a reading that changes nothing costs
//! a map lookup.
//!
//! Timing: value rules use the readings' own timestamps, so a replayed backlog is judged by
//! when the values were measured, and a reading older than the one behind the last stored
//! change of its (rule, series) is not evaluated (a late replay cannot reopen or resolve an
//! alert). Timer rules use this instance's clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use super::machine::{AlertMachine, AlertState, Transition};
use super::records::{AlertRecords, AlertView, RuleKind, RuleSpec, StoredRule};
use super::routing::Routing;
use super::rule::Signal;
use super::state::{Change, StateKey, StateStore, StoredState, Subject};
use crate::clock::{now_ms, rfc3339};
use crate::records::{DbError, RecordsDb};
use crate::store::WriteBatch;
use fieldlink_protocol::Value;

/// A compare-and-set lost this many times in a row gives the observation up (logged).
const MAX_ATTEMPTS: usize = 8;

struct Rules {
    version: i64,
    all: Vec<StoredRule>,
}

struct Cache {
    /// Every change up to this version is reflected in `open`.
    version: i64,
    open: HashMap<StateKey, StoredState>,
}

struct Inner {
    records: AlertRecords,
    states: StateStore,
    rules: Mutex<Rules>,
    cache: tokio::sync::Mutex<Cache>,
    updates: broadcast::Sender<AlertView>,
    routing: Routing,
    /// Told when a transition queued notifications.
    outbox: Arc<Notify>,
}

/// The running evaluator. Cheap to clone.
#[derive(Clone)]
pub struct AlertEngine {
    inner: Arc<Inner>,
}

/// What was seen.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Observed {
    /// A signal of a condition that has held since `since_ms` (the observation's own time
    /// unless known earlier).
    Signal {
        signal: Signal,
        since_ms: i64,
    },
    Acknowledge,
    Resolve,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Observation {
    pub what: Observed,
    pub at_ms: i64,
    /// A reading: older than the stored state's last observation, it is not evaluated.
    pub ordered: bool,
    pub value: Option<f64>,
}

fn timing(rule: &RuleSpec) -> (i64, Option<i64>) {
    match rule.kind {
        RuleKind::Value => (rule.hold_secs as i64 * 1_000, rule.repeat_ms()),
        RuleKind::NoData => (0, rule.repeat_ms()),
        RuleKind::GatewayOffline => (rule.silent_ms(), rule.repeat_ms()),
    }
}

impl AlertEngine {
    /// Loads the rules and the open states, with no notification receivers.
    pub async fn load(db: Arc<RecordsDb>) -> Result<AlertEngine, DbError> {
        AlertEngine::load_with(db, Routing::default(), Arc::new(Notify::new())).await
    }

    /// Loads the rules and the open states; notifications go to `routing`'s receivers and
    /// `outbox` is told when some were queued.
    pub async fn load_with(
        db: Arc<RecordsDb>,
        routing: Routing,
        outbox: Arc<Notify>,
    ) -> Result<AlertEngine, DbError> {
        let records = AlertRecords::new(db.clone());
        let states = StateStore::new(db);
        let (rules_version, states_version) = records.clock().await?;
        let all = records.rules().await?;
        let open = states.open_states().await?.into_iter().collect();
        let (updates, _) = broadcast::channel(1_024);
        Ok(AlertEngine {
            inner: Arc::new(Inner {
                records,
                states,
                rules: Mutex::new(Rules {
                    version: rules_version,
                    all,
                }),
                cache: tokio::sync::Mutex::new(Cache {
                    version: states_version,
                    open,
                }),
                updates,
                routing,
                outbox,
            }),
        })
    }

    pub fn records(&self) -> &AlertRecords {
        &self.inner.records
    }

    /// The configured receivers' names (what a rule's `receivers` may name).
    pub fn receiver_names(&self) -> Vec<String> {
        self.inner.routing.names()
    }

    /// Every alert change, as stored.
    pub fn subscribe(&self) -> broadcast::Receiver<AlertView> {
        self.inner.updates.subscribe()
    }

    /// Re-reads the rules after a change through the API.
    pub async fn reload_rules(&self) -> Result<(), DbError> {
        let (version, _) = self.inner.records.clock().await?;
        let all = self.inner.records.rules().await?;
        *self.inner.rules.lock().expect("rules lock") = Rules { version, all };
        Ok(())
    }

    pub(crate) fn rules_where(&self, keep: impl Fn(&RuleSpec) -> bool) -> Vec<StoredRule> {
        self.inner
            .rules
            .lock()
            .expect("rules lock")
            .all
            .iter()
            .filter(|r| r.rule.enabled && keep(&r.rule))
            .cloned()
            .collect()
    }

    /// Brings the rules and the open states up to what the database holds.
    async fn sync(&self, cache: &mut Cache) -> Result<(), DbError> {
        let (rules_version, states_version) = self.inner.records.clock().await?;
        let known = self.inner.rules.lock().expect("rules lock").version;
        if rules_version != known {
            let all = self.inner.records.rules().await?;
            *self.inner.rules.lock().expect("rules lock") = Rules {
                version: rules_version,
                all,
            };
        }
        if states_version > cache.version {
            let mut seen = states_version;
            for (key, st) in self.inner.states.changed_since(cache.version).await? {
                seen = seen.max(st.version);
                remember(cache, key, st);
            }
            cache.version = seen;
        }
        Ok(())
    }

    /// Evaluates committed batches until `stop` fires. Batches that queued up while one was
    /// evaluated are taken together, with one sync.
    pub async fn run(
        self,
        mut batches: broadcast::Receiver<Arc<WriteBatch>>,
        stop: CancellationToken,
    ) {
        loop {
            let first = tokio::select! {
                _ = stop.cancelled() => return,
                b = batches.recv() => b,
            };
            let mut taken = Vec::new();
            let mut next = first;
            loop {
                match next {
                    Ok(b) => taken.push(b),
                    Err(broadcast::error::RecvError::Lagged(n)) => tracing::warn!(
                        batches = n,
                        "alert evaluation fell behind ingest; those batches were not evaluated"
                    ),
                    Err(broadcast::error::RecvError::Closed) => {
                        self.evaluate_all(&taken).await;
                        return;
                    }
                }
                next = match batches.try_recv() {
                    Ok(b) => Ok(b),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        Err(broadcast::error::RecvError::Lagged(n))
                    }
                    Err(broadcast::error::TryRecvError::Closed) => {
                        Err(broadcast::error::RecvError::Closed)
                    }
                    Err(broadcast::error::TryRecvError::Empty) => break,
                };
            }
            self.evaluate_all(&taken).await;
        }
    }

    /// Evaluates one committed batch.
    pub async fn evaluate(&self, batch: &WriteBatch) {
        self.evaluate_refs(&[batch]).await
    }

    async fn evaluate_all(&self, batches: &[Arc<WriteBatch>]) {
        let refs: Vec<&WriteBatch> = batches.iter().map(|b| b.as_ref()).collect();
        self.evaluate_refs(&refs).await
    }

    async fn evaluate_refs(&self, batches: &[&WriteBatch]) {
        if batches.iter().all(|b| b.points.is_empty())
            || self.rules_where(|r| r.kind == RuleKind::Value).is_empty()
        {
            return;
        }
        let mut cache = self.inner.cache.lock().await;
        if let Err(e) = self.sync(&mut cache).await {
            tracing::warn!(error = ?e.to_string(), "could not read the shared alert state; evaluating on what this instance knows");
        }
        let rules = self.rules_where(|r| r.kind == RuleKind::Value);
        for batch in batches {
            for p in &batch.points {
                let Value::Number(v) = p.value else { continue };
                let k = &p.key;
                for rule in &rules {
                    if !rule
                        .rule
                        .matches(k.gateway.as_str(), k.device.as_str(), k.metric.as_str())
                    {
                        continue;
                    }
                    let Some(vr) = rule.rule.value_rule() else {
                        continue;
                    };
                    let subject = Subject {
                        gateway: k.gateway.to_string(),
                        device: k.device.to_string(),
                        metric: k.metric.to_string(),
                    };
                    let o = Observation {
                        what: Observed::Signal {
                            signal: vr.signal(v),
                            since_ms: p.ts_ms,
                        },
                        at_ms: p.ts_ms,
                        ordered: true,
                        value: Some(v),
                    };
                    self.logged(self.apply(&mut cache, rule, subject, o).await);
                }
            }
        }
    }

    fn logged(&self, r: Result<Option<AlertView>, DbError>) {
        if let Err(e) = r {
            tracing::warn!(error = ?e.to_string(), "could not store an alert transition");
        }
    }

    /// Applies timer observations (see [`super::silence`]) under one sync.
    pub(crate) async fn apply_checks(&self, checks: Vec<(StoredRule, Subject, Observation)>) {
        if checks.is_empty() {
            return;
        }
        let mut cache = self.inner.cache.lock().await;
        if let Err(e) = self.sync(&mut cache).await {
            tracing::warn!(error = ?e.to_string(), "could not read the shared alert state");
            return;
        }
        for (rule, subject, o) in checks {
            let r = self.apply(&mut cache, &rule, subject, o).await;
            self.logged(r);
        }
    }

    /// Syncs the rules and states (the timer calls this on every tick, so rule changes made
    /// through another instance arrive even while no batch does).
    pub(crate) async fn refresh(&self) -> Result<(), DbError> {
        let mut cache = self.inner.cache.lock().await;
        self.sync(&mut cache).await
    }

    /// An operator acknowledged or resolved an alert. Returns the stored alert, or `None` when
    /// it is not open (or, for acknowledge, not active).
    pub async fn operator(
        &self,
        alert_id: &str,
        resolve: bool,
    ) -> Result<Option<AlertView>, DbError> {
        let mut cache = self.inner.cache.lock().await;
        let Some((key, st)) = self.inner.states.state_of_alert(alert_id).await? else {
            return Ok(None);
        };
        remember(&mut cache, key.clone(), st);
        let mut rule = self.rule(&key.0);
        if rule.is_none() {
            self.sync(&mut cache).await?;
            rule = self.rule(&key.0);
        }
        let Some(rule) = rule else { return Ok(None) };
        let o = Observation {
            what: if resolve {
                Observed::Resolve
            } else {
                Observed::Acknowledge
            },
            at_ms: now_ms(),
            ordered: false,
            value: None,
        };
        self.apply(&mut cache, &rule, key.1, o).await
    }

    fn rule(&self, rule_id: &str) -> Option<StoredRule> {
        self.inner
            .rules
            .lock()
            .expect("rules lock")
            .all
            .iter()
            .find(|r| r.rule_id == rule_id)
            .cloned()
    }

    /// Runs the machine on the state this instance knows; a transition is committed with a
    /// compare-and-set, and on conflict the row is reloaded and the observation evaluated
    /// again. Returns the alert as stored when something changed.
    async fn apply(
        &self,
        cache: &mut Cache,
        rule: &StoredRule,
        subject: Subject,
        o: Observation,
    ) -> Result<Option<AlertView>, DbError> {
        let key: StateKey = (rule.rule_id.clone(), subject);
        let (hold_ms, repeat_ms) = timing(&rule.rule);
        let mut before = cache.open.get(&key).cloned();
        for _ in 0..MAX_ATTEMPTS {
            let (state, observed) = before
                .as_ref()
                .map_or((AlertState::Inactive, i64::MIN), |b| {
                    (b.state, b.observed_ms)
                });
            if o.ordered && o.at_ms < observed {
                return Ok(None);
            }
            let mut m = AlertMachine::new(hold_ms, repeat_ms);
            m.state = state;
            let t = match o.what {
                Observed::Signal { signal, since_ms } => m.observe_since(signal, since_ms, o.at_ms),
                Observed::Acknowledge => m.acknowledge(),
                Observed::Resolve => m.resolve(),
            };
            let Some(t) = t else { return Ok(None) };
            let now = now_ms();
            let opens = state == AlertState::Inactive;
            let view = self
                .view_after(rule, &key, before.as_ref(), opens, m.state, &o, now)
                .await?;
            let notifications = match t.event() {
                Some(event) => self.inner.routing.notifications(
                    &rule.rule,
                    &rule.rule_id,
                    &view,
                    event,
                    matches!(t, Transition::Resolved { by_hand: true }),
                    now,
                ),
                None => Vec::new(),
            };
            let queued = !notifications.is_empty();
            let change = Change {
                key: &key,
                before: before.as_ref(),
                after: m.state,
                transition: t,
                view: &view,
                opens,
                at_ms: o.at_ms,
                ordered: o.ordered,
                now_ms: now,
                notifications,
            };
            match self.inner.states.commit(&change).await? {
                Some(version) => {
                    let observed = before
                        .as_ref()
                        .map_or(o.at_ms, |b| b.observed_ms.max(o.at_ms));
                    let stored = StoredState {
                        version,
                        state: m.state,
                        alert_id: (m.state != AlertState::Inactive).then(|| view.alert_id.clone()),
                        observed_ms: observed,
                    };
                    remember(cache, key, stored);
                    if version == cache.version + 1 {
                        cache.version = version;
                    }
                    tracing::info!(alert = %view.alert_id, rule = %rule.rule_id,
                        gateway = %view.gateway, device = %view.device, metric = %view.metric,
                        transition = t.name(), "alert transition stored");
                    if queued {
                        self.inner.outbox.notify_one();
                    }
                    let _ = self.inner.updates.send(view.clone());
                    return Ok(Some(view));
                }
                None => {
                    before = self.inner.states.state_of(&key).await?;
                    match &before {
                        Some(st) => remember(cache, key.clone(), st.clone()),
                        None => {
                            cache.open.remove(&key);
                        }
                    }
                }
            }
        }
        tracing::warn!(rule = %rule.rule_id, gateway = %key.1.gateway, device = %key.1.device,
            metric = %key.1.metric, "alert state kept changing under this instance; observation given up");
        Ok(None)
    }

    #[allow(clippy::too_many_arguments)]
    async fn view_after(
        &self,
        rule: &StoredRule,
        key: &StateKey,
        before: Option<&StoredState>,
        opens: bool,
        after: AlertState,
        o: &Observation,
        now: i64,
    ) -> Result<AlertView, DbError> {
        let stored = match (opens, before.and_then(|b| b.alert_id.as_deref())) {
            (false, Some(id)) => self.inner.records.alert(id).await?,
            _ => None,
        };
        let mut view = match stored {
            Some(v) => v,
            None => {
                let id = crate::auth::random_hex(8)
                    .map(|h| format!("a-{h}"))
                    .unwrap_or_else(|_| format!("a-{}-{}", rule.rule_id, o.at_ms));
                AlertView {
                    alert_id: id,
                    rule_id: rule.rule_id.clone(),
                    gateway: key.1.gateway.clone(),
                    device: key.1.device.clone(),
                    metric: key.1.metric.clone(),
                    kind: rule.rule.kind,
                    severity: rule.rule.severity,
                    status: String::new(),
                    started_at_ms: o.at_ms,
                    started_at: rfc3339(o.at_ms),
                    updated_at: String::new(),
                    last_value: None,
                }
            }
        };
        view.status = after.status().to_string();
        view.updated_at = rfc3339(now);
        if o.value.is_some() {
            view.last_value = o.value;
        }
        Ok(view)
    }
}

/// Puts a row read or written into the cache, unless the cache already holds a later one.
fn remember(cache: &mut Cache, key: StateKey, st: StoredState) {
    if cache.open.get(&key).is_some_and(|c| c.version > st.version) {
        return;
    }
    if st.state == AlertState::Inactive {
        cache.open.remove(&key);
    } else {
        cache.open.insert(key, st);
    }
}

/// Validates a rule that names no receivers (rules installed outside the API, such as the
/// demo's); the message starts with the field at fault.
pub fn validate(spec: &RuleSpec) -> Result<(), String> {
    spec.validate(&[]).map_err(|e| e.to_string())
}
