//! Read routes (viewer): the registry, telemetry and dead letters, read through ingest's
//! [`crate::store::Store`].

use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use fieldlink_protocol::Ident;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use crate::clock::{parse_rfc3339, rfc3339, MAX_MS, MIN_MS};
use crate::http::error::{ApiError, ErrorBody};
use crate::store::{GatewayInfo, Interval, StoredPoint};

/// Largest page any list returns.
pub const MAX_LIMIT: u32 = 1_000;
const DEFAULT_LIMIT: u32 = 100;
/// `offset + limit` above this is refused: deep offsets cost a scan; narrow the query instead.
const MAX_WINDOW: u64 = 100_000;
/// Most buckets one aggregate query may span.
const MAX_BUCKETS: i64 = 100_000;

fn ident(what: &str, s: &str) -> Result<Ident, ApiError> {
    super::text::ident(what, s)
}

/// `limit` and `offset` for lists.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 1000; 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Items to skip; 0 when absent. `offset + limit` may not exceed 100000.
    #[param(maximum = 99_999)]
    pub offset: Option<u64>,
}

impl PageQuery {
    pub(super) fn window(&self) -> Result<(usize, usize), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be 1 to {MAX_LIMIT}"
            )));
        }
        let offset = self.offset.unwrap_or(0);
        if offset.saturating_add(limit as u64) > MAX_WINDOW {
            return Err(ApiError::bad_request(format!(
                "offset + limit must not exceed {MAX_WINDOW}"
            )));
        }
        Ok((offset as usize, limit as usize))
    }
}

fn page<T>(all: Vec<T>, offset: usize, limit: usize) -> (Vec<T>, Option<u64>) {
    let total = all.len();
    let items: Vec<T> = all.into_iter().skip(offset).take(limit).collect();
    let next = (offset + items.len() < total).then_some((offset + items.len()) as u64);
    (items, next)
}

/// A gateway as the registry knows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Gateway {
    pub gateway: String,
    /// From its last birth or death.
    pub online: bool,
    pub agent_version: Option<String>,
    pub config_hash: Option<String>,
    /// Registered by an operator (true) or by ingest on first contact (false).
    pub registered: bool,
    /// RFC 3339.
    pub last_seen: Option<String>,
    /// The operator's name for it, given when registering.
    pub name: Option<String>,
    /// Messages ingest dropped because the gateway kept sending past its quota (after the
    /// grace period). Non-zero flags a gateway that floods.
    pub quota_dropped_messages: i64,
    /// Points in those messages.
    pub quota_dropped_points: i64,
    /// RFC 3339: when the last of them was dropped.
    pub quota_dropped_at: Option<String>,
}

impl From<GatewayInfo> for Gateway {
    fn from(g: GatewayInfo) -> Gateway {
        Gateway {
            gateway: g.gateway.to_string(),
            online: g.online,
            agent_version: g.agent_version,
            config_hash: g.config_hash,
            registered: g.registered,
            last_seen: g.last_seen_ms.map(rfc3339),
            name: g.name,
            quota_dropped_messages: g.quota.messages,
            quota_dropped_points: g.quota.points,
            quota_dropped_at: g.quota.last_at_ms.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GatewayPage {
    pub items: Vec<Gateway>,
    /// The `offset` of the next page; absent on the last page.
    pub next_offset: Option<u64>,
}

/// Gateways, ordered by id. Role: viewer.
#[utoipa::path(get, path = "/api/v1/gateways", tag = "registry", params(PageQuery),
    responses((status = 200, body = GatewayPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list_gateways(
    State(s): State<ApiState>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<GatewayPage>, ApiError> {
    let Query(q) = q.map_err(ApiError::rejection)?;
    let (offset, limit) = q.window()?;
    let mut all = s.store.gateways().await.map_err(ApiError::database)?;
    all.sort_by(|a, b| a.gateway.cmp(&b.gateway));
    let (items, next_offset) = page(all, offset, limit);
    Ok(Json(GatewayPage {
        items: items.into_iter().map(Gateway::from).collect(),
        next_offset,
    }))
}

async fn known_gateway(s: &ApiState, gateway: &str) -> Result<GatewayInfo, ApiError> {
    let gw = ident("gateway", gateway)?;
    s.store
        .gateway(&gw)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| ApiError::not_found(format!("no gateway {gateway:?}")))
}

/// One gateway. Role: viewer.
#[utoipa::path(get, path = "/api/v1/gateways/{gateway}", tag = "registry",
    params(("gateway" = String, Path, description = "gateway id", example = "gw-1")),
    responses((status = 200, body = Gateway), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_gateway(
    State(s): State<ApiState>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<Gateway>, ApiError> {
    let Path(gateway) = p.map_err(ApiError::rejection)?;
    Ok(Json(known_gateway(&s, &gateway).await?.into()))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DevicePage {
    pub items: Vec<super::Device>,
    pub next_offset: Option<u64>,
}

/// Devices of a gateway with their health, ordered by name. Role: viewer.
#[utoipa::path(get, path = "/api/v1/gateways/{gateway}/devices", tag = "registry",
    params(("gateway" = String, Path, description = "gateway id", example = "gw-1"), PageQuery),
    responses((status = 200, body = DevicePage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list_devices(
    State(s): State<ApiState>,
    p: Result<Path<String>, PathRejection>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<DevicePage>, ApiError> {
    let Path(gateway) = p.map_err(ApiError::rejection)?;
    let Query(q) = q.map_err(ApiError::rejection)?;
    let (offset, limit) = q.window()?;
    let gw = known_gateway(&s, &gateway).await?.gateway;
    let all: Vec<super::Device> = s
        .store
        .device_health(&gw, None)
        .await
        .map_err(ApiError::database)?
        .into_iter()
        .map(super::Device::from)
        .collect();
    let (items, next_offset) = page(all, offset, limit);
    Ok(Json(DevicePage { items, next_offset }))
}

/// A series: one metric of one device.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Series {
    pub series_id: i64,
    pub gateway: String,
    pub device: String,
    pub metric: String,
    pub unit: Option<String>,
    /// Commands may write it (from the gateway's birth).
    pub writable: bool,
}

/// Series of a device, ordered by metric. Role: viewer.
#[utoipa::path(get, path = "/api/v1/gateways/{gateway}/devices/{device}/series", tag = "telemetry",
    params(("gateway" = String, Path, description = "gateway id", example = "gw-1"),
        ("device" = String, Path, description = "device name", example = "meter-1")),
    responses((status = 200, body = Vec<Series>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_series(
    State(s): State<ApiState>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Vec<Series>>, ApiError> {
    let Path((gateway, device)) = p.map_err(ApiError::rejection)?;
    let (gw, dev) = (ident("gateway", &gateway)?, ident("device", &device)?);
    let mut all = s
        .store
        .series_of_device(&gw, &dev)
        .await
        .map_err(ApiError::database)?;
    all.sort_by(|a, b| a.key.metric.cmp(&b.key.metric));
    Ok(Json(
        all.into_iter()
            .map(|x| Series {
                series_id: x.series_id,
                gateway: x.key.gateway.to_string(),
                device: x.key.device.to_string(),
                metric: x.key.metric.to_string(),
                unit: x.unit,
                writable: x.writable,
            })
            .collect(),
    ))
}

/// The schema of a reading's value: a number, a boolean or a string.
fn scalar_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::String))
        .description(Some("A number, a boolean or a string."))
        .build()
        .into()
}

/// One reading.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Reading {
    /// RFC 3339.
    pub time: String,
    #[schema(schema_with = scalar_schema)]
    pub value: serde_json::Value,
    /// `good`, `uncertain` or `bad`.
    pub quality: String,
}

impl From<&StoredPoint> for Reading {
    fn from(p: &StoredPoint) -> Reading {
        Reading {
            time: rfc3339(p.ts_ms),
            value: serde_json::to_value(&p.value).unwrap_or(serde_json::Value::Null),
            quality: serde_json::to_value(p.quality)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        }
    }
}

/// The newest reading of a series.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LatestValue {
    pub series_id: i64,
    pub metric: String,
    pub unit: Option<String>,
    pub reading: Reading,
}

/// The newest reading of each series of a device that has one. Role: viewer.
#[utoipa::path(get, path = "/api/v1/gateways/{gateway}/devices/{device}/latest", tag = "telemetry",
    params(("gateway" = String, Path, description = "gateway id", example = "gw-1"),
        ("device" = String, Path, description = "device name", example = "meter-1")),
    responses((status = 200, body = Vec<LatestValue>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn latest_values(
    State(s): State<ApiState>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Vec<LatestValue>>, ApiError> {
    let Path((gateway, device)) = p.map_err(ApiError::rejection)?;
    let (gw, dev) = (ident("gateway", &gateway)?, ident("device", &device)?);
    let mut series = s
        .store
        .series_of_device(&gw, &dev)
        .await
        .map_err(ApiError::database)?;
    series.sort_by(|a, b| a.key.metric.cmp(&b.key.metric));
    let ids: Vec<i64> = series.iter().map(|x| x.series_id).collect();
    let latest = s.store.latest(&ids).await.map_err(ApiError::database)?;
    Ok(Json(
        series
            .into_iter()
            .filter_map(|x| {
                let l = latest.iter().find(|l| l.series_id == x.series_id)?;
                Some(LatestValue {
                    series_id: x.series_id,
                    metric: x.key.metric.to_string(),
                    unit: x.unit,
                    reading: Reading::from(&l.point),
                })
            })
            .collect(),
    ))
}

/// A time range; absent ends are open.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PointsQuery {
    /// RFC 3339, inclusive.
    #[param(format = DateTime, example = "2024-01-01T00:00:00Z")]
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    #[param(format = DateTime, example = "2030-01-01T00:00:00Z")]
    pub to: Option<String>,
    /// 1 to 1000; 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

fn range(from: Option<&str>, to: Option<&str>) -> Result<(i64, i64), ApiError> {
    let from = from
        .map(|f| super::text::line("from", f))
        .transpose()?
        .map(parse_rfc3339)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let to = to
        .map(|t| super::text::line("to", t))
        .transpose()?
        .map(parse_rfc3339)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let (from, to) = (from.unwrap_or(MIN_MS), to.unwrap_or(MAX_MS));
    if to < from {
        return Err(ApiError::bad_request("to is before from"));
    }
    Ok((from, to))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PointPage {
    /// Oldest first.
    pub items: Vec<Reading>,
    /// Pass as `from` for the next page; absent when this page reached `to`.
    pub next_from: Option<String>,
}

/// Raw readings of a series in `[from, to)`, oldest first. Role: viewer.
#[utoipa::path(get, path = "/api/v1/series/{series_id}/points", tag = "telemetry",
    params(("series_id" = i64, Path, description = "series id", example = 1), PointsQuery),
    responses((status = 200, body = PointPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn raw_points(
    State(s): State<ApiState>,
    p: Result<Path<i64>, PathRejection>,
    q: Result<Query<PointsQuery>, QueryRejection>,
) -> Result<Json<PointPage>, ApiError> {
    let Path(series_id) = p.map_err(ApiError::rejection)?;
    let Query(q) = q.map_err(ApiError::rejection)?;
    let (from, to) = range(q.from.as_deref(), q.to.as_deref())?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let points = s
        .store
        .raw_points(series_id, from, to, limit as i64)
        .await
        .map_err(ApiError::database)?;
    let next_from = (points.len() == limit as usize)
        .then(|| points.last().map(|p| rfc3339(p.ts_ms + 1)))
        .flatten();
    Ok(Json(PointPage {
        items: points.iter().map(Reading::from).collect(),
        next_from,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AggregateQuery {
    /// RFC 3339; rounded down to a bucket start.
    #[param(format = DateTime, example = "2024-01-01T00:00:00Z")]
    pub from: String,
    /// RFC 3339; rounded up to a bucket end.
    #[param(format = DateTime, example = "2030-01-01T00:00:00Z")]
    pub to: String,
    /// `1m`, `1h`, `1d`, or any whole number of seconds, minutes, hours or days (`15s`, `5m`),
    /// at most 366 days; the range may span at most 100000 buckets.
    #[param(pattern = "^[0-9]+[smhd]$", example = "1d")]
    pub interval: String,
}

fn interval(s: &str) -> Result<Interval, ApiError> {
    super::text::line("interval", s)?;
    let bad = || {
        ApiError::bad_request(format!(
            "interval {s:?}: expected a whole number followed by s, m, h or d"
        ))
    };
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let secs = match unit {
        's' => Some(n),
        'm' => n.checked_mul(60),
        'h' => n.checked_mul(3_600),
        'd' => n.checked_mul(86_400),
        _ => None,
    }
    .filter(|s| (1..=366 * 86_400).contains(s))
    .ok_or_else(bad)?;
    Ok(match secs {
        60 => Interval::Minute,
        3_600 => Interval::Hour,
        86_400 => Interval::Day,
        n => Interval::Fixed(Duration::from_secs(n)),
    })
}

/// One bucket; `avg`, `min`, `max` are over numeric readings and absent without any.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Aggregate {
    /// RFC 3339 start of the bucket; buckets are aligned on the Unix epoch.
    pub start: String,
    pub avg: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub count: i64,
}

/// Bucketed aggregates of a series; empty buckets are left out. Role: viewer.
#[utoipa::path(get, path = "/api/v1/series/{series_id}/aggregates", tag = "telemetry",
    params(("series_id" = i64, Path, description = "series id", example = 1), AggregateQuery),
    responses((status = 200, body = Vec<Aggregate>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn aggregates(
    State(s): State<ApiState>,
    p: Result<Path<i64>, PathRejection>,
    q: Result<Query<AggregateQuery>, QueryRejection>,
) -> Result<Json<Vec<Aggregate>>, ApiError> {
    let Path(series_id) = p.map_err(ApiError::rejection)?;
    let Query(q) = q.map_err(ApiError::rejection)?;
    let (from, to) = range(Some(&q.from), Some(&q.to))?;
    let iv = interval(&q.interval)?;
    if (to - from) / iv.as_millis() > MAX_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "the range spans more than {MAX_BUCKETS} buckets; widen the interval"
        )));
    }
    let buckets = s
        .store
        .aggregates(series_id, from, to, iv)
        .await
        .map_err(ApiError::database)?;
    Ok(Json(
        buckets
            .into_iter()
            .map(|b| Aggregate {
                start: rfc3339(b.start_ms),
                avg: b.avg,
                min: b.min,
                max: b.max,
                count: b.count,
            })
            .collect(),
    ))
}

/// A message ingest refused.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterView {
    /// The row's id; pages continue below it (`before`).
    pub id: i64,
    /// RFC 3339.
    pub received_at: String,
    pub topic: String,
    /// Machine-readable: `decode`, `topic_mismatch`, `non_finite`, `too_large`, `unregistered`, …
    pub reason: String,
    pub detail: String,
    /// The start of the payload, hex: at most `ingest.dead_letter_payload_bytes` of it.
    pub payload_hex: String,
    /// The whole payload's size in bytes.
    pub payload_size: u64,
    /// Whether `payload_hex` holds only the start of the payload.
    pub payload_truncated: bool,
    /// SHA-256 of the whole payload, hex; null for rows stored before version 0210 on SQLite.
    pub payload_sha256: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterPage {
    /// Newest first.
    pub items: Vec<DeadLetterView>,
    /// `offset` of the next page, when there is one.
    pub next_offset: Option<u64>,
    /// `before` of the next page, when there is one (stable while new dead letters arrive).
    pub next_before: Option<i64>,
}

/// A page of dead letters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// 1 to 1000; 100 when absent. A page also ends once its payloads reach 1 MiB.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Items to skip; 0 when absent. `offset + limit` may not exceed 100000.
    #[param(maximum = 99_999)]
    pub offset: Option<u64>,
    /// Only dead letters with an id below this (`next_before` of the previous page).
    pub before: Option<i64>,
}

/// Most payload bytes one dead-letter page carries (twice that as hex): a page ends at the
/// first row that reaches it, so a request costs at most this plus one row.
pub const DEAD_LETTER_PAGE_BYTES: usize = 1 << 20;

/// Dead letters, newest first, bounded in rows (`limit`) and in bytes
/// ([`DEAD_LETTER_PAGE_BYTES`] of payload). Role: viewer.
#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "ingest", params(DeadLetterQuery),
    responses((status = 200, body = DeadLetterPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_dead_letters(
    State(s): State<ApiState>,
    q: Result<Query<DeadLetterQuery>, QueryRejection>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let Query(q) = q.map_err(ApiError::rejection)?;
    let (offset, limit) = PageQuery {
        limit: q.limit,
        offset: q.offset,
    }
    .window()?;
    let rows = s
        .store
        .dead_letter_page(q.before, offset as i64, limit as i64 + 1)
        .await
        .map_err(ApiError::database)?;
    let (rows, more) = bounded_page(rows, limit, DEAD_LETTER_PAGE_BYTES, |d| {
        d.letter.payload.len()
    });
    let next_offset = more.then_some((offset + rows.len()) as u64);
    let next_before = if more {
        rows.last().map(|d| d.id)
    } else {
        None
    };
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    Ok(Json(DeadLetterPage {
        items: rows
            .into_iter()
            .map(|d| {
                let l = d.letter;
                DeadLetterView {
                    id: d.id,
                    received_at: rfc3339(l.received_ms),
                    topic: l.topic,
                    reason: l.reason,
                    detail: l.detail,
                    payload_truncated: (l.payload.len() as u64) < l.size,
                    payload_hex: hex(&l.payload),
                    payload_size: l.size,
                    payload_sha256: l.sha256.map(|h| hex(&h)),
                }
            })
            .collect(),
        next_offset,
        next_before,
    }))
}

/// The first rows of `rows` (fetched one past `limit`) that fit `limit` and `budget` bytes by
/// `size`, ending at the first row that reaches the budget (so a page holds at least one row);
/// and whether rows are left.
fn bounded_page<T>(
    mut rows: Vec<T>,
    limit: usize,
    budget: usize,
    size: impl Fn(&T) -> usize,
) -> (Vec<T>, bool) {
    let mut used = 0usize;
    let mut keep = 0usize;
    for r in rows.iter().take(limit) {
        keep += 1;
        used += size(r);
        if used >= budget {
            break;
        }
    }
    let more = rows.len() > keep;
    rows.truncate(keep);
    (rows, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_ends_at_its_row_limit_or_at_the_row_that_reaches_its_byte_budget() {
        let rows = vec![400usize, 400, 400, 400];
        assert_eq!(
            bounded_page(rows.clone(), 2, 10_000, |r| *r),
            (vec![400, 400], true)
        );
        assert_eq!(
            bounded_page(rows.clone(), 10, 1_000, |r| *r),
            (vec![400, 400, 400], true)
        );
        assert_eq!(
            bounded_page(rows.clone(), 10, 10_000, |r| *r),
            (rows, false)
        );
        // One row over the budget is still a page, or nothing could ever be read.
        assert_eq!(
            bounded_page(vec![5_000], 10, 1_000, |r| *r),
            (vec![5_000], false)
        );
    }

    #[test]
    fn intervals() {
        assert_eq!(interval("1m").unwrap(), Interval::Minute);
        assert_eq!(interval("60s").unwrap(), Interval::Minute);
        assert_eq!(interval("1h").unwrap(), Interval::Hour);
        assert_eq!(interval("1d").unwrap(), Interval::Day);
        assert_eq!(
            interval("15s").unwrap(),
            Interval::Fixed(Duration::from_secs(15))
        );
        for bad in [
            "",
            "m",
            "0s",
            "1w",
            "-1m",
            "1.5h",
            "99999999999999999999d",
            "é",
        ] {
            assert!(interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_say_where_the_next_starts() {
        assert_eq!(page(vec![1, 2, 3], 0, 2), (vec![1, 2], Some(2)));
        assert_eq!(page(vec![1, 2, 3], 2, 2), (vec![3], None));
        assert_eq!(page(vec![1, 2, 3], 5, 2), (vec![], None));
    }
}
