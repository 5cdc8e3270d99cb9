//! A minimal protobuf wire-format reader over a byte slice: tags, varints, fixed
//! 32/64-bit values and length-delimited fields (returned as sub-slices, no copy).
//! Groups (wire types 3 and 4, deprecated since proto2) are refused.

/// One field's value as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Why a message does not parse. Small and `Copy` so the hot decoding loop returns
/// it in registers; the text is made only when a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum WireError {
    #[error("invalid field number {0}")]
    InvalidFieldNumber(u64),
    #[error("field {field} claims {claimed} bytes; {remaining} remain")]
    LengthPastEnd {
        field: u32,
        claimed: u64,
        remaining: usize,
    },
    #[error("field {field} has unsupported wire type {wire_type}")]
    UnsupportedWireType { field: u32, wire_type: u64 },
    #[error("message ends inside a fixed-width value")]
    TruncatedFixed,
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    #[error("message ends inside a varint")]
    TruncatedVarint,
}

/// Reads the fields of one message in order.
#[derive(Debug)]
pub(super) struct WireReader<'a> {
    rest: &'a [u8],
}

impl<'a> WireReader<'a> {
    pub(super) fn new(message: &'a [u8]) -> WireReader<'a> {
        WireReader { rest: message }
    }

    /// The next (field number, value), `None` at the end of the message.
    #[inline]
    pub(super) fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, WireError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3)
            .ok()
            .filter(|field| *field != 0 && *field <= MAX_FIELD_NUMBER)
            .ok_or(WireError::InvalidFieldNumber(key >> 3))?;
        let value = match key & 0x7 {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(u64::from_le_bytes(self.take_array::<8>()?)),
            2 => {
                let length = self.varint()?;
                let length = usize::try_from(length)
                    .ok()
                    .filter(|length| *length <= self.rest.len())
                    .ok_or(WireError::LengthPastEnd {
                        field,
                        claimed: length,
                        remaining: self.rest.len(),
                    })?;
                let (bytes, rest) = self.rest.split_at(length);
                self.rest = rest;
                WireValue::Bytes(bytes)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(self.take_array::<4>()?)),
            wire_type => return Err(WireError::UnsupportedWireType { field, wire_type }),
        };
        Ok(Some((field, value)))
    }

    /// The next field if its key is the one byte `key` (a length-delimited field
    /// number below 16) and its bytes are all there; otherwise `None` and the reader
    /// unchanged, for [`WireReader::next_field`] to read or refuse the field.
    #[inline]
    pub(super) fn next_bytes_field(&mut self, key: u8) -> Option<&'a [u8]> {
        let (&first, after_key) = self.rest.split_first()?;
        if first != key {
            return None;
        }
        let mut length_reader = WireReader::new(after_key);
        let length = usize::try_from(length_reader.varint().ok()?).ok()?;
        let (bytes, rest) = length_reader.rest.split_at_checked(length)?;
        self.rest = rest;
        Some(bytes)
    }

    /// [`WireReader::next_bytes_field`] for the common case of a one-byte length.
    #[inline]
    pub(super) fn next_short_bytes_field(&mut self, key: u8) -> Option<&'a [u8]> {
        let [first, length, rest @ ..] = self.rest else {
            return None;
        };
        if *first != key || *length >= 0x80 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(usize::from(*length))?;
        self.rest = rest;
        Some(bytes)
    }

    /// What is left to read.
    pub(super) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// The message's remaining bytes as exactly one varint, or `None`.
    #[inline]
    pub(super) fn varint_to_end(&mut self) -> Option<u64> {
        let value = self.varint().ok()?;
        self.rest.is_empty().then_some(value)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let Some((bytes, rest)) = self.rest.split_first_chunk::<N>() else {
            return Err(WireError::TruncatedFixed);
        };
        self.rest = rest;
        Ok(*bytes)
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, WireError> {
        // One byte is by far the most common case (tags, small lengths).
        if let Some(&byte) = self.rest.first()
            && byte < 0x80
        {
            self.rest = &self.rest[1..];
            return Ok(u64::from(byte));
        }
        let mut value = 0u64;
        for (index, &byte) in self.rest.iter().enumerate().take(10) {
            // The tenth byte may only carry the 64th bit.
            if index == 9 && byte > 1 {
                return Err(WireError::VarintOverflow);
            }
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte < 0x80 {
                self.rest = &self.rest[index + 1..];
                return Ok(value);
            }
        }
        if self.rest.len() < 10 {
            Err(WireError::TruncatedVarint)
        } else {
            // Ten bytes all with the continuation bit: the tenth check above refused it.
            Err(WireError::VarintOverflow)
        }
    }
}

/// Protobuf's largest field number (2^29 - 1).
const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_fields(bytes: &[u8]) -> Result<Vec<(u32, WireValue<'_>)>, WireError> {
        let mut reader = WireReader::new(bytes);
        let mut fields = Vec::new();
        while let Some(field) = reader.next_field()? {
            fields.push(field);
        }
        Ok(fields)
    }

    #[test]
    fn reads_each_wire_type() {
        // field 1 varint 150; field 2 fixed64; field 3 bytes "hi"; field 4 fixed32.
        let mut bytes = vec![0x08, 0x96, 0x01, 0x11];
        bytes.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
        bytes.extend_from_slice(&[0x1a, 0x02, b'h', b'i', 0x25, 1, 0, 0, 0]);
        assert_eq!(
            all_fields(&bytes).unwrap(),
            vec![
                (1, WireValue::Varint(150)),
                (2, WireValue::Fixed64(1.5f64.to_bits())),
                (3, WireValue::Bytes(b"hi")),
                (4, WireValue::Fixed32(1)),
            ]
        );
    }

    #[test]
    fn refuses_truncated_and_invalid_input() {
        assert!(all_fields(&[0x08]).is_err(), "varint cut");
        assert!(all_fields(&[0x1a, 0x05, b'a']).is_err(), "length past end");
        assert!(all_fields(&[0x11, 1, 2]).is_err(), "fixed64 cut");
        assert!(all_fields(&[0x00, 0x00]).is_err(), "field 0");
        assert!(all_fields(&[0x0b]).is_err(), "group start");
        assert!(
            all_fields(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ])
            .is_err()
        );
    }

    #[test]
    fn bytes_field_fast_paths_read_only_their_field() {
        // field 1 bytes "ab", then field 2 bytes of 200 zeros (two-byte length).
        let mut bytes = vec![0x0a, 2, b'a', b'b', 0x12, 0xc8, 0x01];
        bytes.extend_from_slice(&[0; 200]);
        let mut reader = WireReader::new(&bytes);
        assert_eq!(reader.next_short_bytes_field(0x12), None);
        assert_eq!(reader.next_short_bytes_field(0x0a), Some(&b"ab"[..]));
        assert_eq!(
            reader.next_short_bytes_field(0x12),
            None,
            "length of two bytes"
        );
        assert_eq!(reader.next_bytes_field(0x12).map(<[u8]>::len), Some(200));
        assert_eq!(reader.next_bytes_field(0x12), None);
        assert_eq!(reader.next_field(), Ok(None));
        // A length past the end leaves the reader for next_field to refuse.
        let cut = [0x0a, 5, b'a'];
        let mut reader = WireReader::new(&cut);
        assert_eq!(reader.next_short_bytes_field(0x0a), None);
        assert_eq!(reader.next_bytes_field(0x0a), None);
        assert!(reader.next_field().is_err());
    }

    proptest! {
        #[test]
        fn agrees_with_prost_on_varints(value in any::<u64>(), field in 1u32..1000) {
            let mut bytes = Vec::new();
            prost::encoding::encode_key(field, prost::encoding::WireType::Varint, &mut bytes);
            prost::encoding::encode_varint(value, &mut bytes);
            prop_assert_eq!(all_fields(&bytes).unwrap(), vec![(field, WireValue::Varint(value))]);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = all_fields(&bytes);
        }
    }
}
