//! Liveness, readiness and metrics.
//!
//! `/health/live` answers as long as the process serves requests. `/health/ready` answers 200
//! only when the database answers a query within two seconds and the broker connection is up,
//! so a load balancer or orchestrator can tell a node that cannot ingest. `/metrics` is the
//! Prometheus (OpenMetrics) text of [`crate::metrics::Metrics`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::http::{hygiene, Limits};
use crate::ingest::IngestHandle;
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub ingest: IngestHandle,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: AppState, limits: &Limits) -> Router {
    Router::new()
        .route("/health/live", get(|| async { "ok\n" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(limits.clone()),
            hygiene::hygiene,
        ))
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let database = match tokio::time::timeout(Duration::from_secs(2), s.store.ping()).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 2 s".to_string(),
    };
    let broker = match s.ingest.broker_problem() {
        Some(problem) => problem,
        None if s.ingest.broker_connected() => "ok".to_string(),
        None => "disconnected".to_string(),
    };
    let code = if database == "ok" && broker == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "database": database,
        "broker": broker,
        "backend": s.store.backend().to_string(),
    });
    (code, Json(body))
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}
