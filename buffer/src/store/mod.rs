//! The journal itself, synchronous, over one rusqlite connection.
//!
//! Only the owner thread (see `owner`) touches a [`Store`]; the rest of the program reaches it
//! through [`crate::Journal`]. Every public operation is one SQLite transaction, and the memory
//! copies (totals, series dictionary, id counters) change only after that transaction commits,
//! so a failed operation (disk full) leaves the store exactly as it was.

mod append;
mod caps;
mod open;
mod read;
mod refused;
mod totals;
mod upkeep;

pub(crate) use append::add_drops;
pub(crate) use totals::{
    read_counter, read_totals, write_counter, write_totals, Totals, DROPS_REPORTED, REFUSED_SAVED,
};

use std::path::PathBuf;

use rusqlite::Connection;

use crate::batch::RecordClass;
use crate::clock::Clock;
use crate::config::Caps;
use crate::drain::DrainState;
use crate::series::SeriesDictionary;
use crate::stats::Dropped;

/// Bytes accounted per stored row on top of its payload: SQLite's cell header, row id, the
/// integer columns and the cell pointer, rounded up. Keeps the byte cap honest for tiny records.
pub(crate) const ROW_OVERHEAD: u64 = 24;

/// Drop reasons as stored in the `drops` table.
pub(crate) const DROP_MAX_BYTES: &str = "max_bytes";
pub(crate) const DROP_MAX_AGE: &str = "max_age";
pub(crate) const DROP_DISK_FULL: &str = "disk_full";
pub(crate) const DROP_CORRUPT: &str = "corrupt";

/// Count and bytes of what is stored in one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) count: u64,
    pub(crate) bytes: u64,
}

impl Tally {
    fn add(&mut self, count: u64, bytes: u64) {
        self.count += count;
        self.bytes += bytes;
    }

    fn sub(&mut self, count: u64, bytes: u64) {
        self.count = self.count.saturating_sub(count);
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

/// The synchronous journal. See the crate docs for its invariants.
pub(crate) struct Store {
    conn: Connection,
    path: PathBuf,
    clock: Clock,
    caps: Caps,
    segment_points: usize,
    series: SeriesDictionary,
    drain: DrainState,
    next_segment_id: i64,
    next_record_id: i64,
    /// Telemetry points and bytes stored (pending or in flight).
    telemetry: Tally,
    /// Records stored, indexed by `RecordClass::index`.
    records: [Tally; 2],
    dropped: Dropped,
    /// Points refused while the disk was full and not yet written to `drops`: the refusal
    /// log's total minus `refused_saved`.
    unsaved_disk_full: u64,
    /// Every refusal, where a full disk cannot stop it from being counted (`refused`).
    refusals: refused::RefusalLog,
    /// How much of the refusal log's total is in `drops` (the `totals` row `refused_saved`).
    refused_saved: u64,
    /// The drop total the journaled drop reports cover (the `totals` row `drops_reported`).
    drops_reported: u64,
    /// Something was committed since the last sync.
    dirty: bool,
    syncs: u64,
}

impl Store {
    fn stored_bytes(&self) -> u64 {
        self.telemetry.bytes + self.records.iter().map(|t| t.bytes).sum::<u64>()
    }

    fn record_count(&self) -> u64 {
        self.records.iter().map(|t| t.count).sum()
    }

    fn tally_mut(&mut self, class: RecordClass) -> &mut Tally {
        &mut self.records[class.index()]
    }
}
