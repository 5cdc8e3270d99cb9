//! Per-series compressed sample chunks.
//!
//! PLACEHOLDER ENCODING (being replaced by the Gorilla XOR codec): 16 bytes a sample.
//! The public API below is the contract; the encoding behind it will change.

use crate::{Error, Result};

/// Timestamps inside chunks are milliseconds since the epoch (metrics have
/// Prometheus' millisecond precision).
pub type Millis = i64;

/// An append-only compressed chunk of (timestamp, value) samples with strictly
/// increasing timestamps.
#[derive(Debug, Clone, Default)]
pub struct XorChunk {
    bytes: Vec<u8>,
    num_samples: u16,
    min_time: Millis,
    max_time: Millis,
}

impl XorChunk {
    /// Largest number of samples one chunk holds.
    pub const MAX_SAMPLES: usize = 240;

    pub fn new() -> XorChunk {
        XorChunk::default()
    }

    /// Appends a sample; the caller guarantees `t` is greater than [`Self::max_time`]
    /// when the chunk is not empty and that the chunk is not full.
    pub fn append(&mut self, t: Millis, v: f64) {
        if self.num_samples == 0 {
            self.min_time = t;
        }
        self.max_time = t;
        self.num_samples += 1;
        self.bytes.extend_from_slice(&t.to_le_bytes());
        self.bytes.extend_from_slice(&v.to_bits().to_le_bytes());
    }

    pub fn num_samples(&self) -> usize {
        usize::from(self.num_samples)
    }

    pub fn is_full(&self) -> bool {
        self.num_samples() >= Self::MAX_SAMPLES
    }

    pub fn min_time(&self) -> Millis {
        self.min_time
    }

    pub fn max_time(&self) -> Millis {
        self.max_time
    }

    /// The complete encoded form; [`decode`] reads it back.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn iter(&self) -> impl Iterator<Item = (Millis, f64)> + '_ {
        self.bytes.chunks_exact(16).map(|c| {
            let mut t = [0u8; 8];
            let mut v = [0u8; 8];
            t.copy_from_slice(&c[..8]);
            v.copy_from_slice(&c[8..]);
            (i64::from_le_bytes(t), f64::from_bits(u64::from_le_bytes(v)))
        })
    }
}

/// Decodes an encoded chunk (e.g. read from a block file). Corrupt input is an
/// error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<Vec<(Millis, f64)>> {
    if bytes.len() % 16 != 0 {
        return Err(Error::Corrupt("chunk length".to_string()));
    }
    let mut chunk = XorChunk::new();
    chunk.bytes = bytes.to_vec();
    Ok(chunk.iter().collect())
}
