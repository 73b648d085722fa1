//! Handing out batches and deleting them on acknowledgement.

use super::append::add_drops;
use super::caps::delete_segments;
use super::{write_totals, Store, DROP_CORRUPT};
use crate::batch::{Batch, BatchBody, BatchId, RecordClass};
use crate::codec;
use crate::config::BatchLimits;
use crate::drain::{Region, Span};
use crate::error::{JournalError, Result};

impl Store {
    /// The next batch: acknowledgements, then events, then telemetry (live before backlog, up to
    /// the backfill share). `None` when nothing is pending.
    pub(crate) fn next_batch(&mut self, limits: BatchLimits) -> Result<Option<Batch>> {
        limits.validate()?;
        for class in RecordClass::ALL {
            if let Some(batch) = self.next_record(class)? {
                return Ok(Some(batch));
            }
        }
        for region in self.drain.region_order() {
            if let Some(batch) = self.next_segments(region, limits)? {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }

    fn next_record(&mut self, class: RecordClass) -> Result<Option<Batch>> {
        if self.records[class.index()].count == 0 {
            return Ok(None);
        }
        let row = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, appended_ms, payload FROM records WHERE class = ?1 AND id >= ?2
                 ORDER BY id LIMIT 1",
            )?;
            let mut rows = stmt.query((class.code(), self.drain.record_cursor(class)))?;
            match rows.next()? {
                Some(r) => Some((r.get::<_, i64>(0)?, r.get(1)?, r.get::<_, Vec<u8>>(2)?)),
                None => None,
            }
        };
        Ok(row.map(|(id, appended_ms, payload)| Batch {
            id: self.drain.take_record(class, id),
            body: BatchBody::Record {
                class,
                payload,
                appended_ms,
            },
        }))
    }

    fn next_segments(&mut self, region: Region, limits: BatchLimits) -> Result<Option<Batch>> {
        let (from, to) = self.drain.window(region);
        if from >= to || self.telemetry.count == 0 {
            return Ok(None);
        }
        let mut points = Vec::new();
        let mut bytes = 0u64;
        let mut first = None;
        let mut last = from - 1;
        let mut damaged = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, points, size, body FROM segments WHERE id >= ?1 AND id < ?2
                 ORDER BY id",
            )?;
            let mut rows = stmt.query((from, to))?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let n = row.get::<_, i64>(1)? as usize;
                let size = row.get::<_, i64>(2)? as u64;
                if first.is_some()
                    && (points.len() + n > limits.max_points
                        || bytes + size > limits.max_bytes as u64)
                {
                    break;
                }
                let body = row
                    .get_ref(3)?
                    .as_blob()
                    .map_err(|e| JournalError::Corrupt(e.to_string()))?;
                let before = points.len();
                match codec::decode_segment(body, n, &self.series, &mut points) {
                    Ok(()) => {
                        first.get_or_insert(id);
                        bytes += size;
                    }
                    Err(JournalError::Corrupt(why)) => {
                        points.truncate(before);
                        tracing::error!(segment = id, %why, "undecodable telemetry segment removed");
                        damaged.push((id, n as u64, size));
                        if first.is_some() {
                            last = id;
                            break;
                        }
                    }
                    Err(e) => return Err(e),
                }
                last = id;
            }
        }
        if !damaged.is_empty() {
            self.remove_damaged(&damaged)?;
        }
        let Some(first) = first else {
            self.drain.skip_to(region, last + 1);
            return Ok(None);
        };
        let count = points.len() as u64;
        let id = self.drain.take_segments(region, first, last, count);
        Ok(Some(Batch {
            id,
            body: BatchBody::Telemetry {
                points,
                historical: region == Region::Backlog,
            },
        }))
    }

    fn remove_damaged(&mut self, damaged: &[(i64, u64, u64)]) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        let ids: Vec<i64> = damaged.iter().map(|d| d.0).collect();
        delete_segments(&tx, &ids)?;
        let points: u64 = damaged.iter().map(|d| d.1).sum();
        let bytes: u64 = damaged.iter().map(|d| d.2).sum();
        add_drops(&tx, DROP_CORRUPT, points)?;
        write_totals(
            &tx,
            self.telemetry.count.saturating_sub(points),
            self.record_count(),
        )?;
        tx.commit()?;
        self.telemetry.sub(points, bytes);
        self.dropped.corrupt += points;
        self.dirty = true;
        Ok(())
    }

    /// Deletes what batch `id` carried. `false` if the batch is unknown (already acknowledged,
    /// or forgotten by a requeue or restart; its content is then pending again or gone).
    pub(crate) fn ack(&mut self, id: BatchId) -> Result<bool> {
        let Some(span) = self.drain.complete(id) else {
            return Ok(false);
        };
        let result = self.delete_span(span);
        if result.is_err() {
            // Not deleted: keep it in flight so a later acknowledgement can still remove it.
            self.drain.restore(id, span);
        }
        result.map(|()| true)
    }

    fn delete_span(&mut self, span: Span) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        self.save_disk_full_drops(&tx)?;
        match span {
            Span::Segments { first, last, .. } => {
                let (points, bytes) = {
                    let mut stmt = tx.prepare_cached(
                        "DELETE FROM segments WHERE id BETWEEN ?1 AND ?2 RETURNING points, size",
                    )?;
                    let mut rows = stmt.query((first, last))?;
                    let (mut p, mut b) = (0u64, 0u64);
                    while let Some(row) = rows.next()? {
                        p += row.get::<_, i64>(0)? as u64;
                        b += row.get::<_, i64>(1)? as u64;
                    }
                    (p, b)
                };
                write_totals(
                    &tx,
                    self.telemetry.count.saturating_sub(points),
                    self.record_count(),
                )?;
                tx.commit()?;
                self.telemetry.sub(points, bytes);
            }
            Span::Record { id } => {
                let deleted = {
                    let mut stmt = tx.prepare_cached(
                        "DELETE FROM records WHERE id = ?1 RETURNING class, length(payload)",
                    )?;
                    let mut rows = stmt.query([id])?;
                    match rows.next()? {
                        Some(row) => Some((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
                        None => None,
                    }
                };
                let records = self
                    .record_count()
                    .saturating_sub(u64::from(deleted.is_some()));
                write_totals(&tx, self.telemetry.count, records)?;
                tx.commit()?;
                if let Some((code, len)) = deleted {
                    if let Some(class) = RecordClass::from_code(code) {
                        self.tally_mut(class)
                            .sub(1, len as u64 + super::ROW_OVERHEAD);
                    }
                }
            }
        }
        self.room_returned();
        self.dirty = true;
        Ok(())
    }

    /// Everything in flight becomes pending again (the uplink reconnected).
    pub(crate) fn requeue_in_flight(&mut self) {
        self.drain.requeue(self.next_segment_id);
    }
}
