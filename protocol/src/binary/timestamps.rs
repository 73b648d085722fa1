//! Timestamp columns: delta-of-delta with runs of zeros.
//!
//! A poller samples at a fixed cadence, so the interval between readings repeats and its
//! change (the delta of delta) is zero almost always. A column is written as: the first
//! timestamp minus the previous column's first timestamp (series of one poll cycle start
//! within milliseconds of each other), then the first interval, then for each further
//! timestamp the change of interval as a zigzag varint, where a zero is followed by a varint
//! count of further zeros. Ten readings at a steady 1 s take 4 to 6 bytes in all; jitter of a
//! few milliseconds costs about a byte per reading.

use super::reader::Reader;
use super::varint::{put_i64, put_u64};
use super::BinaryError;

/// Appends the column `ts` (at least one timestamp); `prev_t0` is the first timestamp of the
/// previous column written, or 0 for the first.
pub(crate) fn encode(out: &mut Vec<u8>, ts: &[i64], prev_t0: i64) {
    put_i64(out, ts[0].wrapping_sub(prev_t0));
    if ts.len() < 2 {
        return;
    }
    let mut d = ts[1].wrapping_sub(ts[0]);
    put_i64(out, d);
    let mut i = 2;
    while i < ts.len() {
        let next = ts[i].wrapping_sub(ts[i - 1]);
        let dod = next.wrapping_sub(d);
        if dod == 0 {
            let mut run = 1;
            while i + run < ts.len() && ts[i + run].wrapping_sub(ts[i + run - 1]) == d {
                run += 1;
            }
            out.push(0);
            put_u64(out, run as u64 - 1);
            i += run;
        } else {
            put_i64(out, dod);
            d = next;
            i += 1;
        }
    }
}

/// Reads a column of `n >= 1` timestamps into `out`.
pub(crate) fn decode(
    r: &mut Reader<'_>,
    n: usize,
    prev_t0: i64,
    series: usize,
    out: &mut Vec<i64>,
) -> Result<(), BinaryError> {
    let overflow = BinaryError::TimestampOverflow { series };
    out.clear();
    out.reserve(n);
    let t0 = prev_t0
        .checked_add(r.zigzag("first timestamp")?)
        .ok_or(overflow.clone())?;
    out.push(t0);
    if n < 2 {
        return Ok(());
    }
    let mut d = r.zigzag("first interval")?;
    out.push(t0.checked_add(d).ok_or(overflow.clone())?);
    while out.len() < n {
        let dod = r.zigzag("interval change")?;
        let repeat = if dod == 0 {
            let run = r.varint("run of equal intervals")?;
            let left = n - out.len();
            if run >= left as u64 {
                return Err(BinaryError::RunTooLong { series, run, left });
            }
            run as usize + 1
        } else {
            d = d.checked_add(dod).ok_or(overflow.clone())?;
            1
        };
        for _ in 0..repeat {
            let last = out[out.len() - 1];
            out.push(last.checked_add(d).ok_or(overflow.clone())?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(ts: &[i64], prev: i64) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, ts, prev);
        let mut r = Reader::new(&out);
        let mut back = Vec::new();
        decode(&mut r, ts.len(), prev, 0, &mut back).unwrap();
        assert_eq!(back, ts);
        assert_eq!(r.remaining(), 0);
        for cut in 0..out.len() {
            let mut r = Reader::new(&out[..cut]);
            assert!(
                decode(&mut r, ts.len(), prev, 0, &mut back).is_err(),
                "{cut}"
            );
        }
        out
    }

    #[test]
    fn steady_cadence_is_a_few_bytes() {
        let ts: Vec<i64> = (0..10).map(|i| 1_700_000_000_000 + 1000 * i).collect();
        let out = round_trip(&ts, 1_700_000_000_000 - 7);
        // t0 delta 7, interval 1000 (two bytes), zero, run of 7
        assert_eq!(out, [14, 0xd0, 0x0f, 0, 7]);
    }

    #[test]
    fn jitter_backwards_steps_and_single_points() {
        round_trip(&[5], 0);
        round_trip(&[5, 5], 0);
        round_trip(&[100, 1101, 2099, 3100, 4100, 5100, 6102, 7100], 50);
        round_trip(&[100, 90, 80, 200, 200, 200, -5], 0);
        round_trip(&[253_402_300_799_999, 0, 253_402_300_799_999, 1], 0);
    }

    #[test]
    fn runs_and_overflow_are_checked() {
        let mut back = Vec::new();
        // t0 0, interval 1, zero with a run of 5 more: 7 timestamps, but only 4 wanted.
        let bytes = [0, 2, 0, 5];
        let e = decode(&mut Reader::new(&bytes), 4, 0, 3, &mut back);
        assert_eq!(
            e,
            Err(BinaryError::RunTooLong {
                series: 3,
                run: 5,
                left: 2
            })
        );
        // t0 = i64::MAX, interval +1
        let mut bytes = Vec::new();
        put_i64(&mut bytes, i64::MAX);
        put_i64(&mut bytes, 1);
        let e = decode(&mut Reader::new(&bytes), 2, 0, 1, &mut back);
        assert_eq!(e, Err(BinaryError::TimestampOverflow { series: 1 }));
    }
}
