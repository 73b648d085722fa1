//! `fieldlink-plumbing`: the small pieces of plumbing the agent and the cloud
//! both need, written once so they cannot drift apart:
//!
//! - [`backoff`]: the waits between retries, capped exponential, jittered for network
//!   reconnects and exact for a field bus's schedule;
//! - [`clock`]: the wall clock as milliseconds since the Unix epoch, the unit every stored
//!   timestamp of Fieldlink is in;
//! - [`sd_notify`]: systemd's notification protocol (`READY=1`, `WATCHDOG=1`, `STOPPING=1`),
//!   spoken directly to `$NOTIFY_SOCKET`.
//!
//! No async runtime: when to ping the watchdog is each program's own rule (the agent pings
//! while all its loops progress, the cloud while its runtime runs tasks).

pub mod backoff;
pub mod clock;
pub mod sd_notify;
