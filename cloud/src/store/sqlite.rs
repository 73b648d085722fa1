//! The embedded store: one SQLite file, owned by one thread.
//!
//! Every operation is a closure sent to that thread over a bounded channel, with a oneshot for
//! the answer, so async callers never block on SQLite and the connection is never shared. The
//! file runs in WAL mode with `synchronous=NORMAL`: a commit survives a killed process, so
//! what ingest acknowledged survives `kill -9`. A power cut may lose the last commits, and as
//! they were acknowledged the broker will not send them again: where power cuts matter, use
//! PostgreSQL.

use fieldlink_plumbing::clock::now_ms;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use fieldlink_protocol::Ident;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::health::HealthRow;
use super::migrations::{Flavour, SQLITE};
use super::types::{join_value, quality_code, quality_from, split_value};
use super::*;

type Job = Box<dyn FnOnce(&mut SqliteState) + Send>;

/// What the SQLite thread owns.
pub struct SqliteState {
    pub(super) conn: Connection,
    /// Committed series ids.
    series: HashMap<SeriesKey, i64>,
}

/// Handle to the SQLite thread. Dropping every handle ends the thread.
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    dead_letter_limits: DeadLetterLimits,
}

fn ident(s: String) -> Result<Ident, StoreError> {
    Ident::new(&s).map_err(|e| StoreError::Corrupt(format!("identifier {s:?}: {e}")))
}

impl SqliteStore {
    /// Opens (creating) the file and starts its thread. `:memory:` gives a private store.
    pub async fn open(path: PathBuf) -> Result<SqliteStore, StoreError> {
        let (tx, mut rx) = mpsc::channel::<Job>(64);
        let (ready_tx, ready_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("fieldlink-sqlite".into())
            .spawn(move || {
                let conn = match open_conn(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut state = SqliteState {
                    conn,
                    series: HashMap::new(),
                };
                while let Some(job) = rx.blocking_recv() {
                    job(&mut state);
                }
            })
            .map_err(|_| StoreError::SqliteGone)?;
        ready_rx.await.map_err(|_| StoreError::SqliteGone)??;
        Ok(SqliteStore {
            jobs: tx,
            dead_letter_limits: DeadLetterLimits::default(),
        })
    }

    pub(super) async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut SqliteState) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |state| {
                let _ = tx.send(f(state));
            }))
            .await
            .map_err(|_| StoreError::SqliteGone)?;
        rx.await.map_err(|_| StoreError::SqliteGone)?
    }

    pub async fn migrate(&self) -> Result<Vec<i32>, StoreError> {
        self.call(|st| {
            let tx = st
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                    mode TEXT NOT NULL, applied_at INTEGER NOT NULL)",
            )?;
            let mut applied = Vec::new();
            for m in SQLITE.iter().filter(|m| m.flavour == Flavour::Any) {
                let done: Option<i32> = tx
                    .query_row(
                        "SELECT version FROM schema_migrations WHERE version = ?1",
                        [m.version],
                        |r| r.get(0),
                    )
                    .optional()?;
                if done.is_some() {
                    continue;
                }
                tx.execute_batch(m.sql).map_err(|e| StoreError::Migration {
                    version: m.version,
                    name: m.name,
                    source: Box::new(e.into()),
                })?;
                tx.execute(
                    "INSERT INTO schema_migrations VALUES (?1, ?2, 'sqlite', ?3)",
                    params![m.version, m.name, now_ms()],
                )?;
                applied.push(m.version);
            }
            tx.commit()?;
            Ok(applied)
        })
        .await
    }

    pub async fn write(&self, batch: Arc<WriteBatch>) -> Result<WriteOutcome, StoreError> {
        let limits = self.dead_letter_limits;
        self.call(move |st| write(st, &batch, limits)).await
    }

    pub fn set_dead_letter_limits(&mut self, limits: DeadLetterLimits) {
        self.dead_letter_limits = limits;
    }

    /// Deletes dead letters received before `before_ms`; returns how many.
    pub async fn expire_dead_letters(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.call(move |st| {
            Ok(st.conn.execute(
                "DELETE FROM dead_letters WHERE received_at < ?1",
                [before_ms],
            )? as u64)
        })
        .await
    }

    pub async fn register(
        &self,
        gateway: &Ident,
        name: Option<String>,
    ) -> Result<bool, StoreError> {
        let gw = gateway.clone();
        self.call(move |st| {
            let tx = st
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let before: Option<bool> = tx
                .query_row(
                    "SELECT registered FROM gateways WHERE gateway = ?1",
                    [gw.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            tx.execute(
                "INSERT INTO gateways (gateway, registered, first_seen, name) VALUES (?1, 1, ?2, ?3)
                 ON CONFLICT (gateway) DO UPDATE
                 SET registered = 1, name = coalesce(excluded.name, name)",
                params![gw.as_str(), now_ms(), name],
            )?;
            tx.commit()?;
            Ok(before != Some(true))
        })
        .await
    }

    pub async fn unregister(&self, gateway: &Ident) -> Result<Unregistered, StoreError> {
        let gw = gateway.clone();
        self.call(move |st| {
            let tx = st
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row: Option<(bool, bool)> = tx
                .query_row(
                    "SELECT registered,
                            last_seen IS NULL AND status_at IS NULL
                            AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.gateway = g.gateway)
                            AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.gateway = g.gateway)
                     FROM gateways g WHERE gateway = ?1",
                    [gw.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let outcome = match row {
                None | Some((false, _)) => Unregistered::NotRegistered,
                Some((true, true)) => {
                    tx.execute("DELETE FROM gateways WHERE gateway = ?1", [gw.as_str()])?;
                    Unregistered::Deleted
                }
                Some((true, false)) => {
                    tx.execute(
                        "UPDATE gateways SET registered = 0 WHERE gateway = ?1",
                        [gw.as_str()],
                    )?;
                    Unregistered::Kept
                }
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    pub async fn device_health(
        &self,
        gateway: &Ident,
        device: Option<Ident>,
    ) -> Result<Vec<DeviceHealth>, StoreError> {
        let gw = gateway.clone();
        self.call(move |st| {
            let rows = health_rows(&st.conn, &gw, device.as_ref())?;
            Ok(rows.into_iter().map(HealthRow::resolve).collect())
        })
        .await
    }

    pub async fn gateway(&self, gateway: &Ident) -> Result<Option<GatewayInfo>, StoreError> {
        let gw = gateway.clone();
        self.call(move |st| {
            let mut all = gateways(&st.conn, Some(gw.as_str()))?;
            Ok(all.pop())
        })
        .await
    }

    pub async fn gateways(&self) -> Result<Vec<GatewayInfo>, StoreError> {
        self.call(|st| gateways(&st.conn, None)).await
    }

    pub async fn birth(
        &self,
        gateway: &Ident,
        config_hash: &str,
    ) -> Result<Option<StoredBirth>, StoreError> {
        let (gw, hash) = (gateway.clone(), config_hash.to_string());
        self.call(move |st| {
            let mut stmt = st.conn.prepare_cached(
                "SELECT table_check, received_at, body FROM gateway_births
                 WHERE gateway = ?1 AND config_hash = ?2",
            )?;
            let row = stmt
                .query_row([gw.as_str(), hash.as_str()], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .optional()?;
            Ok(row.map(|(table_check, received_ms, body)| StoredBirth {
                gateway: gw.clone(),
                config_hash: hash.clone(),
                table_check,
                received_ms,
                body,
            }))
        })
        .await
    }

    pub async fn devices(&self, gateway: &Ident) -> Result<Vec<Ident>, StoreError> {
        let gw = gateway.clone();
        self.call(move |st| {
            let mut stmt = st
                .conn
                .prepare_cached("SELECT device FROM devices WHERE gateway = ?1 ORDER BY device")?;
            let names = stmt
                .query_map([gw.as_str()], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            names.into_iter().map(ident).collect()
        })
        .await
    }

    pub async fn series_of_device(
        &self,
        gateway: &Ident,
        device: &Ident,
    ) -> Result<Vec<SeriesInfo>, StoreError> {
        let (gw, dev) = (gateway.clone(), device.clone());
        self.call(move |st| {
            let mut stmt = st.conn.prepare_cached(
                "SELECT series_id, metric, unit, writable FROM series
                 WHERE gateway = ?1 AND device = ?2 ORDER BY metric",
            )?;
            let rows = stmt
                .query_map([gw.as_str(), dev.as_str()], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, bool>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(series_id, metric, unit, writable)| {
                    Ok(SeriesInfo {
                        series_id,
                        key: SeriesKey {
                            gateway: gw.clone(),
                            device: dev.clone(),
                            metric: ident(metric)?,
                        },
                        unit,
                        writable,
                    })
                })
                .collect()
        })
        .await
    }

    pub async fn series_id(&self, key: &SeriesKey) -> Result<Option<i64>, StoreError> {
        let key = key.clone();
        self.call(move |st| {
            Ok(st
                .conn
                .query_row(
                    "SELECT series_id FROM series WHERE gateway = ?1 AND device = ?2 AND metric = ?3",
                    [key.gateway.as_str(), key.device.as_str(), key.metric.as_str()],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    pub async fn raw_points(
        &self,
        series_id: i64,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<StoredPoint>, StoreError> {
        self.call(move |st| {
            let mut stmt = st.conn.prepare_cached(
                "SELECT p.time, p.value, p.value_text, p.quality, s.value_kind
                 FROM points p JOIN series s USING (series_id)
                 WHERE p.series_id = ?1 AND p.time >= ?2 AND p.time < ?3
                 ORDER BY p.time LIMIT ?4",
            )?;
            let rows = stmt
                .query_map(params![series_id, from_ms, to_ms, limit], stored_point)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn aggregates(
        &self,
        series_id: i64,
        from_ms: i64,
        to_ms: i64,
        interval: Interval,
    ) -> Result<Vec<Bucket>, StoreError> {
        let width = interval.as_millis();
        self.call(move |st| {
            // Integer division truncates toward zero; subtracting the negative remainder floors it.
            let mut stmt = st.conn.prepare_cached(
                "SELECT (time - ((time % ?2) + ?2) % ?2) AS b,
                        avg(value), min(value), max(value), count(*)
                 FROM points WHERE series_id = ?1 AND time >= ?3 AND time < ?4
                 GROUP BY b ORDER BY b",
            )?;
            let rows = stmt
                .query_map(params![series_id, width, from_ms, to_ms], |r| {
                    Ok(Bucket {
                        start_ms: r.get(0)?,
                        avg: r.get(1)?,
                        min: r.get(2)?,
                        max: r.get(3)?,
                        count: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn latest(&self, series_ids: &[i64]) -> Result<Vec<Latest>, StoreError> {
        let ids = series_ids.to_vec();
        self.call(move |st| {
            let mut stmt = st.conn.prepare_cached(
                "SELECT p.time, p.value, p.value_text, p.quality, s.value_kind
                 FROM points p JOIN series s USING (series_id)
                 WHERE p.series_id = ?1 ORDER BY p.time DESC LIMIT 1",
            )?;
            let mut out = Vec::new();
            for id in ids {
                if let Some(point) = stmt.query_row([id], stored_point).optional()? {
                    out.push(Latest {
                        series_id: id,
                        point,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    pub async fn dead_letter_page(
        &self,
        before: Option<i64>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<StoredDeadLetter>, StoreError> {
        self.call(move |st| {
            let mut stmt = st.conn.prepare_cached(
                "SELECT id, received_at, topic, reason, detail, payload, size, sha256
                 FROM dead_letters WHERE ?1 IS NULL OR id < ?1
                 ORDER BY id DESC LIMIT ?2 OFFSET ?3",
            )?;
            let rows = stmt
                .query_map(params![before, limit, offset], |r| {
                    let payload: Vec<u8> = r.get(5)?;
                    let size: i64 = r.get(6)?;
                    // Rows of the previous version have no hash (SQLite has no SHA-256).
                    let sha: Option<Vec<u8>> = r.get(7)?;
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        payload,
                        size,
                        sha,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(
                    |(id, received_ms, topic, reason, detail, payload, size, sha)| {
                        let sha256 = match sha {
                            None => None,
                            Some(v) => Some(v.try_into().map_err(|v: Vec<u8>| {
                                StoreError::Corrupt(format!(
                                    "dead letter {id}: sha256 of {} bytes",
                                    v.len()
                                ))
                            })?),
                        };
                        Ok(StoredDeadLetter {
                            id,
                            letter: DeadLetter {
                                received_ms,
                                topic,
                                reason,
                                detail,
                                payload,
                                size: u64::try_from(size).map_err(|_| {
                                    StoreError::Corrupt(format!("dead letter {id}: size {size}"))
                                })?,
                                sha256,
                            },
                        })
                    },
                )
                .collect()
        })
        .await
    }

    pub async fn count_points(&self) -> Result<i64, StoreError> {
        self.call(|st| {
            Ok(st
                .conn
                .query_row("SELECT count(*) FROM points", [], |r| r.get(0))?)
        })
        .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(|st| Ok(st.conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    /// Inserts rows straight into `points` with no conflict handling and no dictionary work:
    /// the baseline the benchmark compares ingest with. The series must exist.
    pub async fn raw_insert(&self, rows: Vec<(i64, i64, f64)>) -> Result<(), StoreError> {
        self.call(move |st| {
            let tx = st.conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO points (series_id, time, value, quality) VALUES (?1, ?2, ?3, 0)",
                )?;
                for (s, t, v) in rows {
                    stmt.execute(params![s, t, v])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Deletes every point (benchmarks reuse one table for ingest and the baseline).
    pub async fn clear_points(&self) -> Result<(), StoreError> {
        self.call(|st| Ok(st.conn.execute_batch("DELETE FROM points")?))
            .await
    }
}

fn open_conn(path: &PathBuf) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.clone(),
        source,
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

fn stored_point(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredPoint> {
    Ok(StoredPoint {
        ts_ms: r.get(0)?,
        value: join_value(r.get(4)?, r.get(1)?, r.get(2)?),
        quality: quality_from(r.get(3)?),
    })
}

fn gateways(conn: &Connection, only: Option<&str>) -> Result<Vec<GatewayInfo>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT gateway, online, agent_version, config_hash, registered, last_seen, name,
                quota_dropped_messages, quota_dropped_points, quota_dropped_at
         FROM gateways WHERE ?1 IS NULL OR gateway = ?1 ORDER BY gateway",
    )?;
    let rows = stmt
        .query_map([only], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, bool>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<String>>(6)?,
                QuotaDrops {
                    messages: r.get(7)?,
                    points: r.get(8)?,
                    last_at_ms: r.get(9)?,
                },
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(g, online, agent_version, config_hash, registered, last_seen_ms, name, quota)| {
                Ok(GatewayInfo {
                    gateway: ident(g)?,
                    online,
                    agent_version,
                    config_hash,
                    registered,
                    last_seen_ms,
                    name,
                    quota,
                })
            },
        )
        .collect()
}

fn health_rows(
    conn: &Connection,
    gateway: &Ident,
    device: Option<&Ident>,
) -> Result<Vec<HealthRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.device, d.health_state, d.health_at, d.health_epoch, d.last_error,
                d.last_error_at, g.online, g.boot_epoch, g.status_at
         FROM devices d JOIN gateways g USING (gateway)
         WHERE d.gateway = ?1 AND (?2 IS NULL OR d.device = ?2) ORDER BY d.device",
    )?;
    let rows = stmt
        .query_map(params![gateway.as_str(), device.map(|d| d.as_str())], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, bool>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, Option<i64>>(8)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(d, state, at, epoch, error, error_at, online, gw_epoch, status_at)| {
                Ok(HealthRow {
                    gateway: gateway.clone(),
                    device: ident(d)?,
                    health_state: state,
                    health_at_ms: at,
                    health_epoch: epoch,
                    last_error: error,
                    last_error_ms: error_at,
                    gateway_online: online,
                    gateway_epoch: gw_epoch,
                    status_at_ms: status_at,
                })
            },
        )
        .collect()
}

/// Health after the commit of every device `batch` may have changed (see
/// [`WriteOutcome::device_health`]).
fn touched_health(conn: &Connection, batch: &WriteBatch) -> Result<Vec<DeviceHealth>, StoreError> {
    let touched = super::health_touched(batch);
    let mut out = Vec::new();
    for (gw, devices) in touched {
        for row in health_rows(conn, &gw, None)? {
            if devices.as_ref().is_none_or(|d| d.contains(&row.device)) {
                out.push(row.resolve());
            }
        }
    }
    Ok(out)
}

fn write(
    st: &mut SqliteState,
    batch: &WriteBatch,
    limits: DeadLetterLimits,
) -> Result<WriteOutcome, StoreError> {
    let now = now_ms();
    let tx = st
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut new_series: Vec<(SeriesKey, i64)> = Vec::new();
    let mut inserted = 0u64;
    let mut dropped = 0u64;
    {
        let mut seen = tx.prepare_cached(
            "INSERT INTO gateways (gateway, first_seen, last_seen) VALUES (?1, ?2, ?3)
             ON CONFLICT (gateway) DO UPDATE
             SET last_seen = max(coalesce(last_seen, 0), excluded.last_seen)",
        )?;
        for (gw, at) in &batch.seen {
            seen.execute(params![gw.as_str(), now, at])?;
        }
        let mut status = tx.prepare_cached(
            "INSERT INTO gateways (gateway, online, agent_version, config_hash, first_seen, last_seen, status_at, boot_epoch)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)
             ON CONFLICT (gateway) DO UPDATE SET online = excluded.online,
               agent_version = coalesce(excluded.agent_version, agent_version),
               config_hash = coalesce(excluded.config_hash, config_hash),
               status_at = excluded.status_at,
               last_seen = max(coalesce(last_seen, 0), excluded.last_seen),
               boot_epoch = coalesce(excluded.boot_epoch, boot_epoch)
             WHERE boot_epoch IS NULL OR excluded.boot_epoch IS NULL OR status_at IS NULL
                OR (excluded.online AND (excluded.boot_epoch > boot_epoch
                                         OR excluded.status_at >= status_at))
                OR (NOT excluded.online AND excluded.boot_epoch >= boot_epoch
                                        AND excluded.status_at >= status_at)",
        )?;
        // A birth that moved the boot epoch back (the gateway's state was wiped) starts the
        // device reports' order afresh: reports of the new boot are newer than any of the old.
        let mut reset = tx.prepare_cached(
            "UPDATE devices SET health_epoch = NULL, health_seq = NULL
             WHERE gateway = ?1 AND health_epoch > ?2
               AND (SELECT boot_epoch FROM gateways WHERE gateway = ?1) = ?2",
        )?;
        for s in &batch.statuses {
            status.execute(params![
                s.gateway.as_str(),
                s.online,
                s.agent_version,
                s.config_hash,
                now,
                s.at_ms,
                s.boot_epoch
            ])?;
            if let (true, Some(epoch)) = (s.online, s.boot_epoch) {
                reset.execute(params![s.gateway.as_str(), epoch])?;
            }
        }
        let mut birth = tx.prepare_cached(
            "INSERT INTO gateway_births (gateway, config_hash, table_check, received_at, body)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (gateway, config_hash) DO UPDATE SET table_check = excluded.table_check,
               received_at = excluded.received_at, body = excluded.body",
        )?;
        for b in &batch.births {
            birth.execute(params![
                b.gateway.as_str(),
                b.config_hash,
                b.table_check,
                b.received_ms,
                b.body
            ])?;
        }
        let mut device = tx.prepare_cached(
            "INSERT INTO devices (gateway, device, first_seen) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
        )?;
        let mut meta = tx.prepare_cached(
            "INSERT INTO series (gateway, device, metric, unit, writable) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (gateway, device, metric) DO UPDATE
             SET unit = excluded.unit, writable = excluded.writable",
        )?;
        for m in &batch.series_meta {
            device.execute(params![m.key.gateway.as_str(), m.key.device.as_str(), now])?;
            meta.execute(params![
                m.key.gateway.as_str(),
                m.key.device.as_str(),
                m.key.metric.as_str(),
                m.unit,
                m.writable
            ])?;
        }
        let mut create = tx.prepare_cached(
            "INSERT INTO series (gateway, device, metric, value_kind) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
        )?;
        let mut lookup = tx.prepare_cached(
            "SELECT series_id FROM series WHERE gateway = ?1 AND device = ?2 AND metric = ?3",
        )?;
        let mut point = tx.prepare_cached(
            "INSERT OR IGNORE INTO points (series_id, time, value, value_text, quality)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut local: HashMap<Arc<SeriesKey>, i64> = HashMap::new();
        for p in &batch.points {
            let (value, text, kind) = split_value(&p.value);
            let id = match st.series.get(&*p.key).or_else(|| local.get(&p.key)) {
                Some(id) => *id,
                None => {
                    let k = &p.key;
                    device.execute(params![k.gateway.as_str(), k.device.as_str(), now])?;
                    create.execute(params![
                        k.gateway.as_str(),
                        k.device.as_str(),
                        k.metric.as_str(),
                        kind
                    ])?;
                    let id: i64 = lookup.query_row(
                        [k.gateway.as_str(), k.device.as_str(), k.metric.as_str()],
                        |r| r.get(0),
                    )?;
                    local.insert(k.clone(), id);
                    new_series.push(((**k).clone(), id));
                    id
                }
            };
            inserted +=
                point.execute(params![id, p.ts_ms, value, text, quality_code(p.quality)])? as u64;
        }
        let mut dead = tx.prepare_cached(
            "INSERT INTO dead_letters (received_at, topic, reason, detail, payload, gateway, size, sha256)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut buckets: Vec<&str> = Vec::new();
        for d in &batch.dead_letters {
            let bucket = DeadLetter::gateway_bucket(&d.topic);
            let keep = d.payload.len().min(limits.payload_bytes);
            dead.execute(params![
                d.received_ms,
                d.topic,
                d.reason,
                d.detail,
                &d.payload[..keep],
                bucket,
                d.size as i64,
                d.sha256.as_ref().map(|h| &h[..])
            ])?;
            if !buckets.contains(&bucket) {
                buckets.push(bucket);
            }
        }
        let mut cap = tx.prepare_cached(
            "DELETE FROM dead_letters WHERE gateway = ?1 AND id <= (
                 SELECT id FROM dead_letters WHERE gateway = ?1
                 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )?;
        for bucket in buckets {
            dropped += cap.execute(params![bucket, limits.per_gateway as i64])? as u64;
        }
        super::parked::write_sqlite(&tx, &batch.parked, &batch.unparked)?;
        let mut quota = tx.prepare_cached(
            "INSERT INTO gateways (gateway, first_seen, quota_dropped_messages,
                                   quota_dropped_points, quota_dropped_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (gateway) DO UPDATE
             SET quota_dropped_messages = quota_dropped_messages + excluded.quota_dropped_messages,
                 quota_dropped_points = quota_dropped_points + excluded.quota_dropped_points,
                 quota_dropped_at = max(coalesce(quota_dropped_at, 0), excluded.quota_dropped_at)",
        )?;
        for (gw, d) in &batch.quota_drops {
            quota.execute(params![
                gw.as_str(),
                now,
                d.messages,
                d.points,
                d.last_at_ms
            ])?;
        }
        let mut event = tx.prepare_cached(
            "INSERT INTO gateway_events (gateway, received_at, body) VALUES (?1, ?2, ?3)",
        )?;
        for e in &batch.events {
            event.execute(params![
                e.gateway.as_str(),
                e.received_ms,
                e.body.to_string()
            ])?;
        }
        let mut health = tx.prepare_cached(
            "INSERT INTO devices (gateway, device, first_seen, health_state, health_at,
                                  health_epoch, health_seq, last_error, last_error_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, CASE WHEN ?8 IS NULL THEN NULL ELSE ?5 END)
             ON CONFLICT (gateway, device) DO UPDATE
             SET health_state = excluded.health_state, health_at = excluded.health_at,
                 health_epoch = excluded.health_epoch, health_seq = excluded.health_seq,
                 last_error = coalesce(excluded.last_error, last_error),
                 last_error_at = coalesce(excluded.last_error_at, last_error_at)
             WHERE health_epoch IS NULL
                OR (excluded.health_epoch, excluded.health_seq) > (health_epoch, health_seq)",
        )?;
        for h in &batch.health {
            health.execute(params![
                h.gateway.as_str(),
                h.device.as_str(),
                now,
                h.state.as_str(),
                h.at_ms,
                h.boot_epoch,
                h.seq,
                h.error
            ])?;
        }
        let mut ack = tx.prepare_cached(
            "INSERT INTO command_acks (gateway, received_at, body) VALUES (?1, ?2, ?3)",
        )?;
        for a in &batch.acks {
            ack.execute(params![
                a.gateway.as_str(),
                a.received_ms,
                a.body.to_string()
            ])?;
        }
    }
    let device_health = touched_health(&tx, batch)?;
    tx.commit()?;
    st.series.extend(new_series);
    Ok(WriteOutcome {
        points_inserted: inserted,
        dead_letters_dropped: dropped,
        device_health,
    })
}
