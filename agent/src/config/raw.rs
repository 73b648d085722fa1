//! The configuration file as written, before validation.
//!
//! These types mirror the TOML one to one. Everything the operator may get wrong stays loose here
//! (strings, plain integers) so that [`super::validate`] can say which key is wrong and why,
//! instead of serde failing on the first mismatch with a position nobody can map back.

use std::path::PathBuf;

use fieldlink_drivers::pointmap::config::{DeviceConfig, TemplateConfig};
use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub gateway: RawGateway,
    #[serde(default)]
    pub mqtt: RawMqtt,
    #[serde(default)]
    pub journal: RawJournal,
    #[serde(default)]
    pub reporting: RawReporting,
    #[serde(default)]
    pub logging: RawLogging,
    /// Kinds of device described once, for `devices` to use by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<TemplateConfig>,
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    /// Becomes the gateway segment of every topic; must be a valid identifier.
    #[serde(default)]
    pub id: String,
    /// Where the boot counter and the command ledger live; defaults to the journal's directory.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// How often the `_gateway` self-telemetry is taken, in seconds.
    #[serde(default)]
    pub self_telemetry_s: Option<u64>,
    /// How long a graceful stop may take before the process exits anyway, in seconds.
    #[serde(default)]
    pub shutdown_grace_s: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// PEM file of the CA that signed the broker's certificate; the system's roots when unset.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Skips server certificate verification. Lab use only; logged loudly at every connect.
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub keep_alive_s: Option<u64>,
    #[serde(default)]
    pub topic_prefix: Option<String>,
    #[serde(default)]
    pub encoding: Option<String>,
    /// Publishes awaiting their PUBACK at most.
    #[serde(default)]
    pub max_in_flight: Option<u64>,
    /// Points per telemetry publish at most.
    #[serde(default)]
    pub batch_max_points: Option<u64>,
    #[serde(default)]
    pub reconnect_min_ms: Option<u64>,
    #[serde(default)]
    pub reconnect_max_ms: Option<u64>,
    /// How long one connection attempt (TCP, TLS, CONNECT and CONNACK) may take.
    #[serde(default)]
    pub connect_timeout_s: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJournal {
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Telemetry older than this is dropped (counted); 0 keeps it until the byte cap.
    #[serde(default)]
    pub max_age_s: Option<u64>,
    /// How often the journal is synced to flash in `normal` durability.
    #[serde(default)]
    pub commit_interval_ms: Option<u64>,
    /// `normal` (sync every commit interval) or `full` (sync every commit).
    #[serde(default)]
    pub durability: Option<String>,
    /// Share of the uplink given to backlog while live data waits, 0 to 1.
    #[serde(default)]
    pub backfill_share: Option<f64>,
}

/// Report-by-exception: defaults plus rules per device or point.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReporting {
    #[serde(flatten)]
    pub defaults: RawReportRule,
    #[serde(default)]
    pub rules: Vec<RawReportRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReportRule {
    /// Rules only: the device the rule is about.
    #[serde(default)]
    pub device: Option<String>,
    /// Rules only: the point; the whole device when unset.
    #[serde(default)]
    pub point: Option<String>,
    /// Send a reading only when it differs from the last one sent.
    #[serde(default)]
    pub on_change: Option<bool>,
    /// A number must move by more than this to count as changed.
    #[serde(default)]
    pub deadband_abs: Option<f64>,
    /// … or by more than this percentage of the last value sent.
    #[serde(default)]
    pub deadband_pct: Option<f64>,
    /// Send the value anyway when nothing was sent for this long, in seconds.
    #[serde(default)]
    pub max_silence_s: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    /// `plain` or `json`.
    #[serde(default)]
    pub format: Option<String>,
    /// A tracing filter such as `info` or `fieldlink_agent=debug,info`.
    #[serde(default)]
    pub level: Option<String>,
}
