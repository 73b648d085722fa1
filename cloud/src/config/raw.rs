//! The configuration as written: plain serde types, every field defaulted, unknown keys
//! refused. [`super::Settings::from_raw`] turns it into validated types.

use serde::{Deserialize, Serialize};

use crate::store::{InsertPath, TimescaleMode};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub database: RawDatabase,
    pub mqtt: RawMqtt,
    pub ingest: RawIngest,
    pub http: super::http::RawHttp,
    pub websocket: super::http::RawWebSocket,
    pub service: RawService,
    pub commands: RawCommands,
    pub alerts: super::notify::RawAlerts,
    pub notifications: super::notify::RawNotifications,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDatabase {
    pub url: Option<String>,
    pub sqlite_path: String,
    pub timescale: TimescaleMode,
    pub insert_path: InsertPath,
    pub statement_rows: u64,
    pub rollup_interval_secs: u64,
}

impl Default for RawDatabase {
    fn default() -> Self {
        RawDatabase {
            url: None,
            sqlite_path: "fieldlink-cloud.db".into(),
            timescale: TimescaleMode::Auto,
            insert_path: InsertPath::default(),
            statement_rows: 10_000,
            rollup_interval_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMqtt {
    pub url: Option<String>,
    pub embedded_listen: String,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ca_file: Option<String>,
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
    pub keep_alive_secs: u64,
    pub max_packet_bytes: u64,
}

impl Default for RawMqtt {
    fn default() -> Self {
        RawMqtt {
            url: None,
            embedded_listen: "127.0.0.1:1883".into(),
            client_id: "fieldlink-cloud".into(),
            username: None,
            password: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            keep_alive_secs: 30,
            max_packet_bytes: 1 << 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawIngest {
    pub topic_prefix: String,
    pub share_group: Option<String>,
    pub require_registration: bool,
    pub max_future_skew_secs: u64,
    pub flush_max_points: u64,
    pub flush_max_delay_ms: u64,
    pub flush_idle_ms: u64,
    pub queue_messages: u64,
    pub birth_wait_secs: u64,
    pub max_parked_per_gateway: u64,
    pub max_oversized_packet_bytes: u64,
    pub dead_letter_payload_bytes: u64,
    pub dead_letter_max_per_gateway: u64,
    pub dead_letter_retention_days: u64,
    /// A table: last, so that TOML output puts it after the plain keys.
    pub quota: RawQuota,
}

/// `[ingest.quota]`: what each gateway may send.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawQuota {
    pub points_per_s: u64,
    pub messages_per_s: u64,
    pub burst_secs: u64,
    pub grace_secs: u64,
}

impl Default for RawQuota {
    fn default() -> Self {
        RawQuota {
            points_per_s: 100_000,
            messages_per_s: 1_000,
            burst_secs: 10,
            grace_secs: 30,
        }
    }
}

impl Default for RawIngest {
    fn default() -> Self {
        RawIngest {
            topic_prefix: "fieldlink/v1".into(),
            share_group: None,
            require_registration: false,
            max_future_skew_secs: 300,
            flush_max_points: 20_000,
            flush_max_delay_ms: 200,
            flush_idle_ms: 3,
            queue_messages: 1_024,
            birth_wait_secs: 30,
            max_parked_per_gateway: 10_000,
            max_oversized_packet_bytes: 268_435_455,
            dead_letter_payload_bytes: 4_096,
            dead_letter_max_per_gateway: 10_000,
            dead_letter_retention_days: 7,
            quota: RawQuota::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawService {
    pub shutdown_grace_secs: u64,
}

impl Default for RawService {
    fn default() -> Self {
        RawService {
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCommands {
    pub default_ttl_secs: u64,
    pub max_ttl_secs: u64,
}

impl Default for RawCommands {
    fn default() -> Self {
        RawCommands {
            default_ttl_secs: 300,
            max_ttl_secs: 86_400,
        }
    }
}
