//! The head's series by label-set fingerprint: an open-addressing table (linear
//! probing, backward-shift deletion) of `(fingerprint, series)` slots.
//!
//! Ours rather than a `HashMap` for one reason: the write path looks up a whole
//! request's series at once, and can ask for each slot's cache line ahead of time
//! ([`FingerprintTable::prefetch`]). With tens of thousands of series the slots are
//! not in cache, and waiting for one miss per series was the largest single cost of
//! remote_write ingest. A `HashMap` does not say where a key's bucket is.
//!
//! One series per fingerprint: a second label set with the same fingerprint (a real
//! xxh3 collision) is the caller's business (`HeadInner::collisions`).

use std::hash::BuildHasher;
use std::sync::Arc;

use super::MemSeries;

/// Most slots in use, as a fraction, before the table doubles: 3/4 keeps linear
/// probing's runs short (the table sits between 3/8 and 3/4 full).
const MAX_LOAD_NUMERATOR: usize = 3;
const MAX_LOAD_DENOMINATOR: usize = 4;
/// Slots of the first allocation.
const MIN_SLOTS: usize = 16;

#[derive(Debug, Default)]
struct Slot {
    fingerprint: u64,
    /// `None` marks an empty slot.
    series: Option<Arc<MemSeries>>,
}

#[derive(Debug)]
pub(super) struct FingerprintTable {
    /// Length zero or a power of two.
    slots: Box<[Slot]>,
    len: usize,
    /// `64 - log2(slots.len())`: a slot index is the top bits of the mixed key.
    shift: u32,
    /// Mixed into every key, different in every process: fingerprints are a public
    /// function of label text, so without it a sender could choose label sets whose
    /// slots all fall together and make every probe walk a long run.
    seed: u64,
}

impl Default for FingerprintTable {
    fn default() -> FingerprintTable {
        FingerprintTable {
            slots: Box::default(),
            len: 0,
            shift: 64,
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5151_u64),
        }
    }
}

impl FingerprintTable {
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated (for memory accounting).
    pub(super) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes of one slot (for memory accounting).
    pub(super) const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

    fn home(&self, fingerprint: u64) -> usize {
        if self.slots.is_empty() {
            return 0;
        }
        // Fibonacci hashing: the multiply spreads every key bit into the top bits.
        ((fingerprint ^ self.seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// Asks the CPU to bring `fingerprint`'s home slot into cache, so that a
    /// [`FingerprintTable::get`] a little later does not wait for memory.
    #[inline]
    pub(super) fn prefetch(&self, fingerprint: u64) {
        if let Some(slot) = self.slots.get(self.home(fingerprint)) {
            prefetch_read(std::ptr::from_ref(slot).cast());
        }
    }

    pub(super) fn get(&self, fingerprint: u64) -> Option<&Arc<MemSeries>> {
        let mask = self.mask();
        let mut index = self.home(fingerprint);
        loop {
            let slot = self.slots.get(index)?;
            let series = slot.series.as_ref()?;
            if slot.fingerprint == fingerprint {
                return Some(series);
            }
            index = (index + 1) & mask;
        }
    }

    /// Adds `series` under `fingerprint`; gives it back when the fingerprint is taken.
    pub(super) fn insert(
        &mut self,
        fingerprint: u64,
        series: Arc<MemSeries>,
    ) -> Result<(), Arc<MemSeries>> {
        if self.get(fingerprint).is_some() {
            return Err(series);
        }
        if (self.len + 1) * MAX_LOAD_DENOMINATOR > self.slots.len() * MAX_LOAD_NUMERATOR {
            self.grow();
        }
        self.place(fingerprint, series);
        self.len += 1;
        Ok(())
    }

    /// Puts an entry whose fingerprint is not in the table into the first free slot
    /// of its run (the table has one: the load is below 1).
    fn place(&mut self, fingerprint: u64, series: Arc<MemSeries>) {
        let mask = self.mask();
        let mut index = self.home(fingerprint);
        while self.slots[index].series.is_some() {
            index = (index + 1) & mask;
        }
        self.slots[index] = Slot {
            fingerprint,
            series: Some(series),
        };
    }

    fn grow(&mut self) {
        let new_len = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(
            &mut self.slots,
            std::iter::repeat_with(Slot::default)
                .take(new_len)
                .collect(),
        );
        self.shift = 64 - new_len.trailing_zeros();
        for slot in old.into_vec() {
            if let Some(series) = slot.series {
                self.place(slot.fingerprint, series);
            }
        }
    }

    pub(super) fn remove(&mut self, fingerprint: u64) -> Option<Arc<MemSeries>> {
        let mask = self.mask();
        let mut hole = self.home(fingerprint);
        loop {
            let slot = self.slots.get(hole)?;
            slot.series.as_ref()?;
            if slot.fingerprint == fingerprint {
                break;
            }
            hole = (hole + 1) & mask;
        }
        let removed = std::mem::take(&mut self.slots[hole]).series;
        self.len -= 1;
        // Backward shift: pull later entries of the run into the hole when their home
        // is not between the hole and where they sit, so that no probe ever needs to
        // look past an empty slot (no tombstones).
        let mut next = (hole + 1) & mask;
        while self.slots[next].series.is_some() {
            let home = self.home(self.slots[next].fingerprint);
            let from_home = next.wrapping_sub(home) & mask;
            let from_hole = next.wrapping_sub(hole) & mask;
            if from_home >= from_hole {
                self.slots[hole] = std::mem::take(&mut self.slots[next]);
                hole = next;
            }
            next = (next + 1) & mask;
        }
        removed
    }
}

/// A hint to load the cache line at `address`; nothing else happens, whatever the
/// address (prefetching never faults).
#[inline]
pub(super) fn prefetch_read(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing the program sees and cannot
    // fault, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::head::series_data::SeriesData;
    use crate::symbols::PackedIds;

    fn series(id: u32) -> Arc<MemSeries> {
        Arc::new(MemSeries {
            id,
            labels: PackedIds::new(&[]),
            data: parking_lot::Mutex::new(SeriesData::new()),
            logged: std::sync::atomic::AtomicBool::new(false),
        })
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        Remove(u64),
        Get(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few distinct keys, some sharing their low and high bits, so that runs form,
        // wrap around the end of the table and are cut by removals.
        let key = prop_oneof![0u64..64, (0u64..64).prop_map(|k| k << 58), any::<u64>()];
        prop_oneof![
            3 => key.clone().prop_map(Op::Insert),
            2 => key.clone().prop_map(Op::Remove),
            2 => key.prop_map(Op::Get),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_a_hash_map(ops in proptest::collection::vec(op(), 0..400), seed in any::<u64>()) {
            let mut table = FingerprintTable { seed, ..FingerprintTable::default() };
            let mut oracle: HashMap<u64, u32> = HashMap::new();
            for (n, op) in ops.into_iter().enumerate() {
                let id = n as u32;
                match op {
                    Op::Insert(key) => {
                        let inserted = table.insert(key, series(id)).is_ok();
                        prop_assert_eq!(inserted, !oracle.contains_key(&key));
                        oracle.entry(key).or_insert(id);
                    }
                    Op::Remove(key) => {
                        let removed = table.remove(key).map(|s| s.id);
                        prop_assert_eq!(removed, oracle.remove(&key));
                    }
                    Op::Get(key) => {
                        prop_assert_eq!(table.get(key).map(|s| s.id), oracle.get(&key).copied());
                    }
                }
                prop_assert_eq!(table.len(), oracle.len());
            }
            for (key, id) in &oracle {
                prop_assert_eq!(table.get(*key).map(|s| s.id), Some(*id));
                table.prefetch(*key);
            }
        }
    }

    #[test]
    fn an_empty_table_finds_nothing() {
        let mut table = FingerprintTable::default();
        table.prefetch(7);
        assert!(table.get(7).is_none());
        assert!(table.remove(7).is_none());
        assert_eq!(table.capacity(), 0);
    }

    #[test]
    fn grows_below_three_quarters_full() {
        let mut table = FingerprintTable::default();
        for key in 0..1000u64 {
            assert!(table.insert(key, series(key as u32)).is_ok());
            assert!(table.len() * 4 <= table.capacity() * 3);
        }
        assert_eq!(table.capacity(), 2048);
        assert!(table.insert(5, series(5)).is_err());
    }
}
