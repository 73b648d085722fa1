//! One delivery attempt to one receiver: a webhook `POST` (reqwest over rustls with the ring
//! provider) or an email (lettre over SMTP: STARTTLS, TLS, or plain for a local relay).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::settings::{NotifySettings, SmtpSecurity, SmtpSettings};
use super::NotifyError;
use crate::alerts::NotificationBody;

/// What an attempt came to: `Ok` with the receiver's answer, or `Err` with why it failed.
pub type AttemptResult = Result<String, String>;

/// The clients, built once.
pub struct Deliverer {
    http: reqwest::Client,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

fn smtp_transport(
    s: &SmtpSettings,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, NotifyError> {
    let tls = |e: lettre::transport::smtp::Error| NotifyError::Smtp(e.to_string());
    let params = |ca: &std::path::Path| -> Result<TlsParameters, NotifyError> {
        let pem = std::fs::read(ca).map_err(|e| {
            NotifyError::Smtp(format!("notifications.smtp.ca_file {}: {e}", ca.display()))
        })?;
        let cert = Certificate::from_pem(&pem).map_err(|e| {
            NotifyError::Smtp(format!("notifications.smtp.ca_file {}: {e}", ca.display()))
        })?;
        TlsParameters::builder(s.host.clone())
            .add_root_certificate(cert)
            .build_rustls()
            .map_err(tls)
    };
    let mut b = match (s.security, &s.ca_file) {
        (SmtpSecurity::None, _) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
        (SmtpSecurity::Starttls, None) => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host).map_err(tls)?
        }
        (SmtpSecurity::Tls, None) => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host).map_err(tls)?
        }
        (SmtpSecurity::Starttls, Some(ca)) => {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
                .tls(Tls::Required(params(ca)?))
        }
        (SmtpSecurity::Tls, Some(ca)) => {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
                .tls(Tls::Wrapper(params(ca)?))
        }
    }
    .port(s.port)
    .timeout(Some(timeout));
    if let Some((user, password)) = &s.credentials {
        b = b.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(b.build())
}

impl Deliverer {
    pub fn new(settings: &NotifySettings) -> Result<Deliverer, NotifyError> {
        // rustls chooses a process-wide provider from its features only when exactly one is
        // enabled; choose ring, as everywhere else in the workspace. An earlier choice stands.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(settings.attempt_timeout)
            .connect_timeout(settings.attempt_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("fieldlink-cloud/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Http(e.to_string()))?;
        let smtp = match &settings.smtp {
            Some(s) => Some(smtp_transport(s, settings.attempt_timeout)?),
            None => None,
        };
        Ok(Deliverer { http, smtp })
    }

    /// One attempt to the named receiver.
    pub async fn deliver(
        &self,
        settings: &NotifySettings,
        receiver: &str,
        payload: &str,
    ) -> AttemptResult {
        if let Some(w) = settings.webhooks.iter().find(|w| w.name == receiver) {
            let id = serde_json::from_str::<NotificationBody>(payload)
                .map(|b| b.notification_id)
                .unwrap_or_default();
            let mut req = self
                .http
                .post(w.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("fieldlink-notification-id", id);
            for (k, v) in &w.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            return match req.body(payload.to_string()).send().await {
                Ok(r) if r.status().is_success() => Ok(format!("HTTP {}", r.status().as_u16())),
                Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
                Err(e) => Err(error_chain(&e)),
            };
        }
        if let Some(m) = settings.emails.iter().find(|e| e.name == receiver) {
            let (Some(smtp), Some(s)) = (&self.smtp, &settings.smtp) else {
                return Err("no [notifications.smtp] relay is configured".into());
            };
            let body: NotificationBody = serde_json::from_str(payload)
                .map_err(|e| format!("stored notification is not readable: {e}"))?;
            let mut b = Message::builder().from(s.from.clone());
            for to in &m.to {
                b = b.to(to.clone());
            }
            let msg = b
                .subject(body.subject())
                .header(ContentType::TEXT_PLAIN)
                .body(body.text())
                .map_err(|e| format!("building the message: {e}"))?;
            return match smtp.send(msg).await {
                Ok(r) => Ok(format!(
                    "SMTP {} {}",
                    r.code(),
                    r.message().next().unwrap_or_default()
                )),
                Err(e) => Err(error_chain(&e)),
            };
        }
        Err(format!(
            "no receiver named {receiver:?} is configured on this instance"
        ))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
