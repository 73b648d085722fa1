//! LEB128 varints and zigzag signed integers.
//!
//! Small magnitudes dominate the binary form (deltas of timestamps and of scaled values), and a
//! varint spends one byte per 7 bits, so a delta of ±63 costs one byte. Zigzag maps signed to
//! unsigned so that small negative numbers stay small.

/// Appends `v` as an LEB128 varint (1 to 10 bytes).
pub(crate) fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded as a varint.
pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, zigzag(v));
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        let enc = |v| {
            let mut o = Vec::new();
            put_u64(&mut o, v);
            o
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(16_383), [0xff, 0x7f]);
        assert_eq!(enc(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(enc(u64::MAX).len(), 10);
    }

    #[test]
    fn zigzag_keeps_small_numbers_small() {
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-64), 127);
        for v in [0, 1, -1, i64::MAX, i64::MIN, 12_345, -98_765] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}
