//! Parked telemetry: aliased batches committed before the birth they name is known.
//!
//! Rows are added by [`WriteBatch::parked`] and removed by [`WriteBatch::unparked`], each in
//! the transaction of the batch that carries them, so a crash at any point leaves a message
//! either parked or resolved (its points stored or its dead letter written), never both gone.
//! A message resolved twice (two instances, or a retry after a lost commit) stores its points
//! twice into the idempotent points table: harmless.

use fieldlink_protocol::Ident;
use rusqlite::params;

use super::sqlite::SqliteStore;
use super::{ParkedGroup, ParkedRow, ParkedTelemetry, Store, StoreError};

/// Most groups [`Store::parked_groups`] returns; more are found on the next call, once the
/// first are resolved.
pub const MAX_GROUPS: i64 = 1_000;

fn ident(s: &str) -> Result<Ident, StoreError> {
    Ident::new(s).map_err(|e| StoreError::Corrupt(format!("parked gateway {s:?}: {e}")))
}

impl Store {
    /// The births parked messages wait for, oldest wait first, at most [`MAX_GROUPS`].
    pub async fn parked_groups(&self) -> Result<Vec<ParkedGroup>, StoreError> {
        match self {
            Store::Postgres(s) => s.parked_groups().await,
            Store::Sqlite(s) => s.parked_groups().await,
        }
    }

    /// The messages parked for one birth, oldest first, at most `limit`; with `received_before`,
    /// only those received before that time.
    pub async fn parked(
        &self,
        group: &ParkedGroup,
        received_before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ParkedRow>, StoreError> {
        match self {
            Store::Postgres(s) => s.parked(group, received_before, limit).await,
            Store::Sqlite(s) => s.parked(group, received_before, limit).await,
        }
    }
}

impl SqliteStore {
    async fn parked_groups(&self) -> Result<Vec<ParkedGroup>, StoreError> {
        self.call(|st| {
            let mut stmt = st.conn.prepare_cached(
                "SELECT gateway, config_hash, table_check, count(*), min(received_at)
                 FROM parked_telemetry GROUP BY gateway, config_hash, table_check
                 ORDER BY min(received_at) LIMIT ?1",
            )?;
            let rows = stmt
                .query_map([MAX_GROUPS], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(gw, config_hash, table_check, messages, oldest_ms)| {
                    Ok(ParkedGroup {
                        gateway: ident(&gw)?,
                        config_hash,
                        table_check,
                        messages,
                        oldest_ms,
                    })
                })
                .collect()
        })
        .await
    }

    async fn parked(
        &self,
        group: &ParkedGroup,
        received_before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ParkedRow>, StoreError> {
        let g = group.clone();
        self.call(move |st| {
            let mut stmt = st.conn.prepare_cached(
                "SELECT id, received_at, topic, payload FROM parked_telemetry
                 WHERE gateway = ?1 AND config_hash = ?2 AND table_check = ?3
                   AND received_at < ?4
                 ORDER BY id LIMIT ?5",
            )?;
            let rows = stmt
                .query_map(
                    params![
                        g.gateway.as_str(),
                        g.config_hash,
                        g.table_check,
                        received_before.unwrap_or(i64::MAX),
                        limit
                    ],
                    |r| {
                        Ok(ParkedRow {
                            id: r.get(0)?,
                            message: ParkedTelemetry {
                                gateway: g.gateway.clone(),
                                config_hash: g.config_hash.clone(),
                                table_check: g.table_check,
                                received_ms: r.get(1)?,
                                topic: r.get(2)?,
                                payload: r.get(3)?,
                            },
                        })
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}

/// Adds and removes parked rows inside the writer's SQLite transaction.
pub(super) fn write_sqlite(
    tx: &rusqlite::Transaction<'_>,
    parked: &[ParkedTelemetry],
    unparked: &[i64],
) -> Result<(), StoreError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO parked_telemetry (gateway, config_hash, table_check, received_at, topic, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for p in parked {
        insert.execute(params![
            p.gateway.as_str(),
            p.config_hash,
            p.table_check,
            p.received_ms,
            p.topic,
            p.payload
        ])?;
    }
    let mut delete = tx.prepare_cached("DELETE FROM parked_telemetry WHERE id = ?1")?;
    for id in unparked {
        delete.execute([id])?;
    }
    Ok(())
}
