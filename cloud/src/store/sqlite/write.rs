//! Writing a committed batch (points, statuses, births, health reports, dead letters) in one transaction, and the maintenance writes.

use super::read::health_rows;
use super::*;

impl SqliteStore {
    pub async fn write(&self, batch: Arc<WriteBatch>) -> Result<WriteOutcome, StoreError> {
        let limits = self.dead_letter_limits;
        self.call(move |st| write(st, &batch, limits)).await
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
