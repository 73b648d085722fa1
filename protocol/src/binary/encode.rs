//! Writing a batch in the binary form (layout in `binary/mod.rs`).

use std::collections::HashMap;

use super::timestamps;
use super::values;
use super::varint::put_u64;
use super::{FLAG_HISTORICAL, HEADER_QUALITY, HEADER_SAME_TIMESTAMPS, MAGIC, VERSION};
use crate::error::EncodeError;
use crate::limits::{MAX_PAYLOAD_BYTES, MAX_SERIES_PER_BATCH};
use crate::message::series;
use crate::{validate, Quality, TelemetryBatch, Value};

/// Choices the encoder makes. [`Default`] is what [`encode`] does; the alternatives exist so
/// that the benchmark can measure what each part of the design saves. Every choice produces a
/// valid payload that [`decode`](super::decode) reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Let a series reuse the previous series' timestamp column when it is identical.
    pub share_timestamps: bool,
    /// How series of numbers are coded.
    pub numbers: NumberCoding,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            share_timestamps: true,
            numbers: NumberCoding::Auto,
        }
    }
}

/// How a series of numbers is coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberCoding {
    /// Exact decimals with varint deltas where possible, else XOR.
    Auto,
    /// Always XOR of successive bit patterns.
    Xor,
    /// Always 8 raw bytes per value (the mixed codec).
    Raw,
}

/// Validates `batch` and writes it in the binary form.
pub fn encode(batch: &TelemetryBatch) -> Result<Vec<u8>, EncodeError> {
    encode_with(batch, EncodeOptions::default())
}

/// [`encode`] with explicit [`EncodeOptions`].
pub fn encode_with<'a>(
    batch: &'a TelemetryBatch,
    options: EncodeOptions,
) -> Result<Vec<u8>, EncodeError> {
    batch.validate_points()?;
    let points = &batch.points;
    let series = series::group(points);
    validate::count(series.len(), MAX_SERIES_PER_BATCH, || "series".into())?;

    let mut out = Vec::with_capacity(64 + points.len() * 3);
    out.extend_from_slice(&[MAGIC, VERSION]);
    out.push(if batch.historical { FLAG_HISTORICAL } else { 0 });
    put_u64(&mut out, batch.boot_epoch);
    put_u64(&mut out, batch.seq);
    put_str(&mut out, batch.gateway.as_str());

    // String table: every device and metric name once, in order of first use.
    let mut index: HashMap<&str, u64> = HashMap::new();
    let mut strings: Vec<&str> = Vec::new();
    let mut refs = Vec::with_capacity(series.len());
    for s in &series {
        let mut intern = |name: &'a str| -> u64 {
            *index.entry(name).or_insert_with(|| {
                strings.push(name);
                strings.len() as u64 - 1
            })
        };
        let d = intern(s.device.as_str());
        let m = intern(s.metric.as_str());
        refs.push((d, m));
    }
    put_u64(&mut out, strings.len() as u64);
    for s in &strings {
        put_str(&mut out, s);
    }

    put_u64(&mut out, series.len() as u64);
    let mut prev_ts: Vec<i64> = Vec::new();
    let mut ts: Vec<i64> = Vec::new();
    let mut vals: Vec<&Value> = Vec::new();
    for (s, (d, m)) in series.iter().zip(refs) {
        put_u64(&mut out, d);
        put_u64(&mut out, m);
        ts.clear();
        ts.extend(s.points.iter().map(|&i| points[i].ts_ms));
        vals.clear();
        vals.extend(s.points.iter().map(|&i| &points[i].value));
        let (codec, scale) = values::choose(&vals, options.numbers);
        let same = options.share_timestamps && !prev_ts.is_empty() && ts == prev_ts;
        let quality = s.points.iter().any(|&i| !points[i].quality.is_good());
        let mut header = codec as u8;
        if quality {
            header |= HEADER_QUALITY;
        }
        if same {
            header |= HEADER_SAME_TIMESTAMPS;
        }
        out.push(header);
        if !same {
            put_u64(&mut out, ts.len() as u64);
            timestamps::encode(&mut out, &ts, prev_ts.first().copied().unwrap_or(0));
            std::mem::swap(&mut prev_ts, &mut ts);
        }
        values::encode(&mut out, codec, scale, &vals);
        if quality {
            put_quality(&mut out, s.points.iter().map(|&i| points[i].quality));
        }
    }

    if out.len() > MAX_PAYLOAD_BYTES {
        return Err(EncodeError::TooLarge {
            len: out.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(out)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Two bits per point (0 good, 1 uncertain, 2 bad), four per byte, first point in the low bits.
fn put_quality(out: &mut Vec<u8>, q: impl Iterator<Item = Quality>) {
    let mut byte = 0u8;
    let mut k = 0;
    for q in q {
        let code = match q {
            Quality::Good => 0,
            Quality::Uncertain => 1,
            Quality::Bad => 2,
        };
        byte |= code << (2 * k);
        k += 1;
        if k == 4 {
            out.push(byte);
            byte = 0;
            k = 0;
        }
    }
    if k > 0 {
        out.push(byte);
    }
}
