//! Log output: plain text or JSON lines on stderr, filtered by `logging.level` or `RUST_LOG`.
//!
//! The filter is a list of `target=level` directives with an optional default level
//! (`info,rumqttc=warn`): span and field filters are not supported, which keeps their
//! regex machinery out of the gateway binary.

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use crate::config::{LogFormat, LoggingConfig};

/// Installs the global subscriber; a valid `RUST_LOG` wins over the configured level.
pub fn init(cfg: &LoggingConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|env| env.parse::<Targets>().ok())
        .or_else(|| cfg.level.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
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
}
