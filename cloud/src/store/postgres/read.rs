//! The read side: registry, raw points, aggregates, latest values, dead letters; and the hourly
//! rollup that plain PostgreSQL keeps in place of a continuous aggregate.
//!
//! Aggregates over whole hours come from the hourly rollup (TimescaleDB's real-time continuous
//! aggregate, or on plain PostgreSQL `points_hourly` for clean hours plus the raw points of the
//! hours still marked dirty, in one statement); other widths are computed from raw points with
//! `time_bucket` or `date_bin`. Every bucket is aligned on the Unix epoch.

use fieldlink_protocol::Ident;
use tokio_postgres::Row;

use super::super::types::{join_value, quality_from};
use super::super::{
    Backend, Bucket, DeadLetter, GatewayInfo, Interval, Latest, QuotaDrops, SeriesInfo, SeriesKey,
    StoreError, StoredBirth, StoredDeadLetter, StoredPoint,
};
use super::{from_time, to_time, PgStore};

fn ident(s: &str) -> Result<Ident, StoreError> {
    Ident::new(s).map_err(|e| StoreError::Corrupt(format!("identifier {s:?}: {e}")))
}

fn stored_point(r: &Row) -> StoredPoint {
    StoredPoint {
        ts_ms: from_time(r.get(0)),
        value: join_value(r.get(4), r.get(1), r.get(2)),
        quality: quality_from(r.get(3)),
    }
}

fn bucket(r: &Row) -> Bucket {
    Bucket {
        start_ms: from_time(r.get(0)),
        avg: r.get(1),
        min: r.get(2),
        max: r.get(3),
        count: r.get(4),
    }
}

impl PgStore {
    pub async fn gateway(&self, gateway: &Ident) -> Result<Option<GatewayInfo>, StoreError> {
        Ok(self.gateways_where(Some(gateway.as_str())).await?.pop())
    }

    pub async fn gateways(&self) -> Result<Vec<GatewayInfo>, StoreError> {
        self.gateways_where(None).await
    }

    pub async fn birth(
        &self,
        gateway: &Ident,
        config_hash: &str,
    ) -> Result<Option<StoredBirth>, StoreError> {
        let mut held = self.hold().await?;
        let row = held
            .client()
            .query_opt(
                "SELECT table_check, received_at, body FROM gateway_births
                 WHERE gateway = $1 AND config_hash = $2",
                &[&gateway.as_str(), &config_hash],
            )
            .await?;
        Ok(row.map(|r| StoredBirth {
            gateway: gateway.clone(),
            config_hash: config_hash.to_string(),
            table_check: r.get(0),
            received_ms: from_time(r.get(1)),
            body: r.get(2),
        }))
    }

    async fn gateways_where(&self, only: Option<&str>) -> Result<Vec<GatewayInfo>, StoreError> {
        let mut held = self.hold().await?;
        let rows = held
            .client()
            .query(
                "SELECT gateway, online, agent_version, config_hash, registered, last_seen, name,
                        quota_dropped_messages, quota_dropped_points, quota_dropped_at
                 FROM gateways WHERE $1::text IS NULL OR gateway = $1 ORDER BY gateway",
                &[&only],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(GatewayInfo {
                    gateway: ident(r.get(0))?,
                    online: r.get(1),
                    agent_version: r.get(2),
                    config_hash: r.get(3),
                    registered: r.get(4),
                    last_seen_ms: r.get::<_, Option<std::time::SystemTime>>(5).map(from_time),
                    name: r.get(6),
                    quota: QuotaDrops {
                        messages: r.try_get(7)?,
                        points: r.try_get(8)?,
                        last_at_ms: r
                            .try_get::<_, Option<std::time::SystemTime>>(9)?
                            .map(from_time),
                    },
                })
            })
            .collect()
    }

    pub async fn devices(&self, gateway: &Ident) -> Result<Vec<Ident>, StoreError> {
        let mut held = self.hold().await?;
        let rows = held
            .client()
            .query(
                "SELECT device FROM devices WHERE gateway = $1 ORDER BY device",
                &[&gateway.as_str()],
            )
            .await?;
        rows.iter().map(|r| ident(r.get(0))).collect()
    }

    pub async fn series_of_device(
        &self,
        gateway: &Ident,
        device: &Ident,
    ) -> Result<Vec<SeriesInfo>, StoreError> {
        let mut held = self.hold().await?;
        let rows = held
            .client()
            .query(
                "SELECT series_id, metric, unit, writable FROM series
                 WHERE gateway = $1 AND device = $2 ORDER BY metric",
                &[&gateway.as_str(), &device.as_str()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SeriesInfo {
                    series_id: r.get(0),
                    key: SeriesKey {
                        gateway: gateway.clone(),
                        device: device.clone(),
                        metric: ident(r.get(1))?,
                    },
                    unit: r.get(2),
                    writable: r.get(3),
                })
            })
            .collect()
    }

    pub async fn series_id(&self, key: &SeriesKey) -> Result<Option<i64>, StoreError> {
        let mut held = self.hold().await?;
        let row = held
            .client()
            .query_opt(
                "SELECT series_id FROM series WHERE gateway = $1 AND device = $2 AND metric = $3",
                &[
                    &key.gateway.as_str(),
                    &key.device.as_str(),
                    &key.metric.as_str(),
                ],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn raw_points(
        &self,
        series_id: i64,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<StoredPoint>, StoreError> {
        let mut held = self.hold().await?;
        let rows = held
            .client()
            .query(
                "SELECT p.time, p.value, p.value_text, p.quality, s.value_kind
                 FROM points p JOIN series s USING (series_id)
                 WHERE p.series_id = $1 AND p.time >= $2 AND p.time < $3
                 ORDER BY p.time LIMIT $4",
                &[&series_id, &to_time(from_ms), &to_time(to_ms), &limit],
            )
            .await?;
        Ok(rows.iter().map(stored_point).collect())
    }

    pub async fn aggregates(
        &self,
        series_id: i64,
        from_ms: i64,
        to_ms: i64,
        interval: Interval,
    ) -> Result<Vec<Bucket>, StoreError> {
        let secs = interval.as_secs() as f64;
        let from = to_time(from_ms);
        let to = to_time(to_ms);
        let bin = match self.backend {
            Backend::Timescale => "time_bucket",
            _ => "date_bin",
        };
        let hourly = interval.as_secs().is_multiple_of(3_600);
        let sql = match (hourly, self.backend) {
            (true, Backend::Timescale) => format!(
                "SELECT {bin}(make_interval(secs => $4), bucket, TIMESTAMPTZ 'epoch') AS b,
                        sum(sum) / NULLIF(sum(nvalues), 0), min(min), max(max), sum(count)::bigint
                 FROM points_hourly
                 WHERE series_id = $1 AND bucket >= $2 AND bucket < $3
                 GROUP BY b ORDER BY b"
            ),
            (true, _) => format!(
                "WITH dirty AS (SELECT bucket FROM rollup_dirty WHERE bucket >= $2 AND bucket < $3),
                 hours AS (
                   SELECT bucket, min, max, count, nvalues, sum FROM points_hourly
                    WHERE series_id = $1 AND bucket >= $2 AND bucket < $3
                      AND bucket NOT IN (SELECT bucket FROM dirty)
                   UNION ALL
                   SELECT date_bin(INTERVAL '1 hour', time, TIMESTAMPTZ 'epoch') AS bucket,
                          min(value), max(value), count(*), count(value), sum(value)
                    FROM points
                    WHERE series_id = $1 AND time >= $2 AND time < $3
                      AND date_bin(INTERVAL '1 hour', time, TIMESTAMPTZ 'epoch') IN (SELECT bucket FROM dirty)
                    GROUP BY 1)
                 SELECT {bin}(make_interval(secs => $4), bucket, TIMESTAMPTZ 'epoch') AS b,
                        sum(sum) / NULLIF(sum(nvalues), 0), min(min), max(max), sum(count)::bigint
                 FROM hours GROUP BY b ORDER BY b"
            ),
            (false, _) => format!(
                "SELECT {bin}(make_interval(secs => $4), time, TIMESTAMPTZ 'epoch') AS b,
                        avg(value), min(value), max(value), count(*)
                 FROM points WHERE series_id = $1 AND time >= $2 AND time < $3
                 GROUP BY b ORDER BY b"
            ),
        };
        let mut held = self.hold().await?;
        let rows = held
            .client()
            .query(sql.as_str(), &[&series_id, &from, &to, &secs])
            .await?;
        Ok(rows.iter().map(bucket).collect())
    }

    pub async fn latest(&self, series_ids: &[i64]) -> Result<Vec<Latest>, StoreError> {
        let mut held = self.hold().await?;
        let rows = held
            .client()
            .query(
                "SELECT p.time, p.value, p.value_text, p.quality, s.value_kind, s.series_id
                 FROM series s CROSS JOIN LATERAL (
                   SELECT time, value, value_text, quality FROM points
                   WHERE series_id = s.series_id ORDER BY time DESC LIMIT 1) p
                 WHERE s.series_id = ANY($1)
                 ORDER BY s.series_id",
                &[&series_ids],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Latest {
                series_id: r.get(5),
                point: stored_point(r),
            })
            .collect())
    }

    pub async fn dead_letter_page(
        &self,
        before: Option<i64>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<StoredDeadLetter>, StoreError> {
        let mut held = self.hold().await?;
        let rows = held
            .client()
            .query(
                "SELECT id, received_at, topic, reason, detail, payload, size, sha256
                 FROM dead_letters WHERE $1::bigint IS NULL OR id < $1
                 ORDER BY id DESC LIMIT $2 OFFSET $3",
                &[&before, &limit, &offset],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.try_get(0)?;
                let size: i64 = r.try_get(6)?;
                let sha: Vec<u8> = r.try_get(7)?;
                let corrupt =
                    |what: String| StoreError::Corrupt(format!("dead letter {id}: {what}"));
                Ok(StoredDeadLetter {
                    id,
                    letter: DeadLetter {
                        received_ms: from_time(r.try_get(1)?),
                        topic: r.try_get(2)?,
                        reason: r.try_get(3)?,
                        detail: r.try_get(4)?,
                        payload: r.try_get(5)?,
                        size: u64::try_from(size).map_err(|_| corrupt(format!("size {size}")))?,
                        sha256: Some(sha.try_into().map_err(|v: Vec<u8>| {
                            corrupt(format!("sha256 of {} bytes", v.len()))
                        })?),
                    },
                })
            })
            .collect()
    }

    /// Deletes dead letters received before `before_ms`; returns how many.
    pub async fn expire_dead_letters(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut held = self.hold().await?;
        Ok(held
            .client()
            .execute(
                "DELETE FROM dead_letters WHERE received_at < $1",
                &[&to_time(before_ms)],
            )
            .await?)
    }

    pub async fn count_points(&self) -> Result<i64, StoreError> {
        let mut held = self.hold().await?;
        let row = held
            .client()
            .query_one("SELECT count(*) FROM points", &[])
            .await?;
        Ok(row.get(0))
    }

    /// Plain PostgreSQL: recompute the hours marked dirty, in one transaction that also clears
    /// the marks. A writer that marks an hour while this runs either waits for it (and marks
    /// the hour again) or committed before it (and its points are counted).
    pub async fn refresh_rollup(&self) -> Result<u64, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(0);
        }
        let mut held = self.hold().await?;
        let tx = held.client().transaction().await?;
        let hours: Vec<std::time::SystemTime> = tx
            .query("DELETE FROM rollup_dirty RETURNING bucket", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !hours.is_empty() {
            tx.execute(
                "INSERT INTO points_hourly (series_id, bucket, avg, min, max, count, nvalues, sum)
                 SELECT p.series_id, h.bucket, avg(p.value), min(p.value), max(p.value),
                        count(*), count(p.value), sum(p.value)
                 FROM unnest($1::timestamptz[]) AS h(bucket)
                 JOIN points p ON p.time >= h.bucket AND p.time < h.bucket + INTERVAL '1 hour'
                 GROUP BY p.series_id, h.bucket
                 ON CONFLICT (series_id, bucket) DO UPDATE SET avg = excluded.avg,
                   min = excluded.min, max = excluded.max, count = excluded.count,
                   nvalues = excluded.nvalues, sum = excluded.sum",
                &[&hours],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(hours.len() as u64)
    }
}
