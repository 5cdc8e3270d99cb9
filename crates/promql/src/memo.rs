//! Per-query memos of what the engine derives from a label set: an aggregation's group
//! labels, a binary operator's matching signature, a function's output labels.
//!
//! A range query evaluates its expression at every step, and each step sees the same
//! series again: a selector hands out the same shared [`Labels`] for a series at every
//! step. Deriving group or result labels anew at each step (building and hashing new
//! label sets) was most of a range query's time; a memo derives them once per distinct
//! input. Entries are keyed by the input's [`Labels::identity`] and keep the input
//! alive, so an address can't be reused by another set while its entry exists.

use sightline_model::Labels;
use sightline_model::id_hash::IdHashMap;

/// Most entries a memo holds; past it, it starts over. Inputs made anew at every step
/// (e.g. by `label_replace`) would otherwise grow it with every step.
/// Small in tests, so queries over a few hundred series make memos start over.
pub(crate) const MAX_ENTRIES: usize = if cfg!(test) { 64 } else { 1 << 16 };

/// Values derived from one label set, memoized by the set's identity.
#[derive(Debug)]
pub(crate) struct LabelMemo<V> {
    entries: IdHashMap<usize, (Labels, V)>,
}

impl<V> Default for LabelMemo<V> {
    fn default() -> LabelMemo<V> {
        LabelMemo {
            entries: IdHashMap::default(),
        }
    }
}

impl<V: Clone> LabelMemo<V> {
    /// The value for `labels`, made by `make` the first time this set is seen.
    pub(crate) fn get_or_insert_with(
        &mut self,
        labels: &Labels,
        make: impl FnOnce(&Labels) -> V,
    ) -> V {
        if let Some((_, value)) = self.entries.get(&labels.identity()) {
            return value.clone();
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        let value = make(labels);
        self.entries
            .insert(labels.identity(), (labels.clone(), value.clone()));
        value
    }
}

/// Values derived from a pair of label sets (e.g. both sides of a binary operation),
/// memoized by the pair's identities.
#[derive(Debug)]
pub(crate) struct PairMemo<V> {
    entries: IdHashMap<(usize, usize), (Labels, Labels, V)>,
}

impl<V> Default for PairMemo<V> {
    fn default() -> PairMemo<V> {
        PairMemo {
            entries: IdHashMap::default(),
        }
    }
}

impl<V: Clone> PairMemo<V> {
    /// The value for `(a, b)`, made by `make` the first time this pair is seen.
    pub(crate) fn get_or_insert_with(
        &mut self,
        a: &Labels,
        b: &Labels,
        make: impl FnOnce(&Labels, &Labels) -> V,
    ) -> V {
        let key = (a.identity(), b.identity());
        if let Some((_, _, value)) = self.entries.get(&key) {
            return value.clone();
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        let value = make(a, b);
        self.entries
            .insert(key, (a.clone(), b.clone(), value.clone()));
        value
    }
}

/// A [`LabelMemo`] of derived label sets that are interned: inputs whose derived sets
/// have equal contents usually get the very same set, so grouping by them compares
/// addresses, not strings (an aggregation's groups, a histogram's bucket groups).
/// Not always: a memo that fills up starts over, so callers still group by content.
#[derive(Debug, Default)]
pub(crate) struct InternedMemo {
    derived: LabelMemo<Labels>,
    interned: std::collections::HashSet<Labels>,
}

impl InternedMemo {
    /// The interned set derived from `labels` by `make`, made the first time this
    /// set is seen.
    pub(crate) fn get_or_insert_with(
        &mut self,
        labels: &Labels,
        make: impl FnOnce(&Labels) -> Labels,
    ) -> Labels {
        let interned = &mut self.interned;
        self.derived.get_or_insert_with(labels, |labels| {
            let derived = make(labels);
            if let Some(existing) = interned.get(&derived) {
                return existing.clone();
            }
            if interned.len() >= MAX_ENTRIES {
                interned.clear();
            }
            interned.insert(derived.clone());
            derived
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_once_per_set_and_tells_equal_contents_apart_by_identity() {
        let mut memo = LabelMemo::default();
        let mut calls = 0;
        let a = Labels::from_pairs([("job", "a")]);
        let same_content = Labels::from_pairs([("job", "a")]);
        for labels in [&a, &a.clone(), &same_content] {
            let value = memo.get_or_insert_with(labels, |l| {
                calls += 1;
                l.get("job").unwrap_or_default().to_string()
            });
            assert_eq!(value, "a");
        }
        // One call for `a` and its clone, one for the separately made set.
        assert_eq!(calls, 2);
    }

    #[test]
    fn interned_sets_share_one_identity() {
        let mut memo = InternedMemo::default();
        let keep_job = |l: &Labels| Labels::from_pairs([("job", l.get("job").unwrap_or(""))]);
        let a = memo.get_or_insert_with(&Labels::from_pairs([("job", "x"), ("i", "1")]), keep_job);
        let b = memo.get_or_insert_with(&Labels::from_pairs([("job", "x"), ("i", "2")]), keep_job);
        let c = memo.get_or_insert_with(&Labels::from_pairs([("job", "y"), ("i", "2")]), keep_job);
        assert_eq!(a.identity(), b.identity());
        assert_ne!(a.identity(), c.identity());
    }

    #[test]
    fn pairs_are_ordered() {
        let mut memo = PairMemo::default();
        let (a, b) = (
            Labels::from_pairs([("x", "1")]),
            Labels::from_pairs([("x", "2")]),
        );
        let ab = memo.get_or_insert_with(&a, &b, |l, r| format!("{l}{r}"));
        let ba = memo.get_or_insert_with(&b, &a, |l, r| format!("{l}{r}"));
        assert_ne!(ab, ba);
        assert_eq!(memo.get_or_insert_with(&a, &b, |_, _| String::new()), ab);
    }
}
