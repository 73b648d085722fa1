//! Storage: the series dictionary, the narrow points table, the registry and dead letters, on
//! one of three backends behind one interface.
//!
//! Invariants every backend keeps:
//! - A [`WriteBatch`] commits in one transaction or not at all; [`Store::write`] returns only
//!   after the commit, and ingest acknowledges MQTT messages only after that return.
//! - A point's identity is (series, time). A second point with the same identity is ignored, so a
//!   replayed batch stores nothing twice (`ON CONFLICT DO NOTHING`, `INSERT OR IGNORE`).
//! - The series ids a backend caches are only those of committed rows, so a rolled-back batch
//!   cannot leave a dangling id behind.
//! - Migrations run before anything else touches the database; on PostgreSQL under an advisory
//!   lock, so instances starting together apply each version once.
//! - Gateway status order (births and deaths, `gateways.online/boot_epoch/status_at`): a status
//!   applies when nothing is stored yet; a **birth** when its boot epoch is newer than the
//!   stored one or it was received at or after the stored status (a birth is proof of a new
//!   session, so a counter that went backwards, state wiped or image restored, is online again
//!   with its next birth, and that birth clears the device reports' order of the old boots);
//!   a **death** only when its epoch is the stored one or newer *and* it was received at or
//!   after the stored status. Redelivery and reordering: a redelivered status repeats its
//!   effect (same epoch, same or later receive time); a will of the previous session, which
//!   Mosquitto publishes when the new connection takes the client id, so before the new birth,
//!   cannot override that birth, whichever instance commits first; a retained status the broker
//!   hands out on a new subscription is the latest one. What the epochs cannot tell apart: after
//!   a reset, a death of the old numbering received *after* the new birth applies (it looks like
//!   the death of a newer session whose birth was lost, e.g. dead-lettered), and a birth of the
//!   old numbering redelivered after the new birth shows the old epoch until the next birth.
//!   Both need a message the broker held back across the reset; the next birth repairs either.
//! - Dead letters (`dead_letters`, migration 0210): a row holds at most
//!   [`DeadLetterLimits::payload_bytes`] of its payload with the whole payload's size and
//!   SHA-256, and the gateway bucket it counts against; a write deletes its buckets' rows past
//!   [`DeadLetterLimits::per_gateway`], oldest first, in the same transaction (so a crash leaves
//!   either both or neither), and [`Store::expire_dead_letters`] deletes rows past their age.

pub mod failure;
mod health;
mod migrations;
pub mod parked;
mod postgres;
mod sqlite;
mod types;

use std::path::PathBuf;
use std::sync::Arc;

pub use failure::{Classify, Failure};
pub use health::{DeviceHealth, DeviceState, HealthReport, ReportedState};
pub use migrations::{Flavour, Migration};
pub(crate) use postgres::connect as pg_connect;
pub use postgres::{
    channel as pg_channel, target as pg_target, InsertPath, PgStore, Unreachable as PgUnreachable,
    DEFAULT_STATEMENT_ROWS,
};
pub use sqlite::SqliteStore;
pub use types::*;

use fieldlink_protocol::Ident;

/// Why a database call failed: one error for both database layers, the telemetry store and the
/// records ([`crate::records::DbError`] is this type).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Unreachable(#[from] postgres::Unreachable),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the sqlite thread has stopped")]
    SqliteGone,
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i32,
        name: &'static str,
        #[source]
        source: Box<StoreError>,
    },
    #[error(
        "the database was migrated as {recorded} but this service found {found}; refusing to mix"
    )]
    ModeMismatch { recorded: String, found: String },
    #[error("TimescaleDB was required but the database does not offer the extension")]
    TimescaleMissing,
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("opening {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A records call the database did not answer in time (its connection is replaced).
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("unexpected column type {0}")]
    ColumnType(String),
    /// A records row with a NULL where the schema has a value, or a cell of another type.
    #[error("{table}.{column}: expected {expected}, found {found}")]
    Column {
        table: &'static str,
        column: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    /// A records value the code cannot parse.
    #[error("{table}.{column}: cannot read {value:?}")]
    Unreadable {
        table: &'static str,
        column: &'static str,
        value: String,
    },
}

impl StoreError {
    /// Whether retrying the same operation later may succeed (a dropped connection, a restart).
    pub fn is_transient(&self) -> bool {
        match self {
            // No SQLSTATE: the connection broke. Classes 08 (connection), 40 (serialization,
            // deadlock), 53 (resources) and 57 (operator intervention: shutdown, restart).
            StoreError::Postgres(e) => match e.code() {
                None => true,
                Some(code) => ["08", "40", "53", "57"]
                    .iter()
                    .any(|class| code.code().starts_with(class)),
            },
            StoreError::Unreachable(_) | StoreError::Timeout(_) => true,
            StoreError::SqliteGone => false,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }
}

impl StoreError {
    /// A unique or check constraint refused the row.
    pub fn is_constraint(&self) -> bool {
        match self {
            StoreError::Postgres(e) => e.code().is_some_and(|c| c.code().starts_with("23")),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::ConstraintViolation
            }
            _ => false,
        }
    }
}

/// Whether to use TimescaleDB on a PostgreSQL database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimescaleMode {
    /// Use the extension when the server offers it.
    Auto,
    /// Fail at start when it is missing.
    Require,
    /// Plain PostgreSQL even when the extension is there.
    Off,
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        url: String,
        timescale: TimescaleMode,
        insert_path: InsertPath,
        /// See [`PgStore::set_statement_rows`].
        statement_rows: usize,
    },
}

impl StoreSpec {
    /// PostgreSQL with the default insert path and statement size.
    pub fn postgres(url: impl Into<String>, timescale: TimescaleMode) -> StoreSpec {
        StoreSpec::Postgres {
            url: url.into(),
            timescale,
            insert_path: InsertPath::default(),
            statement_rows: postgres::DEFAULT_STATEMENT_ROWS,
        }
    }
}

/// Which backend a store runs on, as detected at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Timescale,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Timescale => "timescaledb",
        })
    }
}

/// The store, on whichever backend was configured. Cheap to share behind an `Arc`.
pub enum Store {
    Postgres(Box<PgStore>),
    Sqlite(SqliteStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Postgres($s) => $e,
            Store::Sqlite($s) => $e,
        }
    };
}

impl Store {
    /// Connects (or opens the file). Call [`Store::migrate`] before anything else.
    pub async fn open(spec: &StoreSpec) -> Result<Store, StoreError> {
        let store = match spec {
            StoreSpec::Sqlite { path } => Store::Sqlite(SqliteStore::open(path.clone()).await?),
            StoreSpec::Postgres {
                url,
                timescale,
                insert_path,
                statement_rows,
            } => {
                let mut pg = PgStore::connect(url, *timescale).await?;
                pg.set_insert_path(*insert_path);
                pg.set_statement_rows(*statement_rows);
                Store::Postgres(Box::new(pg))
            }
        };
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Postgres(s) => s.backend(),
            Store::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Versions applied by this call (empty when the schema was current).
    pub async fn migrate(&self) -> Result<Vec<i32>, StoreError> {
        dispatch!(self, s => s.migrate().await)
    }

    /// Commits the batch in one transaction. See the module invariants.
    pub async fn write(
        &self,
        batch: impl Into<Arc<WriteBatch>>,
    ) -> Result<WriteOutcome, StoreError> {
        let batch = batch.into();
        dispatch!(self, s => s.write(batch).await)
    }

    /// Marks a gateway as registered by an operator (for `require_registration`).
    pub async fn register_gateway(&self, gateway: &Ident) -> Result<(), StoreError> {
        self.register(gateway, None).await.map(|_| ())
    }

    /// Registers a gateway (creating its entry when ingest never heard from it), setting its
    /// name when one is given. Returns whether it was not registered before.
    pub async fn register(&self, gateway: &Ident, name: Option<&str>) -> Result<bool, StoreError> {
        let name = name.map(str::to_string);
        dispatch!(self, s => s.register(gateway, name).await)
    }

    /// Withdraws an operator's registration. Data is never deleted: an entry is removed only
    /// when nothing was ever heard from the gateway (see [`Unregistered`]).
    pub async fn unregister(&self, gateway: &Ident) -> Result<Unregistered, StoreError> {
        dispatch!(self, s => s.unregister(gateway).await)
    }

    /// Ids of the gateways an operator registered.
    pub async fn registered_gateways(&self) -> Result<Vec<Ident>, StoreError> {
        Ok(self
            .gateways()
            .await?
            .into_iter()
            .filter(|g| g.registered)
            .map(|g| g.gateway)
            .collect())
    }

    /// Health of a gateway's devices (one device when `device` is given), ordered by name.
    pub async fn device_health(
        &self,
        gateway: &Ident,
        device: Option<&Ident>,
    ) -> Result<Vec<DeviceHealth>, StoreError> {
        let device = device.cloned();
        dispatch!(self, s => s.device_health(gateway, device).await)
    }

    /// Whether a gateway is known, registered by an operator or by ingest.
    pub async fn gateway_known(&self, gateway: &Ident) -> Result<bool, StoreError> {
        Ok(self.gateway(gateway).await?.is_some())
    }

    pub async fn gateway(&self, gateway: &Ident) -> Result<Option<GatewayInfo>, StoreError> {
        dispatch!(self, s => s.gateway(gateway).await)
    }

    pub async fn gateways(&self) -> Result<Vec<GatewayInfo>, StoreError> {
        dispatch!(self, s => s.gateways().await)
    }

    pub async fn devices(&self, gateway: &Ident) -> Result<Vec<Ident>, StoreError> {
        dispatch!(self, s => s.devices(gateway).await)
    }

    pub async fn series_of_device(
        &self,
        gateway: &Ident,
        device: &Ident,
    ) -> Result<Vec<SeriesInfo>, StoreError> {
        dispatch!(self, s => s.series_of_device(gateway, device).await)
    }

    /// The birth `gateway` announced with `config_hash`, the latest received.
    pub async fn birth(
        &self,
        gateway: &Ident,
        config_hash: &str,
    ) -> Result<Option<StoredBirth>, StoreError> {
        dispatch!(self, s => s.birth(gateway, config_hash).await)
    }

    pub async fn series_id(&self, key: &SeriesKey) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.series_id(key).await)
    }

    /// Points of a series with `from_ms <= ts < to_ms`, oldest first, at most `limit`.
    pub async fn raw_points(
        &self,
        series_id: i64,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<StoredPoint>, StoreError> {
        let (from_ms, to_ms) = (clamp_ms(from_ms), clamp_ms(to_ms));
        dispatch!(self, s => s.raw_points(series_id, from_ms, to_ms, limit).await)
    }

    /// Aggregates of a series over epoch-aligned buckets, oldest first, empty buckets left
    /// out. `from_ms` is rounded down and `to_ms` up to whole buckets, so every bucket returned
    /// is complete.
    pub async fn aggregates(
        &self,
        series_id: i64,
        from_ms: i64,
        to_ms: i64,
        interval: Interval,
    ) -> Result<Vec<Bucket>, StoreError> {
        let w = interval.as_millis();
        let from_ms = clamp_ms(from_ms).div_euclid(w) * w;
        let to_ms = clamp_ms(to_ms);
        let to_ms = to_ms.div_euclid(w) * w + if to_ms.rem_euclid(w) == 0 { 0 } else { w };
        dispatch!(self, s => s.aggregates(series_id, from_ms, to_ms, interval).await)
    }

    /// The newest point of each series that has one.
    pub async fn latest(&self, series_ids: &[i64]) -> Result<Vec<Latest>, StoreError> {
        dispatch!(self, s => s.latest(series_ids).await)
    }

    /// Newest first.
    /// The newest `limit` dead letters.
    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self
            .dead_letter_page(None, 0, limit)
            .await?
            .into_iter()
            .map(|d| d.letter)
            .collect())
    }

    /// Dead letters newest first: those with an id below `before` (all when `None`), skipping
    /// `offset`, at most `limit`. A row holds at most the configured payload prefix, so a page
    /// costs at most `limit` × [`DeadLetterLimits::payload_bytes`] of payload.
    pub async fn dead_letter_page(
        &self,
        before: Option<i64>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<StoredDeadLetter>, StoreError> {
        dispatch!(self, s => s.dead_letter_page(before, offset, limit).await)
    }

    /// What the store keeps of dead letters (default: [`DeadLetterLimits::default`]).
    pub fn set_dead_letter_limits(&mut self, limits: DeadLetterLimits) {
        dispatch!(self, s => s.set_dead_letter_limits(limits))
    }

    /// Deletes dead letters received before `before_ms`; returns how many.
    pub async fn expire_dead_letters(&self, before_ms: i64) -> Result<u64, StoreError> {
        dispatch!(self, s => s.expire_dead_letters(before_ms).await)
    }

    /// Number of stored points: for tests and benchmarks, a full count.
    pub async fn count_points(&self) -> Result<i64, StoreError> {
        dispatch!(self, s => s.count_points().await)
    }

    /// Recomputes the hours the writer marked dirty (plain PostgreSQL; a no-op elsewhere).
    /// Returns the number of hours recomputed.
    pub async fn refresh_rollup(&self) -> Result<u64, StoreError> {
        match self {
            Store::Postgres(s) => s.refresh_rollup().await,
            Store::Sqlite(_) => Ok(0),
        }
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }
}

/// Query bounds are clamped to what every backend can represent (PostgreSQL's timestamps run
/// from 4713 BC to 294276 AD), so "from the beginning" can be asked with `i64::MIN` and "to
/// the end" with `i64::MAX`.
pub const QUERY_MIN_MS: i64 = -210_000_000_000_000;
pub const QUERY_MAX_MS: i64 = 9_000_000_000_000_000;

fn clamp_ms(ms: i64) -> i64 {
    ms.clamp(QUERY_MIN_MS, QUERY_MAX_MS)
}

/// The gateways a batch may have changed device health for, each with the devices concerned
/// (`None`: all of them, because the gateway's status changed).
pub(crate) fn health_touched(
    batch: &WriteBatch,
) -> std::collections::BTreeMap<Ident, Option<std::collections::BTreeSet<Ident>>> {
    let mut touched: std::collections::BTreeMap<Ident, Option<std::collections::BTreeSet<Ident>>> =
        std::collections::BTreeMap::new();
    for s in &batch.statuses {
        touched.insert(s.gateway.clone(), None);
    }
    for h in &batch.health {
        if let Some(devices) = touched
            .entry(h.gateway.clone())
            .or_insert_with(|| Some(Default::default()))
        {
            devices.insert(h.device.clone());
        }
    }
    touched
}

/// Distinct hour starts (ms) touched by a set of points.
pub(crate) fn touched_hours(points: &[PointRow]) -> Vec<i64> {
    let mut hours: Vec<i64> = points
        .iter()
        .map(|p| p.ts_ms.div_euclid(3_600_000) * 3_600_000)
        .collect();
    hours.sort_unstable();
    hours.dedup();
    hours
}
