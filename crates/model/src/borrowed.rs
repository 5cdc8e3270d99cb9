//! Borrowed views of label sets and series, for hot write paths.
//!
//! A remote_write request carries every label name and value as bytes inside its
//! decompressed body. Copying each into an owned `String` before the store even
//! looks the series up cost about half of the ingest CPU; the store only needs owned
//! labels for series it has never seen. These views let an adapter hand the store
//! slices of its request buffer, and the store copy what it keeps.

use crate::{Exemplar, Label, Labels, Sample};

/// A label set the store can look up and, when new, copy: owned [`Labels`] or a
/// borrowed [`LabelsRef`]. Implementations hold Labels' invariants: names sorted and
/// unique, no empty value, at least one label.
pub trait LabelSet {
    /// Number of labels.
    fn label_count(&self) -> usize;

    /// (name, value) pairs in name order.
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)>;

    /// The same stable fingerprint as [`Labels::fingerprint`] for equal sets.
    fn fingerprint(&self) -> u64 {
        fingerprint_of(self.pairs())
    }

    /// An owned copy.
    fn to_labels(&self) -> Labels {
        let labels = self
            .pairs()
            .map(|(name, value)| Label::new(name, value))
            .collect();
        Labels::from_sorted_unchecked(labels)
    }
}

/// xxh3 over names and values, each followed by a 0xff separator (a byte that never
/// occurs in UTF-8), so ("a","bc") and ("ab","c") differ. Stable: safe to persist.
///
/// The text is gathered into a per-thread buffer and hashed in one call: xxh3's
/// streaming API costs several times more on a dozen short updates.
pub(crate) fn fingerprint_of<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| {
        // A re-entrant call (impossible today: nothing here calls back) would get a
        // fresh buffer instead of panicking.
        let mut fresh = Vec::new();
        let mut borrowed = scratch.try_borrow_mut();
        let buffer = match borrowed.as_mut() {
            Ok(buffer) => &mut **buffer,
            Err(_) => &mut fresh,
        };
        buffer.clear();
        for (name, value) in pairs {
            buffer.extend_from_slice(name.as_bytes());
            buffer.push(0xff);
            buffer.extend_from_slice(value.as_bytes());
            buffer.push(0xff);
        }
        let fingerprint = xxhash_rust::xxh3::xxh3_64(buffer);
        // Keep the buffer small after an unusually large label set.
        if buffer.capacity() > 64 * 1024 {
            *buffer = Vec::new();
        }
        fingerprint
    })
}

impl LabelSet for Labels {
    fn label_count(&self) -> usize {
        self.len()
    }

    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().map(|l| (l.name.as_str(), l.value.as_str()))
    }

    fn to_labels(&self) -> Labels {
        self.clone()
    }
}

impl<T: LabelSet> LabelSet for &T {
    fn label_count(&self) -> usize {
        (**self).label_count()
    }

    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        (**self).pairs()
    }

    fn fingerprint(&self) -> u64 {
        (**self).fingerprint()
    }

    fn to_labels(&self) -> Labels {
        (**self).to_labels()
    }
}

/// One borrowed label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelRef<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// A borrowed label set with [`Labels`]' invariants (sorted unique names, no empty
/// values, not empty). Built only by code that checked them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelsRef<'a>(&'a [LabelRef<'a>]);

impl<'a> LabelsRef<'a> {
    /// Wraps labels the caller has sorted by name, deduplicated and stripped of empty
    /// values.
    pub fn from_sorted_unchecked(labels: &'a [LabelRef<'a>]) -> LabelsRef<'a> {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        LabelsRef(labels)
    }

    pub fn as_slice(&self) -> &'a [LabelRef<'a>] {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl LabelSet for LabelsRef<'_> {
    fn label_count(&self) -> usize {
        self.0.len()
    }

    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|l| (l.name, l.value))
    }
}

/// One series to append, its labels owned or borrowed.
#[derive(Debug, Clone, Copy)]
pub struct SeriesRef<'a, L> {
    pub labels: L,
    pub samples: &'a [Sample],
    pub exemplars: &'a [Exemplar],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_and_owned_fingerprints_agree() {
        let owned = Labels::from_pairs([("__name__", "up"), ("job", "node"), ("a", "b")]);
        let refs: Vec<LabelRef<'_>> = owned
            .iter()
            .map(|l| LabelRef {
                name: &l.name,
                value: &l.value,
            })
            .collect();
        let borrowed = LabelsRef::from_sorted_unchecked(&refs);
        assert_eq!(borrowed.fingerprint(), owned.fingerprint());
        assert_eq!(LabelSet::fingerprint(&&owned), owned.fingerprint());
        assert_eq!(borrowed.to_labels(), owned);
        assert_eq!(borrowed.label_count(), 3);
    }
}
