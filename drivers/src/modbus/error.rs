//! Errors of the Modbus layer, keeping a device's answer apart from a broken link.
//!
//! Like tokio-modbus, a request's outcome is a nested result: the outer `Err` is a
//! [`LinkError`] (nothing usable came back: no connection, a timeout, garbled or mismatched
//! frames), the inner `Err` is the device's own [`ExceptionCode`] (it answered, and said no).
//! The two call for different reactions: an exception is a per-point problem and the link stays
//! up, a link error resets the connection and counts against the device's health.
//!
//! Every message says what happened and where (`192.168.1.20:502: connection closed by the
//! device`, `no answer from unit 3 at /dev/ttyUSB0 within 1000 ms`): these texts are what the
//! log, the device's health and the cloud's events show an operator.

use std::time::Duration;

pub use tokio_modbus::ExceptionCode;

use crate::io_fault::IoFault;

/// The outcome of one Modbus request.
pub type ModbusResult<T> = Result<Result<T, ExceptionCode>, LinkError>;

/// Nothing usable came back from the link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The connection (or serial port) could not be opened.
    #[error("cannot connect to {target}: {fault}")]
    Connect { target: String, fault: IoFault },
    /// The request went out and no answer came back in time.
    #[error("no answer from unit {unit} at {target} within {} ms", .after.as_millis())]
    Timeout {
        target: String,
        unit: u8,
        after: Duration,
    },
    /// The connection (or port) failed during a request.
    #[error("{target}: {fault}")]
    Io { target: String, fault: IoFault },
    /// The answer did not belong to the request (wrong unit, function or transaction).
    #[error("answer from {target} does not match the request: {detail}")]
    Mismatch { target: String, detail: String },
    /// The answer had the wrong shape (fewer registers than asked for, a bad length or CRC).
    #[error("malformed answer from {target}: {detail}")]
    Malformed { target: String, detail: String },
}

/// An exception as an operator reads it: `Modbus exception 2, illegal data address (the device
/// has no such register)`.
pub fn describe_exception(code: ExceptionCode) -> String {
    use ExceptionCode as E;
    let (name, meaning) = match code {
        E::IllegalFunction => (
            "illegal function",
            "the device does not support this request",
        ),
        E::IllegalDataAddress => ("illegal data address", "the device has no such register"),
        E::IllegalDataValue => (
            "illegal data value",
            "the device refuses the value or the quantity asked for",
        ),
        E::ServerDeviceFailure => (
            "server device failure",
            "the device failed while handling the request",
        ),
        E::Acknowledge => (
            "acknowledge",
            "the device took the request and is still working on it",
        ),
        E::ServerDeviceBusy => ("server device busy", "try again later"),
        E::MemoryParityError => (
            "memory parity error",
            "the device found its memory inconsistent",
        ),
        E::GatewayPathUnavailable => (
            "gateway path unavailable",
            "the Modbus gateway has no path to the unit",
        ),
        E::GatewayTargetDevice => (
            "gateway target device failed to respond",
            "the unit behind the Modbus gateway did not answer it",
        ),
        E::Custom(n) => {
            return format!("Modbus exception {n}, not one the Modbus specification defines")
        }
    };
    format!("Modbus exception {}, {name} ({meaning})", u8::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_carry_their_number_and_name() {
        assert_eq!(
            describe_exception(ExceptionCode::IllegalDataAddress),
            "Modbus exception 2, illegal data address (the device has no such register)"
        );
        assert!(describe_exception(ExceptionCode::GatewayTargetDevice)
            .starts_with("Modbus exception 11, gateway target device failed to respond"));
        assert_eq!(
            describe_exception(ExceptionCode::new(0x42)),
            "Modbus exception 66, not one the Modbus specification defines"
        );
    }
}
