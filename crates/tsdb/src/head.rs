//! The in-memory head: every series written since the persisted boundary, its samples
//! in XOR chunks (plus a small sorted out-of-order buffer), label strings interned in a
//! symbol table, and an inverted index for matchers.
//!
//! Locking: `inner` (series map, index, symbols) is a read/write lock; appends and
//! queries take it shared, creating or removing series takes it exclusively. Each
//! series' samples sit behind their own mutex, held only to append or copy samples.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use roaring::RoaringBitmap;
use sightline_model::{Label, LabelSet, Labels};

use crate::Result;

/// One sample: time (ms) and value.
use crate::db::RejectReason;
use crate::head_chunks::HeadChunkFiles;
use crate::index::LabelIndex;
use crate::matcher::Matcher;
use crate::symbols::{PackedIds, SymbolTable};

mod by_fingerprint;
mod series_by_id;
mod series_data;

use self::by_fingerprint::{FingerprintTable, prefetch_read};
use self::series_by_id::SeriesById;
pub(crate) use self::series_data::SampleOutcome;
use self::series_data::SeriesData;

#[derive(Debug)]
pub(crate) struct MemSeries {
    pub(crate) id: u32,
    /// Name and value symbol ids, pairwise, in label order.
    labels: PackedIds,
    data: Mutex<SeriesData>,
    /// Whether the series' WAL record is durable. Until it is, every append to the
    /// series logs the series record again, so an acknowledged sample never refers to
    /// a series the WAL does not know (its creator's record may still be in flight).
    pub(crate) logged: std::sync::atomic::AtomicBool,
}

impl MemSeries {
    /// Asks for the cache lines of the struct itself (see [`AppendGuard::resolve_each`]).
    fn prefetch_struct(self: &Arc<MemSeries>) {
        let start: *const u8 = Arc::as_ptr(self).cast();
        let size = std::mem::size_of::<MemSeries>();
        // One address per 64-byte line, and the last byte: the struct need not start
        // at a line, so its 120 bytes may touch three.
        prefetch_read(start);
        prefetch_read(start.wrapping_add(64));
        prefetch_read(start.wrapping_add(size - 1));
    }

    /// Asks for what a lookup and an append read beyond the struct: the label ids and
    /// the open chunk's header and tail. Skips the chunk when another thread holds the
    /// series (it is then being written, so in that thread's cache anyway).
    fn prefetch_contents(&self) {
        prefetch_read(self.labels.as_ptr());
        if let Some(data) = self.data.try_lock()
            && let Some(bytes) = data.open_chunk_bytes()
        {
            prefetch_read(bytes.as_ptr());
            prefetch_read(bytes.as_ptr().wrapping_add(bytes.len().saturating_sub(1)));
        }
    }
}

/// `a == b` for label text, which is mostly a few dozen bytes at most: compared a
/// word at a time in registers instead of through a `memcmp` call (that call was 7%
/// of the ingest CPU, two per label of every series written).
#[inline]
fn short_text_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let len = a.len();
    if len != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
    };
    let half = |s: &[u8], at: usize| {
        s.get(at..at + 4)
            .map(|w| u32::from_le_bytes(w.try_into().unwrap_or_default()))
    };
    match len {
        // Byte by byte: `==` on slices calls memcmp whatever their length.
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        // Two overlapping halves cover 4..=7 bytes.
        4..=7 => half(a, 0) == half(b, 0) && half(a, len - 4) == half(b, len - 4),
        8..=64 => {
            // Whole words, then one last word overlapping the one before.
            let mut at = 0;
            while at + 8 < len {
                if word(a, at) != word(b, at) {
                    return false;
                }
                at += 8;
            }
            word(a, len - 8) == word(b, len - 8)
        }
        _ => a == b,
    }
}

#[derive(Debug, Default)]
struct HeadInner {
    symbols: SymbolTable,
    index: LabelIndex,
    series: SeriesById,
    /// Fingerprint → series (one probe on the hot path); the rare colliding label sets
    /// go to `collisions` as ids.
    by_fingerprint: FingerprintTable,
    collisions: HashMap<u64, Vec<u32>>,
    next_id: u32,
    /// Samples before this (ms) are persisted in blocks: writes there are too old.
    min_valid: i64,
}

impl HeadInner {
    fn labels_equal(&self, series: &MemSeries, labels: &impl LabelSet) -> bool {
        let mut ours = series.labels.pairs();
        let mut theirs = labels.pairs();
        loop {
            match (ours.next(), theirs.next()) {
                (None, None) => return true,
                (Some((name_id, value_id)), Some((name, value))) => {
                    if !short_text_equal(self.symbols.resolve_str(name_id), name)
                        || !short_text_equal(self.symbols.resolve_str(value_id), value)
                    {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }

    fn lookup(&self, labels: &impl LabelSet, fingerprint: u64) -> Option<&Arc<MemSeries>> {
        let candidate = self.by_fingerprint.get(fingerprint)?;
        if self.labels_equal(candidate, labels) {
            return Some(candidate);
        }
        self.collisions
            .get(&fingerprint)?
            .iter()
            .filter_map(|id| self.series.get(id))
            .find(|s| self.labels_equal(s, labels))
    }

    fn labels_of(&self, series: &MemSeries) -> Labels {
        let labels = series
            .labels
            .pairs()
            .map(|(name, value)| {
                Label::new(
                    &**self.symbols.resolve(name),
                    &**self.symbols.resolve(value),
                )
            })
            .collect();
        Labels::from_sorted_unchecked(labels)
    }

    fn pairs<'a>(
        &'a self,
        series: &'a MemSeries,
    ) -> impl Iterator<Item = (&'a Arc<str>, &'a Arc<str>)> + 'a {
        series
            .labels
            .pairs()
            .map(|(name, value)| (self.symbols.resolve(name), self.symbols.resolve(value)))
    }

    fn insert(&mut self, id: u32, labels: &impl LabelSet, fingerprint: u64) -> Arc<MemSeries> {
        let mut ids = Vec::with_capacity(labels.label_count() * 2);
        for (name, value) in labels.pairs() {
            ids.push(self.symbols.intern(name));
            ids.push(self.symbols.intern(value));
        }
        let series = Arc::new(MemSeries {
            id,
            labels: PackedIds::new(&ids),
            data: Mutex::new(SeriesData::new()),
            logged: std::sync::atomic::AtomicBool::new(false),
        });
        let pairs: Vec<(Arc<str>, Arc<str>)> = self
            .pairs(&series)
            .map(|(n, v)| (Arc::clone(n), Arc::clone(v)))
            .collect();
        self.index.add(id, pairs.iter().map(|(n, v)| (n, v)));
        if self
            .by_fingerprint
            .insert(fingerprint, Arc::clone(&series))
            .is_err()
        {
            self.collisions.entry(fingerprint).or_default().push(id);
        }
        self.series.insert(Arc::clone(&series));
        self.next_id = self.next_id.max(id.saturating_add(1));
        series
    }

    fn remove(&mut self, id: u32) {
        let Some(series) = self.series.remove(&id) else {
            return;
        };
        let labels = self.labels_of(&series);
        let fingerprint = labels.fingerprint();
        let pairs: Vec<(Arc<str>, Arc<str>)> = self
            .pairs(&series)
            .map(|(n, v)| (Arc::clone(n), Arc::clone(v)))
            .collect();
        self.index.remove(id, pairs.iter().map(|(n, v)| (n, v)));
        for symbol in series.labels.iter() {
            self.symbols.release(symbol);
        }
        if self.by_fingerprint.get(fingerprint).map(|s| s.id) == Some(id) {
            self.by_fingerprint.remove(fingerprint);
            if let Some(mut others) = self.collisions.remove(&fingerprint) {
                if let Some(first) = others.pop().and_then(|other| self.series.get(&other)) {
                    // The fingerprint's slot was just freed: this cannot be refused.
                    let _ = self.by_fingerprint.insert(fingerprint, Arc::clone(first));
                }
                if !others.is_empty() {
                    self.collisions.insert(fingerprint, others);
                }
            }
        } else if let Some(others) = self.collisions.get_mut(&fingerprint) {
            others.retain(|other| *other != id);
            if others.is_empty() {
                self.collisions.remove(&fingerprint);
            }
        }
    }
}

/// Figures of the head's memory use, from [`Head::memory`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HeadMemory {
    /// Series structs, label id arrays, maps and the symbol table.
    pub(crate) series_bytes: usize,
    pub(crate) index_bytes: usize,
    /// Chunk structs and encoded samples.
    pub(crate) sample_bytes: usize,
    pub(crate) samples: usize,
    pub(crate) chunks: usize,
}

/// Series, chunks and samples in the head, kept up to date on every change so that
/// reading them ([`Head::counts`]) takes no lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HeadCounts {
    pub(crate) series: u64,
    pub(crate) chunks: u64,
    pub(crate) samples: u64,
}

#[derive(Debug)]
pub(crate) struct Head {
    inner: RwLock<HeadInner>,
    block_range: i64,
    min_time: AtomicI64,
    max_time: AtomicI64,
    num_series: AtomicU64,
    num_chunks: AtomicU64,
    num_samples: AtomicU64,
    /// During WAL replay: refs whose label set was already known under another ref.
    aliases: Mutex<HashMap<u32, u32>>,
    /// Where closed chunks live (see `head_chunks`).
    chunk_files: HeadChunkFiles,
}

/// Shared access to the head for one batch of appends: holds the read lock so a
/// block cut cannot move the boundary in the middle of it.
#[derive(Debug)]
pub(crate) struct AppendGuard<'a> {
    head: &'a Head,
    inner: RwLockReadGuard<'a, HeadInner>,
    /// Figures of this batch, added to the head's shared atomics once when the guard
    /// drops: per-sample atomic read-modify-writes on shared cache lines cost more than
    /// the XOR encoding when several requests append at once.
    pending: std::cell::Cell<PendingAppends>,
}

/// What a batch appended, not yet in the head's counters.
#[derive(Debug, Clone, Copy)]
struct PendingAppends {
    min_time: i64,
    max_time: i64,
    samples: u64,
    chunks: u64,
}

impl Default for PendingAppends {
    fn default() -> PendingAppends {
        PendingAppends {
            min_time: i64::MAX,
            max_time: i64::MIN,
            samples: 0,
            chunks: 0,
        }
    }
}

impl PendingAppends {
    fn note(&mut self, t: i64, new_chunks: usize) {
        self.min_time = self.min_time.min(t);
        self.max_time = self.max_time.max(t);
        self.samples += 1;
        self.chunks += new_chunks as u64;
    }
}

impl Drop for AppendGuard<'_> {
    fn drop(&mut self) {
        let pending = self.pending.take();
        if pending.samples > 0 || pending.chunks > 0 {
            self.head.note_appends(&pending);
        }
    }
}

impl AppendGuard<'_> {
    /// Calls `found` with the head's series for each label set, in order, and returns
    /// the indexes of the label sets the head does not have (`None` entries are
    /// skipped).
    ///
    /// Each step of a lookup (the table slot, the series struct, its label ids, its
    /// open chunk) is a cache miss once the head outgrows the cache. So the loop runs
    /// a few series ahead of itself: while series `i` is compared and handed to
    /// `found` (which appends to it), the contents of `i + AHEAD`, the struct of
    /// `i + 2·AHEAD` and the slot of `i + 3·AHEAD` are already on their way. The
    /// misses overlap instead of following one another, and what `found` touches is
    /// in cache when it runs.
    pub(crate) fn resolve_each<L: LabelSet>(
        &self,
        label_sets: &[Option<&L>],
        mut found: impl FnMut(usize, &Arc<MemSeries>),
    ) -> Vec<usize> {
        /// Series between two steps: enough to cover a miss behind the work of a few
        /// series, few enough that nothing fetched is evicted before it is used.
        const AHEAD: usize = 4;
        let inner = &*self.inner;
        let fingerprints: Vec<u64> = label_sets
            .iter()
            .map(|labels| labels.map_or(0, LabelSet::fingerprint))
            .collect();
        let mut candidates: Vec<Option<&Arc<MemSeries>>> = vec![None; label_sets.len()];
        let mut missing = Vec::new();
        let count = label_sets.len();
        for lead in 0..count + 3 * AHEAD {
            if lead < count && label_sets[lead].is_some() {
                inner.by_fingerprint.prefetch(fingerprints[lead]);
            }
            if let Some(index) = lead.checked_sub(AHEAD).filter(|&i| i < count)
                && label_sets[index].is_some()
                && let Some(candidate) = inner.by_fingerprint.get(fingerprints[index])
            {
                candidate.prefetch_struct();
                candidates[index] = Some(candidate);
            }
            if let Some(index) = lead.checked_sub(2 * AHEAD).filter(|&i| i < count)
                && let Some(candidate) = candidates[index]
            {
                candidate.prefetch_contents();
            }
            let Some(index) = lead.checked_sub(3 * AHEAD).filter(|&i| i < count) else {
                continue;
            };
            let Some(labels) = label_sets[index] else {
                continue;
            };
            let series = match candidates[index] {
                Some(series) if inner.labels_equal(series, labels) => Some(series),
                // Another label set with the same fingerprint: the slow path.
                Some(_) => inner.lookup(labels, fingerprints[index]),
                None => None,
            };
            match series {
                Some(series) => found(index, series),
                None => missing.push(index),
            }
        }
        missing
    }

    /// Validates and stores one sample (ms). `head_max` is the head's newest sample
    /// time when the caller's request began ([`Head::newest_time`]): every sample of
    /// a request is judged against the same appendable window, whatever order its
    /// series are appended in (as in Prometheus, whose head maximum moves when an
    /// appender commits).
    pub(crate) fn append(
        &self,
        series: &MemSeries,
        t: i64,
        v: f64,
        ooo_window: i64,
        head_max: i64,
    ) -> SampleOutcome {
        let min_valid = self
            .head
            .appendable_min(self.inner.min_valid, ooo_window, head_max);
        let mut data = series.data.lock();
        let chunks_before = data.num_chunks();
        let outcome = data.append(
            t,
            v,
            min_valid,
            ooo_window,
            self.head.block_range,
            &self.head.chunk_files,
        );
        let new_chunks = data.num_chunks().saturating_sub(chunks_before);
        drop(data);
        if outcome == SampleOutcome::Appended {
            let mut pending = self.pending.get();
            pending.note(t, new_chunks);
            self.pending.set(pending);
        }
        outcome
    }

    /// True when an exemplar at `t` is newer than the series' last one (and records it).
    pub(crate) fn accept_exemplar(&self, series: &MemSeries, t: i64) -> bool {
        series.data.lock().accept_exemplar(t)
    }
}

/// Exclusive access for creating series.
#[derive(Debug)]
pub(crate) struct CreateGuard<'a> {
    head: &'a Head,
    inner: RwLockWriteGuard<'a, HeadInner>,
}

impl<'a> CreateGuard<'a> {
    /// The existing series, or a new one; `None` when `max_series` (0 = unlimited)
    /// is reached or ids are exhausted. The bool is true when created.
    pub(crate) fn get_or_create(
        &mut self,
        labels: &impl LabelSet,
        max_series: usize,
    ) -> Option<(Arc<MemSeries>, bool)> {
        let fingerprint = labels.fingerprint();
        if let Some(series) = self.inner.lookup(labels, fingerprint) {
            return Some((Arc::clone(series), false));
        }
        if (max_series > 0 && self.inner.series.len() >= max_series)
            || self.inner.next_id == u32::MAX
        {
            return None;
        }
        let id = self.inner.next_id;
        let series = self.inner.insert(id, labels, fingerprint);
        self.head
            .num_series
            .store(self.inner.series.len() as u64, Ordering::Relaxed);
        Some((series, true))
    }

    pub(crate) fn downgrade(self) -> AppendGuard<'a> {
        AppendGuard {
            head: self.head,
            inner: RwLockWriteGuard::downgrade(self.inner),
            pending: std::cell::Cell::default(),
        }
    }
}

impl Head {
    pub(crate) fn new(block_range: i64, min_valid: i64, chunk_files: HeadChunkFiles) -> Head {
        let inner = HeadInner {
            min_valid,
            ..HeadInner::default()
        };
        Head {
            inner: RwLock::new(inner),
            block_range: block_range.max(1),
            min_time: AtomicI64::new(i64::MAX),
            max_time: AtomicI64::new(i64::MIN),
            num_series: AtomicU64::new(0),
            num_chunks: AtomicU64::new(0),
            num_samples: AtomicU64::new(0),
            aliases: Mutex::new(HashMap::new()),
            chunk_files,
        }
    }

    /// Records one appended sample at `t` that opened `new_chunks` chunks.
    fn note_appends(&self, pending: &PendingAppends) {
        if pending.samples > 0 {
            self.min_time.fetch_min(pending.min_time, Ordering::Relaxed);
            self.max_time.fetch_max(pending.max_time, Ordering::Relaxed);
            self.num_samples
                .fetch_add(pending.samples, Ordering::Relaxed);
        }
        if pending.chunks > 0 {
            self.num_chunks.fetch_add(pending.chunks, Ordering::Relaxed);
        }
    }

    /// The head's newest sample time (ms), `i64::MIN` when empty.
    pub(crate) fn newest_time(&self) -> i64 {
        self.max_time.load(Ordering::Relaxed)
    }

    /// The oldest time the write path accepts (Prometheus' appendable window): not
    /// before `min_valid` (persisted) nor more than max(block_range / 2, ooo_window)
    /// before `head_max`, the head's newest sample when the request began, whatever
    /// the series — so a new series cannot write far into the past.
    fn appendable_min(&self, min_valid: i64, ooo_window: i64, head_max: i64) -> i64 {
        if head_max == i64::MIN {
            return min_valid;
        }
        let window = (self.block_range / 2).max(ooo_window);
        min_valid.max(head_max.saturating_sub(window))
    }

    /// Series, chunks and samples in the head (lock-free).
    pub(crate) fn counts(&self) -> HeadCounts {
        HeadCounts {
            series: self.num_series.load(Ordering::Relaxed),
            chunks: self.num_chunks.load(Ordering::Relaxed),
            samples: self.num_samples.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn append_guard(&self) -> AppendGuard<'_> {
        AppendGuard {
            head: self,
            inner: self.inner.read(),
            pending: std::cell::Cell::default(),
        }
    }

    pub(crate) fn create_guard(&self) -> CreateGuard<'_> {
        CreateGuard {
            head: self,
            inner: self.inner.write(),
        }
    }

    /// Time range of the samples in the head (ms), `None` when empty.
    pub(crate) fn time_range(&self) -> Option<(i64, i64)> {
        let min = self.min_time.load(Ordering::Relaxed);
        let max = self.max_time.load(Ordering::Relaxed);
        (min <= max).then_some((min, max))
    }

    pub(crate) fn min_valid(&self) -> i64 {
        self.inner.read().min_valid
    }

    pub(crate) fn set_min_valid(&self, boundary: i64) {
        let mut inner = self.inner.write();
        inner.min_valid = inner.min_valid.max(boundary);
    }

    /// Moves the boundary back after a block cut failed, so the samples it did not
    /// persist stay writable and are cut again. Only maintenance (one at a time)
    /// moves the boundary.
    pub(crate) fn restore_min_valid(&self, previous: i64) {
        self.inner.write().min_valid = previous;
    }

    pub(crate) fn next_id(&self) -> u32 {
        self.inner.read().next_id
    }

    pub(crate) fn num_series(&self) -> usize {
        self.inner.read().series.len()
    }

    /// Matching series with their label sets, in no particular order.
    pub(crate) fn matching(&self, matchers: &[Matcher]) -> Vec<(Labels, Arc<MemSeries>)> {
        let inner = self.inner.read();
        let ids = inner.index.select(matchers);
        ids.iter()
            .filter_map(|id| inner.series.get(&id))
            .map(|series| (inner.labels_of(series), Arc::clone(series)))
            .collect()
    }

    /// Ids of the series matching `matchers` (for exemplar lookups).
    pub(crate) fn select_ids(&self, matchers: &[Matcher]) -> RoaringBitmap {
        self.inner.read().index.select(matchers)
    }

    pub(crate) fn label_names(&self, matchers: &[Matcher]) -> Vec<String> {
        let inner = self.inner.read();
        let ids = inner.index.select(matchers);
        inner
            .index
            .label_names(&ids)
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    pub(crate) fn label_values(&self, name: &str, matchers: &[Matcher]) -> Vec<String> {
        let inner = self.inner.read();
        let ids = inner.index.select(matchers);
        inner
            .index
            .label_values(name, &ids)
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    pub(crate) fn labels_by_id(&self, id: u32) -> Option<Labels> {
        let inner = self.inner.read();
        inner.series.get(&id).map(|s| inner.labels_of(s))
    }

    /// All series sorted by labels (for writing a block).
    pub(crate) fn sorted_series(&self) -> Vec<(Labels, Arc<MemSeries>)> {
        let inner = self.inner.read();
        let mut all: Vec<(Labels, Arc<MemSeries>)> = inner
            .series
            .values()
            .map(|series| (inner.labels_of(series), Arc::clone(series)))
            .collect();
        drop(inner);
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Samples of one series in `[mint, maxt]`.
    pub(crate) fn series_samples(
        &self,
        series: &MemSeries,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<(i64, f64)>> {
        series.data.lock().samples_in(mint, maxt, &self.chunk_files)
    }

    /// Whether `series` has samples in `[mint, maxt]` (from chunk time ranges).
    pub(crate) fn series_has_samples_in(&self, series: &MemSeries, mint: i64, maxt: i64) -> bool {
        series.data.lock().has_samples_in(mint, maxt)
    }

    /// Samples of `series` that are surely in `[mint, maxt]`, counted without decoding
    /// (a lower bound, for query limits).
    pub(crate) fn series_samples_surely_in(&self, series: &MemSeries, mint: i64, maxt: i64) -> u64 {
        series.data.lock().samples_surely_in(mint, maxt)
    }

    /// Ids and label sets of all series, ascending by id, in batches (WAL snapshot).
    pub(crate) fn for_each_series_batch(
        &self,
        batch: usize,
        mut f: impl FnMut(Vec<(u64, Labels)>),
    ) {
        let mut ids: Vec<u32> = self.inner.read().series.ids().collect();
        ids.sort_unstable();
        for chunk in ids.chunks(batch.max(1)) {
            let inner = self.inner.read();
            let labels = chunk
                .iter()
                .filter_map(|id| {
                    inner
                        .series
                        .get(id)
                        .map(|s| (u64::from(*id), inner.labels_of(s)))
                })
                .collect();
            drop(inner);
            f(labels);
        }
    }

    /// Drops samples before `boundary` and removes series left empty; returns how
    /// many series were removed.
    pub(crate) fn truncate(&self, boundary: i64) -> usize {
        let mut inner = self.inner.write();
        inner.min_valid = inner.min_valid.max(boundary);
        let mut empty = Vec::new();
        let mut min_time = i64::MAX;
        let mut max_time = i64::MIN;
        let (mut chunks, mut samples) = (0u64, 0u64);
        for series in inner.series.values() {
            let mut data = series.data.lock();
            data.truncate_before(boundary, &self.chunk_files);
            if data.is_empty() {
                empty.push(series.id);
                continue;
            }
            chunks += data.num_chunks() as u64;
            samples += data.num_samples() as u64;
            if let Some(t) = data.min_time() {
                min_time = min_time.min(t);
            }
            max_time = max_time.max(data.newest_time());
        }
        for id in &empty {
            inner.remove(*id);
        }
        // Appends wait for the write lock held here, so the counts are exact.
        self.num_series
            .store(inner.series.len() as u64, Ordering::Relaxed);
        self.num_chunks.store(chunks, Ordering::Relaxed);
        self.num_samples.store(samples, Ordering::Relaxed);
        self.min_time.store(min_time, Ordering::Relaxed);
        // The head's newest time never goes back while series remain (the appendable
        // window is relative to it).
        if max_time != i64::MIN {
            self.max_time.fetch_max(max_time, Ordering::Relaxed);
        }
        empty.len()
    }

    // ----- WAL replay -----

    pub(crate) fn replay_series(&self, id: u64, labels: &Labels) {
        let Ok(id) = u32::try_from(id) else {
            return;
        };
        let mut inner = self.inner.write();
        let fingerprint = labels.fingerprint();
        if inner.series.contains_key(&id) {
            return;
        }
        if let Some(existing) = inner.lookup(labels, fingerprint) {
            // The same label set under two refs (a snapshot and a later record):
            // keep the first, later samples of the other ref are mapped to it.
            let existing_id = existing.id;
            inner.next_id = inner.next_id.max(id.saturating_add(1));
            drop(inner);
            self.aliases.lock().insert(id, existing_id);
            return;
        }
        let series = inner.insert(id, labels, fingerprint);
        series.logged.store(true, Ordering::Relaxed);
        self.num_series
            .store(inner.series.len() as u64, Ordering::Relaxed);
    }

    pub(crate) fn finish_replay(&self) {
        self.aliases.lock().clear();
    }

    pub(crate) fn reserve_ids(&self, next: u64) {
        let next = u32::try_from(next).unwrap_or(u32::MAX);
        let mut inner = self.inner.write();
        inner.next_id = inner.next_id.max(next);
    }

    /// Applies a logged sample without the write-path limits; false when its series
    /// is unknown or the sample is already persisted.
    pub(crate) fn replay_sample(
        &self,
        guard: &mut AppendGuard<'_>,
        id: u64,
        t: i64,
        v: f64,
    ) -> bool {
        let Ok(id) = u32::try_from(id) else {
            return false;
        };
        let id = self.aliases.lock().get(&id).copied().unwrap_or(id);
        let Some(series) = guard.inner.series.get(&id) else {
            return false;
        };
        let mut data = series.data.lock();
        let chunks_before = data.num_chunks();
        let outcome = data.append(
            t,
            v,
            guard.inner.min_valid,
            i64::MAX,
            self.block_range,
            &self.chunk_files,
        );
        let new_chunks = data.num_chunks().saturating_sub(chunks_before);
        drop(data);
        if outcome == SampleOutcome::Appended {
            let mut pending = guard.pending.get();
            pending.note(t, new_chunks);
            guard.pending.set(pending);
        }
        outcome != SampleOutcome::Rejected(RejectReason::TooOld)
    }

    pub(crate) fn memory(&self) -> HeadMemory {
        let inner = self.inner.read();
        let mut memory = HeadMemory {
            index_bytes: inner.index.heap_bytes(),
            ..HeadMemory::default()
        };
        let per_series_struct = std::mem::size_of::<MemSeries>() + 16;
        memory.series_bytes = inner.symbols.heap_bytes()
            + inner.series.capacity() * (std::mem::size_of::<Arc<MemSeries>>() + 1)
            + inner.by_fingerprint.capacity() * FingerprintTable::SLOT_BYTES;
        for series in inner.series.values() {
            memory.series_bytes += per_series_struct + series.labels.heap_bytes();
            let data = series.data.lock();
            memory.sample_bytes += data.heap_bytes();
            memory.chunks += data.num_chunks();
            memory.samples += data.num_samples();
        }
        memory
    }
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn short_text_equal_agrees_with_eq() {
        let long = "node_filesystem_avail_bytes_with_a_long_suffix_to_pass_sixty_four_bytes";
        let mut texts: Vec<String> = [
            "", "a", "ab", "abc", "abcd", "abce", "abcdefg", "abcdefh", "bbcdefg", "ä", "äb",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        // Every length up to past 64, whole and with one byte changed at each position.
        for len in 0..=long.len() {
            texts.push(long[..len].to_string());
            for at in 0..len {
                let mut bytes = long.as_bytes()[..len].to_vec();
                bytes[at] = b'#';
                texts.push(String::from_utf8(bytes).unwrap());
            }
        }
        for a in &texts {
            for b in texts.iter().filter(|b| b.len() == a.len() || b.is_empty()) {
                assert_eq!(super::short_text_equal(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    /// Every head series holds one `MemSeries` (in an `Arc`: 16 more bytes, then
    /// malloc's 8-byte header rounded to 16) with its `SeriesData` and open chunk
    /// inline: growing them costs memory in every series, so the sizes are pinned.
    /// At 120 bytes a series takes a 144-byte malloc chunk; at 128 it took 160.
    #[test]
    fn per_series_structs_keep_their_size() {
        assert_eq!(std::mem::size_of::<crate::chunk::XorChunk>(), 64);
        assert_eq!(std::mem::size_of::<super::SeriesData>(), 88);
        assert_eq!(std::mem::size_of::<super::MemSeries>(), 120);
    }
}
