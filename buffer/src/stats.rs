//! A snapshot of the journal for health reporting and metrics.

/// How much of one class is waiting (pending or in flight).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Points for telemetry, records for acknowledgements and events.
    pub count: u64,
    /// Accounted stored bytes.
    pub bytes: u64,
    /// Age of the oldest waiting item by its append time, if any is waiting.
    pub oldest_age_ms: Option<i64>,
}

/// Telemetry points dropped since the journal file was created, by reason. Kept durably in the
/// journal and updated in the transaction that drops, so the counts are exact across restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Dropped oldest-first to stay within `caps.max_bytes`.
    pub max_bytes: u64,
    /// Dropped for being older than `caps.max_age`.
    pub max_age: u64,
    /// Refused because the disk was full. Durable at once through the refusal log (a full
    /// disk cannot commit), and in `drops` from the first commit once space returns.
    pub disk_full: u64,
    /// Stored segments that no longer decoded and were removed so draining could go on.
    pub corrupt: u64,
}

impl Dropped {
    pub fn total(&self) -> u64 {
        self.max_bytes + self.max_age + self.disk_full + self.corrupt
    }
}

/// The journal at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub acks: Depth,
    pub events: Depth,
    pub telemetry: Depth,
    /// Stored bytes across classes (what the byte cap compares).
    pub stored_bytes: u64,
    /// Bytes of the database file plus its WAL.
    pub file_bytes: u64,
    pub dropped: Dropped,
    /// The drop total ([`Dropped::total`]) that the drop reports journaled so far cover
    /// ([`crate::Journal::append_drop_report`]); durable, so a restart knows what is unreported.
    pub drops_reported: u64,
    /// Batches handed out and not yet acknowledged.
    pub in_flight_batches: usize,
    /// WAL syncs (checkpoints) done since open.
    pub syncs: u64,
    /// Series in the dictionary.
    pub series: usize,
}
