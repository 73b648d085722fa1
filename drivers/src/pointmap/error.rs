//! Point map validation errors, each naming the device and point it concerns.

use std::fmt;

use fieldlink_protocol::IdentError;

use crate::codec::{DataType, DataTypeParseError};
use crate::pointmap::config::Table;

/// One thing wrong with a point map, and where: `devices[meter-1].points[voltage]`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct PointMapError {
    pub path: String,
    pub kind: PointMapErrorKind,
}

/// Everything wrong with a point map; validation does not stop at the first mistake.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct InvalidPointMap {
    pub errors: Vec<PointMapError>,
}

impl fmt::Display for InvalidPointMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid point map ({} errors)", self.errors.len())?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

fn known_templates(known: &[String]) -> String {
    if known.is_empty() {
        "the map defines no templates".to_owned()
    } else {
        format!("defined: {}", known.join(", "))
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PointMapErrorKind {
    #[error("name is not a valid identifier: {0}")]
    BadName(IdentError),
    #[error("a device of this name is already defined")]
    DuplicateDevice,
    #[error("a point of this name is already defined on the device")]
    DuplicatePoint,
    /// A point that collides with one written elsewhere: in the template, or in a block.
    #[error("a point of this name is already defined at {first}")]
    DuplicateOf { first: String },
    /// A problem of one point of a block, at the block's path.
    #[error("block point {point:?}: {kind}")]
    InBlock {
        point: String,
        kind: Box<PointMapErrorKind>,
    },
    #[error("a template of this name is already defined")]
    DuplicateTemplate,
    #[error("no template {name:?} ({})", known_templates(.known))]
    UnknownTemplate { name: String, known: Vec<String> },
    #[error("`{0}` applies to blocks only; add `count` to make the entry a block")]
    BlockOnly(&'static str),
    #[error("name pattern: {0}")]
    NamePattern(String),
    #[error(
        "the name has no `{{n}}` or `{{address}}`: all {count} points of the block would bear it"
    )]
    NoPlaceholder { count: u32 },
    #[error("stride {stride} is less than the {width} registers a {data_type} spans: the block's points would overlap")]
    StrideTooShort {
        stride: u16,
        data_type: DataType,
        width: u16,
    },
    #[error("the block's {count} points run past address 65535 (the last would start at {last})")]
    BlockPastEnd { count: u32, last: u64 },
    #[error("the block's points share address {address} with those of block {other}")]
    BlocksOverlap { address: u16, other: String },
    #[error("{0}")]
    DataType(DataTypeParseError),
    #[error("`{0}` is required for Modbus points")]
    Missing(&'static str),
    #[error("`{0}` does not apply to {1} devices")]
    NotApplicable(&'static str, &'static str),
    #[error("address {address} + {count} registers runs past 65535")]
    PastEnd { address: u16, count: u16 },
    #[error("a {table} holds single bits, {data_type} does not fit; use type \"bool\"")]
    NotABit { table: Table, data_type: DataType },
    #[error("{data_type} spans {count} registers, more than one read of 125 can return")]
    TooLong { data_type: DataType, count: u16 },
    #[error("a {0} cannot be written over Modbus")]
    ReadOnlyTable(Table),
    #[error("writable point overlaps writable point {other:?}")]
    OverlappingWrite { other: String },
    #[error(
        "scale must be finite and not zero, offset finite (got scale {scale}, offset {offset})"
    )]
    BadScale { scale: f64, offset: f64 },
    #[error("scale and offset apply to numbers only, not {0}")]
    ScaleOnNonNumber(DataType),
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("unit id {unit_id} is not a slave address on a serial bus (1..=247)")]
    RtuUnitId { unit_id: u16 },
    #[error("unit id {unit_id} is not a Modbus TCP unit id (0..=255)")]
    TcpUnitId { unit_id: u16 },
    #[error("unit id {unit_id} already polled on this bus by device {other:?}")]
    DuplicateUnit { unit_id: u16, other: String },
    #[error("serial settings differ from device {other:?} on the same port")]
    BusSettingsDiffer { other: String },
    #[error("serial port {0}")]
    Serial(String),
    #[error("regular expression: {0}")]
    Regex(String),
    #[error("regular expression has no named group {0:?} for the point")]
    NoSuchGroup(String),
    #[error("the host is empty")]
    EmptyHost,
}
