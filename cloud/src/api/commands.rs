//! Command routes: create (operator), get and list (viewer).

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use fieldlink_protocol::CommandKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::telemetry::PageQuery;
use super::text;
use super::ApiState;
use crate::auth::Caller;
use crate::commands::{CommandError, CommandView, Commands};
use crate::http::error::{ApiError, ErrorBody};

/// A new command.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewCommand {
    /// The protocol's command: `{"command": "write_point", "device": "…", "point": "…",
    /// "value": 1}`, `read_now`, `set_poll_interval`, `apply_config` or `ping`.
    #[schema(value_type = Object)]
    pub kind: CommandKind,
    /// Seconds until the command expires unanswered; the configured default when absent,
    /// at most the configured maximum.
    #[schema(minimum = 1)]
    pub expires_in_secs: Option<u64>,
    /// A second request with the same key for the same gateway returns the first command;
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub idempotency_key: Option<String>,
}

fn service(s: &ApiState) -> Result<&Commands, ApiError> {
    s.commands.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "commands are not enabled on this instance",
        )
    })
}

/// Creates a command for a gateway, checked against its last birth; published at once when
/// the gateway is online, else on its next birth. Role: operator.
#[utoipa::path(post, path = "/api/v1/gateways/{gateway}/commands", tag = "commands",
    params(("gateway" = String, Path, description = "gateway id", example = "gw-1")),
    request_body = NewCommand,
    responses((status = 201, body = CommandView, description = "created"),
        (status = 200, body = CommandView, description = "an earlier command with this idempotency key"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn create_command(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    p: Result<Path<String>, PathRejection>,
    body: Result<Json<NewCommand>, JsonRejection>,
) -> Result<(StatusCode, Json<CommandView>), ApiError> {
    let Path(gateway) = p.map_err(ApiError::rejection)?;
    let Json(new) = body.map_err(ApiError::rejection)?;
    let gw = text::ident("gateway", &gateway)?;
    text::json("kind", &serde_json::to_value(&new.kind).unwrap_or_default())?;
    if let Some(k) = &new.idempotency_key {
        text::line("idempotency_key", k)?;
        if k.is_empty() || k.chars().count() > 200 {
            return Err(ApiError::bad_request(
                "idempotency_key must be 1 to 200 characters",
            ));
        }
    }
    let ttl = new.expires_in_secs.map(Duration::from_secs);
    let commands = service(&s)?;
    match commands
        .create(gw, new.kind, ttl, new.idempotency_key, &caller.token_id)
        .await
    {
        Ok((rec, true)) => Ok((StatusCode::CREATED, Json(rec.into()))),
        Ok((rec, false)) => Ok((StatusCode::OK, Json(rec.into()))),
        Err(CommandError::NoBirth(g)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_birth",
            format!("gateway {g} has sent no birth yet, so the command cannot be checked"),
        )),
        Err(CommandError::Invalid(m)) => Err(ApiError::bad_request(m)),
        Err(CommandError::Db(e)) => Err(ApiError::database(e)),
        Err(CommandError::Mqtt(e)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("stored as pending, but not handed to the broker: {e}"),
        )),
    }
}

/// One command. Role: viewer.
#[utoipa::path(get, path = "/api/v1/commands/{command_id}", tag = "commands",
    params(("command_id" = String, Path, description = "command id")),
    responses((status = 200, body = CommandView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn get_command(
    State(s): State<ApiState>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<CommandView>, ApiError> {
    let Path(id) = p.map_err(ApiError::rejection)?;
    service(&s)?
        .records()
        .get(text::line("command_id", &id)?)
        .await
        .map_err(ApiError::database)?
        .map(|r| Json(r.into()))
        .ok_or_else(|| ApiError::not_found(format!("no command {id:?}")))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommandPage {
    /// Newest first.
    pub items: Vec<CommandView>,
    pub next_offset: Option<u64>,
}

/// A gateway's commands, newest first. Role: viewer.
#[utoipa::path(get, path = "/api/v1/gateways/{gateway}/commands", tag = "commands",
    params(("gateway" = String, Path, description = "gateway id", example = "gw-1"), PageQuery),
    responses((status = 200, body = CommandPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn list_commands(
    State(s): State<ApiState>,
    p: Result<Path<String>, PathRejection>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<CommandPage>, ApiError> {
    let Path(gateway) = p.map_err(ApiError::rejection)?;
    let Query(q) = q.map_err(ApiError::rejection)?;
    let (offset, limit) = q.window()?;
    let gw = text::ident("gateway", &gateway)?;
    let mut items = service(&s)?
        .records()
        .list(&gw, limit as i64 + 1, offset as i64)
        .await
        .map_err(ApiError::database)?;
    let more = items.len() > limit;
    items.truncate(limit);
    Ok(Json(CommandPage {
        next_offset: more.then_some((offset + limit) as u64),
        items: items.into_iter().map(CommandView::from).collect(),
    }))
}
