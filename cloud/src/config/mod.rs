//! Configuration: a TOML file and `FIELDLINK_CLOUD__SECTION__KEY` environment variables, read
//! once at start into validated types. Every error names the path of the key at fault
//! (`mqtt.url`, `ingest.flush_max_points`); the binary exits with code 2 on any of them.

mod http;
mod notify;
mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fieldlink_protocol::{Ident, TopicPrefix};

pub use raw::RawConfig;

use crate::ingest::{FlushPolicy, IngestSettings, MqttSettings, QuotaSettings, TlsSettings};
use crate::store::StoreSpec;

/// The shipped default configuration, with comments: `print-default-config` prints it.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Environment variables starting with this (then `__`) override the file.
pub const ENV_PREFIX: &str = "FIELDLINK_CLOUD";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Load(#[from] config::ConfigError),
    #[error("{path}: {reason}")]
    Invalid { path: &'static str, reason: String },
    /// A key whose path is built from indexes (`notifications.webhook[1].url`).
    #[error("{path}: {reason}")]
    Key { path: String, reason: String },
}

fn invalid(path: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path,
        reason: reason.into(),
    }
}

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerSettings {
    /// Run rumqttd in this process, listening here.
    Embedded { listen: SocketAddr },
    /// Connect to an external broker; host and port in the settings.
    External,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub store: StoreSpec,
    pub rollup_interval: Duration,
    pub broker: BrokerSettings,
    pub mqtt: MqttSettings,
    pub ingest: IngestSettings,
    pub http_listen: SocketAddr,
    /// Timeouts and the connection cap of the HTTP server.
    pub http_server: crate::http::ServerSettings,
    pub shutdown_grace: Duration,
    /// The REST/WebSocket API's settings.
    pub api: crate::api::ApiSettings,
    pub commands: crate::commands::CommandSettings,
    /// How often no_data and gateway_offline rules are checked.
    pub alert_check_interval: Duration,
    pub notifications: crate::notify::NotifySettings,
}

impl Settings {
    /// Reads `file` (when given; it must exist) and the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::from_raw(load_raw(file, std::env::vars())?)
    }

    pub fn from_raw(raw: RawConfig) -> Result<Settings, ConfigError> {
        let store = match &raw.database.url {
            Some(url) if !url.starts_with("postgres://") && !url.starts_with("postgresql://") => {
                return Err(invalid(
                    "database.url",
                    "must start with postgres:// or postgresql://",
                ))
            }
            Some(url) => StoreSpec::Postgres {
                url: url.clone(),
                timescale: raw.database.timescale,
                insert_path: raw.database.insert_path,
                statement_rows: positive(raw.database.statement_rows, "database.statement_rows")?
                    as usize,
            },
            None if raw.database.sqlite_path.is_empty() => {
                return Err(invalid("database.sqlite_path", "must not be empty"))
            }
            None => StoreSpec::Sqlite {
                path: PathBuf::from(&raw.database.sqlite_path),
            },
        };
        let rollup_interval = Duration::from_secs(positive(
            raw.database.rollup_interval_secs,
            "database.rollup_interval_secs",
        )?);

        let m = &raw.mqtt;
        if m.client_id.is_empty() || m.client_id.starts_with(' ') || m.client_id.len() > 128 {
            return Err(invalid(
                "mqtt.client_id",
                "must be 1 to 128 characters and not start with a space",
            ));
        }
        let (broker, host, port, tls_wanted) = match &m.url {
            None => {
                let listen: SocketAddr = m.embedded_listen.parse().map_err(|e| {
                    invalid("mqtt.embedded_listen", format!("not an address:port: {e}"))
                })?;
                let host = if listen.ip().is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    listen.ip().to_string()
                };
                (
                    BrokerSettings::Embedded { listen },
                    host,
                    listen.port(),
                    false,
                )
            }
            Some(url) => {
                let (host, port, tls) = parse_broker_url(url)?;
                (BrokerSettings::External, host, port, tls)
            }
        };
        if !tls_wanted && m.ca_file.is_some() {
            return Err(invalid("mqtt.ca_file", "set, but mqtt.url is not mqtts://"));
        }
        let tls = if tls_wanted {
            let ca = m
                .ca_file
                .as_ref()
                .ok_or_else(|| invalid("mqtt.ca_file", "required with an mqtts:// url"))?;
            let client_cert = match (&m.client_cert_file, &m.client_key_file) {
                (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(invalid(
                        "mqtt.client_key_file",
                        "required with client_cert_file",
                    ))
                }
                (None, Some(_)) => {
                    return Err(invalid(
                        "mqtt.client_cert_file",
                        "required with client_key_file",
                    ))
                }
            };
            Some(TlsSettings {
                ca_file: PathBuf::from(ca),
                client_cert,
            })
        } else {
            None
        };
        let credentials = match (&m.username, &m.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            (Some(u), None) => Some((u.clone(), String::new())),
            (None, Some(_)) => return Err(invalid("mqtt.username", "required with mqtt.password")),
            (None, None) => None,
        };
        let max_packet_bytes = positive(m.max_packet_bytes, "mqtt.max_packet_bytes")? as usize;
        if max_packet_bytes <= fieldlink_protocol::limits::MAX_PAYLOAD_BYTES {
            return Err(invalid(
                "mqtt.max_packet_bytes",
                format!(
                    "must exceed the protocol's payload limit of {} bytes, so oversized payloads are dead-lettered instead of breaking the connection",
                    fieldlink_protocol::limits::MAX_PAYLOAD_BYTES
                ),
            ));
        }
        if matches!(broker, BrokerSettings::Embedded { .. })
            && max_packet_bytes
                < crate::broker::MAX_PACKET_BYTES + crate::broker::HEADER_SLACK_BYTES
        {
            return Err(invalid(
                "mqtt.max_packet_bytes",
                format!(
                    "must be at least {} bytes with the embedded broker, which takes packets of up to {} bytes from gateways and forwards them",
                    crate::broker::MAX_PACKET_BYTES + crate::broker::HEADER_SLACK_BYTES,
                    crate::broker::MAX_PACKET_BYTES
                ),
            ));
        }
        let keep_alive = Duration::from_secs(m.keep_alive_secs);
        if !(5..=3_600).contains(&m.keep_alive_secs) {
            return Err(invalid("mqtt.keep_alive_secs", "must be within 5..=3600"));
        }
        let mqtt = MqttSettings {
            host,
            port,
            client_id: m.client_id.clone(),
            credentials,
            tls,
            keep_alive,
            max_packet_bytes,
        };

        let i = &raw.ingest;
        let prefix = TopicPrefix::new(&i.topic_prefix)
            .map_err(|e| invalid("ingest.topic_prefix", e.to_string()))?;
        let share_group = match &i.share_group {
            None => None,
            Some(g) => {
                Ident::validate(g).map_err(|e| invalid("ingest.share_group", e.to_string()))?;
                Some(g.clone())
            }
        };
        let shutdown_grace = Duration::from_secs(raw.service.shutdown_grace_secs);
        let ingest = IngestSettings {
            prefix,
            share_group,
            require_registration: i.require_registration,
            max_future_skew: Duration::from_secs(i.max_future_skew_secs),
            flush: FlushPolicy {
                max_points: positive(i.flush_max_points, "ingest.flush_max_points")? as usize,
                max_delay: Duration::from_millis(positive(
                    i.flush_max_delay_ms,
                    "ingest.flush_max_delay_ms",
                )?),
                idle: Duration::from_millis(positive(i.flush_idle_ms, "ingest.flush_idle_ms")?),
            },
            queue_messages: positive(i.queue_messages, "ingest.queue_messages")? as usize,
            shutdown_grace,
            birth_wait: Duration::from_secs(i.birth_wait_secs),
            max_parked_per_gateway: positive(
                i.max_parked_per_gateway,
                "ingest.max_parked_per_gateway",
            )? as usize,
            quota: quota_settings(&i.quota)?,
            max_oversized_packet_bytes: {
                let cap = i.max_oversized_packet_bytes;
                if cap < max_packet_bytes as u64 || cap > 268_435_455 {
                    return Err(invalid(
                        "ingest.max_oversized_packet_bytes",
                        format!(
                            "must be within mqtt.max_packet_bytes ({max_packet_bytes}) and MQTT's largest packet (268435455)"
                        ),
                    ));
                }
                cap as usize
            },
            dead_letters: crate::store::DeadLetterLimits {
                payload_bytes: {
                    let n = i.dead_letter_payload_bytes;
                    let max = crate::store::DeadLetter::MAX_PREFIX_BYTES as u64;
                    if n > max {
                        return Err(invalid(
                            "ingest.dead_letter_payload_bytes",
                            format!("must be at most {max}"),
                        ));
                    }
                    n as usize
                },
                per_gateway: positive(
                    i.dead_letter_max_per_gateway,
                    "ingest.dead_letter_max_per_gateway",
                )?,
                retention: Duration::from_secs(
                    positive(
                        i.dead_letter_retention_days,
                        "ingest.dead_letter_retention_days",
                    )?
                    .saturating_mul(86_400),
                ),
            },
        };
        let http_listen = raw
            .http
            .listen
            .parse()
            .map_err(|e| invalid("http.listen", format!("not an address:port: {e}")))?;
        for origin in &raw.http.cors_allowed_origins {
            if origin != "*" && !origin.starts_with("http://") && !origin.starts_with("https://") {
                return Err(invalid(
                    "http.cors_allowed_origins",
                    format!(
                        "{origin:?}: expected \"*\" or an origin such as https://dash.example.com"
                    ),
                ));
            }
        }
        let api = crate::api::ApiSettings {
            cors: crate::auth::Cors {
                allowed_origins: raw.http.cors_allowed_origins.clone(),
            },
            limits: http::limits(&raw.http)?,
            websocket: http::websocket(&raw.websocket)?,
        };
        let http_server = http::server(&raw.http)?;
        let c = &raw.commands;
        let max_ttl = positive(c.max_ttl_secs, "commands.max_ttl_secs")?;
        let default_ttl = positive(c.default_ttl_secs, "commands.default_ttl_secs")?;
        if default_ttl > max_ttl {
            return Err(invalid(
                "commands.default_ttl_secs",
                "must not exceed commands.max_ttl_secs",
            ));
        }
        let commands = crate::commands::CommandSettings {
            prefix: ingest.prefix.clone(),
            default_ttl: Duration::from_secs(default_ttl),
            max_ttl: Duration::from_secs(max_ttl),
            expiry_check: Duration::from_secs(1),
        };
        let alert_check_interval = notify::check_interval(&raw.alerts)?;
        let notifications = notify::notify_settings(&raw.notifications)?;
        Ok(Settings {
            alert_check_interval,
            notifications,
            api,
            commands,
            store,
            rollup_interval,
            broker,
            mqtt,
            ingest,
            http_listen,
            http_server,
            shutdown_grace,
        })
    }
}

fn quota_settings(q: &raw::RawQuota) -> Result<QuotaSettings, ConfigError> {
    let rate = |v: u64, path: &'static str| {
        u32::try_from(positive(v, path)?)
            .map_err(|_| invalid(path, format!("must be at most {}", u32::MAX)))
    };
    Ok(QuotaSettings {
        points_per_s: rate(q.points_per_s, "ingest.quota.points_per_s")?,
        messages_per_s: rate(q.messages_per_s, "ingest.quota.messages_per_s")?,
        burst: Duration::from_secs(positive(q.burst_secs, "ingest.quota.burst_secs")?),
        grace: Duration::from_secs(q.grace_secs),
    })
}

fn positive(v: u64, path: &'static str) -> Result<u64, ConfigError> {
    if v == 0 {
        Err(invalid(path, "must be greater than zero"))
    } else {
        Ok(v)
    }
}

/// `mqtt://host[:port]` or `mqtts://host[:port]` → (host, port, tls).
fn parse_broker_url(url: &str) -> Result<(String, u16, bool), ConfigError> {
    let (rest, tls, default_port) = if let Some(r) = url.strip_prefix("mqtts://") {
        (r, true, 8883)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (r, false, 1883)
    } else {
        return Err(invalid("mqtt.url", "must start with mqtt:// or mqtts://"));
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(invalid(
            "mqtt.url",
            "expected host[:port] after the scheme (credentials go in mqtt.username/password)",
        ));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| invalid("mqtt.url", "unclosed [ in the host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("mqtt.url", "no host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse()
            .map_err(|_| invalid("mqtt.url", format!("port {p:?} is not a number")))?,
    };
    Ok((host.to_string(), port, tls))
}

/// Reads the file and the given environment into the raw form. The environment is passed in
/// so tests need not touch the process's own.
pub fn load_raw(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<RawConfig, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        builder = builder.add_source(
            config::File::from(path)
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    let vars: std::collections::HashMap<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(vars)),
    );
    Ok(builder.build()?.try_deserialize::<RawConfig>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        Settings::from_raw(load_raw(Some(&path), Vec::new())?)
    }

    #[test]
    fn the_shipped_default_is_valid_and_equals_the_built_in_defaults() {
        let s = from_toml(DEFAULT_TOML).unwrap();
        assert!(matches!(s.store, StoreSpec::Sqlite { .. }));
        assert!(matches!(s.broker, BrokerSettings::Embedded { .. }));
        let from_file = load_raw_from_str(DEFAULT_TOML);
        let built_in = toml::to_string(&RawConfig::default()).unwrap();
        assert_eq!(toml::to_string(&from_file).unwrap(), built_in);
    }

    fn load_raw_from_str(text: &str) -> RawConfig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        load_raw(Some(&path), Vec::new()).unwrap()
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = vec![
            (
                "FIELDLINK_CLOUD__DATABASE__URL".to_string(),
                "postgres://u@h/db".to_string(),
            ),
            (
                "FIELDLINK_CLOUD__INGEST__FLUSH_MAX_POINTS".to_string(),
                "500".to_string(),
            ),
            (
                "FIELDLINK_CLOUD__MQTT__URL".to_string(),
                "mqtt://broker:1884".to_string(),
            ),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let s = Settings::from_raw(load_raw(None, env).unwrap()).unwrap();
        assert!(
            matches!(s.store, StoreSpec::Postgres { ref url, .. } if url == "postgres://u@h/db")
        );
        assert_eq!(s.ingest.flush.max_points, 500);
        assert_eq!((s.mqtt.host.as_str(), s.mqtt.port), ("broker", 1884));
        assert_eq!(s.broker, BrokerSettings::External);
    }

    #[test]
    fn errors_name_the_path() {
        let cases = [
            ("[mqtt]\nurl = \"http://x\"", "mqtt.url"),
            ("[mqtt]\nurl = \"mqtts://x\"", "mqtt.ca_file"),
            ("[ingest]\nflush_max_points = 0", "ingest.flush_max_points"),
            ("[ingest]\nshare_group = \"a/b\"", "ingest.share_group"),
            ("[ingest]\ntopic_prefix = \"a/+/b\"", "ingest.topic_prefix"),
            ("[http]\nlisten = \"nowhere\"", "http.listen"),
            ("[http]\nrequest_timeout_secs = 0", "http.request_timeout_secs"),
            ("[http]\nheader_read_timeout_secs = 0", "http.header_read_timeout_secs"),
            ("[http]\nmax_connections = 0", "http.max_connections"),
            ("[http]\nmax_body_bytes = 10", "http.max_body_bytes"),
            ("[http]\nauth_failures_per_sec = 0", "http.auth_failures_per_sec"),
            (
                "[websocket]\nmax_subscriptions_per_connection = 0",
                "websocket.max_subscriptions_per_connection",
            ),
            (
                "[websocket]\nmax_subscriptions_per_connection = 10\nmax_subscriptions_per_token = 5",
                "websocket.max_subscriptions_per_token",
            ),
            ("[websocket]\ntoken_check_ms = 5000", "websocket.token_check_ms"),
            ("[database]\nurl = \"mysql://x\"", "database.url"),
            ("[mqtt]\nmax_packet_bytes = 1000", "mqtt.max_packet_bytes"),
            // Over the protocol's limit, but under what the embedded broker forwards.
            ("[mqtt]\nmax_packet_bytes = 270000", "mqtt.max_packet_bytes"),
            (
                "[ingest]\nmax_oversized_packet_bytes = 1000",
                "ingest.max_oversized_packet_bytes",
            ),
            (
                "[ingest]\ndead_letter_payload_bytes = 70000",
                "ingest.dead_letter_payload_bytes",
            ),
            (
                "[ingest]\ndead_letter_max_per_gateway = 0",
                "ingest.dead_letter_max_per_gateway",
            ),
            (
                "[ingest]\ndead_letter_retention_days = 0",
                "ingest.dead_letter_retention_days",
            ),
            (
                "[alerts]\ncheck_interval_ms = 0",
                "alerts.check_interval_ms",
            ),
            (
                "[[notifications.webhook]]\nname = \"ops\"\nurl = \"ftp://x\"",
                "notifications.webhook[0].url",
            ),
            (
                "[[notifications.webhook]]\nname = \"ops\"\nurl = \"http://x\"\n\
                 [[notifications.webhook]]\nname = \"ops\"\nurl = \"http://y\"",
                "notifications.webhook[1].name",
            ),
            (
                "[[notifications.webhook]]\nname = \"ops\"\nurl = \"http://x\"\n\
                 headers = { \"a b\" = \"c\" }",
                "notifications.webhook[0].headers",
            ),
            (
                "[[notifications.email]]\nname = \"m\"\nto = [\"a@b.example\"]",
                "notifications.smtp",
            ),
            (
                "[[notifications.email]]\nname = \"m\"\nto = [\"a@b.example\", \"nobody\"]\n\
                 [notifications.smtp]\nhost = \"h\"\nfrom = \"f@h.example\"",
                "notifications.email[0].to[1]",
            ),
            (
                "[notifications.smtp]\nhost = \"h\"\nfrom = \"f@h.example\"\n\
                 security = \"none\"\nusername = \"u\"\npassword = \"p\"",
                "notifications.smtp.security",
            ),
            (
                "[notifications]\nretry_initial_ms = 5000\nretry_max_secs = 1",
                "notifications.retry_max_secs",
            ),
        ];
        for (text, path) in cases {
            let err = from_toml(text).unwrap_err().to_string();
            assert!(err.starts_with(path), "{text:?} gave {err:?}");
        }
        let err = from_toml("[ingest]\nflush_max_points = \"many\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("flush_max_points"), "{err}");
        let err = from_toml("[ingest]\nflush_max_pints = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("flush_max_pints"), "{err}");
    }

    #[test]
    fn receivers_are_read() {
        let s = from_toml(
            "[[notifications.webhook]]\nname = \"ops\"\nurl = \"https://h.example/x\"\n\
             headers = { Authorization = \"Bearer t\" }\nmin_severity = \"warning\"\n\
             [[notifications.email]]\nname = \"oncall\"\nto = [\"On Call <oc@h.example>\"]\n\
             [notifications.smtp]\nhost = \"127.0.0.1\"\nport = 2525\nsecurity = \"none\"\n\
             from = \"fieldlink@h.example\"",
        )
        .unwrap();
        let n = &s.notifications;
        assert_eq!(n.webhooks[0].url.as_str(), "https://h.example/x");
        assert_eq!(n.webhooks[0].min_severity, crate::alerts::Severity::Warning);
        assert_eq!(n.emails[0].to.len(), 1);
        let smtp = n.smtp.as_ref().unwrap();
        assert_eq!(
            (smtp.port, smtp.security),
            (2525, crate::notify::SmtpSecurity::None)
        );
        let routes: Vec<String> = n.routes().into_iter().map(|(r, _)| r).collect();
        assert_eq!(routes, ["ops", "oncall"]);
    }

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker_url("mqtt://h").unwrap(),
            ("h".into(), 1883, false)
        );
        assert_eq!(
            parse_broker_url("mqtts://h:9").unwrap(),
            ("h".into(), 9, true)
        );
        assert_eq!(
            parse_broker_url("mqtt://[::1]:7").unwrap(),
            ("::1".into(), 7, false)
        );
        assert!(parse_broker_url("mqtt://u:p@h").is_err());
        assert!(parse_broker_url("mqtt://h:x").is_err());
    }
}
