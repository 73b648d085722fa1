//! Alerts: what a rule says ([`rule`]) and how one series' alert moves through its lifecycle
//! ([`machine`]). Both are pure (no clock, no I/O): the caller passes the time, so every rule
//! is tested against sequences of values, including a value hovering at a threshold.
//!
//! Not yet here: rule storage and CRUD routes, evaluation wired to ingest's committed batches
//! and a timer, transitions stored in the database, webhook and SMTP notifications.

pub mod machine;
pub mod rule;

pub use machine::{AlertMachine, AlertState, Transition};
pub use rule::{Condition, RuleError, Signal, ValueRule};
