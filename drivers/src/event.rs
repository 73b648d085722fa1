//! What the drivers hand the agent: readings and health changes, on one bounded channel.
//!
//! Backpressure policy: the drivers wait when the channel is full. A slow agent slows polling
//! down; nothing read is dropped inside the drivers.
//!
//! Hand-over: every [`DriverEvent::Readings`] carries a [`Receipt`], and the task that read
//! them ([`hand_over`]) does not poll again until the consumer has confirmed or dropped it.
//! The agent confirms once the readings are committed to its journal, so at any instant at most
//! one poll per link has been read from a device and not yet committed: a killed agent loses
//! at most that one, never a queue of them.

use fieldlink_protocol::{Ident, Point};
use tokio::sync::{mpsc, oneshot};

use crate::health::HealthEvent;
use crate::modbus::ExceptionCode;
use crate::pointmap::ValueError;

/// An event from a device's acquisition task.
#[derive(Debug)]
pub enum DriverEvent {
    /// One poll's readings; the reading task waits for the [`Receipt`] before it polls again.
    Readings(Readings, Receipt),
    Health(HealthEvent),
}

/// The consumer's side of a hand-over: confirming it (or dropping it) lets the task that read
/// the readings go on polling.
#[derive(Debug)]
pub struct Receipt(Option<oneshot::Sender<()>>);

impl Receipt {
    /// A receipt nobody waits for (readings made up by a test, or by a caller without a
    /// reading task behind it).
    pub fn detached() -> Receipt {
        Receipt(None)
    }

    /// The readings are taken: committed, or deliberately not kept.
    pub fn confirm(mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// The channel to the consumer is gone: the task that reads should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// Sends `readings` and waits until the consumer has confirmed or dropped their receipt.
pub async fn hand_over(
    events: &mpsc::Sender<DriverEvent>,
    readings: Readings,
) -> Result<(), Closed> {
    // An error from the receipt only means it was dropped unconfirmed: the consumer is done
    // with the readings either way.
    let _ = offer(events, readings).await?.await;
    Ok(())
}

/// Sends `readings`; the returned receiver resolves (with a value or an error alike) once the
/// consumer is done with them. For a task that has other work to serve while it waits.
pub(crate) async fn offer(
    events: &mpsc::Sender<DriverEvent>,
    readings: Readings,
) -> Result<oneshot::Receiver<()>, Closed> {
    let (tx, rx) = oneshot::channel();
    events
        .send(DriverEvent::Readings(readings, Receipt(Some(tx))))
        .await
        .map_err(|_| Closed)?;
    Ok(rx)
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
    #[error("device answered {}", crate::modbus::describe_exception(*.0))]
    Exception(ExceptionCode),
    /// The registers were read but do not make a valid value.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// A serial-line field was missing from the line or not a number.
    #[error("field {field:?}: {reason}")]
    Field { field: String, reason: String },
}

/// Milliseconds since the Unix epoch, UTC: a reading's acquisition time.
pub use fieldlink_plumbing::clock::now_ms;
