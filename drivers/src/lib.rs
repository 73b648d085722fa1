//! Fieldlink's field-device drivers: the agent's eyes and hands.
//!
//! This crate reads and writes field devices over Modbus TCP, Modbus RTU (RS-485) and plain
//! serial lines, and hands the agent timestamped [`fieldlink_protocol::Point`]s. It knows nothing
//! of MQTT or SQLite: what happens to a reading after it is taken is the agent's business.
//!
//! The path of a reading:
//! - [`pointmap`]: the configuration, validated once into typed devices and points.
//! - [`plan`]: the fewest Modbus requests that read a device's points.
//! - [`modbus`]: links with timeouts, one owner task per link ([`modbus::station`]), polling and
//!   decoding with [`codec`]; [`write`](mod@write) for the way back.
//! - [`serial_line`]: sensors that print lines of text.
//! - [`health`] and [`event`]: what the agent hears about each device; [`io_fault`]: stream
//!   failures worded as what happened to the device.
//! - [`acquisition`]: starts all of the above for a point map.
//!
//! Everything that touches a device is generic over the byte stream it runs on
//! ([`modbus::Connector`], [`serial_line::LineOpener`]) so tests can put a simulator, a
//! pseudo-terminal or a fault injector behind it. The Modbus vocabulary ([`vocabulary`]: tables,
//! value types, word orders), the value codec ([`codec`]) and the scaling of raw values
//! ([`pointmap::scaled`]) are shared with the device simulator (`fieldlink-sim`), so a table,
//! the layout of every type in every word order, and an engineering value are written once.

pub mod acquisition;
pub mod codec;
pub mod event;
pub mod health;
pub mod io_fault;
pub mod modbus;
pub mod plan;
pub mod pointmap;
pub mod serial_line;
pub mod vocabulary;
pub mod write;

pub use acquisition::Acquisition;
pub use codec::{decode, encode, CodecError, DataType, DataTypeParseError, TypedValue, WordOrder};
pub use event::{hand_over, Closed, DriverEvent, PointError, PointFailure, Readings, Receipt};
pub use health::{DeviceCounters, HealthEvent, HealthState};
pub use plan::{PlanItem, PlanLimits, ReadPlan, ReadRequest};
pub use pointmap::{InvalidPointMap, PointMap, PointMapConfig, PointMapError};
pub use write::{WriteError, WriteOutcome};
