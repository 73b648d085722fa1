//! Copying out of a damaged journal every row that still verifies.
//!
//! A damaged file usually has most of its pages intact: a truncation loses the tail, a bad page
//! loses the rows on it. Salvage opens the damaged file for reading only (`query_only`, no
//! checkpoint, not even on close, and exclusive locking, so SQLite keeps the WAL index in
//! memory and writes no `-shm` beside it; its WAL, if sound, is read too; `writable_schema`,
//! harmless under `query_only`, makes SQLite read a file shorter than its header says instead
//! of refusing it whole), reads each table in id order and, where SQLite reports an error, gallops past the
//! damage (probing `id >= after + 1, 2, 4, …`) and then looks up every id it jumped over one by
//! one, so the rows next to a bad page are kept. A telemetry segment is kept only if it decodes
//! with the salvaged series dictionary; a record only if its class is known. What is kept is
//! written, ids, append times and bytes unchanged, into a new file beside the journal
//! (`journal.db.salvage`) in one transaction, synced; `open` then moves the damaged file aside
//! and renames the salvaged one into its place (see `store::open` for the crash order).
//!
//! The counts of what was lost come from the `totals` row the journal keeps beside its data
//! (see `schema`): stored points and records minus what was saved. When that row itself is
//! unreadable the loss is unknown and said so.

use std::fs;
use std::path::{Path, PathBuf};

use fieldlink_protocol::Ident;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Row};

use crate::batch::RecordClass;
use crate::codec::decode_segment;
use crate::error::{JournalError, Result};
use crate::integrity::wal_path;
use crate::schema;
use crate::series::{SeriesDictionary, SeriesId};
use crate::store::{DROP_CORRUPT, DROP_DISK_FULL, DROP_MAX_AGE, DROP_MAX_BYTES};

/// What salvage copied out of a damaged journal, and what it could not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Salvage {
    /// Telemetry points copied into the fresh journal.
    pub points_saved: u64,
    /// Acknowledgements and events copied into the fresh journal.
    pub records_saved: u64,
    /// Telemetry points lost: stored in the damaged file and not saved. `None` when the damaged
    /// file's totals could not be read, so the loss is unknown.
    pub points_lost: Option<u64>,
    /// Acknowledgements and events lost, as for `points_lost`.
    pub records_lost: Option<u64>,
}

impl Salvage {
    /// One line for the log and the event to the cloud.
    pub fn summary(&self) -> String {
        let lost =
            |n: Option<u64>| n.map_or_else(|| "an unknown number".to_string(), |n| n.to_string());
        format!(
            "salvaged {} points and {} records; lost {} points and {} records",
            self.points_saved,
            self.records_saved,
            lost(self.points_lost),
            lost(self.records_lost)
        )
    }
}

/// Where a salvage is assembled before it replaces the journal.
pub(crate) fn salvage_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".salvage");
    PathBuf::from(name)
}

/// Reads what verifies in `damaged` into a new journal file at `out` (replaced if present).
/// Nothing in `damaged` is written. An `Err` means the new file could not be written (disk
/// full, I/O); a damaged file SQLite cannot open at all salvages to an empty journal.
pub(crate) fn salvage_into(damaged: &Path, out: &Path) -> Result<Salvage> {
    remove_if_present(out)?;
    remove_if_present(&rollback_path(out))?;
    let mut dst = Connection::open(out)?;
    dst.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL;")?;
    schema::migrate(&mut dst, schema::MIGRATIONS).map_err(|e| match e {
        schema::SchemaError::Journal(e) => e,
        other => JournalError::Corrupt(other.to_string()),
    })?;
    let tx = dst.transaction()?;
    let result = match open_damaged(damaged) {
        Some(src) => copy(&src, &tx, row_limit(damaged))?,
        None => Copied::default(),
    };
    let saved = Salvage {
        points_saved: result.points,
        records_saved: result.records,
        points_lost: result
            .totals
            .map(|t| t.points.saturating_sub(result.points)),
        records_lost: result
            .totals
            .map(|t| t.records.saturating_sub(result.records)),
    };
    if let Some(lost) = saved.points_lost.filter(|n| *n > 0) {
        crate::store::add_drops(&tx, DROP_CORRUPT, lost)?;
    }
    crate::store::write_totals(&tx, result.points, result.records)?;
    tx.commit()?;
    dst.close().map_err(|(_, e)| JournalError::from(e))?;
    Ok(saved)
}

fn rollback_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-journal");
    PathBuf::from(name)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(JournalError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn open_damaged(path: &Path) -> Option<Connection> {
    // SQLite cannot read a WAL through a read-only connection without a `-shm` file, so the
    // connection is read-write but refuses every write and never checkpoints.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match Connection::open_with_flags(path, flags) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "damaged journal cannot be opened for salvage");
            return None;
        }
    };
    let setup = conn
        .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .and_then(|_| {
            conn.execute_batch(
                "PRAGMA query_only = ON; PRAGMA wal_autocheckpoint = 0;
                 PRAGMA locking_mode = EXCLUSIVE; PRAGMA cell_size_check = ON;
                 PRAGMA writable_schema = ON;",
            )
        });
    if let Err(e) = setup {
        tracing::warn!(path = %path.display(), error = %e, "damaged journal cannot be read for salvage");
        return None;
    }
    Some(conn)
}

/// An upper bound on the rows any table of the damaged file can hold: no cell is smaller than
/// 8 bytes. Bounds the gallop and the id-by-id lookups behind it.
fn row_limit(damaged: &Path) -> i64 {
    let len = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    ((len(damaged) + len(&wal_path(damaged))) / 8 + 64) as i64
}

#[derive(Debug, Default)]
struct Copied {
    points: u64,
    records: u64,
    totals: Option<crate::store::Totals>,
}

fn copy(src: &Connection, dst: &rusqlite::Transaction<'_>, limit: i64) -> Result<Copied> {
    let mut copied = Copied {
        totals: crate::store::read_totals(src).ok().flatten(),
        ..Copied::default()
    };
    let mut dict = SeriesDictionary::default();
    {
        let mut insert =
            dst.prepare("INSERT INTO series (id, device, metric) VALUES (?1, ?2, ?3)")?;
        scan(
            src,
            "id, device, metric",
            "series",
            limit,
            read_series,
            |(id, d, m)| {
                insert.execute((i64::from(id), d.as_str(), m.as_str()))?;
                dict.insert(id, d, m);
                Ok(())
            },
        )?;
    }
    {
        let mut insert = dst.prepare(
            "INSERT INTO segments (id, appended_ms, points, size, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut scratch = Vec::new();
        scan(
            src,
            "id, appended_ms, points, size, body",
            "segments",
            limit,
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                ))
            },
            |(id, appended, points, size, body)| {
                scratch.clear();
                let Ok(count) = usize::try_from(points) else {
                    return Ok(());
                };
                if decode_segment(&body, count, &dict, &mut scratch).is_ok() {
                    insert.execute((id, appended, points, size, body))?;
                    copied.points += count as u64;
                }
                Ok(())
            },
        )?;
    }
    {
        let mut insert = dst.prepare(
            "INSERT INTO records (id, class, appended_ms, payload) VALUES (?1, ?2, ?3, ?4)",
        )?;
        scan(
            src,
            "id, class, appended_ms, payload",
            "records",
            limit,
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            },
            |(id, class, appended, payload)| {
                if RecordClass::from_code(class).is_some() {
                    insert.execute((id, class, appended, payload))?;
                    copied.records += 1;
                }
                Ok(())
            },
        )?;
    }
    copy_drops(src, dst)?;
    // What was reported and saved carries over with the drops it describes.
    for what in [crate::store::DROPS_REPORTED, crate::store::REFUSED_SAVED] {
        if let Ok(Some(value)) = crate::store::read_counter(src, what) {
            crate::store::write_counter(dst, what, value)?;
        }
    }
    Ok(copied)
}

fn read_series(r: &Row<'_>) -> rusqlite::Result<(SeriesId, Ident, Ident)> {
    let bad = || rusqlite::Error::InvalidQuery;
    let id = SeriesId::try_from(r.get::<_, i64>(0)?).map_err(|_| bad())?;
    let device = Ident::new(&r.get::<_, String>(1)?).map_err(|_| bad())?;
    let metric = Ident::new(&r.get::<_, String>(2)?).map_err(|_| bad())?;
    Ok((id, device, metric))
}

/// The drop counters carry over; a damaged `drops` table carries over what reads.
fn copy_drops(src: &Connection, dst: &rusqlite::Transaction<'_>) -> Result<()> {
    let Ok(mut stmt) = src.prepare("SELECT reason, points FROM drops") else {
        return Ok(());
    };
    let Ok(mut rows) = stmt.query([]) else {
        return Ok(());
    };
    while let Ok(Some(row)) = rows.next() {
        let (Ok(reason), Ok(points)) = (row.get::<_, String>(0), row.get::<_, i64>(1)) else {
            continue;
        };
        let known = [DROP_MAX_BYTES, DROP_MAX_AGE, DROP_DISK_FULL, DROP_CORRUPT];
        if known.contains(&reason.as_str()) && points > 0 {
            crate::store::add_drops(dst, &reason, points as u64)?;
        }
    }
    Ok(())
}

/// Visits every row of `table` that can be read, in id order. `read` gets the columns `cols`
/// (the first must be `id`); `keep` gets what it returned. Errors from the damaged file are
/// skipped over; errors from `keep` (the new file) end the scan.
fn scan<T, K>(
    src: &Connection,
    cols: &str,
    table: &str,
    limit: i64,
    read: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
    mut keep: K,
) -> Result<()>
where
    K: FnMut(T) -> Result<()>,
{
    let sequential = format!("SELECT {cols} FROM {table} WHERE id > ?1 ORDER BY id");
    let at_or_after = format!("SELECT {cols} FROM {table} WHERE id >= ?1 ORDER BY id LIMIT 1");
    let exact = format!("SELECT {cols} FROM {table} WHERE id = ?1");
    let id_of = |r: &Row<'_>| r.get::<_, i64>(0);
    let one = |sql: &str, at: i64| -> rusqlite::Result<Option<(i64, T)>> {
        let mut stmt = src.prepare_cached(sql)?;
        let mut rows = stmt.query([at])?;
        match rows.next()? {
            Some(r) => Ok(Some((id_of(r)?, read(r)?))),
            None => Ok(None),
        }
    };
    let mut after = i64::MIN;
    loop {
        // Read on in order until the end or the first error.
        let failed = match src.prepare_cached(&sequential) {
            Err(_) => true,
            Ok(mut stmt) => match stmt.query([after]) {
                Err(_) => true,
                Ok(mut rows) => loop {
                    match rows.next() {
                        Ok(None) => break false,
                        Err(_) => break true,
                        Ok(Some(r)) => match id_of(r).and_then(|id| Ok((id, read(r)?))) {
                            Ok((id, value)) => {
                                keep(value)?;
                                after = id;
                            }
                            Err(_) => break true,
                        },
                    }
                },
            },
        };
        if !failed {
            return Ok(());
        }
        if after == i64::MIN {
            // Nothing read yet: ids start at 1 (the journal never writes a smaller one).
            after = 0;
        }
        // Gallop past the damage.
        let mut skip: i64 = 1;
        let (end, resume) = loop {
            let probe = after.saturating_add(skip);
            match one(&at_or_after, probe) {
                Ok(found) => break (probe, found),
                Err(_) if skip >= limit => break (probe, None),
                Err(_) => skip = skip.saturating_mul(2),
            }
        };
        // Every id jumped over, one by one: the rows beside a bad page.
        let mut id = after.saturating_add(1);
        while id < end {
            if let Ok(Some((_, value))) = one(&exact, id) {
                keep(value)?;
            }
            id += 1;
        }
        match resume {
            Some((id, value)) => {
                keep(value)?;
                after = id;
            }
            None => return Ok(()),
        }
    }
}
