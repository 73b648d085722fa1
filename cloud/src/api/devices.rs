//! A device's health on the API: the shape shared by the device routes and the WebSocket's
//! `device_status` messages (see [`crate::store::DeviceHealth`] for what the state means).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::time::rfc3339;
use super::ApiState;
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

/// One device of a gateway, with its health. Role: viewer.
#[utoipa::path(get, path = "/api/v1/gateways/{gateway}/devices/{device}", tag = "registry",
    params(("gateway" = String, Path, description = "gateway id"),
        ("device" = String, Path, description = "device name")),
    responses((status = 200, body = Device), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_device(
    State(s): State<ApiState>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Device>, ApiError> {
    let Path((gateway, device)) = p.map_err(ApiError::rejection)?;
    let (gw, dev) = (
        super::text::ident("gateway", &gateway)?,
        super::text::ident("device", &device)?,
    );
    s.store
        .device_health(&gw, Some(&dev))
        .await
        .map_err(ApiError::database)?
        .pop()
        .map(|h| Json(h.into()))
        .ok_or_else(|| ApiError::not_found(format!("no device {device:?} on gateway {gateway:?}")))
}
