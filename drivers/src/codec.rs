//! The register value codec: how a typed value is laid out in 16-bit Modbus registers.
//!
//! Modbus only knows 16-bit registers and single bits. Everything wider is a convention between
//! the device vendor and the reader, and vendors disagree on two things: the order of the 16-bit
//! words and the order of the two bytes inside each word. [`WordOrder`] names the four layouts in
//! use, after the letters of a 32-bit value `0xAABBCCDD` as they appear on the wire.
//!
//! This module is written once and shared: the drivers decode what they read and encode what
//! they write with it, and the device simulator (`fieldlink-sim`) encodes its registers with it,
//! so a disagreement between the two is impossible by construction. Interoperability with an
//! implementation we did not write is proved against pymodbus in `tests/`.
//!
//! Conventions, for every width:
//! - [`WordOrder::Abcd`]: big-endian words, most significant word first (the Modbus default).
//! - [`WordOrder::Cdab`]: big-endian bytes inside each word, least significant word first.
//! - [`WordOrder::Badc`]: bytes swapped inside each word, most significant word first.
//! - [`WordOrder::Dcba`]: fully little-endian.
//!
//! One-register types (`u16`, `i16`) only see the byte half of the order: `Abcd`/`Cdab` leave the
//! register as it is, `Badc`/`Dcba` swap its bytes. Strings keep their registers in address order
//! (two characters per register, the first in the high byte) and apply only the byte half of the
//! order; trailing NUL bytes are padding. Booleans and register bits ignore the order.

pub use crate::vocabulary::{CodecError, DataType, DataTypeParseError, TypedValue, WordOrder};

/// Decodes `words`, exactly [`DataType::register_count`] of them, into a typed value.
///
/// For bit tables pass one word per bit, `0` or `1`.
pub fn decode(
    words: &[u16],
    data_type: DataType,
    order: WordOrder,
) -> Result<TypedValue, CodecError> {
    data_type.validate()?;
    let expected = usize::from(data_type.register_count());
    if words.len() != expected {
        return Err(CodecError::WrongLength {
            data_type,
            expected,
            got: words.len(),
        });
    }
    Ok(match data_type {
        DataType::Bool => TypedValue::Bool(words[0] != 0),
        DataType::Bit(i) => TypedValue::Bool(words[0] >> i & 1 == 1),
        DataType::U16 => TypedValue::U16(u16::from_be_bytes(be_bytes::<2>(words, order))),
        DataType::I16 => TypedValue::I16(i16::from_be_bytes(be_bytes::<2>(words, order))),
        DataType::U32 => TypedValue::U32(u32::from_be_bytes(be_bytes::<4>(words, order))),
        DataType::I32 => TypedValue::I32(i32::from_be_bytes(be_bytes::<4>(words, order))),
        DataType::F32 => TypedValue::F32(f32::from_be_bytes(be_bytes::<4>(words, order))),
        DataType::U64 => TypedValue::U64(u64::from_be_bytes(be_bytes::<8>(words, order))),
        DataType::I64 => TypedValue::I64(i64::from_be_bytes(be_bytes::<8>(words, order))),
        DataType::F64 => TypedValue::F64(f64::from_be_bytes(be_bytes::<8>(words, order))),
        DataType::String(_) => {
            let mut bytes = Vec::with_capacity(words.len() * 2);
            for &w in words {
                let [hi, lo] = w.to_be_bytes();
                if order.swaps_bytes() {
                    bytes.extend([lo, hi]);
                } else {
                    bytes.extend([hi, lo]);
                }
            }
            while bytes.last() == Some(&0) {
                bytes.pop();
            }
            TypedValue::Str(String::from_utf8_lossy(&bytes).into_owned())
        }
    })
}

/// Encodes `value` as `data_type` in `order`; the inverse of [`decode`].
///
/// The value's kind must match the type exactly (use [`TypedValue::from_f64`] to convert a
/// number first). A [`DataType::Bit`] encodes as a register with only that bit possibly set;
/// writing one bit of a live register is a read-modify-write or a mask write, which the write
/// path does, not the codec.
pub fn encode(
    value: &TypedValue,
    data_type: DataType,
    order: WordOrder,
) -> Result<Vec<u16>, CodecError> {
    data_type.validate()?;
    let mismatch = || CodecError::TypeMismatch {
        data_type,
        value: value.kind(),
    };
    Ok(match (data_type, value) {
        (DataType::Bool, TypedValue::Bool(b)) => vec![u16::from(*b)],
        (DataType::Bit(i), TypedValue::Bool(b)) => vec![u16::from(*b) << i],
        (DataType::U16, TypedValue::U16(v)) => to_words(v.to_be_bytes(), order),
        (DataType::I16, TypedValue::I16(v)) => to_words(v.to_be_bytes(), order),
        (DataType::U32, TypedValue::U32(v)) => to_words(v.to_be_bytes(), order),
        (DataType::I32, TypedValue::I32(v)) => to_words(v.to_be_bytes(), order),
        (DataType::F32, TypedValue::F32(v)) => to_words(v.to_be_bytes(), order),
        (DataType::U64, TypedValue::U64(v)) => to_words(v.to_be_bytes(), order),
        (DataType::I64, TypedValue::I64(v)) => to_words(v.to_be_bytes(), order),
        (DataType::F64, TypedValue::F64(v)) => to_words(v.to_be_bytes(), order),
        (DataType::String(n), TypedValue::Str(s)) => {
            let max = usize::from(n) * 2;
            if s.len() > max {
                return Err(CodecError::StringTooLong {
                    data_type,
                    len: s.len(),
                    max,
                });
            }
            let mut bytes = s.as_bytes().to_vec();
            bytes.resize(max, 0);
            bytes
                .chunks_exact(2)
                .map(|c| {
                    if order.swaps_bytes() {
                        u16::from_be_bytes([c[1], c[0]])
                    } else {
                        u16::from_be_bytes([c[0], c[1]])
                    }
                })
                .collect()
        }
        _ => return Err(mismatch()),
    })
}

/// Reassembles the big-endian bytes of an `N`-byte value from its registers in `order`.
fn be_bytes<const N: usize>(words: &[u16], order: WordOrder) -> [u8; N] {
    let mut out = [0u8; N];
    let count = N / 2;
    for (i, &w) in words.iter().enumerate().take(count) {
        let slot = if order.swaps_words() && count > 1 {
            count - 1 - i
        } else {
            i
        };
        let [hi, lo] = w.to_be_bytes();
        let pair = if order.swaps_bytes() {
            [lo, hi]
        } else {
            [hi, lo]
        };
        out[slot * 2..slot * 2 + 2].copy_from_slice(&pair);
    }
    out
}

/// Splits the big-endian bytes of a value into registers in `order`.
fn to_words<const N: usize>(be: [u8; N], order: WordOrder) -> Vec<u16> {
    let count = N / 2;
    (0..count)
        .map(|i| {
            let slot = if order.swaps_words() && count > 1 {
                count - 1 - i
            } else {
                i
            };
            let (hi, lo) = (be[slot * 2], be[slot * 2 + 1]);
            if order.swaps_bytes() {
                u16::from_be_bytes([lo, hi])
            } else {
                u16::from_be_bytes([hi, lo])
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn u32_in_the_four_orders_matches_the_letter_names() {
        let v = TypedValue::U32(0xAABB_CCDD);
        let cases = [
            (WordOrder::Abcd, [0xAABB, 0xCCDD]),
            (WordOrder::Cdab, [0xCCDD, 0xAABB]),
            (WordOrder::Badc, [0xBBAA, 0xDDCC]),
            (WordOrder::Dcba, [0xDDCC, 0xBBAA]),
        ];
        for (order, words) in cases {
            assert_eq!(encode(&v, DataType::U32, order).unwrap(), words, "{order}");
            assert_eq!(decode(&words, DataType::U32, order).unwrap(), v, "{order}");
        }
    }

    #[test]
    fn u64_orders_extend_the_same_rules() {
        let v = TypedValue::U64(0x1122_3344_5566_7788);
        let cases = [
            (WordOrder::Abcd, [0x1122, 0x3344, 0x5566, 0x7788]),
            (WordOrder::Cdab, [0x7788, 0x5566, 0x3344, 0x1122]),
            (WordOrder::Badc, [0x2211, 0x4433, 0x6655, 0x8877]),
            (WordOrder::Dcba, [0x8877, 0x6655, 0x4433, 0x2211]),
        ];
        for (order, words) in cases {
            assert_eq!(encode(&v, DataType::U64, order).unwrap(), words, "{order}");
            assert_eq!(decode(&words, DataType::U64, order).unwrap(), v, "{order}");
        }
    }

    #[test]
    fn sixteen_bit_types_only_see_the_byte_order() {
        let v = TypedValue::I16(-2); // 0xFFFE
        assert_eq!(
            encode(&v, DataType::I16, WordOrder::Abcd).unwrap(),
            [0xFFFE]
        );
        assert_eq!(
            encode(&v, DataType::I16, WordOrder::Cdab).unwrap(),
            [0xFFFE]
        );
        assert_eq!(
            encode(&v, DataType::I16, WordOrder::Badc).unwrap(),
            [0xFEFF]
        );
        assert_eq!(
            decode(&[0x3412], DataType::U16, WordOrder::Dcba).unwrap(),
            TypedValue::U16(0x1234)
        );
    }

    #[test]
    fn f32_known_pattern() {
        // 1.0f32 is 0x3F800000.
        assert_eq!(
            decode(&[0x3F80, 0x0000], DataType::F32, WordOrder::Abcd).unwrap(),
            TypedValue::F32(1.0)
        );
        assert_eq!(
            decode(&[0x0000, 0x3F80], DataType::F32, WordOrder::Cdab).unwrap(),
            TypedValue::F32(1.0)
        );
        assert_eq!(
            decode(&[0x803F, 0x0000], DataType::F32, WordOrder::Badc).unwrap(),
            TypedValue::F32(1.0)
        );
        assert_eq!(
            decode(&[0x0000, 0x803F], DataType::F32, WordOrder::Dcba).unwrap(),
            TypedValue::F32(1.0)
        );
    }

    #[test]
    fn strings_pad_with_nul_and_swap_bytes_only() {
        let t = DataType::String(3);
        let s = TypedValue::Str("ABC".into());
        assert_eq!(
            encode(&s, t, WordOrder::Abcd).unwrap(),
            [0x4142, 0x4300, 0x0000]
        );
        assert_eq!(
            encode(&s, t, WordOrder::Cdab).unwrap(),
            [0x4142, 0x4300, 0x0000]
        );
        assert_eq!(
            encode(&s, t, WordOrder::Dcba).unwrap(),
            [0x4241, 0x0043, 0x0000]
        );
        for order in WordOrder::ALL {
            let words = encode(&s, t, order).unwrap();
            assert_eq!(decode(&words, t, order).unwrap(), s);
        }
        assert!(matches!(
            encode(&TypedValue::Str("ABCDEFG".into()), t, WordOrder::Abcd),
            Err(CodecError::StringTooLong { len: 7, max: 6, .. })
        ));
    }

    #[test]
    fn bits_and_bools() {
        assert_eq!(
            decode(&[0b1000], DataType::Bit(3), WordOrder::Dcba).unwrap(),
            TypedValue::Bool(true)
        );
        assert_eq!(
            decode(&[0b0111], DataType::Bit(3), WordOrder::Abcd).unwrap(),
            TypedValue::Bool(false)
        );
        assert_eq!(
            decode(&[0x8000], DataType::Bit(15), WordOrder::Abcd).unwrap(),
            TypedValue::Bool(true)
        );
        assert_eq!(
            decode(&[7], DataType::Bool, WordOrder::Abcd).unwrap(),
            TypedValue::Bool(true)
        );
        assert_eq!(
            encode(&TypedValue::Bool(true), DataType::Bit(4), WordOrder::Abcd).unwrap(),
            [0x10]
        );
        assert_eq!(
            decode(&[1], DataType::Bit(16), WordOrder::Abcd),
            Err(CodecError::BitIndex(16))
        );
    }

    #[test]
    fn wrong_lengths_and_kinds_are_errors_not_panics() {
        assert!(matches!(
            decode(&[1], DataType::U32, WordOrder::Abcd),
            Err(CodecError::WrongLength {
                expected: 2,
                got: 1,
                ..
            })
        ));
        assert!(matches!(
            decode(&[], DataType::Bool, WordOrder::Abcd),
            Err(CodecError::WrongLength { .. })
        ));
        assert!(matches!(
            decode(&[], DataType::String(0), WordOrder::Abcd),
            Err(CodecError::EmptyString)
        ));
        assert!(matches!(
            encode(&TypedValue::F32(1.0), DataType::U32, WordOrder::Abcd),
            Err(CodecError::TypeMismatch { value: "f32", .. })
        ));
    }

    #[test]
    fn from_f64_checks_range_and_fractions() {
        assert_eq!(
            TypedValue::from_f64(65535.0, DataType::U16).unwrap(),
            TypedValue::U16(65535)
        );
        assert!(matches!(
            TypedValue::from_f64(65536.0, DataType::U16),
            Err(CodecError::OutOfRange { .. })
        ));
        assert!(matches!(
            TypedValue::from_f64(-1.0, DataType::U32),
            Err(CodecError::OutOfRange { .. })
        ));
        assert!(matches!(
            TypedValue::from_f64(1.5, DataType::I16),
            Err(CodecError::NotInteger { .. })
        ));
        assert!(matches!(
            TypedValue::from_f64(f64::NAN, DataType::I32),
            Err(CodecError::OutOfRange { .. })
        ));
        assert!(matches!(
            TypedValue::from_f64(1e300, DataType::F32),
            Err(CodecError::OutOfRange { .. })
        ));
        assert_eq!(
            TypedValue::from_f64(-32768.0, DataType::I16).unwrap(),
            TypedValue::I16(-32768)
        );
        assert_eq!(
            TypedValue::from_f64(1.0, DataType::Bool).unwrap(),
            TypedValue::Bool(true)
        );
        assert!(TypedValue::from_f64(2.0, DataType::Bool).is_err());
        assert!(TypedValue::from_f64(1.0, DataType::String(2)).is_err());
    }

    #[test]
    fn data_type_names_round_trip_and_reject_nonsense() {
        for t in [
            DataType::Bool,
            DataType::Bit(0),
            DataType::Bit(15),
            DataType::U16,
            DataType::I16,
            DataType::U32,
            DataType::I32,
            DataType::U64,
            DataType::I64,
            DataType::F32,
            DataType::F64,
            DataType::String(8),
        ] {
            assert_eq!(t.to_string().parse::<DataType>().unwrap(), t);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<DataType>(&json).unwrap(), t);
        }
        assert_eq!(
            "bit:16".parse::<DataType>(),
            Err(DataTypeParseError::BitIndex(16))
        );
        assert_eq!(
            "string:0".parse::<DataType>(),
            Err(DataTypeParseError::EmptyString)
        );
        for bad in ["float", "u16:2", "bit", "bit:x", "string:70000", "", "U16"] {
            assert!(
                matches!(bad.parse::<DataType>(), Err(DataTypeParseError::Unknown(_))),
                "{bad}"
            );
        }
        let err = serde_json::from_str::<DataType>("\"float\"").unwrap_err();
        assert!(err.to_string().contains("unknown data type"), "{err}");
    }

    #[test]
    fn word_order_serde_names() {
        for (o, name) in [
            (WordOrder::Abcd, "\"ABCD\""),
            (WordOrder::Cdab, "\"CDAB\""),
            (WordOrder::Badc, "\"BADC\""),
            (WordOrder::Dcba, "\"DCBA\""),
        ] {
            assert_eq!(serde_json::to_string(&o).unwrap(), name);
            assert_eq!(serde_json::from_str::<WordOrder>(name).unwrap(), o);
        }
        assert!(serde_json::from_str::<WordOrder>("\"abcd\"").is_err());
    }

    fn numeric() -> impl Strategy<Value = (TypedValue, DataType)> {
        prop_oneof![
            any::<u16>().prop_map(|v| (TypedValue::U16(v), DataType::U16)),
            any::<i16>().prop_map(|v| (TypedValue::I16(v), DataType::I16)),
            any::<u32>().prop_map(|v| (TypedValue::U32(v), DataType::U32)),
            any::<i32>().prop_map(|v| (TypedValue::I32(v), DataType::I32)),
            any::<u64>().prop_map(|v| (TypedValue::U64(v), DataType::U64)),
            any::<i64>().prop_map(|v| (TypedValue::I64(v), DataType::I64)),
            any::<f32>()
                .prop_filter("NaN != NaN", |v| !v.is_nan())
                .prop_map(|v| (TypedValue::F32(v), DataType::F32)),
            any::<f64>()
                .prop_filter("NaN != NaN", |v| !v.is_nan())
                .prop_map(|v| (TypedValue::F64(v), DataType::F64)),
        ]
    }

    fn order() -> impl Strategy<Value = WordOrder> {
        prop::sample::select(WordOrder::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity((value, t) in numeric(), order in order()) {
            let words = encode(&value, t, order).unwrap();
            prop_assert_eq!(words.len(), usize::from(t.register_count()));
            prop_assert_eq!(decode(&words, t, order).unwrap(), value);
        }

        #[test]
        fn decode_is_total(words in prop::collection::vec(any::<u16>(), 0..10),
                           n in 0u16..6, bit in 0u8..20, order in order()) {
            for t in [DataType::Bool, DataType::Bit(bit), DataType::U16, DataType::I32,
                      DataType::F64, DataType::String(n)] {
                let _ = decode(&words, t, order);
            }
        }

        #[test]
        fn ascii_strings_round_trip(s in "[ -~]{0,12}", order in order()) {
            let t = DataType::String(6);
            let v = TypedValue::Str(s.clone());
            let words = encode(&v, t, order).unwrap();
            prop_assert_eq!(decode(&words, t, order).unwrap(), v);
        }
    }
}
