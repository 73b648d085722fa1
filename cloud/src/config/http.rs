//! `[http]` and `[websocket]`: the raw form and its validation into the server's, the API's and
//! the WebSocket's settings. Errors name the key (`http.request_timeout_secs`).

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawHttp {
    pub listen: String,
    /// Browser origins allowed to call the API (`*` for any); empty: same-origin only.
    pub cors_allowed_origins: Vec<String>,
    pub header_read_timeout_secs: u64,
    pub request_timeout_secs: u64,
    pub max_connections: u64,
    pub max_body_bytes: u64,
    pub auth_failures_per_sec: u64,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: "127.0.0.1:8080".into(),
            cors_allowed_origins: Vec::new(),
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 20_000,
            max_body_bytes: 1 << 20,
            auth_failures_per_sec: 100,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawWebSocket {
    pub max_subscriptions_per_connection: u64,
    pub max_subscriptions_per_token: u64,
    pub token_check_ms: u64,
}

impl Default for RawWebSocket {
    fn default() -> Self {
        RawWebSocket {
            max_subscriptions_per_connection: 256,
            max_subscriptions_per_token: 4_096,
            token_check_ms: 500,
        }
    }
}

fn within(
    v: u64,
    range: std::ops::RangeInclusive<u64>,
    path: &'static str,
) -> Result<u64, ConfigError> {
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(invalid(
            path,
            format!("must be within {}..={}", range.start(), range.end()),
        ))
    }
}

/// The HTTP server's settings.
pub fn server(raw: &RawHttp) -> Result<crate::http::ServerSettings, ConfigError> {
    Ok(crate::http::ServerSettings {
        header_read_timeout: Duration::from_secs(within(
            raw.header_read_timeout_secs,
            1..=3_600,
            "http.header_read_timeout_secs",
        )?),
        max_connections: within(raw.max_connections, 1..=1_000_000, "http.max_connections")?
            as usize,
    })
}

/// The API's limits: request time, body size, failed authentications per address.
pub fn limits(raw: &RawHttp) -> Result<crate::http::Limits, ConfigError> {
    let per_sec = within(
        raw.auth_failures_per_sec,
        1..=1_000_000,
        "http.auth_failures_per_sec",
    )?;
    Ok(crate::http::Limits {
        request_timeout: Duration::from_secs(within(
            raw.request_timeout_secs,
            1..=3_600,
            "http.request_timeout_secs",
        )?),
        max_body_bytes: within(raw.max_body_bytes, 1_024..=(1 << 30), "http.max_body_bytes")?
            as usize,
        auth_failures_per_sec: NonZeroU32::new(per_sec as u32)
            .ok_or_else(|| invalid("http.auth_failures_per_sec", "must be greater than zero"))?,
    })
}

/// The WebSocket's caps and how often a connection's token is checked again.
pub fn websocket(raw: &RawWebSocket) -> Result<crate::ws::WsSettings, ConfigError> {
    let per_connection = within(
        raw.max_subscriptions_per_connection,
        1..=1_000_000,
        "websocket.max_subscriptions_per_connection",
    )?;
    let per_token = within(
        raw.max_subscriptions_per_token,
        1..=10_000_000,
        "websocket.max_subscriptions_per_token",
    )?;
    if per_token < per_connection {
        return Err(invalid(
            "websocket.max_subscriptions_per_token",
            "must not be below websocket.max_subscriptions_per_connection",
        ));
    }
    Ok(crate::ws::WsSettings {
        max_subscriptions_per_connection: per_connection as usize,
        max_subscriptions_per_token: per_token as usize,
        token_check: Duration::from_millis(within(
            raw.token_check_ms,
            10..=1_000,
            "websocket.token_check_ms",
        )?),
    })
}
