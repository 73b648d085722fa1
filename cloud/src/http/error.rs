//! Errors as the API reports them: a status and JSON `{code, message}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::store::{Classify, Failure};

/// The body of every error response.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable and machine-readable: `unauthorized`, `forbidden`, `not_found`, `bad_request`,
    /// `invalid_text`, `conflict`, `payload_too_large`, `request_timeout`, `too_many_requests`,
    /// `refused_by_database`, `database_error`, `unavailable`, `internal`.
    pub code: String,
    /// For humans; wording may change.
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// Sent as `Retry-After` (seconds) when set.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                code: code.to_string(),
                message: message.into(),
            },
            retry_after_secs: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// A database failure, by what it means ([`Failure`]): 503 `unavailable` only when the
    /// database could not be reached (retrying may help); 422 `refused_by_database` when it
    /// refused a value; 409 `conflict` for a constraint; else 500 `database_error` with the
    /// database's code. Logged, since the caller only sees the summary.
    pub fn database(e: impl Classify) -> ApiError {
        let failure = e.failure();
        tracing::warn!(error = ?e.to_string(), failure = ?failure, "api database call failed");
        match failure {
            // Without the error's text: it names the database's address, which is the
            // operator's business (the log line above, the readiness check), not a client's.
            Failure::Unavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database did not answer",
            ),
            Failure::Refused { code } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "refused_by_database",
                format!("the database refused a value of the request ({code})"),
            ),
            Failure::Conflict { code } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("the database refused the row as a conflict ({code})"),
            ),
            Failure::Internal { code } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "database_error",
                match code {
                    Some(code) => format!("the database failed the request ({code})"),
                    None => "the database call failed".to_string(),
                },
            ),
        }
    }
    /// Too many failed authentications from the caller's address: 429 with `Retry-After`
    /// (whole seconds, at least 1).
    pub fn throttled(retry_after: std::time::Duration) -> ApiError {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        ApiError {
            retry_after_secs: Some(secs.max(1)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "too many failed authentications from this address; retry later",
            )
        }
    }
    /// Text a store cannot keep, or that would corrupt a log or a terminal: 422
    /// `invalid_text`, the message starting with the field.
    pub fn invalid_text(field: &str, reason: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_text",
            format!("{field}: {reason}"),
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
        let mut r = (self.status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Finding 6: an error carrying text someone else wrote is logged quoted and escaped, so
    /// it can neither start a line of its own nor reach the terminal as an escape sequence.
    #[test]
    fn a_logged_error_cannot_forge_a_line() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let e = crate::records::DbError::ColumnType(
                "x\n2026-01-01T00:00:00Z  INFO admin token created\u{1b}[2J".into(),
            );
            assert_eq!(ApiError::database(e).status, 500);
        });
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(
            text.contains(r#"x\n2026-01-01T00:00:00Z  INFO admin token created\u{1b}[2J"#),
            "{text}"
        );
    }
}
