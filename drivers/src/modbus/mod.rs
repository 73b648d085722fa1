//! Modbus TCP and RTU acquisition.
//!
//! - [`connector`]: opening the byte stream (the seam tests use).
//! - [`link`]: one connection or bus, with timeouts, resets and inter-frame silence.
//! - [`poll`]: reading a device's plan and decoding the answers.
//! - [`station`]: the owner task of one link and every device on it.

pub mod connector;
pub mod error;
pub mod link;
pub mod poll;
pub mod station;

pub use connector::{Connector, Framing, SerialConnector, TcpConnector};
pub use error::{ExceptionCode, LinkError, ModbusResult};
pub use link::{inter_frame_silence, Answer, LinkOptions, ModbusLink, Op};
pub use station::{spawn_station, Command, ReadNowError, StationHandle, StationOptions};
