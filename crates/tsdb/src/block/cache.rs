//! [`GroupCache`]: decompressed sample groups of blocks, kept for queries within a byte
//! budget.
//!
//! A block group is one zstd frame of about 256 KiB; reading any series in it
//! decompresses all of it. Dashboards ask for the same recent windows again and again,
//! and a one-hour panel read a few dozen samples per series out of whole groups, so
//! decompression was a fifth of such a query's time (and its buffers, above glibc's
//! mmap threshold, page faults besides). Prometheus reads its chunks from the OS page
//! cache without decoding; this cache plays that part for our compressed blocks.
//! Only queries fill it: compaction reads every group once and would only evict what
//! queries use.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::DecodedGroup;

/// A block as the cache knows it: a number never reused within the process (a block
/// rewritten by compaction is a new block).
pub(super) type BlockUid = u64;

static NEXT_BLOCK_UID: AtomicU64 = AtomicU64::new(1);

pub(super) fn next_block_uid() -> BlockUid {
    NEXT_BLOCK_UID.fetch_add(1, Ordering::Relaxed)
}

/// Decompressed block groups, least recently used evicted first.
#[derive(Debug)]
pub struct GroupCache {
    budget_bytes: usize,
    state: Mutex<CacheState>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct CacheState {
    entries: HashMap<(BlockUid, u32), Entry>,
    bytes: usize,
    /// Bumped on every use; an entry's `last_used` orders evictions.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    group: Arc<DecodedGroup>,
    bytes: usize,
    last_used: u64,
}

impl GroupCache {
    /// A cache holding at most `budget_bytes` of decompressed groups; 0 disables it.
    pub fn new(budget_bytes: usize) -> GroupCache {
        GroupCache {
            budget_bytes,
            state: Mutex::new(CacheState::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Bytes of groups held now.
    pub fn bytes(&self) -> usize {
        self.state.lock().bytes
    }

    /// Lookups that found their group, and lookups that did not, since start.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    pub(super) fn get(&self, block: BlockUid, group: u32) -> Option<Arc<DecodedGroup>> {
        let mut state = self.state.lock();
        state.clock += 1;
        let clock = state.clock;
        let Some(entry) = state.entries.get_mut(&(block, group)) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        entry.last_used = clock;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(Arc::clone(&entry.group))
    }

    /// Keeps `decoded`, evicting the least recently used groups past the budget. A
    /// group above an eighth of the budget is not kept: it would evict many others.
    pub(super) fn insert(&self, block: BlockUid, group: u32, decoded: &Arc<DecodedGroup>) {
        let bytes = decoded.heap_bytes();
        if bytes > self.budget_bytes / 8 {
            return;
        }
        let mut state = self.state.lock();
        state.clock += 1;
        let entry = Entry {
            group: Arc::clone(decoded),
            bytes,
            last_used: state.clock,
        };
        if let Some(old) = state.entries.insert((block, group), entry) {
            state.bytes -= old.bytes;
        }
        state.bytes += bytes;
        // A linear scan per eviction: the budget holds a few hundred groups at most.
        while state.bytes > self.budget_bytes {
            let Some(oldest) = state
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(key, _)| *key)
            else {
                break;
            };
            if let Some(evicted) = state.entries.remove(&oldest) {
                state.bytes -= evicted.bytes;
            }
        }
    }

    /// Drops every group of `block` (deleted or replaced by compaction).
    pub(super) fn remove_block(&self, block: BlockUid) {
        let mut state = self.state.lock();
        let mut freed = 0;
        state.entries.retain(|key, entry| {
            let keep = key.0 != block;
            if !keep {
                freed += entry.bytes;
            }
            keep
        });
        state.bytes -= freed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(bytes: usize) -> Arc<DecodedGroup> {
        Arc::new(DecodedGroup {
            raw: vec![0; bytes],
            streams: Vec::new(),
        })
    }

    #[test]
    fn keeps_the_most_recently_used_within_the_budget() {
        let cache = GroupCache::new(8_000);
        for index in 0..8 {
            cache.insert(1, index, &group(1_000));
        }
        assert_eq!(cache.bytes(), 8_000);
        // Group 0 is used again, so group 1 is now the least recently used.
        assert!(cache.get(1, 0).is_some());
        cache.insert(2, 0, &group(1_000));
        assert_eq!(cache.bytes(), 8_000);
        assert!(
            cache.get(1, 1).is_none(),
            "the least recently used goes first"
        );
        assert!(cache.get(1, 0).is_some());
        assert!(cache.get(2, 0).is_some());
        assert_eq!(cache.hits_and_misses(), (3, 1));
        // Inserting a group again replaces it and counts it once.
        cache.insert(2, 0, &group(1_000));
        assert_eq!(cache.bytes(), 8_000);
    }

    #[test]
    fn large_groups_are_not_kept_and_a_removed_block_frees_its_groups() {
        let cache = GroupCache::new(8_000);
        cache.insert(1, 0, &group(1_001));
        assert_eq!(cache.bytes(), 0);
        assert!(cache.get(1, 0).is_none());
        cache.insert(1, 0, &group(500));
        cache.insert(1, 1, &group(500));
        cache.insert(2, 0, &group(500));
        cache.remove_block(1);
        assert_eq!(cache.bytes(), 500);
        assert!(cache.get(1, 0).is_none());
        assert!(cache.get(2, 0).is_some());
        let disabled = GroupCache::new(0);
        disabled.insert(1, 0, &group(1));
        assert_eq!(disabled.bytes(), 0);
    }
}
