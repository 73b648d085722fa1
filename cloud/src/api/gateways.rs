//! Gateway registration routes (admin); the `gateway` subcommand does the same through
//! [`crate::registry`], which also says what removing keeps.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::telemetry::Gateway;
use super::ApiState;
use crate::http::error::{ApiError, ErrorBody};
use crate::registry::{self, RegistryError};
use crate::store::Unregistered;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGateway {
    /// The gateway id, as in the agent's configuration: ASCII letters, digits, `_-.`, 1 to 64
    /// bytes.
    pub gateway: String,
    /// A name for people, 1 to 200 characters; an existing name is kept when absent.
    pub name: Option<String>,
}

fn refused(e: RegistryError) -> ApiError {
    match e {
        RegistryError::Store(e) => ApiError::database(e),
        other => ApiError::bad_request(other.to_string()),
    }
}

/// Registers a gateway, so it is accepted when `ingest.require_registration` is true; creates
/// its registry entry when ingest never heard from it. Answers 201 when it was not registered
/// before, 200 when it was (its name is updated when given). Role: admin.
#[utoipa::path(post, path = "/api/v1/gateways", tag = "registry", request_body = NewGateway,
    responses((status = 201, body = Gateway, description = "registered"),
        (status = 200, body = Gateway, description = "was already registered"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn register_gateway(
    State(s): State<ApiState>,
    body: Result<Json<NewGateway>, JsonRejection>,
) -> Result<(StatusCode, Json<Gateway>), ApiError> {
    let Json(new) = body.map_err(ApiError::rejection)?;
    super::text::line("gateway", &new.gateway)?;
    if let Some(name) = &new.name {
        super::text::line("name", name)?;
    }
    let created = registry::register(&s.store, &new.gateway, new.name.as_deref())
        .await
        .map_err(refused)?;
    let gw = registry::gateway_id(&new.gateway).map_err(refused)?;
    let info = s
        .store
        .gateway(&gw)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| ApiError::not_found(format!("gateway {:?} vanished", new.gateway)))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info.into())))
}

/// Withdraws a gateway's registration. Its devices, series, readings, events and commands are
/// kept (the entry itself goes only when the gateway was never heard from); with
/// `require_registration` its messages are dead-lettered from then on. Role: admin.
#[utoipa::path(delete, path = "/api/v1/gateways/{gateway}", tag = "registry",
    params(("gateway" = String, Path, description = "gateway id")),
    responses((status = 204, description = "no longer registered"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn remove_gateway(
    State(s): State<ApiState>,
    p: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(gateway) = p.map_err(ApiError::rejection)?;
    super::text::line("gateway", &gateway)?;
    match registry::remove(&s.store, &gateway)
        .await
        .map_err(refused)?
    {
        Unregistered::NotRegistered => Err(ApiError::not_found(format!(
            "no registered gateway {gateway:?}"
        ))),
        Unregistered::Deleted | Unregistered::Kept => Ok(StatusCode::NO_CONTENT),
    }
}
