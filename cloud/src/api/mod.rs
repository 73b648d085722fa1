//! The REST API under `/api/v1`, with its OpenAPI 3 document at `/api/v1/openapi.json`.
//!
//! Every route is declared with `#[utoipa::path]` and mounted through `utoipa_axum`'s
//! `routes!`, which takes both the axum route and the document entry from the same
//! declaration, so the served document cannot drift from the routes.
//!
//! Conventions: times are RFC 3339 (UTC, milliseconds) in and out; lists are paginated with
//! `limit` and `offset` (or a time cursor for points) and say where the next page starts;
//! every error is JSON `{"code": "...", "message": "..."}` with a stable machine-readable code.
//! Routes are grouped by the least role they need (see [`crate::auth`]).

mod alerts;
mod commands;
mod devices;
mod gateways;
mod openapi;
mod telemetry;
mod text;
mod tokens;

use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use crate::commands::CommandView;
pub use crate::http::ApiError;
pub use crate::registry::Device;

use crate::auth::{cors, require, AuthThrottle, Cors, Guard, Role, TokenStore};
use crate::records::RecordsDb;
use crate::store::Store;

/// What the API's handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
    pub db: Arc<RecordsDb>,
    pub tokens: TokenStore,
    /// Absent when this instance does not send commands (the command routes answer 503).
    pub commands: Option<crate::commands::Commands>,
    /// Absent when this instance does not ingest (the WebSocket then carries no telemetry).
    pub ingest: Option<crate::ingest::IngestHandle>,
    /// Absent when this instance does not evaluate alerts (the alert routes answer 503).
    pub alerts: Option<crate::alerts::AlertEngine>,
    /// Failed authentications per client address; replaced by [`router`] with the configured
    /// rate.
    pub throttle: Arc<AuthThrottle>,
    /// The WebSocket's caps and its connections' subscriptions per token.
    pub websocket: crate::ws::WsLimits,
    /// What authentication and the WebSocket refused or closed (the service's own metrics
    /// when [`ApiState::with_counters`] was given them).
    pub counters: crate::http::HttpCounters,
}

impl ApiState {
    pub fn new(store: Arc<Store>, db: Arc<RecordsDb>) -> ApiState {
        let tokens = TokenStore::new(db.clone());
        ApiState {
            store,
            db,
            tokens,
            commands: None,
            ingest: None,
            alerts: None,
            throttle: Arc::new(AuthThrottle::new(
                crate::http::Limits::default().auth_failures_per_sec,
                crate::http::HttpCounters::default(),
            )),
            websocket: crate::ws::WsLimits::new(
                crate::ws::WsSettings::default(),
                Default::default(),
            ),
            counters: crate::http::HttpCounters::default(),
        }
    }

    /// Counting into these (the service passes its [`crate::metrics::Metrics`]' own).
    pub fn with_counters(mut self, counters: crate::http::HttpCounters) -> ApiState {
        self.counters = counters;
        self
    }

    /// With the alert evaluator, so the alert routes work.
    pub fn with_alerts(mut self, alerts: crate::alerts::AlertEngine) -> ApiState {
        self.alerts = Some(alerts);
        self
    }

    /// With ingest's committed batches, for live telemetry and gateway status.
    pub fn with_ingest(mut self, ingest: crate::ingest::IngestHandle) -> ApiState {
        self.ingest = Some(ingest);
        self
    }

    /// With the command service, so the command routes work.
    pub fn with_commands(mut self, commands: crate::commands::Commands) -> ApiState {
        self.commands = Some(commands);
        self
    }
}

impl From<&ApiState> for crate::ws::WsState {
    fn from(s: &ApiState) -> crate::ws::WsState {
        crate::ws::WsState {
            tokens: s.tokens.clone(),
            throttle: s.throttle.clone(),
            ingest: s.ingest.clone(),
            commands: s.commands.clone(),
            alerts: s.alerts.clone(),
            limits: s.websocket.clone(),
            counters: s.counters.clone(),
        }
    }
}

/// API settings from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiSettings {
    pub cors: Cors,
    /// Request time, body size and failed authentications per address.
    pub limits: crate::http::Limits,
    pub websocket: crate::ws::WsSettings,
}

/// The routes of each role class and the document describing all of them.
fn parts() -> (Vec<(Role, Router<ApiState>)>, utoipa::openapi::OpenApi) {
    let (viewer, mut doc) = OpenApiRouter::<ApiState>::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(telemetry::list_gateways))
        .routes(routes!(telemetry::get_gateway))
        .routes(routes!(telemetry::list_devices))
        .routes(routes!(telemetry::list_series))
        .routes(routes!(telemetry::latest_values))
        .routes(routes!(telemetry::raw_points))
        .routes(routes!(telemetry::aggregates))
        .routes(routes!(telemetry::list_dead_letters))
        .routes(routes!(commands::get_command))
        .routes(routes!(commands::list_commands))
        .routes(routes!(alerts::list_rules))
        .routes(routes!(alerts::list_alerts))
        .routes(routes!(devices::get_device))
        .split_for_parts();
    let (operator, operator_doc) = OpenApiRouter::<ApiState>::new()
        .routes(routes!(commands::create_command))
        .routes(routes!(alerts::acknowledge))
        .routes(routes!(alerts::resolve))
        .routes(routes!(alerts::list_notifications))
        .split_for_parts();
    doc.merge(operator_doc);
    let (admin, admin_doc) = OpenApiRouter::<ApiState>::new()
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(alerts::create_rule))
        .routes(routes!(alerts::update_rule, alerts::delete_rule))
        .routes(routes!(alerts::list_receivers))
        .routes(routes!(gateways::register_gateway))
        .routes(routes!(gateways::remove_gateway))
        .split_for_parts();
    doc.merge(admin_doc);
    openapi::common_responses(&mut doc);
    (
        vec![
            (Role::Viewer, viewer),
            (Role::Operator, operator),
            (Role::Admin, admin),
        ],
        doc,
    )
}

/// The OpenAPI document, as served.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    parts().1
}

/// The API router: auth on every route but the document, CORS inside [the request
/// hygiene](crate::http::hygiene).
pub fn router(mut state: ApiState, settings: &ApiSettings) -> Router {
    state.throttle = Arc::new(AuthThrottle::new(
        settings.limits.auth_failures_per_sec,
        state.counters.clone(),
    ));
    state.websocket = crate::ws::WsLimits::new(
        settings.websocket.clone(),
        state.counters.ws_subscriptions_refused.clone(),
    );
    let (classes, doc) = parts();
    let doc = Arc::new(doc);
    let mut router = Router::new()
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        // Authenticates itself before upgrading (see crate::ws); not in the OpenAPI document,
        // which has no way to describe a WebSocket.
        .route(
            "/api/v1/ws",
            get(crate::ws::upgrade).with_state(crate::ws::WsState::from(&state)),
        );
    for (min, routes) in classes {
        let guard = Guard {
            tokens: state.tokens.clone(),
            throttle: state.throttle.clone(),
            min,
        };
        router = router.merge(
            routes
                .route_layer(from_fn_with_state(guard, require))
                .with_state(state.clone()),
        );
    }
    router
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::extract::DefaultBodyLimit::max(
            settings.limits.max_body_bytes,
        ))
        .layer(from_fn_with_state(Arc::new(settings.cors.clone()), cors))
        .layer(from_fn_with_state(
            Arc::new(settings.limits.clone()),
            crate::http::hygiene::hygiene,
        ))
}

/// Binds `listen` and serves the API with the default server settings until `stop` fires;
/// the bound address goes to `bound` before serving, so a port of 0 can be used. The service
/// uses [`crate::http::serve`] with its configured settings.
pub async fn serve(
    listen: std::net::SocketAddr,
    router: Router,
    stop: tokio_util::sync::CancellationToken,
    bound: tokio::sync::oneshot::Sender<std::net::SocketAddr>,
) -> std::io::Result<()> {
    crate::http::serve(
        listen,
        router,
        &crate::http::ServerSettings::default(),
        crate::http::HttpCounters::default(),
        stop,
        bound,
    )
    .await
}
