//! [`TenantQueryable`]: one tenant's metrics store as the PromQL engine sees it.
//!
//! The engine speaks milliseconds, the store nanoseconds: the conversion happens here
//! and nowhere else. A tenant that never wrote is an empty store, not an error. The
//! per-query limits that must hold *before* data is read are checked here, since the
//! engine loads every selector's data before evaluating: the query's deadline, the
//! series it selects (`query.max_series`, checked from labels alone, before any
//! sample is read) and the samples it loads (`query.max_samples`, checked slice by
//! slice of time, so memory stays near the limit whatever the query asks for).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use sightline_model::Labels;
use sightline_model::time::{NANOS_PER_MILLI, to_millis};
use sightline_promql::{Error, Matcher, Millis, Queryable, Result, StoredSeries};
use sightline_tsdb::Db;

/// Phase named in timeout errors raised while reading the store (Prometheus' name for
/// the part of a query that selects its data).
const SELECT_PHASE: &str = "query preparation";

/// Limits one query's reads must stay within.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    /// Most series all selectors of the query may select together.
    pub(crate) max_series: usize,
    /// Most samples all selectors of the query may load together.
    pub(crate) max_samples: usize,
    /// When the query must be done; `None` when its timeout cannot be represented.
    pub(crate) deadline: Option<Instant>,
    /// The query's whole timeout, for the message when the deadline passes.
    pub(crate) timeout_seconds: f64,
}

/// One tenant's store for one query; counts what the query has read so far.
#[derive(Debug)]
pub(crate) struct TenantQueryable {
    /// `None`: the tenant has never written.
    db: Option<Arc<Db>>,
    limits: ReadLimits,
    selected_series: AtomicUsize,
    loaded_samples: AtomicUsize,
}

impl TenantQueryable {
    pub(crate) fn new(db: Option<Arc<Db>>, limits: ReadLimits) -> TenantQueryable {
        TenantQueryable {
            db,
            limits,
            selected_series: AtomicUsize::new(0),
            loaded_samples: AtomicUsize::new(0),
        }
    }

    fn check_deadline(&self) -> Result<()> {
        if self
            .limits
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            return Err(Error::Timeout {
                phase: SELECT_PHASE,
                limit_seconds: self.limits.timeout_seconds,
            });
        }
        Ok(())
    }

    /// Adds `count` to `total`; errors with `message(new total)` past `limit`.
    fn count_against(
        total: &AtomicUsize,
        count: usize,
        limit: usize,
        message: impl FnOnce(usize) -> String,
    ) -> Result<()> {
        let now = total
            .fetch_add(count, Ordering::Relaxed)
            .saturating_add(count);
        if now > limit {
            return Err(Error::Limit(message(now)));
        }
        Ok(())
    }
}

/// `[mint, maxt]` in milliseconds as the store's inclusive nanosecond range.
fn nanos_range(mint: Millis, maxt: Millis) -> (i64, i64) {
    (
        mint.saturating_mul(NANOS_PER_MILLI),
        maxt.saturating_mul(NANOS_PER_MILLI)
            .saturating_add(NANOS_PER_MILLI - 1),
    )
}

impl Queryable for TenantQueryable {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: Millis,
        maxt: Millis,
    ) -> Result<Vec<StoredSeries>> {
        self.check_deadline()?;
        let Some(db) = &self.db else {
            return Ok(Vec::new());
        };
        let (mint_ns, maxt_ns) = nanos_range(mint, maxt);
        let max_series = self.limits.max_series;
        let series = db
            .series(matchers, mint_ns, maxt_ns)
            .map_err(|e| Error::Storage(e.to_string()))?;
        Self::count_against(&self.selected_series, series.len(), max_series, |n| {
            format!(
                "query would select at least {} series; limit is {} (query.max_series)",
                thousands(n),
                thousands(max_series)
            )
        })?;
        drop(series);
        self.select_in_slices(db, matchers, mint, maxt)
    }
}

impl TenantQueryable {
    /// Reads `[mint, maxt]` in consecutive time slices, counting every slice's samples
    /// against `query.max_samples` before reading the next, so a query over more data
    /// than the limit fails after reading about the limit, not all of it. The first
    /// slice is short; the next ones are sized from the sample rate seen so far to
    /// fit in half of what the budget has left (one slice when the data is sparse).
    fn select_in_slices(
        &self,
        db: &Db,
        matchers: &[Matcher],
        mint: Millis,
        maxt: Millis,
    ) -> Result<Vec<StoredSeries>> {
        let max_samples = self.limits.max_samples;
        let mut by_labels: BTreeMap<Labels, Vec<(Millis, f64)>> = BTreeMap::new();
        let mut slice_start = mint;
        let mut slice_length = FIRST_SLICE_MILLIS;
        let (mut read_millis, mut read_samples) = (0i64, 0usize);
        while slice_start <= maxt {
            self.check_deadline()?;
            let slice_end = slice_start
                .saturating_add(slice_length.saturating_sub(1))
                .min(maxt);
            let (start_ns, end_ns) = nanos_range(slice_start, slice_end);
            let part = db
                .select(matchers, start_ns, end_ns)
                .map_err(|e| Error::Storage(e.to_string()))?;
            let samples: usize = part.iter().map(|series| series.samples.len()).sum();
            Self::count_against(&self.loaded_samples, samples, max_samples, |_| {
                format!(
                    "query processing would load too many samples into memory in query \
                     execution; limit is {} (query.max_samples)",
                    thousands(max_samples)
                )
            })?;
            for series in part {
                let points = series
                    .samples
                    .iter()
                    .map(|sample| (to_millis(sample.timestamp), sample.value));
                match by_labels.get_mut(&series.labels) {
                    Some(existing) => existing.extend(points),
                    None => {
                        by_labels.insert(series.labels, points.collect());
                    }
                }
            }
            read_millis = read_millis.saturating_add(slice_end.saturating_sub(slice_start) + 1);
            read_samples += samples;
            let Some(next_start) = slice_end.checked_add(1) else {
                break;
            };
            slice_start = next_start;
            let budget_left =
                max_samples.saturating_sub(self.loaded_samples.load(Ordering::Relaxed));
            slice_length = next_slice_millis(read_samples, read_millis, budget_left);
        }
        Ok(by_labels
            .into_iter()
            .map(|(labels, samples)| StoredSeries { labels, samples })
            .collect())
    }
}

/// Length of the first slice a selector reads: long enough for an instant query's
/// lookback in one read, short enough to learn the sample rate cheaply.
const FIRST_SLICE_MILLIS: Millis = 15 * 60 * 1000;

/// How long the next slice may be so that, at the rate seen so far (`samples` in
/// `millis`), it loads at most half of `budget_left`; unbounded when nothing was seen.
fn next_slice_millis(samples: usize, millis: Millis, budget_left: usize) -> Millis {
    if samples == 0 {
        return Millis::MAX;
    }
    let per_milli = samples as f64 / millis.max(1) as f64;
    let length = (budget_left as f64 / 2.0) / per_milli;
    // At least 1s, so a budget nearly spent ends in a few reads (and an error).
    if length >= Millis::MAX as f64 {
        Millis::MAX
    } else {
        (length as Millis).max(1_000)
    }
}

/// `11000` → `11,000`, as Prometheus writes limits in its messages.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use sightline_model::{Labels, Sample, TimeSeries, WriteRequest};
    use sightline_promql::MatchOp;

    use super::*;

    fn limits(max_series: usize, max_samples: usize) -> ReadLimits {
        ReadLimits {
            max_series,
            max_samples,
            deadline: None,
            timeout_seconds: 120.0,
        }
    }

    fn db_with(series: &[(&str, &[i64])]) -> (tempfile::TempDir, Arc<Db>) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), sightline_tsdb::DbOptions::default()).unwrap();
        let request = WriteRequest {
            series: series
                .iter()
                .map(|(job, times)| TimeSeries {
                    labels: Labels::from_pairs([("__name__", "up"), ("job", *job)]),
                    samples: times
                        .iter()
                        .map(|t| Sample {
                            timestamp: t * NANOS_PER_MILLI,
                            value: 1.0,
                        })
                        .collect(),
                    exemplars: Vec::new(),
                })
                .collect(),
            metadata: Vec::new(),
        };
        db.append(&request).unwrap();
        (dir, Arc::new(db))
    }

    fn up() -> Vec<Matcher> {
        vec![Matcher::new(MatchOp::Equal, "__name__", "up").unwrap()]
    }

    #[test]
    fn converts_milliseconds_at_the_boundary() {
        let base = sightline_model::time::to_millis(sightline_model::time::now());
        let (_dir, db) = db_with(&[("a", &[base, base + 1, base + 2])]);
        let store = TenantQueryable::new(Some(db), limits(10, 100));
        let found = store.select(&up(), base + 1, base + 1).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].samples, vec![(base + 1, 1.0)]);
        let empty = TenantQueryable::new(None, limits(10, 100));
        assert_eq!(empty.select(&up(), 0, base).unwrap(), Vec::new());
    }

    #[test]
    fn series_and_samples_are_limited_across_selects() {
        let base = sightline_model::time::to_millis(sightline_model::time::now());
        let (_dir, db) = db_with(&[("a", &[base]), ("b", &[base])]);
        let store = TenantQueryable::new(Some(Arc::clone(&db)), limits(3, 100));
        store.select(&up(), base, base).unwrap();
        let error = store.select(&up(), base, base).unwrap_err().to_string();
        assert_eq!(
            error,
            "query would select at least 4 series; limit is 3 (query.max_series)"
        );
        let store = TenantQueryable::new(Some(db), limits(10, 1));
        let error = store.select(&up(), base, base).unwrap_err().to_string();
        assert!(error.contains("limit is 1 (query.max_samples)"), "{error}");
    }

    #[test]
    fn long_ranges_are_read_in_slices_and_stop_near_the_sample_limit() {
        let base = sightline_model::time::to_millis(sightline_model::time::now()) - 3_600_000;
        // One sample a second for an hour, in two series.
        let times: Vec<i64> = (0..3_600).map(|i| base + i * 1_000).collect();
        let (_dir, db) = db_with(&[("a", &times), ("b", &times)]);
        let store = TenantQueryable::new(Some(Arc::clone(&db)), limits(10, 100_000));
        let found = store.select(&up(), base, base + 3_600_000).unwrap();
        assert_eq!(found.len(), 2);
        let expected: Vec<(i64, f64)> = times.iter().map(|t| (*t, 1.0)).collect();
        assert_eq!(found[0].samples, expected);
        assert_eq!(found[1].samples, expected);
        // 7,200 samples against a limit of 2,500: the first 15-minute slice reads
        // 1,800, each next one half of what is left, and reading stops just past it.
        let store = TenantQueryable::new(Some(db), limits(10, 2_500));
        let error = store.select(&up(), base, base + 3_600_000).unwrap_err();
        assert!(error.to_string().contains("(query.max_samples)"), "{error}");
        assert!(store.loaded_samples.load(Ordering::Relaxed) < 3_000);
    }

    #[test]
    fn slices_grow_to_fit_the_budget() {
        assert_eq!(next_slice_millis(0, 1_000, 10), Millis::MAX);
        assert_eq!(next_slice_millis(10, 1_000, 1_000), 50_000);
        assert_eq!(next_slice_millis(10, 1_000, 0), 1_000);
    }

    #[test]
    fn a_passed_deadline_stops_reads() {
        let store = TenantQueryable::new(
            None,
            ReadLimits {
                deadline: Some(Instant::now()),
                ..limits(1, 1)
            },
        );
        let error = store.select(&up(), 0, 1).unwrap_err();
        assert!(matches!(error, Error::Timeout { .. }), "{error}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(11_000), "11,000");
        assert_eq!(thousands(50_000_000), "50,000,000");
    }
}
