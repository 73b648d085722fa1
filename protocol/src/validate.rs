//! Checks shared by every message: identifiers, numbers, text, timestamps and counts.
//!
//! Each check takes the field's path as a closure so that the path string is only built when
//! the check fails; validating a 10,000-point batch then allocates nothing.

use crate::error::ValidationError;
use crate::limits::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};
use crate::{Ident, Value};

/// `ts_ms` lies in [`MIN_TIMESTAMP_MS`]`..=`[`MAX_TIMESTAMP_MS`].
pub fn timestamp(ts_ms: i64, field: impl FnOnce() -> String) -> Result<(), ValidationError> {
    if (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ts_ms) {
        Ok(())
    } else {
        Err(ValidationError::TimestampOutOfRange {
            field: field(),
            ts_ms,
        })
    }
}

/// `x` is neither NaN nor infinite (JSON cannot carry either, and neither can the store).
pub fn finite(x: f64, field: impl FnOnce() -> String) -> Result<(), ValidationError> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(ValidationError::NotFinite { field: field() })
    }
}

/// `s` is at most `max` bytes long. Any other content is allowed: free text is escaped by
/// JSON and stored as is.
pub fn text(s: &str, max: usize, field: impl FnOnce() -> String) -> Result<(), ValidationError> {
    if s.len() > max {
        return Err(ValidationError::TooLong {
            field: field(),
            len: s.len(),
            max,
        });
    }
    Ok(())
}

/// `s` is a short label: 1 to `max` bytes, no control characters. Labels end up in logs,
/// dashboards and database keys, where a newline or a NUL does harm.
pub fn label(s: &str, max: usize, field: impl FnOnce() -> String) -> Result<(), ValidationError> {
    if s.is_empty() {
        return Err(ValidationError::Empty { field: field() });
    }
    if s.len() > max {
        return Err(ValidationError::TooLong {
            field: field(),
            len: s.len(),
            max,
        });
    }
    if let Some((at, _)) = s.char_indices().find(|(_, c)| c.is_control()) {
        return Err(ValidationError::ControlChar { field: field(), at });
    }
    Ok(())
}

/// A list holds at most `max` entries.
pub fn count(n: usize, max: usize, field: impl FnOnce() -> String) -> Result<(), ValidationError> {
    if n > max {
        Err(ValidationError::TooMany {
            field: field(),
            count: n,
            max,
        })
    } else {
        Ok(())
    }
}

/// `v` lies in `min..=max`.
pub fn range(
    v: u64,
    min: u64,
    max: u64,
    field: impl FnOnce() -> String,
) -> Result<(), ValidationError> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(ValidationError::OutOfRange {
            field: field(),
            value: v,
            min,
            max,
        })
    }
}

/// A reading's value: finite if a number, at most
/// [`MAX_STRING_VALUE_LEN`](crate::limits::MAX_STRING_VALUE_LEN) bytes if a string.
pub fn value(v: &Value, field: impl FnOnce() -> String) -> Result<(), ValidationError> {
    match v {
        Value::Bool(_) => Ok(()),
        Value::Number(x) => finite(*x, field),
        Value::Str(s) => text(s, crate::limits::MAX_STRING_VALUE_LEN, field),
    }
}

/// Identifiers are validated when they are made; this re-checks one that came from a string.
pub fn ident(s: &str, field: impl FnOnce() -> String) -> Result<Ident, ValidationError> {
    Ident::new(s).map_err(|source| ValidationError::Ident {
        field: field(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f() -> String {
        "x".to_string()
    }

    #[test]
    fn timestamps_outside_the_range_are_named() {
        assert!(timestamp(0, f).is_ok());
        assert!(timestamp(MAX_TIMESTAMP_MS, f).is_ok());
        assert_eq!(
            timestamp(-1, f),
            Err(ValidationError::TimestampOutOfRange {
                field: "x".into(),
                ts_ms: -1
            })
        );
        assert!(timestamp(MAX_TIMESTAMP_MS + 1, f).is_err());
    }

    #[test]
    fn non_finite_numbers_are_rejected() {
        assert!(finite(1.5, f).is_ok());
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(finite(bad, f).is_err());
        }
        assert!(value(&Value::Number(f64::NAN), f).is_err());
        assert!(value(&Value::Str("a".repeat(257)), f).is_err());
        assert!(value(&Value::Str("a".repeat(256)), f).is_ok());
    }

    #[test]
    fn labels_reject_empty_long_and_control() {
        assert!(label("kWh", 32, f).is_ok());
        assert!(label("m³/h", 32, f).is_ok());
        assert!(matches!(
            label("", 32, f),
            Err(ValidationError::Empty { .. })
        ));
        assert!(matches!(
            label("a\nb", 32, f),
            Err(ValidationError::ControlChar { at: 1, .. })
        ));
        assert!(matches!(
            label(&"a".repeat(33), 32, f),
            Err(ValidationError::TooLong { len: 33, .. })
        ));
        assert!(text("line\nbreak", 32, f).is_ok());
        assert!(text(&"a".repeat(33), 32, f).is_err());
    }

    #[test]
    fn counts_and_ranges() {
        assert!(count(3, 3, f).is_ok());
        assert!(count(4, 3, f).is_err());
        assert!(range(10, 10, 20, f).is_ok());
        assert!(range(9, 10, 20, f).is_err());
        assert!(range(21, 10, 20, f).is_err());
        assert!(ident("a/b", f).is_err());
    }
}
