//! A device's health on the API: the shape shared by the device routes and the WebSocket's
//! `device_status` messages (see [`crate::store::DeviceHealth`] for what the state means).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;

use super::ApiState;
use crate::http::error::{ApiError, ErrorBody};
use crate::registry::Device;

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
