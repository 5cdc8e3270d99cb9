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

#[cfg(test)]
mod tests {
    use super::*;

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
