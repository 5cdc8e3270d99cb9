//! A hasher for in-memory maps keyed by integers Sightline makes itself: the head's
//! series ids and fingerprints, the query engine's label-set identities.
//!
//! std's SipHash guards against hash flooding, which costs ~20 ns per lookup on the
//! ingest hot path. Our keys are either xxh3 fingerprints (already uniform) or ids and
//! addresses we assign ourselves, so nobody outside chooses them: one multiply spreads
//! every bit into the high bits hashbrown's probing uses. Never persisted.

use std::hash::{BuildHasherDefault, Hasher};

/// Hasher for integer keys (u32 series ids, u64 fingerprints, addresses).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only integer keys use this hasher; a byte key still hashes correctly, just
        // without the integer fast path.
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(FIBONACCI);
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0 ^ value).wrapping_mul(FIBONACCI);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

/// 2^64 / φ: multiplying by it moves low-bit differences into the high bits.
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

/// `HashMap` with [`IdHasher`].
pub type IdHashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_spread_over_high_bits() {
        let top_bits: std::collections::HashSet<u64> = (0u32..1024)
            .map(|id| {
                let mut hasher = IdHasher::default();
                hasher.write_u32(id);
                hasher.finish() >> 57
            })
            .collect();
        assert!(top_bits.len() > 100, "only {} distinct", top_bits.len());
    }
}
