//! `fieldlink-agent`: the gateway daemon that polls field devices through `fieldlink-drivers`,
//! journals every reading in `fieldlink-buffer`, and publishes over MQTT with the
//! `fieldlink-protocol` wire format, executing and acknowledging commands from the cloud.
//!
//! Not built yet: this crate holds no code until its issue is taken. See `docs/ARCHITECTURE.md`.
