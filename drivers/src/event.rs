//! What the drivers hand the agent: readings and health changes, on one bounded channel.
//!
//! Backpressure policy: the drivers wait when the channel is full. A slow agent slows polling
//! down; nothing read is dropped inside the drivers.

use fieldlink_protocol::{Ident, Point};

use crate::health::HealthEvent;
use crate::modbus::ExceptionCode;
use crate::pointmap::ValueError;

/// An event from a device's acquisition task.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverEvent {
    Readings(Readings),
    Health(HealthEvent),
}

/// The outcome of one poll of a device (or one line of a serial sensor): the points read and
/// the points that could not be, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Readings {
    pub device: Ident,
    pub points: Vec<Point>,
    pub failures: Vec<PointFailure>,
}

impl Readings {
    pub fn new(device: Ident) -> Readings {
        Readings {
            device,
            points: Vec::new(),
            failures: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.failures.is_empty()
    }
}

/// A point that was asked for and did not yield a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct PointFailure {
    pub metric: Ident,
    pub error: PointError,
}

/// Why one point has no reading while its device is reachable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PointError {
    /// The device refused to read the point's registers.
    #[error("device answered with exception {0}")]
    Exception(ExceptionCode),
    /// The registers were read but do not make a valid value.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// A serial-line field was missing from the line or not a number.
    #[error("field {field:?}: {reason}")]
    Field { field: String, reason: String },
}

/// Milliseconds since the Unix epoch, UTC: a reading's acquisition time.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now();
    match now.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}
