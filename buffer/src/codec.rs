//! The stored form of a telemetry segment: points packed into one blob.
//!
//! One SQLite row per point would spend ~25 bytes of row overhead on a value that is often a
//! single small integer, and would make append and drain one B-tree operation per point. A
//! segment packs a run of points of one cycle (up to `segment_points`, about 1 KiB) into one
//! row instead:
//!
//! ```text
//! segment := point*
//! point   := series:varint  ts:zigzag-varint  tag:u8  value
//! ts      := the first point's timestamp, then the delta from the previous point
//! tag     := kind (bits 0-2) | quality << 3
//! value   := nothing (false, true) | zigzag-varint (integral number) | f32 LE (number exact
//!            in f32) | f64 LE (other numbers) | len:varint utf8 (string)
//! ```
//!
//! A cycle's points share a timestamp (delta 0, one byte) and a Modbus register is usually an
//! integer or a float32, so a point typically takes 4 to 7 bytes. Numbers round-trip bit for bit
//! (NaN payloads and -0.0 included). Decoding is total: damaged bytes give `Corrupt`, never a
//! panic.

use fieldlink_protocol::point::MAX_STRING_VALUE_LEN;
use fieldlink_protocol::{Point, Quality, Value};

use crate::error::{JournalError, Result};
use crate::series::{SeriesDictionary, SeriesId};

const KIND_FALSE: u8 = 0;
const KIND_TRUE: u8 = 1;
const KIND_INT: u8 = 2;
const KIND_F32: u8 = 3;
const KIND_F64: u8 = 4;
const KIND_STR: u8 = 5;

/// Builds one segment point by point, so the caller can close it at a size that packs well
/// into SQLite pages.
#[derive(Debug, Default)]
pub(crate) struct SegmentEncoder {
    body: Vec<u8>,
    points: usize,
    prev_ts: i64,
    point: Vec<u8>,
}

impl SegmentEncoder {
    /// Adds `p` unless the segment already holds points and would grow past `max_bytes`; then
    /// returns `false` and leaves the segment as it was.
    pub(crate) fn push(&mut self, series: SeriesId, p: &Point, max_bytes: usize) -> Result<bool> {
        self.point.clear();
        encode_point(series, p, self.prev_ts, self.points == 0, &mut self.point)?;
        if self.points > 0 && self.body.len() + self.point.len() > max_bytes {
            return Ok(false);
        }
        self.body.extend_from_slice(&self.point);
        self.points += 1;
        self.prev_ts = p.ts_ms;
        Ok(true)
    }

    pub(crate) fn points(&self) -> usize {
        self.points
    }

    /// The finished segment (point count, bytes); the encoder is empty again.
    pub(crate) fn finish(&mut self) -> (usize, Vec<u8>) {
        let done = (self.points, std::mem::take(&mut self.body));
        self.points = 0;
        self.prev_ts = 0;
        done
    }
}

/// Appends the encoding of `points` to `out` as one segment.
#[cfg(test)]
pub(crate) fn encode_segment(points: &[(SeriesId, &Point)], out: &mut Vec<u8>) -> Result<()> {
    let mut enc = SegmentEncoder::default();
    for (series, p) in points {
        enc.push(*series, p, usize::MAX)?;
    }
    out.extend_from_slice(&enc.finish().1);
    Ok(())
}

fn encode_point(
    series: SeriesId,
    p: &Point,
    prev_ts: i64,
    first: bool,
    out: &mut Vec<u8>,
) -> Result<()> {
    put_varint(out, u64::from(series));
    let delta = if first {
        p.ts_ms
    } else {
        p.ts_ms.wrapping_sub(prev_ts)
    };
    put_varint(out, zigzag(delta));
    let quality = match p.quality {
        Quality::Good => 0u8,
        Quality::Uncertain => 1,
        Quality::Bad => 2,
    } << 3;
    match &p.value {
        Value::Bool(false) => out.push(KIND_FALSE | quality),
        Value::Bool(true) => out.push(KIND_TRUE | quality),
        Value::Number(v) => encode_number(*v, quality, out),
        Value::Str(s) => {
            if s.len() > MAX_STRING_VALUE_LEN {
                return Err(JournalError::Rejected(format!(
                    "string value of {} bytes exceeds {MAX_STRING_VALUE_LEN}",
                    s.len()
                )));
            }
            out.push(KIND_STR | quality);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
    }
    Ok(())
}

fn encode_number(v: f64, quality: u8, out: &mut Vec<u8>) {
    let as_int = v as i64;
    if (as_int as f64).to_bits() == v.to_bits() && as_int.unsigned_abs() < (1 << 53) {
        out.push(KIND_INT | quality);
        put_varint(out, zigzag(as_int));
    } else if f64::from(v as f32).to_bits() == v.to_bits() {
        out.push(KIND_F32 | quality);
        out.extend_from_slice(&(v as f32).to_le_bytes());
    } else {
        out.push(KIND_F64 | quality);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Decodes a segment of `count` points, appending them to `out`.
pub(crate) fn decode_segment(
    mut bytes: &[u8],
    count: usize,
    series: &SeriesDictionary,
    out: &mut Vec<Point>,
) -> Result<()> {
    let mut prev_ts = 0i64;
    for i in 0..count {
        let id = get_varint(&mut bytes)?;
        let id = SeriesId::try_from(id).map_err(|_| corrupt("series id out of range"))?;
        let (device, metric) = series
            .lookup(id)
            .ok_or_else(|| corrupt("unknown series id"))?;
        let delta = unzigzag(get_varint(&mut bytes)?);
        let ts_ms = if i == 0 {
            delta
        } else {
            prev_ts.wrapping_add(delta)
        };
        prev_ts = ts_ms;
        let tag = take(&mut bytes, 1)?[0];
        let quality = match tag >> 3 {
            0 => Quality::Good,
            1 => Quality::Uncertain,
            2 => Quality::Bad,
            _ => return Err(corrupt("bad quality")),
        };
        let value = match tag & 0x7 {
            KIND_FALSE => Value::Bool(false),
            KIND_TRUE => Value::Bool(true),
            KIND_INT => Value::Number(unzigzag(get_varint(&mut bytes)?) as f64),
            KIND_F32 => {
                let b = take(&mut bytes, 4)?;
                Value::Number(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            }
            KIND_F64 => {
                let b = take(&mut bytes, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::Number(f64::from_le_bytes(a))
            }
            KIND_STR => {
                let len = get_varint(&mut bytes)?;
                if len > MAX_STRING_VALUE_LEN as u64 {
                    return Err(corrupt("string too long"));
                }
                let b = take(&mut bytes, len as usize)?;
                let s = std::str::from_utf8(b).map_err(|_| corrupt("string not utf-8"))?;
                Value::Str(s.to_string())
            }
            _ => return Err(corrupt("bad value kind")),
        };
        out.push(Point {
            device: device.clone(),
            metric: metric.clone(),
            ts_ms,
            value,
            quality,
        });
    }
    if !bytes.is_empty() {
        return Err(corrupt("trailing bytes after segment"));
    }
    Ok(())
}

fn corrupt(what: &str) -> JournalError {
    JournalError::Corrupt(format!("telemetry segment: {what}"))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &mut &[u8]) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = take(bytes, 1)?[0];
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(corrupt("varint too long"))
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if bytes.len() < n {
        return Err(corrupt("truncated"));
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_protocol::Ident;
    use proptest::prelude::*;

    fn point(metric: &str, ts_ms: i64, value: Value, quality: Quality) -> Point {
        Point {
            device: Ident::new("meter-1").unwrap(),
            metric: Ident::new(metric).unwrap(),
            ts_ms,
            value,
            quality,
        }
    }

    fn roundtrip(points: &[Point]) -> (Vec<Point>, usize) {
        let mut dict = SeriesDictionary::default();
        let ids: Vec<_> = points
            .iter()
            .map(|p| dict.id_or_stage(&p.device, &p.metric).0)
            .collect();
        dict.commit_staged();
        let pairs: Vec<_> = ids.into_iter().zip(points.iter()).collect();
        let mut blob = Vec::new();
        encode_segment(&pairs, &mut blob).unwrap();
        let mut out = Vec::new();
        decode_segment(&blob, points.len(), &dict, &mut out).unwrap();
        (out, blob.len())
    }

    #[test]
    fn a_cycle_of_integers_takes_few_bytes_per_point() {
        let points: Vec<_> = (0..100)
            .map(|i| {
                point(
                    &format!("r{i}"),
                    1_700_000_000_000,
                    Value::Number(f64::from(i * 3)),
                    Quality::Good,
                )
            })
            .collect();
        let (back, len) = roundtrip(&points);
        assert_eq!(back, points);
        assert!(len <= 100 * 5, "{len} bytes");
    }

    #[test]
    fn numbers_roundtrip_bit_for_bit() {
        let odd = [
            -0.0,
            f64::NAN,
            f64::from_bits(0x7ff8_dead_beef_0001),
            f64::INFINITY,
            f64::NEG_INFINITY,
            1.5,
            0.1,
            9.007_199_254_740_993e15,
            -9.3e18,
            f64::MIN_POSITIVE,
        ];
        let points: Vec<_> = odd
            .iter()
            .map(|v| point("m", 1, Value::Number(*v), Quality::Bad))
            .collect();
        let (back, _) = roundtrip(&points);
        for (a, b) in points.iter().zip(back.iter()) {
            match (&a.value, &b.value) {
                (Value::Number(x), Value::Number(y)) => assert_eq!(x.to_bits(), y.to_bits()),
                _ => panic!("kind changed"),
            }
        }
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let points = [point("m", 1, Value::Str("abc".into()), Quality::Good)];
        let mut dict = SeriesDictionary::default();
        let id = dict.id_or_stage(&points[0].device, &points[0].metric).0;
        dict.commit_staged();
        let mut blob = Vec::new();
        encode_segment(&[(id, &points[0])], &mut blob).unwrap();
        for cut in 0..blob.len() {
            let mut out = Vec::new();
            assert!(decode_segment(&blob[..cut], 1, &dict, &mut out).is_err());
        }
        let mut out = Vec::new();
        assert!(decode_segment(&blob, 2, &dict, &mut out).is_err());
    }

    #[test]
    fn the_encoder_refuses_a_point_past_the_size_but_never_the_first() {
        let mut dict = SeriesDictionary::default();
        let p = point("m", 7, Value::Number(0.1), Quality::Good);
        let id = dict.id_or_stage(&p.device, &p.metric).0;
        let mut enc = SegmentEncoder::default();
        assert!(enc.push(id, &p, 1).unwrap(), "the first point always fits");
        assert!(!enc.push(id, &p, 12).unwrap());
        assert_eq!(enc.points(), 1);
        assert!(enc.push(id, &p, 100).unwrap());
        let (n, body) = enc.finish();
        dict.commit_staged();
        let mut out = Vec::new();
        decode_segment(&body, n, &dict, &mut out).unwrap();
        assert_eq!(out, vec![p.clone(), p]);
        assert_eq!(enc.points(), 0);
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<f64>().prop_map(Value::Number),
            any::<i32>().prop_map(|i| Value::Number(f64::from(i))),
            "[a-z]{0,20}".prop_map(Value::Str),
        ]
    }

    proptest! {
        #[test]
        fn any_points_roundtrip(
            items in proptest::collection::vec((0u8..4, any::<i64>(), value(), 0u8..3), 0..40)
        ) {
            let points: Vec<_> = items
                .into_iter()
                .map(|(m, ts, v, q)| {
                    let q = [Quality::Good, Quality::Uncertain, Quality::Bad][q as usize];
                    point(&format!("m{m}"), ts, v, q)
                })
                .collect();
            let (back, _) = roundtrip(&points);
            prop_assert_eq!(back.len(), points.len());
            for (a, b) in points.iter().zip(back.iter()) {
                prop_assert_eq!(&a.metric, &b.metric);
                prop_assert_eq!(a.ts_ms, b.ts_ms);
                prop_assert_eq!(a.quality, b.quality);
                match (&a.value, &b.value) {
                    (Value::Number(x), Value::Number(y)) => prop_assert_eq!(x.to_bits(), y.to_bits()),
                    (x, y) => prop_assert_eq!(x, y),
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), n in 0usize..8) {
            let mut dict = SeriesDictionary::default();
            dict.id_or_stage(&Ident::new("d").unwrap(), &Ident::new("m").unwrap());
            dict.commit_staged();
            let mut out = Vec::new();
            let _ = decode_segment(&bytes, n, &dict, &mut out);
        }
    }
}
