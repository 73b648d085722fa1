//! From [`RawConfig`] to [`AgentConfig`]: every check, every default, every problem named.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fieldlink_buffer::{Caps, Durability};
use fieldlink_drivers::pointmap::config::PointMapConfig;
use fieldlink_drivers::PointMap;
use fieldlink_plumbing::backoff::{Schedule, ScheduleError};
use fieldlink_protocol::{Encoding, Ident, TopicPrefix};

use super::error::Problems;
use super::raw::{RawConfig, RawReportRule};
use super::{
    fingerprint, AgentConfig, ConfigError, JournalSettings, LogFormat, LoggingConfig, MqttConfig,
    TlsSettings,
};
use crate::report::{ReportPolicy, ReportRules};

/// Inside the systemd unit's `StateDirectory=fieldlink/agent`, the one place the service may write.
const DEFAULT_JOURNAL: &str = "/var/lib/fieldlink/agent/journal.db";

/// Checks everything and fills in defaults; lists every problem found.
pub fn validate(raw: RawConfig) -> Result<AgentConfig, ConfigError> {
    let mut p = Problems::default();
    let gateway = match Ident::new(&raw.gateway.id) {
        Ok(id) => Some(id),
        Err(_) if raw.gateway.id.is_empty() => {
            p.push("gateway.id", "missing: every gateway needs an id");
            None
        }
        Err(e) => {
            p.push("gateway.id", e.to_string());
            None
        }
    };
    let mqtt = mqtt(&raw, gateway.as_ref(), &mut p);
    let journal = journal(&raw, &mut p);
    let point_map = match PointMap::from_config(&PointMapConfig {
        templates: raw.templates.clone(),
        devices: raw.devices.clone(),
    }) {
        Ok(map) => Some(map),
        Err(e) => {
            for err in e.errors {
                p.push(err.path.clone(), err.kind.to_string());
            }
            None
        }
    };
    let reporting = reporting(&raw, point_map.as_ref(), &mut p);
    let logging = logging(&raw, &mut p);
    let self_telemetry = raw.gateway.self_telemetry_s.unwrap_or(60);
    if self_telemetry == 0 {
        p.push("gateway.self_telemetry_s", "must be at least 1");
    }
    let grace = raw.gateway.shutdown_grace_s.unwrap_or(10);
    if grace == 0 {
        p.push("gateway.shutdown_grace_s", "must be at least 1");
    }
    if !p.0.is_empty() {
        return Err(ConfigError::Invalid(p.0));
    }
    let (Some(gateway), Some(mqtt), Some(journal), Some(point_map), Some(logging)) =
        (gateway, mqtt, journal, point_map, logging)
    else {
        return Err(ConfigError::Invalid(p.0));
    };
    let state_dir = raw.gateway.state_dir.clone().unwrap_or_else(|| {
        journal
            .path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    });
    let hash = fingerprint(serde_json::to_string(&raw).unwrap_or_default().as_bytes());
    Ok(AgentConfig {
        gateway,
        state_dir,
        self_telemetry_interval: Duration::from_secs(self_telemetry),
        shutdown_grace: Duration::from_secs(grace),
        mqtt,
        journal,
        reporting,
        logging,
        point_map,
        raw,
        hash,
    })
}

/// `(tls, host, port)` from `mqtt://host:port` or `mqtts://host:port`.
pub(crate) fn parse_url(url: &str) -> Result<(bool, String, u16), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(format!("{url:?} must start with mqtt:// or mqtts://"));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || h.starts_with('[') => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{port:?} is not a port number"))?;
            (h, port)
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(format!("{url:?} has no host"));
    }
    Ok((tls, host.to_owned(), port))
}

fn mqtt(raw: &RawConfig, gateway: Option<&Ident>, p: &mut Problems) -> Option<MqttConfig> {
    let m = &raw.mqtt;
    let before = p.0.len();
    // Required: a gateway that silently fell back to plaintext on localhost would sit there
    // journaling, sending nothing, with nobody told why.
    let parsed = match m.url.as_deref() {
        Some(url) => parse_url(url).map_err(|e| p.push("mqtt.url", e)).ok(),
        None => {
            p.push(
                "mqtt.url",
                "is required: the broker as mqtts://host[:port] (TLS) or mqtt://host[:port]",
            );
            None
        }
    };
    let prefix = TopicPrefix::new(m.topic_prefix.as_deref().unwrap_or(TopicPrefix::DEFAULT))
        .map_err(|e| p.push("mqtt.topic_prefix", e.to_string()))
        .ok();
    let encoding = match m.encoding.as_deref().unwrap_or("binary") {
        "binary" => Some(Encoding::Binary),
        "json" => Some(Encoding::Json),
        other => {
            p.push(
                "mqtt.encoding",
                format!("{other:?} is not an encoding (binary or json)"),
            );
            None
        }
    };
    let keep_alive = m.keep_alive_s.unwrap_or(30);
    if !(5..=65_535).contains(&keep_alive) {
        p.push("mqtt.keep_alive_s", "must be between 5 and 65535 seconds");
    }
    let in_flight = m.max_in_flight.unwrap_or(16);
    if !(1..=512).contains(&in_flight) {
        p.push("mqtt.max_in_flight", "must be between 1 and 512");
    }
    let batch = m.batch_max_points.unwrap_or(1000);
    if !(1..=fieldlink_protocol::limits::MAX_POINTS_PER_BATCH as u64).contains(&batch) {
        p.push(
            "mqtt.batch_max_points",
            format!(
                "must be between 1 and {}",
                fieldlink_protocol::limits::MAX_POINTS_PER_BATCH
            ),
        );
    }
    let rmin = m.reconnect_min_ms.unwrap_or(500);
    // A short ceiling: after an outage of any length the gateway is back within about two
    // seconds of the broker (goal A6); the jitter spreads a fleet's attempts.
    let rmax = m.reconnect_max_ms.unwrap_or(2_000);
    let reconnect = Schedule::new(Duration::from_millis(rmin), Duration::from_millis(rmax))
        .map_err(|e| match e {
            ScheduleError::FirstTooShort(_) => {
                p.push("mqtt.reconnect_min_ms", "must be at least 1")
            }
            ScheduleError::CapBelowFirst { .. } => p.push(
                "mqtt.reconnect_max_ms",
                "must not be less than reconnect_min_ms",
            ),
        })
        .ok();
    // Generous: a satellite or congested cellular link can take several seconds per round
    // trip, and a TLS connect needs three or four of them.
    let connect_timeout = m.connect_timeout_s.unwrap_or(30);
    if !(1..=600).contains(&connect_timeout) {
        p.push(
            "mqtt.connect_timeout_s",
            "must be between 1 and 600 seconds",
        );
    }
    let credentials = match (&m.username, &m.password) {
        (Some(u), Some(pw)) => Some((u.clone(), pw.clone())),
        (Some(u), None) => Some((u.clone(), String::new())),
        (None, Some(_)) => {
            p.push("mqtt.password", "set without mqtt.username");
            None
        }
        (None, None) => None,
    };
    let client_auth = match (&m.client_cert, &m.client_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (Some(_), None) => {
            p.push("mqtt.client_key", "missing: client_cert needs client_key");
            None
        }
        (None, Some(_)) => {
            p.push("mqtt.client_cert", "missing: client_key needs client_cert");
            None
        }
        (None, None) => None,
    };
    for (key, file) in [
        ("mqtt.ca_file", m.ca_file.as_ref()),
        ("mqtt.client_cert", m.client_cert.as_ref()),
        ("mqtt.client_key", m.client_key.as_ref()),
    ] {
        if let Some(f) = file {
            if !f.is_file() {
                p.push(key, format!("{}: no such file", f.display()));
            }
        }
    }
    let tls_wanted = parsed.as_ref().is_some_and(|(tls, ..)| *tls);
    if !tls_wanted && (m.ca_file.is_some() || client_auth.is_some() || m.insecure) {
        p.push(
            "mqtt.url",
            "TLS settings are given but the URL is mqtt://; use mqtts://",
        );
    }
    let client_id = m
        .client_id
        .clone()
        .or_else(|| gateway.map(|g| format!("fieldlink-{g}")))
        .unwrap_or_default();
    if gateway.is_some() && (client_id.is_empty() || client_id.len() > 128) {
        p.push("mqtt.client_id", "must be 1 to 128 characters");
    }
    if p.0.len() > before {
        return None;
    }
    let (tls, host, port) = parsed?;
    Some(MqttConfig {
        host,
        port,
        tls: tls.then(|| TlsSettings {
            ca_file: m.ca_file.clone(),
            client_auth,
            insecure: m.insecure,
        }),
        client_id,
        credentials,
        keep_alive: Duration::from_secs(keep_alive),
        prefix: prefix?,
        encoding: encoding?,
        max_in_flight: in_flight as usize,
        batch_max_points: batch as usize,
        reconnect: reconnect?,
        connect_timeout: Duration::from_secs(connect_timeout),
    })
}

fn journal(raw: &RawConfig, p: &mut Problems) -> Option<JournalSettings> {
    let j = &raw.journal;
    let before = p.0.len();
    let path = j
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_JOURNAL));
    if path.as_os_str().is_empty() || path.file_name().is_none() {
        p.push("journal.path", "must name a file");
    }
    let max_bytes = j.max_bytes.unwrap_or(Caps::default().max_bytes);
    if max_bytes < 64 * 1024 {
        p.push("journal.max_bytes", "must be at least 65536");
    }
    let max_age = match j.max_age_s.unwrap_or(30 * 24 * 3600) {
        0 => None,
        s => Some(Duration::from_secs(s)),
    };
    let commit = j.commit_interval_ms.unwrap_or(1000);
    if commit == 0 {
        p.push("journal.commit_interval_ms", "must be at least 1");
    }
    let durability = match j.durability.as_deref().unwrap_or("normal") {
        "normal" => Some(Durability::Normal),
        "full" => Some(Durability::Full),
        other => {
            p.push(
                "journal.durability",
                format!("{other:?} is not a durability (normal or full)"),
            );
            None
        }
    };
    let share = j.backfill_share.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&share) {
        p.push("journal.backfill_share", "must be between 0 and 1");
    }
    if p.0.len() > before {
        return None;
    }
    Some(JournalSettings {
        path,
        caps: Caps { max_bytes, max_age },
        commit_interval: Duration::from_millis(commit),
        durability: durability?,
        backfill_share: share,
    })
}

fn policy(base: &ReportPolicy, r: &RawReportRule, at: &str, p: &mut Problems) -> ReportPolicy {
    let mut out = base.clone();
    if let Some(c) = r.on_change {
        out.on_change = c;
    }
    if let Some(d) = r.deadband_abs {
        if !(d.is_finite() && d >= 0.0) {
            p.push(format!("{at}.deadband_abs"), "must be a number ≥ 0");
        }
        out.deadband_abs = d;
        out.on_change = r.on_change.unwrap_or(true);
    }
    if let Some(d) = r.deadband_pct {
        if !(d.is_finite() && (0.0..=100.0).contains(&d)) {
            p.push(format!("{at}.deadband_pct"), "must be between 0 and 100");
        }
        out.deadband_pct = d;
        out.on_change = r.on_change.unwrap_or(true);
    }
    if let Some(s) = r.max_silence_s {
        out.max_silence = (s > 0).then(|| Duration::from_secs(s));
    }
    out
}

fn reporting(raw: &RawConfig, map: Option<&PointMap>, p: &mut Problems) -> ReportRules {
    let r = &raw.reporting;
    if r.defaults.device.is_some() || r.defaults.point.is_some() {
        p.push(
            "reporting",
            "device and point belong in [[reporting.rules]], not in [reporting]",
        );
    }
    let base = policy(&ReportPolicy::default(), &r.defaults, "reporting", p);
    let mut rules = ReportRules::new(base.clone());
    // Device-wide rules first, so point rules layer on top of them.
    let mut ordered: Vec<(usize, &RawReportRule)> = r.rules.iter().enumerate().collect();
    ordered.sort_by_key(|(_, rule)| rule.point.is_some());
    for (i, rule) in ordered {
        let at = format!("reporting.rules[{i}]");
        let Some(device) = rule.device.as_deref() else {
            p.push(format!("{at}.device"), "missing");
            continue;
        };
        if map.is_none() && !raw.devices.iter().any(|d| d.name == device) {
            p.push(format!("{at}.device"), format!("no device {device:?}"));
        }
        if let Some(map) = map {
            match map.device(device) {
                None => p.push(format!("{at}.device"), format!("no device {device:?}")),
                Some(d) => {
                    if let Some(point) = rule.point.as_deref() {
                        if !crate::inventory::device_points(d)
                            .iter()
                            .any(|(n, ..)| n.as_str() == point)
                        {
                            p.push(
                                format!("{at}.point"),
                                format!("device {device:?} has no point {point:?}"),
                            );
                        }
                    }
                }
            }
        }
        let layered = rules
            .policy(device, rule.point.as_deref().unwrap_or(""))
            .clone();
        let from = if rule.point.is_some() {
            &layered
        } else {
            &base
        };
        let pol = policy(from, rule, &at, p);
        rules.insert(device, rule.point.as_deref(), pol);
    }
    rules
}

/// Parses a log filter as `logging.level` and `RUST_LOG` are written: comma-separated
/// `target=level` directives and an optional default level (`info,rumqttc=warn`). Span and field
/// filters (`target[span]`, `{field}`) are refused by name rather than read as a target nothing
/// logs under, which would silence everything.
pub fn log_filter(directives: &str) -> Result<tracing_subscriber::filter::Targets, String> {
    if directives.contains(['[', ']', '{', '}']) {
        return Err(format!(
            "{directives:?}: span and field filters are not supported, only target=level directives"
        ));
    }
    directives
        .parse()
        .map_err(|e| format!("{directives:?}: {e}"))
}

fn logging(raw: &RawConfig, p: &mut Problems) -> Option<LoggingConfig> {
    let format = match raw.logging.format.as_deref().unwrap_or("plain") {
        "plain" => LogFormat::Plain,
        "json" => LogFormat::Json,
        other => {
            p.push(
                "logging.format",
                format!("{other:?} is not a log format (plain or json)"),
            );
            return None;
        }
    };
    let level = raw.logging.level.clone().unwrap_or_else(|| "info".into());
    if let Err(e) = log_filter(&level) {
        p.push("logging.level", e);
        return None;
    }
    Some(LoggingConfig { format, level })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://broker:1884").unwrap(),
            (false, "broker".into(), 1884)
        );
        assert_eq!(
            parse_url("mqtts://broker").unwrap(),
            (true, "broker".into(), 8883)
        );
        assert_eq!(
            parse_url("mqtt://[::1]:99").unwrap(),
            (false, "::1".into(), 99)
        );
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("mqtt://:5").is_err());
        assert!(parse_url("mqtt://h:0").is_err());
        assert!(parse_url("mqtt://h:x").is_err());
    }
}
