//! The agent's configuration: one TOML file, overridable key by key from the environment,
//! parsed once into the validated [`AgentConfig`].
//!
//! Loading goes file → `FIELDLINK_AGENT__SECTION__KEY` environment variables (so
//! `FIELDLINK_AGENT__MQTT__URL` replaces `[mqtt] url`) → [`raw::RawConfig`] → [`validate`].
//! Validation reports every problem at once, each with the path of its key; nothing after this
//! module ever meets an unchecked value. A reload (SIGHUP or an `apply_config` command) goes
//! through exactly the same steps, so a configuration that would not start the agent is never
//! swapped in. A configuration applied from the cloud is kept in the state directory, never
//! written over the operator's file ([`applied`]).

pub mod applied;
mod error;
pub mod raw;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use fieldlink_buffer::{Caps, Durability};
use fieldlink_drivers::PointMap;
use fieldlink_plumbing::backoff::Schedule;
use fieldlink_protocol::{Encoding, Ident, TopicPrefix};

pub use error::{ConfigError, ConfigProblem};
pub use raw::RawConfig;
pub use validate::{log_filter, validate};

/// Where the agent looks for its file when none is given.
pub const DEFAULT_PATH: &str = "/etc/fieldlink/agent.toml";

/// The commented example printed by `print-default-config`; it is also the shipped example file.
pub const EXAMPLE: &str = include_str!("../../agent.example.toml");

/// Prefix of the environment variables that override keys.
pub const ENV_PREFIX: &str = "FIELDLINK_AGENT";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub gateway: Ident,
    pub state_dir: PathBuf,
    pub self_telemetry_interval: Duration,
    pub shutdown_grace: Duration,
    pub mqtt: MqttConfig,
    pub journal: JournalSettings,
    pub reporting: crate::report::ReportRules,
    pub logging: LoggingConfig,
    pub point_map: PointMap,
    /// The file as parsed, kept so a new configuration can be compared and hashed.
    pub raw: RawConfig,
    /// Short hash of the configuration in force, announced in the birth message.
    pub hash: String,
}

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub tls: Option<TlsSettings>,
    pub client_id: String,
    pub credentials: Option<(String, String)>,
    pub keep_alive: Duration,
    pub prefix: TopicPrefix,
    pub encoding: Encoding,
    pub max_in_flight: usize,
    pub batch_max_points: usize,
    /// Waits between connection attempts (jittered).
    pub reconnect: Schedule,
    /// How long one connection attempt may take before it is given up and backed off.
    pub connect_timeout: Duration,
}

/// TLS for `mqtts://` URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The CA file, or `None` for the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Certificate and key for mutual TLS.
    pub client_auth: Option<(PathBuf, PathBuf)>,
    /// Server verification off: lab use only.
    pub insecure: bool,
}

/// The journal as the agent opens it.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalSettings {
    pub path: PathBuf,
    pub caps: Caps,
    pub commit_interval: Duration,
    pub durability: Durability,
    pub backfill_share: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingConfig {
    pub format: LogFormat,
    pub level: String,
}

fn environment() -> config::Environment {
    config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
}

fn build(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
) -> Result<RawConfig, ConfigError> {
    builder
        .add_source(environment())
        .build()
        .and_then(|c| c.try_deserialize::<RawConfig>())
        .map_err(|e| ConfigError::Load(e.to_string()))
}

/// Checks TOML text against the configuration's types strictly, before the environment is laid
/// over it: a string where a number belongs is an error here (the `config` crate would coerce
/// it), named by its dotted key path and line. Environment values are text by nature and are
/// parsed by the `config` crate afterwards.
fn check_types(text: &str, origin: &str) -> Result<(), ConfigError> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| ConfigError::Load(format!("{origin}: {}", e.to_string().trim_end())))?;
    serde_path_to_error::deserialize::<_, RawConfig>(de)
        .map(|_| ())
        .map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            ConfigError::Load(format!("{origin}: {path}: {}", inner.trim_end()))
        })
}

/// Reads `path` with environment overrides, without validating.
pub fn load_raw(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Load(format!("{}: {e}", path.display())))?;
    check_types(&text, &path.display().to_string())?;
    let file = config::File::from_str(&text, config::FileFormat::Toml);
    build(config::Config::builder().add_source(file))
}

/// Reads TOML text (an `apply_config` command's document) with environment overrides.
pub fn parse_raw(text: &str) -> Result<RawConfig, ConfigError> {
    check_types(text, "the configuration")?;
    let file = config::File::from_str(text, config::FileFormat::Toml);
    build(config::Config::builder().add_source(file))
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
    validate(load_raw(path)?)
}

/// Parses and validates TOML text.
pub fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
    validate(parse_raw(text)?)
}

/// 64-bit FNV-1a, hex: a stable short fingerprint (not a security measure).
pub(crate) fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}
