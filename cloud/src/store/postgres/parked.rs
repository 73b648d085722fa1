//! Parked telemetry on PostgreSQL; see [`crate::store::parked`] for the invariants.

use tokio_postgres::Transaction;

use super::super::parked::MAX_GROUPS;
use super::super::{ParkedGroup, ParkedRow, ParkedTelemetry, StoreError};
use super::{from_time, to_time, PgStore};

impl PgStore {
    pub(crate) async fn parked_groups(&self) -> Result<Vec<ParkedGroup>, StoreError> {
        let mut held = self.hold().await?;
        let rows = held
            .client()
            .query(
                "SELECT gateway, config_hash, table_check, count(*), min(received_at)
                 FROM parked_telemetry GROUP BY gateway, config_hash, table_check
                 ORDER BY min(received_at) LIMIT $1",
                &[&MAX_GROUPS],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let gw: &str = r.try_get(0)?;
                Ok(ParkedGroup {
                    gateway: fieldlink_protocol::Ident::new(gw)
                        .map_err(|e| StoreError::Corrupt(format!("parked gateway {gw:?}: {e}")))?,
                    config_hash: r.try_get(1)?,
                    table_check: r.try_get(2)?,
                    messages: r.try_get(3)?,
                    oldest_ms: from_time(r.try_get(4)?),
                })
            })
            .collect()
    }

    pub(crate) async fn parked(
        &self,
        group: &ParkedGroup,
        received_before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ParkedRow>, StoreError> {
        let before = received_before.map(to_time);
        let mut held = self.hold().await?;
        let rows = held
            .client()
            .query(
                "SELECT id, received_at, topic, payload FROM parked_telemetry
                 WHERE gateway = $1 AND config_hash = $2 AND table_check = $3
                   AND ($4::timestamptz IS NULL OR received_at < $4)
                 ORDER BY id LIMIT $5",
                &[
                    &group.gateway.as_str(),
                    &group.config_hash,
                    &group.table_check,
                    &before,
                    &limit,
                ],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ParkedRow {
                    id: r.try_get(0)?,
                    message: ParkedTelemetry {
                        gateway: group.gateway.clone(),
                        config_hash: group.config_hash.clone(),
                        table_check: group.table_check,
                        received_ms: from_time(r.try_get(1)?),
                        topic: r.try_get(2)?,
                        payload: r.try_get(3)?,
                    },
                })
            })
            .collect()
    }
}

/// Adds and removes parked rows inside the writer's transaction.
pub(super) async fn write(
    tx: &Transaction<'_>,
    parked: &[ParkedTelemetry],
    unparked: &[i64],
) -> Result<(), StoreError> {
    for p in parked {
        tx.execute(
            "INSERT INTO parked_telemetry
               (gateway, config_hash, table_check, received_at, topic, payload)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &p.gateway.as_str(),
                &p.config_hash,
                &p.table_check,
                &to_time(p.received_ms),
                &p.topic,
                &p.payload,
            ],
        )
        .await?;
    }
    if !unparked.is_empty() {
        tx.execute(
            "DELETE FROM parked_telemetry WHERE id = ANY($1)",
            &[&unparked],
        )
        .await?;
    }
    Ok(())
}
