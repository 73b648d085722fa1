//! The Fieldlink wire protocol, shared by `fieldlink-agent` and `fieldlink-cloud`.
//!
//! This crate is pure: it has no I/O and no async runtime. It owns the MQTT topic layout, the
//! identifiers that appear in topics and payloads, the message types, and their encodings.
//! Every decoder is total: any byte string yields a value or a typed error, never a panic, and
//! never allocates more than the stated limits allow.

pub mod ident;
pub mod point;

pub use ident::{Ident, IdentError};
pub use point::{Point, Quality, Value};
