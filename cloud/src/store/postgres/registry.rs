//! The registry's operator side (registering and unregistering gateways) and device health:
//! reports applied in the ingest transaction, states read back (see `store/health.rs`).

use std::time::SystemTime;

use fieldlink_protocol::Ident;
use tokio_postgres::{GenericClient, Transaction};

use super::super::health::{DeviceHealth, HealthReport, HealthRow};
use super::super::{StoreError, Unregistered, WriteBatch};
use super::{from_time, to_time, PgStore};

fn ident(s: &str) -> Result<Ident, StoreError> {
    Ident::new(s).map_err(|e| StoreError::Corrupt(format!("identifier {s:?}: {e}")))
}

impl PgStore {
    pub async fn register(
        &self,
        gateway: &Ident,
        name: Option<String>,
    ) -> Result<bool, StoreError> {
        let mut held = self.hold().await?;
        let tx = held.client().transaction().await?;
        let before = tx
            .query_opt(
                "SELECT registered FROM gateways WHERE gateway = $1 FOR UPDATE",
                &[&gateway.as_str()],
            )
            .await?
            .map(|r| r.get::<_, bool>(0));
        tx.execute(
            "INSERT INTO gateways (gateway, registered, name) VALUES ($1, true, $2)
             ON CONFLICT (gateway) DO UPDATE
             SET registered = true, name = coalesce(excluded.name, gateways.name)",
            &[&gateway.as_str(), &name],
        )
        .await?;
        tx.commit().await?;
        Ok(before != Some(true))
    }

    pub async fn unregister(&self, gateway: &Ident) -> Result<Unregistered, StoreError> {
        let mut held = self.hold().await?;
        let tx = held.client().transaction().await?;
        let row = tx
            .query_opt(
                "SELECT registered,
                        last_seen IS NULL AND status_at IS NULL
                        AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.gateway = g.gateway)
                        AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.gateway = g.gateway)
                 FROM gateways g WHERE gateway = $1 FOR UPDATE",
                &[&gateway.as_str()],
            )
            .await?
            .map(|r| (r.get::<_, bool>(0), r.get::<_, bool>(1)));
        let outcome = match row {
            None | Some((false, _)) => Unregistered::NotRegistered,
            Some((true, true)) => {
                tx.execute(
                    "DELETE FROM gateways WHERE gateway = $1",
                    &[&gateway.as_str()],
                )
                .await?;
                Unregistered::Deleted
            }
            Some((true, false)) => {
                tx.execute(
                    "UPDATE gateways SET registered = false WHERE gateway = $1",
                    &[&gateway.as_str()],
                )
                .await?;
                Unregistered::Kept
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    pub async fn device_health(
        &self,
        gateway: &Ident,
        device: Option<Ident>,
    ) -> Result<Vec<DeviceHealth>, StoreError> {
        let mut held = self.hold().await?;
        let rows = health_rows(held.client(), gateway, device.as_ref()).await?;
        Ok(rows.into_iter().map(HealthRow::resolve).collect())
    }
}

async fn health_rows(
    client: &impl GenericClient,
    gateway: &Ident,
    device: Option<&Ident>,
) -> Result<Vec<HealthRow>, StoreError> {
    let rows = client
        .query(
            "SELECT d.device, d.health_state, d.health_at, d.health_epoch, d.last_error,
                    d.last_error_at, g.online, g.boot_epoch, g.status_at
             FROM devices d JOIN gateways g USING (gateway)
             WHERE d.gateway = $1 AND ($2::text IS NULL OR d.device = $2) ORDER BY d.device",
            &[&gateway.as_str(), &device.map(|d| d.as_str())],
        )
        .await?;
    let time = |t: Option<SystemTime>| t.map(from_time);
    rows.iter()
        .map(|r| {
            Ok(HealthRow {
                gateway: gateway.clone(),
                device: ident(r.get(0))?,
                health_state: r.get(1),
                health_at_ms: time(r.get(2)),
                health_epoch: r.get(3),
                last_error: r.get(4),
                last_error_ms: time(r.get(5)),
                gateway_online: r.get(6),
                gateway_epoch: r.get(7),
                status_at_ms: time(r.get(8)),
            })
        })
        .collect()
}

/// Applies health reports in arrival order; a report older (by boot epoch and sequence
/// number) than the stored one changes nothing.
pub(super) async fn write_health(
    tx: &Transaction<'_>,
    reports: &[HealthReport],
) -> Result<(), StoreError> {
    if reports.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare(
            "INSERT INTO devices (gateway, device, health_state, health_at, health_epoch,
                                  health_seq, last_error, last_error_at)
             VALUES ($1, $2, $3, $4::timestamptz, $5, $6, $7::text,
                     CASE WHEN $7::text IS NULL THEN NULL ELSE $4::timestamptz END)
             ON CONFLICT (gateway, device) DO UPDATE
             SET health_state = excluded.health_state, health_at = excluded.health_at,
                 health_epoch = excluded.health_epoch, health_seq = excluded.health_seq,
                 last_error = coalesce(excluded.last_error, devices.last_error),
                 last_error_at = coalesce(excluded.last_error_at, devices.last_error_at)
             WHERE devices.health_epoch IS NULL
                OR (excluded.health_epoch, excluded.health_seq)
                   > (devices.health_epoch, devices.health_seq)",
        )
        .await?;
    for h in reports {
        tx.execute(
            &stmt,
            &[
                &h.gateway.as_str(),
                &h.device.as_str(),
                &h.state.as_str(),
                &to_time(h.at_ms),
                &h.boot_epoch,
                &h.seq,
                &h.error,
            ],
        )
        .await?;
    }
    Ok(())
}

/// See [`super::super::WriteOutcome::device_health`].
pub(super) async fn touched_health(
    tx: &Transaction<'_>,
    batch: &WriteBatch,
) -> Result<Vec<DeviceHealth>, StoreError> {
    let mut out = Vec::new();
    for (gw, devices) in super::super::health_touched(batch) {
        for row in health_rows(tx, &gw, None).await? {
            if devices.as_ref().is_none_or(|d| d.contains(&row.device)) {
                out.push(row.resolve());
            }
        }
    }
    Ok(out)
}
