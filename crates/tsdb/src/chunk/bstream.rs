//! Bit streams of the XOR chunk encoding: most significant bit first, the way
//! Prometheus' `bstream` lays them out.

/// An append-only bit stream over a byte vector, borrowed from its owner (the chunk
/// keeps `free_bits` beside its other small fields, where it costs no padding).
#[derive(Debug)]
pub(crate) struct BitWriter<'a> {
    pub(crate) bytes: &'a mut Vec<u8>,
    /// Unused low bits of the last byte of `bytes` (0..=7). When it is not 0,
    /// `bytes` is not empty and those bits are zero.
    pub(crate) free_bits: &'a mut u8,
}

impl BitWriter<'_> {
    pub(crate) fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Appends the `nbits` low bits of `value` (bits above are ignored).
    pub(crate) fn write_bits(&mut self, value: u64, nbits: u32) {
        if nbits == 0 || nbits > 64 {
            return;
        }
        // Grow only when the bits do not fit: a chunk sized for its samples up front
        // (see `XorChunk::successor`) then never reallocates. Grow by a quarter
        // instead of doubling: an open chunk lives for its series' next 120 samples,
        // and doubling left up to half of every one of them unused.
        let new_bytes = (nbits - nbits.min(u32::from(*self.free_bits))).div_ceil(8) as usize;
        if self.bytes.capacity() - self.bytes.len() < new_bytes {
            let extra = (self.bytes.len() / 4).max(32);
            self.bytes.reserve_exact(extra);
        }
        // Left-align the bits to write; `64 - nbits` is in 0..=63.
        let mut aligned = value << (64 - nbits);
        let mut remaining = nbits;
        if *self.free_bits > 0 {
            let free = u32::from(*self.free_bits);
            let take = remaining.min(free);
            // `take` is in 1..=8, so the shift is in 56..=63 and `top` < 2^take.
            let top = (aligned >> (64 - take)) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= top << (free - take);
            }
            // `take` <= 7 here (free_bits < 8) and `free - take` fits a u8.
            *self.free_bits = (free - take) as u8;
            aligned <<= take;
            remaining -= take;
        }
        while remaining >= 8 {
            self.bytes.push((aligned >> 56) as u8);
            aligned <<= 8;
            remaining -= 8;
        }
        if remaining > 0 {
            // The bits below the `remaining` top bits of `aligned` are zero.
            self.bytes.push((aligned >> 56) as u8);
            *self.free_bits = (8 - remaining) as u8;
        }
    }

    pub(crate) fn write_byte(&mut self, byte: u8) {
        self.write_bits(u64::from(byte), 8);
    }

    /// Go's `binary.PutUvarint`: 7 bits a byte, low groups first.
    pub(crate) fn write_uvarint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.write_byte((value as u8) | 0x80);
            value >>= 7;
        }
        self.write_byte(value as u8);
    }

    /// Go's `binary.PutVarint`: zig-zag, then uvarint.
    pub(crate) fn write_varint(&mut self, value: i64) {
        self.write_uvarint(((value << 1) ^ (value >> 63)) as u64);
    }
}

/// Why a bit stream could not be read.
pub(crate) type ReadError = &'static str;

const END_OF_DATA: ReadError = "data ends before the last sample";

/// Reads bits from a byte slice, never past its end.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    position: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8], position: usize) -> BitReader<'a> {
        BitReader { data, position }
    }

    pub(crate) fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn remaining_bits(&self) -> usize {
        self.data
            .len()
            .saturating_mul(8)
            .saturating_sub(self.position)
    }

    pub(crate) fn read_bit(&mut self) -> Result<bool, ReadError> {
        let byte = *self.data.get(self.position / 8).ok_or(END_OF_DATA)?;
        let bit = (byte >> (7 - self.position % 8)) & 1;
        self.position += 1;
        Ok(bit == 1)
    }

    /// Reads `nbits` (0..=64) bits as the low bits of the result.
    pub(crate) fn read_bits(&mut self, nbits: u32) -> Result<u64, ReadError> {
        if nbits == 0 {
            return Ok(0);
        }
        if nbits > 64 {
            return Err("bit field wider than 64 bits");
        }
        let byte_index = self.position / 8;
        let offset = (self.position % 8) as u32;
        // Fast path: one big-endian load of 8 bytes holds 64 - offset >= 57 bits.
        if nbits + offset <= 64
            && let Some(window) = self.data.get(byte_index..byte_index.saturating_add(8))
            && let Ok(window) = <[u8; 8]>::try_from(window)
        {
            // `offset` < 8 and `nbits` in 1..=64, so both shifts are < 64.
            let value = (u64::from_be_bytes(window) << offset) >> (64 - nbits);
            self.position += nbits as usize;
            return Ok(value);
        }
        if self.remaining_bits() < nbits as usize {
            return Err(END_OF_DATA);
        }
        let mut value = 0u64;
        let mut remaining = nbits;
        while remaining > 0 {
            let byte = u32::from(*self.data.get(self.position / 8).ok_or(END_OF_DATA)?);
            let bit_offset = (self.position % 8) as u32;
            let available_in_byte = 8 - bit_offset;
            let take = available_in_byte.min(remaining);
            // `take` in 1..=8: the shifts are < 32 and the mask fits.
            let bits = (byte >> (available_in_byte - take)) & ((1u32 << take) - 1);
            value = (value << take) | u64::from(bits);
            self.position += take as usize;
            remaining -= take;
        }
        Ok(value)
    }

    /// Go's `binary.ReadUvarint`, including its overflow checks.
    pub(crate) fn read_uvarint(&mut self) -> Result<u64, ReadError> {
        let mut value = 0u64;
        let mut shift = 0u32;
        for index in 0..10 {
            let byte = self.read_bits(8)?;
            if byte < 0x80 {
                if index == 9 && byte > 1 {
                    return Err("varint overflows 64 bits");
                }
                return Ok(value | (byte << shift));
            }
            value |= (byte & 0x7f) << shift;
            shift += 7;
        }
        Err("varint overflows 64 bits")
    }

    pub(crate) fn read_varint(&mut self) -> Result<i64, ReadError> {
        let zigzag = self.read_uvarint()?;
        let magnitude = (zigzag >> 1) as i64;
        Ok(if zigzag & 1 == 0 {
            magnitude
        } else {
            !magnitude
        })
    }
}
