//! `[alerts]` and `[notifications]`: the raw form and its validation into
//! [`crate::notify::NotifySettings`]. Errors name the key, with the receiver's index
//! (`notifications.webhook[1].url`).

use std::time::Duration;

use fieldlink_plumbing::backoff::Schedule;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::alerts::Severity;
use crate::notify::{
    EmailReceiver, NotifySettings, RetryPolicy, SmtpSecurity, SmtpSettings, WebhookReceiver,
};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAlerts {
    /// How often no_data and gateway_offline rules are checked.
    pub check_interval_ms: u64,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            check_interval_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawNotifications {
    pub max_in_flight: u64,
    pub attempt_timeout_secs: u64,
    pub max_attempts: u64,
    pub retry_initial_ms: u64,
    pub retry_max_secs: u64,
    pub poll_interval_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp: Option<RawSmtp>,
    pub webhook: Vec<RawWebhook>,
    pub email: Vec<RawEmail>,
}

impl Default for RawNotifications {
    fn default() -> Self {
        RawNotifications {
            max_in_flight: 8,
            attempt_timeout_secs: 10,
            max_attempts: 10,
            retry_initial_ms: 1_000,
            retry_max_secs: 600,
            poll_interval_ms: 1_000,
            smtp: None,
            webhook: Vec::new(),
            email: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub host: String,
    pub port: Option<u16>,
    /// "starttls" (default), "tls" or "none".
    #[serde(default = "starttls")]
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    /// A PEM CA bundle to trust for the relay instead of the system's roots.
    pub ca_file: Option<String>,
}

fn starttls() -> SmtpSecurity {
    SmtpSecurity::Starttls
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(default = "info")]
    pub min_severity: Severity,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub name: String,
    pub to: Vec<String>,
    #[serde(default = "info")]
    pub min_severity: Severity,
}

fn info() -> Severity {
    Severity::Info
}

fn at(path: String, reason: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        path,
        reason: reason.into(),
    }
}

fn nonzero(v: u64, path: &str) -> Result<u64, ConfigError> {
    if v == 0 {
        Err(at(path.to_string(), "must be greater than zero"))
    } else {
        Ok(v)
    }
}

/// The interval of the timer rules' checks.
pub fn check_interval(a: &RawAlerts) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(nonzero(
        a.check_interval_ms,
        "alerts.check_interval_ms",
    )?))
}

pub fn notify_settings(n: &RawNotifications) -> Result<NotifySettings, ConfigError> {
    let mut names: Vec<String> = Vec::new();
    let mut name = |n: &str, path: String| -> Result<String, ConfigError> {
        fieldlink_protocol::Ident::validate(n).map_err(|e| at(path.clone(), e.to_string()))?;
        if names.iter().any(|x| x == n) {
            return Err(at(path, format!("{n:?} names another receiver too")));
        }
        names.push(n.to_string());
        Ok(n.to_string())
    };
    let mut webhooks = Vec::new();
    for (i, w) in n.webhook.iter().enumerate() {
        let p = format!("notifications.webhook[{i}]");
        let name = name(&w.name, format!("{p}.name"))?;
        let url = reqwest::Url::parse(&w.url)
            .map_err(|e| at(format!("{p}.url"), format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(at(
                format!("{p}.url"),
                "must be http:// or https:// with a host",
            ));
        }
        let mut headers = Vec::new();
        for (k, v) in &w.headers {
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                at(
                    format!("{p}.headers"),
                    format!("{k:?} is not a header name"),
                )
            })?;
            reqwest::header::HeaderValue::from_str(v)
                .map_err(|_| at(format!("{p}.headers.{k}"), "not a valid header value"))?;
            headers.push((k.clone(), v.clone()));
        }
        webhooks.push(WebhookReceiver {
            name,
            url,
            headers,
            min_severity: w.min_severity,
        });
    }
    let mut emails = Vec::new();
    for (i, m) in n.email.iter().enumerate() {
        let p = format!("notifications.email[{i}]");
        let name = name(&m.name, format!("{p}.name"))?;
        if m.to.is_empty() {
            return Err(at(format!("{p}.to"), "needs at least one address"));
        }
        let mut to = Vec::new();
        for (j, addr) in m.to.iter().enumerate() {
            to.push(
                addr.parse::<lettre::message::Mailbox>()
                    .map_err(|e| at(format!("{p}.to[{j}]"), format!("{addr:?}: {e}")))?,
            );
        }
        emails.push(EmailReceiver {
            name,
            to,
            min_severity: m.min_severity,
        });
    }
    let smtp = match &n.smtp {
        None if !emails.is_empty() => {
            return Err(at(
                "notifications.smtp".into(),
                "required by the email receivers",
            ))
        }
        None => None,
        Some(s) => {
            if s.host.trim().is_empty() {
                return Err(at("notifications.smtp.host".into(), "must not be empty"));
            }
            let from = s.from.parse::<lettre::message::Mailbox>().map_err(|e| {
                at(
                    "notifications.smtp.from".into(),
                    format!("{:?}: {e}", s.from),
                )
            })?;
            let credentials = match (&s.username, &s.password) {
                (Some(u), Some(p)) => Some((u.clone(), p.clone())),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(at(
                        "notifications.smtp.password".into(),
                        "required with username",
                    ))
                }
                (None, Some(_)) => {
                    return Err(at(
                        "notifications.smtp.username".into(),
                        "required with password",
                    ))
                }
            };
            if credentials.is_some() && s.security == SmtpSecurity::None {
                return Err(at(
                    "notifications.smtp.security".into(),
                    "\"none\" would send the password in clear; use starttls or tls",
                ));
            }
            Some(SmtpSettings {
                host: s.host.clone(),
                port: s.port.unwrap_or(match s.security {
                    SmtpSecurity::Starttls => 587,
                    SmtpSecurity::Tls => 465,
                    SmtpSecurity::None => 25,
                }),
                security: s.security,
                credentials,
                from,
                ca_file: match (&s.ca_file, s.security) {
                    (Some(_), SmtpSecurity::None) => {
                        return Err(at(
                            "notifications.smtp.ca_file".into(),
                            "set, but security is \"none\"",
                        ))
                    }
                    (ca, _) => ca.as_ref().map(std::path::PathBuf::from),
                },
            })
        }
    };
    let initial = Duration::from_millis(nonzero(
        n.retry_initial_ms,
        "notifications.retry_initial_ms",
    )?);
    let max = Duration::from_secs(nonzero(n.retry_max_secs, "notifications.retry_max_secs")?);
    // `nonzero` has made both at least a millisecond: only the order can be wrong.
    let backoff = Schedule::new(initial, max).map_err(|_| {
        at(
            "notifications.retry_max_secs".into(),
            "must not be below retry_initial_ms",
        )
    })?;
    Ok(NotifySettings {
        webhooks,
        emails,
        smtp,
        retry: RetryPolicy {
            backoff,
            max_attempts: nonzero(n.max_attempts, "notifications.max_attempts")?.min(1_000) as u32,
        },
        attempt_timeout: Duration::from_secs(nonzero(
            n.attempt_timeout_secs,
            "notifications.attempt_timeout_secs",
        )?),
        max_in_flight: nonzero(n.max_in_flight, "notifications.max_in_flight")?.min(1_024) as usize,
        poll_interval: Duration::from_millis(nonzero(
            n.poll_interval_ms,
            "notifications.poll_interval_ms",
        )?),
    })
}
