//! The protocol's error types.
//!
//! One enum per question a caller asks: is this message well formed ([`ValidationError`]),
//! could these bytes be read ([`DecodeError`]), could this message be written
//! ([`EncodeError`]). Each names the field or the byte offset at fault so that a rejected
//! payload can be logged with a reason an operator can act on.

use crate::binary::BinaryError;
use crate::IdentError;

/// A message breaks a rule of the protocol. `field` is a path such as `points[3].value`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    #[error("{field}: {source}")]
    Ident { field: String, source: IdentError },
    #[error("{field}: number is not finite")]
    NotFinite { field: String },
    #[error("{field}: {len} bytes long, the maximum is {max}")]
    TooLong {
        field: String,
        len: usize,
        max: usize,
    },
    #[error("{field}: must not be empty")]
    Empty { field: String },
    #[error("{field}: control character at byte {at}")]
    ControlChar { field: String, at: usize },
    #[error("{field}: timestamp {ts_ms} ms is outside {min}..={max}", min = crate::limits::MIN_TIMESTAMP_MS, max = crate::limits::MAX_TIMESTAMP_MS)]
    TimestampOutOfRange { field: String, ts_ms: i64 },
    #[error("{field}: {count} entries, the maximum is {max}")]
    TooMany {
        field: String,
        count: usize,
        max: usize,
    },
    #[error("{field}: {value} is outside {min}..={max}")]
    OutOfRange {
        field: String,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error("{field}: {later} is before {earlier}")]
    OutOfOrder {
        field: String,
        earlier: i64,
        later: i64,
    },
    #[error("{field}: {name:?} appears twice")]
    Duplicate { field: String, name: String },
}

/// A payload could not be turned into a message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("payload is empty")]
    Empty,
    #[error("payload is {len} bytes, the maximum is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("payload starts with byte {0:#04x}, which begins neither JSON nor Fieldlink binary")]
    UnknownEncoding(u8),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("binary telemetry: {0}")]
    Binary(#[from] BinaryError),
    #[error("invalid message: {0}")]
    Invalid(#[from] ValidationError),
}

/// A message could not be written.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("invalid message: {0}")]
    Invalid(#[from] ValidationError),
    #[error("encoded payload is {len} bytes, the maximum is {max}; send fewer points per batch")]
    TooLarge { len: usize, max: usize },
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}
