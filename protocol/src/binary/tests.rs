//! Byte-level tests of the whole binary form.

use super::*;
use crate::error::DecodeError;
use crate::{Ident, Point, Quality, TelemetryBatch, Value};

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn small() -> TelemetryBatch {
    let mut b = TelemetryBatch::new(id("gw"), 3, 9);
    b.historical = true;
    for (k, v) in [230.1, 230.2, 230.3].into_iter().enumerate() {
        let ts = 1000 + 1000 * k as i64;
        b.points.push(Point::new(id("d"), id("v"), ts, v));
        b.points.push(Point::new(id("d"), id("on"), ts, k == 2));
    }
    b.points
        .push(Point::new(id("e"), id("v"), 1500, "ok").with_quality(Quality::Bad));
    b
}

#[test]
fn layout_is_exact() {
    let bytes = encode(&small()).unwrap();
    #[rustfmt::skip]
    let want: &[u8] = &[
        0xFB, 0x01, 0x01,             // magic, version, historical
        3, 9,                         // boot epoch, seq
        2, b'g', b'w',                // gateway
        4,                            // string table: d, v, on, e
        1, b'd', 1, b'v', 2, b'o', b'n', 1, b'e',
        3,                            // three series
        0, 1, 0x00,                   // d/v, decimal, own timestamps
        3, 0xd0, 0x0f, 0xd0, 0x0f, 0, 0,  // 3 points, t0 1000, interval 1000, one zero
        1, 0xfa, 0x23, 2, 2,          // scale 1, 2301, +1, +1
        0, 2, 0x12,                   // d/on, bool, same timestamps
        0b100,                        // false, false, true
        3, 1, 0x0b,                   // e/v, string, quality
        1, 0xe8, 0x07,                // 1 point, t0 500 after the previous column's t0
        2, b'o', b'k',                // "ok"
        0b10,                         // bad
    ];
    assert_eq!(bytes, want);
    assert_eq!(decode(&bytes).unwrap(), small().in_series_order());
}

#[test]
fn every_truncation_and_every_extension_is_an_error() {
    let bytes = encode(&small()).unwrap();
    for cut in 0..bytes.len() {
        let e = decode(&bytes[..cut]).unwrap_err();
        assert!(matches!(e, DecodeError::Binary(_)), "{cut}: {e}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        decode(&long),
        Err(DecodeError::Binary(BinaryError::TrailingBytes { count: 1 }))
    ));
}

fn header_then(rest: &[u8]) -> Vec<u8> {
    let mut b = vec![MAGIC, VERSION, 0, 1, 1, 1, b'g'];
    b.extend_from_slice(rest);
    b
}

fn binary_err(bytes: &[u8]) -> BinaryError {
    match decode(bytes) {
        Err(DecodeError::Binary(e)) => e,
        other => panic!("{bytes:?} gave {other:?}"),
    }
}

#[test]
fn malformed_payloads_give_reasons() {
    assert_eq!(binary_err(&[0x7b]), BinaryError::BadMagic);
    assert_eq!(binary_err(&[MAGIC, 2]), BinaryError::UnsupportedVersion(2));
    assert!(matches!(
        binary_err(&[MAGIC, VERSION, 0x02]),
        BinaryError::ReservedBits { what: "flags", .. }
    ));
    // 200 strings announced, 1 byte left.
    assert!(matches!(
        binary_err(&header_then(&[0xc8, 0x01, 0])),
        BinaryError::CountExceedsInput {
            what: "string count",
            ..
        }
    ));
    // More strings than the limit allows.
    assert!(matches!(
        binary_err(&header_then(&[0xff, 0xff, 0x03])),
        BinaryError::TooLarge {
            what: "string count",
            ..
        }
    ));
    let one = [1, 1, b'd'];
    let with = |series: &[u8]| {
        let mut b = one.to_vec();
        b.extend_from_slice(series);
        header_then(&b)
    };
    assert!(matches!(
        binary_err(&with(&[1, 0, 1, 0x00, 1, 0, 0, 0])),
        BinaryError::StringIndex {
            series: 0,
            index: 1,
            len: 1
        }
    ));
    assert!(matches!(
        binary_err(&with(&[1, 0, 0, 0x20, 1, 0, 0, 0])),
        BinaryError::ReservedBits {
            what: "series header",
            ..
        }
    ));
    assert!(matches!(
        binary_err(&with(&[1, 0, 0, 0x05, 1, 0, 0, 0])),
        BinaryError::UnknownCodec { codec: 5, .. }
    ));
    assert!(matches!(
        binary_err(&with(&[1, 0, 0, 0x10, 0, 0, 0, 0])),
        BinaryError::NoPreviousTimestamps
    ));
    assert!(matches!(
        binary_err(&with(&[1, 0, 0, 0x00, 0, 0, 0, 0])),
        BinaryError::EmptySeries { series: 0 }
    ));
    // 10,001 points in one series.
    assert!(matches!(
        binary_err(&with(&[1, 0, 0, 0x02, 0x91, 0x4e, 0, 0])),
        BinaryError::TooLarge {
            what: "points in series",
            ..
        }
    ));
    // 9,000 booleans need 1,125 bytes.
    assert!(matches!(
        binary_err(&with(&[1, 0, 0, 0x02, 0xa8, 0x46, 0, 0])),
        BinaryError::CountExceedsInput {
            what: "points in series",
            ..
        }
    ));
    // Quality code 3 is undefined.
    assert!(matches!(
        binary_err(&with(&[1, 0, 0, 0x0a, 1, 0, 0, 0x03])),
        BinaryError::UnknownCode {
            what: "quality code",
            ..
        }
    ));
    assert!(matches!(
        binary_err(&with(&[1, 0, 0, 0x0a, 1, 0, 0, 0x04])),
        BinaryError::ReservedBits {
            what: "quality padding",
            ..
        }
    ));
    // A well-formed series decodes: one `false` at t0 = 0.
    let ok = decode(&with(&[1, 0, 0, 0x02, 1, 0, 0])).unwrap();
    assert_eq!(ok.points, [Point::new(id("d"), id("d"), 0, false)]);
}

#[test]
fn decoded_batches_are_validated() {
    // t0 = -1 is outside the timestamp range.
    let bytes = header_then(&[1, 1, b'd', 1, 0, 0, 0x02, 1, 1, 0]);
    assert!(matches!(decode(&bytes), Err(DecodeError::Invalid(_))));
    // An XOR column holding NaN.
    let mut bytes = header_then(&[1, 1, b'd', 1, 0, 0, 0x01, 1, 0]);
    bytes.extend_from_slice(&f64::NAN.to_bits().to_le_bytes());
    assert!(matches!(decode(&bytes), Err(DecodeError::Invalid(_))));
}

#[test]
fn encode_enforces_limits() {
    let mut b = small();
    b.points[0].value = Value::Number(f64::INFINITY);
    assert!(encode(&b).is_err());
    let mut b = TelemetryBatch::new(id("g"), 1, 1);
    for i in 0..1_100 {
        b.points.push(Point::new(
            id("d"),
            id(&format!("m{i}")),
            i,
            "y".repeat(250).as_str(),
        ));
    }
    assert!(matches!(
        encode(&b),
        Err(crate::EncodeError::TooLarge { .. })
    ));
    assert!(matches!(
        decode(&vec![MAGIC; crate::limits::MAX_PAYLOAD_BYTES + 1]),
        Err(DecodeError::TooLarge { .. })
    ));
}

/// The byte-by-byte example in the README is what the encoder writes.
#[test]
fn readme_example_is_exact() {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("### Example, byte by byte").expect("section")..];
    let block = &section[section.find("```text\n").expect("block") + 8..];
    let block = &block[..block.find("```").expect("closed block")];
    let bytes: Vec<u8> = block
        .lines()
        .flat_map(|line| {
            line.split_whitespace()
                .take_while(|t| t.len() == 2 && t.chars().all(|c| c.is_ascii_hexdigit()))
                .map(|t| u8::from_str_radix(t, 16).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(bytes, encode(&small()).unwrap());
    assert!(readme.contains(&format!("{} bytes (checked", bytes.len())));
}
