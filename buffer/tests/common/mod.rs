//! Helpers shared by the integration tests: point factories and journal shortcuts.

#![allow(dead_code)]

use std::path::Path;

use fieldlink_buffer::{
    Batch, BatchBody, BatchLimits, BlockingJournal, JournalConfig, RecordClass, Wait,
};
use fieldlink_protocol::{Ident, Point, Quality, Value};

/// Point `n` of a numbered stream: its value encodes `n`, so tests can recognise it.
pub fn point(n: u64) -> Point {
    Point {
        device: Ident::new(&format!("dev{}", n % 3)).unwrap(),
        metric: Ident::new(&format!("m{}", n % 7)).unwrap(),
        ts_ms: 1_700_000_000_000 + n as i64,
        value: Value::Number(n as f64),
        quality: Quality::Good,
    }
}

/// The stream number a [`point`] carries.
pub fn number(p: &Point) -> u64 {
    match p.value {
        Value::Number(v) => v as u64,
        _ => panic!("not a numbered point: {p:?}"),
    }
}

pub fn points(range: std::ops::Range<u64>) -> Vec<Point> {
    range.map(point).collect()
}

pub fn config(path: &Path) -> JournalConfig {
    JournalConfig::new(path)
}

pub fn open(path: &Path) -> BlockingJournal {
    BlockingJournal::open(config(path)).unwrap()
}

pub fn limits(max_points: usize) -> BatchLimits {
    BatchLimits {
        max_points,
        max_bytes: 1 << 20,
    }
}

/// What a batch carries, in a form easy to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Points(Vec<u64>, bool),
    Record(RecordClass, Vec<u8>),
}

pub fn content(b: &Batch) -> Content {
    match &b.body {
        BatchBody::Telemetry { points, historical } => {
            Content::Points(points.iter().map(number).collect(), *historical)
        }
        BatchBody::Record { class, payload, .. } => Content::Record(*class, payload.clone()),
    }
}

/// Reads and acknowledges everything, returning the stream numbers and records in order.
pub fn drain_all(j: &BlockingJournal) -> (Vec<u64>, Vec<(RecordClass, Vec<u8>)>) {
    let mut nums = Vec::new();
    let mut recs = Vec::new();
    while let Some(b) = j.next_batch(limits(1000)).unwrap() {
        match content(&b) {
            Content::Points(p, _) => nums.extend(p),
            Content::Record(c, p) => recs.push((c, p)),
        }
        assert!(j.ack(b.id).unwrap());
    }
    (nums, recs)
}

pub fn append(j: &BlockingJournal, range: std::ops::Range<u64>) {
    j.append_points(points(range), Wait::Commit).unwrap();
}
