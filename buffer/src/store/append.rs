//! Appending telemetry and records: one transaction per call.

use fieldlink_protocol::Point;
use rusqlite::Transaction;

use super::{
    write_counter, write_totals, Store, DROPS_REPORTED, DROP_DISK_FULL, REFUSED_SAVED, ROW_OVERHEAD,
};
use crate::batch::{Appended, RecordClass};
use crate::codec::SegmentEncoder;
use crate::error::{JournalError, Result};
use crate::series::SeriesId;

/// Encoded bytes at which a segment is closed. Four rows of this size (plus SQLite's ~20 bytes
/// of cell overhead each) fill a 4 KiB page almost exactly, whatever the points look like; a
/// row just over half a page would sit alone in its page and waste the rest.
const SEGMENT_BYTES: usize = 980;

impl Store {
    /// Stores one cycle's points, committed as one transaction, then enforces the byte cap.
    pub(crate) fn append_points(&mut self, points: &[Point]) -> Result<Appended> {
        if points.is_empty() {
            return Ok(Appended::default());
        }
        let now = self.clock.now_ms();
        let mut bodies: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut enc = SegmentEncoder::default();
        for p in points {
            let series = self.series.id_or_stage(&p.device, &p.metric).0;
            if let Err(e) = add_point(&mut enc, &mut bodies, series, p, self.segment_points) {
                self.series.discard_staged();
                return Err(e);
            }
        }
        if enc.points() > 0 {
            let (n, body) = enc.finish();
            bodies.push((n as u64, body));
        }
        let first_id = self.next_segment_id;
        let added_bytes: u64 = bodies
            .iter()
            .map(|(_, b)| b.len() as u64 + ROW_OVERHEAD)
            .sum();
        let result = (|| {
            let tx = self.conn.unchecked_transaction()?;
            self.series.write_staged(&tx)?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO segments (id, appended_ms, points, size, body)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (i, (n, body)) in bodies.iter().enumerate() {
                    let size = body.len() as u64 + ROW_OVERHEAD;
                    stmt.execute((
                        first_id + i as i64,
                        now,
                        *n as i64,
                        size as i64,
                        body.as_slice(),
                    ))?;
                }
            }
            self.save_disk_full_drops(&tx)?;
            let over = (self.stored_bytes() + added_bytes).saturating_sub(self.caps.max_bytes);
            let dropped = self.drop_for_bytes(&tx, over)?;
            write_totals(
                &tx,
                (self.telemetry.count + points.len() as u64).saturating_sub(dropped.points),
                self.record_count(),
            )?;
            tx.commit()?;
            Ok::<_, JournalError>(dropped)
        })();
        match result {
            Ok(dropped) => {
                self.series.commit_staged();
                self.next_segment_id += bodies.len() as i64;
                self.telemetry.add(points.len() as u64, added_bytes);
                self.room_returned();
                self.apply_byte_drops(dropped);
                self.dirty = true;
                Ok(Appended {
                    dropped_points: dropped.points,
                })
            }
            Err(e) => {
                self.series.discard_staged();
                if matches!(e, JournalError::DiskFull) {
                    if self.unsaved_disk_full == 0 {
                        tracing::warn!(path = %self.path.display(),
                            "journal full: refusing points until space returns");
                    }
                    self.refusals.add(points.len() as u64);
                    self.unsaved_disk_full += points.len() as u64;
                    self.dropped.disk_full += points.len() as u64;
                }
                Err(e)
            }
        }
    }

    /// Stores one acknowledgement or event payload. With `reported`, the payload is a drop
    /// report covering a drop total of `reported`, recorded in the same transaction.
    pub(crate) fn append_record(
        &mut self,
        class: RecordClass,
        payload: &[u8],
        reported: Option<u64>,
    ) -> Result<Appended> {
        let now = self.clock.now_ms();
        let id = self.next_record_id;
        let result = (|| {
            let tx = self.conn.unchecked_transaction()?;
            tx.prepare_cached(
                "INSERT INTO records (id, class, appended_ms, payload) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute((id, class.code(), now, payload))?;
            if let Some(total) = reported {
                write_counter(&tx, DROPS_REPORTED, total)?;
            }
            self.save_disk_full_drops(&tx)?;
            let added = payload.len() as u64 + ROW_OVERHEAD;
            let over = (self.stored_bytes() + added).saturating_sub(self.caps.max_bytes);
            let dropped = self.drop_for_bytes(&tx, over)?;
            write_totals(
                &tx,
                self.telemetry.count.saturating_sub(dropped.points),
                self.record_count() + 1,
            )?;
            tx.commit()?;
            Ok::<_, JournalError>(dropped)
        })();
        let dropped = result?;
        if let Some(total) = reported {
            self.drops_reported = total;
        }
        self.next_record_id += 1;
        self.tally_mut(class)
            .add(1, payload.len() as u64 + ROW_OVERHEAD);
        self.room_returned();
        self.apply_byte_drops(dropped);
        self.dirty = true;
        Ok(Appended {
            dropped_points: dropped.points,
        })
    }

    /// A commit went through: the points refused while full are now in `drops`. Logs the end of
    /// a full spell once, as its start was logged once.
    pub(super) fn room_returned(&mut self) {
        if self.unsaved_disk_full > 0 {
            tracing::warn!(
                path = %self.path.display(),
                refused_points = self.unsaved_disk_full,
                "journal has room again; points refused while full are counted"
            );
            self.refused_saved = self.refusals.total();
        }
        self.unsaved_disk_full = 0;
    }

    /// Writes the points refused while the disk was full into `drops`, and how much of the
    /// refusal log that covers into `totals`, inside `tx`. The memory counters follow once `tx`
    /// commits ([`Store::room_returned`]).
    pub(super) fn save_disk_full_drops(&self, tx: &Transaction<'_>) -> Result<()> {
        if self.unsaved_disk_full > 0 {
            add_drops(tx, DROP_DISK_FULL, self.unsaved_disk_full)?;
            write_counter(tx, REFUSED_SAVED, self.refusals.total())?;
        }
        Ok(())
    }
}

/// Adds `p` to the segment being built, closing it first if `p` does not fit, and closing it
/// after if it reached `max_points`.
fn add_point(
    enc: &mut SegmentEncoder,
    bodies: &mut Vec<(u64, Vec<u8>)>,
    series: SeriesId,
    p: &Point,
    max_points: usize,
) -> Result<()> {
    if !enc.push(series, p, SEGMENT_BYTES)? {
        let (n, body) = enc.finish();
        bodies.push((n as u64, body));
        // An empty segment takes any point.
        enc.push(series, p, SEGMENT_BYTES)?;
    }
    if enc.points() >= max_points {
        let (n, body) = enc.finish();
        bodies.push((n as u64, body));
    }
    Ok(())
}

/// Adds `points` to the durable counter for `reason`, inside the caller's transaction.
pub(crate) fn add_drops(tx: &Transaction<'_>, reason: &str, points: u64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO drops (reason, points) VALUES (?1, ?2)
         ON CONFLICT (reason) DO UPDATE SET points = points + excluded.points",
    )?
    .execute((reason, points as i64))?;
    Ok(())
}
