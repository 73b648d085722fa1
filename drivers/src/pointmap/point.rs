//! A validated Modbus point and the conversion between its raw and engineering values.

use std::time::Duration;

use fieldlink_protocol::point::MAX_STRING_VALUE_LEN;
use fieldlink_protocol::text::clip;
use fieldlink_protocol::{Ident, Value};

use crate::codec::{CodecError, DataType, TypedValue, WordOrder};
use crate::pointmap::Table;

/// One Modbus point. Constructed only by validation, so `address + count` fits the address
/// space and `count` fits one read.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusPoint {
    pub name: Ident,
    pub unit: Option<String>,
    pub table: Table,
    pub address: u16,
    pub data_type: DataType,
    pub order: WordOrder,
    pub scale: f64,
    pub offset: f64,
    pub writable: bool,
    pub read_back: bool,
    pub poll_interval: Duration,
}

/// Why a raw value could not become a reading, or a reading a raw value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("value is not finite ({0})")]
    NotFinite(f64),
    #[error("point {point} is {data_type}, a {given} value does not fit")]
    WrongKind {
        point: String,
        data_type: DataType,
        given: &'static str,
    },
}

impl ModbusPoint {
    /// Registers (or bits) the point occupies.
    pub fn count(&self) -> u16 {
        self.data_type.register_count()
    }

    /// One past the last address, as `u32` because it may be 65,536.
    pub fn end(&self) -> u32 {
        u32::from(self.address) + u32::from(self.count())
    }

    /// The reading for a decoded raw value: numbers scaled, booleans and strings as they are.
    pub fn engineering(&self, raw: &TypedValue) -> Result<Value, ValueError> {
        match raw {
            TypedValue::Bool(b) => Ok(Value::Bool(*b)),
            TypedValue::Str(s) => Ok(Value::Str(clip(s, MAX_STRING_VALUE_LEN).to_string())),
            other => {
                let x = scaled(other, self.scale, self.offset);
                if x.is_finite() {
                    Ok(Value::Number(x))
                } else {
                    Err(ValueError::NotFinite(x))
                }
            }
        }
    }

    /// The raw value to write for an engineering value: inverse scale, then range checks for
    /// the point's type. Integer types accept a result within 1e-9 of a whole number, so that
    /// `23.1` on a point scaled by `0.1` writes `231`.
    pub fn raw_for(&self, value: &Value) -> Result<TypedValue, ValueError> {
        let wrong = |given| ValueError::WrongKind {
            point: self.name.to_string(),
            data_type: self.data_type,
            given,
        };
        match (self.data_type, value) {
            (DataType::Bool | DataType::Bit(_), Value::Bool(b)) => Ok(TypedValue::Bool(*b)),
            (DataType::Bool | DataType::Bit(_), Value::Number(_)) => Err(wrong("number")),
            (DataType::String(_), Value::Str(s)) => Ok(TypedValue::Str(s.clone())),
            (DataType::String(_), Value::Number(_)) => Err(wrong("number")),
            (_, Value::Str(_)) => Err(wrong("string")),
            (_, Value::Bool(_)) => Err(wrong("bool")),
            (t, Value::Number(x)) => {
                if !x.is_finite() {
                    return Err(ValueError::NotFinite(*x));
                }
                let mut raw = (x - self.offset) / self.scale;
                if t.integer_range().is_some() {
                    let rounded = raw.round();
                    if (raw - rounded).abs() <= 1e-9 * rounded.abs().max(1.0) {
                        raw = rounded;
                    }
                }
                Ok(TypedValue::from_f64(raw, t)?)
            }
        }
    }
}

/// A raw number in engineering units, as the decimal the device and the point map mean.
///
/// `raw × scale + offset` in binary floating point is rarely the decimal it stands for: 503 at
/// scale 0.1 gives 50.300000000000004, and an f32 register holding 230.1 widens to
/// 230.10000610351562. Such values print long in JSON, defeat the binary encoding's decimal
/// coding and look wrong on a dashboard. So an f32 is first taken as its shortest decimal, and
/// the result is rounded to the decimal places the operands can produce (those of the raw
/// value plus those of the scale, or those of the offset), which is exact whenever that is at
/// most 15 places and the scaled integer fits in 2^53; otherwise the product is kept as it is.
pub fn scaled(raw: &TypedValue, scale: f64, offset: f64) -> f64 {
    let value = match raw {
        TypedValue::F32(v) => v.to_string().parse::<f64>().unwrap_or(f64::from(*v)),
        other => other.as_f64().unwrap_or(f64::NAN),
    };
    scale_decimal(value, scale, offset)
}

/// `value × scale + offset`, rounded to the decimal places the operands can produce (see
/// [`scaled`]).
pub(crate) fn scale_decimal(value: f64, scale: f64, offset: f64) -> f64 {
    let x = value * scale + offset;
    let places = match (decimals(value), decimals(scale), decimals(offset)) {
        (Some(v), Some(s), Some(o)) => (v + s).max(o),
        _ => return x,
    };
    if !x.is_finite() || places > 15 {
        return x;
    }
    let factor = 10f64.powi(places as i32);
    let n = (x * factor).round();
    if n.abs() >= 9_007_199_254_740_992.0 {
        return x;
    }
    n / factor
}

/// Decimal places of the shortest decimal that reads back as `x`.
fn decimals(x: f64) -> Option<u32> {
    if !x.is_finite() {
        return None;
    }
    let s = x.to_string();
    Some(s.split_once('.').map_or(0, |(_, frac)| frac.len() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(data_type: DataType, scale: f64, offset: f64) -> ModbusPoint {
        ModbusPoint {
            name: Ident::new("p").unwrap(),
            unit: None,
            table: Table::HoldingRegister,
            address: 0,
            data_type,
            order: WordOrder::Abcd,
            scale,
            offset,
            writable: true,
            read_back: false,
            poll_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn scale_and_offset_apply_both_ways() {
        let p = point(DataType::I16, 0.1, -40.0);
        assert_eq!(
            p.engineering(&TypedValue::I16(631)).unwrap(),
            Value::Number(23.1)
        );
        assert_eq!(
            p.raw_for(&Value::Number(23.1)).unwrap(),
            TypedValue::I16(631)
        );
    }

    /// Values that binary floating point would carry as 50.300000000000004 and
    /// 230.10000610351562 come out as the decimals they stand for, and write back unchanged.
    #[test]
    fn scaled_values_are_the_decimals_they_stand_for() {
        let tenth = point(DataType::U16, 0.1, 0.0);
        assert_eq!(
            tenth.engineering(&TypedValue::U16(503)).unwrap(),
            Value::Number(50.3)
        );
        for raw in 0..=u16::MAX {
            let Value::Number(x) = tenth.engineering(&TypedValue::U16(raw)).unwrap() else {
                panic!()
            };
            assert_eq!(
                x.to_string().split_once('.').map_or(0, |(_, f)| f.len()),
                usize::from(raw % 10 != 0)
            );
            assert_eq!(
                tenth.raw_for(&Value::Number(x)).unwrap(),
                TypedValue::U16(raw)
            );
        }
        let f = point(DataType::F32, 1.0, 0.0);
        assert_eq!(
            f.engineering(&TypedValue::F32(230.1)).unwrap(),
            Value::Number(230.1)
        );
        assert_eq!(
            f.raw_for(&Value::Number(230.1)).unwrap(),
            TypedValue::F32(230.1)
        );
        let f = point(DataType::F32, 0.01, 0.5);
        assert_eq!(
            f.engineering(&TypedValue::F32(1234.5)).unwrap(),
            Value::Number(12.845)
        );
        let milli = point(DataType::I32, 0.001, -273.15);
        assert_eq!(
            milli.engineering(&TypedValue::I32(300_123)).unwrap(),
            Value::Number(26.973)
        );
        // Beyond what decimals can carry exactly, the product is kept.
        let big = point(DataType::U64, 0.1, 0.0);
        let x = u64::MAX - 5;
        assert_eq!(
            big.engineering(&TypedValue::U64(x)).unwrap(),
            Value::Number(x as f64 * 0.1)
        );
        let plain = point(DataType::F64, 1.0, 0.0);
        assert_eq!(
            plain
                .engineering(&TypedValue::F64(std::f64::consts::PI))
                .unwrap(),
            Value::Number(std::f64::consts::PI)
        );
    }

    #[test]
    fn raw_for_refuses_out_of_range_fractions_and_wrong_kinds() {
        let p = point(DataType::U16, 1.0, 0.0);
        assert!(matches!(
            p.raw_for(&Value::Number(70_000.0)),
            Err(ValueError::Codec(CodecError::OutOfRange { .. }))
        ));
        assert!(matches!(
            p.raw_for(&Value::Number(-1.0)),
            Err(ValueError::Codec(CodecError::OutOfRange { .. }))
        ));
        assert!(matches!(
            p.raw_for(&Value::Number(1.5)),
            Err(ValueError::Codec(CodecError::NotInteger { .. }))
        ));
        assert!(matches!(
            p.raw_for(&Value::Bool(true)),
            Err(ValueError::WrongKind { given: "bool", .. })
        ));
        assert!(matches!(
            p.raw_for(&Value::Number(f64::INFINITY)),
            Err(ValueError::NotFinite(_))
        ));
        let b = point(DataType::Bit(3), 1.0, 0.0);
        assert_eq!(
            b.raw_for(&Value::Bool(true)).unwrap(),
            TypedValue::Bool(true)
        );
        assert!(b.raw_for(&Value::Number(1.0)).is_err());
    }

    #[test]
    fn non_finite_floats_are_errors_not_readings() {
        let p = point(DataType::F32, 1.0, 0.0);
        assert!(matches!(
            p.engineering(&TypedValue::F32(f32::NAN)),
            Err(ValueError::NotFinite(_))
        ));
        assert_eq!(
            p.engineering(&TypedValue::F32(2.5)).unwrap(),
            Value::Number(2.5)
        );
    }

    #[test]
    fn long_strings_are_cut_at_the_protocol_limit_on_a_char_boundary() {
        let p = point(DataType::String(125), 1.0, 0.0);
        let s = "é".repeat(200);
        match p.engineering(&TypedValue::Str(s)).unwrap() {
            Value::Str(v) => assert!(v.len() <= MAX_STRING_VALUE_LEN && v.len() >= 254),
            other => panic!("{other:?}"),
        }
    }
}
