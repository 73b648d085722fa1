//! Log output: plain text or JSON lines on stderr, filtered by `logging.level` or `RUST_LOG`.
//!
//! The filter is a list of `target=level` directives with an optional default level
//! (`info,rumqttc=warn`), parsed by `config::log_filter`: span and field filters are not
//! supported, which keeps their regex machinery out of the gateway binary.

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use crate::config::{log_filter, LogFormat, LoggingConfig};

/// Installs the global subscriber; a valid `RUST_LOG` wins over the configured level, and one
/// that does not parse is named in a warning, the configured level applying instead.
pub fn init(cfg: &LoggingConfig) {
    let from_env = std::env::var("RUST_LOG").ok().map(|env| log_filter(&env));
    let filter = match &from_env {
        Some(Ok(targets)) => targets.clone(),
        _ => log_filter(&cfg.level)
            .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO)),
    };
    // Colours only on a terminal: under systemd stderr goes to the journal, where escape codes
    // would make `journalctl` show the lines as binary blobs.
    let layer = fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry();
    let _ = match cfg.format {
        LogFormat::Plain => registry.with(layer.with_filter(filter)).try_init(),
        LogFormat::Json => registry
            .with(layer.json().flatten_event(true).with_filter(filter))
            .try_init(),
    };
    if let Some(Err(e)) = from_env {
        tracing::warn!(error = %e, level = %cfg.level, "RUST_LOG refused; logging.level applies");
    }
}
