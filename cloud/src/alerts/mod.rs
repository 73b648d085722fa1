//! Alerts: what a rule says ([`rule`]) and how one series' alert moves through its lifecycle
//! ([`machine`]). Both are pure (no clock, no I/O): the caller passes the time, so every rule
//! is tested against sequences of values, including a value hovering at a threshold.
//!
//! [`engine`] evaluates value rules on ingest's committed batches and stores every transition
//! ([`records`]). Not yet here: the no-data and gateway-offline kinds on a timer (their signal
//! is [`rule::silence_signal`]), webhook and SMTP notifications.

pub mod engine;
pub mod machine;
pub mod records;
pub mod rule;

pub use engine::AlertEngine;
pub use records::{AlertRecords, AlertView, RuleSpec, Severity, StoredRule};

pub use machine::{AlertMachine, AlertState, Transition};
pub use rule::{Condition, RuleError, Signal, ValueRule};
