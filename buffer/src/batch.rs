//! What the journal hands the uplink and what it gets back.
//!
//! A batch is exactly what one publish carries: a run of telemetry points, or one
//! acknowledgement or event payload. Acknowledging its [`BatchId`] when the broker's PUBACK for
//! that publish arrives deletes it; nothing else does (except the telemetry caps).

use std::fmt;

use fieldlink_protocol::Point;

/// The kind of an opaque record. Both leave before telemetry and are never dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordClass {
    /// A command acknowledgement (leaves first: the cloud is waiting for it).
    Ack,
    /// A gateway event (device up/down, errors, drop counts, config applied).
    Event,
}

impl RecordClass {
    /// Drain priority order.
    pub(crate) const ALL: [RecordClass; 2] = [RecordClass::Ack, RecordClass::Event];

    pub(crate) fn code(self) -> i64 {
        match self {
            RecordClass::Ack => 0,
            RecordClass::Event => 1,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(RecordClass::Ack),
            1 => Some(RecordClass::Event),
            _ => None,
        }
    }

    pub(crate) fn index(self) -> usize {
        self.code() as usize
    }
}

/// Names one batch handed out by [`crate::Journal::next_batch`]. Valid until it is
/// acknowledged, or until [`crate::Journal::requeue_in_flight`] or a restart forgets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(pub(crate) u64);

impl BatchId {
    /// The id numbered `n`, as [`fmt::Display`] shows it: for code that carries ids and is
    /// tested without a journal. The journal acknowledges only ids it handed out.
    pub fn from_raw(n: u64) -> BatchId {
        BatchId(n)
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch-{}", self.0)
    }
}

/// One publish worth of journal content.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub id: BatchId,
    pub body: BatchBody,
}

/// What a batch carries.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchBody {
    /// Points in append order.
    Telemetry {
        points: Vec<Point>,
        /// The points come from backlog: they were stored before the last reconnect or restart.
        historical: bool,
    },
    /// One acknowledgement or event payload, as the agent encoded it.
    Record {
        class: RecordClass,
        payload: Vec<u8>,
        appended_ms: i64,
    },
}

impl Batch {
    /// Telemetry points carried (0 for a record).
    pub fn point_count(&self) -> usize {
        match &self.body {
            BatchBody::Telemetry { points, .. } => points.len(),
            BatchBody::Record { .. } => 0,
        }
    }
}

/// What an append did besides storing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// Telemetry points the byte cap dropped to make room (the oldest, possibly including some
    /// of the ones just appended when nothing older is left to drop).
    pub dropped_points: u64,
}
