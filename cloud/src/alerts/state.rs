//! The stored state of each (rule, subject), shared by every cloud instance, and the one
//! transaction that changes it.
//!
//! On disk (`alert_states`, `alert_clock`, see migration 0103): a row per (rule, subject) that
//! has ever left inactive, with `version` = the value `alert_clock.states` took in the
//! transaction that last changed it.
//!
//! A change is one transaction, in this order:
//! 1. bump `alert_clock.states` (this row lock also orders every change, so versions commit
//!    in increasing order and "rows above version V" misses nothing committed);
//! 2. compare-and-set the state row: where its version is still the one the writer read, or,
//!    for a subject the writer believes inactive without knowing the row, where the row is
//!    absent or inactive (and not observed later than this observation);
//! 3. insert or update the `alerts` row, append to `alert_transitions`;
//! 4. queue the transition's notifications in the outbox (`notifications`).
//!
//! When step 2 changes no row another instance got there first: nothing is written, and the
//! writer reloads the row and evaluates again. A crash at any point leaves either the whole
//! change or none of it, so a stored transition always has its notifications queued, once.

use std::sync::Arc;

use super::machine::{AlertState, Transition};
use super::records::{AlertView, ALERT_COLUMNS};
use crate::records::{Committed, DbError, Fields, Param, RecordsDb, Row, Step};

/// What an alert is about: a series, or a gateway (`device` and `metric` empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject {
    pub gateway: String,
    pub device: String,
    pub metric: String,
}

impl Subject {
    pub fn gateway(gateway: &str) -> Subject {
        Subject {
            gateway: gateway.to_string(),
            device: String::new(),
            metric: String::new(),
        }
    }
}

/// (rule id, subject).
pub type StateKey = (String, Subject);

/// One stored state row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    pub version: i64,
    pub state: AlertState,
    /// The open alert; `None` when inactive.
    pub alert_id: Option<String>,
    /// When the observation behind the last change was made (a reading's time, or the check's).
    pub observed_ms: i64,
}

const STATE_COLUMNS: &str =
    "rule_id, gateway, device, metric, version, state, since_ms, notified_ms, alert_id, observed_ms";

fn state_row(r: &Row) -> Result<(StateKey, StoredState), DbError> {
    let f = Fields::of(r, "alert_states");
    Ok((
        (
            f.text(0, "rule_id")?,
            Subject {
                gateway: f.text(1, "gateway")?,
                device: f.text(2, "device")?,
                metric: f.text(3, "metric")?,
            },
        ),
        StoredState {
            version: f.int(4, "version")?,
            state: AlertState::from_row(
                &f.text(5, "state")?,
                f.opt_int(6, "since_ms")?,
                f.opt_int(7, "notified_ms")?,
            ),
            alert_id: f.opt_text(8, "alert_id")?,
            observed_ms: f.int(9, "observed_ms")?,
        },
    ))
}

/// A transition to store.
pub struct Change<'a> {
    pub key: &'a StateKey,
    /// The row as the writer read it; `None`: believed inactive, row not read.
    pub before: Option<&'a StoredState>,
    pub after: AlertState,
    pub transition: Transition,
    /// The alert after the change (its id is new when the change opens it).
    pub view: &'a AlertView,
    pub opens: bool,
    /// The observation's time, and whether an observation older than the stored one loses.
    pub at_ms: i64,
    pub ordered: bool,
    pub now_ms: i64,
    /// (notification id, receiver name, JSON payload) to queue.
    pub notifications: Vec<(String, String, String)>,
}

/// The state rows on the evaluator's connection.
#[derive(Clone)]
pub struct StateStore {
    db: Arc<RecordsDb>,
}

impl StateStore {
    pub fn new(db: Arc<RecordsDb>) -> StateStore {
        StateStore { db }
    }

    /// Every row not inactive.
    pub async fn open_states(&self) -> Result<Vec<(StateKey, StoredState)>, DbError> {
        let rows = self
            .db
            .query(
                &format!("SELECT {STATE_COLUMNS} FROM alert_states WHERE state <> 'inactive'"),
                vec![],
            )
            .await?;
        rows.iter().map(state_row).collect()
    }

    /// Rows changed after `version`, oldest change first.
    pub async fn changed_since(
        &self,
        version: i64,
    ) -> Result<Vec<(StateKey, StoredState)>, DbError> {
        let rows = self
            .db
            .query(
                &format!(
                    "SELECT {STATE_COLUMNS} FROM alert_states WHERE version > $1 ORDER BY version"
                ),
                vec![version.into()],
            )
            .await?;
        rows.iter().map(state_row).collect()
    }

    pub async fn state_of(&self, key: &StateKey) -> Result<Option<StoredState>, DbError> {
        let rows = self
            .db
            .query(
                &format!(
                    "SELECT {STATE_COLUMNS} FROM alert_states \
                     WHERE rule_id = $1 AND gateway = $2 AND device = $3 AND metric = $4"
                ),
                key_params(key),
            )
            .await?;
        Ok(rows.first().map(state_row).transpose()?.map(|(_, s)| s))
    }

    pub async fn state_of_alert(
        &self,
        alert_id: &str,
    ) -> Result<Option<(StateKey, StoredState)>, DbError> {
        let rows = self
            .db
            .query(
                &format!("SELECT {STATE_COLUMNS} FROM alert_states WHERE alert_id = $1"),
                vec![alert_id.into()],
            )
            .await?;
        rows.first().map(state_row).transpose()
    }

    /// Stores a change; the new version, or `None` when another writer changed the row first
    /// (nothing was written).
    pub async fn commit(&self, c: &Change<'_>) -> Result<Option<i64>, DbError> {
        let (state, since, notified) = c.after.to_row();
        let alert_id = (c.after != AlertState::Inactive).then(|| c.view.alert_id.clone());
        let observed = c.before.map_or(c.at_ms, |b| b.observed_ms.max(c.at_ms));
        let mut set = key_params(c.key);
        set.extend([
            Param::from(state),
            since.into(),
            notified.into(),
            alert_id.into(),
            observed.into(),
        ]);
        let mut steps = vec![Step::guarded_query(
            "UPDATE alert_clock SET states = states + 1 WHERE id = 1 RETURNING states",
            vec![],
        )];
        match c.before {
            Some(b) => {
                set.push(b.version.into());
                steps.push(Step::guarded(
                    "UPDATE alert_states SET version = (SELECT states FROM alert_clock WHERE id = 1), \
                     state = $5, since_ms = $6, notified_ms = $7, alert_id = $8, observed_ms = $9 \
                     WHERE rule_id = $1 AND gateway = $2 AND device = $3 AND metric = $4 \
                     AND version = $10",
                    set,
                ));
            }
            None => {
                set.push(if c.ordered { c.at_ms } else { i64::MAX }.into());
                steps.push(Step::guarded(
                    format!(
                        "INSERT INTO alert_states ({STATE_COLUMNS}) VALUES ($1, $2, $3, $4, \
                         (SELECT states FROM alert_clock WHERE id = 1), $5, $6, $7, $8, $9) \
                         ON CONFLICT (rule_id, gateway, device, metric) DO UPDATE SET \
                         version = excluded.version, state = excluded.state, \
                         since_ms = excluded.since_ms, notified_ms = excluded.notified_ms, \
                         alert_id = excluded.alert_id, observed_ms = excluded.observed_ms \
                         WHERE alert_states.state = 'inactive' AND alert_states.observed_ms <= $10"
                    ),
                    set,
                ));
            }
        }
        let v = c.view;
        let notified_at =
            matches!(c.transition, Transition::Fired | Transition::Repeated).then_some(c.now_ms);
        if c.opens {
            steps.push(Step::execute(
                format!(
                    "INSERT INTO alerts ({ALERT_COLUMNS}, notified_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                ),
                vec![
                    v.alert_id.clone().into(),
                    v.rule_id.clone().into(),
                    v.gateway.clone().into(),
                    v.device.clone().into(),
                    v.metric.clone().into(),
                    v.severity.as_str().into(),
                    v.status.clone().into(),
                    v.started_at_ms.into(),
                    c.now_ms.into(),
                    v.last_value.map(|x| x.to_string()).into(),
                    v.kind.as_str().into(),
                    notified_at.into(),
                ],
            ));
        } else {
            steps.push(Step::guarded(
                "UPDATE alerts SET status = $1, updated_at = $2, \
                 last_value = COALESCE($3, last_value), notified_at = COALESCE($5, notified_at) \
                 WHERE alert_id = $4",
                vec![
                    v.status.clone().into(),
                    c.now_ms.into(),
                    v.last_value.map(|x| x.to_string()).into(),
                    v.alert_id.clone().into(),
                    notified_at.into(),
                ],
            ));
        }
        steps.push(Step::execute(
            "INSERT INTO alert_transitions (alert_id, at, transition, value) VALUES ($1, $2, $3, $4)",
            vec![
                v.alert_id.clone().into(),
                c.now_ms.into(),
                c.transition.name().into(),
                v.last_value.map(|x| x.to_string()).into(),
            ],
        ));
        let event = c.transition.event().unwrap_or("none");
        for (id, receiver, payload) in &c.notifications {
            steps.push(Step::execute(
                "INSERT INTO notifications (notification_id, alert_id, rule_id, event, receiver, \
                 payload, status, attempts, created_at, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
                vec![
                    id.clone().into(),
                    v.alert_id.clone().into(),
                    v.rule_id.clone().into(),
                    event.into(),
                    receiver.clone().into(),
                    payload.clone().into(),
                    c.now_ms.into(),
                ],
            ));
        }
        match self.db.transaction(steps).await? {
            Committed::Conflict(_) => Ok(None),
            Committed::Done(rows) => rows
                .first()
                .and_then(|r| r.first())
                .map(|r| Fields::of(r, "alert_clock").int(0, "states"))
                .transpose(),
        }
    }
}

fn key_params(key: &StateKey) -> Vec<Param> {
    vec![
        key.0.clone().into(),
        key.1.gateway.clone().into(),
        key.1.device.clone().into(),
        key.1.metric.clone().into(),
    ]
}
