//! The point map as written in the configuration file, before validation.
//!
//! These types mirror the file one to one and accept anything serde can read; names stay plain
//! strings and types stay text here so that every mistake is reported by
//! [`super::PointMap::from_config`] with the path of the device and point it concerns, instead of
//! by serde with a line number the operator has to map back.

use serde::{Deserialize, Serialize};

use crate::codec::WordOrder;

fn default_true() -> bool {
    true
}
fn one() -> f64 {
    1.0
}

/// The whole map: every device the gateway talks to, and the device templates they use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointMapConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<TemplateConfig>,
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
}

/// A kind of device described once (its points, timing and gaps) for many devices to use by
/// name. Templates do not build on one another: a device names one template, or none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// What devices give as `template`; must be a valid identifier.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gap: Option<u16>,
    #[serde(default)]
    pub points: Vec<PointConfig>,
}

/// One field device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Becomes the `device` of every reading; must be a valid identifier.
    pub name: String,
    /// The [`TemplateConfig`] whose points and settings the device takes. Its own points are
    /// added to the template's; its own settings override the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    pub transport: TransportConfig,
    /// Default poll interval of the device's points, in milliseconds; 1,000 when neither the
    /// device nor its template sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_ms: Option<u64>,
    /// Per-request timeout in milliseconds; a request that takes longer resets the connection.
    /// 1,000 when neither the device nor its template sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Registers (or coils) a merged read may read through between two points and discard.
    /// Some devices refuse reads that touch unmapped addresses; the planner copes with that by
    /// splitting, but `0` avoids the round trip for devices known to be strict. 8 when neither
    /// the device nor its template sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gap: Option<u16>,
    #[serde(default)]
    pub points: Vec<PointConfig>,
}

impl DeviceConfig {
    pub const DEFAULT_POLL_INTERVAL_MS: u64 = 1_000;
    pub const DEFAULT_TIMEOUT_MS: u64 = 1_000;
    pub const DEFAULT_MAX_GAP: u16 = 8;
}

/// How a device is reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransportConfig {
    /// Modbus TCP.
    Tcp {
        host: String,
        #[serde(default = "TransportConfig::default_tcp_port")]
        port: u16,
        /// 0..=255; wider here so that an out-of-range value is named by validation.
        #[serde(default = "TransportConfig::default_tcp_unit")]
        unit_id: u16,
    },
    /// Modbus RTU on an RS-485 bus. Devices naming the same `port` share one bus and must agree
    /// on its line settings.
    Rtu {
        port: String,
        #[serde(flatten)]
        line: SerialSettings,
        /// 1..=247; wider here so that an out-of-range value is named by validation.
        unit_id: u16,
        /// Extra silence after each answer before the next request, in microseconds, for slaves
        /// slow to release the bus. Added to the 3.5-character gap the baud rate demands.
        #[serde(default)]
        turnaround_us: u64,
    },
    /// A sensor that prints one reading per line on a serial port.
    SerialLine {
        port: String,
        #[serde(flatten)]
        line: SerialSettings,
        #[serde(default)]
        framing: LineFraming,
        #[serde(default = "TransportConfig::default_max_line")]
        max_line_len: usize,
        format: LineFormatConfig,
    },
}

impl TransportConfig {
    fn default_tcp_port() -> u16 {
        502
    }
    fn default_tcp_unit() -> u16 {
        1
    }
    fn default_max_line() -> usize {
        512
    }
}

/// Serial line settings shared by RTU buses and serial-line sensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialSettings {
    #[serde(default = "SerialSettings::default_baud")]
    pub baud: u32,
    #[serde(default)]
    pub parity: Parity,
    #[serde(default = "SerialSettings::default_data_bits")]
    pub data_bits: u8,
    #[serde(default = "SerialSettings::default_stop_bits")]
    pub stop_bits: u8,
}

impl SerialSettings {
    fn default_baud() -> u32 {
        9_600
    }
    fn default_data_bits() -> u8 {
        8
    }
    fn default_stop_bits() -> u8 {
        1
    }
}

impl Default for SerialSettings {
    fn default() -> Self {
        SerialSettings {
            baud: Self::default_baud(),
            parity: Parity::None,
            data_bits: Self::default_data_bits(),
            stop_bits: Self::default_stop_bits(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

/// Where one line of a serial-line sensor ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineFraming {
    /// `\n`; a `\r` before it is kept as part of the line.
    #[default]
    Lf,
    /// `\r\n`; a bare `\n` does not end a line.
    Crlf,
}

/// How a serial-line sensor's line becomes fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LineFormatConfig {
    /// A regular expression whose named groups are the fields.
    Regex { pattern: String },
    /// `key=value` pairs separated by white space, `,` or `;`.
    KeyValue,
    /// One JSON object per line; its top-level scalar members are the fields.
    JsonLines,
}

pub use crate::vocabulary::Table;

/// One point of a device, or with `count` a block of consecutive points. Modbus devices use
/// every field; serial-line devices use `name`, `unit`, `field`, `scale` and `offset`.
///
/// A block is `count` points of the same table, type, scale, unit and writability, the first at
/// `address` and each next one `stride` registers (or bits) further. Its `name` is a pattern:
/// `{n}` stands for the point's number (`number_from`, `number_from + 1`, …) and `{address}`
/// for its address; `{n:03}` and `{address:05}` pad with zeros to that many digits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointConfig {
    /// Becomes the reading's `metric`; must be a valid identifier (once expanded, for a block).
    pub name: String,
    /// Makes the entry a block of this many points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Blocks: registers (or bits) from one point to the next; the width of the type by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<u16>,
    /// Blocks: the number `{n}` takes for the first point; 0 by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_from: Option<u32>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub table: Option<Table>,
    #[serde(default)]
    pub address: Option<u16>,
    /// A data type name as [`crate::codec::DataType`] parses it; when left out, `bool` for the
    /// bit tables (coils, discrete inputs) and `u16` for the register tables.
    #[serde(default, rename = "type")]
    pub data_type: Option<String>,
    #[serde(default)]
    pub order: WordOrder,
    /// Engineering value = raw × scale + offset.
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    #[serde(default)]
    pub writable: bool,
    /// Overrides the device's poll interval for this point, in milliseconds.
    #[serde(default)]
    pub poll_interval_ms: Option<u64>,
    /// Serial lines: the parsed field this point takes its value from; defaults to `name`.
    #[serde(default)]
    pub field: Option<String>,
    /// Whether a written value is read back and compared before the write counts as done.
    #[serde(default = "default_true")]
    pub read_back: bool,
}
