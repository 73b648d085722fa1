//! `fieldlink-demo`: one command that runs a whole Fieldlink system on one machine, with no
//! services installed and nothing configured by hand.
//!
//! What runs, all in this process and under one shutdown:
//! - [`site`]: the device simulator (`fieldlink-sim`) serving the demo site of `site.toml`
//!   over Modbus TCP on a free port, and its serial weather station over a `socat`
//!   pseudo-terminal pair when `socat` is installed ([`pty`]);
//! - the cloud (`fieldlink-cloud`'s [`serve`](fieldlink_cloud::service::serve)) with its
//!   embedded MQTT broker and embedded SQLite store, serving HTTP (the dashboard and the API);
//! - a real agent (`fieldlink-agent`'s [`run`](fieldlink_agent::run::run)) polling the
//!   simulator, journaling into SQLite and publishing to the embedded broker, with the
//!   configuration of `agent.toml` rewritten for the addresses chosen at start ([`agent_config`]);
//! - the alert rules of `alert-rules.toml`, installed into an empty database ([`rules`]).
//!
//! Everything durable lives in one data directory ([`Options::data_dir`]): the cloud's
//! database, the agent's journal, boot counter and command ledger, the operator token
//! ([`token`]) and the configuration file the demo generated. A second start with the same directory continues from it.
//!
//! Stop order on SIGINT or SIGTERM ([`launch`]): the agent (it receives the same signal),
//! so its last readings and its `offline` status reach the broker; then the cloud, which
//! commits what it holds; then the simulator and `socat`.

pub mod agent_config;
pub mod cloud_config;
pub mod launch;
pub mod pty;
pub mod rules;
pub mod site;
pub mod token;

pub use launch::{run, DemoError, Options, Started};

/// The demo site served by the simulator.
pub const SITE_TOML: &str = include_str!("../site.toml");

/// The agent configuration for the demo site, as shipped (default ports and paths).
pub const AGENT_TOML: &str = include_str!("../agent.toml");

/// The gateway id in [`AGENT_TOML`].
pub const GATEWAY_ID: &str = "demo-gw";
