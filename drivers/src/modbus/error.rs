//! Errors of the Modbus layer, keeping a device's answer apart from a broken link.
//!
//! Like tokio-modbus, a request's outcome is a nested result: the outer `Err` is a
//! [`LinkError`] (nothing usable came back: no connection, a timeout, garbled or mismatched
//! frames), the inner `Err` is the device's own [`ExceptionCode`] (it answered, and said no).
//! The two call for different reactions: an exception is a per-point problem and the link stays
//! up, a link error resets the connection and counts against the device's health.

use std::io;
use std::time::Duration;

pub use tokio_modbus::ExceptionCode;

/// The outcome of one Modbus request.
pub type ModbusResult<T> = Result<Result<T, ExceptionCode>, LinkError>;

/// Nothing usable came back from the link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to {target}: {source}")]
    Connect { target: String, source: io::Error },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("link failed: {0}")]
    Io(#[from] io::Error),
    /// The answer did not belong to the request (wrong unit, function or transaction).
    #[error("answer does not match the request: {0}")]
    Mismatch(String),
    /// The answer had the wrong shape (fewer registers than asked for, say).
    #[error("malformed answer: {0}")]
    Malformed(String),
}

impl From<tokio_modbus::Error> for LinkError {
    fn from(e: tokio_modbus::Error) -> Self {
        match e {
            tokio_modbus::Error::Transport(io) => LinkError::Io(io),
            tokio_modbus::Error::Protocol(p) => LinkError::Mismatch(p.to_string()),
        }
    }
}
