//! Reading the binary form (layout in `binary/mod.rs`).
//!
//! Every count is checked against its limit and against the bytes left before anything is
//! allocated for it, so a short hostile payload cannot make the decoder reserve much memory.

use super::reader::Reader;
use super::timestamps;
use super::values::{self, Codec};
use super::{
    BinaryError, FLAG_HISTORICAL, HEADER_CODEC, HEADER_QUALITY, HEADER_SAME_TIMESTAMPS, MAGIC,
    VERSION,
};
use crate::error::DecodeError;
use crate::limits::{MAX_PAYLOAD_BYTES, MAX_POINTS_PER_BATCH, MAX_SERIES_PER_BATCH};
use crate::{Point, Quality, TelemetryBatch, Value};

/// Most entries in the string table: a device and a metric name per series.
const MAX_STRINGS: usize = 2 * MAX_SERIES_PER_BATCH;

/// Fewest bytes a series can take: two string indices, the header and one value byte.
const MIN_SERIES_BYTES: usize = 4;

/// Reads a batch in the binary form and validates it.
pub fn decode(bytes: &[u8]) -> Result<TelemetryBatch, DecodeError> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    let batch = read(&mut Reader::new(bytes))?;
    batch.validate_points()?;
    Ok(batch)
}

fn read(r: &mut Reader<'_>) -> Result<TelemetryBatch, BinaryError> {
    if r.u8("magic")? != MAGIC {
        return Err(BinaryError::BadMagic);
    }
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(BinaryError::UnsupportedVersion(version));
    }
    let offset = r.offset();
    let flags = r.u8("flags")?;
    if flags & !FLAG_HISTORICAL != 0 {
        return Err(BinaryError::ReservedBits {
            what: "flags",
            offset,
            value: flags,
        });
    }
    let boot_epoch = r.varint("boot epoch")?;
    let seq = r.varint("sequence number")?;
    let gateway = r.ident("gateway")?;

    let n_strings = bounded_count(r, MAX_STRINGS, 2, "string count")?;
    let mut strings = Vec::with_capacity(n_strings);
    for _ in 0..n_strings {
        strings.push(r.ident("device or metric name")?);
    }

    let n_series = bounded_count(r, MAX_SERIES_PER_BATCH, MIN_SERIES_BYTES, "series count")?;
    let mut points: Vec<Point> = Vec::new();
    let mut ts: Vec<i64> = Vec::new();
    let mut vals: Vec<Value> = Vec::new();
    for series in 0..n_series {
        let name = |r: &mut Reader<'_>| {
            let index = r.varint("string index")?;
            strings
                .get(index as usize)
                .cloned()
                .ok_or(BinaryError::StringIndex {
                    series,
                    index,
                    len: strings.len(),
                })
        };
        let device = name(r)?;
        let metric = name(r)?;
        let offset = r.offset();
        let header = r.u8("series header")?;
        if header & !(HEADER_CODEC | HEADER_QUALITY | HEADER_SAME_TIMESTAMPS) != 0 {
            return Err(BinaryError::ReservedBits {
                what: "series header",
                offset,
                value: header,
            });
        }
        let codec = Codec::from_bits(header & HEADER_CODEC).ok_or(BinaryError::UnknownCodec {
            series,
            codec: header & HEADER_CODEC,
        })?;
        let room = MAX_POINTS_PER_BATCH - points.len();
        if header & HEADER_SAME_TIMESTAMPS != 0 {
            if ts.is_empty() {
                return Err(BinaryError::NoPreviousTimestamps);
            }
            if ts.len() > room {
                return Err(BinaryError::TooLarge {
                    what: "points in batch",
                    offset,
                    value: (points.len() + ts.len()) as u64,
                    max: MAX_POINTS_PER_BATCH as u64,
                });
            }
        } else {
            let offset = r.offset();
            let n = r.count(room, "points in series")?;
            if n == 0 {
                return Err(BinaryError::EmptySeries { series });
            }
            // Even bit-packed booleans take a bit per point.
            if n.div_ceil(8) > r.remaining() {
                return Err(BinaryError::CountExceedsInput {
                    what: "points in series",
                    offset,
                    value: n as u64,
                    remaining: r.remaining(),
                });
            }
            let prev_t0 = ts.first().copied().unwrap_or(0);
            timestamps::decode(r, n, prev_t0, series, &mut ts)?;
        }
        let n = ts.len();
        values::decode(r, codec, n, series, &mut vals)?;
        let quality = if header & HEADER_QUALITY != 0 {
            Some(read_quality(r, n, series)?)
        } else {
            None
        };
        points.reserve(n);
        for (i, value) in vals.drain(..).enumerate() {
            points.push(Point {
                device: device.clone(),
                metric: metric.clone(),
                ts_ms: ts[i],
                value,
                quality: quality.as_ref().map_or(Quality::Good, |q| q[i]),
            });
        }
    }
    if r.remaining() > 0 {
        return Err(BinaryError::TrailingBytes {
            count: r.remaining(),
        });
    }
    Ok(TelemetryBatch {
        gateway,
        boot_epoch,
        seq,
        historical: flags & FLAG_HISTORICAL != 0,
        points,
    })
}

/// A count of entries that take at least `min_bytes` each: refused if above `max` or if the
/// bytes left cannot hold that many.
fn bounded_count(
    r: &mut Reader<'_>,
    max: usize,
    min_bytes: usize,
    what: &'static str,
) -> Result<usize, BinaryError> {
    let offset = r.offset();
    let n = r.count(max, what)?;
    if n.saturating_mul(min_bytes) > r.remaining() {
        return Err(BinaryError::CountExceedsInput {
            what,
            offset,
            value: n as u64,
            remaining: r.remaining(),
        });
    }
    Ok(n)
}

fn read_quality(r: &mut Reader<'_>, n: usize, series: usize) -> Result<Vec<Quality>, BinaryError> {
    let offset = r.offset();
    let packed = r.bytes(n.div_ceil(4), "quality")?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let code = packed[i / 4] >> (2 * (i % 4)) & 3;
        out.push(match code {
            0 => Quality::Good,
            1 => Quality::Uncertain,
            2 => Quality::Bad,
            value => {
                return Err(BinaryError::UnknownCode {
                    series,
                    what: "quality code",
                    offset: offset + i / 4,
                    value,
                })
            }
        });
    }
    if !n.is_multiple_of(4) && packed[n / 4] >> (2 * (n % 4)) != 0 {
        return Err(BinaryError::ReservedBits {
            what: "quality padding",
            offset: offset + n / 4,
            value: packed[n / 4],
        });
    }
    Ok(out)
}
