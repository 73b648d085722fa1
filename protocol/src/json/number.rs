//! Numbers as short as JSON allows.
//!
//! serde_json writes every `f64` with a fraction (`230.0`); a reading that is a whole number
//! is written as an integer instead (`230`), which reads back as the same `f64`. Whole numbers
//! are common (counters, registers without scaling), so this is worth two bytes a point.

use serde::{Serialize, Serializer};

use crate::Value;

/// Largest magnitude below which every whole `f64` is exactly an `i64` and back.
const EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53

/// Serializes a [`Value`] with whole numbers as integers.
pub(crate) struct CompactValue<'a>(pub &'a Value);

impl Serialize for CompactValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Number(x) => {
                let whole = x.fract() == 0.0 && x.abs() < EXACT_INT;
                // -0.0 is whole but `-0` would read back as +0.0.
                if whole && !(*x == 0.0 && x.is_sign_negative()) {
                    s.serialize_i64(*x as i64)
                } else {
                    s.serialize_f64(*x)
                }
            }
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Str(t) => s.serialize_str(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(v: Value) -> String {
        serde_json::to_string(&CompactValue(&v)).unwrap()
    }

    #[test]
    fn whole_numbers_lose_their_fraction_and_read_back_equal() {
        for (x, text) in [
            (230.0, "230"),
            (-7.0, "-7"),
            (230.1, "230.1"),
            (-0.0, "-0.0"),
            (0.0, "0"),
            (1e300, "1e+300"),
            (9_007_199_254_740_991.0, "9007199254740991"),
        ] {
            assert_eq!(out(Value::Number(x)), text);
            let back: Value = serde_json::from_str(text).unwrap();
            let Value::Number(y) = back else {
                panic!("{text} read back as {back:?}")
            };
            assert_eq!(y.to_bits(), x.to_bits(), "{text}");
        }
        assert_eq!(out(Value::Bool(true)), "true");
        assert_eq!(out(Value::Str("a\"b".into())), r#""a\"b""#);
    }
}
