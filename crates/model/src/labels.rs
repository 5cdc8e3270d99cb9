//! Label sets: the identity of a series.

use std::sync::{Arc, LazyLock};

use crate::{Error, Result};

/// The label that holds the metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// One name/value pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A label set sorted by name with unique names: a series' identity. Build one with
/// [`Labels::from_pairs`] or [`LabelsBuilder`]; both keep the invariant.
///
/// Immutable and shared: a clone is a reference-count increment, not a copy of the
/// strings. Query evaluation hands the same series' labels to every step, every
/// aggregation group and every output sample, so copies must cost nothing. The set
/// carries its fingerprint, computed once when it is made, so hashing one (every hash
/// map keyed by label sets) and telling two apart cost one integer each.
#[derive(Clone)]
pub struct Labels {
    fingerprint: u64,
    pairs: Arc<[Label]>,
}

/// The one empty set every [`Labels::empty`] shares, so making one never allocates.
static EMPTY_LABELS: LazyLock<Labels> = LazyLock::new(|| Labels::new_unshared(Vec::new()));

impl Default for Labels {
    fn default() -> Labels {
        Labels::empty()
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Labels) -> bool {
        self.fingerprint == other.fingerprint
            && (Arc::ptr_eq(&self.pairs, &other.pairs) || self.pairs == other.pairs)
    }
}

impl Eq for Labels {}

impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.fingerprint);
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Labels) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    /// By pairs, name then value, as Prometheus orders series.
    fn cmp(&self, other: &Labels) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.pairs, &other.pairs) {
            return std::cmp::Ordering::Equal;
        }
        self.pairs.cmp(&other.pairs)
    }
}

impl std::fmt::Debug for Labels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.pairs.iter()).finish()
    }
}

impl Labels {
    pub fn empty() -> Labels {
        EMPTY_LABELS.clone()
    }

    fn from_vec(pairs: Vec<Label>) -> Labels {
        if pairs.is_empty() {
            return Labels::empty();
        }
        Labels::new_unshared(pairs)
    }

    fn new_unshared(pairs: Vec<Label>) -> Labels {
        let fingerprint = crate::borrowed::fingerprint_of(
            pairs.iter().map(|l| (l.name.as_str(), l.value.as_str())),
        );
        Labels {
            fingerprint,
            pairs: Arc::from(pairs),
        }
    }

    /// The address of this set's shared storage: equal for a set and its clones, and
    /// never equal for two sets alive at once that are not clones of each other. A
    /// cache keyed by it must keep the set alive (or the address may be reused).
    pub fn identity(&self) -> usize {
        Arc::as_ptr(&self.pairs).cast::<Label>() as usize
    }

    /// Builds a set from pairs in any order; empty values are dropped (Prometheus
    /// treats an empty value as an absent label) and the later of two equal names wins.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Labels {
        let mut builder = LabelsBuilder::default();
        for (name, value) in pairs {
            builder.set(name, value);
        }
        builder.build()
    }

    /// Builds a set from untrusted pairs and rejects what Prometheus' write path
    /// rejects: no labels, an empty name, a repeated name. Empty values are dropped.
    pub fn try_from_untrusted(mut labels: Vec<Label>) -> Result<Labels> {
        labels.retain(|l| !l.value.is_empty());
        if labels.is_empty() {
            return Err(Error::EmptyLabelSet);
        }
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        for pair in labels.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(Error::DuplicateLabelName {
                    name: pair[0].name.clone(),
                });
            }
        }
        if labels[0].name.is_empty() {
            return Err(Error::EmptyLabelName);
        }
        Ok(Labels::from_vec(labels))
    }

    /// Trusts that `labels` is sorted by name with unique names and no empty value
    /// (e.g. read back from our own storage). Checked in debug builds.
    pub fn from_sorted_unchecked(labels: Vec<Label>) -> Labels {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        Labels::from_vec(labels)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.pairs[i].value.as_str())
    }

    /// The metric name, if the set has one.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME_LABEL)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.pairs.iter()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.pairs
    }

    /// The pairs as an owned vector (a copy: the set itself may be shared).
    pub fn into_vec(self) -> Vec<Label> {
        self.pairs.to_vec()
    }

    /// A stable 64-bit fingerprint (xxh3 over names and values with separators); safe
    /// to persist.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Bytes of name and value text, the figure size limits are set in.
    pub fn text_len(&self) -> usize {
        self.pairs
            .iter()
            .map(|l| l.name.len() + l.value.len())
            .sum()
    }

    /// A builder seeded with these labels.
    pub fn to_builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.pairs.to_vec(),
        }
    }
}

impl std::fmt::Display for Labels {
    /// Prometheus' text form: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.metric_name();
        if let Some(name) = name {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for label in self.pairs.iter().filter(|l| l.name != METRIC_NAME_LABEL) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", label.name, label.value)?;
        }
        f.write_str("}")
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.pairs.iter()
    }
}

/// Mutable construction of a [`Labels`]: set, delete, then build.
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    /// Sets `name` to `value`, replacing an earlier value; an empty value deletes.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let name = name.into();
        let value = value.into();
        match self.labels.iter().position(|l| l.name == name) {
            Some(i) if value.is_empty() => {
                self.labels.remove(i);
            }
            Some(i) => self.labels[i].value = value,
            None if value.is_empty() => {}
            None => self.labels.push(Label { name, value }),
        }
        self
    }

    pub fn delete(&mut self, name: &str) -> &mut Self {
        self.labels.retain(|l| l.name != name);
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }

    pub fn build(&self) -> Labels {
        let mut labels = self.labels.clone();
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        Labels::from_vec(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_sorts_and_dedups() {
        let labels = Labels::from_pairs([("b", "1"), ("a", "2"), ("b", "3"), ("c", "")]);
        assert_eq!(labels.len(), 2);
        assert_eq!(labels.get("b"), Some("3"));
        assert_eq!(labels.to_string(), "{a=\"2\", b=\"3\"}");
    }

    #[test]
    fn untrusted_rejects_duplicates_and_empty() {
        let dup = vec![Label::new("a", "1"), Label::new("a", "2")];
        assert!(matches!(
            Labels::try_from_untrusted(dup),
            Err(Error::DuplicateLabelName { .. })
        ));
        assert_eq!(
            Labels::try_from_untrusted(vec![]),
            Err(Error::EmptyLabelSet)
        );
        assert_eq!(
            Labels::try_from_untrusted(vec![Label::new("", "x")]),
            Err(Error::EmptyLabelName)
        );
    }

    #[test]
    fn fingerprint_is_stable() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
        // Persisted fingerprints must never change across builds.
        assert_eq!(labels.fingerprint(), labels.clone().fingerprint());
        assert_ne!(
            labels.fingerprint(),
            Labels::from_pairs([("__name__", "up"), ("job", "nodf")]).fingerprint()
        );
    }

    proptest::proptest! {
        /// Equality, ordering and hashing agree with the pairs themselves, whether or
        /// not the two sets share storage.
        #[test]
        fn eq_ord_hash_follow_the_pairs(
            a in proptest::collection::btree_map("[a-c]{1,2}", "[x-z]{0,2}", 0..4),
            b in proptest::collection::btree_map("[a-c]{1,2}", "[x-z]{0,2}", 0..4),
        ) {
            use std::hash::{BuildHasher, RandomState};
            let left = Labels::from_pairs(a.clone());
            let right = Labels::from_pairs(b.clone());
            let pairs = |m: &std::collections::BTreeMap<String, String>| -> Vec<Label> {
                m.iter().filter(|(_, v)| !v.is_empty()).map(|(n, v)| Label::new(n, v)).collect()
            };
            let (pa, pb) = (pairs(&a), pairs(&b));
            proptest::prop_assert_eq!(left == right, pa == pb);
            proptest::prop_assert_eq!(left.cmp(&right), pa.cmp(&pb));
            let state = RandomState::new();
            if left == right {
                proptest::prop_assert_eq!(state.hash_one(&left), state.hash_one(&right));
            }
            let copy = Labels::from_sorted_unchecked(left.clone().into_vec());
            proptest::prop_assert_eq!(&copy, &left);
            proptest::prop_assert_eq!(copy.identity() == left.identity(), left.is_empty());
            proptest::prop_assert_eq!(left.clone().identity(), left.identity());
        }
    }
}
