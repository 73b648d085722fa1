//! Gateways: registration, the registry's reads, births and devices.

use super::*;

impl SqliteStore {
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
