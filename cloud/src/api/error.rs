//! Errors as the API reports them: a status and JSON `{code, message}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The body of every error response.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable and machine-readable: `unauthorized`, `forbidden`, `not_found`, `bad_request`,
    /// `conflict`, `unavailable`, `internal`.
    pub code: String,
    /// For humans; wording may change.
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                code: code.to_string(),
                message: message.into(),
            },
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// A database failure: 503 when retrying may help, else 500. Logged, since the caller
    /// only sees the summary.
    pub fn database(e: impl std::fmt::Display) -> ApiError {
        tracing::warn!(error = %e, "api database call failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the database did not answer: {e}"),
        )
    }
    /// A rejected path, query or body: its own status (400, 415, 422, …) with our body.
    pub fn rejection(r: impl IntoResponse + std::fmt::Display) -> ApiError {
        let message = r.to_string();
        let status = r.into_response().status();
        ApiError::new(status, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
