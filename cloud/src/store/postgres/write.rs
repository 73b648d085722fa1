//! The write side: one transaction per [`WriteBatch`].
//!
//! Order inside the transaction: gateways heard from, statuses, births, series metadata from births,
//! series ids for new (gateway, device, metric) keys, points, dead letters, events and
//! acknowledgements, and on plain PostgreSQL the dirty hours of the rollup. Every statement that
//! upserts is given distinct keys, because PostgreSQL refuses to update one row twice in one
//! statement.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use super::super::types::{quality_code, split_value};
use super::super::{
    touched_hours, Backend, DeadLetter, DeadLetterLimits, PointRow, SeriesKey, StoreError,
    WriteBatch, WriteOutcome,
};
use super::{to_time, PgStore};

/// How points reach the `points` table idempotently. `benches/insert_paths.rs` measures them;
/// the default is the fastest it found (see the crate README for the figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InsertPath {
    /// Binary COPY into a temporary staging table, then `INSERT … SELECT … ON CONFLICT DO NOTHING`.
    CopyStaging,
    /// One `INSERT … SELECT FROM unnest($1, $2, …) ON CONFLICT DO NOTHING` with array parameters.
    #[default]
    Unnest,
    /// Multi-row `INSERT … VALUES (…), (…) ON CONFLICT DO NOTHING`, in chunks under the
    /// protocol's 65,535-parameter limit.
    Values,
}

const POINT_TYPES: [Type; 5] = [
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::FLOAT8,
    Type::TEXT,
    Type::INT2,
];

/// Points as column vectors, series ids resolved.
#[derive(Default)]
pub(crate) struct PointColumns {
    ids: Vec<i64>,
    times: Vec<SystemTime>,
    values: Vec<Option<f64>>,
    texts: Vec<Option<String>>,
    qualities: Vec<i16>,
}

impl PointColumns {
    fn len(&self) -> usize {
        self.ids.len()
    }
}

impl PgStore {
    pub async fn write(&self, batch: Arc<WriteBatch>) -> Result<WriteOutcome, StoreError> {
        let mut held = self.hold().await?;
        let session = &mut *held.guard;
        let client = session
            .client
            .as_mut()
            .expect("hold() returns a connected session");
        if self.insert_path == InsertPath::CopyStaging && !session.staging_ready {
            client
                .batch_execute(
                    "CREATE TEMP TABLE IF NOT EXISTS fl_staging
                     (series_id bigint, time timestamptz, value double precision,
                      value_text text, quality smallint) ON COMMIT DELETE ROWS",
                )
                .await?;
            session.staging_ready = true;
        }
        let tx = client.transaction().await?;
        write_registry(&tx, &batch).await?;
        let new_series = resolve_series(&tx, &session.series, &batch.points).await?;
        let columns = columns(&batch.points, &session.series, &new_series);
        let inserted = match self.insert_path {
            InsertPath::CopyStaging => insert_copy(&tx, &columns).await?,
            InsertPath::Unnest => insert_unnest(&tx, &columns, self.statement_rows).await?,
            InsertPath::Values => insert_values(&tx, &columns, self.statement_rows).await?,
        };
        let dead_letters_dropped = write_messages(&tx, &batch, self.dead_letter_limits()).await?;
        super::parked::write(&tx, &batch.parked, &batch.unparked).await?;
        write_quota_drops(&tx, &batch).await?;
        super::registry::write_health(&tx, &batch.health).await?;
        if self.backend == Backend::Postgres && !batch.points.is_empty() {
            let hours: Vec<SystemTime> = touched_hours(&batch.points)
                .into_iter()
                .map(to_time)
                .collect();
            tx.execute(
                "INSERT INTO rollup_dirty (bucket) SELECT unnest($1::timestamptz[])
                 ON CONFLICT DO NOTHING",
                &[&hours],
            )
            .await?;
        }
        let device_health = super::registry::touched_health(&tx, &batch).await?;
        tx.commit().await?;
        session.series.extend(new_series);
        Ok(WriteOutcome {
            points_inserted: inserted,
            dead_letters_dropped,
            device_health,
        })
    }

    /// Binary COPY of rows straight into `points`, no conflict handling, no dictionary work: the
    /// baseline the ingest benchmark compares with. The series must exist.
    pub async fn raw_copy(&self, rows: &[(i64, i64, f64)]) -> Result<u64, StoreError> {
        let mut held = self.hold().await?;
        let tx = held.client().transaction().await?;
        let sink = tx
            .copy_in("COPY points (series_id, time, value, value_text, quality) FROM STDIN (FORMAT binary)")
            .await?;
        let writer = BinaryCopyInWriter::new(sink, &POINT_TYPES);
        pin_mut!(writer);
        for (id, ts, v) in rows {
            let t = to_time(*ts);
            let v = Some(*v);
            let text: Option<&str> = None;
            writer.as_mut().write(&[id, &t, &v, &text, &0i16]).await?;
        }
        let n = writer.finish().await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Empties `points` (benchmarks reuse one table for ingest and the baseline).
    pub async fn clear_points(&self) -> Result<(), StoreError> {
        let mut held = self.hold().await?;
        held.client().batch_execute("TRUNCATE points").await?;
        Ok(())
    }
}

async fn write_registry(tx: &Transaction<'_>, batch: &WriteBatch) -> Result<(), StoreError> {
    if !batch.seen.is_empty() {
        let mut last: BTreeMap<&str, i64> = BTreeMap::new();
        for (gw, at) in &batch.seen {
            let e = last.entry(gw.as_str()).or_insert(*at);
            *e = (*e).max(*at);
        }
        let names: Vec<&str> = last.keys().copied().collect();
        let times: Vec<SystemTime> = last.values().map(|ms| to_time(*ms)).collect();
        tx.execute(
            "INSERT INTO gateways (gateway, last_seen)
             SELECT * FROM unnest($1::text[], $2::timestamptz[])
             ON CONFLICT (gateway) DO UPDATE
             SET last_seen = GREATEST(gateways.last_seen, excluded.last_seen)",
            &[&names, &times],
        )
        .await?;
    }
    for s in &batch.statuses {
        tx.execute(
            "INSERT INTO gateways (gateway, online, agent_version, config_hash, last_seen, status_at, boot_epoch)
             VALUES ($1, $2, $3, $4, $5, $5, $6)
             ON CONFLICT (gateway) DO UPDATE SET online = excluded.online,
               agent_version = coalesce(excluded.agent_version, gateways.agent_version),
               config_hash = coalesce(excluded.config_hash, gateways.config_hash),
               status_at = excluded.status_at,
               last_seen = GREATEST(gateways.last_seen, excluded.last_seen),
               boot_epoch = coalesce(excluded.boot_epoch, gateways.boot_epoch)
             WHERE gateways.boot_epoch IS NULL OR excluded.boot_epoch IS NULL
                OR gateways.status_at IS NULL
                OR (excluded.online AND (excluded.boot_epoch > gateways.boot_epoch
                                         OR excluded.status_at >= gateways.status_at))
                OR (NOT excluded.online AND excluded.boot_epoch >= gateways.boot_epoch
                                        AND excluded.status_at >= gateways.status_at)",
            &[
                &s.gateway.as_str(),
                &s.online,
                &s.agent_version,
                &s.config_hash,
                &to_time(s.at_ms),
                &s.boot_epoch,
            ],
        )
        .await?;
        if let (true, Some(epoch)) = (s.online, s.boot_epoch) {
            // A birth that moved the boot epoch back (the gateway's state was wiped) starts the
            // device reports' order afresh.
            tx.execute(
                "UPDATE devices SET health_epoch = NULL, health_seq = NULL
                 WHERE gateway = $1 AND health_epoch > $2
                   AND (SELECT boot_epoch FROM gateways WHERE gateway = $1) = $2",
                &[&s.gateway.as_str(), &epoch],
            )
            .await?;
        }
    }
    for b in &batch.births {
        tx.execute(
            "INSERT INTO gateway_births (gateway, config_hash, table_check, received_at, body)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (gateway, config_hash) DO UPDATE SET table_check = excluded.table_check,
               received_at = excluded.received_at, body = excluded.body",
            &[
                &b.gateway.as_str(),
                &b.config_hash,
                &b.table_check,
                &to_time(b.received_ms),
                &b.body,
            ],
        )
        .await?;
    }
    if !batch.series_meta.is_empty() {
        let mut metas: BTreeMap<&SeriesKey, (&Option<String>, bool)> = BTreeMap::new();
        for m in &batch.series_meta {
            metas.insert(&m.key, (&m.unit, m.writable));
        }
        let keys: Vec<&SeriesKey> = metas.keys().copied().collect();
        upsert_devices(tx, keys.iter().copied()).await?;
        let (g, d, m) = key_columns(keys.iter().copied());
        let units: Vec<Option<&str>> = metas.values().map(|(u, _)| u.as_deref()).collect();
        let writable: Vec<bool> = metas.values().map(|(_, w)| *w).collect();
        tx.execute(
            "INSERT INTO series (gateway, device, metric, unit, writable)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[])
             ON CONFLICT (gateway, device, metric) DO UPDATE
             SET unit = excluded.unit, writable = excluded.writable",
            &[&g, &d, &m, &units, &writable],
        )
        .await?;
    }
    Ok(())
}

fn key_columns<'a>(
    keys: impl Iterator<Item = &'a SeriesKey>,
) -> (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>) {
    let mut g = Vec::new();
    let mut d = Vec::new();
    let mut m = Vec::new();
    for k in keys {
        g.push(k.gateway.as_str());
        d.push(k.device.as_str());
        m.push(k.metric.as_str());
    }
    (g, d, m)
}

async fn upsert_devices<'a>(
    tx: &Transaction<'_>,
    keys: impl Iterator<Item = &'a SeriesKey>,
) -> Result<(), StoreError> {
    let devices: BTreeSet<(&str, &str)> = keys
        .map(|k| (k.gateway.as_str(), k.device.as_str()))
        .collect();
    let gws: BTreeSet<&str> = devices.iter().map(|(g, _)| *g).collect();
    let gws: Vec<&str> = gws.into_iter().collect();
    tx.execute(
        "INSERT INTO gateways (gateway) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
        &[&gws],
    )
    .await?;
    let (g, d): (Vec<&str>, Vec<&str>) = devices.into_iter().unzip();
    tx.execute(
        "INSERT INTO devices (gateway, device) SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT DO NOTHING",
        &[&g, &d],
    )
    .await?;
    Ok(())
}

/// Ids for the keys the cache does not know, creating series (and their devices) as needed.
async fn resolve_series(
    tx: &Transaction<'_>,
    cache: &HashMap<SeriesKey, i64>,
    points: &[PointRow],
) -> Result<HashMap<SeriesKey, i64>, StoreError> {
    let mut missing: BTreeMap<&SeriesKey, i16> = BTreeMap::new();
    for p in points {
        if !cache.contains_key(&*p.key) {
            missing.entry(&*p.key).or_insert(split_value(&p.value).2);
        }
    }
    let mut found = HashMap::new();
    if missing.is_empty() {
        return Ok(found);
    }
    upsert_devices(tx, missing.keys().copied()).await?;
    let (g, d, m) = key_columns(missing.keys().copied());
    let kinds: Vec<i16> = missing.values().copied().collect();
    tx.execute(
        "INSERT INTO series (gateway, device, metric, value_kind)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[])
         ON CONFLICT DO NOTHING",
        &[&g, &d, &m, &kinds],
    )
    .await?;
    let rows = tx
        .query(
            "SELECT s.series_id, s.gateway, s.device, s.metric
             FROM series s JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(g, d, m)
               ON s.gateway = k.g AND s.device = k.d AND s.metric = k.m",
            &[&g, &d, &m],
        )
        .await?;
    let by_name: HashMap<(&str, &str, &str), &SeriesKey> = missing
        .keys()
        .map(|k| {
            (
                (k.gateway.as_str(), k.device.as_str(), k.metric.as_str()),
                *k,
            )
        })
        .collect();
    for r in rows {
        let name = (
            r.get::<_, &str>(1),
            r.get::<_, &str>(2),
            r.get::<_, &str>(3),
        );
        if let Some(key) = by_name.get(&name) {
            found.insert((*key).clone(), r.get::<_, i64>(0));
        }
    }
    if found.len() != missing.len() {
        return Err(StoreError::Corrupt(format!(
            "resolved {} of {} new series",
            found.len(),
            missing.len()
        )));
    }
    Ok(found)
}

fn columns(
    points: &[PointRow],
    cache: &HashMap<SeriesKey, i64>,
    new: &HashMap<SeriesKey, i64>,
) -> PointColumns {
    let mut c = PointColumns::default();
    let mut last: Option<(&Arc<SeriesKey>, i64)> = None;
    for p in points {
        let id = match last {
            Some((k, id)) if Arc::ptr_eq(k, &p.key) => id,
            _ => {
                let id = cache.get(&*p.key).or_else(|| new.get(&*p.key)).copied();
                // resolve_series guarantees every key is in one of the maps.
                let id = id.unwrap_or_default();
                last = Some((&p.key, id));
                id
            }
        };
        let (value, text, _) = split_value(&p.value);
        c.ids.push(id);
        c.times.push(to_time(p.ts_ms));
        c.values.push(value);
        c.texts.push(text.map(str::to_string));
        c.qualities.push(quality_code(p.quality));
    }
    c
}

async fn insert_copy(tx: &Transaction<'_>, c: &PointColumns) -> Result<u64, StoreError> {
    if c.len() == 0 {
        return Ok(0);
    }
    let sink = tx
        .copy_in("COPY fl_staging (series_id, time, value, value_text, quality) FROM STDIN (FORMAT binary)")
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &POINT_TYPES);
    pin_mut!(writer);
    for i in 0..c.len() {
        writer
            .as_mut()
            .write(&[
                &c.ids[i],
                &c.times[i],
                &c.values[i],
                &c.texts[i],
                &c.qualities[i],
            ])
            .await?;
    }
    writer.finish().await?;
    let n = tx
        .execute(
            "INSERT INTO points (series_id, time, value, value_text, quality)
             SELECT series_id, time, value, value_text, quality FROM fl_staging
             ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
    Ok(n)
}

async fn insert_unnest(
    tx: &Transaction<'_>,
    c: &PointColumns,
    statement_rows: usize,
) -> Result<u64, StoreError> {
    let mut total = 0;
    let mut start = 0;
    while start < c.len() {
        let end = (start + statement_rows).min(c.len());
        total += tx
            .execute(
                "INSERT INTO points (series_id, time, value, value_text, quality)
                 SELECT * FROM unnest($1::int8[], $2::timestamptz[], $3::float8[], $4::text[], $5::int2[])
                 ON CONFLICT DO NOTHING",
                &[
                    &&c.ids[start..end],
                    &&c.times[start..end],
                    &&c.values[start..end],
                    &&c.texts[start..end],
                    &&c.qualities[start..end],
                ],
            )
            .await?;
        start = end;
    }
    Ok(total)
}

/// Rows per statement on the VALUES path: 5 parameters a row, under 65,535.
const VALUES_CHUNK: usize = 10_000;

async fn insert_values(
    tx: &Transaction<'_>,
    c: &PointColumns,
    statement_rows: usize,
) -> Result<u64, StoreError> {
    let mut total = 0;
    let mut start = 0;
    while start < c.len() {
        let end = (start + statement_rows.min(VALUES_CHUNK)).min(c.len());
        let mut sql = String::from(
            "INSERT INTO points (series_id, time, value, value_text, quality) VALUES ",
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity((end - start) * 5);
        for (row, i) in (start..end).enumerate() {
            if row > 0 {
                sql.push(',');
            }
            let b = row * 5;
            sql.push_str(&format!(
                "(${},${},${},${},${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            ));
            params.extend_from_slice(&[
                &c.ids[i],
                &c.times[i],
                &c.values[i],
                &c.texts[i],
                &c.qualities[i],
            ]);
        }
        sql.push_str(" ON CONFLICT DO NOTHING");
        total += tx.execute(sql.as_str(), &params).await?;
        start = end;
    }
    Ok(total)
}

/// Events, acknowledgements and dead letters; returns the dead letters deleted for their
/// gateway's cap.
async fn write_messages(
    tx: &Transaction<'_>,
    batch: &WriteBatch,
    limits: DeadLetterLimits,
) -> Result<u64, StoreError> {
    let mut buckets: Vec<&str> = Vec::new();
    for d in &batch.dead_letters {
        let bucket = DeadLetter::gateway_bucket(&d.topic);
        let keep = d.payload.len().min(limits.payload_bytes);
        let sha: Option<&[u8]> = d.sha256.as_ref().map(|h| &h[..]);
        tx.execute(
            "INSERT INTO dead_letters (received_at, topic, reason, detail, payload, gateway, size, sha256)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &to_time(d.received_ms),
                &d.topic,
                &d.reason,
                &d.detail,
                &&d.payload[..keep],
                &bucket,
                &(d.size as i64),
                &sha,
            ],
        )
        .await?;
        if !buckets.contains(&bucket) {
            buckets.push(bucket);
        }
    }
    let mut dropped = 0u64;
    for bucket in buckets {
        dropped += tx
            .execute(
                "DELETE FROM dead_letters WHERE gateway = $1 AND id <= (
                     SELECT id FROM dead_letters WHERE gateway = $1
                     ORDER BY id DESC OFFSET $2 LIMIT 1)",
                &[&bucket, &(limits.per_gateway as i64)],
            )
            .await?;
    }
    for (table, msgs) in [
        ("gateway_events", &batch.events),
        ("command_acks", &batch.acks),
    ] {
        for m in msgs {
            tx.execute(
                &format!(
                    "INSERT INTO {table} (gateway, received_at, body) VALUES ($1, $2, $3::text::jsonb)"
                ),
                &[&m.gateway.as_str(), &to_time(m.received_ms), &m.body.to_string()],
            )
            .await?;
        }
    }
    Ok(dropped)
}

async fn write_quota_drops(tx: &Transaction<'_>, batch: &WriteBatch) -> Result<(), StoreError> {
    for (gw, d) in &batch.quota_drops {
        tx.execute(
            "INSERT INTO gateways (gateway, first_seen, quota_dropped_messages,
                                   quota_dropped_points, quota_dropped_at)
             VALUES ($1, now(), $2, $3, $4)
             ON CONFLICT (gateway) DO UPDATE
             SET quota_dropped_messages =
                   gateways.quota_dropped_messages + excluded.quota_dropped_messages,
                 quota_dropped_points = gateways.quota_dropped_points + excluded.quota_dropped_points,
                 quota_dropped_at = greatest(gateways.quota_dropped_at, excluded.quota_dropped_at)",
            &[
                &gw.as_str(),
                &d.messages,
                &d.points,
                &d.last_at_ms.map(to_time),
            ],
        )
        .await?;
    }
    Ok(())
}
