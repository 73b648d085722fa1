//! The messages that travel on each topic.
//!
//! Every message validates itself ([`Message::validate`]); encoders refuse invalid messages
//! and decoders validate what they read, so a message that exists after decoding obeys every
//! rule and limit of the protocol.

mod ack;
mod command;
mod control;
mod event;
pub(crate) mod series;
mod status;
mod telemetry;

pub use ack::{Ack, AckStage};
pub use command::{Command, CommandKind, ConfigDocument};
pub use control::{Control, MAX_SLOW_DOWN_MS};
pub use event::{Event, EventKind};
pub use status::{Birth, Death, DeviceInfo, PointInfo, Status};
pub use telemetry::TelemetryBatch;

use crate::error::ValidationError;
use crate::topic::TopicKind;

/// What every protocol message has in common.
pub trait Message {
    /// The topic kind the message travels on.
    const TOPIC: TopicKind;

    /// Checks every rule and limit of the protocol.
    fn validate(&self) -> Result<(), ValidationError>;
}
