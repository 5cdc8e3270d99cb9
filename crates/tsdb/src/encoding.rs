//! Varint/zigzag helpers and a bounds-checked reader for our on-disk formats.

use crate::{Error, Result};

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub(crate) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, value: i64) {
    put_uvarint(out, zigzag(value));
}

pub(crate) fn put_str(out: &mut Vec<u8>, value: &str) {
    put_uvarint(out, value.len() as u64);
    out.extend_from_slice(value.as_bytes());
}

/// Reads from a byte slice; every read past the end is [`Error::Corrupt`] naming `what`.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader {
            bytes,
            position: 0,
            what,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.position >= self.bytes.len()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.position)
    }

    fn corrupt(&self, detail: &str) -> Error {
        Error::Corrupt(format!("{}: {detail} at byte {}", self.what, self.position))
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        let byte = *self
            .bytes
            .get(self.position)
            .ok_or_else(|| self.corrupt("unexpected end"))?;
        self.position += 1;
        Ok(byte)
    }

    #[inline]
    pub(crate) fn uvarint(&mut self) -> Result<u64> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.corrupt("varint too long"))
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Result<i64> {
        Ok(unzigzag(self.uvarint()?))
    }

    /// Reads `slots.len()` zigzag varints, replacing each slot with `next(varint)`.
    ///
    /// The same bytes as repeated [`Self::varint`] calls, in one loop: no `Result` per
    /// integer and a one-byte fast path (block streams are mostly small deltas). This
    /// loop is most of the time a long query spends decoding blocks.
    #[inline]
    pub(crate) fn varints_into(
        &mut self,
        slots: &mut [i64],
        mut next: impl FnMut(i64) -> i64,
    ) -> Result<()> {
        let bytes = self.bytes;
        let mut position = self.position;
        for slot in slots.iter_mut() {
            let Some(&first) = bytes.get(position) else {
                self.position = position;
                return Err(self.corrupt("unexpected end"));
            };
            position += 1;
            let raw = if first < 0x80 {
                u64::from(first)
            } else {
                let mut value = u64::from(first & 0x7f);
                let mut shift = 7;
                loop {
                    let Some(&byte) = bytes.get(position) else {
                        self.position = position;
                        return Err(self.corrupt("unexpected end"));
                    };
                    position += 1;
                    value |= u64::from(byte & 0x7f) << shift;
                    if byte < 0x80 {
                        break;
                    }
                    shift += 7;
                    if shift >= 64 {
                        self.position = position;
                        return Err(self.corrupt("varint too long"));
                    }
                }
                value
            };
            *slot = next(unzigzag(raw));
        }
        self.position = position;
        Ok(())
    }

    /// A varint that must fit `usize` and be at most `max` (guards allocations).
    pub(crate) fn len(&mut self, max: usize) -> Result<usize> {
        let value = self.uvarint()?;
        match usize::try_from(value) {
            Ok(len) if len <= max => Ok(len),
            _ => Err(self.corrupt("length out of range")),
        }
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8]> {
        let end = self
            .position
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.corrupt("unexpected end"))?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    pub(crate) fn u32_le(&mut self) -> Result<u32> {
        let raw = self.bytes(4)?;
        let mut buf = [0u8; 4];
        buf.copy_from_slice(raw);
        Ok(u32::from_le_bytes(buf))
    }

    pub(crate) fn u64_le(&mut self) -> Result<u64> {
        let raw = self.bytes(8)?;
        let mut buf = [0u8; 8];
        buf.copy_from_slice(raw);
        Ok(u64::from_le_bytes(buf))
    }

    pub(crate) fn str(&mut self) -> Result<&'a str> {
        let len = self.len(self.remaining())?;
        let raw = self.bytes(len)?;
        std::str::from_utf8(raw).map_err(|_| self.corrupt("string is not utf-8"))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The one-loop reader reads exactly what repeated `varint` calls read, and
        /// fails where they fail.
        #[test]
        fn varints_into_matches_varint(
            // Small ones too: most varints of block streams are one or two bytes.
            values in proptest::collection::vec(
                prop_oneof![any::<i64>(), -100i64..100, -10_000i64..10_000],
                0..40,
            ),
            garbage in proptest::collection::vec(any::<u8>(), 0..24),
            count in 0usize..50,
            use_garbage in any::<bool>(),
        ) {
            let mut bytes = Vec::new();
            if use_garbage {
                bytes = garbage;
            } else {
                for &v in &values {
                    put_varint(&mut bytes, v);
                }
            }
            let mut one_by_one = Reader::new(&bytes, "test");
            let expected: Result<Vec<i64>> = (0..count).map(|_| one_by_one.varint()).collect();
            let mut slots = vec![0i64; count];
            let mut reader = Reader::new(&bytes, "test");
            let got = reader.varints_into(&mut slots, |v| v);
            match expected {
                Ok(expected) => {
                    prop_assert!(got.is_ok());
                    prop_assert_eq!(slots, expected);
                    prop_assert_eq!(reader.position, one_by_one.position);
                }
                Err(_) => prop_assert!(got.is_err()),
            }
        }
    }

    #[test]
    fn varints_round_trip() {
        let values = [0i64, 1, -1, 63, -64, 1 << 40, i64::MIN, i64::MAX];
        let mut out = Vec::new();
        for v in values {
            put_varint(&mut out, v);
        }
        put_str(&mut out, "héllo");
        let mut reader = Reader::new(&out, "test");
        for v in values {
            assert_eq!(reader.varint().unwrap(), v);
        }
        assert_eq!(reader.str().unwrap(), "héllo");
        assert!(reader.is_empty());
        assert!(reader.u8().is_err());
    }
}
