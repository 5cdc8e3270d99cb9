//! The samples of one head series: closed chunks (in the head chunk files, or on the
//! heap when writing them failed), the open chunk being appended to, and a small
//! sorted buffer of out-of-order samples.

use crate::chunk::{ChunkIter, XorChunk};
use crate::db::RejectReason;
use crate::head_chunks::{HeadChunkFiles, SpilledChunk};
use crate::{Error, Result};

/// What happened to one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SampleOutcome {
    Appended,
    /// Same timestamp and same value as a stored sample: a no-op.
    Duplicate,
    Rejected(RejectReason),
}

/// A full (or block-boundary) chunk that is only read from now on.
#[derive(Debug)]
struct ClosedChunk {
    min_time: i64,
    max_time: i64,
    body: ClosedBody,
}

/// Where a closed chunk's bytes are, and its sample count. The count sits in each
/// variant, beside the enum's tag, rather than in [`ClosedChunk`]: there it would
/// need 8 more bytes of padding, in every closed chunk of every series.
#[derive(Debug)]
enum ClosedBody {
    /// In a head chunk file (the normal case).
    Spilled {
        chunk: SpilledChunk,
        num_samples: u16,
    },
    /// On the heap: the file write failed (e.g. disk full); nothing is lost.
    Memory { bytes: Box<[u8]>, num_samples: u16 },
}

impl ClosedChunk {
    fn num_samples(&self) -> u16 {
        match self.body {
            ClosedBody::Spilled { num_samples, .. } | ClosedBody::Memory { num_samples, .. } => {
                num_samples
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct SeriesData {
    /// Closed in-order chunks, oldest first. A boxed slice, not a `Vec`: one closes
    /// every 120 samples, so the spare capacity field would be dead weight in every
    /// series.
    closed: Box<[ClosedChunk]>,
    /// The in-order chunk appended to; newer than every closed one. `None` only when
    /// there are no closed chunks either (nothing in order yet, or all truncated).
    /// Its newest sample is the series' newest in-order one.
    open: Option<XorChunk>,
    /// Boxed: most series never have out-of-order samples nor exemplars, and this
    /// struct is in every series (the box is 8 bytes; its contents 32).
    extras: Option<Box<Extras>>,
}

/// What only some series need.
#[derive(Debug)]
struct Extras {
    /// Out-of-order samples, sorted by time, no timestamp shared with the chunks.
    out_of_order: Vec<(i64, f64)>,
    /// Time of the newest exemplar accepted (`i64::MIN` when none).
    last_exemplar_time: i64,
}

impl Default for Extras {
    fn default() -> Extras {
        Extras {
            out_of_order: Vec::new(),
            last_exemplar_time: i64::MIN,
        }
    }
}

fn chunk_range_end(t: i64, block_range: i64) -> i64 {
    t.div_euclid(block_range)
        .saturating_add(1)
        .saturating_mul(block_range)
}

impl SeriesData {
    pub(crate) fn new() -> SeriesData {
        SeriesData {
            closed: Box::default(),
            open: None,
            extras: None,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.open.is_none() && self.out_of_order().is_empty()
    }

    fn out_of_order(&self) -> &[(i64, f64)] {
        self.extras
            .as_deref()
            .map_or(&[], |extras| extras.out_of_order.as_slice())
    }

    /// True when an exemplar at `t` is newer than the series' last one (and records it).
    pub(crate) fn accept_exemplar(&mut self, t: i64) -> bool {
        let extras = self.extras.get_or_insert_with(Box::default);
        if t <= extras.last_exemplar_time {
            return false;
        }
        extras.last_exemplar_time = t;
        true
    }

    /// Newest in-order timestamp (`i64::MIN` when none).
    fn in_order_max_time(&self) -> i64 {
        self.open.as_ref().map_or(i64::MIN, XorChunk::max_time)
    }

    /// Newest timestamp in order or not (`i64::MIN` when none).
    pub(crate) fn newest_time(&self) -> i64 {
        let ooo = self.out_of_order().last().map_or(i64::MIN, |s| s.0);
        self.in_order_max_time().max(ooo)
    }

    /// The open chunk's encoding, if there is one (for prefetching).
    pub(crate) fn open_chunk_bytes(&self) -> Option<&[u8]> {
        self.open.as_ref().map(XorChunk::bytes)
    }

    /// Closed plus open chunks.
    pub(crate) fn num_chunks(&self) -> usize {
        self.closed.len() + usize::from(self.open.is_some())
    }

    pub(crate) fn min_time(&self) -> Option<i64> {
        let in_order = match self.closed.first() {
            Some(chunk) => Some(chunk.min_time),
            None => self.open.as_ref().map(XorChunk::min_time),
        };
        let ooo = self.out_of_order().first().map(|s| s.0);
        match (in_order, ooo) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn append_in_order(&mut self, t: i64, v: f64, block_range: i64, files: &HeadChunkFiles) {
        let cut = match &self.open {
            None => true,
            Some(chunk) => chunk.is_full() || t >= chunk_range_end(chunk.min_time(), block_range),
        };
        if cut && let Some(full) = self.open.take() {
            let next = full.successor();
            self.close(full, files);
            self.open = Some(next);
        }
        let chunk = self.open.get_or_insert_with(XorChunk::new);
        chunk.append(t, v);
    }

    /// Moves a finished chunk out of the heap into the head chunk files.
    fn close(&mut self, chunk: XorChunk, files: &HeadChunkFiles) {
        let (min_time, max_time) = (chunk.min_time(), chunk.max_time());
        // At most MAX_SAMPLES (120), so the count fits.
        let num_samples = u16::try_from(chunk.num_samples()).unwrap_or(u16::MAX);
        let body = match files.write(min_time, chunk.bytes()) {
            Ok(spilled) => ClosedBody::Spilled {
                chunk: spilled,
                num_samples,
            },
            Err(e) => {
                warn_spill_failed(&e);
                ClosedBody::Memory {
                    bytes: chunk.into_bytes().into_boxed_slice(),
                    num_samples,
                }
            }
        };
        // Exact growth: a series closes a chunk every 120 samples, and Vec's
        // minimum of four slots would hold ~150 unused bytes per series.
        let mut closed = std::mem::take(&mut self.closed).into_vec();
        closed.reserve_exact(1);
        closed.push(ClosedChunk {
            min_time,
            max_time,
            body,
        });
        self.closed = closed.into_boxed_slice();
    }

    /// Calls `visit` with the samples of every in-order chunk overlapping
    /// `[mint, maxt]`, oldest first.
    fn for_each_chunk(
        &self,
        mint: i64,
        maxt: i64,
        files: &HeadChunkFiles,
        mut visit: impl FnMut(&mut dyn Iterator<Item = (i64, f64)>),
    ) -> Result<()> {
        for chunk in &self.closed {
            if chunk.max_time < mint || chunk.min_time > maxt {
                continue;
            }
            let read;
            let bytes: &[u8] = match &chunk.body {
                ClosedBody::Memory { bytes, .. } => bytes,
                ClosedBody::Spilled { chunk: spilled, .. } => {
                    read = files.read(chunk.min_time, spilled)?;
                    &read
                }
            };
            let mut iter = ChunkIter::new(bytes);
            visit(&mut iter);
            if let Some(problem) = iter.corruption() {
                return Err(Error::Corrupt(format!("head chunk: {problem}")));
            }
        }
        if let Some(open) = &self.open
            && open.max_time() >= mint
            && open.min_time() <= maxt
        {
            visit(&mut open.iter());
        }
        Ok(())
    }

    /// The stored value at `t`, if any (out-of-order path only; decodes chunks).
    fn value_at(&self, t: i64, files: &HeadChunkFiles) -> Result<Option<f64>> {
        let out_of_order = self.out_of_order();
        if let Ok(i) = out_of_order.binary_search_by_key(&t, |s| s.0) {
            return Ok(Some(out_of_order[i].1));
        }
        let mut found = None;
        self.for_each_chunk(t, t, files, |samples| {
            if found.is_some() {
                return;
            }
            for (sample_t, value) in samples {
                if sample_t == t {
                    found = Some(value);
                    return;
                }
            }
        })?;
        Ok(found)
    }

    /// Appends with full validation (the write path).
    pub(crate) fn append(
        &mut self,
        t: i64,
        v: f64,
        min_valid: i64,
        ooo_window: i64,
        block_range: i64,
        files: &HeadChunkFiles,
    ) -> SampleOutcome {
        if t < min_valid {
            return SampleOutcome::Rejected(RejectReason::TooOld);
        }
        let max_time = self.in_order_max_time();
        if max_time == i64::MIN || t > max_time {
            self.append_in_order(t, v, block_range, files);
            return SampleOutcome::Appended;
        }
        let last_value_bits = self.open.as_ref().map_or(0, XorChunk::last_value_bits);
        if t == max_time {
            return if v.to_bits() == last_value_bits {
                SampleOutcome::Duplicate
            } else {
                SampleOutcome::Rejected(RejectReason::DuplicateTimestamp)
            };
        }
        if max_time.saturating_sub(t) > ooo_window {
            return SampleOutcome::Rejected(RejectReason::OutOfOrder);
        }
        match self.value_at(t, files) {
            Ok(Some(existing)) if existing.to_bits() == v.to_bits() => SampleOutcome::Duplicate,
            Ok(Some(_)) => SampleOutcome::Rejected(RejectReason::DuplicateTimestamp),
            Ok(None) => {
                let out_of_order = &mut self.extras.get_or_insert_with(Box::default).out_of_order;
                let position = out_of_order.partition_point(|s| s.0 < t);
                out_of_order.insert(position, (t, v));
                SampleOutcome::Appended
            }
            Err(e) => {
                // Whether `t` is taken is unknown: refusing is the answer that can
                // never store two values at one timestamp.
                tracing::error!(error = %e, "head chunk unreadable; out-of-order sample refused");
                SampleOutcome::Rejected(RejectReason::OutOfOrder)
            }
        }
    }

    /// Samples in `[mint, maxt]`, ascending.
    pub(crate) fn samples_in(
        &self,
        mint: i64,
        maxt: i64,
        files: &HeadChunkFiles,
    ) -> Result<Vec<(i64, f64)>> {
        let mut in_order = Vec::new();
        self.for_each_chunk(mint, maxt, files, |samples| {
            for sample in samples {
                if sample.0 >= mint && sample.0 <= maxt {
                    in_order.push(sample);
                }
            }
        })?;
        let out_of_order = self.out_of_order();
        let start = out_of_order.partition_point(|s| s.0 < mint);
        let end = out_of_order.partition_point(|s| s.0 <= maxt);
        let ooo = &out_of_order[start..end];
        if ooo.is_empty() {
            return Ok(in_order);
        }
        Ok(merge_sorted(&in_order, ooo))
    }

    pub(crate) fn has_samples_in(&self, mint: i64, maxt: i64) -> bool {
        self.closed
            .iter()
            .any(|c| c.max_time >= mint && c.min_time <= maxt)
            || self
                .open
                .as_ref()
                .is_some_and(|c| c.max_time() >= mint && c.min_time() <= maxt)
            || self
                .out_of_order()
                .iter()
                .any(|s| s.0 >= mint && s.0 <= maxt)
    }

    /// Samples in chunks lying entirely in `[mint, maxt]` plus out-of-order ones in
    /// it: a lower bound of what [`SeriesData::samples_in`] returns, without decoding.
    pub(crate) fn samples_surely_in(&self, mint: i64, maxt: i64) -> u64 {
        let inside = |min: i64, max: i64| min >= mint && max <= maxt;
        let closed: u64 = self
            .closed
            .iter()
            .filter(|c| inside(c.min_time, c.max_time))
            .map(|c| u64::from(c.num_samples()))
            .sum();
        let open = self
            .open
            .as_ref()
            .filter(|c| inside(c.min_time(), c.max_time()))
            .map_or(0, |c| c.num_samples() as u64);
        let out_of_order = self.out_of_order();
        let end = out_of_order.partition_point(|s| s.0 <= maxt);
        let start = out_of_order.partition_point(|s| s.0 < mint).min(end);
        closed + open + (end - start) as u64
    }

    /// Drops everything before `boundary` (persisted in a block), releasing dropped
    /// chunks' space in the head chunk files.
    pub(crate) fn truncate_before(&mut self, boundary: i64, files: &HeadChunkFiles) {
        if self.closed.iter().any(|c| c.max_time < boundary) {
            let mut closed = std::mem::take(&mut self.closed).into_vec();
            closed.retain(|c| {
                let keep = c.max_time >= boundary;
                if !keep && matches!(c.body, ClosedBody::Spilled { .. }) {
                    files.release(c.min_time);
                }
                keep
            });
            self.closed = closed.into_boxed_slice();
        }
        if self.open.as_ref().is_some_and(|c| c.max_time() < boundary) {
            self.open = None;
        }
        if let Some(extras) = &mut self.extras {
            extras.out_of_order.retain(|s| s.0 >= boundary);
            if extras.out_of_order.is_empty() && extras.last_exemplar_time == i64::MIN {
                self.extras = None;
            }
        }
    }

    pub(crate) fn num_samples(&self) -> usize {
        self.closed
            .iter()
            .map(|c| usize::from(c.num_samples()))
            .sum::<usize>()
            + self.open.as_ref().map_or(0, XorChunk::num_samples)
            + self.out_of_order().len()
    }

    /// Heap bytes held for samples (closed chunk references and any closed chunk
    /// kept in memory, the open chunk's capacity, the out-of-order buffer).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.closed.len() * std::mem::size_of::<ClosedChunk>()
            + self
                .closed
                .iter()
                .map(|c| match &c.body {
                    ClosedBody::Memory { bytes, .. } => bytes.len(),
                    ClosedBody::Spilled { .. } => 0,
                })
                .sum::<usize>()
            + self.open.as_ref().map_or(0, XorChunk::heap_bytes)
            + self.extras.as_ref().map_or(0, |extras| {
                std::mem::size_of::<Extras>() + extras.out_of_order.capacity() * 16
            })
    }
}

/// Logs a failed head chunk write once a minute at most (it repeats for every chunk
/// while the disk is full).
fn warn_spill_failed(error: &Error) {
    static LAST_WARNING_SECS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST_WARNING_SECS.load(std::sync::atomic::Ordering::Relaxed);
    if now >= last.saturating_add(60)
        && LAST_WARNING_SECS
            .compare_exchange(
                last,
                now,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
    {
        tracing::warn!(error = %error, "head chunk not written to its file; kept in memory");
    }
}

/// Merges two ascending sample lists; on equal timestamps the first list wins.
fn merge_sorted(a: &[(i64, f64)], b: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_chunk_reference_stays_small() {
        // Kept on the heap for every closed chunk of every series (see `SpilledChunk`):
        // 48 bytes with malloc's header for the usual one, 56 at 48 bytes.
        assert_eq!(std::mem::size_of::<ClosedChunk>(), 40);
    }

    const HOUR: i64 = 3_600_000;

    fn files() -> (tempfile::TempDir, HeadChunkFiles) {
        let dir = tempfile::tempdir().unwrap();
        let files = HeadChunkFiles::open(&dir.path().join("head_chunks"), 2 * HOUR).unwrap();
        (dir, files)
    }

    #[test]
    fn closed_chunks_leave_the_heap_and_read_back() {
        let (_dir, files) = files();
        let mut data = SeriesData::new();
        let n = 3 * XorChunk::MAX_SAMPLES as i64 + 7;
        for i in 0..n {
            let outcome = data.append(i * 1000, i as f64 * 0.5, i64::MIN, 0, 2 * HOUR, &files);
            assert_eq!(outcome, SampleOutcome::Appended);
        }
        assert_eq!(data.num_chunks(), 4);
        assert!(
            data.closed
                .iter()
                .all(|c| matches!(c.body, ClosedBody::Spilled { .. }))
        );
        let all = data.samples_in(i64::MIN, i64::MAX, &files).unwrap();
        assert_eq!(all.len() as i64, n);
        assert!(
            all.iter()
                .enumerate()
                .all(|(i, s)| *s == (i as i64 * 1000, i as f64 * 0.5))
        );
        let middle = data.samples_in(150_000, 250_000, &files).unwrap();
        assert_eq!(middle.first(), Some(&(150_000, 75.0)));
        assert_eq!(middle.len(), 101);
        assert_eq!(data.num_samples() as i64, n);
    }

    #[test]
    fn out_of_order_duplicates_are_found_in_spilled_chunks() {
        let (_dir, files) = files();
        let mut data = SeriesData::new();
        for i in 0..200i64 {
            data.append(i * 10, 1.0, i64::MIN, i64::MAX, 2 * HOUR, &files);
        }
        // 50 sits in the first, spilled chunk; 55 is free.
        assert_eq!(
            data.append(50, 1.0, i64::MIN, i64::MAX, 2 * HOUR, &files),
            SampleOutcome::Duplicate
        );
        assert_eq!(
            data.append(50, 2.0, i64::MIN, i64::MAX, 2 * HOUR, &files),
            SampleOutcome::Rejected(RejectReason::DuplicateTimestamp)
        );
        assert_eq!(
            data.append(55, 2.0, i64::MIN, i64::MAX, 2 * HOUR, &files),
            SampleOutcome::Appended
        );
        let around = data.samples_in(50, 60, &files).unwrap();
        assert_eq!(around, vec![(50, 1.0), (55, 2.0), (60, 1.0)]);
    }

    #[test]
    fn truncation_drops_whole_windows() {
        let (dir, files) = files();
        let mut data = SeriesData::new();
        for i in 0..10i64 {
            data.append(i * HOUR / 2, 1.0, i64::MIN, 0, 2 * HOUR, &files);
        }
        data.truncate_before(4 * HOUR, &files);
        assert!(
            !dir.path().join("head_chunks/0.chunks").exists(),
            "window 0 released"
        );
        let left = data.samples_in(i64::MIN, i64::MAX, &files).unwrap();
        assert_eq!(left.first().map(|s| s.0), Some(4 * HOUR));
        assert_eq!(left.len(), 2);
    }
}
