//! The read path: [`Db::plan_select`] resolves matchers to the series of every
//! overlapping block and of the head, from indexes and chunk metadata only, merged by
//! label set; the caller checks its limits on the plan ([`Selection::num_series`],
//! [`Selection::samples_surely_in`]) and then [`Selection::load`]s the samples,
//! decoding only the chunks that overlap the window.

use std::cmp::Ordering;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use sightline_model::time::{from_millis, to_millis};
use sightline_model::{Labels, Sample, Timestamp};

use crate::block::{Block, LastGroup};
use crate::db::{Db, SeriesSamples, ceil_millis};
use crate::head::MemSeries;
use crate::matcher::Matcher;
use crate::series_codec::ChunkDecoder;
use crate::{Error, Result};

/// One series and its samples (milliseconds, ascending, unique timestamps).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesMillis {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// Where one part of a series' samples lives.
#[derive(Debug)]
enum Part {
    /// Series `id` of `blocks[block]`.
    Block {
        block: u32,
        id: u32,
    },
    Head(Arc<MemSeries>),
}

#[derive(Debug)]
struct PlannedSeries {
    labels: Labels,
    /// Its parts in `Selection::parts`, in source order (blocks by time, then head).
    parts: std::ops::Range<usize>,
}

/// The series a select will read and where their samples are; nothing decoded yet.
#[derive(Debug)]
pub struct Selection<'a> {
    db: &'a Db,
    mint: i64,
    maxt: i64,
    blocks: Vec<Arc<Block>>,
    parts: Vec<Part>,
    /// Sorted by label set, unique.
    series: Vec<PlannedSeries>,
}

/// A candidate part while planning: a block series, or an entry of the head list.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    source: u32,
    id: u32,
}

const HEAD_SOURCE: u32 = u32::MAX;

/// Reads planned to decode fewer samples than this use one thread: starting threads
/// costs more than it saves on a dashboard's short windows. A thread starts in tens of
/// microseconds; this many samples take a couple of milliseconds to decode and reduce
/// (a rollup runs on the decoding threads).
const PARALLEL_LOAD_MIN_SAMPLES: usize = 32_768;

/// Most threads one read decodes with.
const MAX_LOAD_THREADS: usize = 4;

impl Db {
    /// Plans reading the series matching all `matchers` with samples in
    /// `[mint, maxt]` (milliseconds, inclusive): indexes and chunk time ranges only.
    pub fn plan_select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Selection<'_> {
        let mut selection = Selection {
            db: self,
            mint,
            maxt,
            blocks: Vec::new(),
            parts: Vec::new(),
            series: Vec::new(),
        };
        if mint > maxt {
            return selection;
        }
        let mut candidates = Vec::new();
        for block in self.overlapping_blocks(mint, maxt) {
            let source = selection.blocks.len() as u32;
            let before = candidates.len();
            for id in &block.index().select(matchers) {
                if block.has_chunks_in(id, mint, maxt) {
                    candidates.push(Candidate { source, id });
                }
            }
            if candidates.len() > before {
                selection.blocks.push(block);
            }
        }
        let mut head_series: Vec<(Labels, Arc<MemSeries>)> = Vec::new();
        if self.head_overlaps(mint, maxt) {
            head_series = self.head.matching(matchers);
            head_series.retain(|(_, series)| self.head.series_has_samples_in(series, mint, maxt));
            candidates.extend((0..head_series.len() as u32).map(|id| Candidate {
                source: HEAD_SOURCE,
                id,
            }));
        }
        // Stable: equal label sets keep source order, so the first source wins when
        // parts overlap. Each block's ids are already in label order.
        let compare = |a: &Candidate, b: &Candidate| -> Ordering {
            if a.source == b.source && a.source != HEAD_SOURCE {
                return a.id.cmp(&b.id);
            }
            let blocks = &selection.blocks;
            match (a.source, b.source) {
                (HEAD_SOURCE, HEAD_SOURCE) => head_series[a.id as usize]
                    .0
                    .cmp(&head_series[b.id as usize].0),
                (HEAD_SOURCE, s) => head_pairs(&head_series[a.id as usize].0)
                    .cmp(blocks[s as usize].label_pairs(b.id)),
                (s, HEAD_SOURCE) => blocks[s as usize]
                    .label_pairs(a.id)
                    .cmp(head_pairs(&head_series[b.id as usize].0)),
                (s, t) => blocks[s as usize]
                    .label_pairs(a.id)
                    .cmp(blocks[t as usize].label_pairs(b.id)),
            }
        };
        candidates.sort_by(compare);
        let mut runs = Vec::new();
        let mut start = 0;
        while start < candidates.len() {
            let mut end = start + 1;
            while end < candidates.len() && compare(&candidates[start], &candidates[end]).is_eq() {
                end += 1;
            }
            runs.push(start..end);
            start = end;
        }
        for run in runs {
            let mut labels = None;
            let first_part = selection.parts.len();
            for candidate in &candidates[run.clone()] {
                selection.parts.push(match candidate.source {
                    HEAD_SOURCE => {
                        let (head_labels, series) = &mut head_series[candidate.id as usize];
                        labels = Some(std::mem::take(head_labels));
                        Part::Head(Arc::clone(series))
                    }
                    block => Part::Block {
                        block,
                        id: candidate.id,
                    },
                });
            }
            let labels = labels.unwrap_or_else(|| {
                let first = candidates[run.start];
                selection.blocks[first.source as usize].labels(first.id)
            });
            selection.series.push(PlannedSeries {
                labels,
                parts: first_part..selection.parts.len(),
            });
        }
        selection
    }

    /// Series matching all matchers with their samples in `[mint, maxt]` (inclusive),
    /// sorted by labels. Empty series are omitted.
    pub fn select(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<SeriesSamples>> {
        let selection = self.plan_select(matchers, ceil_millis(mint), to_millis(maxt));
        Ok(selection
            .load(usize::MAX)?
            .into_iter()
            .map(|series| SeriesSamples {
                labels: series.labels,
                samples: series
                    .samples
                    .into_iter()
                    .map(|(t, v)| Sample {
                        timestamp: from_millis(t),
                        value: v,
                    })
                    .collect(),
            })
            .collect())
    }

    /// Label sets of series matching all matchers that have samples in `[mint, maxt]`.
    pub fn series(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<Labels>> {
        let selection = self.plan_select(matchers, ceil_millis(mint), to_millis(maxt));
        Ok(selection.into_labels())
    }
}

fn head_pairs(labels: &Labels) -> impl Iterator<Item = (&str, &str)> {
    labels
        .iter()
        .map(|label| (label.name.as_str(), label.value.as_str()))
}

impl Selection<'_> {
    /// Distinct series with chunks (so, almost surely, samples) in the window.
    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// Samples surely in the window, counted from chunk metadata without decoding: a
    /// lower bound of what [`Selection::load`] returns (exact when every chunk lies
    /// inside the window; parts of one series are assumed not to overlap in time).
    pub fn samples_surely_in(&self) -> u64 {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Block { block, id } => {
                    self.blocks[*block as usize].samples_surely_in(*id, self.mint, self.maxt)
                }
                Part::Head(series) => self
                    .db
                    .head
                    .series_samples_surely_in(series, self.mint, self.maxt),
            })
            .sum()
    }

    /// The planned label sets, sorted.
    pub fn into_labels(self) -> Vec<Labels> {
        self.series.into_iter().map(|s| s.labels).collect()
    }

    /// Decodes the samples in the window, series by series. Fails with
    /// [`Error::SampleLimit`] before decoding anything when [`Self::samples_surely_in`]
    /// exceeds `max_samples`, else as soon as the samples decoded exceed it (so at most
    /// one series' window beyond the limit is ever held per decoding thread).
    ///
    /// A large read is decoded by several threads, each a contiguous run of series
    /// (series sit in label order in blocks, so each thread mostly decompresses its own
    /// groups): decoding is most of a long-range query's time, and a query otherwise
    /// uses one core.
    pub fn load(self, max_samples: usize) -> Result<Vec<SeriesMillis>> {
        Ok(self
            .load_map(max_samples, |_, samples| {
                Ok::<_, Error>(Some(std::mem::take(samples)))
            })?
            .into_iter()
            .map(|(labels, samples)| SeriesMillis { labels, samples })
            .collect())
    }

    /// [`Self::load`], handing each series' samples to `map` as soon as they are
    /// decoded (on the decoding thread) and keeping only what it returns: a caller that
    /// reduces a series to a few figures never holds all the samples of the read at
    /// once, and its reduction runs on the decoding threads. `map` sees series in label
    /// order within a thread, never an empty one; what it returns comes back in label
    /// order, `None`s left out. Its buffer is reused for the next series when left in
    /// place. The first error of `map` ends the read.
    pub fn load_map<T, E, F>(self, max_samples: usize, map: F) -> Result<Vec<(Labels, T)>, E>
    where
        T: Send,
        E: From<Error> + Send,
        F: Fn(&Labels, &mut Vec<(i64, f64)>) -> Result<Option<T>, E> + Sync,
    {
        self.load_in_threads(max_samples, None, &map)
    }

    /// [`Self::load_map`] with `threads` decoding threads (`None`: chosen by size).
    pub(crate) fn load_in_threads<T, E, F>(
        mut self,
        max_samples: usize,
        threads: Option<usize>,
        map: &F,
    ) -> Result<Vec<(Labels, T)>, E>
    where
        T: Send,
        E: From<Error> + Send,
        F: Fn(&Labels, &mut Vec<(i64, f64)>) -> Result<Option<T>, E> + Sync,
    {
        if usize::try_from(self.samples_surely_in()).map_or(true, |n| n > max_samples) {
            return Err(Error::SampleLimit {
                limit: max_samples,
                loaded: 0,
            }
            .into());
        }
        let series = std::mem::take(&mut self.series);
        let sizes: Vec<usize> = series
            .iter()
            .map(|planned| self.capacity_hint(&self.parts[planned.parts.clone()]))
            .collect();
        let total: usize = sizes.iter().sum();
        let threads = threads.unwrap_or_else(|| {
            if total < PARALLEL_LOAD_MIN_SAMPLES {
                return 1;
            }
            std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(MAX_LOAD_THREADS)
        });
        let loaded = AtomicUsize::new(0);
        if threads <= 1 {
            return self.load_series(series, &loaded, max_samples, map);
        }
        // Contiguous runs of about equal samples.
        let mut runs: Vec<Vec<PlannedSeries>> = Vec::with_capacity(threads);
        let per_run = total.div_ceil(threads);
        let mut run_samples = 0;
        for (planned, size) in series.into_iter().zip(sizes) {
            if runs.is_empty() || (run_samples >= per_run && runs.len() < threads) {
                runs.push(Vec::new());
                run_samples = 0;
            }
            run_samples += size;
            if let Some(run) = runs.last_mut() {
                run.push(planned);
            }
        }
        let this = &self;
        let loaded = &loaded;
        let results: Vec<Result<Vec<(Labels, T)>, E>> = std::thread::scope(|scope| {
            let mut runs = runs.into_iter();
            let first = runs.next().unwrap_or_default();
            let others: Vec<_> = runs
                .map(|run| scope.spawn(move || this.load_series(run, loaded, max_samples, map)))
                .collect();
            let mut results = vec![this.load_series(first, loaded, max_samples, map)];
            for handle in others {
                results.push(handle.join().unwrap_or_else(|_| {
                    Err(Error::Corrupt("a decoding thread panicked".into()).into())
                }));
            }
            results
        });
        let mut out = Vec::new();
        for result in results {
            out.extend(result?);
        }
        Ok(out)
    }

    /// Decodes `series` in order, adding their samples to `loaded` (shared by all
    /// decoding threads of one load), and keeps what `map` makes of each.
    fn load_series<T, E, F>(
        &self,
        series: Vec<PlannedSeries>,
        loaded: &AtomicUsize,
        max_samples: usize,
        map: &F,
    ) -> Result<Vec<(Labels, T)>, E>
    where
        E: From<Error>,
        F: Fn(&Labels, &mut Vec<(i64, f64)>) -> Result<Option<T>, E>,
    {
        let (mint, maxt) = (self.mint, self.maxt);
        let mut decoder = ChunkDecoder::default();
        let mut last_groups: Vec<LastGroup> =
            self.blocks.iter().map(|_| LastGroup::for_query()).collect();
        let mut out = Vec::with_capacity(series.len());
        // One buffer for every series of this thread, unless `map` takes it.
        let mut samples: Vec<(i64, f64)> = Vec::new();
        for planned in series {
            let parts = &self.parts[planned.parts];
            samples.clear();
            samples.reserve(self.capacity_hint(parts));
            let mut ordered = true;
            for part in parts {
                let before = samples.len();
                match part {
                    Part::Block { block, id } => {
                        let index = *block as usize;
                        self.blocks[index].samples_in(
                            *id,
                            (mint, maxt),
                            &mut decoder,
                            &mut last_groups[index],
                            &mut samples,
                        )?;
                    }
                    Part::Head(series) => {
                        samples.extend(self.db.head.series_samples(series, mint, maxt)?);
                    }
                }
                if before > 0
                    && samples.len() > before
                    && samples[before].0 <= samples[before - 1].0
                {
                    ordered = false;
                }
            }
            if !ordered {
                // Stable: of samples sharing a timestamp the first source's is kept.
                samples.sort_by_key(|s| s.0);
                samples.dedup_by_key(|s| s.0);
            }
            let total = loaded
                .fetch_add(samples.len(), AtomicOrdering::Relaxed)
                .saturating_add(samples.len());
            if total > max_samples {
                return Err(Error::SampleLimit {
                    limit: max_samples,
                    loaded: total,
                }
                .into());
            }
            if samples.is_empty() {
                continue;
            }
            if let Some(kept) = map(&planned.labels, &mut samples)? {
                out.push((planned.labels, kept));
            }
        }
        Ok(out)
    }

    /// Samples in the chunks of `parts` that overlap the window (block parts only).
    fn capacity_hint(&self, parts: &[Part]) -> usize {
        parts
            .iter()
            .map(|part| match part {
                Part::Block { block, id } => self.blocks[*block as usize]
                    .chunks(*id)
                    .iter()
                    .filter(|c| c.max_time >= self.mint && c.min_time <= self.maxt)
                    .map(|c| c.num_samples as usize)
                    .sum(),
                Part::Head(_) => 0,
            })
            .sum()
    }
}
