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
    assert_eq!(binary_err(&[MAGIC, 4]), BinaryError::UnsupportedVersion(4));
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

/// The hex bytes at the start of each line of the first `text` block after `heading`.
fn readme_bytes(heading: &str) -> Vec<u8> {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find(heading).expect("section")..];
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
    bytes
}

/// The byte-by-byte example in the README is what the encoder writes.
#[test]
fn readme_example_is_exact() {
    let bytes = readme_bytes("### Example, byte by byte");
    assert_eq!(bytes, encode(&small()).unwrap());
    let readme = include_str!("../../README.md");
    assert!(readme.contains(&format!("{} bytes (checked", bytes.len())));
}

/// So is the aliased example.
#[test]
fn aliased_readme_example_is_exact() {
    let bytes = readme_bytes("### Aliased example, byte by byte");
    let (b, a) = aliased_example();
    assert_eq!(bytes, encode_aliased(&b, &a).unwrap());
    let readme = include_str!("../../README.md");
    assert!(readme.contains(&format!(
        "{} bytes (checked\nby `binary::tests::aliased",
        bytes.len()
    )));
}

fn birth_aliases(hash: &str, devices: &[(&str, &[&str])]) -> crate::SeriesAliases {
    crate::SeriesAliases::from_birth(&crate::alias::tests::birth_with(hash, devices))
}

/// The aliased example of the README: `d/v`, `d/i` and `d/on` are in the birth, `e/v` is not.
fn aliased_example() -> (TelemetryBatch, crate::SeriesAliases) {
    let mut b = TelemetryBatch::new(id("gw"), 3, 9);
    b.points.push(Point::new(id("d"), id("v"), 1000, 230.1));
    b.points.push(Point::new(id("d"), id("i"), 1000, 5.0));
    b.points.push(Point::new(id("d"), id("on"), 1000, true));
    b.points
        .push(Point::new(id("e"), id("v"), 1500, "ok").with_quality(Quality::Bad));
    (b, birth_aliases("c1", &[("d", &["v", "i", "on"])]))
}

#[test]
fn aliased_layout_is_exact() {
    let (b, a) = aliased_example();
    let bytes = encode_aliased(&b, &a).unwrap();
    let check = a.check().to_le_bytes();
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &[0xFB, 0x02, 0x00,           // magic, version 2, live
          3, 9,                       // boot epoch, seq
          2, b'g', b'w',              // gateway
          2, b'c', b'1'][..],         // config hash of the birth
        &check,                       // alias table check
        &[2, 1, b'e', 1, b'v',        // names of series not in the birth
          4,                          // four series
          2, 0, 0x00,                 // a run of 2 from alias 0 (d/v, d/i), decimal
          1, 0xd0, 0x0f,              // 1 point at 1000
          1,                          // scale 1, shared
          0xfa, 0x23,                 // 230.1
          0x64,                       // 5.0 = 50 / 10
          1, 2, 0x12,                 // a run of 1 from alias 2 (d/on), bool, same timestamps
          0b1,                        // true
          0, 0, 1, 0x0b,              // a named series: e / v, string, quality
          1, 0xe8, 0x07,              // 1 point, 500 after the previous column's t0
          2, b'o', b'k',              // "ok"
          0b10][..],                  // bad
    ]
    .concat();
    assert_eq!(bytes, want);
    assert_eq!(decode_aliased(&bytes, &a).unwrap(), b.in_series_order());
}

#[test]
fn packed_layout_is_exact() {
    let mut b = TelemetryBatch::new(id("gw"), 3, 9);
    for (m, v) in [("a", 50.0), ("b", 50.3), ("c", 50.1), ("e", 50.7)] {
        b.points.push(Point::new(id("d"), id(m), 1000, v));
    }
    let a = birth_aliases("c1", &[("d", &["a", "b", "c", "e"])]);
    let bytes = encode_packed(&b, &a).unwrap();
    let check = a.check().to_le_bytes();
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &[0xFB, 0x03, 0x00,           // magic, version 3, live
          3, 9,                       // boot epoch, seq
          2, b'g', b'w',              // gateway
          2, b'c', b'1'][..],         // config hash of the birth
        &check,                       // alias table check
        &[0,                          // no names: every series is in the birth
          4,                          // four series
          4, 0, 0x20,                 // a run of 4 from alias 0, decimal, packed
          1, 0xd0, 0x0f,              // 1 point at 1000
          1,                          // scale 1, shared
          0xe8, 0x07,                 // packed first values: base 500 (50.0)
          3,                          // 3 bits each
          0x58, 0x0e][..],            // 0, 3, 1, 7: 50.0, 50.3, 50.1, 50.7
                                      // no deltas: one point per series
    ]
    .concat();
    assert_eq!(bytes, want);
    assert_eq!(decode_aliased(&bytes, &a).unwrap(), b.in_series_order());
    // Version 2 writes the four first values as varints of two bytes each.
    assert_eq!(encode_aliased(&b, &a).unwrap().len(), bytes.len() + 3);
    // Without the birth it is refused like version 2, naming the birth.
    assert!(matches!(binary_err(&bytes), BinaryError::NeedsBirth(r) if r == a.birth_ref()));
    // The packed bit is refused where it has no meaning: in version 2, and on a boolean run.
    let mut v2 = bytes.clone();
    v2[1] = VERSION_ALIASED;
    assert!(matches!(
        decode_aliased(&v2, &a),
        Err(DecodeError::Binary(BinaryError::ReservedBits {
            what: "series header",
            ..
        }))
    ));
}

#[test]
fn packed_runs_keep_the_deltas_of_every_column() {
    let mut b = TelemetryBatch::new(id("gw"), 1, 1);
    for t in 0..5 {
        b.points.push(Point::new(
            id("d"),
            id("v"),
            1000 * t,
            230.0 + t as f64 / 10.0,
        ));
        b.points
            .push(Point::new(id("d"), id("i"), 1000 * t, 5.0 - t as f64));
    }
    let a = birth_aliases("c1", &[("d", &["v", "i"])]);
    let bytes = encode_packed(&b, &a).unwrap();
    assert_eq!(decode_aliased(&bytes, &a).unwrap(), b.in_series_order());
    // Two first values are cheaper as varints: the run is not packed, and costs what it does
    // in version 2.
    assert_eq!(bytes.len(), encode_aliased(&b, &a).unwrap().len());
    // Forty series of one device with values around 500 are packed, and smaller for it.
    let mut b = TelemetryBatch::new(id("gw"), 1, 1);
    let names: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        b.points
            .push(Point::new(id("d"), id(n), 1000, 50.0 + i as f64 / 10.0));
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let a = birth_aliases("c1", &[("d", &refs)]);
    let bytes = encode_packed(&b, &a).unwrap();
    assert_eq!(decode_aliased(&bytes, &a).unwrap(), b.in_series_order());
    let v2 = encode_aliased(&b, &a).unwrap().len();
    // 40 first values of 2 bytes each against a base, a width and 40 × 6 bits.
    assert_eq!(v2 - bytes.len(), 80 - (2 + 1 + 30));
}

#[test]
fn aliased_payloads_need_their_own_birth() {
    let (b, a) = aliased_example();
    let bytes = encode_aliased(&b, &a).unwrap();
    assert_eq!(
        birth_ref(&bytes).unwrap(),
        Some(crate::BirthRef {
            config_hash: "c1".into(),
            check: a.check()
        })
    );
    assert_eq!(birth_ref(&encode(&b).unwrap()).unwrap(), None);
    assert_eq!(binary_err(&bytes), BinaryError::NeedsBirth(a.birth_ref()));
    // Same hash, another table (points reordered): refused, not misread.
    let other = birth_aliases("c1", &[("d", &["i", "v", "on"])]);
    assert!(matches!(
        decode_aliased(&bytes, &other),
        Err(DecodeError::Binary(BinaryError::WrongBirth { .. }))
    ));
    let other = birth_aliases("c2", &[("d", &["v", "i", "on"])]);
    assert!(matches!(
        decode_aliased(&bytes, &other),
        Err(DecodeError::Binary(BinaryError::WrongBirth { .. }))
    ));
    // A named payload still decodes with a table at hand.
    assert_eq!(
        decode_aliased(&encode(&b).unwrap(), &a).unwrap(),
        b.in_series_order()
    );
    for cut in 0..bytes.len() {
        let e = decode_aliased(&bytes[..cut], &a).unwrap_err();
        assert!(matches!(e, DecodeError::Binary(_)), "{cut}: {e}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        decode_aliased(&long, &a),
        Err(DecodeError::Binary(BinaryError::TrailingBytes { count: 1 }))
    ));
}

#[test]
fn malformed_aliased_payloads_give_reasons() {
    let a = birth_aliases("c1", &[("d", &["v", "i"])]);
    let with = |series: &[u8]| {
        let mut b = vec![MAGIC, VERSION_ALIASED, 0, 1, 1, 1, b'g', 2, b'c', b'1'];
        b.extend_from_slice(&a.check().to_le_bytes());
        b.extend_from_slice(series);
        b
    };
    let err = |bytes: &[u8]| match decode_aliased(bytes, &a) {
        Err(DecodeError::Binary(e)) => e,
        other => panic!("{bytes:?} gave {other:?}"),
    };
    // Alias 2 is past the table of 2.
    assert_eq!(
        err(&with(&[0, 1, 1, 2, 0x02, 1, 0, 0])),
        BinaryError::UnknownAlias {
            series: 0,
            alias: 2,
            len: 2
        }
    );
    // A run of 2 from alias 1 runs past the table.
    assert!(matches!(
        err(&with(&[0, 2, 2, 1, 0x02, 1, 0, 0, 0])),
        BinaryError::UnknownAlias { alias: 2, .. }
    ));
    // A run longer than the series announced.
    assert!(matches!(
        err(&with(&[0, 1, 2, 0, 0x02, 1, 0, 0, 0])),
        BinaryError::TooLarge {
            what: "series run length",
            ..
        }
    ));
    // A shared decimal scale above 15.
    assert!(matches!(
        err(&with(&[0, 1, 1, 0, 0x00, 1, 0, 16, 0])),
        BinaryError::TooLarge {
            what: "decimal scale",
            ..
        }
    ));
    // A config hash with a control character.
    let mut bad = vec![MAGIC, VERSION_ALIASED, 0, 1, 1, 1, b'g', 2, b'c', b'\n'];
    bad.extend_from_slice(&[0; 4]);
    bad.extend_from_slice(&[0, 0]);
    assert!(matches!(
        err(&bad),
        BinaryError::BadConfigHash { offset: 7 }
    ));
    // Well formed: two booleans in a run.
    let ok = decode_aliased(&with(&[0, 2, 2, 0, 0x02, 1, 0, 0b1, 0b0]), &a).unwrap();
    assert_eq!(
        ok.points,
        [
            Point::new(id("d"), id("v"), 0, true),
            Point::new(id("d"), id("i"), 0, false)
        ]
    );
}

#[test]
fn runs_break_where_series_differ() {
    let a = birth_aliases("c1", &[("d", &["a", "b", "c", "x", "y"])]);
    let mut b = TelemetryBatch::new(id("gw"), 1, 1);
    // a, b share a column and a scale (1 after 0); c has other timestamps; y skips x.
    b.points.push(Point::new(id("d"), id("a"), 10, 1.0));
    b.points.push(Point::new(id("d"), id("b"), 10, 1.5));
    b.points.push(Point::new(id("d"), id("c"), 11, 2.0));
    b.points.push(Point::new(id("d"), id("y"), 11, 3.0));
    // A number that is no short decimal cannot share a decimal run.
    b.points.push(Point::new(id("d"), id("x"), 11, 0.1 + 0.2));
    let bytes = encode_aliased(&b, &a).unwrap();
    assert_eq!(decode_aliased(&bytes, &a).unwrap(), b.in_series_order());
    // Header 17 bytes (magic to series count), then runs: [a b] [c] [y] [x].
    let runs = &bytes[17..];
    #[rustfmt::skip]
    assert_eq!(runs, &[
        2, 0, 0x00, 1, 20, 1, 20, 30,  // a, b at 10: scale 1, zigzag 10, 15
        1, 2, 0x00, 1, 2, 0, 4,        // c at 11: scale 0, zigzag 2
        1, 4, 0x10, 0, 6,              // y, same timestamps: scale 0, zigzag 3
        1, 3, 0x11, 0x34, 0x33, 0x33, 0x33, 0x33, 0x33, 0xd3, 0x3f, // x: XOR, raw bits
    ][..]);
}

#[test]
fn packed_reference_batches_round_trip() {
    // One poll cycle of the reference workload: 10 meters × 100 registers at 0.1 kW a count,
    // values a random walk, plus a device of mixed kinds beside them.
    let names: Vec<String> = (0..100).map(|r| format!("r{r:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let meters: Vec<String> = (1..=10).map(|m| format!("meter-{m}")).collect();
    let devices: Vec<(&str, &[&str])> = meters.iter().map(|m| (m.as_str(), &refs[..])).collect();
    let a = birth_aliases("c1", &devices);
    let mut x: u64 = 7;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for cycle in 0..20i64 {
        let mut b = TelemetryBatch::new(id("gw"), 1, cycle as u64 + 1);
        for m in &meters[..1 + (cycle as usize % 10)] {
            for n in &names {
                let count = (next() % 1001) as f64;
                let polled = 1_000 * cycle + m.len() as i64 * 37;
                b.points
                    .push(Point::new(id(m), id(n), polled, count / 10.0));
            }
        }
        b.points.push(Point::new(
            id("_gateway"),
            id("rss_bytes"),
            1_000 * cycle,
            12_345_678.0,
        ));
        b.points.push(Point::new(
            id("_gateway"),
            id("cpu"),
            1_000 * cycle,
            0.1 + 0.2,
        ));
        let bytes = encode_packed(&b, &a).unwrap();
        let back = decode_aliased(&bytes, &a).unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        assert_eq!(back, b.in_series_order());
        assert!(bytes.len() < encode_aliased(&b, &a).unwrap().len());
    }
}

/// Regression: a run of 100 packed series within 6 bits took 77 bytes, and the decoder,
/// counting a byte per series as in version 2, refused the series count.
#[test]
fn packed_runs_smaller_than_a_byte_a_series_are_read() {
    let names: Vec<String> = (0..100).map(|r| format!("r{r:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let a = birth_aliases("c1", &[("meter", &refs)]);
    for spread in [0u32, 1, 40] {
        let mut b = TelemetryBatch::new(id("gw"), 1, 1);
        for (i, n) in names.iter().enumerate() {
            let count = 500 + (i as u32 * 7) % (spread + 1);
            b.points.push(Point::new(
                id("meter"),
                id(n),
                1_000,
                f64::from(count) / 10.0,
            ));
        }
        let bytes = encode_packed(&b, &a).unwrap();
        assert!(bytes.len() < 30 + 100 * 6 / 8 + 1, "{} bytes", bytes.len());
        assert_eq!(
            decode_aliased(&bytes, &a).unwrap(),
            b.in_series_order(),
            "spread {spread}"
        );
    }
}
