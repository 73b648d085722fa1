//! The simulator's configuration file, as written by people, and its validation.
//!
//! [`SimConfig`] is the serde image of the TOML file. It is checked once, by
//! [`SimConfig::validate`] (which [`crate::Simulator::from_config`] calls), into the model the
//! server runs on; every error names where it is, e.g.
//! `units[1] (unit 7).points[3] (holding_register 100)`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fieldlink_drivers::codec::{DataType, WordOrder};
use serde::{Deserialize, Serialize};

use crate::table::Table;

/// The whole simulator configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Modbus TCP listener the binary opens; the library takes its own listener instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpConfig>,
    /// Serial device the binary serves Modbus RTU on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtu: Option<RtuConfig>,
    /// Optional record of every read the simulator answered.
    #[serde(default)]
    pub served_log: ServedLogConfig,
    /// Modbus units (slaves), served on every transport.
    #[serde(default)]
    pub units: Vec<UnitConfig>,
    /// Serial-line sensors that write text lines.
    #[serde(default)]
    pub line_sensors: Vec<LineSensorConfig>,
}

/// Where the binary listens for Modbus TCP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    pub listen: SocketAddr,
}

/// Which serial device the binary serves Modbus RTU on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtuConfig {
    pub path: PathBuf,
    #[serde(default = "default_baud")]
    pub baud: u32,
    #[serde(default)]
    pub parity: ParityName,
    /// 5 to 8.
    #[serde(default = "eight")]
    pub data_bits: u8,
    /// 1 or 2.
    #[serde(default = "one_u8")]
    pub stop_bits: u8,
}

/// Serial parity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParityName {
    #[default]
    None,
    Even,
    Odd,
}

impl RtuConfig {
    /// The serial settings, or an error naming the wrong one.
    pub fn settings(&self) -> Result<crate::SerialSettings, ConfigError> {
        use tokio_serial::{DataBits, Parity, StopBits};
        let mut settings = crate::SerialSettings::new(&self.path, self.baud);
        settings.data_bits = match self.data_bits {
            5 => DataBits::Five,
            6 => DataBits::Six,
            7 => DataBits::Seven,
            8 => DataBits::Eight,
            n => {
                return Err(ConfigError::invalid(
                    "rtu.data_bits",
                    format!("{n} is not 5, 6, 7 or 8"),
                ))
            }
        };
        settings.stop_bits = match self.stop_bits {
            1 => StopBits::One,
            2 => StopBits::Two,
            n => {
                return Err(ConfigError::invalid(
                    "rtu.stop_bits",
                    format!("{n} is not 1 or 2"),
                ))
            }
        };
        settings.parity = match self.parity {
            ParityName::None => Parity::None,
            ParityName::Even => Parity::Even,
            ParityName::Odd => Parity::Odd,
        };
        if self.baud == 0 {
            return Err(ConfigError::invalid("rtu.baud", "must be positive"));
        }
        Ok(settings)
    }
}

/// The bounded log of served reads. A capacity of 0 (the default) turns it off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServedLogConfig {
    /// How many reads are kept; the oldest is evicted (and counted) when full.
    #[serde(default)]
    pub capacity: usize,
}

/// One Modbus unit (slave id) and its four tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitConfig {
    /// Unit id, 1..=247. Id 0 is the RTU broadcast address.
    pub id: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Plain memory at addresses `0..size` per table: reads 0 until written, writable in the
    /// coil and holding tables. Addresses neither in it nor in a point raise exception 2.
    #[serde(default)]
    pub size: TableSizes,
    #[serde(default)]
    pub points: Vec<PointConfig>,
    #[serde(default)]
    pub faults: FaultConfig,
}

/// Size of the plain memory area of each table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSizes {
    #[serde(default)]
    pub coils: u32,
    #[serde(default)]
    pub discrete_inputs: u32,
    #[serde(default)]
    pub input_registers: u32,
    #[serde(default)]
    pub holding_registers: u32,
}

impl TableSizes {
    pub(crate) fn get(&self, table: Table) -> u32 {
        match table {
            Table::Coil => self.coils,
            Table::DiscreteInput => self.discrete_inputs,
            Table::InputRegister => self.input_registers,
            Table::HoldingRegister => self.holding_registers,
        }
    }
}

/// A value the unit serves: a bit in a bit table, or a typed value spread over registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub table: Table,
    pub address: u16,
    /// `bool` for bit tables (the default there); `u16` (the default), `i16`, `u32`, `i32`,
    /// `u64`, `i64`, `f32`, `f64`, `bool` or `string:N` for register tables.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<DataType>,
    #[serde(default)]
    pub order: WordOrder,
    /// Served raw value = (waveform value - offset) / scale, so a reader applying
    /// `raw * scale + offset` gets the waveform back.
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    /// Whether Modbus writes are accepted; a written point keeps the written registers.
    #[serde(default)]
    pub writable: bool,
    /// What the point serves over time; a constant 0 (or "" for strings) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waveform: Option<WaveformConfig>,
    /// Number of consecutive copies of this point, each right after the previous one.
    #[serde(default = "one_u16")]
    pub repeat: u16,
}

/// How a point's value moves with time `t`, the seconds since the simulator started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WaveformConfig {
    /// Always `value`: a number, a boolean or (for strings) a text.
    Constant { value: ConstantValue },
    /// `start + increment * floor(t / interval_s)`; integer types wrap around at their range.
    Counter {
        #[serde(default)]
        start: f64,
        #[serde(default = "one")]
        increment: f64,
        interval_s: f64,
    },
    /// A sawtooth from `min` up to `max` over `period_s`, then back to `min`.
    Ramp { min: f64, max: f64, period_s: f64 },
    /// `offset + amplitude * sin(2π t / period_s + phase_deg)`.
    Sine {
        #[serde(default)]
        offset: f64,
        amplitude: f64,
        period_s: f64,
        #[serde(default)]
        phase_deg: f64,
    },
    /// Starts at `start`, moves by up to `max_step` every `interval_s`, reflected at `min`/`max`.
    /// The path is a pure function of `seed`, so two runs (and a test) see the same values.
    RandomWalk {
        start: f64,
        max_step: f64,
        min: f64,
        max: f64,
        interval_s: f64,
        #[serde(default)]
        seed: u64,
    },
    /// Holds each of `values` for `interval_s`, in a cycle.
    Step { values: Vec<f64>, interval_s: f64 },
}

/// The value of a constant waveform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConstantValue {
    Bool(bool),
    Number(f64),
    Text(String),
}

/// Faults a unit injects into its answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Every answer of the unit is held back this long (a slow device or a long bus).
    #[serde(default)]
    pub delay_ms: u64,
    /// The unit never answers: requests time out on the client.
    #[serde(default)]
    pub silent: bool,
    /// Every Nth request to the unit is not answered and, over TCP, closes its connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_every: Option<u64>,
    /// Address ranges that answer with a Modbus exception.
    #[serde(default)]
    pub exceptions: Vec<ExceptionFaultConfig>,
}

/// Requests touching `address..address + count` of `table` get exception `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionFaultConfig {
    pub table: Table,
    pub address: u16,
    #[serde(default = "one_u16")]
    pub count: u16,
    /// Modbus exception code, 2 (illegal data address) by default.
    #[serde(default = "two_u8")]
    pub code: u8,
}

/// A sensor that writes one text line per interval on a serial device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineSensorConfig {
    pub name: String,
    /// Serial device; the binary's `--line NAME=PATH` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Seconds between lines.
    pub interval_s: f64,
    #[serde(default)]
    pub format: LineFormat,
    #[serde(default)]
    pub line_ending: LineEnding,
    /// Every Nth line is replaced by a line of garbage, for parsers' error paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garbage_every: Option<u64>,
    pub fields: Vec<LineFieldConfig>,
}

/// One `key=value` pair (or JSON member) of a sensor line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineFieldConfig {
    pub key: String,
    /// Digits after the decimal point.
    #[serde(default)]
    pub decimals: u8,
    pub waveform: WaveformConfig,
}

/// How a sensor line is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineFormat {
    /// `T=21.4 H=55 P=1013.2`
    #[default]
    KeyValue,
    /// `{"T":21.4,"H":55,"P":1013.2}`
    Json,
}

/// What ends a sensor line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineEnding {
    #[default]
    Lf,
    Crlf,
}

impl LineEnding {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LineEnding::Lf => "\n",
            LineEnding::Crlf => "\r\n",
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid simulator configuration: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value that parses but makes no sense; `at` names the unit, point or sensor.
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(at: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            at: at.into(),
            message: message.into(),
        }
    }
}

impl SimConfig {
    /// Parses a TOML document. Only the syntax and the field types are checked here.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// Reads and parses a TOML file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Checks everything a running simulator relies on, naming the first mistake found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(rtu) = &self.rtu {
            rtu.settings()?;
        }
        crate::model::build_units(self).map(|_| ())?;
        crate::line::build_sensors(self, crate::clock::Clock::new()).map(|_| ())
    }

    /// The annotated example configuration shipped in `examples/plant.toml`.
    pub fn example_toml() -> &'static str {
        include_str!("../examples/plant.toml")
    }
}

fn default_baud() -> u32 {
    9600
}

fn one() -> f64 {
    1.0
}

fn one_u8() -> u8 {
    1
}

fn eight() -> u8 {
    8
}

fn one_u16() -> u16 {
    1
}

fn two_u8() -> u8 {
    2
}
