//! PostgreSQL and TimescaleDB, on one connection.
//!
//! One connection, not a pool: the TimescaleDB test double serves one connection at a time,
//! and ingest writes through one owner task anyway. The connection sits behind an async mutex;
//! a closed connection is replaced on the next call, so a database restart costs the calls made
//! while it was down (the writer retries them) and nothing else. The series cache survives
//! reconnects: ids are never reused.

pub mod channel;
mod migrate;
mod parked;
mod read;
mod registry;
mod write;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::{Client, NoTls};

use super::{Backend, DeadLetterLimits, SeriesKey, StoreError, TimescaleMode};

pub use write::InsertPath;

/// Default cap on the rows of one INSERT statement.
pub const DEFAULT_STATEMENT_ROWS: usize = 10_000;

/// What the connection mutex guards.
struct Session {
    client: Option<Client>,
    /// The temporary staging table exists on this connection.
    staging_ready: bool,
    /// Committed series ids.
    series: HashMap<SeriesKey, i64>,
}

pub struct PgStore {
    url: String,
    backend: Backend,
    insert_path: InsertPath,
    /// Most rows one INSERT statement carries; a batch larger than this takes several
    /// statements in the same transaction.
    statement_rows: usize,
    dead_letter_limits: DeadLetterLimits,
    session: Mutex<Session>,
}

/// A held, connected session.
struct Held<'a> {
    guard: MutexGuard<'a, Session>,
}

impl Held<'_> {
    fn client(&mut self) -> &mut Client {
        self.guard
            .client
            .as_mut()
            .expect("Held is only built around a connected session")
    }
}

/// A connection to PostgreSQL that could not be opened, naming where it was going.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to the database at {target}: {source}")]
pub struct Unreachable {
    /// `host:port` from the connection string ([`target`]); never its user or password.
    pub target: String,
    #[source]
    pub source: tokio_postgres::Error,
}

/// Where a connection string points, for messages: `host:port` (several joined by commas, a
/// Unix socket by its directory), never the user, the password or any other parameter.
pub fn target(url: &str) -> String {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return "an unparsable connection string".to_string();
    };
    let ports = config.get_ports();
    let port = |i: usize| match ports {
        [] => 5432,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(5432),
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            tokio_postgres::config::Host::Tcp(h) if h.contains(':') => format!("[{h}]:{}", port(i)),
            tokio_postgres::config::Host::Tcp(h) => format!("{h}:{}", port(i)),
            tokio_postgres::config::Host::Unix(dir) => {
                format!("{}/.s.PGSQL.{}", dir.display(), port(i))
            }
        })
        .collect();
    if hosts.is_empty() {
        "no host".to_string()
    } else {
        hosts.join(",")
    }
}

/// Opens a connection without TLS. Every connection the cloud makes to PostgreSQL (the store's,
/// the API's, the fan-out's) opens here, so a failure always names the database's address.
pub(crate) async fn connect(
    url: &str,
) -> Result<
    (
        Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    ),
    Unreachable,
> {
    tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|source| Unreachable {
            target: target(url),
            source,
        })
}

async fn open_client(url: &str) -> Result<Client, StoreError> {
    let (client, connection) = connect(url).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

impl PgStore {
    /// Connects and decides between plain PostgreSQL and TimescaleDB: the mode a database was
    /// first migrated in wins; otherwise TimescaleDB when the server offers it (unless `Off`).
    pub async fn connect(url: &str, timescale: TimescaleMode) -> Result<PgStore, StoreError> {
        let client = open_client(url).await?;
        let backend = migrate::detect(&client, timescale).await?;
        tracing::info!(backend = %backend, database = %target(url), "connected to the database");
        Ok(PgStore {
            url: url.to_string(),
            backend,
            insert_path: InsertPath::default(),
            statement_rows: DEFAULT_STATEMENT_ROWS,
            dead_letter_limits: DeadLetterLimits::default(),
            session: Mutex::new(Session {
                client: Some(client),
                staging_ready: false,
                series: HashMap::new(),
            }),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Chooses how points are inserted (the benchmark compares them).
    pub fn set_dead_letter_limits(&mut self, limits: DeadLetterLimits) {
        self.dead_letter_limits = limits;
    }

    pub(crate) fn dead_letter_limits(&self) -> DeadLetterLimits {
        self.dead_letter_limits
    }

    pub fn set_insert_path(&mut self, path: InsertPath) {
        self.insert_path = path;
    }

    pub fn insert_path(&self) -> InsertPath {
        self.insert_path
    }

    /// Caps the rows of one INSERT. The TimescaleDB test double drops the connection on
    /// protocol messages larger than about 64 KiB, so its tests set a few hundred.
    pub fn set_statement_rows(&mut self, rows: usize) {
        self.statement_rows = rows.max(1);
    }

    async fn hold(&self) -> Result<Held<'_>, StoreError> {
        let mut guard = self.session.lock().await;
        let closed = guard.client.as_ref().is_none_or(|c| c.is_closed());
        if closed {
            guard.client = None;
            guard.staging_ready = false;
            guard.client = Some(open_client(&self.url).await?);
            tracing::info!(database = %target(&self.url), "reconnected to the database");
        }
        Ok(Held { guard })
    }

    /// Whether the database answers (readiness). A connection that broke since the last call
    /// fails this one naming the database's address, as the reconnect of the next one does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut held = self.hold().await?;
        held.client()
            .simple_query("SELECT 1")
            .await
            .map_err(|source| Unreachable {
                target: target(&self.url),
                source,
            })?;
        Ok(())
    }
}

pub(crate) fn to_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

pub(crate) use fieldlink_plumbing::clock::epoch_ms as from_time;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_on_both_sides_of_the_epoch() {
        for ms in [0, 1, -1, 1_700_000_000_123, -86_400_000] {
            assert_eq!(from_time(to_time(ms)), ms);
        }
    }
}
