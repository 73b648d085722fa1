//! A cursor over a binary payload that turns every shortfall into a typed error.
//!
//! Nothing here indexes the input directly: each read checks the remaining length first, so a
//! truncated or hostile payload yields [`BinaryError`], never a panic.

use super::varint::unzigzag;
use super::BinaryError;
use crate::Ident;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Offset of the next byte to read.
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, BinaryError> {
        let b = *self.buf.get(self.pos).ok_or(BinaryError::Truncated {
            what,
            offset: self.pos,
            needed: 1,
        })?;
        self.pos += 1;
        Ok(b)
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], BinaryError> {
        if n > self.remaining() {
            return Err(BinaryError::Truncated {
                what,
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// An LEB128 varint; overlong forms (a final zero byte) and values beyond 64 bits are
    /// refused so that every value has exactly one encoding.
    pub fn varint(&mut self, what: &'static str) -> Result<u64, BinaryError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8(what)?;
            if i == 9 && b > 1 {
                return Err(BinaryError::BadVarint {
                    what,
                    offset: start,
                });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(BinaryError::BadVarint {
                        what,
                        offset: start,
                    });
                }
                return Ok(v);
            }
        }
        Err(BinaryError::BadVarint {
            what,
            offset: start,
        })
    }

    pub fn zigzag(&mut self, what: &'static str) -> Result<i64, BinaryError> {
        self.varint(what).map(unzigzag)
    }

    /// A varint that must not exceed `max`.
    pub fn count(&mut self, max: usize, what: &'static str) -> Result<usize, BinaryError> {
        let offset = self.pos;
        let value = self.varint(what)?;
        if value > max as u64 {
            return Err(BinaryError::TooLarge {
                what,
                offset,
                value,
                max: max as u64,
            });
        }
        Ok(value as usize)
    }

    /// A varint-length-prefixed UTF-8 string of at most `max` bytes.
    pub fn str(&mut self, max: usize, what: &'static str) -> Result<&'a str, BinaryError> {
        let len = self.count(max, what)?;
        let offset = self.pos;
        let bytes = self.bytes(len, what)?;
        std::str::from_utf8(bytes).map_err(|_| BinaryError::NotUtf8 { offset })
    }

    pub fn ident(&mut self, what: &'static str) -> Result<Ident, BinaryError> {
        let offset = self.pos;
        let s = self.str(Ident::MAX_LEN, what)?;
        Ident::new(s).map_err(|source| BinaryError::BadIdent { offset, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_read_back_and_refuse_overlong_forms() {
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            let mut b = Vec::new();
            super::super::varint::put_u64(&mut b, v);
            let mut r = Reader::new(&b);
            assert_eq!(r.varint("v"), Ok(v));
            assert_eq!(r.remaining(), 0);
        }
        for bad in [&[0x80, 0x00][..], &[0xff; 10], &[0xff; 11]] {
            assert!(matches!(
                Reader::new(bad).varint("v"),
                Err(BinaryError::BadVarint { .. })
            ));
        }
        assert!(matches!(
            Reader::new(&[0x80]).varint("v"),
            Err(BinaryError::Truncated { offset: 1, .. })
        ));
    }

    #[test]
    fn strings_check_length_before_reading() {
        assert!(matches!(
            Reader::new(&[5, b'a']).str(10, "s"),
            Err(BinaryError::Truncated { needed: 4, .. })
        ));
        assert!(matches!(
            Reader::new(&[11]).str(10, "s"),
            Err(BinaryError::TooLarge { value: 11, .. })
        ));
        assert!(matches!(
            Reader::new(&[1, 0xff]).str(10, "s"),
            Err(BinaryError::NotUtf8 { offset: 1 })
        ));
        assert!(matches!(
            Reader::new(&[1, b'/']).ident("s"),
            Err(BinaryError::BadIdent { .. })
        ));
        assert_eq!(Reader::new(&[2, b'o', b'k']).str(10, "s"), Ok("ok"));
    }
}
