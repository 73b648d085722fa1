//! Alerts: what a rule says ([`spec`], [`rule`]) and how one subject's alert moves through its
//! lifecycle ([`machine`]: inactive → pending → active → acknowledged → resolved). Both are pure
//! (no clock, no I/O): the caller passes the time, so every rule is tested against sequences of
//! values, including a value hovering at a threshold.
//!
//! Three rule kinds: value rules, evaluated on ingest's committed batches; no-data and
//! gateway-offline rules, evaluated on a timer against the shared database ([`silence`]).
//! [`engine`] runs them and operators' acknowledge/resolve; every transition is stored in one
//! transaction with its state row (compare-and-set, so several cloud instances store each
//! transition once and a restart resumes, see [`state`]) and with its notifications, which
//! `crate::notify` delivers by webhook and email. [`records`] holds rules CRUD and the alert
//! queries of the API.

pub mod engine;
pub mod machine;
pub mod records;
mod routing;
pub mod rule;
pub mod silence;
pub mod spec;
pub mod state;

pub use engine::AlertEngine;
pub use records::{AlertRecords, AlertView, StoredRule};
pub use routing::{NotificationBody, Routing};
pub use silence::SilenceReads;
pub use spec::{RuleKind, RuleSpec, Severity, SpecError};

pub use machine::{AlertMachine, AlertState, Transition};
pub use rule::{Condition, RuleError, Signal, ValueRule};
