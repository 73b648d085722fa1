//! The journal's tables and how a file moves from any earlier schema version to the current one.
//!
//! `PRAGMA user_version` holds the number of migration steps applied. Each step runs in its own
//! transaction together with the version bump, so a crash mid-migration leaves the file at the
//! previous version, and the next open runs the step again. A file from a newer release (a
//! version above ours) is not ours to interpret; opening quarantines it rather than guessing.
//!
//! Version 1 (the first):
//! - `series`: the dictionary of `(device, metric)` pairs used by packed points.
//! - `segments`: telemetry, one row per run of packed points of one append (about 1 KiB), in
//!   append order (`id`), with the append time, the point count and the accounted size.
//! - `records`: acknowledgements and events, one opaque payload per row, in append order.
//! - `drops`: durable counters of telemetry points dropped, by reason.
//!
//! Version 2:
//! - `totals`: the telemetry points (`points`) and records (`records`) the data tables hold,
//!   rewritten by every transaction that changes them. Nothing reads them while the journal is
//!   sound; salvage compares them with what it could copy out of a damaged file to count the
//!   loss. The same table holds `drops_reported` and `refused_saved` (see the crate docs),
//!   added by the first open of a release that keeps them; no schema step is needed for rows.

use rusqlite::Connection;

use crate::error::{JournalError, Result};

/// Migration steps; step `i` takes the file from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        device TEXT NOT NULL,
        metric TEXT NOT NULL,
        UNIQUE (device, metric)
     );
     CREATE TABLE segments (
        id INTEGER PRIMARY KEY,
        appended_ms INTEGER NOT NULL,
        points INTEGER NOT NULL,
        size INTEGER NOT NULL,
        body BLOB NOT NULL
     );
     CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        class INTEGER NOT NULL,
        appended_ms INTEGER NOT NULL,
        payload BLOB NOT NULL
     );
     CREATE INDEX records_by_class ON records (class, id);
     CREATE TABLE drops (
        reason TEXT PRIMARY KEY,
        points INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 2: `totals`, what the data tables should hold, so salvage can tell what a damage lost.
    "CREATE TABLE totals (
        what TEXT PRIMARY KEY,
        count INTEGER NOT NULL
     ) WITHOUT ROWID;
     INSERT INTO totals (what, count) SELECT 'points', coalesce(sum(points), 0) FROM segments;
     INSERT INTO totals (what, count) SELECT 'records', count(*) FROM records;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Why a file's schema cannot be brought to ours.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SchemaError {
    #[error("schema version {found} is newer than this build's {supported}")]
    TooNew { found: u32, supported: u32 },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl From<rusqlite::Error> for SchemaError {
    fn from(e: rusqlite::Error) -> Self {
        SchemaError::Journal(e.into())
    }
}

/// Applies whatever steps of `steps` the file lacks. Returns the version found before.
pub(crate) fn migrate(conn: &mut Connection, steps: &[&str]) -> Result<u32, SchemaError> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = steps.len() as u32;
    if found > supported {
        return Err(SchemaError::TooNew { found, supported });
    }
    for (i, step) in steps.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
        tracing::info!(from = i, to = i + 1, "journal schema migrated");
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> u32 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn an_empty_file_reaches_the_current_version_and_reopening_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(migrate(&mut conn, MIGRATIONS).unwrap(), 0);
        assert_eq!(version(&conn), SCHEMA_VERSION);
        drop(conn);
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(migrate(&mut conn, MIGRATIONS).unwrap(), SCHEMA_VERSION);
        assert_eq!(version(&conn), SCHEMA_VERSION);
    }

    #[test]
    fn a_first_version_file_is_upgraded_by_later_steps_keeping_its_rows() {
        // The runner is exercised with a later step that exists only in this test, on a file
        // written with the first version's schema.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &MIGRATIONS[..1]).unwrap();
        conn.execute(
            "INSERT INTO records (id, class, appended_ms, payload) VALUES (1, 0, 5, x'01')",
            [],
        )
        .unwrap();
        drop(conn);
        let mut steps = MIGRATIONS[..1].to_vec();
        steps.push("ALTER TABLE records ADD COLUMN note TEXT NOT NULL DEFAULT 'x'");
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(migrate(&mut conn, &steps).unwrap(), 1);
        assert_eq!(version(&conn), 2);
        let (payload, note): (Vec<u8>, String) = conn
            .query_row("SELECT payload, note FROM records WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((payload, note.as_str()), (vec![1u8], "x"));
    }

    #[test]
    fn a_failing_step_leaves_the_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("j.db")).unwrap();
        let mut steps = MIGRATIONS.to_vec();
        steps.push("CREATE TABLE ok_part (x); THIS IS NOT SQL");
        assert!(migrate(&mut conn, &steps).is_err());
        assert_eq!(version(&conn), SCHEMA_VERSION);
        let leftover: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'ok_part'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(leftover, 0);
    }

    #[test]
    fn a_newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("j.db")).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        assert!(matches!(
            migrate(&mut conn, MIGRATIONS),
            Err(SchemaError::TooNew { found: 99, .. })
        ));
    }
}
