//! `device_status` messages: a device's health each time a commit may have changed it (a
//! health event from its gateway, or its gateway's birth or death).
//!
//! `{"type": "device_status", "device": {…}}` where the object is the REST `Device` (state
//! `online`, `degraded`, `offline` or `unknown`, `since`, `reported_state`, `last_error`,
//! `last_error_at`). A message always carries the whole current state, so a client keeps the
//! last one per device; a repeat of an unchanged state is possible and harmless.

use super::Filter;
use crate::registry::Device;
use crate::store::DeviceHealth;

/// The messages a set of this instance's changes gives a client with these `device_status`
/// filters.
pub(super) fn messages(filters: &[Filter], changes: &[DeviceHealth]) -> Vec<serde_json::Value> {
    if filters.is_empty() {
        return Vec::new();
    }
    changes
        .iter()
        .filter_map(|h| message(filters, &Device::from(h.clone())))
        .collect()
}

/// The message one device's health gives a client with these filters, if any (also for
/// another instance's changes, which arrive as the REST view).
pub(super) fn message(filters: &[Filter], d: &Device) -> Option<serde_json::Value> {
    filters
        .iter()
        .any(|f| f.matches(&d.gateway, Some(&d.device), None))
        .then(|| serde_json::json!({"type": "device_status", "device": d}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DeviceState, ReportedState};
    use fieldlink_protocol::Ident;

    fn health(gw: &str, dev: &str) -> DeviceHealth {
        DeviceHealth {
            gateway: Ident::new(gw).unwrap(),
            device: Ident::new(dev).unwrap(),
            state: DeviceState::Offline,
            since_ms: Some(1_700_000_000_000),
            reported: Some(ReportedState::Offline),
            last_error: Some("timeout".into()),
            last_error_ms: Some(1_700_000_000_000),
        }
    }

    #[test]
    fn filtered_by_gateway_and_device() {
        let changes = [
            health("gw-1", "meter"),
            health("gw-1", "pump"),
            health("gw-2", "meter"),
        ];
        assert!(messages(&[], &changes).is_empty());
        let f = Filter {
            gateway: Some("gw-1".into()),
            device: Some("meter".into()),
            metric: None,
        };
        let out = messages(&[f], &changes);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["type"], "device_status");
        assert_eq!(out[0]["device"]["device"], "meter");
        assert_eq!(out[0]["device"]["state"], "offline");
        assert_eq!(out[0]["device"]["since"], "2023-11-14T22:13:20Z");
        assert_eq!(out[0]["device"]["last_error"], "timeout");
        assert_eq!(messages(&[Filter::default()], &changes).len(), 3);
    }
}
