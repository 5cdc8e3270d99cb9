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

/// A label set's fingerprint: xxh3 over its labels in protobuf form, the bytes a
/// protobuf encoder writes for them as the repeated field 1 of a remote_write
/// `TimeSeries` (see [`encode_label`]). Length-prefixed, so ("a","bc") and ("ab","c")
/// differ. Stable: safe to persist.
///
/// The protobuf form lets remote_write ingest hash a series' labels where they lie
/// in the request ([`fingerprint_of_encoded`]), without gathering them: senders encode
/// exactly this when the labels are sorted and none is empty, as Prometheus' are.
/// Otherwise the text is gathered into a per-thread buffer and hashed in one call:
/// xxh3's streaming API costs several times more on a dozen short updates.
pub fn fingerprint_of<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
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
            encode_label(buffer, name.as_bytes(), value.as_bytes());
        }
        let fingerprint = fingerprint_of_encoded(buffer);
        // Keep the buffer small after an unusually large label set.
        if buffer.capacity() > 64 * 1024 {
            *buffer = Vec::new();
        }
        fingerprint
    })
}

/// The fingerprint of labels already in the protobuf form of [`fingerprint_of`].
#[inline]
pub fn fingerprint_of_encoded(encoded: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(encoded)
}

/// Appends one label in protobuf form: field 1 (a `Label` message) holding field 1
/// (the name) and field 2 (the value), lengths as varints. An empty value is
/// written too (protobuf encoders leave it out, but a label set has none).
pub fn encode_label(buffer: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    // Nearly every label: all three lengths fit one byte.
    let short_len = name.len() + value.len() + 4;
    if short_len < 0x80 {
        buffer.reserve(short_len + 2);
        buffer.extend_from_slice(&[0x0a, short_len as u8, 0x0a, name.len() as u8]);
        buffer.extend_from_slice(name);
        buffer.extend_from_slice(&[0x12, value.len() as u8]);
        buffer.extend_from_slice(value);
        return;
    }
    let message_len =
        1 + varint_len(name.len()) + name.len() + 1 + varint_len(value.len()) + value.len();
    buffer.push(0x0a);
    push_varint(buffer, message_len);
    buffer.push(0x0a);
    push_varint(buffer, name.len());
    buffer.extend_from_slice(name);
    buffer.push(0x12);
    push_varint(buffer, value.len());
    buffer.extend_from_slice(value);
}

fn varint_len(value: usize) -> usize {
    let bits = usize::BITS - (value | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

fn push_varint(buffer: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        buffer.push((value as u8) | 0x80);
        value >>= 7;
    }
    buffer.push(value as u8);
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
    fn labels_encode_as_protobuf_does() {
        for (name, value) in [("a", "b"), ("__name__", ""), ("n", &*"v".repeat(200))] {
            let mut ours = Vec::new();
            encode_label(&mut ours, name.as_bytes(), value.as_bytes());
            // By hand, as prost would write `repeated Label labels = 1` with both
            // fields present.
            let mut message = vec![0x0a, name.len() as u8];
            message.extend_from_slice(name.as_bytes());
            message.push(0x12);
            push_varint(&mut message, value.len());
            message.extend_from_slice(value.as_bytes());
            let mut want = vec![0x0a];
            push_varint(&mut want, message.len());
            want.extend_from_slice(&message);
            assert_eq!(ours, want, "{name}={value}");
        }
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(16_383), 2);
        assert_eq!(varint_len(16_384), 3);
        let split = |a: &'static str, b: &'static str| fingerprint_of([(a, b)].into_iter());
        assert_ne!(split("a", "bc"), split("ab", "c"));
    }

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
