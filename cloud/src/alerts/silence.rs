//! The timer rules: no data from a series, and a gateway offline, each for `silent_secs`.
//!
//! Both read the shared database, not this instance's share of the traffic, so every instance
//! judges the same facts (with a shared subscription an instance sees only some gateways'
//! messages):
//! - no_data: the newest stored reading's time of each matching series (for a series that
//!   never reported, the gateway's last status change); silent for `silent_secs` fires, a
//!   newer reading resolves. There is no pending phase: the silence itself is the wait.
//! - gateway_offline: the registry's online flag and the time of its last status (birth, or
//!   death by the will). Offline starts the alert pending from that time; still offline
//!   `silent_secs` after it, the alert fires; a birth resolves it (or cancels it while
//!   pending). A gateway that never announced a status is not judged.
//!
//! Every check goes through the same compare-and-set as value rules, so instances checking
//! the same gateway store each transition once.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::engine::{AlertEngine, Observation, Observed};
use super::records::{RuleKind, StoredRule};
use super::rule::{silence_signal, Signal};
use super::state::Subject;
use crate::clock::now_ms;
use crate::records::{DbError, Fields, Param, RecordsDb};

/// A gateway as the registry holds it: online, and when its last status arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayPresence {
    pub gateway: String,
    pub online: bool,
    pub status_at_ms: Option<i64>,
}

/// The reads the checks need, on the evaluator's connection.
#[derive(Clone)]
pub struct SilenceReads {
    db: Arc<RecordsDb>,
}

fn scope(rule: &StoredRule) -> Vec<Param> {
    vec![
        rule.rule.gateway.clone().into(),
        rule.rule.device.clone().into(),
        rule.rule.metric.clone().into(),
    ]
}

impl SilenceReads {
    pub fn new(db: Arc<RecordsDb>) -> SilenceReads {
        SilenceReads { db }
    }

    pub async fn gateways(&self, gateway: Option<&str>) -> Result<Vec<GatewayPresence>, DbError> {
        let sql = if self.db.is_postgres() {
            "SELECT gateway, CAST(online AS integer), \
             CAST(extract(epoch FROM status_at) * 1000 AS bigint) FROM gateways \
             WHERE CAST($1 AS text) IS NULL OR gateway = CAST($1 AS text)"
        } else {
            "SELECT gateway, online, status_at FROM gateways \
             WHERE CAST($1 AS text) IS NULL OR gateway = CAST($1 AS text)"
        };
        let rows = self
            .db
            .query(sql, vec![gateway.map(str::to_string).into()])
            .await?;
        rows.iter()
            .map(|r| {
                let f = Fields::of(r, "gateways");
                Ok(GatewayPresence {
                    gateway: f.text(0, "gateway")?,
                    online: f.int(1, "online")? == 1,
                    status_at_ms: f.opt_int(2, "status_at")?,
                })
            })
            .collect()
    }

    /// Each series in the rule's scope with the time of its newest reading (or, if it has
    /// none, of its gateway's last status).
    pub async fn last_readings(
        &self,
        rule: &StoredRule,
    ) -> Result<Vec<(Subject, Option<i64>)>, DbError> {
        let sql = if self.db.is_postgres() {
            "SELECT s.gateway, s.device, s.metric, CAST(extract(epoch FROM coalesce( \
               (SELECT p.time FROM points p WHERE p.series_id = s.series_id \
                ORDER BY p.time DESC LIMIT 1), g.status_at)) * 1000 AS bigint) \
             FROM series s LEFT JOIN gateways g ON g.gateway = s.gateway \
             WHERE (CAST($1 AS text) IS NULL OR s.gateway = CAST($1 AS text)) \
               AND (CAST($2 AS text) IS NULL OR s.device = CAST($2 AS text)) \
               AND (CAST($3 AS text) IS NULL OR s.metric = CAST($3 AS text))"
        } else {
            "SELECT s.gateway, s.device, s.metric, coalesce( \
               (SELECT max(p.time) FROM points p WHERE p.series_id = s.series_id), g.status_at) \
             FROM series s LEFT JOIN gateways g ON g.gateway = s.gateway \
             WHERE (CAST($1 AS text) IS NULL OR s.gateway = CAST($1 AS text)) \
               AND (CAST($2 AS text) IS NULL OR s.device = CAST($2 AS text)) \
               AND (CAST($3 AS text) IS NULL OR s.metric = CAST($3 AS text))"
        };
        let rows = self.db.query(sql, scope(rule)).await?;
        rows.iter()
            .map(|r| {
                let f = Fields::of(r, "series");
                Ok((
                    Subject {
                        gateway: f.text(0, "gateway")?,
                        device: f.text(1, "device")?,
                        metric: f.text(2, "metric")?,
                    },
                    f.opt_int(3, "newest reading or status")?,
                ))
            })
            .collect()
    }
}

/// What one check observes, per rule and subject.
pub(crate) async fn observe(
    reads: &SilenceReads,
    rules: &[StoredRule],
    now: i64,
) -> Result<Vec<(StoredRule, Subject, Observation)>, DbError> {
    let mut out = Vec::new();
    let mut gateways: Option<Vec<GatewayPresence>> = None;
    for rule in rules {
        let after_ms = rule.rule.silent_ms();
        match rule.rule.kind {
            RuleKind::Value => {}
            RuleKind::GatewayOffline => {
                if gateways.is_none() {
                    gateways = Some(reads.gateways(None).await?);
                }
                for g in gateways.as_deref().unwrap_or_default() {
                    if !rule.rule.matches(&g.gateway, "", "") {
                        continue;
                    }
                    let what = match (g.online, g.status_at_ms) {
                        (true, _) => Observed::Signal {
                            signal: Signal::Clear,
                            since_ms: now,
                        },
                        (false, Some(since)) => Observed::Signal {
                            signal: Signal::Fire,
                            since_ms: since,
                        },
                        (false, None) => continue,
                    };
                    out.push((
                        rule.clone(),
                        Subject::gateway(&g.gateway),
                        Observation {
                            what,
                            at_ms: now,
                            ordered: false,
                            value: None,
                        },
                    ));
                }
            }
            RuleKind::NoData => {
                for (subject, last) in reads.last_readings(rule).await? {
                    let Some(last) = last else { continue };
                    out.push((
                        rule.clone(),
                        subject,
                        Observation {
                            what: Observed::Signal {
                                signal: silence_signal(Some(last), now, after_ms),
                                since_ms: now,
                            },
                            at_ms: now,
                            ordered: false,
                            value: None,
                        },
                    ));
                }
            }
        }
    }
    Ok(out)
}

impl AlertEngine {
    /// Checks the timer rules every `every` until `stop` fires. Each tick also brings this
    /// instance's rules up to date.
    pub async fn run_checks(self, reads: SilenceReads, every: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.check(&reads).await;
        }
    }

    /// One check of every enabled no_data and gateway_offline rule.
    pub async fn check(&self, reads: &SilenceReads) {
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = ?e.to_string(), "could not read the shared alert state; check skipped");
            return;
        }
        let rules = self.rules_where(|r| r.kind != RuleKind::Value);
        if rules.is_empty() {
            return;
        }
        match observe(reads, &rules, now_ms()).await {
            Ok(checks) => self.apply_checks(checks).await,
            Err(e) => {
                tracing::warn!(error = ?e.to_string(), "could not read gateways and series for the timer rules")
            }
        }
    }
}
