//! Receivers and delivery policy, validated once from the configuration's `[notifications]`
//! (see `crate::config`). Secrets (webhook headers, SMTP password) stay here: the database
//! holds only receiver names.

use std::time::Duration;

use fieldlink_plumbing::backoff::Schedule;

use crate::alerts::Severity;

/// A webhook: `POST url` with the notification as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookReceiver {
    pub name: String,
    pub url: reqwest::Url,
    /// Extra headers (an `Authorization` for the receiver, say), checked as valid HTTP.
    pub headers: Vec<(String, String)>,
    pub min_severity: Severity,
}

/// An email receiver: one message to every address, through the `[notifications.smtp]` relay.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailReceiver {
    pub name: String,
    pub to: Vec<lettre::message::Mailbox>,
    pub min_severity: Severity,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, refused if the server does not offer it.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No TLS: only for a relay on the same host or a trusted network.
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub credentials: Option<(String, String)>,
    pub from: lettre::message::Mailbox,
    /// A PEM CA bundle trusted for the relay's certificate instead of the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
}

/// When a failed delivery is tried again: the schedule's first wait, doubling, at most its cap
/// apart (exact waits: the next attempt's time is stored with the notification); after
/// `max_attempts` attempts the notification is given up (status `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub backoff: Schedule,
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// The wait after the `attempt`-th failed attempt (1-based), or `None` to give up.
    pub fn after(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        Some(self.backoff.ceiling(attempt))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NotifySettings {
    pub webhooks: Vec<WebhookReceiver>,
    pub emails: Vec<EmailReceiver>,
    pub smtp: Option<SmtpSettings>,
    pub retry: RetryPolicy,
    /// One delivery attempt's limit (connect, send, answer).
    pub attempt_timeout: Duration,
    /// Deliveries in flight at once on this instance.
    pub max_in_flight: usize,
    /// How often the outbox is looked at without being told (others' notifications, retries).
    pub poll_interval: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            webhooks: Vec::new(),
            emails: Vec::new(),
            smtp: None,
            retry: RetryPolicy {
                backoff: Schedule::fixed(1_000, 600_000),
                max_attempts: 10,
            },
            attempt_timeout: Duration::from_secs(10),
            max_in_flight: 8,
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl NotifySettings {
    /// Every receiver's name and least severity.
    pub fn routes(&self) -> Vec<(String, Severity)> {
        self.webhooks
            .iter()
            .map(|w| (w.name.clone(), w.min_severity))
            .chain(self.emails.iter().map(|e| (e.name.clone(), e.min_severity)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_then_gives_up() {
        let p = RetryPolicy {
            backoff: Schedule::fixed(1_000, 10_000),
            max_attempts: 6,
        };
        let waits: Vec<Option<u64>> = (1..=6).map(|a| p.after(a).map(|d| d.as_secs())).collect();
        assert_eq!(waits, [Some(1), Some(2), Some(4), Some(8), Some(10), None]);
        let p = RetryPolicy {
            max_attempts: 100,
            ..p
        };
        assert_eq!(p.after(64), Some(Duration::from_secs(10)));
    }
}
