//! Property tests: every message survives encode → decode in every encoding it has.

mod common;

use common::*;
use fieldlink_protocol::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn telemetry_json_round_trip(b in batch()) {
        let bytes = encode_telemetry(&b, Encoding::Json).unwrap();
        prop_assert_eq!(detect(&bytes).unwrap(), Encoding::Json);
        let back = decode_telemetry(&bytes).unwrap();
        let want = b.in_series_order();
        prop_assert_eq!(&back, &want);
        assert_same_points(&back.points, &want.points);
    }

    #[test]
    fn telemetry_binary_round_trip(b in batch()) {
        let bytes = encode_telemetry(&b, Encoding::Binary).unwrap();
        prop_assert_eq!(detect(&bytes).unwrap(), Encoding::Binary);
        let back = decode_telemetry(&bytes).unwrap();
        let want = b.in_series_order();
        prop_assert_eq!(&back, &want);
        assert_same_points(&back.points, &want.points);
    }

    #[test]
    fn telemetry_aliased_round_trip(b in batch(), a in aliases()) {
        let bytes = encode_telemetry_aliased(&b, Encoding::Binary, &a).unwrap();
        prop_assert_eq!(detect(&bytes).unwrap(), Encoding::Binary);
        prop_assert_eq!(binary::birth_ref(&bytes).unwrap(), Some(a.birth_ref()));
        let back = decode_telemetry_aliased(&bytes, &a).unwrap();
        let want = b.in_series_order();
        prop_assert_eq!(&back, &want);
        assert_same_points(&back.points, &want.points);
        // Without the birth: a typed refusal naming it.
        let refused = matches!(
            decode_telemetry(&bytes),
            Err(DecodeError::Binary(binary::BinaryError::NeedsBirth(r))) if r == a.birth_ref()
        );
        prop_assert!(refused);
        // JSON never uses aliases.
        let json = encode_telemetry_aliased(&b, Encoding::Json, &a).unwrap();
        prop_assert_eq!(decode_telemetry(&json).unwrap(), want);
    }

    #[test]
    fn telemetry_packed_round_trip(b in batch(), a in aliases()) {
        let bytes = binary::encode_packed(&b, &a).unwrap();
        prop_assert_eq!(bytes[1], binary::VERSION_PACKED);
        prop_assert_eq!(binary::birth_ref(&bytes).unwrap(), Some(a.birth_ref()));
        let back = decode_telemetry_aliased(&bytes, &a).unwrap();
        let want = b.in_series_order();
        prop_assert_eq!(&back, &want);
        assert_same_points(&back.points, &want.points);
        // A run is packed only where that makes it smaller.
        let v2 = binary::encode_aliased(&b, &a).unwrap();
        prop_assert!(bytes.len() <= v2.len());
    }

    #[test]
    fn telemetry_json_aliased_round_trip(b in batch(), a in aliases()) {
        let bytes = json::encode_aliased(&b, &a).unwrap();
        prop_assert_eq!(detect(&bytes).unwrap(), Encoding::Json);
        prop_assert_eq!(telemetry_birth_ref(&bytes).unwrap(), Some(a.birth_ref()));
        let back = decode_telemetry_aliased(&bytes, &a).unwrap();
        let want = b.in_series_order();
        prop_assert_eq!(&back, &want);
        assert_same_points(&back.points, &want.points);
        // Without the birth: refused, not read with the runs left out.
        prop_assert!(decode_telemetry(&bytes).is_err() || !String::from_utf8_lossy(&bytes).contains("\"from\""));
    }

    #[test]
    fn encodings_agree(b in batch()) {
        let j = decode_telemetry(&encode_telemetry(&b, Encoding::Json).unwrap()).unwrap();
        let k = decode_telemetry(&encode_telemetry(&b, Encoding::Binary).unwrap()).unwrap();
        prop_assert_eq!(j, k);
    }

    #[test]
    fn status_round_trip(s in status()) {
        let back: Status = json::decode(&json::encode(&s).unwrap()).unwrap();
        prop_assert_eq!(back, s);
    }

    #[test]
    fn event_round_trip(e in event()) {
        let back: Event = json::decode(&json::encode(&e).unwrap()).unwrap();
        prop_assert_eq!(back, e);
    }

    #[test]
    fn command_round_trip(c in command()) {
        let back: Command = json::decode(&json::encode(&c).unwrap()).unwrap();
        prop_assert_eq!(back, c);
    }

    #[test]
    fn ack_round_trip(a in ack()) {
        let back: Ack = json::decode(&json::encode(&a).unwrap()).unwrap();
        prop_assert_eq!(back, a);
    }
}
