//! Mode detection and migrations under `pg_advisory_lock`.
//!
//! The lock is session-level and taken on the store's only connection, so every instance that
//! starts against the same database applies migrations one after the other; the second finds
//! every version recorded and does nothing. A migration that runs in a transaction is recorded
//! in the same transaction. A no-transaction migration (TimescaleDB DDL) is recorded after its
//! last statement; its statements are idempotent, so a crash in between is repaired by running
//! it again.

use tokio_postgres::Client;

use super::super::migrations::{Flavour, POSTGRES};
use super::super::{Backend, StoreError, TimescaleMode};
use super::PgStore;

/// Arbitrary but fixed: the advisory lock key of Fieldlink migrations ("FLDLNK" in ASCII).
const LOCK_KEY: i64 = 0x46_4C_44_4C_4E_4B;

pub(super) async fn detect(client: &Client, wanted: TimescaleMode) -> Result<Backend, StoreError> {
    let recorded = client
        .query_opt(
            "SELECT mode FROM schema_migrations ORDER BY version LIMIT 1",
            &[],
        )
        .await
        .ok()
        .flatten()
        .map(|r| r.get::<_, String>(0));
    let available = client
        .query_opt(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'",
            &[],
        )
        .await?
        .is_some();
    let found = if available && wanted != TimescaleMode::Off {
        Backend::Timescale
    } else {
        Backend::Postgres
    };
    match recorded.as_deref() {
        Some("timescaledb") if available => Ok(Backend::Timescale),
        Some("timescaledb") => Err(StoreError::TimescaleMissing),
        Some("postgres") if wanted == TimescaleMode::Require => Err(StoreError::ModeMismatch {
            recorded: "postgres".into(),
            found: "timescaledb (required)".into(),
        }),
        Some("postgres") => Ok(Backend::Postgres),
        Some(other) => Err(StoreError::Corrupt(format!(
            "schema_migrations records unknown mode {other:?}"
        ))),
        None if wanted == TimescaleMode::Require && !available => Err(StoreError::TimescaleMissing),
        None => Ok(found),
    }
}

impl PgStore {
    pub async fn migrate(&self) -> Result<Vec<i32>, StoreError> {
        let mut held = self.hold().await?;
        let client = held.client();
        client
            .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
            .await?;
        let result = apply(client, self.backend).await;
        let unlock = client
            .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
            .await;
        let applied = result?;
        unlock?;
        if !applied.is_empty() {
            tracing::info!(backend = %self.backend, versions = ?applied, "applied migrations");
        }
        Ok(applied)
    }
}

async fn apply(client: &mut Client, backend: Backend) -> Result<Vec<i32>, StoreError> {
    let flavour = match backend {
        Backend::Timescale => Flavour::Timescale,
        _ => Flavour::Plain,
    };
    if backend == Backend::Timescale {
        client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            .await?;
    }
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                mode text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let done: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mode = backend.to_string();
    let mut applied = Vec::new();
    for m in POSTGRES
        .iter()
        .filter(|m| m.flavour == Flavour::Any || m.flavour == flavour)
    {
        if done.contains(&m.version) {
            continue;
        }
        let wrap = |e: tokio_postgres::Error| StoreError::Migration {
            version: m.version,
            name: m.name,
            source: Box::new(e.into()),
        };
        if m.no_transaction() {
            for stmt in m.statements() {
                client.batch_execute(stmt).await.map_err(wrap)?;
            }
            client
                .execute(
                    "INSERT INTO schema_migrations (version, name, mode) VALUES ($1, $2, $3)",
                    &[&m.version, &m.name, &mode],
                )
                .await?;
        } else {
            let tx = client.transaction().await?;
            tx.batch_execute(m.sql).await.map_err(wrap)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, mode) VALUES ($1, $2, $3)",
                &[&m.version, &m.name, &mode],
            )
            .await?;
            tx.commit().await?;
        }
        applied.push(m.version);
    }
    Ok(applied)
}
