//! The records database: tokens, commands, alerts and notifications live in tables of their
//! own, written with SQL that both backends accept, so each rule is written once. Ingest's
//! [`crate::store::Store`] stays the only writer of telemetry; the API reads telemetry through
//! it, and the records go over connections of their own, so a slow records query never waits
//! behind an ingest transaction on the same connection. On PostgreSQL a handle keeps a small
//! pool ([`PG_CONNECTIONS`]), so a call that waits (on a lock, a slow plan) holds up only its
//! own connection, not the alert checks, command expiry and API reads beside it.
//!
//! The SQL uses PostgreSQL's `$1` placeholders; on SQLite they are rewritten to `?1`, which
//! SQLite reads as the same numbered parameter. Only two column types are used: 64-bit
//! integers (times in milliseconds since the Unix epoch) and text.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_postgres::types::{ToSql, Type};

use crate::store::StoreSpec;

/// Why a records database call failed: the store's error, so both database layers report
/// (and classify into API answers) the same way.
pub type DbError = crate::store::StoreError;

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Param {
    fn from(v: i64) -> Param {
        Param::Int(Some(v))
    }
}
impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Param {
        Param::Int(v)
    }
}
impl From<&str> for Param {
    fn from(v: &str) -> Param {
        Param::Text(Some(v.to_string()))
    }
}
impl From<String> for Param {
    fn from(v: String) -> Param {
        Param::Text(Some(v))
    }
}
impl From<Option<String>> for Param {
    fn from(v: Option<String>) -> Param {
        Param::Text(v)
    }
}

/// A value read back; read it through [`Fields`].
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

pub type Row = Vec<Cell>;

/// A row read column by column, each read checked: a NULL where the schema has a value, or a
/// cell of another type, is a [`DbError::Column`] naming the table and the column, never a
/// silent 0 or "".
#[derive(Clone, Copy)]
pub struct Fields<'r> {
    row: &'r [Cell],
    table: &'static str,
}

impl<'r> Fields<'r> {
    /// `row` of `table` (the name errors give).
    pub fn of(row: &'r [Cell], table: &'static str) -> Fields<'r> {
        Fields { row, table }
    }

    fn cell(&self, i: usize, column: &'static str) -> Result<&'r Cell, DbError> {
        self.row
            .get(i)
            .ok_or_else(|| self.wrong(column, "a value", "no such column"))
    }

    fn wrong(&self, column: &'static str, expected: &'static str, found: &'static str) -> DbError {
        DbError::Column {
            table: self.table,
            column,
            expected,
            found,
        }
    }

    /// An integer the column must hold.
    pub fn int(&self, i: usize, column: &'static str) -> Result<i64, DbError> {
        self.opt_int(i, column)?
            .ok_or_else(|| self.wrong(column, "an integer", "NULL"))
    }

    /// An integer, or NULL.
    pub fn opt_int(&self, i: usize, column: &'static str) -> Result<Option<i64>, DbError> {
        match self.cell(i, column)? {
            Cell::Int(v) => Ok(Some(*v)),
            Cell::Null => Ok(None),
            Cell::Text(_) => Err(self.wrong(column, "an integer", "text")),
        }
    }

    /// Text the column must hold.
    pub fn text(&self, i: usize, column: &'static str) -> Result<String, DbError> {
        self.opt_text(i, column)?
            .ok_or_else(|| self.wrong(column, "text", "NULL"))
    }

    /// Text, or NULL.
    pub fn opt_text(&self, i: usize, column: &'static str) -> Result<Option<String>, DbError> {
        match self.cell(i, column)? {
            Cell::Text(s) => Ok(Some(s.clone())),
            Cell::Null => Ok(None),
            Cell::Int(_) => Err(self.wrong(column, "text", "an integer")),
        }
    }

    /// A value the column's text must parse into (`parse` says whether it does).
    pub fn parsed<T>(
        &self,
        i: usize,
        column: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, DbError> {
        self.opt_parsed(i, column, parse)?
            .ok_or_else(|| self.wrong(column, "text", "NULL"))
    }

    /// NULL, or text that must parse.
    pub fn opt_parsed<T>(
        &self,
        i: usize,
        column: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, DbError> {
        let Some(text) = self.opt_text(i, column)? else {
            return Ok(None);
        };
        parse(&text).map(Some).ok_or_else(|| DbError::Unreadable {
            table: self.table,
            column,
            value: text.chars().take(64).collect(),
        })
    }
}

/// How many PostgreSQL connections one [`RecordsDb`] opens at most; a call finding all of them
/// busy waits for one.
pub const PG_CONNECTIONS: usize = 4;

enum Backend {
    Postgres(PgPool),
    Sqlite {
        conn: Arc<Mutex<rusqlite::Connection>>,
    },
}

/// PostgreSQL connections, each opened on first use and again after it closed.
struct PgPool {
    url: String,
    slots: Vec<tokio::sync::Mutex<PgSlot>>,
    /// Where a call that finds every connection busy queues (round robin).
    next: AtomicUsize,
}

#[derive(Default)]
struct PgSlot {
    client: Option<tokio_postgres::Client>,
    /// A call began and did not finish: it was abandoned (timed out), and the connection may
    /// still be busy with it, so the next call connects again.
    in_call: bool,
}

impl PgPool {
    fn new(url: &str) -> PgPool {
        PgPool {
            url: url.to_string(),
            slots: (0..PG_CONNECTIONS).map(|_| Default::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A connection no call is using if there is one, else the next in turn, once it is free.
    async fn acquire(&self) -> tokio::sync::MutexGuard<'_, PgSlot> {
        for slot in &self.slots {
            if let Ok(guard) = slot.try_lock() {
                return guard;
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        self.slots[i].lock().await
    }
}

impl PgSlot {
    /// The client, connecting when there is none, it closed (a database restart costs the calls
    /// made while it was down) or a call on it was abandoned. In a call until [`PgSlot::done`].
    async fn begin(&mut self, url: &str) -> Result<&mut tokio_postgres::Client, DbError> {
        if self.in_call || self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = None;
            let (client, connection) = crate::store::pg_connect(url).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = ?e.to_string(), "records database connection ended");
                }
            });
            self.client = Some(client);
        }
        self.in_call = true;
        Ok(self.client.as_mut().expect("set above"))
    }

    /// The call finished, with an answer or an error: the connection is free for the next.
    fn done<T>(&mut self, r: Result<T, DbError>) -> Result<T, DbError> {
        self.in_call = false;
        r
    }
}

/// The records database handle. Cheap to share behind an `Arc`.
pub struct RecordsDb {
    backend: Backend,
    /// How long a PostgreSQL call may take, waiting for the connection included.
    timeout: std::time::Duration,
}

/// [`RecordsDb`]'s default for [`RecordsDb::set_timeout`].
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

fn sqlite_open(path: &PathBuf) -> Result<rusqlite::Connection, DbError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

impl RecordsDb {
    /// Opens a connection to the database the store uses. The schema must already be migrated
    /// ([`crate::store::Store::migrate`] applies the records' versions too).
    pub async fn open(spec: &StoreSpec) -> Result<RecordsDb, DbError> {
        let backend = match spec {
            StoreSpec::Sqlite { path } => {
                let path = path.clone();
                let conn = tokio::task::spawn_blocking(move || sqlite_open(&path))
                    .await
                    .map_err(|_| DbError::SqliteGone)??;
                Backend::Sqlite {
                    conn: Arc::new(Mutex::new(conn)),
                }
            }
            StoreSpec::Postgres { url, .. } => Backend::Postgres(PgPool::new(url)),
        };
        let db = RecordsDb {
            backend,
            timeout: DEFAULT_TIMEOUT,
        };
        db.query("SELECT 1", vec![]).await?;
        Ok(db)
    }

    /// How long a PostgreSQL call may take before it fails with [`DbError::Timeout`] (a 503):
    /// its connection is then dropped, and the next call on it connects again. SQLite waits on
    /// its own busy timeout (5 s) instead.
    pub fn set_timeout(&mut self, timeout: std::time::Duration) {
        self.timeout = timeout;
    }

    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, DbError>>,
    ) -> Result<T, DbError> {
        if !self.is_postgres() {
            return call.await;
        }
        // An abandoned call leaves its connection marked in a call: the next one reconnects.
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(DbError::Timeout(self.timeout)))
    }

    /// Runs a statement; returns the rows it changed.
    pub async fn execute(&self, sql: &str, params: Vec<Param>) -> Result<u64, DbError> {
        self.bounded(self.execute_unbounded(sql, params)).await
    }

    /// Runs a query; returns every row.
    pub async fn query(&self, sql: &str, params: Vec<Param>) -> Result<Vec<Row>, DbError> {
        self.bounded(self.query_unbounded(sql, params)).await
    }

    async fn execute_unbounded(&self, sql: &str, params: Vec<Param>) -> Result<u64, DbError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let mut slot = pool.acquire().await;
                let c = slot.begin(&pool.url).await?;
                let boxed = pg_params(&params);
                let r = c
                    .execute(sql, &pg_refs(&boxed))
                    .await
                    .map_err(DbError::from);
                slot.done(r)
            }
            Backend::Sqlite { conn } => {
                let sql = sqlite_sql(sql);
                let conn = conn.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = conn.lock().map_err(|_| DbError::SqliteGone)?;
                    let mut stmt = conn.prepare_cached(&sql)?;
                    let n = stmt.execute(rusqlite::params_from_iter(params.iter().map(sq)))?;
                    Ok(n as u64)
                })
                .await
                .map_err(|_| DbError::SqliteGone)?
            }
        }
    }

    async fn query_unbounded(&self, sql: &str, params: Vec<Param>) -> Result<Vec<Row>, DbError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let mut slot = pool.acquire().await;
                let c = slot.begin(&pool.url).await?;
                let boxed = pg_params(&params);
                let r = match c.query(sql, &pg_refs(&boxed)).await {
                    Ok(rows) => rows.iter().map(pg_row).collect(),
                    Err(e) => Err(e.into()),
                };
                slot.done(r)
            }
            Backend::Sqlite { conn } => {
                let sql = sqlite_sql(sql);
                let conn = conn.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = conn.lock().map_err(|_| DbError::SqliteGone)?;
                    sqlite_rows(&conn, &sql, &params)
                })
                .await
                .map_err(|_| DbError::SqliteGone)?
            }
        }
    }
}

/// One statement of an [`RecordsDb::transaction`].
#[derive(Debug, Clone)]
pub struct Step {
    sql: String,
    params: Vec<Param>,
    returning: bool,
    guarded: bool,
}

impl Step {
    /// A statement whose changed-row count does not matter.
    pub fn execute(sql: impl Into<String>, params: Vec<Param>) -> Step {
        Step {
            sql: sql.into(),
            params,
            returning: false,
            guarded: false,
        }
    }

    /// A statement that must change exactly one row; otherwise the whole transaction is rolled
    /// back and reported as [`Committed::Conflict`] (a compare-and-set lost to another writer).
    pub fn guarded(sql: impl Into<String>, params: Vec<Param>) -> Step {
        Step {
            guarded: true,
            ..Step::execute(sql, params)
        }
    }

    /// A statement whose rows (a `SELECT`, or `RETURNING`) are handed back.
    pub fn query(sql: impl Into<String>, params: Vec<Param>) -> Step {
        Step {
            returning: true,
            ..Step::execute(sql, params)
        }
    }

    /// Also guarded: exactly one row must come back.
    pub fn guarded_query(sql: impl Into<String>, params: Vec<Param>) -> Step {
        Step {
            returning: true,
            guarded: true,
            ..Step::execute(sql, params)
        }
    }
}

/// How an [`RecordsDb::transaction`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Committed {
    /// Every step ran and the transaction committed; the rows of each step, in order (empty
    /// for steps that return none).
    Done(Vec<Vec<Row>>),
    /// The guarded step at this index did not change exactly one row: nothing was written.
    Conflict(usize),
}

impl RecordsDb {
    /// Whether this is PostgreSQL (the few statements whose syntax differs pick by it).
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// Runs `steps` in one transaction (`BEGIN IMMEDIATE` on SQLite, so writers queue rather
    /// than fail half-way), all or nothing.
    pub async fn transaction(&self, steps: Vec<Step>) -> Result<Committed, DbError> {
        self.bounded(self.transaction_unbounded(steps)).await
    }

    async fn transaction_unbounded(&self, steps: Vec<Step>) -> Result<Committed, DbError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let mut slot = pool.acquire().await;
                let c = slot.begin(&pool.url).await?;
                let r = pg_transaction(c, &steps).await;
                slot.done(r)
            }
            Backend::Sqlite { conn } => {
                let conn = conn.clone();
                tokio::task::spawn_blocking(move || {
                    let mut conn = conn.lock().map_err(|_| DbError::SqliteGone)?;
                    let tx =
                        conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    let mut out = Vec::with_capacity(steps.len());
                    for (i, s) in steps.iter().enumerate() {
                        let sql = sqlite_sql(&s.sql);
                        let (n, rows) = if s.returning {
                            let rows = sqlite_rows(&tx, &sql, &s.params)?;
                            (rows.len() as u64, rows)
                        } else {
                            let mut stmt = tx.prepare_cached(&sql)?;
                            let n =
                                stmt.execute(rusqlite::params_from_iter(s.params.iter().map(sq)))?;
                            (n as u64, Vec::new())
                        };
                        if s.guarded && n != 1 {
                            return Ok(Committed::Conflict(i));
                        }
                        out.push(rows);
                    }
                    tx.commit()?;
                    Ok(Committed::Done(out))
                })
                .await
                .map_err(|_| DbError::SqliteGone)?
            }
        }
    }
}

fn sqlite_rows(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Param],
) -> Result<Vec<Row>, DbError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let width = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter().map(sq)))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(width);
        for i in 0..width {
            row.push(match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => Cell::Null,
                rusqlite::types::ValueRef::Integer(v) => Cell::Int(v),
                rusqlite::types::ValueRef::Text(t) => {
                    Cell::Text(String::from_utf8_lossy(t).into_owned())
                }
                other => return Err(DbError::ColumnType(format!("{:?}", other.data_type()))),
            });
        }
        out.push(row);
    }
    Ok(out)
}

/// `steps` in one PostgreSQL transaction; see [`RecordsDb::transaction`].
async fn pg_transaction(
    c: &mut tokio_postgres::Client,
    steps: &[Step],
) -> Result<Committed, DbError> {
    let tx = c.transaction().await?;
    let mut out = Vec::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        let boxed = pg_params(&s.params);
        let refs = pg_refs(&boxed);
        let (n, rows) = if s.returning {
            let rows = tx.query(s.sql.as_str(), &refs).await?;
            let rows = rows.iter().map(pg_row).collect::<Result<Vec<_>, _>>()?;
            (rows.len() as u64, rows)
        } else {
            (tx.execute(s.sql.as_str(), &refs).await?, Vec::new())
        };
        if s.guarded && n != 1 {
            tx.rollback().await?;
            return Ok(Committed::Conflict(i));
        }
        out.push(rows);
    }
    tx.commit().await?;
    Ok(Committed::Done(out))
}

fn pg_refs(boxed: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    boxed
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn pg_params(params: &[Param]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Int(v) => Box::new(*v),
                Param::Text(v) => Box::new(v.clone()),
            }
        })
        .collect()
}

fn pg_row(r: &tokio_postgres::Row) -> Result<Row, DbError> {
    let mut row = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let t = col.type_();
        let cell = if *t == Type::INT8 {
            r.try_get::<_, Option<i64>>(i)?
                .map_or(Cell::Null, Cell::Int)
        } else if *t == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)?
                .map_or(Cell::Null, |v| Cell::Int(v.into()))
        } else if *t == Type::INT2 {
            r.try_get::<_, Option<i16>>(i)?
                .map_or(Cell::Null, |v| Cell::Int(v.into()))
        } else if *t == Type::BOOL {
            r.try_get::<_, Option<bool>>(i)?
                .map_or(Cell::Null, |v| Cell::Int(v.into()))
        } else if *t == Type::TEXT || *t == Type::VARCHAR {
            r.try_get::<_, Option<String>>(i)?
                .map_or(Cell::Null, Cell::Text)
        } else {
            return Err(DbError::ColumnType(t.to_string()));
        };
        row.push(cell);
    }
    Ok(row)
}

fn sq(p: &Param) -> rusqlite::types::Value {
    match p {
        Param::Int(Some(v)) => rusqlite::types::Value::Integer(*v),
        Param::Text(Some(s)) => rusqlite::types::Value::Text(s.clone()),
        Param::Int(None) | Param::Text(None) => rusqlite::types::Value::Null,
    }
}
