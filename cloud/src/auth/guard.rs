//! The request side of auth: a middleware that admits a bearer token of at least a given role,
//! and CORS.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{AuthThrottle, Role, TokenStore};
use crate::http::ApiError;

/// Who made a request; put in the request's extensions by [`require`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub token_id: String,
    pub role: Role,
}

/// The state of a [`require`] layer: where tokens are and the least role admitted.
#[derive(Clone)]
pub struct Guard {
    pub tokens: TokenStore,
    pub throttle: Arc<AuthThrottle>,
    pub min: Role,
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The client address of a request, as the server put it in the extensions (unspecified when
/// served some other way: then every client shares one throttle bucket).
pub fn client_of(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(a)| a.ip())
}

/// Checks a token against the least role; the answer [`require`] gives. A client whose
/// failures are throttled gets 429 before its token is looked up; a 401 counts as a failure.
pub async fn admit(
    tokens: &TokenStore,
    throttle: &AuthThrottle,
    client: IpAddr,
    secret: Option<&str>,
    min: Role,
) -> Result<Caller, ApiError> {
    throttle.check(client).map_err(ApiError::throttled)?;
    let unauthorized = |reason: &'static str| {
        throttle.failed(client, reason);
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", reason)
    };
    let Some(secret) = secret else {
        return Err(unauthorized("a bearer token is required"));
    };
    match tokens.verify(secret).await {
        Ok(Some((token_id, role))) if role >= min => Ok(Caller { token_id, role }),
        Ok(Some((_, role))) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the {min} role; the token has {role}"),
        )),
        Ok(None) => Err(unauthorized("the token is unknown or revoked")),
        Err(e) => Err(ApiError::database(e)),
    }
}

/// Middleware: 429 while the client's failures are throttled, 401 without a valid token, 403
/// below `min`, else the request runs with its [`Caller`] in the extensions.
pub async fn require(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    let client = client_of(req.extensions());
    match admit(&g.tokens, &g.throttle, client, bearer(req.headers()), g.min).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Which browser origins may call the API. Empty: none (same-origin only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// Exact origins (`https://dash.example.com`), or `*` for any.
    pub allowed_origins: Vec<String>,
}

impl Cors {
    fn allows(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == "*" || o == origin)
    }
}

/// Middleware, outermost so preflights never meet auth: answers `OPTIONS` preflights and
/// adds `Access-Control-Allow-Origin` for allowed origins.
pub async fn cors(State(cors): State<Arc<Cors>>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_string);
    let allowed = origin
        .as_deref()
        .filter(|o| cors.allows(o))
        .map(str::to_string);
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    if let Some(origin) = allowed.and_then(|o| HeaderValue::from_str(&o).ok()) {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type, idempotency-key"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
    }
    resp
}
