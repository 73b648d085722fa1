//! The Fieldlink wire protocol, shared by `fieldlink-agent` and `fieldlink-cloud`.
//!
//! This crate is pure: it has no I/O and no async runtime. It owns the MQTT topic layout
//! ([`topic`]), the identifiers that appear in topics and payloads ([`Ident`]), the message
//! types ([`message`]), their validation ([`validate`], [`limits`]) and their encodings
//! ([`json`] for every message, [`binary`] for telemetry,
//! [`decode_telemetry`] for either). Every decoder is total: any byte string yields a value or a
//! typed error, never a panic, and never allocates more than the stated limits allow.
//!
//! `protocol/README.md` documents the wire format byte by byte with examples.

pub mod alias;
pub mod binary;
mod codec;
pub mod error;
pub mod ident;
pub mod json;
pub mod limits;
pub mod message;
pub mod point;
pub mod reference;
pub mod text;
pub mod topic;
pub mod validate;

pub use alias::{BirthRef, SeriesAliases};
pub use codec::{
    decode_telemetry, decode_telemetry_aliased, detect, encode_telemetry, encode_telemetry_aliased,
    telemetry_birth_ref, Encoding,
};
pub use error::{DecodeError, EncodeError, ValidationError};
pub use ident::{Ident, IdentError};
pub use message::{
    Ack, AckStage, Birth, Command, CommandKind, ConfigDocument, Control, Death, DeviceInfo, Event,
    EventKind, Message, PointInfo, Status, TelemetryBatch,
};
pub use point::{DataKind, Point, Quality, Value};
pub use text::clip_text;
pub use topic::{Topic, TopicError, TopicKind, TopicPrefix};
