//! Telemetry and health reads: series, raw points, aggregates, latest values, dead letters.

use super::*;

impl SqliteStore {
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
}

fn stored_point(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredPoint> {
    Ok(StoredPoint {
        ts_ms: r.get(0)?,
        value: join_value(r.get(4)?, r.get(1)?, r.get(2)?),
        quality: quality_from(r.get(3)?),
    })
}

pub(super) fn health_rows(
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
