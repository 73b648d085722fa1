//! The Modbus vocabulary both sides of a Modbus link speak: the four data tables, the value
//! types a point can have, the word orders vendors use, and typed values. The drivers read and
//! write with it, and the device simulator (`fieldlink-sim`) serves its tables with the same
//! types, so the two cannot disagree on what a table or a type is. How a typed value is laid
//! out in registers is [`crate::codec`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One of the four Modbus data tables of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Read-write bits (function codes 1, 5, 15).
    Coil,
    /// Read-only bits (function code 2).
    DiscreteInput,
    /// Read-only registers (function code 4).
    InputRegister,
    /// Read-write registers (function codes 3, 6, 16, 22, 23).
    HoldingRegister,
}

impl Table {
    /// All four tables, in the order of their read function codes.
    pub const ALL: [Table; 4] = [
        Table::Coil,
        Table::DiscreteInput,
        Table::InputRegister,
        Table::HoldingRegister,
    ];

    /// The table's place in [`Table::ALL`], for arrays indexed by table.
    pub fn index(self) -> usize {
        match self {
            Table::Coil => 0,
            Table::DiscreteInput => 1,
            Table::InputRegister => 2,
            Table::HoldingRegister => 3,
        }
    }

    /// Whether the table holds single bits (coils, discrete inputs) rather than registers.
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::DiscreteInput)
    }

    /// Whether Modbus has a write function for the table.
    pub fn is_writable(self) -> bool {
        matches!(self, Table::Coil | Table::HoldingRegister)
    }

    /// Most items one read request may ask for (Modbus application protocol, 6.1–6.4).
    pub fn max_read(self) -> u16 {
        if self.is_bits() {
            2_000
        } else {
            125
        }
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Table::Coil => "coil",
            Table::DiscreteInput => "discrete_input",
            Table::InputRegister => "input_register",
            Table::HoldingRegister => "holding_register",
        })
    }
}

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

    pub(crate) fn swaps_words(self) -> bool {
        matches!(self, WordOrder::Cdab | WordOrder::Dcba)
    }

    pub(crate) fn swaps_bytes(self) -> bool {
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
