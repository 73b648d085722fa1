//! A device's health as the API and the WebSocket's `device_status` messages show it (see
//! [`crate::store::DeviceHealth`] for what the state means).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::store::{DeviceHealth, DeviceState, ReportedState};

/// A device with its health.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Device {
    pub gateway: String,
    pub device: String,
    /// `unknown` when nothing was reported yet, or the gateway is offline, or the gateway
    /// restarted and has not reported this device since.
    pub state: DeviceState,
    /// RFC 3339: when the state began (by the gateway's clock for a reported state, the
    /// cloud's for `unknown` caused by the gateway); absent when nothing was ever reported.
    pub since: Option<String>,
    /// The gateway's last report, also while `state` is `unknown`.
    pub reported_state: Option<ReportedState>,
    /// The latest error the gateway reported, kept after the device recovers.
    pub last_error: Option<String>,
    /// RFC 3339.
    pub last_error_at: Option<String>,
}

impl From<DeviceHealth> for Device {
    fn from(h: DeviceHealth) -> Device {
        Device {
            gateway: h.gateway.to_string(),
            device: h.device.to_string(),
            state: h.state,
            since: h.since_ms.map(rfc3339),
            reported_state: h.reported,
            last_error: h.last_error,
            last_error_at: h.last_error_ms.map(rfc3339),
        }
    }
}
