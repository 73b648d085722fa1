//! Opening: pragmas, checks, quarantine, migration and the memory copies.

use std::fs;
use std::path::Path;

use rusqlite::ffi::ErrorCode;
use rusqlite::{Connection, OpenFlags};

use super::refused::RefusalLog;
use super::{
    read_counter, write_counter, Store, Tally, DROPS_REPORTED, DROP_CORRUPT, DROP_DISK_FULL,
    DROP_MAX_AGE, DROP_MAX_BYTES, REFUSED_SAVED,
};
use crate::batch::RecordClass;
use crate::config::{Durability, JournalConfig};
use crate::drain::DrainState;
use crate::error::{JournalError, Result};
use crate::integrity::{self, Quarantine};
use crate::salvage::{salvage_into, salvage_path};
use crate::schema::{self, SchemaError};
use crate::series::SeriesDictionary;
use crate::stats::Dropped;

/// Why an open attempt failed: the file is damaged (salvage and quarantine it), from a newer
/// release (quarantine it: its rows are not ours to interpret), or something else is wrong.
enum Failure {
    Damaged(String),
    Foreign(String),
    Other(JournalError),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
                Failure::Damaged(e.to_string())
            }
            _ => Failure::Other(e.into()),
        }
    }
}

impl From<JournalError> for Failure {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::Corrupt(why) => Failure::Damaged(why),
            other => Failure::Other(other),
        }
    }
}

impl Store {
    /// Opens (creating if needed) the journal, quarantining a damaged file.
    ///
    /// Order on damage, so that a crash at any step leaves something the next open handles:
    /// (1) salvage into `journal.db.salvage` (the damaged file is only read); (2) move the
    /// damaged files aside, WAL first; (3) rename the salvage into place. A crash before (2)
    /// leaves the damaged file in place and a stale salvage, which the next open deletes and
    /// redoes; a crash between (2) and (3) leaves no journal and a finished salvage, which the
    /// next open puts in place (with a notice that says so; its counts are then unknown).
    pub(crate) fn open(config: &JournalConfig) -> Result<(Store, Option<Quarantine>)> {
        config.validate()?;
        let path = &config.path;
        let now = config.clock.now_ms();
        let mut notice = None;
        let note = |notice: &mut Option<Quarantine>, q: Quarantine| {
            *notice = Some(match notice.take() {
                Some(first) => first.merge(q),
                None => q,
            });
        };
        if let Some(q) = finish_interrupted_salvage(path, now)? {
            note(&mut notice, q);
        }
        if let Some(q) = integrity::expected_but_absent(path, now)? {
            note(&mut notice, q);
        }
        if let Some(reason) = integrity::wal_problem(path)? {
            let q = integrity::quarantine(
                path,
                format!("garbage WAL moved aside, main file kept: {reason}"),
                false,
                now,
            )?;
            note(&mut notice, q);
        }
        match Self::try_open(config) {
            Ok(store) => {
                integrity::write_marker(path, now)?;
                Ok((store, notice))
            }
            Err(Failure::Other(e)) => Err(e),
            Err(failure @ (Failure::Damaged(_) | Failure::Foreign(_))) => {
                let tmp = salvage_path(path);
                let (reason, salvageable) = match failure {
                    Failure::Damaged(reason) => (reason, true),
                    Failure::Foreign(reason) => (reason, false),
                    Failure::Other(e) => return Err(e),
                };
                let salvage = match salvageable.then(|| salvage_into(path, &tmp)) {
                    None => None,
                    Some(Ok(s)) => Some(s),
                    Some(Err(e)) => {
                        tracing::error!(path = %path.display(), error = %e,
                            "journal salvage failed; starting an empty journal");
                        let _ = fs::remove_file(&tmp);
                        None
                    }
                };
                let mut q = integrity::quarantine(path, reason, true, now)?;
                if let Some(s) = salvage {
                    fs::rename(&tmp, path).map_err(|source| JournalError::Io {
                        path: tmp.clone(),
                        source,
                    })?;
                    integrity::sync_dir(path);
                    tracing::warn!(path = %path.display(), points_saved = s.points_saved,
                        records_saved = s.records_saved, points_lost = ?s.points_lost,
                        records_lost = ?s.records_lost, "damaged journal salvaged");
                    q.salvage = Some(s);
                }
                let notice = match notice {
                    Some(first) => first.merge(q),
                    None => q,
                };
                match Self::try_open(config) {
                    Ok(store) => {
                        integrity::write_marker(path, now)?;
                        Ok((store, Some(notice)))
                    }
                    Err(Failure::Damaged(why) | Failure::Foreign(why)) => {
                        Err(JournalError::Corrupt(format!(
                            "fresh journal unusable after quarantine: {why}"
                        )))
                    }
                    Err(Failure::Other(e)) => Err(e),
                }
            }
        }
    }

    fn try_open(config: &JournalConfig) -> Result<Store, Failure> {
        let path = &config.path;
        if let Some(reason) = integrity::header_problem(path)? {
            return Err(Failure::Damaged(reason));
        }
        let mut conn = connect(path).map_err(|e| locked_or(path, e))?;
        let mode = configure(&conn, config).map_err(|e| locked_or(path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Failure::Other(JournalError::Config(format!(
                "the file system refused WAL mode (journal_mode is {mode})"
            ))));
        }
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| locked_or(path, e))?;
        if check != "ok" {
            return Err(Failure::Damaged(format!("quick_check: {check}")));
        }
        match schema::migrate(&mut conn, schema::MIGRATIONS) {
            Ok(_) => {}
            Err(SchemaError::TooNew { found, supported }) => {
                return Err(Failure::Foreign(format!(
                    "schema version {found} is newer than this build's {supported}"
                )))
            }
            Err(SchemaError::Journal(e)) => return Err(e.into()),
        }
        if let Some(bytes) = config.file_limit_bytes {
            set_file_limit(&conn, Some(bytes))?;
        }
        let series = SeriesDictionary::load(&conn)?;
        let (telemetry, max_segment) = conn.query_row(
            "SELECT count(*), coalesce(sum(points), 0), coalesce(sum(size), 0),
                    coalesce(max(id), 0) FROM segments",
            [],
            |r| {
                let points: i64 = r.get(1)?;
                let bytes: i64 = r.get(2)?;
                Ok((
                    Tally {
                        count: points as u64,
                        bytes: bytes as u64,
                    },
                    r.get::<_, i64>(3)?,
                ))
            },
        )?;
        let mut records = [Tally::default(); 2];
        {
            let mut stmt = conn.prepare(
                "SELECT class, count(*), coalesce(sum(length(payload)), 0) FROM records
                 GROUP BY class",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let class = RecordClass::from_code(row.get(0)?)
                    .ok_or_else(|| Failure::Damaged("record with unknown class".to_string()))?;
                let count: i64 = row.get(1)?;
                let bytes: i64 = row.get(2)?;
                records[class.index()] = Tally {
                    count: count as u64,
                    bytes: bytes as u64 + count as u64 * super::ROW_OVERHEAD,
                };
            }
        }
        let max_record: i64 =
            conn.query_row("SELECT coalesce(max(id), 0) FROM records", [], |r| r.get(0))?;
        let mut dropped = read_drops(&conn)?;
        let (drops_reported, refused_saved, refusals) = open_counters(&conn, path, &dropped)?;
        let unsaved_disk_full = refusals.total() - refused_saved;
        if unsaved_disk_full > 0 {
            dropped.disk_full += unsaved_disk_full;
            tracing::warn!(path = %path.display(), refused_points = unsaved_disk_full,
                "points refused while the disk was full before this start are counted");
        }
        let next_segment_id = max_segment + 1;
        Ok(Store {
            conn,
            path: path.clone(),
            clock: config.clock.clone(),
            caps: config.caps,
            segment_points: config.segment_points,
            series,
            drain: DrainState::new(config.backfill_share, next_segment_id),
            next_segment_id,
            next_record_id: max_record + 1,
            telemetry,
            records,
            dropped,
            unsaved_disk_full,
            refusals,
            refused_saved,
            drops_reported,
            dirty: false,
            syncs: 0,
        })
    }

    /// Sets (or lifts) the hard ceiling on the database file.
    pub(crate) fn set_file_limit(&mut self, bytes: Option<u64>) -> Result<()> {
        set_file_limit(&self.conn, bytes)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The counters of `totals` that say what has been reported and saved, and the refusal log.
/// A file without them (a new journal, or one written by an older release) gets them now: its
/// drops count as reported, as older releases assumed at every start, and a refusal log left
/// from another journal file at this path is not trusted. If there is no room to write them,
/// the journal runs with them in memory and the next open tries again.
fn open_counters(
    conn: &Connection,
    path: &Path,
    dropped: &Dropped,
) -> rusqlite::Result<(u64, u64, RefusalLog)> {
    let reported = read_counter(conn, DROPS_REPORTED)?;
    let saved = read_counter(conn, REFUSED_SAVED)?;
    let trusted = saved.is_some();
    let missing = reported.is_none() || saved.is_none();
    let (reported, saved) = (reported.unwrap_or(dropped.total()), saved.unwrap_or(0));
    if missing {
        let write = || -> Result<()> {
            let tx = conn.unchecked_transaction()?;
            write_counter(&tx, DROPS_REPORTED, reported)?;
            write_counter(&tx, REFUSED_SAVED, saved)?;
            tx.commit()?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::warn!(path = %path.display(), error = %e,
                "cannot record the journal's reporting counters yet");
        }
    }
    Ok((reported, saved, RefusalLog::open(path, saved, trusted)))
}

/// Puts a salvage left by a crash between quarantine and rename in place, or deletes one whose
/// damaged journal is still there (that salvage is redone).
fn finish_interrupted_salvage(path: &Path, now_ms: i64) -> Result<Option<Quarantine>> {
    let tmp = salvage_path(path);
    if !tmp.exists() {
        return Ok(None);
    }
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| JournalError::Io { path: p, source }
    };
    if path.exists() {
        fs::remove_file(&tmp).map_err(io(&tmp))?;
        return Ok(None);
    }
    fs::rename(&tmp, path).map_err(io(&tmp))?;
    integrity::sync_dir(path);
    let reason = "a journal salvage interrupted by a restart was completed; how much it saved \
                  is not known"
        .to_string();
    tracing::error!(path = %path.display(), %reason, "journal salvage completed");
    Ok(Some(Quarantine {
        reason,
        moved_to: Vec::new(),
        at_ms: now_ms,
        salvage: None,
    }))
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags)
}

/// Exclusive locking keeps a second agent out and lets SQLite keep the WAL index in memory (no
/// `-shm` file on an SD card). Automatic checkpoints stay on as a bound on WAL size under heavy
/// load; at the reference workload the periodic sync checkpoints long before they trigger.
fn configure(conn: &Connection, config: &JournalConfig) -> rusqlite::Result<String> {
    conn.busy_timeout(std::time::Duration::ZERO)?;
    conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE;")?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    let sync = match config.durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync};
         PRAGMA cache_size = -2000;
         PRAGMA wal_autocheckpoint = 1000;"
    ))?;
    Ok(mode)
}

fn set_file_limit(conn: &Connection, bytes: Option<u64>) -> Result<()> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let pages = match bytes {
        Some(b) => (b / page_size as u64).max(1) as i64,
        None => 4_294_967_294,
    };
    let _: i64 = conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
        r.get(0)
    })?;
    Ok(())
}

fn read_drops(conn: &Connection) -> rusqlite::Result<Dropped> {
    let mut dropped = Dropped::default();
    let mut stmt = conn.prepare("SELECT reason, points FROM drops")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let reason: String = row.get(0)?;
        let points = row.get::<_, i64>(1)? as u64;
        match reason.as_str() {
            DROP_MAX_BYTES => dropped.max_bytes = points,
            DROP_MAX_AGE => dropped.max_age = points,
            DROP_DISK_FULL => dropped.disk_full = points,
            DROP_CORRUPT => dropped.corrupt = points,
            _ => {}
        }
    }
    Ok(dropped)
}

/// Busy means another process holds the journal: not damage, and not to be quarantined.
fn locked_or(path: &Path, e: rusqlite::Error) -> Failure {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            Failure::Other(JournalError::Locked {
                path: path.to_path_buf(),
            })
        }
        _ => e.into(),
    }
}
