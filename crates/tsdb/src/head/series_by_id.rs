//! The head's series by id: a hash set of the series themselves, looked up by the id
//! each one holds. A map from id to `Arc` would store every id twice, and its 16-byte
//! entries cost twice the 8 of this set's in every bucket (about 1 MB per 75,000
//! series, empty buckets included).

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use sightline_model::id_hash::IdHasher;

use super::MemSeries;

/// A series keyed by its id: hashes and compares as `series.id`, so the set finds it
/// from a bare `u32` through [`Borrow`].
#[derive(Debug)]
struct ById(Arc<MemSeries>);

impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly as the `u32` it borrows as.
        self.0.id.hash(state);
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &ById) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl Borrow<u32> for ById {
    fn borrow(&self) -> &u32 {
        &self.0.id
    }
}

#[derive(Debug, Default)]
pub(super) struct SeriesById {
    set: HashSet<ById, BuildHasherDefault<IdHasher>>,
}

impl SeriesById {
    pub(super) fn get(&self, id: &u32) -> Option<&Arc<MemSeries>> {
        self.set.get(id).map(|entry| &entry.0)
    }

    pub(super) fn contains_key(&self, id: &u32) -> bool {
        self.set.contains(id)
    }

    /// Adds `series`, replacing any series with the same id.
    pub(super) fn insert(&mut self, series: Arc<MemSeries>) {
        self.set.replace(ById(series));
    }

    pub(super) fn remove(&mut self, id: &u32) -> Option<Arc<MemSeries>> {
        self.set.take(id).map(|entry| entry.0)
    }

    pub(super) fn len(&self) -> usize {
        self.set.len()
    }

    /// Slots allocated (for memory accounting).
    pub(super) fn capacity(&self) -> usize {
        self.set.capacity()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Arc<MemSeries>> {
        self.set.iter().map(|entry| &entry.0)
    }

    pub(super) fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.set.iter().map(|entry| entry.0.id)
    }
}
