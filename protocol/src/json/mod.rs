//! The JSON encoding: every message, readable with `mosquitto_sub`.
//!
//! Messages are compact JSON objects (no white space). Most use their serde derive; the
//! telemetry batch has a hand-written form that groups points by device and shared timestamps
//! (see `json/telemetry.rs` and the crate README) to stay under the bytes-per-point goal.
//! Unknown object keys are ignored, so a newer sender can add fields without breaking an older
//! receiver.

pub(crate) mod bounded;
mod number;
mod telemetry;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{DecodeError, EncodeError};
use crate::limits::MAX_PAYLOAD_BYTES;
use crate::message::Message;

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
