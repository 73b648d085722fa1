//! Modbus TCP and RTU acquisition.
//!
//! - [`connector`]: opening the byte stream (the seam tests use).
//! - [`link`]: one connection or bus, with timeouts, resets and inter-frame silence.
//! - [`watch`]: noticing a stream the device closed, which tokio-modbus cannot report.
//! - [`error`]: link errors and exceptions, worded for the operator.
//! - [`poll`]: reading a device's plan and decoding the answers.
//! - [`station`]: the owner task of one link and every device on it.

pub mod connector;
pub mod error;
pub mod link;
pub mod poll;
pub mod station;
mod watch;

pub use connector::{Connector, Framing, SerialConnector, TcpConnector};
pub use error::{describe_exception, ExceptionCode, LinkError, ModbusResult};
pub use link::{inter_frame_silence, Answer, LinkOptions, ModbusLink, Op};
pub use station::{spawn_station, Command, ReadNowError, StationHandle, StationOptions};
