//! Fieldlink's field-device drivers: the agent's eyes and hands.
//!
//! This crate reads and writes field devices over Modbus TCP, Modbus RTU (RS-485) and plain
//! serial lines, and hands the agent timestamped [`fieldlink_protocol::Point`]s. It knows nothing
//! of MQTT or SQLite: what happens to a reading after it is taken is the agent's business.
//!
//! The value codec in [`codec`] is shared with the device simulator (`fieldlink-sim`), so the
//! layout of every type in every word order is written exactly once.

pub mod codec;

pub use codec::{decode, encode, CodecError, DataType, DataTypeParseError, TypedValue, WordOrder};
pub mod plan;
pub mod pointmap;

pub use plan::{PlanItem, PlanLimits, ReadPlan, ReadRequest};
pub use pointmap::{InvalidPointMap, PointMap, PointMapConfig, PointMapError};
