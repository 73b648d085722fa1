//! Dropping the oldest telemetry when a cap is reached, with exact counts.
//!
//! Only telemetry segments are ever dropped, whole, oldest id first, and never one that is in
//! flight (its acknowledgement may be on its way). The deletion and the counter update happen in
//! the same transaction, so the durable counts match what is gone, whatever crashes when.

use rusqlite::Transaction;

use super::append::add_drops;
use super::{write_totals, Store, DROP_MAX_AGE, DROP_MAX_BYTES};
use crate::clock::CLOCK_SET_AFTER_MS;
use crate::error::Result;

/// What a drop removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Shed {
    pub(crate) points: u64,
    pub(crate) bytes: u64,
}

/// At most this many segments are examined per age sweep, so a sweep over a huge backlog whose
/// stamps predate the clock being set stays short; the next sweep goes on.
const AGE_SCAN_LIMIT: i64 = 10_000;

impl Store {
    /// Drops the oldest telemetry until `over` bytes are freed (or nothing droppable is left).
    pub(super) fn drop_for_bytes(&self, tx: &Transaction<'_>, over: u64) -> Result<Shed> {
        if over == 0 {
            return Ok(Shed::default());
        }
        let mut victims = Vec::new();
        let mut shed = Shed::default();
        {
            let mut stmt =
                tx.prepare_cached("SELECT id, points, size FROM segments ORDER BY id")?;
            let mut rows = stmt.query([])?;
            while shed.bytes < over {
                let Some(row) = rows.next()? else { break };
                let id: i64 = row.get(0)?;
                if self.drain.segment_in_flight(id) {
                    continue;
                }
                shed.points += row.get::<_, i64>(1)? as u64;
                shed.bytes += row.get::<_, i64>(2)? as u64;
                victims.push(id);
            }
        }
        delete_segments(tx, &victims)?;
        if shed.points > 0 {
            add_drops(tx, DROP_MAX_BYTES, shed.points)?;
        }
        Ok(shed)
    }

    pub(super) fn apply_byte_drops(&mut self, shed: Shed) {
        if shed.points > 0 {
            self.telemetry.sub(shed.points, shed.bytes);
            self.dropped.max_bytes += shed.points;
            tracing::warn!(
                points = shed.points,
                cap_bytes = self.caps.max_bytes,
                "journal full, oldest telemetry dropped"
            );
        }
    }

    /// Drops telemetry appended before `now - max_age` (stamps from an unset clock excepted).
    pub(crate) fn drop_expired(&mut self) -> Result<u64> {
        let Some(max_age) = self.caps.max_age else {
            return Ok(0);
        };
        let cutoff = self.clock.now_ms() - max_age.as_millis() as i64;
        if cutoff <= CLOCK_SET_AFTER_MS {
            return Ok(0);
        }
        let tx = self.conn.unchecked_transaction()?;
        let mut victims = Vec::new();
        let mut shed = Shed::default();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT id, appended_ms, points, size FROM segments ORDER BY id LIMIT ?1",
            )?;
            let mut rows = stmt.query([AGE_SCAN_LIMIT])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let appended: i64 = row.get(1)?;
                if appended >= cutoff {
                    break;
                }
                if appended < CLOCK_SET_AFTER_MS || self.drain.segment_in_flight(id) {
                    continue;
                }
                shed.points += row.get::<_, i64>(2)? as u64;
                shed.bytes += row.get::<_, i64>(3)? as u64;
                victims.push(id);
            }
        }
        if victims.is_empty() {
            return Ok(0);
        }
        delete_segments(&tx, &victims)?;
        add_drops(&tx, DROP_MAX_AGE, shed.points)?;
        write_totals(
            &tx,
            self.telemetry.count.saturating_sub(shed.points),
            self.record_count(),
        )?;
        tx.commit()?;
        self.telemetry.sub(shed.points, shed.bytes);
        self.dropped.max_age += shed.points;
        self.dirty = true;
        tracing::warn!(points = shed.points, "expired telemetry dropped");
        Ok(shed.points)
    }
}

/// Deletes the given segment ids, as ranges where they are consecutive.
pub(super) fn delete_segments(tx: &Transaction<'_>, ids: &[i64]) -> Result<()> {
    let mut stmt = tx.prepare_cached("DELETE FROM segments WHERE id BETWEEN ?1 AND ?2")?;
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        stmt.execute((ids[i], ids[j]))?;
        i = j + 1;
    }
    Ok(())
}
