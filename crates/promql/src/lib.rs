//! The PromQL engine: evaluates PromQL expressions, instant and range, over any store
//! that implements [`Queryable`].
//!
//! Parsing is done by the `promql-parser` crate; evaluation is ours because query
//! evaluation is the core of the product (its limits, its speed, and its exact
//! agreement with Prometheus are what users judge us on). This crate must never know
//! about HTTP, JSON, tenants or any on-disk format: callers hand it a [`Queryable`]
//! and get [`Value`]s back; the HTTP layer formats them.
//!
//! Timestamps here are milliseconds since the epoch (PromQL's own precision); the
//! [`Queryable`] boundary converts to the store's nanoseconds.

mod engine;
mod functions;
mod go_format;
mod memo;
mod value;

pub use engine::{Engine, EngineOptions, QueryResult};

/// Parses `query` as the engine will, so an API can refuse a bad query at once (before
/// queueing it); the parse is kept, and evaluating the query then reuses it.
pub fn check_query(query: &str) -> Result<()> {
    engine::parse(query).map(|_| ())
}
pub use functions::almost_equal;
pub use go_format::{go_format_float, go_format_float_exponent, go_format_float_fixed};
pub use value::{Point, Series, Value, VectorSample};

use sightline_model::Labels;
pub use sightline_tsdb::{MatchOp, Matcher};

/// Errors of query parsing and evaluation.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum Error {
    /// The query text does not parse, or is not valid PromQL (Prometheus `bad_data`).
    #[error("{0}")]
    Parse(String),
    /// Evaluation failed (Prometheus `execution`), e.g. many-to-many matching.
    #[error("{0}")]
    Execution(String),
    /// A query limit was hit; the message names the limit and its value.
    #[error("{0}")]
    Limit(String),
    /// The query ran past its timeout.
    #[error("query timed out in {phase}; limit is {limit_seconds}s (query.timeout)")]
    Timeout {
        phase: &'static str,
        limit_seconds: f64,
    },
    /// The store failed to answer.
    #[error("storage error: {0}")]
    Storage(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// One series as the store returns it: labels and samples ascending by time.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSeries {
    pub labels: Labels,
    /// (timestamp ms, value), ascending, unique timestamps. Staleness markers are
    /// included as Prometheus' stale NaN (`sightline_model::is_stale_nan`).
    pub samples: Vec<(Millis, f64)>,
}

/// What a [`SeriesVisitor`] keeps of one series: its values at some steps of a query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepValues {
    /// Indexes of the steps that have a value, ascending.
    pub steps: Vec<u32>,
    /// The value at each of `steps`.
    pub values: Vec<f64>,
    /// The stored sample's timestamp at each of `steps` when the values are an instant
    /// selector's (for `timestamp()`); empty otherwise.
    pub times: Vec<Millis>,
}

impl StepValues {
    /// Room for `steps` values (instant selectors' sample times included).
    pub fn with_capacity(steps: usize) -> StepValues {
        StepValues {
            steps: Vec::with_capacity(steps),
            values: Vec::with_capacity(steps),
            times: Vec::new(),
        }
    }
}

/// Reduces one series' samples (ascending, unique timestamps, stale markers included)
/// to its values at a query's steps.
pub type SeriesVisitor<'a> = dyn Fn(&[(Millis, f64)]) -> Result<StepValues> + Sync + 'a;

/// What the engine needs from a store.
pub trait Queryable: Send + Sync {
    /// Series matching ALL `matchers` with their samples in `[mint, maxt]` (ms,
    /// inclusive), sorted by labels; series without samples in range may be omitted.
    fn select(&self, matchers: &[Matcher], mint: Millis, maxt: Millis)
    -> Result<Vec<StoredSeries>>;

    /// [`Queryable::select`], with each series reduced by `visit` to what it returns;
    /// series `visit` gives no step are left out. A store that decodes series one at a
    /// time overrides this so that it never holds all of a long read's samples, and may
    /// call `visit` on several threads at once.
    fn select_visit(
        &self,
        matchers: &[Matcher],
        mint: Millis,
        maxt: Millis,
        visit: &SeriesVisitor<'_>,
    ) -> Result<Vec<(Labels, StepValues)>> {
        let mut out = Vec::new();
        for series in self.select(matchers, mint, maxt)? {
            let values = visit(&series.samples)?;
            if !values.steps.is_empty() {
                out.push((series.labels, values));
            }
        }
        Ok(out)
    }
}
