//! Arrays read with a ceiling, so that a decoder stops at a limit instead of first building
//! whatever the payload describes and only then counting it.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::limits::{MAX_DEVICES_PER_BIRTH, MAX_POINTS_PER_DEVICE, MAX_READ_POINTS};

/// Reads an array of at most `max` elements.
pub(crate) struct Bounded<T> {
    max: usize,
    /// What the elements are, for the error message.
    what: &'static str,
    _t: PhantomData<T>,
}

impl<T> Bounded<T> {
    pub fn new(max: usize, what: &'static str) -> Self {
        Bounded {
            max,
            what,
            _t: PhantomData,
        }
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Bounded<T> {
    type Value = Vec<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Bounded<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of at most {} elements", self.max)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::new();
        while let Some(x) = seq.next_element()? {
            if out.len() == self.max {
                return Err(de::Error::custom(format_args!(
                    "more than {} {}",
                    self.max, self.what
                )));
            }
            out.push(x);
        }
        Ok(out)
    }
}

/// `deserialize_with` for a birth's devices.
pub(crate) fn devices<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Bounded::new(MAX_DEVICES_PER_BIRTH, "devices").deserialize(d)
}

/// `deserialize_with` for a device's points in a birth.
pub(crate) fn device_points<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Bounded::new(MAX_POINTS_PER_DEVICE, "points in a device").deserialize(d)
}

/// `deserialize_with` for the points of a read-now command.
pub(crate) fn read_points<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Bounded::new(MAX_READ_POINTS, "points to read").deserialize(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_the_limit() {
        let mut de = serde_json::Deserializer::from_str("[1,2,3]");
        assert_eq!(
            Bounded::<u8>::new(3, "numbers")
                .deserialize(&mut de)
                .unwrap(),
            [1, 2, 3]
        );
        let mut de = serde_json::Deserializer::from_str("[1,2,3,4]");
        let e = Bounded::<u8>::new(3, "numbers")
            .deserialize(&mut de)
            .unwrap_err();
        assert!(e.to_string().contains("more than 3 numbers"), "{e}");
    }
}
