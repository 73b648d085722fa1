//! Writing a batch in the binary form (layout in `binary/mod.rs`).

use std::collections::HashMap;

use super::timestamps;
use super::values::{self, Codec, Frame};
use super::varint::put_u64;
use super::{
    FLAG_HISTORICAL, HEADER_PACKED, HEADER_QUALITY, HEADER_SAME_TIMESTAMPS, MAGIC, VERSION,
    VERSION_ALIASED, VERSION_PACKED,
};
use crate::alias::SeriesAliases;
use crate::error::EncodeError;
use crate::limits::{MAX_CONFIG_HASH_LEN, MAX_PAYLOAD_BYTES, MAX_SERIES_PER_BATCH};
use crate::message::series::{self, Series};
use crate::{validate, Point, Quality, TelemetryBatch, Value};

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

    finish(out)
}

fn finish(out: Vec<u8>) -> Result<Vec<u8>, EncodeError> {
    if out.len() > MAX_PAYLOAD_BYTES {
        return Err(EncodeError::TooLarge {
            len: out.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(out)
}

/// What starting another run costs at least: run length, first alias, header, scale.
const NEW_RUN_BYTES: usize = 4;

/// One series, ready to write: its timestamps and values in batch order and how they are coded.
struct Column<'s, 'p> {
    alias: Option<u32>,
    series: &'s Series<'p>,
    ts: Vec<i64>,
    vals: Vec<&'p Value>,
    codec: Codec,
    scale: u8,
    quality: bool,
}

impl<'s, 'p> Column<'s, 'p> {
    fn new(s: &'s Series<'p>, points: &'p [Point], aliases: &SeriesAliases) -> Self {
        let vals: Vec<&Value> = s.points.iter().map(|&i| &points[i].value).collect();
        let (codec, scale) = values::choose(&vals, NumberCoding::Auto);
        Column {
            alias: aliases.alias(s.device, s.metric),
            series: s,
            ts: s.points.iter().map(|&i| points[i].ts_ms).collect(),
            vals,
            codec,
            scale,
            quality: s.points.iter().any(|&i| !points[i].quality.is_good()),
        }
    }

    fn header(&self, same_timestamps: bool) -> u8 {
        let mut h = self.codec as u8;
        if self.quality {
            h |= HEADER_QUALITY;
        }
        if same_timestamps {
            h |= HEADER_SAME_TIMESTAMPS;
        }
        h
    }
}

/// Validates `batch` and writes it in the aliased binary form (version 2): series that
/// `aliases` knows are named by alias, in runs of consecutive aliases that share a timestamp
/// column, a codec and a decimal scale; any other series by name, as in version 1.
pub fn encode_aliased(
    batch: &TelemetryBatch,
    aliases: &SeriesAliases,
) -> Result<Vec<u8>, EncodeError> {
    write_aliased(batch, aliases, VERSION_ALIASED)
}

/// [`encode_aliased`] in the packed form (version 3): as version 2, but a run of decimal
/// series writes the first values of its columns together, bit-packed over their common
/// base, and each column only its deltas. Only for a receiver that said it reads version 3.
pub fn encode_packed(
    batch: &TelemetryBatch,
    aliases: &SeriesAliases,
) -> Result<Vec<u8>, EncodeError> {
    write_aliased(batch, aliases, VERSION_PACKED)
}

fn write_aliased<'a>(
    batch: &'a TelemetryBatch,
    aliases: &SeriesAliases,
    version: u8,
) -> Result<Vec<u8>, EncodeError> {
    batch.validate_points()?;
    validate::label(aliases.config_hash(), MAX_CONFIG_HASH_LEN, || {
        "config_hash".into()
    })?;
    let points = &batch.points;
    let series = series::group(points);
    validate::count(series.len(), MAX_SERIES_PER_BATCH, || "series".into())?;
    let cols: Vec<Column<'_, 'a>> = series
        .iter()
        .map(|s| Column::new(s, points, aliases))
        .collect();

    let mut out = Vec::with_capacity(64 + points.len() * 3);
    out.extend_from_slice(&[MAGIC, version]);
    out.push(if batch.historical { FLAG_HISTORICAL } else { 0 });
    put_u64(&mut out, batch.boot_epoch);
    put_u64(&mut out, batch.seq);
    put_str(&mut out, batch.gateway.as_str());
    put_str(&mut out, aliases.config_hash());
    out.extend_from_slice(&aliases.check().to_le_bytes());

    // String table of the series the birth does not know.
    let mut index: HashMap<&str, u64> = HashMap::new();
    let mut strings: Vec<&str> = Vec::new();
    let mut refs: Vec<(u64, u64)> = Vec::new();
    for c in cols.iter().filter(|c| c.alias.is_none()) {
        let mut intern = |name: &'a str| -> u64 {
            *index.entry(name).or_insert_with(|| {
                strings.push(name);
                strings.len() as u64 - 1
            })
        };
        refs.push((
            intern(c.series.device.as_str()),
            intern(c.series.metric.as_str()),
        ));
    }
    put_u64(&mut out, strings.len() as u64);
    for s in &strings {
        put_str(&mut out, s);
    }

    put_u64(&mut out, cols.len() as u64);
    let mut refs = refs.into_iter();
    let mut prev_ts: &[i64] = &[];
    let mut i = 0;
    while i < cols.len() {
        let c = &cols[i];
        let same = !prev_ts.is_empty() && c.ts == prev_ts;
        let Some(first) = c.alias else {
            let (d, m) = refs.next().unwrap_or_default();
            put_u64(&mut out, 0);
            put_u64(&mut out, d);
            put_u64(&mut out, m);
            out.push(c.header(same));
            if !same {
                put_u64(&mut out, c.ts.len() as u64);
                timestamps::encode(&mut out, &c.ts, prev_ts.first().copied().unwrap_or(0));
                prev_ts = &c.ts;
            }
            values::encode(&mut out, c.codec, c.scale, &c.vals);
            if c.quality {
                put_quality(&mut out, c.series.points.iter().map(|&i| points[i].quality));
            }
            i += 1;
            continue;
        };
        // The longest run from `i` of consecutive aliases with one timestamp column, codec,
        // quality presence and (for decimals) a scale every member fits.
        let mut end = i + 1;
        let mut scale = c.scale;
        while let Some(n) = cols.get(end) {
            let next_alias = u64::from(first) + (end - i) as u64;
            if n.alias.map(u64::from) != Some(next_alias)
                || n.codec != c.codec
                || n.quality != c.quality
                || n.ts != c.ts
            {
                break;
            }
            if c.codec == Codec::Decimal {
                // Join at the larger scale only when that costs less than a new run would.
                let k = scale.max(n.scale);
                let at = |m: &Column<'_, '_>, k: u8| values::decimal_len(&m.vals, k);
                let joined = cols[i..=end]
                    .iter()
                    .map(|m| at(m, k))
                    .sum::<Option<usize>>();
                let apart = cols[i..end]
                    .iter()
                    .map(|m| at(m, scale))
                    .sum::<Option<usize>>()
                    .zip(at(n, n.scale))
                    .map(|(a, b)| a + b + NEW_RUN_BYTES);
                match (joined, apart) {
                    (Some(j), Some(a)) if j <= a => scale = k,
                    _ => break,
                }
            }
            end += 1;
        }
        let packed = (version == VERSION_PACKED && c.codec == Codec::Decimal)
            .then(|| {
                let columns: Vec<&[&Value]> = cols[i..end].iter().map(|m| &m.vals[..]).collect();
                values::first_mantissas(&columns, scale)
            })
            .filter(|firsts| values::packed_len(firsts) < values::unpacked_len(firsts));
        put_u64(&mut out, (end - i) as u64);
        put_u64(&mut out, u64::from(first));
        out.push(c.header(same) | if packed.is_some() { HEADER_PACKED } else { 0 });
        if !same {
            put_u64(&mut out, c.ts.len() as u64);
            timestamps::encode(&mut out, &c.ts, prev_ts.first().copied().unwrap_or(0));
            prev_ts = &c.ts;
        }
        let mut frame = Frame::InRun;
        if c.codec == Codec::Decimal {
            out.push(scale);
        }
        if let Some(firsts) = &packed {
            values::put_packed(&mut out, firsts);
            frame = Frame::InPackedRun;
        }
        for m in &cols[i..end] {
            values::encode_column(&mut out, m.codec, scale, frame, &m.vals);
            if m.quality {
                put_quality(&mut out, m.series.points.iter().map(|&i| points[i].quality));
            }
        }
        i = end;
    }
    finish(out)
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
