//! What went wrong with the byte stream under a device, in words an operator can act on.
//!
//! An `io::Error` says what the operating system saw (`ECONNRESET`, `EIO`), not what happened
//! to the device, and some of the errors the drivers meet carry no information at all: tokio-modbus
//! reports a connection the device closed as whatever `errno` was left behind by an earlier
//! call ("Resource temporarily unavailable (os error 11)"). [`IoFault`] is the drivers' reading
//! of such an error: the link tells a closed stream apart itself (see
//! [`crate::modbus::link`]), and everything else is classified here by its kind, with the
//! medium deciding the wording: a TCP connection is closed by the device, a serial port goes
//! away with its adapter.

use std::io;
use std::time::Duration;

/// What a stream runs over, which decides what its failures mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    Tcp,
    Serial,
}

/// `EIO`: what a serial port (or the far end of a pty) that went away answers on Linux.
const EIO: i32 = 5;

/// A classified stream failure. Displayed without the target; the error holding it names that.
#[derive(Debug, thiserror::Error)]
pub enum IoFault {
    #[error("connection closed by the device")]
    Closed,
    #[error("connection closed by the device after {0} bytes of an unfinished answer")]
    ClosedMidAnswer(usize),
    #[error("connection refused (nothing listens on that port, or a firewall rejects it)")]
    Refused,
    #[error("connection reset by the device")]
    Reset,
    #[error("no reply from the host (the operating system timed the connection out)")]
    HostTimedOut,
    #[error("timed out after {} ms", .0.as_millis())]
    TimedOut(Duration),
    #[error("host or network unreachable")]
    Unreachable,
    #[error("no such serial port")]
    NoSuchPort,
    #[error("{}", permission_denied(*.0))]
    PermissionDenied(Medium),
    #[error(
        "the serial port is gone (input/output error: its USB adapter was unplugged, or the \
         other end of the line closed)"
    )]
    PortGone,
    /// Anything else, as the operating system put it.
    #[error("{0}")]
    Other(io::Error),
}

fn permission_denied(medium: Medium) -> &'static str {
    match medium {
        Medium::Tcp => "permission denied by the local system (a firewall rule?)",
        Medium::Serial => {
            "permission denied (the agent's user needs the port's group, usually dialout)"
        }
    }
}

impl IoFault {
    /// The stream ended: the device hung up (TCP) or the port went away (serial).
    pub fn closed(medium: Medium) -> IoFault {
        match medium {
            Medium::Tcp => IoFault::Closed,
            Medium::Serial => IoFault::PortGone,
        }
    }

    /// Reads an error of a stream over `medium`.
    pub fn classify(e: io::Error, medium: Medium) -> IoFault {
        use io::ErrorKind as E;
        if medium == Medium::Serial && e.raw_os_error() == Some(EIO) {
            return IoFault::PortGone;
        }
        match e.kind() {
            E::ConnectionRefused => IoFault::Refused,
            E::ConnectionReset | E::ConnectionAborted => IoFault::Reset,
            E::BrokenPipe | E::UnexpectedEof | E::NotConnected => IoFault::closed(medium),
            E::HostUnreachable | E::NetworkUnreachable => IoFault::Unreachable,
            E::TimedOut => IoFault::HostTimedOut,
            E::NotFound if medium == Medium::Serial => IoFault::NoSuchPort,
            E::PermissionDenied => IoFault::PermissionDenied(medium),
            _ => IoFault::Other(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_as_what_happened_to_the_device() {
        let tcp = |k: io::ErrorKind| IoFault::classify(k.into(), Medium::Tcp).to_string();
        let serial = |e: io::Error| IoFault::classify(e, Medium::Serial).to_string();
        assert!(tcp(io::ErrorKind::ConnectionRefused).starts_with("connection refused"));
        assert_eq!(
            tcp(io::ErrorKind::ConnectionReset),
            "connection reset by the device"
        );
        assert_eq!(
            tcp(io::ErrorKind::BrokenPipe),
            "connection closed by the device"
        );
        assert!(serial(io::ErrorKind::BrokenPipe.into()).starts_with("the serial port is gone"));
        assert!(serial(io::Error::from_raw_os_error(EIO)).starts_with("the serial port is gone"));
        assert_eq!(
            serial(io::ErrorKind::NotFound.into()),
            "no such serial port"
        );
        assert!(serial(io::ErrorKind::PermissionDenied.into()).contains("dialout"));
        assert_eq!(
            IoFault::TimedOut(Duration::from_millis(1500)).to_string(),
            "timed out after 1500 ms"
        );
    }
}
