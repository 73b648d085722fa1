//! A single reading: which device and metric, when, what value, and how trustworthy.
//!
//! A reading's identity is `(gateway, device, metric, ts_ms)`; the gateway is carried by the
//! batch that holds the point. The cloud stores idempotently on that identity, so a point sent
//! twice is stored once.

use serde::{Deserialize, Serialize};

use crate::Ident;

/// Longest string value accepted, in bytes.
pub const MAX_STRING_VALUE_LEN: usize = 256;

/// A reading's value. In JSON: a boolean, a number or a string.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Number(f64),
    Str(String),
}

// Written by hand rather than derived as `untagged` so that a wrong value says what was
// expected, and so that no intermediate buffer is built per value.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl serde::de::Visitor<'_> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number, a boolean or a string")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, x: i64) -> Result<Value, E> {
        Ok(Value::Number(x as f64))
    }

    fn visit_u64<E>(self, x: u64) -> Result<Value, E> {
        Ok(Value::Number(x as f64))
    }

    fn visit_f64<E>(self, x: f64) -> Result<Value, E> {
        Ok(Value::Number(x))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(s))
    }
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
    /// Whether this is [`Quality::Good`], which encodings leave out.
    pub fn is_good(&self) -> bool {
        matches!(self, Quality::Good)
    }
}

/// The type of value a point carries, as announced in a gateway's birth message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataKind {
    Number,
    Bool,
    Str,
}

impl Value {
    /// Which [`DataKind`] this value is.
    pub fn kind(&self) -> DataKind {
        match self {
            Value::Bool(_) => DataKind::Bool,
            Value::Number(_) => DataKind::Number,
            Value::Str(_) => DataKind::Str,
        }
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Number(x)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
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

impl Point {
    /// A reading of good quality.
    pub fn new(device: Ident, metric: Ident, ts_ms: i64, value: impl Into<Value>) -> Self {
        Point {
            device,
            metric,
            ts_ms,
            value: value.into(),
            quality: Quality::Good,
        }
    }

    /// The same reading with another quality.
    pub fn with_quality(mut self, quality: Quality) -> Self {
        self.quality = quality;
        self
    }
}
