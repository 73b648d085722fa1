//! What the store takes and gives back, independent of the database behind it.

use std::sync::Arc;
use std::time::Duration;

use fieldlink_protocol::{Ident, Quality, Value};

/// A series' identity in the dictionary: which gateway, device and metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub gateway: Ident,
    pub device: Ident,
    pub metric: Ident,
}

/// One reading to store. Its identity is `(key, ts_ms)`; a second row with the same identity is
/// ignored, whatever its value.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRow {
    pub key: Arc<SeriesKey>,
    pub ts_ms: i64,
    pub value: Value,
    pub quality: Quality,
}

/// A message ingest could not accept, kept with the start of its bytes, their full size and
/// hash, so nothing is lost silently and nothing one gateway sends grows the store unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub received_ms: i64,
    pub topic: String,
    /// A short machine-readable reason (`decode`, `topic_mismatch`, `non_finite`, …).
    pub reason: String,
    /// The human-readable cause.
    pub detail: String,
    /// The payload's first bytes (at most [`DeadLetter::MAX_PREFIX_BYTES`]; the store keeps
    /// at most its configured prefix of them).
    pub payload: Vec<u8>,
    /// The whole payload's size in bytes.
    pub size: u64,
    /// SHA-256 of the whole payload; `None` only for rows an earlier version stored on SQLite
    /// (which has no SHA-256 function to compute it when migrating).
    pub sha256: Option<[u8; 32]>,
}

impl DeadLetter {
    /// The most of a payload a dead letter carries, and the largest prefix a store may be
    /// configured to keep.
    pub const MAX_PREFIX_BYTES: usize = 64 * 1024;

    /// The longest gateway bucket (an identifier's maximum length).
    pub const BUCKET_LEN: usize = 64;

    /// A dead letter of `payload`: its size and hash, and its first
    /// [`DeadLetter::MAX_PREFIX_BYTES`].
    pub fn new(
        received_ms: i64,
        topic: String,
        reason: String,
        detail: String,
        payload: &[u8],
    ) -> DeadLetter {
        use sha2::Digest;
        DeadLetter {
            received_ms,
            topic,
            reason,
            detail,
            payload: payload[..payload.len().min(Self::MAX_PREFIX_BYTES)].to_vec(),
            size: payload.len() as u64,
            sha256: Some(sha2::Sha256::digest(payload).into()),
        }
    }

    /// Whether `payload` holds the whole payload, not a prefix.
    pub fn is_whole(&self) -> bool {
        self.payload.len() as u64 == self.size
    }

    /// The gateway a dead letter is counted against: the topic level before the last one
    /// (`{prefix}/{gateway}/{kind}`), whatever the topic's validity; at most 64 bytes of it.
    pub fn gateway_bucket(topic: &str) -> &str {
        let mut levels = topic.rsplit('/');
        let _kind = levels.next();
        let gw = levels.next().unwrap_or("");
        fieldlink_protocol::text::clip(gw, Self::BUCKET_LEN)
    }
}

/// How much of the dead letters the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterLimits {
    /// Bytes of a payload kept (at most [`DeadLetter::MAX_PREFIX_BYTES`]); size and hash are
    /// always of the whole payload.
    pub payload_bytes: usize,
    /// Rows kept per gateway bucket ([`DeadLetter::gateway_bucket`]); a write past it deletes
    /// that gateway's oldest rows in the same transaction.
    pub per_gateway: u64,
    /// Rows older than this are deleted by the periodic upkeep.
    pub retention: Duration,
}

impl Default for DeadLetterLimits {
    fn default() -> Self {
        DeadLetterLimits {
            payload_bytes: 4_096,
            per_gateway: 10_000,
            retention: Duration::from_secs(7 * 86_400),
        }
    }
}

/// A dead letter as stored, with its row id (the cursor of the dead-letter pages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDeadLetter {
    pub id: i64,
    pub letter: DeadLetter,
}

/// A gateway's birth (online) or death (offline) as announced on its status topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayStatus {
    pub gateway: Ident,
    pub online: bool,
    /// When the cloud received it: statuses apply in arrival order.
    pub at_ms: i64,
    /// The session the status is about. Order (see the store's module docs): a birth applies
    /// when its epoch is newer than the stored one or it arrived later (so a gateway whose
    /// counter went back, state wiped or image restored, is online with its next birth); a
    /// death applies only to the stored session or a newer one, and only when it arrived
    /// later (a late will cannot mark a newer session offline).
    pub boot_epoch: Option<i64>,
    pub agent_version: Option<String>,
    pub config_hash: Option<String>,
}

/// What a birth says about one series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesMeta {
    pub key: SeriesKey,
    pub unit: Option<String>,
    pub writable: bool,
}

/// A birth as received, kept per (gateway, config hash) so that aliased telemetry written
/// against it can be read later, by any instance sharing the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBirth {
    pub gateway: Ident,
    pub config_hash: String,
    /// The alias table's check (`SeriesAliases::check`) as an unsigned 32-bit value.
    pub table_check: i64,
    pub received_ms: i64,
    /// The status message as received.
    pub body: String,
}

/// Aliased telemetry committed before the birth it names was known, so that its MQTT message
/// can be acknowledged at once instead of holding the broker's in-flight window. It leaves
/// the store in the transaction that stores its points or its dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedTelemetry {
    pub gateway: Ident,
    pub config_hash: String,
    /// The alias table's check the payload names, as an unsigned 32-bit value.
    pub table_check: i64,
    pub received_ms: i64,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A parked message read back, with the row id that removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedRow {
    pub id: i64,
    pub message: ParkedTelemetry,
}

/// The parked messages waiting for one birth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedGroup {
    pub gateway: Ident,
    pub config_hash: String,
    pub table_check: i64,
    pub messages: i64,
    /// When the oldest of them was received.
    pub oldest_ms: i64,
}

/// An event or command acknowledgement, stored as the JSON the gateway sent.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayMessage {
    pub gateway: Ident,
    pub received_ms: i64,
    pub body: serde_json::Value,
}

/// Everything one flush of the writer commits in one transaction.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub points: Vec<PointRow>,
    pub dead_letters: Vec<DeadLetter>,
    /// In arrival order; the last one for a gateway wins.
    pub statuses: Vec<GatewayStatus>,
    pub series_meta: Vec<SeriesMeta>,
    /// Births, in arrival order; a later one with the same (gateway, config hash) replaces an
    /// earlier one.
    pub births: Vec<StoredBirth>,
    /// Gateways heard from, with the time they were last heard from.
    pub seen: Vec<(Ident, i64)>,
    pub events: Vec<GatewayMessage>,
    pub acks: Vec<GatewayMessage>,
    /// Device health from the events above, in arrival order.
    pub health: Vec<super::HealthReport>,
    /// Aliased telemetry to keep until its birth is known.
    pub parked: Vec<ParkedTelemetry>,
    /// Parked rows this batch resolved (stored or dead-lettered), removed in the same commit.
    pub unparked: Vec<i64>,
    /// Drops over quota, one entry per gateway, added to its counts.
    pub quota_drops: Vec<(Ident, QuotaDrops)>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
            && self.dead_letters.is_empty()
            && self.statuses.is_empty()
            && self.series_meta.is_empty()
            && self.seen.is_empty()
            && self.events.is_empty()
            && self.acks.is_empty()
            && self.health.is_empty()
            && self.parked.is_empty()
            && self.unparked.is_empty()
            && self.quota_drops.is_empty()
    }
}

/// What a committed batch changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Points that were new; replays are not counted.
    pub points_inserted: u64,
    /// Older dead letters deleted because their gateway's bucket was over
    /// [`DeadLetterLimits::per_gateway`].
    pub dead_letters_dropped: u64,
    /// After the commit, the health of every device the batch may have changed: those it
    /// carried a report for, and every device of a gateway whose status it carried. A device
    /// can appear with an unchanged state (a stale report, a repeated birth).
    pub device_health: Vec<super::DeviceHealth>,
}

/// A stored reading as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    pub ts_ms: i64,
    pub value: Value,
    pub quality: Quality,
}

/// One bucket of an aggregate query. `avg`, `min`, `max` are over numeric values only and
/// absent when the bucket holds none.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Start of the bucket, milliseconds since the Unix epoch; buckets are aligned on the epoch.
    pub start_ms: i64,
    pub avg: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub count: i64,
}

/// Bucket width of an aggregate query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Minute,
    Hour,
    Day,
    /// Any fixed width of at least one second, in whole seconds.
    Fixed(Duration),
}

impl Interval {
    pub fn as_secs(&self) -> u64 {
        match self {
            Interval::Minute => 60,
            Interval::Hour => 3_600,
            Interval::Day => 86_400,
            Interval::Fixed(d) => d.as_secs().max(1),
        }
    }
    pub fn as_millis(&self) -> i64 {
        self.as_secs() as i64 * 1_000
    }
}

/// A series in the dictionary with what the registry knows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesInfo {
    pub series_id: i64,
    pub key: SeriesKey,
    pub unit: Option<String>,
    pub writable: bool,
}

/// The latest reading of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    pub series_id: i64,
    pub point: StoredPoint,
}

/// A gateway as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayInfo {
    pub gateway: Ident,
    pub online: bool,
    pub agent_version: Option<String>,
    pub config_hash: Option<String>,
    pub registered: bool,
    pub last_seen_ms: Option<i64>,
    /// The operator's name for it, given when registering.
    pub name: Option<String>,
    /// What ingest dropped of it for sending past its quota.
    pub quota: QuotaDrops,
}

/// Messages and points of one gateway dropped for being over quota after the grace period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaDrops {
    pub messages: i64,
    pub points: i64,
    /// When the last one was dropped.
    pub last_at_ms: Option<i64>,
}

/// What unregistering a gateway did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unregistered {
    /// No operator had registered it (unknown, or registered by ingest).
    NotRegistered,
    /// It had never been heard from and nothing refers to it: its entry is gone.
    Deleted,
    /// Its devices, series and history stay; it is no longer registered, so with
    /// `require_registration` its messages are dead-lettered from now on.
    Kept,
}

/// The value column encoding shared by every store: numbers and booleans in `value`, strings in
/// `value_text`; `value_kind` on the series tells booleans from numbers when reading.
pub(crate) fn split_value(v: &Value) -> (Option<f64>, Option<&str>, i16) {
    match v {
        Value::Number(n) => (Some(*n), None, 0),
        Value::Bool(b) => (Some(if *b { 1.0 } else { 0.0 }), None, 1),
        Value::Str(s) => (None, Some(s.as_str()), 2),
    }
}

pub(crate) fn join_value(kind: i16, value: Option<f64>, text: Option<String>) -> Value {
    match (kind, value, text) {
        (_, _, Some(s)) => Value::Str(s),
        (1, Some(v), None) => Value::Bool(v != 0.0),
        (_, Some(v), None) => Value::Number(v),
        (_, None, None) => Value::Str(String::new()),
    }
}

pub(crate) fn quality_code(q: Quality) -> i16 {
    match q {
        Quality::Good => 0,
        Quality::Uncertain => 1,
        Quality::Bad => 2,
    }
}

pub(crate) fn quality_from(code: i16) -> Quality {
    match code {
        1 => Quality::Uncertain,
        2 => Quality::Bad,
        _ => Quality::Good,
    }
}
