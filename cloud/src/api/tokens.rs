//! Token routes (admin). The CLI (`fieldlink-cloud token …`) uses the same [`TokenStore`].

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::text;
use super::ApiState;
use crate::auth::{Role, TokenInfo};
use crate::http::error::{ApiError, ErrorBody};

/// Every token, revoked ones included; secrets are never shown again. Role: admin.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "auth",
    responses((status = 200, body = Vec<TokenInfo>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list_tokens(State(s): State<ApiState>) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    Ok(Json(s.tokens.list().await.map_err(ApiError::database)?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewToken {
    /// What the token is for, 1 to 200 characters, not all blank.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret, shown this once.
    pub token: String,
    pub info: TokenInfo,
}

/// Creates a token. Role: admin.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "auth", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_token(
    State(s): State<ApiState>,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let Json(new) = body.map_err(ApiError::rejection)?;
    let name = text::line("name", new.name.trim())?;
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::bad_request("name must be 1 to 200 characters"));
    }
    let (info, token) = s
        .tokens
        .create(name, new.role)
        .await
        .map_err(ApiError::database)?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, info })))
}

/// Revokes a token at once. Role: admin.
#[utoipa::path(delete, path = "/api/v1/tokens/{token_id}", tag = "auth",
    params(("token_id" = String, Path, description = "token id")),
    responses((status = 204, description = "revoked"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(s): State<ApiState>,
    p: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(token_id) = p.map_err(ApiError::rejection)?;
    if s.tokens
        .revoke(text::line("token_id", &token_id)?)
        .await
        .map_err(ApiError::database)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no valid token {token_id:?}")))
    }
}
