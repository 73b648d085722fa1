//! Point maps: what to read from each device and how to make sense of it.
//!
//! The configuration file is read into [`config::PointMapConfig`] and validated once by
//! [`PointMap::from_config`] into the types below. Validation applies device templates and
//! expands point blocks (one entry standing for a run of consecutive points), so nothing after
//! it knows either exists. The validated types hold invariants the rest of the crate relies
//! on: names are identifiers, every Modbus point fits the address space and one read request,
//! types suit their table, writable points do not overlap, scales can be inverted, and devices
//! sharing a serial bus agree on its settings and have distinct unit ids.
//!
//! [`EXAMPLE_TOML`] is an annotated map with every kind of device, fit for a
//! `print-default-config` command; a test keeps it valid.

mod block;
pub mod config;
mod error;
mod pattern;
pub(crate) mod point;
mod template;
mod validate;

use std::time::Duration;

use fieldlink_protocol::Ident;
use regex_lite::Regex;

pub use config::{LineFraming, Parity, PointMapConfig, SerialSettings, Table, TemplateConfig};
pub use error::{InvalidPointMap, PointMapError, PointMapErrorKind};
pub use point::{scaled, ModbusPoint, ValueError};

/// An annotated example point map in TOML.
pub const EXAMPLE_TOML: &str = include_str!("example.toml");

/// A validated point map.
#[derive(Debug, Clone)]
pub struct PointMap {
    pub devices: Vec<Device>,
}

impl PointMap {
    /// Validates a map read from configuration, reporting every mistake found.
    pub fn from_config(config: &PointMapConfig) -> Result<PointMap, InvalidPointMap> {
        validate::point_map(config)
    }

    pub fn device(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.name.as_str() == name)
    }
}

/// One validated device.
#[derive(Debug, Clone)]
pub struct Device {
    pub name: Ident,
    pub poll_interval: Duration,
    pub timeout: Duration,
    pub kind: DeviceKind,
}

#[derive(Debug, Clone)]
pub enum DeviceKind {
    Modbus(ModbusDevice),
    SerialLine(SerialLineDevice),
}

/// A Modbus device: where it is and which points it has.
#[derive(Debug, Clone)]
pub struct ModbusDevice {
    pub link: ModbusLink,
    pub unit_id: u8,
    pub max_gap: u16,
    pub points: Vec<ModbusPoint>,
}

impl ModbusDevice {
    pub fn point(&self, name: &str) -> Option<&ModbusPoint> {
        self.points.iter().find(|p| p.name.as_str() == name)
    }
}

/// The physical link a Modbus device sits on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModbusLink {
    Tcp {
        host: String,
        port: u16,
    },
    Rtu {
        port: String,
        line: SerialSettings,
        turnaround: Duration,
    },
}

/// A sensor that prints readings as lines of text.
#[derive(Debug, Clone)]
pub struct SerialLineDevice {
    pub port: String,
    pub line: SerialSettings,
    pub framing: LineFraming,
    pub max_line_len: usize,
    pub format: LineFormat,
    pub points: Vec<LinePoint>,
}

/// A validated line format.
#[derive(Debug, Clone)]
pub enum LineFormat {
    Regex(Regex),
    KeyValue,
    JsonLines,
}

/// A metric taken from one field of a parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePoint {
    pub name: Ident,
    pub unit: Option<String>,
    pub field: String,
    pub scale: f64,
    pub offset: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_map_is_valid() {
        let config: PointMapConfig = toml::from_str(EXAMPLE_TOML).expect("example parses");
        let map = PointMap::from_config(&config).expect("example validates");
        assert_eq!(map.devices.len(), 5);
        let DeviceKind::Modbus(m) = &map.device("meter-1").unwrap().kind else {
            panic!("meter-1 is Modbus")
        };
        assert_eq!(
            m.point("energy_total").unwrap().poll_interval,
            Duration::from_secs(60)
        );
        assert!(matches!(
            map.device("weather").unwrap().kind,
            DeviceKind::SerialLine(_)
        ));
        let DeviceKind::Modbus(sub) = &map.device("submeter-1").unwrap().kind else {
            panic!("submeter-1 is Modbus")
        };
        let phases: Vec<(&str, u16)> = sub
            .points
            .iter()
            .map(|p| (p.name.as_str(), p.address))
            .collect();
        assert_eq!(
            phases,
            [
                ("phase_1_voltage", 0),
                ("phase_2_voltage", 2),
                ("phase_3_voltage", 4)
            ]
        );
        assert_eq!(
            map.device("submeter-1").unwrap().poll_interval,
            Duration::from_secs(5)
        );
    }
}
