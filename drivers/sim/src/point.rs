//! A served point: a waveform (or fixed text) encoded into registers with the shared codec.

use std::time::Duration;

use fieldlink_drivers::codec::{self, CodecError, DataType, TypedValue, WordOrder};

use crate::table::Table;
use crate::waveform::Waveform;

/// Where a point's value comes from before anything is written to it.
#[derive(Debug)]
pub(crate) enum Source {
    Wave(Waveform),
    /// Registers fixed at start-up (a text constant).
    Fixed(Vec<u16>),
}

/// One point of a unit's table, after validation.
#[derive(Debug)]
pub(crate) struct Point {
    /// Where the point came from in the configuration, for error messages.
    pub(crate) label: String,
    /// The configured name; copies made by `repeat` get `[k]` appended (0-based).
    pub(crate) name: Option<String>,
    pub(crate) table: Table,
    pub(crate) address: u16,
    pub(crate) data_type: DataType,
    pub(crate) order: WordOrder,
    pub(crate) scale: f64,
    pub(crate) offset: f64,
    pub(crate) writable: bool,
    pub(crate) source: Source,
    /// The registers last written over Modbus (or by a test); they replace the source for good.
    pub(crate) held: Option<Vec<u16>>,
}

/// A point as configured: what a reader needs to build a matching point map.
#[derive(Debug, Clone, PartialEq)]
pub struct PointInfo {
    pub unit: u8,
    /// The configured name; copies made by `repeat` get `[k]` appended (0-based).
    pub name: Option<String>,
    pub table: Table,
    pub address: u16,
    pub data_type: DataType,
    pub order: WordOrder,
    pub scale: f64,
    pub offset: f64,
    pub writable: bool,
}

impl PointInfo {
    /// The engineering value of `raw` as a reader applying this point's map computes it, with
    /// the drivers' own arithmetic ([`fieldlink_drivers::pointmap::scaled`]: `raw × scale +
    /// offset` as the decimal it stands for) for numbers, 0 or 1 for booleans and bits, `None`
    /// for strings.
    pub fn engineering(&self, raw: &TypedValue) -> Option<f64> {
        match raw {
            TypedValue::Bool(_) => raw.as_f64(),
            TypedValue::Str(_) => None,
            _ => Some(fieldlink_drivers::pointmap::scaled(
                raw,
                self.scale,
                self.offset,
            )),
        }
    }
}

impl Point {
    pub(crate) fn info(&self, unit: u8) -> PointInfo {
        PointInfo {
            unit,
            name: self.name.clone(),
            table: self.table,
            address: self.address,
            data_type: self.data_type,
            order: self.order,
            scale: self.scale,
            offset: self.offset,
            writable: self.writable,
        }
    }

    /// How many registers (or bits) the point spans.
    pub(crate) fn width(&self) -> u16 {
        self.data_type.register_count()
    }

    /// The point's registers at `elapsed`. Bit tables use one word per bit, 0 or 1.
    pub(crate) fn words_at(&self, elapsed: Duration) -> Result<Vec<u16>, CodecError> {
        if let Some(held) = &self.held {
            return Ok(held.clone());
        }
        match &self.source {
            Source::Fixed(words) => Ok(words.clone()),
            Source::Wave(wave) => {
                let value = wave.value_at(elapsed);
                self.encode_value(value, wave.is_counter())
            }
        }
    }

    /// Encodes an engineering value: raw = (value - offset) / scale, rounded to the nearest whole
    /// number for integer types; a counter wraps around its type's range like a device's would.
    pub(crate) fn encode_value(&self, value: f64, wraps: bool) -> Result<Vec<u16>, CodecError> {
        let raw = (value - self.offset) / self.scale;
        let typed = match self.data_type {
            DataType::Bool | DataType::Bit(_) => TypedValue::Bool(raw != 0.0),
            DataType::String(_) => {
                return Err(CodecError::TypeMismatch {
                    data_type: self.data_type,
                    value: "number",
                })
            }
            t => match t.integer_range() {
                Some(range) => {
                    let whole = raw.round();
                    let whole = if wraps { wrap(whole, range) } else { whole };
                    TypedValue::from_f64(whole, t)?
                }
                None => TypedValue::from_f64(raw, t)?,
            },
        };
        codec::encode(&typed, self.data_type, self.order)
    }
}

/// Folds a whole number into `lo..=hi` modulo the size of the range.
fn wrap(value: f64, (lo, hi): (f64, f64)) -> f64 {
    if (lo..=hi).contains(&value) {
        return value;
    }
    let span = hi - lo + 1.0;
    let folded = lo + (value - lo).rem_euclid(span);
    // At 64 bits the span is not exact in f64; keep the result inside the type.
    folded.clamp(lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(data_type: DataType, order: WordOrder, scale: f64, offset: f64) -> Point {
        Point {
            label: "points[0]".into(),
            name: None,
            table: Table::HoldingRegister,
            address: 0,
            data_type,
            order,
            scale,
            offset,
            writable: false,
            source: Source::Wave(Waveform::Constant(0.0)),
            held: None,
        }
    }

    #[test]
    fn scale_and_offset_are_inverted_before_encoding() {
        let p = point(DataType::U16, WordOrder::Abcd, 0.1, 100.0);
        assert_eq!(p.encode_value(123.4, false).unwrap(), [234]);
        let decoded = codec::decode(&[234], DataType::U16, WordOrder::Abcd).unwrap();
        assert!((decoded.as_f64().unwrap() * 0.1 + 100.0 - 123.4).abs() < 1e-9);
    }

    #[test]
    fn floats_go_through_the_codec_in_the_point_order() {
        let p = point(DataType::F32, WordOrder::Cdab, 1.0, 0.0);
        assert_eq!(p.encode_value(1.0, false).unwrap(), [0x0000, 0x3F80]);
    }

    #[test]
    fn counters_wrap_at_the_type_range() {
        let p = point(DataType::U16, WordOrder::Abcd, 1.0, 0.0);
        assert_eq!(p.encode_value(65_537.0, true).unwrap(), [1]);
        let s = point(DataType::I16, WordOrder::Abcd, 1.0, 0.0);
        assert_eq!(s.encode_value(32_768.0, true).unwrap(), [0x8000]);
        assert!(p.encode_value(65_537.0, false).is_err());
    }

    #[test]
    fn bits_of_a_register_land_on_their_index() {
        let p = point(DataType::Bit(3), WordOrder::Abcd, 1.0, 0.0);
        assert_eq!(p.encode_value(1.0, false).unwrap(), [0b1000]);
        assert_eq!(p.encode_value(0.0, false).unwrap(), [0]);
    }
}
