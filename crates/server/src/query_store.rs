//! [`TenantQueryable`]: one tenant's metrics store as the PromQL engine sees it.
//!
//! The engine and the store both speak milliseconds here ([`Db::plan_select`]). A
//! tenant that never wrote is an empty store, not an error. The per-query limits that
//! must hold *before* data is read are checked here, since the engine reads every
//! selector's data before evaluating its steps: the query's deadline, the series it
//! selects (`query.max_series`, from the store's plan, before any sample is read) and
//! the samples it reads (`query.max_samples`: from chunk metadata before decoding,
//! then series by series while decoding, so memory stays near the limit whatever the
//! query asks for). A rolled-up selector ([`Queryable::select_visit`]) is reduced
//! series by series on the decoding threads and counts its samples the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use sightline_model::Labels;
use sightline_promql::{
    Error, Matcher, Millis, Queryable, Result, SeriesVisitor, StepValues, StoredSeries,
};
use sightline_tsdb::{Db, Selection};

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

impl TenantQueryable {
    /// Plans a read and counts its series against `query.max_series`.
    fn plan<'db>(
        &self,
        db: &'db Db,
        matchers: &[Matcher],
        mint: Millis,
        maxt: Millis,
    ) -> Result<Selection<'db>> {
        let selection = db.plan_select(matchers, mint, maxt);
        let max_series = self.limits.max_series;
        Self::count_against(
            &self.selected_series,
            selection.num_series(),
            max_series,
            |n| {
                format!(
                    "query would select at least {} series; limit is {} (query.max_series)",
                    thousands(n),
                    thousands(max_series)
                )
            },
        )?;
        self.check_deadline()?;
        Ok(selection)
    }

    fn samples_limit_error(&self) -> Error {
        Error::Limit(format!(
            "query processing would load too many samples into memory in query \
             execution; limit is {} (query.max_samples)",
            thousands(self.limits.max_samples)
        ))
    }

    /// Loads `selection`, reducing each series with `map`, within what is left of the
    /// query's `query.max_samples`.
    fn load<T: Send>(
        &self,
        selection: Selection<'_>,
        map: impl Fn(&mut Vec<(i64, f64)>) -> Result<Option<T>> + Sync,
    ) -> Result<Vec<(Labels, T)>> {
        let max_samples = self.limits.max_samples;
        let budget_left = max_samples.saturating_sub(self.loaded_samples.load(Ordering::Relaxed));
        // Samples decoded by this read (the store counts them whatever `map` keeps).
        let read = AtomicUsize::new(0);
        let loaded = selection.load_map(budget_left, |_, samples| {
            read.fetch_add(samples.len(), Ordering::Relaxed);
            map(samples).map_err(LoadError::Query)
        });
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(LoadError::Store(sightline_tsdb::Error::SampleLimit { loaded, .. })) => {
                self.loaded_samples.fetch_add(loaded, Ordering::Relaxed);
                return Err(self.samples_limit_error());
            }
            Err(LoadError::Store(error)) => return Err(Error::Storage(error.to_string())),
            Err(LoadError::Query(error)) => return Err(error),
        };
        // Concurrent selects of one query share the budget: recheck the total.
        Self::count_against(&self.loaded_samples, read.into_inner(), max_samples, |_| {
            self.samples_limit_error().to_string()
        })?;
        Ok(loaded)
    }
}

/// Why a load failed: the store, or the engine's reduction of a series.
#[derive(Debug)]
enum LoadError {
    Store(sightline_tsdb::Error),
    Query(Error),
}

impl From<sightline_tsdb::Error> for LoadError {
    fn from(error: sightline_tsdb::Error) -> LoadError {
        LoadError::Store(error)
    }
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
        let selection = self.plan(db, matchers, mint, maxt)?;
        let loaded = self.load(selection, |samples| Ok(Some(std::mem::take(samples))))?;
        Ok(loaded
            .into_iter()
            .map(|(labels, samples)| StoredSeries { labels, samples })
            .collect())
    }

    /// Streams: each series is reduced on the store's decoding threads as soon as it is
    /// decoded, and its samples are dropped.
    fn select_visit(
        &self,
        matchers: &[Matcher],
        mint: Millis,
        maxt: Millis,
        visit: &SeriesVisitor<'_>,
    ) -> Result<Vec<(Labels, StepValues)>> {
        self.check_deadline()?;
        let Some(db) = &self.db else {
            return Ok(Vec::new());
        };
        let selection = self.plan(db, matchers, mint, maxt)?;
        self.load(selection, |samples| {
            let values = visit(samples)?;
            Ok((!values.steps.is_empty()).then_some(values))
        })
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
    use sightline_model::time::NANOS_PER_MILLI;
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
    fn long_ranges_are_read_once_and_stop_near_the_sample_limit() {
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
        assert_eq!(store.loaded_samples.load(Ordering::Relaxed), 7_200);
        // 7,200 samples against a limit of 2,500: chunk metadata shows it before
        // anything is decoded.
        let store = TenantQueryable::new(Some(Arc::clone(&db)), limits(10, 2_500));
        let error = store.select(&up(), base, base + 3_600_000).unwrap_err();
        assert!(error.to_string().contains("(query.max_samples)"), "{error}");
        assert!(store.loaded_samples.load(Ordering::Relaxed) < 3_000);
        // A window cutting through chunks (120 samples each) is only known exactly
        // once decoded: 100 samples per series against a limit of 150 stop after
        // the second series, holding about the limit.
        let store = TenantQueryable::new(Some(db), limits(10, 150));
        let error = store
            .select(&up(), base + 60_000, base + 159_000)
            .unwrap_err();
        assert!(error.to_string().contains("(query.max_samples)"), "{error}");
        assert_eq!(store.loaded_samples.load(Ordering::Relaxed), 200);
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
