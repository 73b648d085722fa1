//! Reading the binary form (layout in `binary/mod.rs`).
//!
//! Every count is checked against its limit and against the bytes left before anything is
//! allocated for it, so a short hostile payload cannot make the decoder reserve much memory.

use super::reader::Reader;
use super::timestamps;
use super::values::{self, Codec, RunShared};
use super::{
    BinaryError, FLAG_HISTORICAL, HEADER_CODEC, HEADER_PACKED, HEADER_QUALITY,
    HEADER_SAME_TIMESTAMPS, MAGIC, VERSION, VERSION_ALIASED, VERSION_PACKED,
};
use crate::alias::{BirthRef, SeriesAliases};
use crate::error::DecodeError;
use crate::limits::{
    MAX_CONFIG_HASH_LEN, MAX_PAYLOAD_BYTES, MAX_POINTS_PER_BATCH, MAX_SERIES_PER_BATCH,
};
use crate::{Ident, Point, Quality, TelemetryBatch, Value};

/// Most entries in the string table: a device and a metric name per series.
const MAX_STRINGS: usize = 2 * MAX_SERIES_PER_BATCH;

/// Fewest bytes a series can take: two string indices, the header and one value byte.
const MIN_SERIES_BYTES: usize = 4;

/// Fewest bytes a series of a run takes in the aliased form: one value byte.
const MIN_ALIASED_SERIES_BYTES: usize = 1;

/// In the packed form the first values of a run's series can take no bits at all (all equal).
const MIN_PACKED_SERIES_BYTES: usize = 0;

/// Reads a batch in the named binary form (version 1) and validates it. A payload in the
/// aliased form (version 2) is refused with [`BinaryError::NeedsBirth`], naming the birth it
/// needs; read it with [`decode_aliased`].
pub fn decode(bytes: &[u8]) -> Result<TelemetryBatch, DecodeError> {
    decode_with(bytes, None)
}

/// Reads a batch in any binary form and validates it; `aliases` resolves the aliased forms
/// (versions 2 and 3) and must be the table of the birth the payload names.
pub fn decode_aliased(
    bytes: &[u8],
    aliases: &SeriesAliases,
) -> Result<TelemetryBatch, DecodeError> {
    decode_with(bytes, Some(aliases))
}

fn decode_with(
    bytes: &[u8],
    aliases: Option<&SeriesAliases>,
) -> Result<TelemetryBatch, DecodeError> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    let batch = read(&mut Reader::new(bytes), aliases)?;
    batch.validate_points()?;
    Ok(batch)
}

/// The birth an aliased payload (version 2 or 3) was written against, or `None` for the named
/// form. Reads the header only; the rest is checked by [`decode_aliased`].
pub fn birth_ref(bytes: &[u8]) -> Result<Option<BirthRef>, DecodeError> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    let r = &mut Reader::new(bytes);
    let header = read_header(r)?;
    if header.version == VERSION {
        return Ok(None);
    }
    Ok(Some(read_birth_ref(r)?))
}

struct Header {
    version: u8,
    flags: u8,
    boot_epoch: u64,
    seq: u64,
    gateway: Ident,
}

fn read_header(r: &mut Reader<'_>) -> Result<Header, BinaryError> {
    if r.u8("magic")? != MAGIC {
        return Err(BinaryError::BadMagic);
    }
    let version = r.u8("version")?;
    if !matches!(version, VERSION | VERSION_ALIASED | VERSION_PACKED) {
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
    Ok(Header {
        version,
        flags,
        boot_epoch: r.varint("boot epoch")?,
        seq: r.varint("sequence number")?,
        gateway: r.ident("gateway")?,
    })
}

fn read_birth_ref(r: &mut Reader<'_>) -> Result<BirthRef, BinaryError> {
    let offset = r.offset();
    let hash = r.str(MAX_CONFIG_HASH_LEN, "config hash")?;
    if hash.is_empty() || hash.chars().any(char::is_control) {
        return Err(BinaryError::BadConfigHash { offset });
    }
    let check = r.bytes(4, "alias table check")?;
    Ok(BirthRef {
        config_hash: hash.to_string(),
        check: u32::from_le_bytes([check[0], check[1], check[2], check[3]]),
    })
}

/// The timestamp and value columns read so far, and the points made of them.
#[derive(Default)]
struct Body {
    points: Vec<Point>,
    ts: Vec<i64>,
    vals: Vec<Value>,
}

impl Body {
    /// Reads a series' header byte; `packable` allows the packed bit (a run in version 3),
    /// for decimal series only.
    fn header(
        &self,
        r: &mut Reader<'_>,
        series: usize,
        packable: bool,
    ) -> Result<(u8, Codec), BinaryError> {
        let offset = r.offset();
        let header = r.u8("series header")?;
        let mut allowed = HEADER_CODEC | HEADER_QUALITY | HEADER_SAME_TIMESTAMPS;
        if packable && header & HEADER_CODEC == Codec::Decimal as u8 {
            allowed |= HEADER_PACKED;
        }
        if header & !allowed != 0 {
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
        Ok((header, codec))
    }

    /// Reads the timestamp column announced by `header` (or keeps the previous one), after
    /// checking that `columns` columns of that length fit the batch.
    fn timestamps(
        &mut self,
        r: &mut Reader<'_>,
        header: u8,
        columns: usize,
        series: usize,
    ) -> Result<(), BinaryError> {
        let room = MAX_POINTS_PER_BATCH - self.points.len();
        let offset = r.offset();
        if header & HEADER_SAME_TIMESTAMPS != 0 {
            if self.ts.is_empty() {
                return Err(BinaryError::NoPreviousTimestamps);
            }
        } else {
            let n = r.count(room, "points in series")?;
            if n == 0 {
                return Err(BinaryError::EmptySeries { series });
            }
            // Even bit-packed booleans take a bit per point; packed decimals only a delta byte
            // for every point after the first of each column.
            let least = if header & HEADER_PACKED != 0 {
                (n - 1).saturating_mul(columns)
            } else {
                n.saturating_mul(columns).div_ceil(8)
            };
            if least > r.remaining() {
                return Err(BinaryError::CountExceedsInput {
                    what: "points in series",
                    offset,
                    value: n as u64,
                    remaining: r.remaining(),
                });
            }
            let prev_t0 = self.ts.first().copied().unwrap_or(0);
            timestamps::decode(r, n, prev_t0, series, &mut self.ts)?;
        }
        let total = self.ts.len().saturating_mul(columns);
        if total > room {
            return Err(BinaryError::TooLarge {
                what: "points in batch",
                offset,
                value: (self.points.len() + total) as u64,
                max: MAX_POINTS_PER_BATCH as u64,
            });
        }
        Ok(())
    }

    /// Reads one value column (and its quality column) over the current timestamps.
    fn column(
        &mut self,
        r: &mut Reader<'_>,
        (header, codec): (u8, Codec),
        shared: RunShared,
        (device, metric): (&Ident, &Ident),
        series: usize,
    ) -> Result<(), BinaryError> {
        let n = self.ts.len();
        values::decode_column(r, codec, shared, n, series, &mut self.vals)?;
        let quality = if header & HEADER_QUALITY != 0 {
            Some(read_quality(r, n, series)?)
        } else {
            None
        };
        self.points.reserve(n);
        for (i, value) in self.vals.drain(..).enumerate() {
            self.points.push(Point {
                device: device.clone(),
                metric: metric.clone(),
                ts_ms: self.ts[i],
                value,
                quality: quality.as_ref().map_or(Quality::Good, |q| q[i]),
            });
        }
        Ok(())
    }
}

fn read(
    r: &mut Reader<'_>,
    aliases: Option<&SeriesAliases>,
) -> Result<TelemetryBatch, BinaryError> {
    let Header {
        version,
        flags,
        boot_epoch,
        seq,
        gateway,
    } = read_header(r)?;
    let aliases = if version != VERSION {
        let found = read_birth_ref(r)?;
        match aliases {
            None => return Err(BinaryError::NeedsBirth(found)),
            Some(a) if !a.matches(&found) => {
                return Err(BinaryError::WrongBirth {
                    found,
                    have: a.birth_ref(),
                })
            }
            Some(a) => Some(a),
        }
    } else {
        None
    };

    let n_strings = bounded_count(r, MAX_STRINGS, 2, "string count")?;
    let mut strings = Vec::with_capacity(n_strings);
    for _ in 0..n_strings {
        strings.push(r.ident("device or metric name")?);
    }
    let name = |r: &mut Reader<'_>, series: usize| {
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

    let min_series_bytes = match version {
        VERSION => MIN_SERIES_BYTES,
        VERSION_ALIASED => MIN_ALIASED_SERIES_BYTES,
        _ => MIN_PACKED_SERIES_BYTES,
    };
    let n_series = bounded_count(r, MAX_SERIES_PER_BATCH, min_series_bytes, "series count")?;
    let mut body = Body::default();
    let mut series = 0;
    while series < n_series {
        let run = match aliases {
            None => 0,
            Some(_) => {
                let offset = r.offset();
                let run = r.varint("series run length")?;
                if run > (n_series - series) as u64 {
                    return Err(BinaryError::TooLarge {
                        what: "series run length",
                        offset,
                        value: run,
                        max: (n_series - series) as u64,
                    });
                }
                run as usize
            }
        };
        let Some(table) = aliases.filter(|_| run > 0) else {
            let device = name(r, series)?;
            let metric = name(r, series)?;
            let header = body.header(r, series, false)?;
            body.timestamps(r, header.0, 1, series)?;
            body.column(r, header, RunShared::default(), (&device, &metric), series)?;
            series += 1;
            continue;
        };
        let first = r.varint("first alias")?;
        let header = body.header(r, series, version == VERSION_PACKED)?;
        body.timestamps(r, header.0, run, series)?;
        let scale = match header.1 {
            Codec::Decimal => Some(values::read_scale(r)?),
            _ => None,
        };
        let firsts = if header.0 & HEADER_PACKED != 0 {
            values::read_packed(r, run)?
        } else {
            Vec::new()
        };
        for k in 0..run {
            let alias = first.saturating_add(k as u64);
            let (device, metric) = table.series(alias).ok_or(BinaryError::UnknownAlias {
                series: series + k,
                alias,
                len: table.len(),
            })?;
            let shared = RunShared {
                scale,
                first: firsts.get(k).copied(),
            };
            body.column(r, header, shared, (device, metric), series + k)?;
        }
        series += run;
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
        points: body.points,
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
