//! Device health: online, degraded or offline, with the last error, reported on change.
//!
//! - **online**: the last poll read every point.
//! - **degraded**: the device answered, but some points failed (an exception, a bad value, a
//!   garbage line); the rest still flow.
//! - **offline**: the transport failed (no connection, no answer, a vanished serial adapter).
//!
//! An event is emitted when the state changes, not on every poll, so a device that stays down
//! does not flood the uplink; the counters in [`DeviceCounters`] keep the running totals.

use std::sync::atomic::{AtomicU64, Ordering};

use fieldlink_protocol::Ident;

use crate::event::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    Online,
    Degraded,
    Offline,
}

/// A change of a device's health.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HealthEvent {
    pub device: Ident,
    pub state: HealthState,
    /// The error that caused the state, `None` when online.
    pub last_error: Option<String>,
    pub ts_ms: i64,
}

/// What one poll found, as far as health is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    AllRead,
    SomeFailed(String),
    LinkDown(String),
}

/// Folds observations into a state and reports changes.
#[derive(Debug, Clone)]
pub struct HealthTracker {
    device: Ident,
    state: Option<HealthState>,
    last_error: Option<String>,
}

impl HealthTracker {
    pub fn new(device: Ident) -> HealthTracker {
        HealthTracker {
            device,
            state: None,
            last_error: None,
        }
    }

    pub fn state(&self) -> Option<HealthState> {
        self.state
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Records an observation; returns an event when the state changed (the first observation
    /// always is one).
    pub fn observe(&mut self, observation: Observation) -> Option<HealthEvent> {
        let (state, error) = match observation {
            Observation::AllRead => (HealthState::Online, None),
            Observation::SomeFailed(e) => (HealthState::Degraded, Some(e)),
            Observation::LinkDown(e) => (HealthState::Offline, Some(e)),
        };
        self.last_error = error;
        if self.state == Some(state) {
            return None;
        }
        self.state = Some(state);
        Some(HealthEvent {
            device: self.device.clone(),
            state,
            last_error: self.last_error.clone(),
            ts_ms: now_ms(),
        })
    }
}

/// Running totals for one device, shared with whoever exports metrics.
#[derive(Debug, Default)]
pub struct DeviceCounters {
    /// Modbus requests sent (or serial lines received).
    pub requests_total: AtomicU64,
    /// Requests answered with a Modbus exception.
    pub exceptions_total: AtomicU64,
    /// Requests that failed on the link (including timeouts).
    pub link_errors_total: AtomicU64,
    pub timeouts_total: AtomicU64,
    /// Points delivered.
    pub points_total: AtomicU64,
    /// Lines that could not be parsed or were too long, skipped.
    pub garbage_lines_total: AtomicU64,
    /// Polls completed, whatever their outcome.
    pub polls_total: AtomicU64,
}

impl DeviceCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_only_on_change() {
        let mut h = HealthTracker::new(Ident::new("d").unwrap());
        let e = h.observe(Observation::AllRead).unwrap();
        assert_eq!((e.state, e.last_error), (HealthState::Online, None));
        assert!(h.observe(Observation::AllRead).is_none());
        let e = h.observe(Observation::SomeFailed("x".into())).unwrap();
        assert_eq!(e.state, HealthState::Degraded);
        assert!(h.observe(Observation::SomeFailed("y".into())).is_none());
        assert_eq!(h.last_error(), Some("y"));
        let e = h.observe(Observation::LinkDown("timeout".into())).unwrap();
        assert_eq!(
            (e.state, e.last_error.as_deref()),
            (HealthState::Offline, Some("timeout"))
        );
        assert_eq!(
            h.observe(Observation::AllRead).unwrap().state,
            HealthState::Online
        );
        assert_eq!(h.last_error(), None);
    }
}
