//! Grouping a batch's points by series, the shape both telemetry encodings write.
//!
//! A series is one `(device, metric)` pair. Series are numbered in order of first appearance
//! in the batch and keep their points in batch order; decoders return points in that same
//! order, which [`TelemetryBatch::in_series_order`](super::TelemetryBatch::in_series_order)
//! reproduces.

use std::collections::HashMap;

use crate::{Ident, Point};

/// One series of a batch: its identity and the indices of its points in the batch.
pub(crate) struct Series<'a> {
    pub device: &'a Ident,
    pub metric: &'a Ident,
    pub points: Vec<usize>,
}

/// Groups `points` by series, in order of first appearance.
pub(crate) fn group(points: &[Point]) -> Vec<Series<'_>> {
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    let mut series: Vec<Series<'_>> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let key = (p.device.as_str(), p.metric.as_str());
        let at = *index.entry(key).or_insert_with(|| {
            series.push(Series {
                device: &p.device,
                metric: &p.metric,
                points: Vec::new(),
            });
            series.len() - 1
        });
        series[at].points.push(i);
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(d: &str, m: &str, ts: i64) -> Point {
        Point::new(Ident::new(d).unwrap(), Ident::new(m).unwrap(), ts, 1.0)
    }

    #[test]
    fn groups_in_first_appearance_order() {
        let pts = [
            p("a", "x", 1),
            p("b", "x", 1),
            p("a", "x", 2),
            p("a", "y", 2),
        ];
        let s = group(&pts);
        let shape: Vec<(&str, &str, Vec<usize>)> = s
            .iter()
            .map(|s| (s.device.as_str(), s.metric.as_str(), s.points.clone()))
            .collect();
        assert_eq!(
            shape,
            [
                ("a", "x", vec![0, 2]),
                ("b", "x", vec![1]),
                ("a", "y", vec![3])
            ]
        );
    }
}
