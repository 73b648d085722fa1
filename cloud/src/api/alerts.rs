//! Alert rule routes (read: viewer; write: admin), alert routes (list: viewer; acknowledge
//! and resolve: operator) and the notification log (operator).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::text;
use super::ApiState;
use crate::alerts::{AlertEngine, AlertView, RuleSpec, Severity, StoredRule};
use crate::clock::now_ms;
use crate::http::error::{ApiError, ErrorBody};
use crate::notify::{NotificationView, Outbox};

fn validate(e: &AlertEngine, spec: &RuleSpec) -> Result<(), ApiError> {
    text::body(spec)?;
    spec.validate(&e.receiver_names())
        .map_err(|err| ApiError::bad_request(err.to_string()))
}

fn engine_of(s: &ApiState) -> Result<&AlertEngine, ApiError> {
    s.alerts.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "alerts are not enabled on this instance",
        )
    })
}

/// Alert rules, oldest first. Role: viewer.
#[utoipa::path(get, path = "/api/v1/alert-rules", tag = "alerts",
    responses((status = 200, body = Vec<StoredRule>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_rules(State(s): State<ApiState>) -> Result<Json<Vec<StoredRule>>, ApiError> {
    Ok(Json(
        engine_of(&s)?
            .records()
            .rules()
            .await
            .map_err(ApiError::database)?,
    ))
}

/// Creates a rule. Kinds: `value` (condition, clear, hold_secs), `no_data` and
/// `gateway_offline` (silent_secs). A refusal's message starts with the field at fault.
/// Role: admin.
#[utoipa::path(post, path = "/api/v1/alert-rules", tag = "alerts", request_body = RuleSpec,
    responses((status = 201, body = StoredRule), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn create_rule(
    State(s): State<ApiState>,
    body: Result<Json<RuleSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<StoredRule>), ApiError> {
    let Json(spec) = body.map_err(ApiError::rejection)?;
    let e = engine_of(&s)?;
    validate(e, &spec)?;
    let rule_id = format!(
        "r-{}",
        crate::auth::random_hex(6)
            .map_err(|e| ApiError::internal(format!("random source: {e}")))?
    );
    e.records()
        .insert_rule(&rule_id, &spec, now_ms())
        .await
        .map_err(ApiError::database)?;
    e.reload_rules().await.map_err(ApiError::database)?;
    Ok((
        StatusCode::CREATED,
        Json(StoredRule {
            rule_id,
            rule: spec,
        }),
    ))
}

/// Replaces a rule; set `enabled` to enable or disable it. Role: admin.
#[utoipa::path(put, path = "/api/v1/alert-rules/{rule_id}", tag = "alerts", request_body = RuleSpec,
    params(("rule_id" = String, Path, description = "rule id")),
    responses((status = 200, body = StoredRule), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn update_rule(
    State(s): State<ApiState>,
    p: Result<Path<String>, PathRejection>,
    body: Result<Json<RuleSpec>, JsonRejection>,
) -> Result<Json<StoredRule>, ApiError> {
    let Path(rule_id) = p.map_err(ApiError::rejection)?;
    text::line("rule_id", &rule_id)?;
    let Json(spec) = body.map_err(ApiError::rejection)?;
    let e = engine_of(&s)?;
    validate(e, &spec)?;
    if !e
        .records()
        .update_rule(&rule_id, &spec, now_ms())
        .await
        .map_err(ApiError::database)?
    {
        return Err(ApiError::not_found(format!("no rule {rule_id:?}")));
    }
    e.reload_rules().await.map_err(ApiError::database)?;
    Ok(Json(StoredRule {
        rule_id,
        rule: spec,
    }))
}

/// Deletes a rule; its open alerts are resolved without notification. Role: admin.
#[utoipa::path(delete, path = "/api/v1/alert-rules/{rule_id}", tag = "alerts",
    params(("rule_id" = String, Path, description = "rule id")),
    responses((status = 204, description = "deleted"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn delete_rule(
    State(s): State<ApiState>,
    p: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(rule_id) = p.map_err(ApiError::rejection)?;
    text::line("rule_id", &rule_id)?;
    let e = engine_of(&s)?;
    if !e
        .records()
        .delete_rule(&rule_id, now_ms())
        .await
        .map_err(ApiError::database)?
    {
        return Err(ApiError::not_found(format!("no rule {rule_id:?}")));
    }
    e.reload_rules().await.map_err(ApiError::database)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// pending, active, acknowledged or resolved.
    #[param(pattern = "^(pending|active|acknowledged|resolved)$")]
    pub status: Option<String>,
    pub severity: Option<Severity>,
    pub gateway: Option<String>,
    /// 1 to 1000; 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertPage {
    /// Newest first.
    pub items: Vec<AlertView>,
    pub next_offset: Option<u64>,
}

/// Alerts, newest first, filtered by status, severity and gateway. Role: viewer.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery),
    responses((status = 200, body = AlertPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn list_alerts(
    State(s): State<ApiState>,
    q: Result<Query<AlertQuery>, QueryRejection>,
) -> Result<Json<AlertPage>, ApiError> {
    let Query(q) = q.map_err(ApiError::rejection)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1 to 1000"));
    }
    if let Some(st) = &q.status {
        text::line("status", st)?;
        if !["pending", "active", "acknowledged", "resolved"].contains(&st.as_str()) {
            return Err(ApiError::bad_request(
                "status must be pending, active, acknowledged or resolved",
            ));
        }
    }
    if let Some(g) = &q.gateway {
        text::line("gateway", g)?;
    }
    let offset = q.offset.unwrap_or(0);
    let mut items = engine_of(&s)?
        .records()
        .alerts(
            q.status.as_deref(),
            q.severity,
            q.gateway.as_deref(),
            limit as i64 + 1,
            offset as i64,
        )
        .await
        .map_err(ApiError::database)?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Ok(Json(AlertPage {
        items,
        next_offset: more.then_some(offset as u64 + limit as u64),
    }))
}

async fn operator(s: &ApiState, id: &str, resolve: bool) -> Result<Json<AlertView>, ApiError> {
    text::line("alert_id", id)?;
    match engine_of(s)?
        .operator(id, resolve)
        .await
        .map_err(ApiError::database)?
    {
        Some(a) => Ok(Json(a)),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_open",
            format!("alert {id:?} is not open here (unknown, resolved, or not active)"),
        )),
    }
}

/// Acknowledges an active alert: it stays until it resolves, without repeats. Role: operator.
#[utoipa::path(post, path = "/api/v1/alerts/{alert_id}/acknowledge", tag = "alerts",
    params(("alert_id" = String, Path, description = "alert id")),
    responses((status = 200, body = AlertView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn acknowledge(
    State(s): State<ApiState>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<AlertView>, ApiError> {
    let Path(id) = p.map_err(ApiError::rejection)?;
    operator(&s, &id, false).await
}

/// Resolves an alert by hand. Role: operator.
#[utoipa::path(post, path = "/api/v1/alerts/{alert_id}/resolve", tag = "alerts",
    params(("alert_id" = String, Path, description = "alert id")),
    responses((status = 200, body = AlertView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn resolve(
    State(s): State<ApiState>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<AlertView>, ApiError> {
    let Path(id) = p.map_err(ApiError::rejection)?;
    operator(&s, &id, true).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    pub alert_id: Option<String>,
    /// pending, delivered or failed.
    #[param(pattern = "^(pending|delivered|failed)$")]
    pub status: Option<String>,
    /// 1 to 1000; 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationPage {
    /// Newest first, each with every delivery attempt.
    pub items: Vec<NotificationView>,
    pub next_offset: Option<u64>,
}

/// Notifications of alert transitions (fired, repeated, resolved) to the configured
/// receivers, with every delivery attempt: when, how long, the outcome and the receiver's
/// answer or the error. Role: operator.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "alerts", params(NotificationQuery),
    responses((status = 200, body = NotificationPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn list_notifications(
    State(s): State<ApiState>,
    q: Result<Query<NotificationQuery>, QueryRejection>,
) -> Result<Json<NotificationPage>, ApiError> {
    let Query(q) = q.map_err(ApiError::rejection)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::bad_request("limit: must be 1 to 1000"));
    }
    if let Some(st) = &q.status {
        text::line("status", st)?;
        if !["pending", "delivered", "failed"].contains(&st.as_str()) {
            return Err(ApiError::bad_request(
                "status: must be pending, delivered or failed",
            ));
        }
    }
    if let Some(a) = &q.alert_id {
        text::line("alert_id", a)?;
    }
    let offset = q.offset.unwrap_or(0);
    let mut items = Outbox::new(s.db.clone())
        .list(
            q.alert_id.as_deref(),
            q.status.as_deref(),
            limit as i64 + 1,
            offset as i64,
        )
        .await
        .map_err(ApiError::database)?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Ok(Json(NotificationPage {
        items,
        next_offset: more.then_some(offset as u64 + limit as u64),
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReceiverList {
    /// The names a rule's `receivers` may list.
    pub receivers: Vec<String>,
}

/// The notification receivers configured on this instance. Role: admin.
#[utoipa::path(get, path = "/api/v1/notification-receivers", tag = "alerts",
    responses((status = 200, body = ReceiverList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_receivers(State(s): State<ApiState>) -> Result<Json<ReceiverList>, ApiError> {
    Ok(Json(ReceiverList {
        receivers: engine_of(&s)?.receiver_names(),
    }))
}
