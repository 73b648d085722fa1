//! The JSON encoding: every message, readable with `mosquitto_sub`.
//!
//! Messages are compact JSON objects (no white space). Most use their serde derive; the
//! telemetry batch has a hand-written form that groups points by device and shared timestamps
//! (see `json/telemetry.rs` and the crate README) to stay under the bytes-per-point goal.
//! Unknown object keys are ignored, so a newer sender can add fields without breaking an older
//! receiver. Telemetry version 2, the aliased form, is the exception that is negotiated: its
//! runs name series by alias, and a receiver without the birth refuses them.

pub(crate) mod bounded;
mod number;
mod telemetry;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::alias::{BirthRef, SeriesAliases};
use crate::error::{DecodeError, EncodeError};
use crate::limits::MAX_PAYLOAD_BYTES;
use crate::message::{Message, TelemetryBatch};

/// The JSON telemetry form that names the series of a birth by alias.
pub const VERSION_ALIASED: u8 = 2;

/// Validates `message` and writes it as JSON.
pub fn encode<M: Message + Serialize>(message: &M) -> Result<Vec<u8>, EncodeError> {
    message.validate()?;
    let bytes = serde_json::to_vec(message)?;
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(EncodeError::TooLarge {
            len: bytes.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(bytes)
}

/// Reads a JSON message and validates it.
pub fn decode<M: Message + DeserializeOwned>(bytes: &[u8]) -> Result<M, DecodeError> {
    check_json_payload(bytes)?;
    let message: M = serde_json::from_slice(bytes)?;
    message.validate()?;
    Ok(message)
}

/// Validates `batch` and writes it in the aliased JSON form (version 2): the birth's series as
/// runs of values by alias, any other series by name as in version 1. Only for a receiver that
/// said it reads JSON version 2: one that does not refuses the runs.
pub fn encode_aliased(
    batch: &TelemetryBatch,
    aliases: &SeriesAliases,
) -> Result<Vec<u8>, EncodeError> {
    batch.validate()?;
    let bytes = serde_json::to_vec(&telemetry::AliasedBatch { batch, aliases })?;
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(EncodeError::TooLarge {
            len: bytes.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(bytes)
}

/// Reads a telemetry batch in either JSON form and validates it; `aliases` must be the table
/// of the birth an aliased batch names (see [`birth_ref`]).
pub fn decode_aliased(
    bytes: &[u8],
    aliases: &SeriesAliases,
) -> Result<TelemetryBatch, DecodeError> {
    check_json_payload(bytes)?;
    let batch = telemetry::decode_batch(bytes, Some(aliases))?;
    batch.validate()?;
    Ok(batch)
}

/// The birth an aliased JSON batch was written against, or `None` for one that names every
/// series. Parses the payload but keeps only its `birth`.
pub fn birth_ref(bytes: &[u8]) -> Result<Option<BirthRef>, DecodeError> {
    check_json_payload(bytes)?;
    Ok(telemetry::birth_ref(bytes)?)
}

/// Refuses, before parsing, a payload that is empty, too large, or does not start (after JSON
/// white space) with `{`.
pub(crate) fn check_json_payload(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    match bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        None => Err(DecodeError::Empty),
        Some(b'{') => Ok(()),
        Some(&b) => Err(DecodeError::UnknownEncoding(b)),
    }
}

#[cfg(test)]
mod tests;
