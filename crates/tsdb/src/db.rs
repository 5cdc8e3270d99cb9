//! [`Db`]: the store's public face. Opening (blocks, WAL replay), the write path and
//! the read path live here; block cuts, compaction and retention in `compact.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use sightline_model::time::{from_millis, to_millis};
use sightline_model::{
    Exemplar, LabelSet, Labels, MetricMetadata, Sample, SeriesRef, Timestamp, WriteRequest,
};
use sightline_wal::{SegmentId, Wal};

use crate::block::{BLOCK_EXTENSION, Block, GroupCache, TMP_EXTENSION};
use crate::head::{AppendGuard, Head, HeadMemory, MemSeries, SampleOutcome};
use crate::head_chunks::HeadChunkFiles;

/// Subdirectory of the store holding the head chunk files (scratch, see `head_chunks`).
const HEAD_CHUNKS_DIR: &str = "head_chunks";
use crate::inflight::Inflight;
use crate::matcher::Matcher;
use crate::metadata::{self as metadata_limits, MetadataUpdate};
use crate::wal_records::{RecordBuilder, RefExemplar, RefSample};
use crate::{Error, Result};

/// Options of a [`Db`].
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// The head is cut into blocks aligned to this (default 2h).
    pub block_range: Duration,
    /// Samples older than their series' newest sample by at most this are accepted
    /// (default 10m). Whatever the series, nothing older than the head's newest sample
    /// minus max(block_range / 2, this) is accepted (Prometheus' appendable window):
    /// a new series cannot write into the past.
    pub out_of_order_window: Duration,
    /// Blocks whose newest sample is older than this (relative to the newest sample
    /// stored) are dropped; zero keeps everything (default 15 days).
    pub retention_time: Duration,
    /// Oldest blocks are dropped until blocks take at most this many bytes; 0 =
    /// unlimited (default).
    pub retention_bytes: u64,
    /// New series beyond this many in the head are rejected; 0 = unlimited (default).
    pub max_series: usize,
    /// Samples later than now + this are rejected (default 10m).
    pub future_tolerance: Duration,
    /// Exemplars kept in memory, newest win (default 100 000).
    pub max_exemplars: usize,
    pub wal: sightline_wal::WalOptions,
    /// Where queries keep the block groups they decompress; one cache may serve many
    /// stores (default: a cache of [`DEFAULT_GROUP_CACHE_BYTES`] for this store).
    pub group_cache: Arc<GroupCache>,
}

/// Budget of the default [`DbOptions::group_cache`].
pub const DEFAULT_GROUP_CACHE_BYTES: usize = 64 << 20;

impl Default for DbOptions {
    fn default() -> DbOptions {
        DbOptions {
            block_range: Duration::from_secs(2 * 3600),
            out_of_order_window: Duration::from_secs(600),
            retention_time: Duration::from_secs(15 * 24 * 3600),
            retention_bytes: 0,
            max_series: 0,
            future_tolerance: Duration::from_secs(600),
            max_exemplars: 100_000,
            wal: sightline_wal::WalOptions::default(),
            group_cache: Arc::new(GroupCache::new(DEFAULT_GROUP_CACHE_BYTES)),
        }
    }
}

pub(crate) fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Why a sample was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Older than its series' newest sample by more than the out-of-order window.
    OutOfOrder,
    /// Older than what the store still accepts: already persisted in blocks, or
    /// before the appendable window (the head's newest sample minus
    /// max(block_range / 2, out_of_order_window)).
    TooOld,
    /// Later than now + the future tolerance.
    TooFarInFuture,
    /// Same timestamp as a stored sample, different value.
    DuplicateTimestamp,
    /// The series would be new and the series limit is reached.
    SeriesLimit,
}

impl RejectReason {
    const ALL: [RejectReason; 5] = [
        RejectReason::OutOfOrder,
        RejectReason::TooOld,
        RejectReason::TooFarInFuture,
        RejectReason::DuplicateTimestamp,
        RejectReason::SeriesLimit,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::OutOfOrder => "out_of_order",
            RejectReason::TooOld => "too_old",
            RejectReason::TooFarInFuture => "too_far_in_future",
            RejectReason::DuplicateTimestamp => "duplicate_timestamp",
            RejectReason::SeriesLimit => "series_limit",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Samples rejected for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub count: u64,
    /// The first rejected sample: its series and timestamp.
    pub example: String,
}

/// What [`Db::append`] stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendReport {
    /// Samples stored, including exact duplicates of stored samples (no-ops).
    pub samples_accepted: u64,
    pub exemplars_accepted: u64,
    pub series_created: u64,
    /// One entry per reason that occurred.
    pub rejected: Vec<Rejection>,
}

impl AppendReport {
    pub fn samples_rejected(&self) -> u64 {
        self.rejected.iter().map(|r| r.count).sum()
    }
}

/// One series and its samples (ascending) in a queried range.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// Figures about the store, for self-monitoring.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DbStats {
    pub head_series: u64,
    pub head_chunks: u64,
    pub head_samples: u64,
    pub blocks: u64,
    pub block_bytes: u64,
    pub wal_segments: u64,
    pub wal_bytes: u64,
    pub wal_fsyncs_total: u64,
    pub wal_fsync_seconds_total: f64,
    pub min_time: Option<Timestamp>,
    pub max_time: Option<Timestamp>,
    /// Estimated heap bytes of the head (series, symbols, index and samples).
    pub head_bytes: u64,
    /// Of `head_bytes`, what is not sample data: series, symbols, index.
    pub head_series_overhead_bytes: u64,
    pub samples_in_blocks: u64,
    /// Metadata entries ignored because the store holds the most metric families it
    /// keeps metadata for.
    pub metadata_dropped_total: u64,
}

#[derive(Debug, Default)]
struct RejectionTally {
    counts: [u64; 5],
    examples: [Option<String>; 5],
}

impl RejectionTally {
    fn add(&mut self, reason: RejectReason, count: u64, example: impl FnOnce() -> String) {
        if count == 0 {
            return;
        }
        let i = reason.index();
        self.counts[i] += count;
        if self.examples[i].is_none() {
            self.examples[i] = Some(example());
        }
    }

    fn into_rejections(self) -> Vec<Rejection> {
        let mut out = Vec::new();
        for reason in RejectReason::ALL {
            let i = reason.index();
            if self.counts[i] > 0 {
                out.push(Rejection {
                    reason,
                    count: self.counts[i],
                    example: self.examples[i].clone().unwrap_or_default(),
                });
            }
        }
        out
    }
}

fn example(labels: &impl LabelSet, t: i64) -> String {
    format!("series {} timestamp {t} ms", labels.to_labels())
}

/// The in-memory exemplar ring.
#[derive(Debug, Default)]
pub(crate) struct ExemplarRing {
    pub(crate) entries: VecDeque<RefExemplar>,
}

impl ExemplarRing {
    pub(crate) fn push(&mut self, exemplar: RefExemplar, capacity: usize) {
        if capacity == 0 {
            return;
        }
        while self.entries.len() >= capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(exemplar);
    }
}

/// The metrics store. `Send + Sync`: share it as `Arc<Db>`.
#[derive(Debug)]
pub struct Db {
    pub(crate) dir: PathBuf,
    pub(crate) blocks_dir: PathBuf,
    pub(crate) options: DbOptions,
    pub(crate) block_range: i64,
    pub(crate) head: Head,
    /// Sorted by min time.
    pub(crate) blocks: RwLock<Vec<Arc<Block>>>,
    pub(crate) wal: Wal,
    /// Appenders hold it shared around `wal.append` and the segment bookkeeping; a
    /// block cut holds it exclusively to rotate, so it sees every older segment's
    /// newest sample time.
    pub(crate) wal_gate: RwLock<()>,
    /// Newest sample time (ms) logged in each WAL segment.
    pub(crate) segment_max_time: Mutex<BTreeMap<SegmentId, i64>>,
    pub(crate) exemplars: Mutex<ExemplarRing>,
    pub(crate) metadata: Mutex<HashMap<String, MetricMetadata>>,
    pub(crate) metadata_dropped: AtomicU64,
    /// Appends between applying to the head and writing their WAL record.
    pub(crate) inflight: Inflight,
    /// Head byte estimates, computed by maintenance (walking the head is too costly
    /// for every `stats` call).
    pub(crate) head_memory: Mutex<HeadMemory>,
    /// Test hook: the next block cut fails before writing its block.
    #[cfg(test)]
    pub(crate) fail_next_cut: std::sync::atomic::AtomicBool,
    /// One maintenance (cut, compaction, retention) at a time.
    pub(crate) maintenance: Mutex<()>,
}

/// Lowest ms timestamp `t` with `t * 1e6 >= ns`.
pub(crate) fn ceil_millis(ns: Timestamp) -> i64 {
    let floor = to_millis(ns);
    if from_millis(floor) < ns {
        floor.saturating_add(1)
    } else {
        floor
    }
}

impl Db {
    /// Opens or creates the store in `dir` (creates `dir/wal`, `dir/blocks`), loads
    /// blocks (a corrupt one is moved aside with a warning), replays the WAL.
    pub fn open(dir: &Path, options: DbOptions) -> Result<Db> {
        let blocks_dir = dir.join("blocks");
        std::fs::create_dir_all(&blocks_dir)?;
        let blocks = load_blocks(&blocks_dir, &options.group_cache)?;
        let boundary = blocks
            .iter()
            .map(|b| b.meta().range_end)
            .max()
            .unwrap_or(i64::MIN)
            .max(crate::compact::read_boundary(dir));
        let (wal, repair) = Wal::open(&dir.join("wal"), options.wal.clone())?;
        if repair != sightline_wal::RepairReport::default() {
            tracing::warn!(
                truncated_bytes = repair.truncated_bytes,
                removed_segments = repair.removed_segments,
                "wal tail repaired at open"
            );
        }
        let block_range = duration_millis(options.block_range).max(1);
        let db = Db {
            dir: dir.to_path_buf(),
            blocks_dir,
            block_range,
            head: Head::new(
                block_range,
                boundary,
                HeadChunkFiles::open(&dir.join(HEAD_CHUNKS_DIR), block_range)?,
            ),
            blocks: RwLock::new(blocks),
            wal,
            wal_gate: RwLock::new(()),
            segment_max_time: Mutex::new(BTreeMap::new()),
            exemplars: Mutex::new(ExemplarRing::default()),
            metadata: Mutex::new(HashMap::new()),
            metadata_dropped: AtomicU64::new(0),
            inflight: Inflight::default(),
            head_memory: Mutex::new(HeadMemory::default()),
            #[cfg(test)]
            fail_next_cut: std::sync::atomic::AtomicBool::new(false),
            maintenance: Mutex::new(()),
            options,
        };
        db.replay()?;
        db.refresh_head_memory();
        Ok(db)
    }

    /// Appends all valid samples/exemplars/metadata of `request`; returns once the WAL
    /// record is durable. Samples that cannot be stored are counted in the report, not
    /// an error. Blocking.
    pub fn append(&self, request: &WriteRequest) -> Result<AppendReport> {
        self.append_series(&request.series_refs(), &request.metadata)
    }

    /// [`Db::append`] for series whose labels may be borrowed from the request buffer
    /// (owned copies are made only for series the head has never seen).
    pub fn append_series<L: LabelSet>(
        &self,
        request_series: &[SeriesRef<'_, L>],
        request_metadata: &[MetricMetadata],
    ) -> Result<AppendReport> {
        let now = to_millis(sightline_model::time::now());
        let future_limit = now.saturating_add(duration_millis(self.options.future_tolerance));
        let window = duration_millis(self.options.out_of_order_window);
        let mut report = AppendReport::default();
        let mut tally = RejectionTally::default();
        let mut new_series: Vec<(u64, Labels)> = Vec::new();
        let mut unlogged = Vec::new();
        let mut samples: Vec<RefSample> =
            Vec::with_capacity(request_series.iter().map(|ts| ts.samples.len()).sum());
        let mut exemplars: Vec<RefExemplar> = Vec::new();

        // Registered before touching the head: a concurrent request that finds our
        // samples there as duplicates waits for our record (see `inflight`).
        let mut ticket = self.inflight.begin();
        // Whether something counted as accepted was already in the store: then the
        // record that put it there must be durable before we acknowledge.
        let mut repeated = false;
        let wanted = |ts: &SeriesRef<'_, L>| {
            let has_data = !ts.samples.is_empty() || !ts.exemplars.is_empty();
            ts.labels.label_count() > 0 && has_data
        };
        let label_sets: Vec<Option<&L>> = request_series
            .iter()
            .map(|ts| wanted(ts).then_some(&ts.labels))
            .collect();
        // One appendable window for the whole request (see `AppendGuard::append`).
        let head_max = self.head.newest_time();
        // Everything done with one series of the request once it is found.
        let mut append_to =
            |ts: &SeriesRef<'_, L>, series: &Arc<MemSeries>, guard: &AppendGuard<'_>| {
                if !series.logged.load(std::sync::atomic::Ordering::Acquire) {
                    new_series.push((u64::from(series.id), ts.labels.to_labels()));
                    unlogged.push(Arc::clone(series));
                }
                for sample in ts.samples {
                    let t = to_millis(sample.timestamp);
                    let outcome = if t > future_limit {
                        SampleOutcome::Rejected(RejectReason::TooFarInFuture)
                    } else {
                        guard.append(series, t, sample.value, window, head_max)
                    };
                    match outcome {
                        SampleOutcome::Appended => {
                            report.samples_accepted += 1;
                            samples.push(RefSample {
                                series: u64::from(series.id),
                                t,
                                v: sample.value,
                            });
                        }
                        SampleOutcome::Duplicate => {
                            report.samples_accepted += 1;
                            repeated = true;
                        }
                        SampleOutcome::Rejected(reason) => {
                            tally.add(reason, 1, || example(&ts.labels, t));
                        }
                    }
                }
                for exemplar in ts.exemplars {
                    let t = to_millis(exemplar.timestamp);
                    if t <= future_limit && guard.accept_exemplar(series, t) {
                        report.exemplars_accepted += 1;
                        exemplars.push(RefExemplar {
                            series: u64::from(series.id),
                            t,
                            v: exemplar.value,
                            labels: exemplar.labels.clone(),
                        });
                    }
                }
            };
        let mut guard = self.head.append_guard();
        let missing = guard.resolve_each(&label_sets, |index, series| {
            append_to(&request_series[index], series, &guard);
        });
        if !missing.is_empty() {
            drop(guard);
            let mut create = self.head.create_guard();
            let mut created = Vec::with_capacity(missing.len());
            let mut over_limit = Vec::new();
            for index in missing {
                match create.get_or_create(&request_series[index].labels, self.options.max_series) {
                    Some((series, is_new)) => {
                        created.push((index, series, is_new));
                    }
                    None => over_limit.push(index),
                }
            }
            guard = create.downgrade();
            for (index, series, _) in &created {
                append_to(&request_series[*index], series, &guard);
            }
            report.series_created += created.iter().filter(|(_, _, is_new)| *is_new).count() as u64;
            for index in over_limit {
                let ts = &request_series[index];
                let t = ts.samples.first().map_or(0, |s| to_millis(s.timestamp));
                tally.add(RejectReason::SeriesLimit, ts.samples.len() as u64, || {
                    example(&ts.labels, t)
                });
            }
        }
        drop(guard);
        report.rejected = tally.into_rejections();

        let mut changed_metadata = Vec::new();
        if !request_metadata.is_empty() {
            let mut map = self.metadata.lock();
            for m in request_metadata {
                match metadata_limits::update(&mut map, m) {
                    MetadataUpdate::Changed(stored) => changed_metadata.push(stored),
                    MetadataUpdate::Unchanged => repeated |= !m.metric_family_name.is_empty(),
                    MetadataUpdate::Dropped => {
                        self.metadata_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        if !exemplars.is_empty() {
            let mut ring = self.exemplars.lock();
            for exemplar in &exemplars {
                ring.push(exemplar.clone(), self.options.max_exemplars);
            }
        }

        let mut record = RecordBuilder::default();
        record.series(new_series.iter().map(|(r, l)| (*r, l)));
        record.samples(&samples);
        record.exemplars(&exemplars);
        record.metadata(&changed_metadata);
        if !record.is_empty() {
            let newest = samples.iter().map(|s| s.t).max();
            self.log(&record.take(), newest)?;
            for series in &unlogged {
                series
                    .logged
                    .store(true, std::sync::atomic::Ordering::Release);
            }
        }
        ticket.end();
        if repeated {
            // The repeated data may come from an append still before its WAL write,
            // or from one whose write failed (the WAL is poisoned then): wait for
            // those writes, then for their durability.
            let horizon = self.inflight.horizon();
            self.inflight.wait_before(horizon);
            self.wal.wait_durable()?;
        }
        Ok(report)
    }

    /// Appends one record to the WAL (durable on return) and notes the newest sample
    /// time of its segment.
    pub(crate) fn log(&self, record: &[u8], newest_sample: Option<i64>) -> Result<()> {
        let _gate = self.wal_gate.read();
        let segment = self.wal.append(record)?;
        let mut segments = self.segment_max_time.lock();
        let entry = segments.entry(segment).or_insert(i64::MIN);
        *entry = (*entry).max(newest_sample.unwrap_or(i64::MIN));
        Ok(())
    }

    fn blocks_snapshot(&self) -> Vec<Arc<Block>> {
        self.blocks.read().clone()
    }

    pub(crate) fn overlapping_blocks(&self, mint: i64, maxt: i64) -> Vec<Arc<Block>> {
        self.blocks_snapshot()
            .into_iter()
            .filter(|b| b.meta().max_time >= mint && b.meta().min_time <= maxt)
            .collect()
    }

    pub(crate) fn head_overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.head
            .time_range()
            .is_some_and(|(min, max)| max >= mint && min <= maxt)
    }

    /// Sorted label names of matching series (all series for no matchers).
    pub fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<String>> {
        let (mint, maxt) = (ceil_millis(mint), to_millis(maxt));
        let mut out = BTreeSet::new();
        for block in self.overlapping_blocks(mint, maxt) {
            let ids = block.index().select(matchers);
            out.extend(
                block
                    .index()
                    .label_names(&ids)
                    .iter()
                    .map(|s| s.to_string()),
            );
        }
        if self.head_overlaps(mint, maxt) {
            out.extend(self.head.label_names(matchers));
        }
        Ok(out.into_iter().collect())
    }

    /// Sorted values of label `name` among matching series.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<String>> {
        let (mint, maxt) = (ceil_millis(mint), to_millis(maxt));
        let mut out = BTreeSet::new();
        for block in self.overlapping_blocks(mint, maxt) {
            let ids = block.index().select(matchers);
            out.extend(
                block
                    .index()
                    .label_values(name, &ids)
                    .iter()
                    .map(|s| s.to_string()),
            );
        }
        if self.head_overlaps(mint, maxt) {
            out.extend(self.head.label_values(name, matchers));
        }
        Ok(out.into_iter().collect())
    }

    /// Latest metadata per metric family name, sorted by name.
    pub fn metadata(&self) -> Vec<MetricMetadata> {
        let mut out: Vec<MetricMetadata> = self.metadata.lock().values().cloned().collect();
        out.sort_by(|a, b| a.metric_family_name.cmp(&b.metric_family_name));
        out
    }

    /// Exemplars of matching head series in `[mint, maxt]`, oldest first per series.
    pub fn exemplars(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<(Labels, Vec<Exemplar>)>> {
        let (mint, maxt) = (ceil_millis(mint), to_millis(maxt));
        let ids = self.head.select_ids(matchers);
        let mut by_series: BTreeMap<u64, Vec<Exemplar>> = BTreeMap::new();
        for exemplar in &self.exemplars.lock().entries {
            let in_range = exemplar.t >= mint && exemplar.t <= maxt;
            let matching = u32::try_from(exemplar.series).is_ok_and(|id| ids.contains(id));
            if in_range && matching {
                by_series
                    .entry(exemplar.series)
                    .or_default()
                    .push(Exemplar {
                        labels: exemplar.labels.clone(),
                        timestamp: from_millis(exemplar.t),
                        value: exemplar.v,
                    });
            }
        }
        let mut out: Vec<(Labels, Vec<Exemplar>)> = by_series
            .into_iter()
            .filter_map(|(id, mut exemplars)| {
                let labels = self.head.labels_by_id(u32::try_from(id).ok()?)?;
                exemplars.sort_by_key(|e| e.timestamp);
                Some((labels, exemplars))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    pub fn stats(&self) -> DbStats {
        let memory = *self.head_memory.lock();
        let counts = self.head.counts();
        let blocks = self.blocks_snapshot();
        let wal = self.wal.stats();
        let head_range = self.head.time_range();
        let block_min = blocks.iter().map(|b| b.meta().min_time).min();
        let block_max = blocks.iter().map(|b| b.meta().max_time).max();
        let min_time = [block_min, head_range.map(|r| r.0)]
            .into_iter()
            .flatten()
            .min();
        let max_time = [block_max, head_range.map(|r| r.1)]
            .into_iter()
            .flatten()
            .max();
        let overhead = memory.series_bytes + memory.index_bytes;
        DbStats {
            head_series: counts.series,
            head_chunks: counts.chunks,
            head_samples: counts.samples,
            blocks: blocks.len() as u64,
            block_bytes: blocks.iter().map(|b| b.file_bytes()).sum(),
            wal_segments: wal.segments,
            wal_bytes: wal.bytes,
            wal_fsyncs_total: wal.fsyncs_total,
            wal_fsync_seconds_total: wal.fsync_seconds_total,
            min_time: min_time.map(from_millis),
            max_time: max_time.map(from_millis),
            head_bytes: (overhead + memory.sample_bytes) as u64,
            head_series_overhead_bytes: overhead as u64,
            samples_in_blocks: blocks.iter().map(|b| b.meta().num_samples).sum(),
            metadata_dropped_total: self.metadata_dropped.load(Ordering::Relaxed),
        }
    }

    /// Recomputes the head's byte estimates for [`Db::stats`] (walks every series).
    pub(crate) fn refresh_head_memory(&self) {
        let memory = self.head.memory();
        *self.head_memory.lock() = memory;
    }

    /// Makes all WAL writes durable (called at shutdown).
    pub fn close(&self) -> Result<()> {
        self.wal.sync()?;
        Ok(())
    }
}

/// Merges sample lists of one series from several sources: ascending, one sample per
/// timestamp (the first source wins).
pub(crate) fn merge_parts(mut parts: Vec<Vec<(i64, f64)>>) -> Vec<(i64, f64)> {
    if parts.len() == 1 {
        return parts.pop().unwrap_or_default();
    }
    // Usually the parts come from consecutive blocks (then the head) and follow each
    // other in time: concatenating them is the merge.
    let consecutive = parts
        .windows(2)
        .all(|pair| match (pair[0].last(), pair[1].first()) {
            (Some(last), Some(first)) => last.0 < first.0,
            _ => false,
        })
        && parts
            .iter()
            .all(|part| part.windows(2).all(|w| w[0].0 < w[1].0));
    if consecutive {
        return parts.concat();
    }
    let mut all: Vec<(i64, f64)> = parts.into_iter().flatten().collect();
    all.sort_by_key(|s| s.0);
    all.dedup_by_key(|s| s.0);
    all
}

/// Opens every block under `dir`: temp files of an interrupted write are deleted,
/// corrupt blocks renamed to `*.corrupt` with a warning.
fn load_blocks(dir: &Path, cache: &Arc<GroupCache>) -> Result<Vec<Arc<Block>>> {
    let mut blocks = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if extension == TMP_EXTENSION {
            tracing::warn!(path = %path.display(), "removing half-written block");
            std::fs::remove_file(&path)?;
            continue;
        }
        if extension != BLOCK_EXTENSION {
            continue;
        }
        match Block::open(&path) {
            Ok(block) => blocks.push(Arc::new(block.with_cache(Arc::clone(cache)))),
            Err(Error::Corrupt(reason)) => {
                let aside = path.with_extension("corrupt");
                tracing::warn!(path = %path.display(), %reason, "corrupt block moved aside");
                std::fs::rename(&path, &aside)?;
            }
            Err(error) => return Err(error),
        }
    }
    blocks.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
    Ok(blocks)
}
