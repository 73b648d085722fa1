//! Real services for Fieldlink's tests, started on free loopback ports and stopped on drop.
//!
//! Tests never use the machine's own services or fixed ports: each test starts what it needs
//! from the Debian packages (`mosquitto`, `postgresql`) or from the Node packages installed under
//! `testkit/node/` (the TimescaleDB double), in a temporary directory that disappears with the
//! handle. A missing binary is an error that names the package to install, never a skipped test.
//!
//! The API is blocking on purpose: it works the same from `#[test]` and `#[tokio::test]`
//! (service start-up is a few hundred milliseconds of waiting, done once per test).
//!
//! [`Link`] is the one service that is not a program: a TCP proxy that puts a bad field link
//! (latency, jitter, bandwidth, loss, freezes, half-open connections, resets, flapping) between
//! a client and any of the above, on a thread and small runtime of its own.
//!
//! [`sinks`] are where alert notifications go: a webhook receiver (an HTTP server on a thread
//! of its own) and an SMTP sink (`aiosmtpd`).
//!
//! [`layering`] is not a service either: it reads a crate's module graph from its sources so
//! a test can hold the crate to the layering `docs/ARCHITECTURE.md` states.

pub mod fs;
pub mod layering;
pub mod link;
mod mosquitto;
mod port;
mod postgres;
mod process;
mod program;
pub mod sinks;
mod timescale;
pub mod tls;

pub use link::{Flapping, Impairment, Link, LinkBuilder, Loss, Outage, Shape};
pub use mosquitto::{adapt_config, password_file, Mosquitto, MosquittoBuilder, ShippedBroker};
pub use port::free_port;
pub use postgres::Postgres;
pub use program::Program;
pub use timescale::Timescale;

/// Why a service could not be started.
#[derive(Debug)]
pub struct ServiceError(pub String);

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServiceError {}

impl From<std::io::Error> for ServiceError {
    fn from(e: std::io::Error) -> Self {
        ServiceError(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, ServiceError>;
