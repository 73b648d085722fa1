//! The embedded store's schema: the migrations of `migrations/sqlite`, each once, in one transaction.

use super::*;

impl SqliteStore {
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
}
