//! `fieldlink-agent`: the gateway daemon. It polls field devices through `fieldlink-drivers`,
//! journals every reading in `fieldlink-buffer`, publishes over MQTT (rumqttc, rustls with
//! `ring`) in the `fieldlink-protocol` wire format, and executes and acknowledges commands.
//!
//! The path of a reading, by module:
//! - [`config`]: the TOML file and `FIELDLINK_AGENT__…` overrides, validated once.
//! - [`plant`]: the acquisition running for the configuration in force; swapped on reload.
//! - [`scheduler`]: driver output → clock check → report-by-exception → journal commit.
//! - [`uplink`]: journal → MQTT, a batch deleted only on the PUBACK of the publish that
//!   carried it.
//! - [`commands`]: cloud → ledger → journaled acknowledgement → drivers.
//! - [`health`] and [`notify`]: loop liveness and the systemd watchdog.
//! - [`run`]: wiring and shutdown order.

pub mod clock;
pub mod commands;
pub mod config;
pub mod events;
pub mod health;
pub mod inventory;
pub mod logging;
pub mod notify;
pub mod plant;
pub mod report;
pub mod run;
pub mod scheduler;
pub mod state;
pub mod summary;
pub mod uplink;

pub use inventory::device_points;
