//! The zero-allocation reader of an encoded XOR chunk.

use super::Millis;
use super::bstream::{BitReader, ReadError};

/// Bits of the sample-count header at the start of every chunk.
pub(crate) const HEADER_BITS: usize = 16;

/// Iterates the samples of an encoded chunk without allocating.
///
/// On corrupt input it stops early and [`ChunkIter::corruption`] says why; it
/// never panics, whatever the bytes.
#[derive(Debug, Clone)]
pub struct ChunkIter<'a> {
    reader: BitReader<'a>,
    total: u16,
    read: u16,
    t: Millis,
    t_delta: u64,
    value_bits: u64,
    leading: u8,
    trailing: u8,
    /// Whether a value window (leading/trailing zeros) was read yet.
    window_set: bool,
    corruption: Option<&'static str>,
}

/// The state an appender needs to continue a chunk where a reader stopped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EndState {
    pub(crate) total: u16,
    pub(crate) bit_position: usize,
    pub(crate) t: Millis,
    pub(crate) t_delta: u64,
    pub(crate) value_bits: u64,
    pub(crate) window: Option<(u8, u8)>,
}

impl<'a> ChunkIter<'a> {
    /// Reads the chunk encoded in `bytes` (as returned by `XorChunk::bytes`).
    pub fn new(bytes: &'a [u8]) -> ChunkIter<'a> {
        let (total, corruption) = match bytes {
            [high, low, ..] => (u16::from_be_bytes([*high, *low]), None),
            _ => (0, Some("chunk is shorter than its 2-byte header")),
        };
        ChunkIter {
            reader: BitReader::new(bytes, HEADER_BITS),
            total,
            read: 0,
            t: 0,
            t_delta: 0,
            value_bits: 0,
            leading: 0,
            trailing: 0,
            window_set: false,
            corruption,
        }
    }

    /// The number of samples the chunk header announces.
    pub fn num_samples(&self) -> usize {
        usize::from(self.total)
    }

    /// Why iteration stopped before the announced number of samples, if it did.
    pub fn corruption(&self) -> Option<&'static str> {
        self.corruption
    }

    /// Samples read so far.
    pub fn samples_read(&self) -> usize {
        usize::from(self.read)
    }

    /// An upper bound of the samples the remaining bytes can hold: every
    /// sample after the second takes at least 2 bits.
    pub(crate) fn capacity_hint(&self) -> usize {
        let remaining_bits = self.reader.remaining_bits();
        usize::from(self.total.saturating_sub(self.read)).min(remaining_bits / 2 + 2)
    }

    /// Where an appender continues; `None` until all samples were read.
    pub(crate) fn end_state(&self) -> Option<EndState> {
        if self.corruption.is_some() || self.read != self.total {
            return None;
        }
        Some(EndState {
            total: self.total,
            bit_position: self.reader.position(),
            t: self.t,
            t_delta: self.t_delta,
            value_bits: self.value_bits,
            window: self.window_set.then_some((self.leading, self.trailing)),
        })
    }

    fn read_sample(&mut self) -> Result<(), ReadError> {
        if self.read == 0 {
            self.t = self.reader.read_varint()?;
            self.value_bits = self.reader.read_bits(64)?;
            return Ok(());
        }
        let previous_t = self.t;
        if self.read == 1 {
            self.t_delta = self.reader.read_uvarint()?;
        } else {
            let delta_of_delta = self.read_delta_of_delta()?;
            // Inverse of the appender's wrapping subtraction (see the module docs).
            self.t_delta = self.t_delta.wrapping_add(delta_of_delta as u64);
        }
        self.t = previous_t.wrapping_add(self.t_delta as i64);
        if self.t <= previous_t {
            return Err("timestamps are not strictly increasing");
        }
        self.read_value()
    }

    fn read_delta_of_delta(&mut self) -> Result<i64, ReadError> {
        let mut ones = 0;
        while ones < 4 && self.reader.read_bit()? {
            ones += 1;
        }
        let width = match ones {
            0 => return Ok(0),
            1 => 14,
            2 => 17,
            3 => 20,
            _ => return Ok(self.reader.read_bits(64)? as i64),
        };
        let bits = self.reader.read_bits(width)?;
        // Values above 2^(width-1) are negative (two's complement in `width` bits).
        if bits > 1 << (width - 1) {
            Ok(bits as i64 - (1i64 << width))
        } else {
            Ok(bits as i64)
        }
    }

    fn read_value(&mut self) -> Result<(), ReadError> {
        if !self.reader.read_bit()? {
            return Ok(());
        }
        if self.reader.read_bit()? {
            let leading = self.reader.read_bits(5)? as u8;
            let mut significant = self.reader.read_bits(6)? as u8;
            if significant == 0 {
                significant = 64;
            }
            if leading + significant > 64 {
                return Err("value window is wider than 64 bits");
            }
            self.leading = leading;
            self.trailing = 64 - leading - significant;
            self.window_set = true;
        }
        // Invariant: leading + trailing <= 63 (set above with significant >= 1,
        // or both still 0), so `significant` is in 1..=64 and `trailing` < 64.
        let significant = 64 - self.leading - self.trailing;
        let bits = self.reader.read_bits(u32::from(significant))?;
        self.value_bits ^= bits << self.trailing;
        Ok(())
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = (Millis, f64);

    fn next(&mut self) -> Option<(Millis, f64)> {
        if self.corruption.is_some() || self.read >= self.total {
            return None;
        }
        if let Err(reason) = self.read_sample() {
            self.corruption = Some(reason);
            return None;
        }
        self.read += 1;
        Some((self.t, f64::from_bits(self.value_bits)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.corruption.is_some() {
            return (0, Some(0));
        }
        (0, Some(usize::from(self.total.saturating_sub(self.read))))
    }
}

impl std::iter::FusedIterator for ChunkIter<'_> {}
