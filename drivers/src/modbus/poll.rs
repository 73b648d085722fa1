//! One poll of one device: run its read plan, split refused reads, decode what came back.

use fieldlink_protocol::{Ident, Point, Quality};

use crate::codec::decode;
use crate::event::{now_ms, PointError, PointFailure, Readings};
use crate::health::DeviceCounters;
use crate::modbus::connector::Connector;
use crate::modbus::error::{ExceptionCode, LinkError};
use crate::modbus::link::ModbusLink;
use crate::plan::{ReadPlan, ReadRequest};
use crate::pointmap::ModbusPoint;

/// Exceptions that mean "this range is not all readable", which a smaller read may avoid.
pub fn is_range_refusal(e: ExceptionCode) -> bool {
    matches!(
        e,
        ExceptionCode::IllegalDataAddress | ExceptionCode::IllegalDataValue
    )
}

/// Reads every request of `plan` from unit `unit`, appending readings and per-point failures to
/// `out`. A request refused with a range exception is split in the plan (which keeps the split)
/// and its halves are read at once. Stops at the first link error, returning it; what was read
/// before stays in `out`.
pub async fn poll_plan<C: Connector>(
    link: &mut ModbusLink<C>,
    unit: u8,
    points: &[ModbusPoint],
    plan: &mut ReadPlan,
    counters: &DeviceCounters,
    out: &mut Readings,
) -> Result<(), LinkError> {
    let mut i = 0;
    while i < plan.len() {
        let (table, start, count) = {
            let r = &plan.requests()[i];
            (r.table, r.start, r.count)
        };
        DeviceCounters::add(&counters.requests_total, 1);
        let result = link.read(unit, table, start, count).await;
        let ts_ms = now_ms();
        match result {
            Err(e) => {
                DeviceCounters::add(&counters.link_errors_total, 1);
                if matches!(e, LinkError::Timeout { .. }) {
                    DeviceCounters::add(&counters.timeouts_total, 1);
                }
                return Err(e);
            }
            Ok(Ok(words)) => {
                let device = out.device.clone();
                let before = out.points.len();
                decode_request(&device, points, &plan.requests()[i], &words, ts_ms, out);
                DeviceCounters::add(&counters.points_total, (out.points.len() - before) as u64);
                i += 1;
            }
            Ok(Err(exception)) => {
                DeviceCounters::add(&counters.exceptions_total, 1);
                if is_range_refusal(exception) && plan.split(i) {
                    tracing::debug!(device = %out.device, unit, exception = %exception,
                        requests = plan.len(), "read refused, split");
                    continue;
                }
                for item in &plan.requests()[i].items {
                    out.failures.push(PointFailure {
                        metric: points[item.index].name.clone(),
                        error: PointError::Exception(exception),
                    });
                }
                i += 1;
            }
        }
    }
    Ok(())
}

/// Decodes the points of one answered request.
pub fn decode_request(
    device: &Ident,
    points: &[ModbusPoint],
    req: &ReadRequest,
    words: &[u16],
    ts_ms: i64,
    out: &mut Readings,
) {
    for item in &req.items {
        let point = &points[item.index];
        let from = req.offset_of(item);
        let slice = &words[from..from + usize::from(item.count)];
        let value = decode(slice, point.data_type, point.order)
            .map_err(Into::into)
            .and_then(|raw| point.engineering(&raw));
        match value {
            Ok(value) => out.points.push(Point {
                device: device.clone(),
                metric: point.name.clone(),
                ts_ms,
                value,
                quality: Quality::Good,
            }),
            Err(e) => out.failures.push(PointFailure {
                metric: point.name.clone(),
                error: PointError::Value(e),
            }),
        }
    }
}
