//! The register value codec: how a typed value is laid out in 16-bit Modbus registers.
//!
//! Modbus only knows 16-bit registers and single bits. Everything wider is a convention between
//! the device vendor and the reader, and vendors disagree on two things: the order of the 16-bit
//! words and the order of the two bytes inside each word. [`WordOrder`] names the four layouts in
//! use, after the letters of a 32-bit value `0xAABBCCDD` as they appear on the wire.
//!
//! This module is written once and shared: the drivers decode what they read and encode what
//! they write with it, and the device simulator (`fieldlink-sim`) encodes its registers with it,
//! so a disagreement between the two is impossible by construction. Interoperability with an
//! implementation we did not write is proved against pymodbus in `tests/`.
//!
//! Conventions, for every width:
//! - [`WordOrder::Abcd`]: big-endian words, most significant word first (the Modbus default).
//! - [`WordOrder::Cdab`]: big-endian bytes inside each word, least significant word first.
//! - [`WordOrder::Badc`]: bytes swapped inside each word, most significant word first.
//! - [`WordOrder::Dcba`]: fully little-endian.
//!
//! One-register types (`u16`, `i16`) only see the byte half of the order: `Abcd`/`Cdab` leave the
//! register as it is, `Badc`/`Dcba` swap its bytes. Strings keep their registers in address order
//! (two characters per register, the first in the high byte) and apply only the byte half of the
//! order; trailing NUL bytes are padding. Booleans and register bits ignore the order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The type of a value as stored in a device's registers or bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// One coil or discrete input, or a whole register read as `!= 0`.
    Bool,
    /// One bit of a 16-bit register, bit 0 being the least significant.
    Bit(u8),
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// A fixed-length string of this many registers (two bytes each).
    String(u16),
}

/// The order of words and of bytes inside words for multi-byte values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WordOrder {
    /// Big-endian: `0xAABBCCDD` is sent as `AA BB CC DD`.
    #[default]
    #[serde(rename = "ABCD")]
    Abcd,
    /// Word-swapped: least significant word first, bytes big-endian in each word.
    #[serde(rename = "CDAB")]
    Cdab,
    /// Byte-swapped: most significant word first, bytes swapped in each word.
    #[serde(rename = "BADC")]
    Badc,
    /// Little-endian: `0xAABBCCDD` is sent as `DD CC BB AA`.
    #[serde(rename = "DCBA")]
    Dcba,
}

/// A decoded value, carrying its exact type so no precision is lost before scaling.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    Bool(bool),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Str(String),
}

/// Why a value could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    #[error("{data_type} needs {expected} registers, got {got}")]
    WrongLength {
        data_type: DataType,
        expected: usize,
        got: usize,
    },
    #[error("bit index {0} is over 15")]
    BitIndex(u8),
    #[error("a string of 0 registers holds nothing")]
    EmptyString,
    #[error("a {value} value cannot be stored as {data_type}")]
    TypeMismatch {
        data_type: DataType,
        value: &'static str,
    },
    #[error("{value} is out of range for {data_type}")]
    OutOfRange { data_type: DataType, value: f64 },
    #[error("{value} is not a whole number, {data_type} needs one")]
    NotInteger { data_type: DataType, value: f64 },
    #[error("string of {len} bytes does not fit {data_type} ({max} bytes)")]
    StringTooLong {
        data_type: DataType,
        len: usize,
        max: usize,
    },
}

/// Why a data type name could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataTypeParseError {
    #[error("unknown data type {0:?}; expected one of bool, bit:N (N 0..=15), u16, i16, u32, i32, u64, i64, f32, f64, string:N (N registers)")]
    Unknown(String),
    #[error("bit index {0} is over 15")]
    BitIndex(u32),
    #[error("a string of 0 registers holds nothing")]
    EmptyString,
}

impl DataType {
    /// How many registers (or bits, for [`DataType::Bool`] in a bit table) the type occupies.
    pub fn register_count(&self) -> u16 {
        match self {
            DataType::Bool | DataType::Bit(_) | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
            DataType::String(n) => *n,
        }
    }

    /// Whether the type can live in a single-bit table (coils, discrete inputs).
    pub fn fits_bit_table(&self) -> bool {
        matches!(self, DataType::Bool)
    }

    /// Checks the type's own parameters (bit index, string length).
    pub fn validate(&self) -> Result<(), CodecError> {
        match *self {
            DataType::Bit(i) if i > 15 => Err(CodecError::BitIndex(i)),
            DataType::String(0) => Err(CodecError::EmptyString),
            _ => Ok(()),
        }
    }

    /// The inclusive range of numbers an integer type holds, `None` for other types.
    pub fn integer_range(&self) -> Option<(f64, f64)> {
        Some(match self {
            DataType::U16 => (0.0, u16::MAX as f64),
            DataType::I16 => (i16::MIN as f64, i16::MAX as f64),
            DataType::U32 => (0.0, u32::MAX as f64),
            DataType::I32 => (i32::MIN as f64, i32::MAX as f64),
            DataType::U64 => (0.0, u64::MAX as f64),
            DataType::I64 => (i64::MIN as f64, i64::MAX as f64),
            _ => return None,
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bool => f.write_str("bool"),
            DataType::Bit(i) => write!(f, "bit:{i}"),
            DataType::U16 => f.write_str("u16"),
            DataType::I16 => f.write_str("i16"),
            DataType::U32 => f.write_str("u32"),
            DataType::I32 => f.write_str("i32"),
            DataType::U64 => f.write_str("u64"),
            DataType::I64 => f.write_str("i64"),
            DataType::F32 => f.write_str("f32"),
            DataType::F64 => f.write_str("f64"),
            DataType::String(n) => write!(f, "string:{n}"),
        }
    }
}

impl FromStr for DataType {
    type Err = DataTypeParseError;

    /// Parses the names [`fmt::Display`] prints: `bool`, `bit:3`, `u16`, …, `string:8`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || DataTypeParseError::Unknown(s.to_owned());
        let (head, arg) = match s.split_once(':') {
            Some((h, a)) => (h, Some(a)),
            None => (s, None),
        };
        let plain = match head {
            "bool" => Some(DataType::Bool),
            "u16" => Some(DataType::U16),
            "i16" => Some(DataType::I16),
            "u32" => Some(DataType::U32),
            "i32" => Some(DataType::I32),
            "u64" => Some(DataType::U64),
            "i64" => Some(DataType::I64),
            "f32" => Some(DataType::F32),
            "f64" => Some(DataType::F64),
            _ => None,
        };
        match (plain, arg) {
            (Some(t), None) => return Ok(t),
            (Some(_), Some(_)) => return Err(unknown()),
            (None, _) => {}
        }
        let n: u32 = arg.and_then(|a| a.parse().ok()).ok_or_else(unknown)?;
        match head {
            "bit" if n > 15 => Err(DataTypeParseError::BitIndex(n)),
            "bit" => Ok(DataType::Bit(n as u8)),
            "string" if n == 0 => Err(DataTypeParseError::EmptyString),
            "string" => u16::try_from(n)
                .map(DataType::String)
                .map_err(|_| unknown()),
            _ => Err(unknown()),
        }
    }
}

impl Serialize for DataType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DataType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for WordOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WordOrder::Abcd => "ABCD",
            WordOrder::Cdab => "CDAB",
            WordOrder::Badc => "BADC",
            WordOrder::Dcba => "DCBA",
        })
    }
}

impl WordOrder {
    /// All four orders, for tests and tools that try each.
    pub const ALL: [WordOrder; 4] = [
        WordOrder::Abcd,
        WordOrder::Cdab,
        WordOrder::Badc,
        WordOrder::Dcba,
    ];

    fn swaps_words(self) -> bool {
        matches!(self, WordOrder::Cdab | WordOrder::Dcba)
    }

    fn swaps_bytes(self) -> bool {
        matches!(self, WordOrder::Badc | WordOrder::Dcba)
    }
}

impl TypedValue {
    /// The value as a number, `None` for strings. Booleans are 0 or 1.
    pub fn as_f64(&self) -> Option<f64> {
        Some(match *self {
            TypedValue::Bool(b) => f64::from(u8::from(b)),
            TypedValue::U16(v) => v.into(),
            TypedValue::I16(v) => v.into(),
            TypedValue::U32(v) => v.into(),
            TypedValue::I32(v) => v.into(),
            TypedValue::U64(v) => v as f64,
            TypedValue::I64(v) => v as f64,
            TypedValue::F32(v) => v.into(),
            TypedValue::F64(v) => v,
            TypedValue::Str(_) => return None,
        })
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            TypedValue::Bool(_) => "bool",
            TypedValue::U16(_) => "u16",
            TypedValue::I16(_) => "i16",
            TypedValue::U32(_) => "u32",
            TypedValue::I32(_) => "i32",
            TypedValue::U64(_) => "u64",
            TypedValue::I64(_) => "i64",
            TypedValue::F32(_) => "f32",
            TypedValue::F64(_) => "f64",
            TypedValue::Str(_) => "string",
        }
    }

    /// Converts a number into the exact type `data_type` stores, refusing values that do not fit
    /// and fractions for integer types. Floats accept any finite value (an `f32` rounds).
    pub fn from_f64(value: f64, data_type: DataType) -> Result<TypedValue, CodecError> {
        if let Some((lo, hi)) = data_type.integer_range() {
            if !value.is_finite() || value < lo || value > hi {
                return Err(CodecError::OutOfRange { data_type, value });
            }
            if value.fract() != 0.0 {
                return Err(CodecError::NotInteger { data_type, value });
            }
            // u64::MAX and i64::MAX are not representable in f64: their nearest f64 is one past
            // the end, which passes the `<= hi` check above and saturates in the cast below.
            return Ok(match data_type {
                DataType::U16 => TypedValue::U16(value as u16),
                DataType::I16 => TypedValue::I16(value as i16),
                DataType::U32 => TypedValue::U32(value as u32),
                DataType::I32 => TypedValue::I32(value as i32),
                DataType::U64 => TypedValue::U64(value as u64),
                _ => TypedValue::I64(value as i64),
            });
        }
        match data_type {
            DataType::F32 => {
                let narrowed = value as f32;
                if value.is_finite() && !narrowed.is_finite() {
                    return Err(CodecError::OutOfRange { data_type, value });
                }
                Ok(TypedValue::F32(narrowed))
            }
            DataType::F64 => Ok(TypedValue::F64(value)),
            DataType::Bool | DataType::Bit(_) if value == 0.0 || value == 1.0 => {
                Ok(TypedValue::Bool(value == 1.0))
            }
            DataType::Bool | DataType::Bit(_) => Err(CodecError::OutOfRange { data_type, value }),
            _ => Err(CodecError::TypeMismatch {
                data_type,
                value: "number",
            }),
        }
    }
}

/// Decodes `words`, exactly [`DataType::register_count`] of them, into a typed value.
///
/// For bit tables pass one word per bit, `0` or `1`.
pub fn decode(
    words: &[u16],
    data_type: DataType,
    order: WordOrder,
) -> Result<TypedValue, CodecError> {
    data_type.validate()?;
    let expected = usize::from(data_type.register_count());
    if words.len() != expected {
        return Err(CodecError::WrongLength {
            data_type,
            expected,
            got: words.len(),
        });
    }
    Ok(match data_type {
        DataType::Bool => TypedValue::Bool(words[0] != 0),
        DataType::Bit(i) => TypedValue::Bool(words[0] >> i & 1 == 1),
        DataType::U16 => TypedValue::U16(u16::from_be_bytes(be_bytes::<2>(words, order))),
        DataType::I16 => TypedValue::I16(i16::from_be_bytes(be_bytes::<2>(words, order))),
        DataType::U32 => TypedValue::U32(u32::from_be_bytes(be_bytes::<4>(words, order))),
        DataType::I32 => TypedValue::I32(i32::from_be_bytes(be_bytes::<4>(words, order))),
        DataType::F32 => TypedValue::F32(f32::from_be_bytes(be_bytes::<4>(words, order))),
        DataType::U64 => TypedValue::U64(u64::from_be_bytes(be_bytes::<8>(words, order))),
        DataType::I64 => TypedValue::I64(i64::from_be_bytes(be_bytes::<8>(words, order))),
        DataType::F64 => TypedValue::F64(f64::from_be_bytes(be_bytes::<8>(words, order))),
        DataType::String(_) => {
            let mut bytes = Vec::with_capacity(words.len() * 2);
            for &w in words {
                let [hi, lo] = w.to_be_bytes();
                if order.swaps_bytes() {
                    bytes.extend([lo, hi]);
                } else {
                    bytes.extend([hi, lo]);
                }
            }
            while bytes.last() == Some(&0) {
                bytes.pop();
            }
            TypedValue::Str(String::from_utf8_lossy(&bytes).into_owned())
        }
    })
}

/// Encodes `value` as `data_type` in `order`; the inverse of [`decode`].
///
/// The value's kind must match the type exactly (use [`TypedValue::from_f64`] to convert a
/// number first). A [`DataType::Bit`] encodes as a register with only that bit possibly set;
/// writing one bit of a live register is a read-modify-write or a mask write, which the write
/// path does, not the codec.
pub fn encode(
    value: &TypedValue,
    data_type: DataType,
    order: WordOrder,
) -> Result<Vec<u16>, CodecError> {
    data_type.validate()?;
    let mismatch = || CodecError::TypeMismatch {
        data_type,
        value: value.kind(),
    };
    Ok(match (data_type, value) {
        (DataType::Bool, TypedValue::Bool(b)) => vec![u16::from(*b)],
        (DataType::Bit(i), TypedValue::Bool(b)) => vec![u16::from(*b) << i],
        (DataType::U16, TypedValue::U16(v)) => to_words(v.to_be_bytes(), order),
        (DataType::I16, TypedValue::I16(v)) => to_words(v.to_be_bytes(), order),
        (DataType::U32, TypedValue::U32(v)) => to_words(v.to_be_bytes(), order),
        (DataType::I32, TypedValue::I32(v)) => to_words(v.to_be_bytes(), order),
        (DataType::F32, TypedValue::F32(v)) => to_words(v.to_be_bytes(), order),
        (DataType::U64, TypedValue::U64(v)) => to_words(v.to_be_bytes(), order),
        (DataType::I64, TypedValue::I64(v)) => to_words(v.to_be_bytes(), order),
        (DataType::F64, TypedValue::F64(v)) => to_words(v.to_be_bytes(), order),
        (DataType::String(n), TypedValue::Str(s)) => {
            let max = usize::from(n) * 2;
            if s.len() > max {
                return Err(CodecError::StringTooLong {
                    data_type,
                    len: s.len(),
                    max,
                });
            }
            let mut bytes = s.as_bytes().to_vec();
            bytes.resize(max, 0);
            bytes
                .chunks_exact(2)
                .map(|c| {
                    if order.swaps_bytes() {
                        u16::from_be_bytes([c[1], c[0]])
                    } else {
                        u16::from_be_bytes([c[0], c[1]])
                    }
                })
                .collect()
        }
        _ => return Err(mismatch()),
    })
}

/// Reassembles the big-endian bytes of an `N`-byte value from its registers in `order`.
fn be_bytes<const N: usize>(words: &[u16], order: WordOrder) -> [u8; N] {
    let mut out = [0u8; N];
    let count = N / 2;
    for (i, &w) in words.iter().enumerate().take(count) {
        let slot = if order.swaps_words() && count > 1 {
            count - 1 - i
        } else {
            i
        };
        let [hi, lo] = w.to_be_bytes();
        let pair = if order.swaps_bytes() {
            [lo, hi]
        } else {
            [hi, lo]
        };
        out[slot * 2..slot * 2 + 2].copy_from_slice(&pair);
    }
    out
}

/// Splits the big-endian bytes of a value into registers in `order`.
fn to_words<const N: usize>(be: [u8; N], order: WordOrder) -> Vec<u16> {
    let count = N / 2;
    (0..count)
        .map(|i| {
            let slot = if order.swaps_words() && count > 1 {
                count - 1 - i
            } else {
                i
            };
            let (hi, lo) = (be[slot * 2], be[slot * 2 + 1]);
            if order.swaps_bytes() {
                u16::from_be_bytes([lo, hi])
            } else {
                u16::from_be_bytes([hi, lo])
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn u32_in_the_four_orders_matches_the_letter_names() {
        let v = TypedValue::U32(0xAABB_CCDD);
        let cases = [
            (WordOrder::Abcd, [0xAABB, 0xCCDD]),
            (WordOrder::Cdab, [0xCCDD, 0xAABB]),
            (WordOrder::Badc, [0xBBAA, 0xDDCC]),
            (WordOrder::Dcba, [0xDDCC, 0xBBAA]),
        ];
        for (order, words) in cases {
            assert_eq!(encode(&v, DataType::U32, order).unwrap(), words, "{order}");
            assert_eq!(decode(&words, DataType::U32, order).unwrap(), v, "{order}");
        }
    }

    #[test]
    fn u64_orders_extend_the_same_rules() {
        let v = TypedValue::U64(0x1122_3344_5566_7788);
        let cases = [
            (WordOrder::Abcd, [0x1122, 0x3344, 0x5566, 0x7788]),
            (WordOrder::Cdab, [0x7788, 0x5566, 0x3344, 0x1122]),
            (WordOrder::Badc, [0x2211, 0x4433, 0x6655, 0x8877]),
            (WordOrder::Dcba, [0x8877, 0x6655, 0x4433, 0x2211]),
        ];
        for (order, words) in cases {
            assert_eq!(encode(&v, DataType::U64, order).unwrap(), words, "{order}");
            assert_eq!(decode(&words, DataType::U64, order).unwrap(), v, "{order}");
        }
    }

    #[test]
    fn sixteen_bit_types_only_see_the_byte_order() {
        let v = TypedValue::I16(-2); // 0xFFFE
        assert_eq!(
            encode(&v, DataType::I16, WordOrder::Abcd).unwrap(),
            [0xFFFE]
        );
        assert_eq!(
            encode(&v, DataType::I16, WordOrder::Cdab).unwrap(),
            [0xFFFE]
        );
        assert_eq!(
            encode(&v, DataType::I16, WordOrder::Badc).unwrap(),
            [0xFEFF]
        );
        assert_eq!(
            decode(&[0x3412], DataType::U16, WordOrder::Dcba).unwrap(),
            TypedValue::U16(0x1234)
        );
    }

    #[test]
    fn f32_known_pattern() {
        // 1.0f32 is 0x3F800000.
        assert_eq!(
            decode(&[0x3F80, 0x0000], DataType::F32, WordOrder::Abcd).unwrap(),
            TypedValue::F32(1.0)
        );
        assert_eq!(
            decode(&[0x0000, 0x3F80], DataType::F32, WordOrder::Cdab).unwrap(),
            TypedValue::F32(1.0)
        );
        assert_eq!(
            decode(&[0x803F, 0x0000], DataType::F32, WordOrder::Badc).unwrap(),
            TypedValue::F32(1.0)
        );
        assert_eq!(
            decode(&[0x0000, 0x803F], DataType::F32, WordOrder::Dcba).unwrap(),
            TypedValue::F32(1.0)
        );
    }

    #[test]
    fn strings_pad_with_nul_and_swap_bytes_only() {
        let t = DataType::String(3);
        let s = TypedValue::Str("ABC".into());
        assert_eq!(
            encode(&s, t, WordOrder::Abcd).unwrap(),
            [0x4142, 0x4300, 0x0000]
        );
        assert_eq!(
            encode(&s, t, WordOrder::Cdab).unwrap(),
            [0x4142, 0x4300, 0x0000]
        );
        assert_eq!(
            encode(&s, t, WordOrder::Dcba).unwrap(),
            [0x4241, 0x0043, 0x0000]
        );
        for order in WordOrder::ALL {
            let words = encode(&s, t, order).unwrap();
            assert_eq!(decode(&words, t, order).unwrap(), s);
        }
        assert!(matches!(
            encode(&TypedValue::Str("ABCDEFG".into()), t, WordOrder::Abcd),
            Err(CodecError::StringTooLong { len: 7, max: 6, .. })
        ));
    }

    #[test]
    fn bits_and_bools() {
        assert_eq!(
            decode(&[0b1000], DataType::Bit(3), WordOrder::Dcba).unwrap(),
            TypedValue::Bool(true)
        );
        assert_eq!(
            decode(&[0b0111], DataType::Bit(3), WordOrder::Abcd).unwrap(),
            TypedValue::Bool(false)
        );
        assert_eq!(
            decode(&[0x8000], DataType::Bit(15), WordOrder::Abcd).unwrap(),
            TypedValue::Bool(true)
        );
        assert_eq!(
            decode(&[7], DataType::Bool, WordOrder::Abcd).unwrap(),
            TypedValue::Bool(true)
        );
        assert_eq!(
            encode(&TypedValue::Bool(true), DataType::Bit(4), WordOrder::Abcd).unwrap(),
            [0x10]
        );
        assert_eq!(
            decode(&[1], DataType::Bit(16), WordOrder::Abcd),
            Err(CodecError::BitIndex(16))
        );
    }

    #[test]
    fn wrong_lengths_and_kinds_are_errors_not_panics() {
        assert!(matches!(
            decode(&[1], DataType::U32, WordOrder::Abcd),
            Err(CodecError::WrongLength {
                expected: 2,
                got: 1,
                ..
            })
        ));
        assert!(matches!(
            decode(&[], DataType::Bool, WordOrder::Abcd),
            Err(CodecError::WrongLength { .. })
        ));
        assert!(matches!(
            decode(&[], DataType::String(0), WordOrder::Abcd),
            Err(CodecError::EmptyString)
        ));
        assert!(matches!(
            encode(&TypedValue::F32(1.0), DataType::U32, WordOrder::Abcd),
            Err(CodecError::TypeMismatch { value: "f32", .. })
        ));
    }

    #[test]
    fn from_f64_checks_range_and_fractions() {
        assert_eq!(
            TypedValue::from_f64(65535.0, DataType::U16).unwrap(),
            TypedValue::U16(65535)
        );
        assert!(matches!(
            TypedValue::from_f64(65536.0, DataType::U16),
            Err(CodecError::OutOfRange { .. })
        ));
        assert!(matches!(
            TypedValue::from_f64(-1.0, DataType::U32),
            Err(CodecError::OutOfRange { .. })
        ));
        assert!(matches!(
            TypedValue::from_f64(1.5, DataType::I16),
            Err(CodecError::NotInteger { .. })
        ));
        assert!(matches!(
            TypedValue::from_f64(f64::NAN, DataType::I32),
            Err(CodecError::OutOfRange { .. })
        ));
        assert!(matches!(
            TypedValue::from_f64(1e300, DataType::F32),
            Err(CodecError::OutOfRange { .. })
        ));
        assert_eq!(
            TypedValue::from_f64(-32768.0, DataType::I16).unwrap(),
            TypedValue::I16(-32768)
        );
        assert_eq!(
            TypedValue::from_f64(1.0, DataType::Bool).unwrap(),
            TypedValue::Bool(true)
        );
        assert!(TypedValue::from_f64(2.0, DataType::Bool).is_err());
        assert!(TypedValue::from_f64(1.0, DataType::String(2)).is_err());
    }

    #[test]
    fn data_type_names_round_trip_and_reject_nonsense() {
        for t in [
            DataType::Bool,
            DataType::Bit(0),
            DataType::Bit(15),
            DataType::U16,
            DataType::I16,
            DataType::U32,
            DataType::I32,
            DataType::U64,
            DataType::I64,
            DataType::F32,
            DataType::F64,
            DataType::String(8),
        ] {
            assert_eq!(t.to_string().parse::<DataType>().unwrap(), t);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<DataType>(&json).unwrap(), t);
        }
        assert_eq!(
            "bit:16".parse::<DataType>(),
            Err(DataTypeParseError::BitIndex(16))
        );
        assert_eq!(
            "string:0".parse::<DataType>(),
            Err(DataTypeParseError::EmptyString)
        );
        for bad in ["float", "u16:2", "bit", "bit:x", "string:70000", "", "U16"] {
            assert!(
                matches!(bad.parse::<DataType>(), Err(DataTypeParseError::Unknown(_))),
                "{bad}"
            );
        }
        let err = serde_json::from_str::<DataType>("\"float\"").unwrap_err();
        assert!(err.to_string().contains("unknown data type"), "{err}");
    }

    #[test]
    fn word_order_serde_names() {
        for (o, name) in [
            (WordOrder::Abcd, "\"ABCD\""),
            (WordOrder::Cdab, "\"CDAB\""),
            (WordOrder::Badc, "\"BADC\""),
            (WordOrder::Dcba, "\"DCBA\""),
        ] {
            assert_eq!(serde_json::to_string(&o).unwrap(), name);
            assert_eq!(serde_json::from_str::<WordOrder>(name).unwrap(), o);
        }
        assert!(serde_json::from_str::<WordOrder>("\"abcd\"").is_err());
    }

    fn numeric() -> impl Strategy<Value = (TypedValue, DataType)> {
        prop_oneof![
            any::<u16>().prop_map(|v| (TypedValue::U16(v), DataType::U16)),
            any::<i16>().prop_map(|v| (TypedValue::I16(v), DataType::I16)),
            any::<u32>().prop_map(|v| (TypedValue::U32(v), DataType::U32)),
            any::<i32>().prop_map(|v| (TypedValue::I32(v), DataType::I32)),
            any::<u64>().prop_map(|v| (TypedValue::U64(v), DataType::U64)),
            any::<i64>().prop_map(|v| (TypedValue::I64(v), DataType::I64)),
            any::<f32>()
                .prop_filter("NaN != NaN", |v| !v.is_nan())
                .prop_map(|v| (TypedValue::F32(v), DataType::F32)),
            any::<f64>()
                .prop_filter("NaN != NaN", |v| !v.is_nan())
                .prop_map(|v| (TypedValue::F64(v), DataType::F64)),
        ]
    }

    fn order() -> impl Strategy<Value = WordOrder> {
        prop::sample::select(WordOrder::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity((value, t) in numeric(), order in order()) {
            let words = encode(&value, t, order).unwrap();
            prop_assert_eq!(words.len(), usize::from(t.register_count()));
            prop_assert_eq!(decode(&words, t, order).unwrap(), value);
        }

        #[test]
        fn decode_is_total(words in prop::collection::vec(any::<u16>(), 0..10),
                           n in 0u16..6, bit in 0u8..20, order in order()) {
            for t in [DataType::Bool, DataType::Bit(bit), DataType::U16, DataType::I32,
                      DataType::F64, DataType::String(n)] {
                let _ = decode(&words, t, order);
            }
        }

        #[test]
        fn ascii_strings_round_trip(s in "[ -~]{0,12}", order in order()) {
            let t = DataType::String(6);
            let v = TypedValue::Str(s.clone());
            let words = encode(&v, t, order).unwrap();
            prop_assert_eq!(decode(&words, t, order).unwrap(), v);
        }
    }
}
