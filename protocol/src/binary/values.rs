//! Value columns: one series' values, coded by what they are.
//!
//! Field readings are mostly register values times a decimal scale (`230.4` V, `49.98` Hz), so
//! a series of numbers is first tried as decimals: the smallest `k` such that every value is
//! exactly `n / 10^k` for an integer `n` (checked bit for bit), then written as the first `n`
//! and the deltas between successive `n`, zigzag varints. A slowly varying reading changes by a
//! few units of its last digit per sample, so most deltas take one byte. Numbers that are not
//! short decimals (computed floats, `-0.0`) fall back to an XOR of successive bit patterns
//! with the zero bytes at both ends dropped. Booleans are bit-packed, strings
//! length-prefixed, and a series of mixed types tags each value.

use super::encode::NumberCoding;
use super::reader::Reader;
use super::varint::{put_i64, put_u64};
use super::BinaryError;
use crate::limits::MAX_STRING_VALUE_LEN;
use crate::Value;

/// How a series' values are coded; the low three bits of the series header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Scale byte `k`, then zigzag varints: `n[0]`, `n[i] - n[i-1]`; value = `n / 10^k`.
    Decimal = 0,
    /// 8 bytes little-endian of the first value's bits, then per value an XOR header.
    Xor = 1,
    /// One bit per value, least significant bit first, padding bits zero.
    Bool = 2,
    /// Per value: varint length, UTF-8 bytes.
    Str = 3,
    /// Per value: a tag byte (0 number + 8 bytes, 1 false, 2 true, 3 string) and its data.
    Mixed = 4,
}

impl Codec {
    pub fn from_bits(bits: u8) -> Option<Codec> {
        Some(match bits {
            0 => Codec::Decimal,
            1 => Codec::Xor,
            2 => Codec::Bool,
            3 => Codec::Str,
            4 => Codec::Mixed,
            _ => return None,
        })
    }
}

/// Largest decimal scale: `10^15` is the largest power of ten below 2^53.
pub(crate) const MAX_DECIMAL_SCALE: u8 = 15;

const POW10: [f64; MAX_DECIMAL_SCALE as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Integers up to 2^53 convert to `f64` and back exactly.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// The integer `n` with `n / 10^k == x` bit for bit, if there is one.
/// The check repeats the decoder's own arithmetic, so `-0.0` (which would come back as `+0.0`)
/// is refused.
fn scaled(x: f64, k: u8) -> Option<i64> {
    let y = x * POW10[k as usize];
    if y.is_nan() || y.abs() > EXACT {
        return None;
    }
    let n = round_half_away(y);
    ((n as f64 / POW10[k as usize]).to_bits() == x.to_bits()).then_some(n)
}

/// `y.round()` as an integer, for `|y| <= 2^53`, from a truncating conversion and the remainder
/// (exact in binary floating point). The encoder calls this for every value at every scale it
/// tries; `f64::round` is a software routine on x86-64's baseline and on armv7, which have no
/// rounding instruction, and was a quarter of the agent's instructions with binary telemetry.
fn round_half_away(y: f64) -> i64 {
    let t = y as i64;
    let rest = y - t as f64;
    if rest >= 0.5 {
        t + 1
    } else if rest <= -0.5 {
        t - 1
    } else {
        t
    }
}

/// The smallest scale at which every value is an exact decimal. If `x == n / 10^k` then also
/// `x == 10n / 10^(k+1)` (both divisions round the same rational), so the scale found for one
/// value only ever needs to grow; the final pass re-checks all values at the final scale.
fn decimal_scale(values: &[&Value]) -> Option<u8> {
    let mut k = 0;
    for v in values {
        let Value::Number(x) = v else { return None };
        while scaled(*x, k).is_none() {
            k += 1;
            if k > MAX_DECIMAL_SCALE {
                return None;
            }
        }
    }
    values
        .iter()
        .all(|v| matches!(v, Value::Number(x) if scaled(*x, k).is_some()))
        .then_some(k)
}

/// Picks the codec for a series and, for [`Codec::Decimal`], its scale.
pub(crate) fn choose(values: &[&Value], numbers: NumberCoding) -> (Codec, u8) {
    if values.iter().all(|v| matches!(v, Value::Number(_))) {
        match numbers {
            NumberCoding::Auto => match decimal_scale(values) {
                Some(k) => (Codec::Decimal, k),
                None => (Codec::Xor, 0),
            },
            NumberCoding::Xor => (Codec::Xor, 0),
            NumberCoding::Raw => (Codec::Mixed, 0),
        }
    } else if values.iter().all(|v| matches!(v, Value::Bool(_))) {
        (Codec::Bool, 0)
    } else if values.iter().all(|v| matches!(v, Value::Str(_))) {
        (Codec::Str, 0)
    } else {
        (Codec::Mixed, 0)
    }
}

/// Bytes the decimal column of `values` takes at scale `k` (without the scale byte), or `None`
/// if a value does not fit that scale.
pub(crate) fn decimal_len(values: &[&Value], k: u8) -> Option<usize> {
    if k > MAX_DECIMAL_SCALE {
        return None;
    }
    let mut prev = 0i64;
    let mut len = 0;
    for v in values {
        let Value::Number(x) = v else { return None };
        let n = scaled(*x, k)?;
        len += varint_len(super::varint::zigzag(n.wrapping_sub(prev)));
        prev = n;
    }
    Some(len)
}

fn varint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).max(1).div_ceil(7)
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Number(x) => *x,
        _ => 0.0,
    }
}

/// Appends `values` coded with `codec` (as chosen by [`choose`]).
pub(crate) fn encode(out: &mut Vec<u8>, codec: Codec, scale: u8, values: &[&Value]) {
    encode_column(out, codec, scale, Frame::Alone, values);
}

/// How a value column is framed inside its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// On its own: a decimal column starts with its scale byte.
    Alone,
    /// In a run of aliased series (version 2): the run wrote the decimal scale once.
    InRun,
    /// In a packed run (version 3): the run also wrote the decimal first values, so a decimal
    /// column holds only its deltas.
    InPackedRun,
}

/// [`encode`] framed as `frame` says; in a run, `values` must fit `scale`.
pub(crate) fn encode_column(
    out: &mut Vec<u8>,
    codec: Codec,
    scale: u8,
    frame: Frame,
    values: &[&Value],
) {
    match codec {
        Codec::Decimal => {
            if frame == Frame::Alone {
                out.push(scale);
            }
            let mut prev = 0i64;
            for (i, v) in values.iter().enumerate() {
                let n = scaled(number(v), scale).unwrap_or(0);
                if i > 0 || frame != Frame::InPackedRun {
                    put_i64(out, n.wrapping_sub(prev));
                }
                prev = n;
            }
        }
        Codec::Xor => {
            let mut prev = 0u64;
            for (i, v) in values.iter().enumerate() {
                let bits = number(v).to_bits();
                if i == 0 {
                    out.extend_from_slice(&bits.to_le_bytes());
                } else {
                    put_xor(out, bits ^ prev);
                }
                prev = bits;
            }
        }
        Codec::Bool => {
            for chunk in values.chunks(8) {
                let byte = chunk.iter().enumerate().fold(0u8, |b, (i, v)| {
                    b | (u8::from(matches!(v, Value::Bool(true))) << i)
                });
                out.push(byte);
            }
        }
        Codec::Str => {
            for v in values {
                if let Value::Str(s) = v {
                    put_str(out, s);
                }
            }
        }
        Codec::Mixed => {
            for v in values {
                match v {
                    Value::Number(x) => {
                        out.push(0);
                        out.extend_from_slice(&x.to_bits().to_le_bytes());
                    }
                    Value::Bool(b) => out.push(1 + u8::from(*b)),
                    Value::Str(s) => {
                        out.push(3);
                        put_str(out, s);
                    }
                }
            }
        }
    }
}

/// The mantissa of each of `columns`' first values at `scale` (every value fits it).
pub(crate) fn first_mantissas(columns: &[&[&Value]], scale: u8) -> Vec<i64> {
    columns
        .iter()
        .map(|c| {
            c.first()
                .and_then(|v| scaled(number(v), scale))
                .unwrap_or(0)
        })
        .collect()
}

/// Writes the first mantissas of a run's decimal columns together (the packed form, version
/// 3): zvarint base (the smallest), a width byte `w`, then every mantissa minus the base in `w`
/// bits, least significant bit first, the last byte padded with zero bits. Readings of one
/// device tend to share a magnitude, so `w` is well below the two varint bytes a register
/// count of three or more digits takes on its own.
pub(crate) fn put_packed(out: &mut Vec<u8>, firsts: &[i64]) {
    let (base, width) = packing(firsts);
    let offsets = firsts.iter().map(|n| n.wrapping_sub(base) as u64);
    put_i64(out, base);
    out.push(width as u8);
    let mut acc: u128 = 0;
    let mut bits = 0u32;
    for o in offsets {
        acc |= u128::from(o) << bits;
        bits += width;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push(acc as u8);
    }
}

/// The base and bit width [`put_packed`] uses for `firsts`.
fn packing(firsts: &[i64]) -> (i64, u32) {
    let base = firsts.iter().copied().min().unwrap_or(0);
    let width = firsts
        .iter()
        .map(|n| 64 - (n.wrapping_sub(base) as u64).leading_zeros())
        .max()
        .unwrap_or(0);
    (base, width)
}

/// Bytes [`put_packed`] writes for `firsts`.
pub(crate) fn packed_len(firsts: &[i64]) -> usize {
    let (base, width) = packing(firsts);
    varint_len(super::varint::zigzag(base)) + 1 + (firsts.len() * width as usize).div_ceil(8)
}

/// Bytes the same first values take as the columns' own leading zigzag varints.
pub(crate) fn unpacked_len(firsts: &[i64]) -> usize {
    firsts
        .iter()
        .map(|n| varint_len(super::varint::zigzag(*n)))
        .sum()
}

/// Reads what [`put_packed`] wrote for `count` columns.
pub(crate) fn read_packed(r: &mut Reader<'_>, count: usize) -> Result<Vec<i64>, BinaryError> {
    let base = r.zigzag("packed base")?;
    let offset = r.offset();
    let width = r.u8("packed width")?;
    if width > 64 {
        return Err(BinaryError::TooLarge {
            what: "packed width",
            offset,
            value: width.into(),
            max: 64,
        });
    }
    let width = u32::from(width);
    let offset = r.offset();
    let packed = r.bytes((count * width as usize).div_ceil(8), "packed first values")?;
    let mask = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    let mut out = Vec::with_capacity(count);
    let mut bytes = packed.iter();
    let mut acc: u128 = 0;
    let mut bits = 0u32;
    for _ in 0..count {
        while bits < width {
            // The length was checked above, so the bytes cannot run out here.
            acc |= u128::from(*bytes.next().unwrap_or(&0)) << bits;
            bits += 8;
        }
        out.push(base.wrapping_add((acc as u64 & mask) as i64));
        acc = if width == 0 { acc } else { acc >> width };
        bits -= width;
    }
    if acc != 0 {
        let last = packed.len().saturating_sub(1);
        return Err(BinaryError::ReservedBits {
            what: "packed padding",
            offset: offset + last,
            value: packed.get(last).copied().unwrap_or(0),
        });
    }
    Ok(out)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// One XOR: `0x00` if zero, else `0b01LLLTTT` (`L` leading and `T` trailing zero bytes)
/// followed by the `8 - L - T` bytes in between, least significant first.
fn put_xor(out: &mut Vec<u8>, x: u64) {
    if x == 0 {
        out.push(0);
        return;
    }
    let lead = x.leading_zeros() / 8;
    let trail = x.trailing_zeros() / 8;
    out.push(0x40 | ((lead as u8) << 3) | trail as u8);
    out.extend_from_slice(&x.to_le_bytes()[trail as usize..(8 - lead) as usize]);
}

/// Reads a decimal scale byte.
pub(crate) fn read_scale(r: &mut Reader<'_>) -> Result<u8, BinaryError> {
    let offset = r.offset();
    let scale = r.u8("decimal scale")?;
    if scale > MAX_DECIMAL_SCALE {
        return Err(BinaryError::TooLarge {
            what: "decimal scale",
            offset,
            value: scale.into(),
            max: MAX_DECIMAL_SCALE.into(),
        });
    }
    Ok(scale)
}

/// What a run read before its columns: the decimal scale (version 2 and 3) and, in a packed
/// run (version 3), this column's first decimal mantissa.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunShared {
    pub scale: Option<u8>,
    pub first: Option<i64>,
}

/// Reads `n` values coded with `codec` into `out`. `shared` holds what the column's run read
/// before it; a column on its own (`RunShared::default()`) has its scale byte and first value.
pub(crate) fn decode_column(
    r: &mut Reader<'_>,
    codec: Codec,
    shared: RunShared,
    n: usize,
    series: usize,
    out: &mut Vec<Value>,
) -> Result<(), BinaryError> {
    out.clear();
    out.reserve(n);
    match codec {
        Codec::Decimal => {
            let scale = match shared.scale {
                Some(k) => k,
                None => read_scale(r)?,
            };
            let mut n_prev = 0i64;
            for i in 0..n {
                n_prev = match shared.first {
                    Some(first) if i == 0 => first,
                    _ => n_prev.wrapping_add(r.zigzag("decimal delta")?),
                };
                out.push(Value::Number(n_prev as f64 / POW10[scale as usize]));
            }
        }
        Codec::Xor => {
            let mut bits = u64::from_le_bytes(first_bits(r)?);
            out.push(Value::Number(f64::from_bits(bits)));
            for _ in 1..n {
                bits ^= xor(r, series)?;
                out.push(Value::Number(f64::from_bits(bits)));
            }
        }
        Codec::Bool => {
            let offset = r.offset();
            let packed = r.bytes(n.div_ceil(8), "packed booleans")?;
            for i in 0..n {
                out.push(Value::Bool(packed[i / 8] >> (i % 8) & 1 == 1));
            }
            if !n.is_multiple_of(8) && packed[n / 8] >> (n % 8) != 0 {
                return Err(BinaryError::ReservedBits {
                    what: "boolean padding",
                    offset: offset + n / 8,
                    value: packed[n / 8],
                });
            }
        }
        Codec::Str => {
            for _ in 0..n {
                out.push(Value::Str(
                    r.str(MAX_STRING_VALUE_LEN, "string value")?.to_string(),
                ));
            }
        }
        Codec::Mixed => {
            for _ in 0..n {
                let offset = r.offset();
                let v = match r.u8("value tag")? {
                    0 => Value::Number(f64::from_bits(u64::from_le_bytes(first_bits(r)?))),
                    1 => Value::Bool(false),
                    2 => Value::Bool(true),
                    3 => Value::Str(r.str(MAX_STRING_VALUE_LEN, "string value")?.to_string()),
                    value => {
                        return Err(BinaryError::UnknownCode {
                            series,
                            what: "value tag",
                            offset,
                            value,
                        })
                    }
                };
                out.push(v);
            }
        }
    }
    Ok(())
}

fn first_bits(r: &mut Reader<'_>) -> Result<[u8; 8], BinaryError> {
    let b = r.bytes(8, "f64")?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(a)
}

fn xor(r: &mut Reader<'_>, series: usize) -> Result<u64, BinaryError> {
    let offset = r.offset();
    let h = r.u8("xor header")?;
    if h == 0 {
        return Ok(0);
    }
    let lead = (h >> 3) & 7;
    let trail = h & 7;
    if h & 0xc0 != 0x40 || lead + trail > 7 {
        return Err(BinaryError::UnknownCode {
            series,
            what: "xor header",
            offset,
            value: h,
        });
    }
    let mid = r.bytes(usize::from(8 - lead - trail), "xor bytes")?;
    let mut a = [0u8; 8];
    a[trail as usize..(8 - lead) as usize].copy_from_slice(mid);
    Ok(u64::from_le_bytes(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Seeded by PROPTEST_RNG_SEED in scripts/test.sh.
        #[test]
        fn rounding_matches_f64_round(
            wide in -EXACT..=EXACT,
            narrow in -1.0e6f64..1.0e6,
            half in -1_000_000i64..1_000_000,
        ) {
            for y in [wide, narrow, half as f64 + 0.5, half as f64 - 0.5] {
                prop_assert_eq!(round_half_away(y), y.round() as i64, "{}", y);
            }
        }
    }

    #[test]
    fn rounding_at_the_edges() {
        for y in [
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.49999999999999994,
            -0.49999999999999994,
            -0.0,
            4503599627370495.5,
            -4503599627370495.5,
            EXACT,
            -EXACT,
            EXACT - 1.0,
        ] {
            assert_eq!(round_half_away(y), y.round() as i64, "{y}");
        }
        assert_eq!(scaled(f64::NAN, 0), None);
        assert_eq!(scaled(f64::INFINITY, 0), None);
        assert_eq!(scaled(EXACT * 2.0, 0), None);
        assert_eq!(scaled(21.7, 1), Some(217));
        assert_eq!(scaled(217.0 * 0.1, 1), None);
    }

    fn round_trip(values: &[Value]) -> (Codec, usize) {
        let refs: Vec<&Value> = values.iter().collect();
        let (codec, scale) = choose(&refs, NumberCoding::Auto);
        let mut out = Vec::new();
        encode(&mut out, codec, scale, &refs);
        let mut r = Reader::new(&out);
        let mut back = Vec::new();
        decode_column(
            &mut r,
            codec,
            RunShared::default(),
            values.len(),
            0,
            &mut back,
        )
        .unwrap();
        assert_eq!(r.remaining(), 0);
        assert_eq!(back.len(), values.len());
        for (a, b) in back.iter().zip(values) {
            match (a, b) {
                (Value::Number(x), Value::Number(y)) => assert_eq!(x.to_bits(), y.to_bits()),
                _ => assert_eq!(a, b),
            }
        }
        // Every strict prefix is an error, never a panic.
        for cut in 0..out.len() {
            let mut r = Reader::new(&out[..cut]);
            assert!(decode_column(
                &mut r,
                codec,
                RunShared::default(),
                values.len(),
                0,
                &mut back
            )
            .is_err());
        }
        (codec, out.len())
    }

    fn nums(xs: &[f64]) -> Vec<Value> {
        xs.iter().map(|x| Value::Number(*x)).collect()
    }

    #[test]
    fn decimals_find_the_smallest_scale() {
        let refs = |v: &[Value]| decimal_scale(&v.iter().collect::<Vec<_>>());
        assert_eq!(refs(&nums(&[230.0, 231.0])), Some(0));
        assert_eq!(refs(&nums(&[230.1, 231.0])), Some(1));
        assert_eq!(refs(&nums(&[230.1, 49.98, 0.005])), Some(3));
        assert_eq!(refs(&nums(&[0.1 + 0.2])), None);
        assert_eq!(refs(&nums(&[-0.0])), None);
        assert_eq!(refs(&nums(&[1e300])), None);
    }

    #[test]
    fn slowly_varying_decimals_take_a_byte_each() {
        let (codec, len) = round_trip(&nums(&[230.1, 230.2, 230.2, 230.0, 229.9, 230.1]));
        assert_eq!(codec, Codec::Decimal);
        // scale + first value (2301 → zigzag 4602, two bytes) + five one-byte deltas
        assert_eq!(len, 1 + 2 + 5);
    }

    #[test]
    fn other_numbers_use_xor() {
        let (codec, _) = round_trip(&nums(&[0.1 + 0.2, 0.1 + 0.2, -0.0, f64::MAX, 1e-300]));
        assert_eq!(codec, Codec::Xor);
        let (codec, len) = round_trip(&nums(&[1.0 / 3.0, 1.0 / 3.0]));
        assert_eq!((codec, len), (Codec::Xor, 9));
    }

    #[test]
    fn booleans_strings_and_mixed() {
        let bools: Vec<Value> = (0..11).map(|i| Value::Bool(i % 3 == 0)).collect();
        assert_eq!(round_trip(&bools), (Codec::Bool, 2));
        let strs = vec![Value::from("running"), Value::from(""), Value::from("é")];
        assert_eq!(round_trip(&strs).0, Codec::Str);
        let mixed = vec![
            Value::from(1.5),
            Value::from(true),
            Value::from(false),
            Value::from("x"),
        ];
        assert_eq!(round_trip(&mixed), (Codec::Mixed, 9 + 1 + 1 + 3));
    }

    #[test]
    fn malformed_columns_are_typed_errors() {
        let mut v = Vec::new();
        let dec = |bytes: &[u8], codec, n, v: &mut Vec<Value>| {
            decode_column(
                &mut Reader::new(bytes),
                codec,
                RunShared::default(),
                n,
                0,
                v,
            )
        };
        assert!(matches!(
            dec(&[16, 0], Codec::Decimal, 1, &mut v),
            Err(BinaryError::TooLarge { .. })
        ));
        assert!(matches!(
            dec(&[0b0000_0100], Codec::Bool, 2, &mut v),
            Err(BinaryError::ReservedBits { .. })
        ));
        assert!(matches!(dec(&[0; 9], Codec::Xor, 2, &mut v), Ok(())));
        assert!(matches!(
            dec(&[0, 0, 0, 0, 0, 0, 0, 0, 0x80], Codec::Xor, 2, &mut v),
            Err(BinaryError::UnknownCode { .. })
        ));
        assert!(matches!(
            dec(&[0, 0, 0, 0, 0, 0, 0, 0, 0x7f], Codec::Xor, 2, &mut v),
            Err(BinaryError::UnknownCode { .. })
        ));
        assert!(matches!(
            dec(&[9], Codec::Mixed, 1, &mut v),
            Err(BinaryError::UnknownCode { value: 9, .. })
        ));
        assert!(matches!(
            dec(&[3, 0xc3], Codec::Str, 1, &mut v),
            Err(BinaryError::Truncated { .. })
        ));
    }

    #[test]
    fn packed_first_values_round_trip_at_every_width() {
        let cases: Vec<Vec<i64>> = vec![
            vec![500],
            vec![7, 7, 7],
            vec![500, 501, 499, 530, 512],
            (0..100).map(|i| (i * 37) % 1001).collect(),
            vec![i64::MIN, i64::MAX, 0, -1],
            vec![-(1 << 53), 1 << 53],
        ];
        for firsts in cases {
            let mut out = Vec::new();
            put_packed(&mut out, &firsts);
            let mut r = Reader::new(&out);
            assert_eq!(read_packed(&mut r, firsts.len()).unwrap(), firsts);
            assert_eq!(r.remaining(), 0);
            for cut in 0..out.len() {
                let mut r = Reader::new(&out[..cut]);
                assert!(
                    read_packed(&mut r, firsts.len()).is_err(),
                    "{firsts:?} cut {cut}"
                );
            }
        }
        // 100 values spread over 0..=1000 take 10 bits each.
        let mut out = Vec::new();
        put_packed(&mut out, &(0..100).map(|i| i * 10).collect::<Vec<i64>>());
        assert_eq!(out.len(), 1 + 1 + 125);
    }

    #[test]
    fn malformed_packed_values_are_typed_errors() {
        // Width above 64.
        assert!(matches!(
            read_packed(&mut Reader::new(&[0, 65, 0]), 1),
            Err(BinaryError::TooLarge { .. })
        ));
        // Three values of 3 bits use 9 bits: the seven padding bits must be zero.
        assert!(matches!(
            read_packed(&mut Reader::new(&[0, 3, 0xff, 0x03]), 3),
            Err(BinaryError::ReservedBits { .. })
        ));
        assert_eq!(
            read_packed(&mut Reader::new(&[0, 3, 0xff, 0x01]), 3).unwrap(),
            vec![7, 7, 7]
        );
        // A count the bytes cannot hold.
        assert!(matches!(
            read_packed(&mut Reader::new(&[0, 8, 1]), 2),
            Err(BinaryError::Truncated { .. })
        ));
    }
}
