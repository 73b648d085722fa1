//! Identifiers for gateways, devices and metrics.
//!
//! An identifier appears as an MQTT topic level and as a key in storage, so the alphabet is
//! narrow on purpose: ASCII letters, digits, `_`, `-` and `.`, 1 to [`Ident::MAX_LEN`] bytes,
//! starting with a letter, a digit or `_` (the gateway's own metrics live under `_gateway`).
//! This rules out the MQTT wildcards `+` and `#`, the level separator `/`, `$` (reserved by
//! brokers for system topics), white space, control characters and the empty string.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A validated gateway, device or metric identifier. Cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ident(Arc<str>);

/// Why a string is not a valid [`Ident`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentError {
    #[error("identifier is empty")]
    Empty,
    #[error("identifier is {len} bytes long, the maximum is {max}")]
    TooLong { len: usize, max: usize },
    #[error("identifier has {found:?} at byte {at}; allowed are ASCII letters, digits, '_', '-' and '.'")]
    BadChar { found: char, at: usize },
    #[error("identifier starts with {found:?}; it must start with a letter, a digit or '_'")]
    BadStart { found: char },
}

impl Ident {
    /// Longest identifier accepted, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Validates `s` and makes an identifier of it.
    pub fn new(s: &str) -> Result<Self, IdentError> {
        Self::validate(s)?;
        Ok(Ident(Arc::from(s)))
    }

    /// Checks `s` without allocating.
    pub fn validate(s: &str) -> Result<(), IdentError> {
        if s.is_empty() {
            return Err(IdentError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(IdentError::TooLong {
                len: s.len(),
                max: Self::MAX_LEN,
            });
        }
        for (at, c) in s.char_indices() {
            if !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
                return Err(IdentError::BadChar { found: c, at });
            }
        }
        let first = s.as_bytes()[0];
        if !(first.is_ascii_alphanumeric() || first == b'_') {
            return Err(IdentError::BadStart {
                found: first as char,
            });
        }
        Ok(())
    }

    /// The identifier as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for Ident {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Ident {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ident::new(s)
    }
}

impl TryFrom<&str> for Ident {
    type Error = IdentError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Ident::new(s)
    }
}

impl Serialize for Ident {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Ident {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ident::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["g1", "meter-01", "voltage_l1", "_gateway", "a.b.c", "9"] {
            assert!(Ident::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_wildcards_separators_and_control_chars() {
        assert_eq!(Ident::new(""), Err(IdentError::Empty));
        assert!(matches!(
            Ident::new("a/b"),
            Err(IdentError::BadChar { found: '/', at: 1 })
        ));
        assert!(matches!(
            Ident::new("+"),
            Err(IdentError::BadChar { found: '+', .. })
        ));
        assert!(matches!(
            Ident::new("a#"),
            Err(IdentError::BadChar { found: '#', .. })
        ));
        assert!(matches!(
            Ident::new("$SYS"),
            Err(IdentError::BadChar { found: '$', .. })
        ));
        assert!(matches!(
            Ident::new("a\u{0}"),
            Err(IdentError::BadChar { .. })
        ));
        assert!(matches!(Ident::new("a b"), Err(IdentError::BadChar { .. })));
        assert!(matches!(
            Ident::new("-a"),
            Err(IdentError::BadStart { found: '-' })
        ));
        assert!(matches!(Ident::new("é"), Err(IdentError::BadChar { .. })));
        let long = "a".repeat(Ident::MAX_LEN + 1);
        assert!(matches!(Ident::new(&long), Err(IdentError::TooLong { .. })));
        assert!(Ident::new(&long[..Ident::MAX_LEN]).is_ok());
    }

    #[test]
    fn deserializing_validates() {
        let bad: Result<Ident, _> = serde_json::from_str("\"a/b\"");
        assert!(bad.is_err());
        let good: Ident = serde_json::from_str("\"meter-1\"").unwrap();
        assert_eq!(good.as_str(), "meter-1");
    }
}
