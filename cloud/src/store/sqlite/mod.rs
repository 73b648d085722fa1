//! The embedded store: one SQLite file, owned by one thread.
//!
//! Every operation is a closure sent to that thread over a bounded channel, with a oneshot for
//! the answer, so async callers never block on SQLite and the connection is never shared. The
//! file runs in WAL mode with `synchronous=NORMAL`: a commit survives a killed process, so
//! what ingest acknowledged survives `kill -9`. A power cut may lose the last commits, and as
//! they were acknowledged the broker will not send them again: where power cuts matter, use
//! PostgreSQL.
//!
//! Laid out as `store/postgres/` is: the schema (`migrate.rs`), writing a batch (`write.rs`),
//! the registry (`registry.rs`) and the reads (`read.rs`).

use fieldlink_plumbing::clock::now_ms;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use fieldlink_protocol::Ident;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::health::HealthRow;
use super::migrations::{Flavour, SQLITE};
use super::types::{join_value, quality_code, quality_from, split_value};
use super::*;

mod migrate;
mod read;
mod registry;
mod write;

type Job = Box<dyn FnOnce(&mut SqliteState) + Send>;

/// What the SQLite thread owns.
pub struct SqliteState {
    pub(super) conn: Connection,
    /// Committed series ids.
    series: HashMap<SeriesKey, i64>,
}

/// Handle to the SQLite thread. Dropping every handle ends the thread.
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    dead_letter_limits: DeadLetterLimits,
}

fn ident(s: String) -> Result<Ident, StoreError> {
    Ident::new(&s).map_err(|e| StoreError::Corrupt(format!("identifier {s:?}: {e}")))
}

impl SqliteStore {
    /// Opens (creating) the file and starts its thread. `:memory:` gives a private store.
    pub async fn open(path: PathBuf) -> Result<SqliteStore, StoreError> {
        let (tx, mut rx) = mpsc::channel::<Job>(64);
        let (ready_tx, ready_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("fieldlink-sqlite".into())
            .spawn(move || {
                let conn = match open_conn(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut state = SqliteState {
                    conn,
                    series: HashMap::new(),
                };
                while let Some(job) = rx.blocking_recv() {
                    job(&mut state);
                }
            })
            .map_err(|_| StoreError::SqliteGone)?;
        ready_rx.await.map_err(|_| StoreError::SqliteGone)??;
        Ok(SqliteStore {
            jobs: tx,
            dead_letter_limits: DeadLetterLimits::default(),
        })
    }

    pub(super) async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut SqliteState) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |state| {
                let _ = tx.send(f(state));
            }))
            .await
            .map_err(|_| StoreError::SqliteGone)?;
        rx.await.map_err(|_| StoreError::SqliteGone)?
    }

    pub fn set_dead_letter_limits(&mut self, limits: DeadLetterLimits) {
        self.dead_letter_limits = limits;
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(|st| Ok(st.conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }
}

fn open_conn(path: &PathBuf) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.clone(),
        source,
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}
