//! Interned label strings of the head: every distinct name or value is stored once and
//! referred to by a `u32` id, reference counted so strings of removed series go away.

use std::collections::HashMap;
use std::sync::Arc;

/// Symbol ids are private to one process; they are never persisted.
pub(crate) type SymbolId = u32;

#[derive(Debug, Default)]
pub(crate) struct SymbolTable {
    ids: HashMap<Arc<str>, SymbolId>,
    strings: Vec<Option<Arc<str>>>,
    refcounts: Vec<u32>,
    free: Vec<SymbolId>,
}

impl SymbolTable {
    /// The id of `value`, if interned.
    #[cfg(test)]
    pub(crate) fn get(&self, value: &str) -> Option<SymbolId> {
        self.ids.get(value).copied()
    }

    /// Interns `value` and takes one reference to it.
    pub(crate) fn intern(&mut self, value: &str) -> SymbolId {
        if let Some(&id) = self.ids.get(value) {
            self.refcounts[id as usize] += 1;
            return id;
        }
        let string: Arc<str> = Arc::from(value);
        let id = match self.free.pop() {
            Some(id) => {
                self.strings[id as usize] = Some(Arc::clone(&string));
                self.refcounts[id as usize] = 1;
                id
            }
            None => {
                // More than 4 billion distinct strings would exhaust memory long before.
                let id = SymbolId::try_from(self.strings.len()).unwrap_or(SymbolId::MAX);
                self.strings.push(Some(Arc::clone(&string)));
                self.refcounts.push(1);
                id
            }
        };
        self.ids.insert(string, id);
        id
    }

    /// Drops one reference; the string is freed with its last reference.
    pub(crate) fn release(&mut self, id: SymbolId) {
        let Some(count) = self.refcounts.get_mut(id as usize) else {
            return;
        };
        *count = count.saturating_sub(1);
        if *count == 0
            && let Some(string) = self.strings[id as usize].take()
        {
            self.ids.remove(&string);
            self.free.push(id);
        }
    }

    /// [`SymbolTable::resolve`] as text, small enough to inline into the write
    /// path's label comparisons.
    #[inline]
    pub(crate) fn resolve_str(&self, id: SymbolId) -> &str {
        self.strings
            .get(id as usize)
            .and_then(Option::as_deref)
            .unwrap_or("")
    }

    /// The string of a live id. Ids come only from [`Self::intern`], so a miss is a
    /// bug; it resolves to `""` rather than panicking.
    pub(crate) fn resolve(&self, id: SymbolId) -> &Arc<str> {
        static EMPTY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
        match self.strings.get(id as usize) {
            Some(Some(string)) => string,
            _ => EMPTY.get_or_init(|| Arc::from("")),
        }
    }

    /// Approximate heap bytes (for the head memory estimate).
    pub(crate) fn heap_bytes(&self) -> usize {
        let strings: usize = self.ids.keys().map(|s| s.len() + 16).sum();
        strings
            + self.ids.capacity() * (std::mem::size_of::<(Arc<str>, SymbolId)>() + 1)
            + self.strings.capacity() * std::mem::size_of::<Option<Arc<str>>>()
            + self.refcounts.capacity() * 4
            + self.free.capacity() * 4
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

/// A series' label set as symbol ids (name, value, name, value, ...), each one a
/// LEB128 varint. Ids are dense and a head holds a few thousand distinct strings, so
/// most ids take one or two bytes instead of four: a typical 8-label series keeps ~24
/// bytes here instead of 64, in every series.
#[derive(Debug)]
pub(crate) struct PackedIds(Box<[u8]>);

impl PackedIds {
    pub(crate) fn new(ids: &[SymbolId]) -> PackedIds {
        // Sized exactly, so that boxing the vector does not reallocate.
        let len = ids.iter().map(|&id| varint_len(id)).sum();
        let mut bytes = Vec::with_capacity(len);
        for &id in ids {
            let mut rest = id;
            while rest >= 0x80 {
                bytes.push((rest as u8) | 0x80);
                rest >>= 7;
            }
            bytes.push(rest as u8);
        }
        PackedIds(bytes.into_boxed_slice())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = SymbolId> + '_ {
        let mut bytes = self.0.iter();
        std::iter::from_fn(move || {
            let mut id: SymbolId = 0;
            // At most 5 bytes (shifts 0..=28) for a u32, as `new` writes them.
            for shift in (0..32).step_by(7) {
                let byte = *bytes.next()?;
                id |= SymbolId::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return Some(id);
                }
            }
            None
        })
    }

    /// (name, value) id pairs, in label order.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (SymbolId, SymbolId)> + '_ {
        let mut ids = self.iter();
        std::iter::from_fn(move || Some((ids.next()?, ids.next()?)))
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.len()
    }

    /// Where the packed bytes start (for prefetching).
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }
}

fn varint_len(id: SymbolId) -> usize {
    // 7 bits a byte; 0 still takes one.
    (32 - (id | 1).leading_zeros()).div_ceil(7) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn packed_ids_round_trip(ids in proptest::collection::vec(
            prop_oneof![0u32..200, 0u32..70_000, any::<u32>()], 0..40)
        ) {
            let packed = PackedIds::new(&ids);
            prop_assert_eq!(packed.iter().collect::<Vec<_>>(), ids.clone());
            prop_assert_eq!(packed.heap_bytes(), ids.iter().map(|&id| varint_len(id)).sum::<usize>());
            let pairs: Vec<(u32, u32)> = packed.pairs().collect();
            prop_assert_eq!(pairs.len(), ids.len() / 2);
            prop_assert!(pairs.iter().enumerate().all(|(i, &p)| p == (ids[2 * i], ids[2 * i + 1])));
        }
    }

    #[test]
    fn small_ids_take_one_byte() {
        assert_eq!(PackedIds::new(&[0, 1, 127]).heap_bytes(), 3);
        assert_eq!(PackedIds::new(&[128, 16_383]).heap_bytes(), 4);
        assert_eq!(PackedIds::new(&[u32::MAX]).heap_bytes(), 5);
    }

    #[test]
    fn intern_and_release() {
        let mut table = SymbolTable::default();
        let a = table.intern("a");
        assert_eq!(table.intern("a"), a);
        let b = table.intern("b");
        assert_ne!(a, b);
        table.release(a);
        assert_eq!(table.get("a"), Some(a));
        table.release(a);
        assert_eq!(table.get("a"), None);
        let c = table.intern("c");
        assert_eq!(c, a, "freed ids are reused");
        assert_eq!(&**table.resolve(c), "c");
        assert_eq!(table.len(), 2);
    }
}
