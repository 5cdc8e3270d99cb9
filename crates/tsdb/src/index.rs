//! Inverted index: label name → label value → postings (a roaring bitmap of series
//! ids). Used by the head and, rebuilt at load, by every block.
//!
//! Matchers are resolved without scanning series: equality is one lookup, regexes scan
//! only the values of their label name (literal alternations are lookups), negative
//! matchers and matchers that match `""` subtract from the candidate set (Prometheus
//! semantics: a series without the label has the value `""`).

use std::collections::BTreeMap;
use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::matcher::{MatchOp, Matcher};

#[derive(Debug, Default)]
pub(crate) struct LabelIndex {
    postings: BTreeMap<Arc<str>, BTreeMap<Arc<str>, RoaringBitmap>>,
    all: RoaringBitmap,
}

impl LabelIndex {
    pub(crate) fn add<'a>(
        &mut self,
        id: u32,
        labels: impl IntoIterator<Item = (&'a Arc<str>, &'a Arc<str>)>,
    ) {
        self.all.insert(id);
        for (name, value) in labels {
            let values = match self.postings.get_mut(&**name) {
                Some(values) => values,
                None => self.postings.entry(Arc::clone(name)).or_default(),
            };
            match values.get_mut(&**value) {
                Some(bitmap) => {
                    bitmap.insert(id);
                }
                None => {
                    values.insert(Arc::clone(value), RoaringBitmap::from_iter([id]));
                }
            }
        }
    }

    pub(crate) fn remove<'a>(
        &mut self,
        id: u32,
        labels: impl IntoIterator<Item = (&'a Arc<str>, &'a Arc<str>)>,
    ) {
        self.all.remove(id);
        for (name, value) in labels {
            let Some(values) = self.postings.get_mut(&**name) else {
                continue;
            };
            if let Some(bitmap) = values.get_mut(&**value) {
                bitmap.remove(id);
                if bitmap.is_empty() {
                    values.remove(&**value);
                }
            }
            if values.is_empty() {
                self.postings.remove(&**name);
            }
        }
    }

    /// Ids of the series matching all `matchers` (all series for none).
    pub(crate) fn select(&self, matchers: &[Matcher]) -> RoaringBitmap {
        let mut result: Option<RoaringBitmap> = None;
        // Positive sets first: they shrink the candidates the cheapest.
        for matcher in matchers.iter().filter(|m| !m.matches("")) {
            let set = self.values_union(matcher, true);
            result = Some(match result {
                Some(current) => current & set,
                None => set,
            });
            if result.as_ref().is_some_and(RoaringBitmap::is_empty) {
                return RoaringBitmap::new();
            }
        }
        let mut result = result.unwrap_or_else(|| self.all.clone());
        for matcher in matchers.iter().filter(|m| m.matches("")) {
            // Series with the label and a value that does not match drop out; series
            // without the label stay (their value is "").
            result -= self.values_union(matcher, false);
        }
        result
    }

    /// Union of the postings of `matcher.name()`'s values v with
    /// `matcher.matches(v) == wanted`.
    fn values_union(&self, matcher: &Matcher, wanted: bool) -> RoaringBitmap {
        let Some(values) = self.postings.get(matcher.name()) else {
            return RoaringBitmap::new();
        };
        let lookup = |keys: &mut dyn Iterator<Item = &str>| {
            let mut set = RoaringBitmap::new();
            for key in keys {
                if let Some(bitmap) = values.get(key) {
                    set |= bitmap;
                }
            }
            set
        };
        // Fast paths: the values that matter are named by the matcher.
        let listed_values_wanted = match matcher.op() {
            MatchOp::Equal | MatchOp::RegexMatch => wanted,
            MatchOp::NotEqual | MatchOp::RegexNoMatch => !wanted,
        };
        if listed_values_wanted {
            match matcher.op() {
                MatchOp::Equal | MatchOp::NotEqual => {
                    return lookup(&mut std::iter::once(matcher.value()));
                }
                MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                    if let Some(literals) = matcher.literals() {
                        return lookup(&mut literals.iter().map(String::as_str));
                    }
                }
            }
        }
        let mut set = RoaringBitmap::new();
        for (value, bitmap) in values {
            if matcher.matches(value) == wanted {
                set |= bitmap;
            }
        }
        set
    }

    /// Sorted label names of the series in `ids`.
    pub(crate) fn label_names(&self, ids: &RoaringBitmap) -> Vec<Arc<str>> {
        self.postings
            .iter()
            .filter(|(_, values)| values.values().any(|bitmap| !bitmap.is_disjoint(ids)))
            .map(|(name, _)| Arc::clone(name))
            .collect()
    }

    /// Sorted values of label `name` among the series in `ids`.
    pub(crate) fn label_values(&self, name: &str, ids: &RoaringBitmap) -> Vec<Arc<str>> {
        let Some(values) = self.postings.get(name) else {
            return Vec::new();
        };
        values
            .iter()
            .filter(|(_, bitmap)| !bitmap.is_disjoint(ids))
            .map(|(value, _)| Arc::clone(value))
            .collect()
    }

    /// Approximate heap bytes (keys are shared with the symbol table).
    pub(crate) fn heap_bytes(&self) -> usize {
        let mut bytes = 0;
        for values in self.postings.values() {
            bytes += 64;
            for bitmap in values.values() {
                bytes += 48 + bitmap.serialized_size();
            }
        }
        bytes + self.all.serialized_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sightline_model::Labels;

    fn build(series: &[Labels]) -> LabelIndex {
        let mut index = LabelIndex::default();
        for (id, labels) in series.iter().enumerate() {
            let pairs: Vec<(Arc<str>, Arc<str>)> = labels
                .iter()
                .map(|l| (Arc::from(l.name.as_str()), Arc::from(l.value.as_str())))
                .collect();
            index.add(id as u32, pairs.iter().map(|(n, v)| (n, v)));
        }
        index
    }

    fn oracle(series: &[Labels], matchers: &[Matcher]) -> RoaringBitmap {
        let mut set = RoaringBitmap::new();
        for (id, labels) in series.iter().enumerate() {
            if matchers
                .iter()
                .all(|m| m.matches(labels.get(m.name()).unwrap_or("")))
            {
                set.insert(id as u32);
            }
        }
        set
    }

    fn labels_strategy() -> impl Strategy<Value = Labels> {
        proptest::collection::vec(
            (
                prop::sample::select(vec!["a", "b", "c", "d"]),
                prop::sample::select(vec!["x", "y", "z", "xy", "1"]),
            ),
            0..4,
        )
        .prop_map(Labels::from_pairs)
    }

    fn matcher_strategy() -> impl Strategy<Value = Matcher> {
        let op = prop::sample::select(vec![
            MatchOp::Equal,
            MatchOp::NotEqual,
            MatchOp::RegexMatch,
            MatchOp::RegexNoMatch,
        ]);
        let name = prop::sample::select(vec!["a", "b", "c", "e"]);
        let value = prop::sample::select(vec![
            "", "x", "y", "xy", "x|y", "x|", "x.*", ".*", ".+", "1|z", "[xy]+", "q",
        ]);
        (op, name, value).prop_map(|(op, name, value)| Matcher::new(op, name, value).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn select_matches_brute_force(
            series in proptest::collection::vec(labels_strategy(), 0..40),
            matchers in proptest::collection::vec(matcher_strategy(), 0..4),
            removed in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
        ) {
            let mut index = build(&series);
            let mut live: Vec<Option<Labels>> = series.iter().cloned().map(Some).collect();
            if !series.is_empty() {
                for r in removed {
                    let id = r.index(series.len());
                    if let Some(labels) = live[id].take() {
                        let pairs: Vec<(Arc<str>, Arc<str>)> = labels
                            .iter()
                            .map(|l| (Arc::from(l.name.as_str()), Arc::from(l.value.as_str())))
                            .collect();
                        index.remove(id as u32, pairs.iter().map(|(n, v)| (n, v)));
                    }
                }
            }
            let mut expected = oracle(&series, &matchers);
            for (id, labels) in live.iter().enumerate() {
                if labels.is_none() {
                    expected.remove(id as u32);
                }
            }
            prop_assert_eq!(index.select(&matchers), expected.clone());
            let names: Vec<String> = index.label_names(&expected).iter().map(|s| s.to_string()).collect();
            let mut want: Vec<String> = live.iter().enumerate()
                .filter(|(id, _)| expected.contains(*id as u32))
                .flat_map(|(_, l)| l.iter().flat_map(|l| l.iter().map(|p| p.name.clone())).collect::<Vec<_>>())
                .collect();
            want.sort();
            want.dedup();
            prop_assert_eq!(names, want);
        }
    }
}
