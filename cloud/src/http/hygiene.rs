//! The middleware every API and health route runs in, outermost:
//! - a request whose `Content-Length` claims more than [`Limits::max_body_bytes`] gets 413
//!   at once, before any of its body is read, and its connection is closed (a request
//!   claiming 1 GiB used to be waited for); a body without a length is cut off at the same
//!   limit by the extractors ([`axum::extract::DefaultBodyLimit`], set by the routers);
//! - a request not answered within [`Limits::request_timeout`] of its headers — a body that
//!   stopped half-way, or an answer that never came — gets 408 and its connection is closed;
//! - every response carries `X-Content-Type-Options: nosniff` and `Cache-Control: no-store`
//!   (unless the route set its own cache policy), so a browser neither guesses a JSON body
//!   to be HTML nor keeps an API answer on disk.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::ApiError;

/// Limits on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// From the headers to the response.
    pub request_timeout: Duration,
    /// Largest body.
    pub max_body_bytes: usize,
    /// Failed authentications admitted per second per client address.
    pub auth_failures_per_sec: NonZeroU32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1 << 20,
            auth_failures_per_sec: NonZeroU32::new(100).expect("non-zero"),
        }
    }
}

fn closing(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The middleware; see the module docs.
pub async fn hygiene(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    let claimed = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut resp = match claimed {
        Some(n) if n > limits.max_body_bytes as u64 => closing(
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the body claims {n} bytes; at most {} are accepted",
                    limits.max_body_bytes
                ),
            )
            .into_response(),
        ),
        _ => match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
            Ok(r) => r,
            Err(_) => closing(
                ApiError::new(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the request was not complete within {} s",
                        limits.request_timeout.as_secs()
                    ),
                )
                .into_response(),
            ),
        },
    };
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}
