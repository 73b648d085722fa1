//! Property tests: decoders are total. Arbitrary bytes, and valid payloads that were cut,
//! extended or had bytes overwritten, give a value or an error, never a panic; and whatever
//! decodes is valid and encodes again.

mod common;

use common::*;
use fieldlink_protocol::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// Decodes with every decoder; anything that decodes must validate and re-encode.
fn decode_all(bytes: &[u8]) {
    if let Ok(b) = decode_telemetry(bytes) {
        assert_eq!(b.validate(), Ok(()));
        for enc in [Encoding::Json, Encoding::Binary] {
            let again = decode_telemetry(&encode_telemetry(&b, enc).unwrap()).unwrap();
            assert_eq!(again, b.in_series_order());
        }
    }
    if let Ok(m) = json::decode::<Status>(bytes) {
        assert!(json::encode(&m).is_ok());
    }
    if let Ok(m) = json::decode::<Event>(bytes) {
        assert!(json::encode(&m).is_ok());
    }
    if let Ok(m) = json::decode::<Command>(bytes) {
        assert!(json::encode(&m).is_ok());
    }
    if let Ok(m) = json::decode::<Ack>(bytes) {
        assert!(json::encode(&m).is_ok());
    }
}

#[derive(Debug, Clone)]
enum Damage {
    Cut(usize),
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::Cut),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
        any::<usize>().prop_map(Damage::Remove),
    ]
}

fn apply(mut bytes: Vec<u8>, damage: &[Damage]) -> Vec<u8> {
    for d in damage {
        let n = bytes.len().max(1);
        match *d {
            Damage::Cut(i) => bytes.truncate(i % n),
            Damage::Set(i, b) if !bytes.is_empty() => bytes[i % n] = b,
            Damage::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Damage::Remove(i) if !bytes.is_empty() => {
                bytes.remove(i % n);
            }
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(bytes in vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_the_magic(bytes in vec(any::<u8>(), 0..512)) {
        let mut b = vec![binary::MAGIC, binary::VERSION];
        b.extend_from_slice(&bytes);
        decode_all(&b);
    }

    #[test]
    fn damaged_telemetry(b in batch(), enc in prop_oneof![Just(Encoding::Json), Just(Encoding::Binary)], d in vec(damage(), 1..4)) {
        let bytes = encode_telemetry(&b, enc).unwrap();
        decode_all(&apply(bytes, &d));
    }

    #[test]
    fn damaged_aliased_telemetry(b in batch(), a in aliases(), d in vec(damage(), 1..4)) {
        let bytes = apply(encode_telemetry_aliased(&b, Encoding::Binary, &a).unwrap(), &d);
        decode_all(&bytes);
        let _ = binary::birth_ref(&bytes);
        if let Ok(b) = decode_telemetry_aliased(&bytes, &a) {
            assert_eq!(b.validate(), Ok(()));
            let again = encode_telemetry_aliased(&b, Encoding::Binary, &a).unwrap();
            assert_eq!(decode_telemetry_aliased(&again, &a).unwrap(), b.in_series_order());
        }
    }

    #[test]
    fn damaged_packed_telemetry(b in batch(), a in aliases(), d in vec(damage(), 1..4)) {
        let bytes = apply(binary::encode_packed(&b, &a).unwrap(), &d);
        decode_all(&bytes);
        let _ = binary::birth_ref(&bytes);
        if let Ok(b) = decode_telemetry_aliased(&bytes, &a) {
            assert_eq!(b.validate(), Ok(()));
            let again = binary::encode_packed(&b, &a).unwrap();
            assert_eq!(decode_telemetry_aliased(&again, &a).unwrap(), b.in_series_order());
        }
    }

    #[test]
    fn damaged_json_aliased_telemetry(b in batch(), a in aliases(), d in vec(damage(), 1..4)) {
        let bytes = apply(json::encode_aliased(&b, &a).unwrap(), &d);
        decode_all(&bytes);
        let _ = telemetry_birth_ref(&bytes);
        if let Ok(b) = decode_telemetry_aliased(&bytes, &a) {
            assert_eq!(b.validate(), Ok(()));
            let again = json::encode_aliased(&b, &a).unwrap();
            assert_eq!(decode_telemetry_aliased(&again, &a).unwrap(), b.in_series_order());
        }
    }

    #[test]
    fn arbitrary_bytes_after_an_aliased_header(
        a in aliases(),
        version in prop_oneof![Just(binary::VERSION_ALIASED), Just(binary::VERSION_PACKED)],
        bytes in vec(any::<u8>(), 0..512),
    ) {
        let mut b = vec![binary::MAGIC, version, 0, 1, 1, 2, b'g', b'w'];
        b.push(a.config_hash().len() as u8);
        b.extend_from_slice(a.config_hash().as_bytes());
        b.extend_from_slice(&a.check().to_le_bytes());
        b.extend_from_slice(&bytes);
        if let Ok(batch) = decode_telemetry_aliased(&b, &a) {
            assert_eq!(batch.validate(), Ok(()));
        }
    }

    #[test]
    fn damaged_messages(
        s in status(), e in event(), c in command(), a in ack(),
        which in 0..4usize, d in vec(damage(), 1..4),
    ) {
        let bytes = match which {
            0 => json::encode(&s).unwrap(),
            1 => json::encode(&e).unwrap(),
            2 => json::encode(&c).unwrap(),
            _ => json::encode(&a).unwrap(),
        };
        decode_all(&apply(bytes, &d));
    }
}
