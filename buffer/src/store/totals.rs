//! The `totals` row: what the data tables hold, kept in the same transactions that change them.

use rusqlite::{Connection, Transaction};

use crate::error::Result;

/// Telemetry points and records a journal file says it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) points: u64,
    pub(crate) records: u64,
}

/// Sets the totals inside the caller's transaction.
pub(crate) fn write_totals(tx: &Transaction<'_>, points: u64, records: u64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO totals (what, count) VALUES ('points', ?1), ('records', ?2)
         ON CONFLICT (what) DO UPDATE SET count = excluded.count",
    )?
    .execute((points as i64, records as i64))?;
    Ok(())
}

/// The totals of a (possibly damaged) file; `None` if it has no complete `totals` row.
pub(crate) fn read_totals(conn: &Connection) -> rusqlite::Result<Option<Totals>> {
    let mut stmt = conn.prepare("SELECT what, count FROM totals")?;
    let mut rows = stmt.query([])?;
    let (mut points, mut records) = (None, None);
    while let Some(row) = rows.next()? {
        let what: String = row.get(0)?;
        let count = u64::try_from(row.get::<_, i64>(1)?).ok();
        match what.as_str() {
            "points" => points = count,
            "records" => records = count,
            _ => {}
        }
    }
    Ok(points
        .zip(records)
        .map(|(points, records)| Totals { points, records }))
}

/// The `totals` row of the drop total (every reason) that drop reports journaled so far have
/// covered: written with the report, in its transaction (see `Journal::append_drop_report`).
pub(crate) const DROPS_REPORTED: &str = "drops_reported";
/// The `totals` row of how much of the refusal log's running total (`journal.db.refused`) is
/// already in `drops` under `disk_full`: written with the drops, in their transaction.
pub(crate) const REFUSED_SAVED: &str = "refused_saved";

/// Sets one counter row of `totals` inside the caller's transaction.
pub(crate) fn write_counter(tx: &Transaction<'_>, what: &str, value: u64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO totals (what, count) VALUES (?1, ?2)
         ON CONFLICT (what) DO UPDATE SET count = excluded.count",
    )?
    .execute((what, value as i64))?;
    Ok(())
}

/// One counter row of `totals`; `None` when the file has none (written by an older release).
pub(crate) fn read_counter(conn: &Connection, what: &str) -> rusqlite::Result<Option<u64>> {
    let mut stmt = conn.prepare("SELECT count FROM totals WHERE what = ?1")?;
    let mut rows = stmt.query([what])?;
    Ok(match rows.next()? {
        Some(row) => u64::try_from(row.get::<_, i64>(0)?).ok(),
        None => None,
    })
}
