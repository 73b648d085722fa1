//! A telemetry batch: readings from one gateway, numbered for idempotent storage.
//!
//! `(gateway, boot_epoch, seq)` names a batch; a reading is named by `(gateway, device,
//! metric, ts_ms)`, so the cloud can store a redelivered batch again without duplicates. A
//! batch is a set of readings: encodings group points by series and may return them in
//! series order (see [`TelemetryBatch::in_series_order`]).

use std::collections::HashSet;

use super::{series, Message};
use crate::error::ValidationError;
use crate::limits::{MAX_POINTS_PER_BATCH, MAX_SERIES_PER_BATCH};
use crate::topic::TopicKind;
use crate::{validate, Ident, Point};

/// Readings from one gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryBatch {
    pub gateway: Ident,
    /// Increases each time the agent starts; with `seq` it orders batches across restarts.
    pub boot_epoch: u64,
    /// Increases with each batch within a boot epoch.
    pub seq: u64,
    /// The batch replays backlog that was journaled while the link was down, so the cloud can
    /// store it without treating it as live (no alerts on stale values, no live push).
    pub historical: bool,
    pub points: Vec<Point>,
}

impl TelemetryBatch {
    /// An empty live batch.
    pub fn new(gateway: Ident, boot_epoch: u64, seq: u64) -> Self {
        TelemetryBatch {
            gateway,
            boot_epoch,
            seq,
            historical: false,
            points: Vec::new(),
        }
    }

    /// Number of distinct `(device, metric)` series.
    pub fn series_count(&self) -> usize {
        self.points
            .iter()
            .map(|p| (p.device.as_str(), p.metric.as_str()))
            .collect::<HashSet<_>>()
            .len()
    }

    /// The same batch with its points grouped by series (in order of first appearance) and in
    /// batch order within each series: the order in which both decoders return points.
    pub fn in_series_order(&self) -> TelemetryBatch {
        let points = series::group(&self.points)
            .into_iter()
            .flat_map(|s| s.points)
            .map(|i| self.points[i].clone())
            .collect();
        TelemetryBatch {
            points,
            ..self.clone()
        }
    }

    /// Checks every point, without the series limit (the encoders count series as they group).
    pub(crate) fn validate_points(&self) -> Result<(), ValidationError> {
        validate::count(self.points.len(), MAX_POINTS_PER_BATCH, || "points".into())?;
        for (i, p) in self.points.iter().enumerate() {
            validate::timestamp(p.ts_ms, || format!("points[{i}].ts_ms"))?;
            validate::value(&p.value, || format!("points[{i}].value"))?;
        }
        Ok(())
    }
}

impl Message for TelemetryBatch {
    const TOPIC: TopicKind = TopicKind::Telemetry;

    fn validate(&self) -> Result<(), ValidationError> {
        self.validate_points()?;
        validate::count(self.series_count(), MAX_SERIES_PER_BATCH, || {
            "series".into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_TIMESTAMP_MS;
    use crate::Value;

    fn id(s: &str) -> Ident {
        Ident::new(s).unwrap()
    }

    #[test]
    fn validation_names_the_point() {
        let mut b = TelemetryBatch::new(id("gw"), 1, 1);
        b.points.push(Point::new(id("d"), id("m"), 5, 1.0));
        b.points.push(Point::new(id("d"), id("m"), 6, f64::NAN));
        assert_eq!(
            b.validate(),
            Err(ValidationError::NotFinite {
                field: "points[1].value".into()
            })
        );
        b.points[1].value = Value::Str("x".repeat(300));
        assert!(matches!(b.validate(), Err(ValidationError::TooLong { .. })));
        b.points[1].value = Value::Bool(true);
        b.points[1].ts_ms = MAX_TIMESTAMP_MS + 1;
        assert!(matches!(
            b.validate(),
            Err(ValidationError::TimestampOutOfRange { .. })
        ));
        b.points[1].ts_ms = 7;
        assert_eq!(b.validate(), Ok(()));
    }

    #[test]
    fn point_and_series_limits() {
        let mut b = TelemetryBatch::new(id("gw"), 1, 1);
        for i in 0..=MAX_SERIES_PER_BATCH {
            b.points
                .push(Point::new(id("d"), id(&format!("m{i}")), 0, 1.0));
        }
        assert!(matches!(
            b.validate(),
            Err(ValidationError::TooMany { ref field, .. }) if field == "series"
        ));
        b.points.truncate(1);
        let p = b.points[0].clone();
        b.points.resize(MAX_POINTS_PER_BATCH + 1, p);
        assert!(matches!(
            b.validate(),
            Err(ValidationError::TooMany { ref field, .. }) if field == "points"
        ));
    }

    #[test]
    fn series_order_keeps_order_within_a_series() {
        let mut b = TelemetryBatch::new(id("gw"), 1, 1);
        for ts in 0..3 {
            for m in ["a", "b"] {
                b.points.push(Point::new(id("d"), id(m), ts, ts as f64));
            }
        }
        let s = b.in_series_order();
        let order: Vec<(&str, i64)> = s
            .points
            .iter()
            .map(|p| (p.metric.as_str(), p.ts_ms))
            .collect();
        assert_eq!(
            order,
            [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
        );
        assert_eq!(s.in_series_order(), s);
    }
}
