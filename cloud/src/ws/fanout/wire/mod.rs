//! The notification payloads of the fan-out between cloud instances: the sending side
//! (`send.rs`), the receiving side's bookkeeping (`receive.rs`) and the messages themselves,
//! the fan-out's own types with a version (`message.rs`), not the REST views, so a change to the API
//! cannot change what instances of a rolling upgrade say to each other. Pure: no I/O, so every
//! rule here is tested byte for byte, and the payloads of version 1 are pinned by a test.
//!
//! A payload is JSON text of at most `limit` bytes (PostgreSQL's limit is 7,999):
//!
//! ```text
//! {"i":"<instance>","s":<seq>,"v":<version>,"b":<body>}
//! ```
//!
//! `i` is the sending instance's id (random, new at every start) and `s` numbers its payloads
//! from 0 without holes, so a receiver drops its own payloads, drops a payload it already had,
//! and counts the payloads it missed. `v` is the format's version, [`VERSION`] (a payload
//! without one is version 1, as the first instances sent it). Fields are only ever added within
//! a version, and a receiver ignores fields it does not know; a change a receiver of the
//! previous version would misread takes a new version, which receivers that do not know it drop
//! and count (`newer`), keeping their sequence bookkeeping. A body is an object with one key,
//! its tag:
//!
//! | tag | what | content |
//! |---|---|---|
//! | `p` | telemetry points | `{"t": base time (ms), "r": [[gateway, device, metric, [[time − base, value, quality], …]], …]}`; quality 0 good, 1 uncertain, 2 bad; a gateway or device of `""` is the previous run's |
//! | `g` | a gateway's status | `{"g": gateway, "on": online, "at": time (ms), "e": boot epoch, "v": agent version, "h": configuration hash}` |
//! | `c` | a command's status | `CommandMsg`: id, gateway, the protocol's command, status, times (RFC 3339), idempotency key, result, error |
//! | `a` | an alert's change | `AlertMsg`: ids, series, rule kind, severity, status, times (RFC 3339), last value |
//! | `d` | a device's health | `DeviceMsg`: gateway, device, state, since, reported state, last error and its time |
//! | `part` | a piece of a body too large for one payload | `{"n": index from 0, "of": count, "d": text}` |
//!
//! Telemetry is chunked: a committed batch's points, grouped by series, fill as many `p`
//! payloads as they need, and each one stands alone, so a receiver delivers it at once and a
//! lost one loses only its own points. Every other body is one payload, unless it is longer
//! than one payload can carry (a command with a large configuration or result): then its
//! text is cut into `part` payloads with consecutive sequence numbers, sent in one
//! transaction, and the receiver joins them; a hole among them discards the whole body.

mod message;
mod receive;
mod send;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::alerts::AlertView;
use crate::commands::CommandView;
use crate::registry::Device;
use crate::store::WriteBatch;

pub use message::VERSION;
pub use receive::{Inbox, Outcome, Taken};
pub use send::Encoder;

/// Most pieces one body may be cut into (with 7,999-byte payloads, about 500 KB of text).
pub const MAX_PARTS: u32 = 64;

/// The smallest payload limit an encoder takes: a point with the longest identifiers and the
/// longest string value, every character escaped, fits in one payload of this size.
pub const MIN_LIMIT: usize = 2_048;

/// An event from another instance, as this instance's clients get it.
#[derive(Debug, Clone)]
pub enum Remote {
    /// Points or gateway statuses, in a batch of their own.
    Batch(Arc<WriteBatch>),
    Command(Arc<CommandView>),
    Alert(Arc<AlertView>),
    /// This instance was not listening between these times (milliseconds since the Unix
    /// epoch): what other instances published then is missing.
    Gap {
        from_ms: i64,
        to_ms: i64,
    },
    /// A device's health after a commit of the sending instance.
    Device(Arc<Device>),
}

/// Why a local event was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// Its text needs more than [`MAX_PARTS`] payloads.
    Oversized,
}
