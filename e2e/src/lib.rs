//! `fieldlink-e2e`: the whole Fieldlink chain, each part the real thing, for the end-to-end
//! tests under `tests/` and the command benchmark under `benches/`.
//!
//! ```text
//! simulator ──Modbus TCP──▶ fieldlink-agent (child process, SQLite journal)
//!     ▲                            │ MQTT
//!     │ write                      ▼
//!     └──── agent ◀── cmd ──  Mosquitto ──▶ fieldlink-cloud (in this process) ──▶ PostgreSQL
//!                                                  │
//!                                      REST and WebSocket ◀── the test
//! ```
//!
//! - [`site`]: the device simulator (`fieldlink-sim`) serving one pump station over Modbus TCP
//!   on a free port, and the agent's point map for it; the test moves a value through the
//!   simulator's own control path and reads written registers back from it.
//! - [`agent`]: the `fieldlink-agent` binary of this workspace (built on first use when the
//!   test binary's profile directory lacks it), run as a child process with its journal,
//!   boot counter and command ledger in a temporary directory.
//! - [`cloud`]: `fieldlink-cloud`'s service (`service::serve`, configured from TOML) on a
//!   PostgreSQL of its own (`fieldlink-testkit`) and an external Mosquitto (`fieldlink-testkit`),
//!   with API tokens of each role.
//! - [`http`] and [`ws`]: the dashboard developer's view: REST requests and a WebSocket feed
//!   that records every message with the time it arrived.
//! - [`System`]: all of the above started in order and stopped on drop.
//! - [`fleet`] and [`hostile`]: for the isolation tests (issue 14): two honest sites behind
//!   real agents, the cloud binary as a child process on Mosquitto with the shipped
//!   configuration and ACL or on its embedded broker, an attacker holding a third gateway's
//!   credentials, and the probe that measures the honest gateways' ingest lag, the cloud's
//!   memory and readiness.
//! - [`binaries`]: this workspace's binaries (agent, cloud), built when stale.

pub mod agent;
pub mod binaries;
pub mod cloud;
pub mod fleet;
pub mod hostile;
pub mod http;
pub mod site;
pub mod system;
pub mod ws;

pub use system::System;

use std::future::Future;
use std::time::Duration;

/// Polls `probe` every 20 ms until it returns `Some`; panics after `limit` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A multi-threaded runtime for a test or the benchmark.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
