//! Syncing, periodic upkeep and statistics.

use std::fs;

use super::Store;
use crate::batch::RecordClass;
use crate::error::Result;
use crate::integrity::wal_path;
use crate::stats::{Depth, Stats};

impl Store {
    /// Makes every commit so far survive a power cut: a checkpoint fsyncs the WAL, copies it into
    /// the main file and fsyncs that. Nothing to do when nothing was committed since the last sync.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.refusals.sync();
        if !self.dirty {
            return Ok(());
        }
        let (busy, _log, _done): (i64, i64, i64) =
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
        if busy != 0 {
            tracing::warn!("journal checkpoint could not complete");
        }
        self.dirty = false;
        self.syncs += 1;
        Ok(())
    }

    /// Periodic work: the age cap, then the sync.
    pub(crate) fn tick(&mut self) -> Result<()> {
        self.drop_expired()?;
        self.sync()
    }

    pub(crate) fn stats(&self) -> Result<Stats> {
        let now = self.clock.now_ms();
        let age = |sql: &str, class: Option<i64>| -> Result<Option<i64>> {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let mut rows = match class {
                Some(c) => stmt.query([c])?,
                None => stmt.query([])?,
            };
            Ok(match rows.next()? {
                Some(row) => Some((now - row.get::<_, i64>(0)?).max(0)),
                None => None,
            })
        };
        let record_depth = |class: RecordClass| -> Result<Depth> {
            let t = self.records[class.index()];
            Ok(Depth {
                count: t.count,
                bytes: t.bytes,
                oldest_age_ms: age(
                    "SELECT appended_ms FROM records WHERE class = ?1 ORDER BY id LIMIT 1",
                    Some(class.code()),
                )?,
            })
        };
        let file_len = |p: &std::path::Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        Ok(Stats {
            acks: record_depth(RecordClass::Ack)?,
            events: record_depth(RecordClass::Event)?,
            telemetry: Depth {
                count: self.telemetry.count,
                bytes: self.telemetry.bytes,
                oldest_age_ms: age("SELECT appended_ms FROM segments ORDER BY id LIMIT 1", None)?,
            },
            stored_bytes: self.stored_bytes(),
            file_bytes: file_len(self.path()) + file_len(&wal_path(self.path())),
            dropped: self.dropped,
            drops_reported: self.drops_reported,
            in_flight_batches: self.drain.in_flight_len(),
            syncs: self.syncs,
            series: self.series.len(),
        })
    }
}
