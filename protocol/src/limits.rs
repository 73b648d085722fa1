//! Every size limit of the protocol, in one place.
//!
//! Limits exist so that a decoder can refuse a payload before it allocates for it, and so that
//! an encoder refuses to produce what the other side would refuse to read. Both sides enforce
//! the same constants. The payload limit stays well under the 1 MiB default packet size of
//! EMQX (the strictest common broker default) so that topic and MQTT header always fit.

/// Largest payload any encoder produces or any decoder accepts, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Most points in one telemetry batch.
pub const MAX_POINTS_PER_BATCH: usize = 10_000;

/// Most distinct `(device, metric)` series in one telemetry batch.
pub const MAX_SERIES_PER_BATCH: usize = 4_096;

/// Longest identifier (gateway, device, metric, command id), in bytes.
pub const MAX_IDENT_LEN: usize = crate::Ident::MAX_LEN;

/// Longest string reading, in bytes.
pub const MAX_STRING_VALUE_LEN: usize = crate::point::MAX_STRING_VALUE_LEN;

/// Longest free text (error text, event message, quarantined file name), in bytes.
pub const MAX_TEXT_LEN: usize = 1_024;

/// Longest unit label (`kWh`, `m³/h`), in bytes.
pub const MAX_UNIT_LEN: usize = 32;

/// Longest agent version string, in bytes.
pub const MAX_VERSION_LEN: usize = 64;

/// Longest configuration hash, in bytes (a hex SHA-512 is 128).
pub const MAX_CONFIG_HASH_LEN: usize = 128;

/// Largest configuration carried by an apply-config command (TOML text), in bytes.
pub const MAX_CONFIG_BYTES: usize = 128 * 1024;

/// Most devices described in one birth message.
pub const MAX_DEVICES_PER_BIRTH: usize = 256;

/// Most points described per device in a birth message.
pub const MAX_POINTS_PER_DEVICE: usize = 1_024;

/// Most points named in one read-now command.
pub const MAX_READ_POINTS: usize = 1_024;

/// Shortest poll interval a command may set, in milliseconds.
pub const MIN_POLL_INTERVAL_MS: u64 = 10;

/// Longest poll interval a command may set, in milliseconds (one day).
pub const MAX_POLL_INTERVAL_MS: u64 = 86_400_000;

/// Earliest timestamp accepted: the Unix epoch. A gateway without a real-time clock reports
/// times near 1970 until NTP syncs; the protocol carries them and leaves the judgement to the
/// cloud.
pub const MIN_TIMESTAMP_MS: i64 = 0;

/// Latest timestamp accepted: 9999-12-31T23:59:59.999Z, the end of PostgreSQL's and most
/// calendars' four-digit years.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// Longest topic prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 128;
