//! A single reading: which device and metric, when, what value, and how trustworthy.
//!
//! A reading's identity is `(gateway, device, metric, ts_ms)`; the gateway is carried by the
//! batch that holds the point. The cloud stores idempotently on that identity, so a point sent
//! twice is stored once.

use serde::{Deserialize, Serialize};

use crate::Ident;

/// Longest string value accepted, in bytes.
pub const MAX_STRING_VALUE_LEN: usize = 256;

/// A reading's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Number(f64),
    Str(String),
}

/// How trustworthy a reading is. `Good` is the default and is left out of encodings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    #[default]
    Good,
    /// Read, but the device flagged it or a conversion clamped it.
    Uncertain,
    /// The last attempt to read failed; the value is the last known one.
    Bad,
}

impl Quality {
    pub fn is_good(&self) -> bool {
        matches!(self, Quality::Good)
    }
}

/// One reading of one metric of one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub device: Ident,
    pub metric: Ident,
    /// Acquisition time, milliseconds since the Unix epoch, UTC.
    pub ts_ms: i64,
    pub value: Value,
    #[serde(default, skip_serializing_if = "Quality::is_good")]
    pub quality: Quality,
}
