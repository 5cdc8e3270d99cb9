//! Query evaluation: parsing, preloading every selector's data once for the whole
//! query span, then evaluating the expression tree step by step over that data
//! (Prometheus' `promql/engine.go` semantics).

mod aggregate;
mod binary;
mod call;
mod rollup;
mod selector;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr};
use sightline_model::{Labels, METRIC_NAME_LABEL};

use crate::Queryable;
use crate::memo::InternedMemo;
use crate::value::{Point, Series, Value, VectorSample};
use crate::{Error, Millis, Result, StoredSeries};

/// Limits and defaults of query evaluation.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (Prometheus: 5m).
    pub lookback_delta: Duration,
    /// Most samples a query may hold in memory at once (Prometheus: 50,000,000).
    pub max_samples: usize,
    /// Wall-clock limit of one query (Prometheus: 2m).
    pub timeout: Duration,
    /// Most points a range query may return per series (Prometheus: 11,000).
    pub max_points_per_series: usize,
    /// Prometheus' `promql-delayed-name-removal` feature: operations that drop
    /// `__name__` only mark the series, and names are removed when the query's result
    /// is produced (so `label_replace(rate(x[5m]), "n", "$1", "__name__", "(.+)")`
    /// still sees the name). Off by default, as in Prometheus' server.
    pub delayed_name_removal: bool,
    /// Evaluates instant selectors and range functions over selectors at every step
    /// in one pass per series while the store reads it (see `engine/rollup.rs`). Off,
    /// they are evaluated step by step over preloaded samples: the same results, slower
    /// (kept as the reference the rollups are tested against).
    pub rollups: bool,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            max_points_per_series: 11_000,
            delayed_name_removal: false,
            rollups: true,
        }
    }
}

/// What a query returns: its value plus Prometheus-style warnings and infos.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// The PromQL engine. Cheap to share.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    options: EngineOptions,
}

impl Engine {
    pub fn new(options: EngineOptions) -> Engine {
        Engine { options }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Evaluates `query` at `time`.
    pub fn instant_query(
        &self,
        store: &dyn Queryable,
        query: &str,
        time: Millis,
    ) -> Result<QueryResult> {
        let expr = parse(query)?;
        let mut evaluator = Evaluator::new(&self.options, time, time, 0);
        evaluator.preload(store, &expr)?;
        let value = match evaluator.eval(&expr, time)? {
            StepValue::Scalar(v) => Value::Scalar { t: time, v },
            StepValue::String(s) => Value::String { t: time, s },
            StepValue::Vector(samples) => Value::Vector(finish_vector(samples, time)?),
            StepValue::Matrix(mut series) => {
                series.retain(|s| !s.points.is_empty());
                for s in &mut series {
                    s.labels = remove_marked_names(std::mem::take(&mut s.labels));
                }
                series.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(series)
            }
        };
        tracing::debug!(
            query,
            time,
            elapsed_ms = evaluator.started.elapsed().as_millis() as u64,
            "instant query evaluated"
        );
        Ok(evaluator.finish(value))
    }

    /// Evaluates `query` at every step from `start` to `end` inclusive; the value is a
    /// matrix (Prometheus refuses scalar/string-typed range queries the same way).
    pub fn range_query(
        &self,
        store: &dyn Queryable,
        query: &str,
        start: Millis,
        end: Millis,
        step: Millis,
    ) -> Result<QueryResult> {
        if step <= 0 {
            return Err(Error::Parse(
                "zero or negative query resolution step widths are not accepted. Try a positive integer"
                    .into(),
            ));
        }
        if end < start {
            return Err(Error::Parse(
                "end timestamp must not be before start time".into(),
            ));
        }
        let points = (end.saturating_sub(start) / step).saturating_add(1);
        if points > self.options.max_points_per_series as i64 {
            return Err(Error::Parse(format!(
                "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
                thousands(self.options.max_points_per_series as u64)
            )));
        }
        let expr = parse(query)?;
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            ValueType::Matrix => {
                return Err(Error::Parse(
                    "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
                        .into(),
                ));
            }
            ValueType::String => {
                return Err(Error::Parse(
                    "invalid expression type \"string\" for range query, must be Scalar or instant Vector"
                        .into(),
                ));
            }
        }
        let mut evaluator = Evaluator::new(&self.options, start, end, step);
        evaluator.preload(store, &expr)?;
        let mut by_labels: HashMap<Labels, Vec<Point>> = HashMap::new();
        let mut t = start;
        while t <= end {
            evaluator.check_deadline()?;
            evaluator.step_samples = 0;
            match evaluator.eval(&expr, t)? {
                StepValue::Scalar(v) => {
                    by_labels
                        .entry(Labels::empty())
                        .or_default()
                        .push(Point { t, v });
                    evaluator.output_samples += 1;
                }
                StepValue::Vector(samples) => {
                    evaluator.output_samples += samples.len();
                    for sample in finish_vector(samples, t)? {
                        by_labels
                            .entry(sample.labels)
                            .or_default()
                            .push(Point { t, v: sample.v });
                    }
                }
                StepValue::String(_) | StepValue::Matrix(_) => {
                    return Err(Error::Execution(
                        "range query evaluated to a range vector or string".into(),
                    ));
                }
            }
            evaluator.check_samples(0)?;
            let Some(next) = t.checked_add(step) else {
                break;
            };
            t = next;
        }
        let mut series: Vec<Series> = by_labels
            .into_iter()
            .map(|(labels, points)| Series { labels, points })
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        tracing::debug!(
            query,
            start,
            end,
            step,
            series = series.len(),
            elapsed_ms = evaluator.started.elapsed().as_millis() as u64,
            "range query evaluated"
        );
        Ok(evaluator.finish(Value::Matrix(series)))
    }
}

/// Recently parsed queries: dashboards send the same few queries again and again, and
/// parsing one (promql-parser's LR parser) cost about a tenth of a small range query.
/// Shared by every query of the process; only successful parses are kept.
static PARSED: std::sync::LazyLock<std::sync::Mutex<HashMap<String, std::sync::Arc<Expr>>>> =
    std::sync::LazyLock::new(Default::default);

/// Most queries [`PARSED`] keeps; when full it starts over.
const MAX_PARSED: usize = 512;

/// Longest query text [`PARSED`] keeps (a generated query of many kilobytes is rarely
/// repeated, and would make the cache large).
const MAX_PARSED_QUERY_BYTES: usize = 4096;

pub(crate) fn parse(query: &str) -> Result<std::sync::Arc<Expr>> {
    let cacheable = query.len() <= MAX_PARSED_QUERY_BYTES;
    if cacheable
        && let Ok(parsed) = PARSED.lock()
        && let Some(expr) = parsed.get(query)
    {
        return Ok(std::sync::Arc::clone(expr));
    }
    let expr = std::sync::Arc::new(parser::parse(query).map_err(Error::Parse)?);
    if cacheable && let Ok(mut parsed) = PARSED.lock() {
        if parsed.len() >= MAX_PARSED {
            parsed.clear();
        }
        parsed.insert(query.to_owned(), std::sync::Arc::clone(&expr));
    }
    Ok(expr)
}

/// `11000` → `11,000`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The value of an expression at one evaluation step.
#[derive(Debug, Clone)]
pub(crate) enum StepValue {
    Scalar(f64),
    String(String),
    /// Samples carry the timestamp of the stored sample when they come straight from a
    /// selector (for `timestamp()`), the step time otherwise.
    Vector(Vec<VectorSample>),
    Matrix(Vec<Series>),
}

impl StepValue {
    fn type_name(&self) -> &'static str {
        match self {
            StepValue::Scalar(_) => "scalar",
            StepValue::String(_) => "string",
            StepValue::Vector(_) => "instant vector",
            StepValue::Matrix(_) => "range vector",
        }
    }
}

/// A range vector at one step plus the window it covers, `(range_start, range_end]`.
#[derive(Debug)]
pub(crate) struct Window {
    pub(crate) series: Vec<Series>,
    pub(crate) range_start: Millis,
    pub(crate) range_end: Millis,
}

/// State of one query's evaluation.
#[derive(Debug)]
pub(crate) struct Evaluator<'a> {
    options: &'a EngineOptions,
    /// Query start and end (for `@ start()` / `@ end()`).
    start: Millis,
    end: Millis,
    /// The query's steps (one for an instant query).
    steps: rollup::Steps,
    /// Data of every selector, keyed by the selector node's address (the AST is
    /// borrowed, unmoved, for the whole evaluation).
    data: HashMap<usize, Vec<StoredSeries>>,
    /// Nodes evaluated at every step at once: instant selectors keyed like `data`,
    /// range function calls by the call node's address.
    rollups: HashMap<usize, rollup::Rollup>,
    /// Groups of aggregations over rollups, by aggregation node.
    rollup_groups: HashMap<usize, rollup::RollupGroups>,
    started: Instant,
    /// Delayed name removal is on.
    pub(crate) delayed: bool,
    /// `None` when the timeout is too large to represent (no deadline).
    deadline: Option<Instant>,
    /// Samples produced during the current step; checked against `max_samples`.
    step_samples: usize,
    /// Samples already in the range query's output.
    output_samples: usize,
    /// Inner results of subqueries by subquery node and inner step time, so a range
    /// query evaluates each inner step once.
    subquery_cache: HashMap<usize, BTreeMap<Millis, Vec<VectorSample>>>,
    /// Output labels of a range function over a matrix selector, per stored series of
    /// the selector (keyed like `data`), made once per query.
    range_call_labels: HashMap<usize, call::RangeCallLabels>,
    /// Per selector (keyed like `data`): where each series' window lay at the previous
    /// step.
    cursors: HashMap<usize, selector::SeriesCursors>,
    /// Points buffer of range functions over matrix selectors, reused across steps.
    range_points: Vec<Point>,
    /// Group labels of each input series, per aggregation node.
    group_memos: HashMap<usize, InternedMemo>,
    /// What each binary operator node derives from its inputs' labels.
    binary_memos: HashMap<usize, binary::BinaryMemo>,
    /// What each function call node derives from its inputs' labels.
    function_memos: HashMap<usize, crate::functions::FunctionMemo>,
    warnings: Vec<String>,
    infos: Vec<String>,
}

impl<'a> Evaluator<'a> {
    /// An evaluator for the steps `start, start + step, …, end` (`step` 0: `start` only).
    fn new(options: &'a EngineOptions, start: Millis, end: Millis, step: Millis) -> Evaluator<'a> {
        let count = if step > 0 {
            end.saturating_sub(start) / step + 1
        } else {
            1
        };
        Evaluator {
            options,
            start,
            end,
            steps: rollup::Steps {
                start,
                step,
                count: u32::try_from(count).unwrap_or(u32::MAX),
            },
            data: HashMap::new(),
            rollups: HashMap::new(),
            rollup_groups: HashMap::new(),
            started: Instant::now(),
            delayed: options.delayed_name_removal,
            deadline: Instant::now().checked_add(options.timeout),
            step_samples: 0,
            output_samples: 0,
            subquery_cache: HashMap::new(),
            range_call_labels: HashMap::new(),
            cursors: HashMap::new(),
            range_points: Vec::new(),
            group_memos: HashMap::new(),
            binary_memos: HashMap::new(),
            function_memos: HashMap::new(),
            warnings: Vec::new(),
            infos: Vec::new(),
        }
    }

    fn finish(self, value: Value) -> QueryResult {
        QueryResult {
            value,
            warnings: self.warnings,
            infos: self.infos,
        }
    }

    pub(crate) fn add_info(&mut self, info: String) {
        if !self.infos.contains(&info) {
            self.infos.push(info);
        }
    }

    pub(crate) fn add_warning(&mut self, warning: String) {
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    pub(crate) fn check_deadline(&self) -> Result<()> {
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() > deadline)
        {
            return Err(Error::Timeout {
                phase: "query evaluation",
                limit_seconds: self.options.timeout.as_secs_f64(),
            });
        }
        Ok(())
    }

    /// Counts `n` more samples held by the current step; errors past `max_samples`.
    pub(crate) fn check_samples(&mut self, n: usize) -> Result<()> {
        self.check_samples_would_fit(n)?;
        self.step_samples += n;
        Ok(())
    }

    /// Errors when `n` more samples would take the step past `max_samples`.
    pub(crate) fn check_samples_would_fit(&self, n: usize) -> Result<()> {
        let held = self
            .step_samples
            .saturating_add(self.output_samples)
            .saturating_add(n);
        if held > self.options.max_samples {
            return Err(Error::Limit(format!(
                "query processing would load too many samples into memory in query execution; limit is {} (query.max_samples)",
                thousands(self.options.max_samples as u64)
            )));
        }
        Ok(())
    }

    /// Evaluates `expr` at step `t`.
    pub(crate) fn eval(&mut self, expr: &Expr, t: Millis) -> Result<StepValue> {
        match expr {
            Expr::NumberLiteral(n) => Ok(StepValue::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(StepValue::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                StepValue::Scalar(v) => Ok(StepValue::Scalar(-v)),
                StepValue::Vector(samples) => {
                    let out: Vec<VectorSample> = samples
                        .into_iter()
                        .map(|s| VectorSample {
                            labels: drop_name_or_mark(&s.labels, self.delayed),
                            t,
                            v: -s.v,
                        })
                        .collect();
                    check_unique_unless_delayed(&out, self.delayed)?;
                    Ok(StepValue::Vector(out))
                }
                other => Err(Error::Execution(format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => {
                if let Some(vector) = self.eval_rollup(selector::selector_key(vs), t)? {
                    return Ok(StepValue::Vector(vector));
                }
                Ok(StepValue::Vector(self.eval_vector_selector(vs, t)?))
            }
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                let window = self.eval_window(expr, t)?;
                Ok(StepValue::Matrix(window.series))
            }
            Expr::Aggregate(agg) => self.eval_aggregate(agg, t),
            Expr::Binary(b) => self.eval_binary(b, t),
            Expr::Call(call) => self.eval_call(call, t),
            Expr::Extension(_) => Err(Error::Execution(
                "extension expressions are not supported".into(),
            )),
        }
    }

    /// Evaluates `expr` at `t` and requires an instant vector.
    pub(crate) fn eval_vector(&mut self, expr: &Expr, t: Millis) -> Result<Vec<VectorSample>> {
        match self.eval(expr, t)? {
            StepValue::Vector(v) => Ok(v),
            other => Err(Error::Execution(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates `expr` at `t` and requires a scalar.
    pub(crate) fn eval_scalar(&mut self, expr: &Expr, t: Millis) -> Result<f64> {
        match self.eval(expr, t)? {
            StepValue::Scalar(v) => Ok(v),
            other => Err(Error::Execution(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }
}

/// `labels` without `__name__` (and the `__type__`/`__unit__` metadata labels, which
/// Prometheus 3 drops with it).
pub(crate) fn drop_name(labels: &Labels) -> Labels {
    crate::functions::drop_metric_name(labels)
}

/// Label marking a series whose `__name__` is to be dropped at the end of the query
/// (delayed name removal); never leaves the engine.
pub(crate) const DROP_NAME_MARKER: &str = "__sightline_drop_name__";

/// [`drop_name`], or with delayed name removal: marks the series instead.
pub(crate) fn drop_name_or_mark(labels: &Labels, delayed: bool) -> Labels {
    if !delayed || labels.get(METRIC_NAME_LABEL).is_none() {
        return drop_name(labels);
    }
    let mut builder = labels.to_builder();
    builder.set(DROP_NAME_MARKER, "1");
    builder.build()
}

/// Drops the names of marked series (delayed name removal) and checks the result has
/// no two series with the same labels.
fn remove_marked_names(labels: Labels) -> Labels {
    if labels.get(DROP_NAME_MARKER).is_none() {
        return labels;
    }
    let mut builder = drop_name(&labels).to_builder();
    builder.delete(DROP_NAME_MARKER);
    builder.build()
}

/// A step's result vector as returned: marked names removed, timestamps set to the
/// step, label sets unique.
fn finish_vector(samples: Vec<VectorSample>, t: Millis) -> Result<Vec<VectorSample>> {
    let out: Vec<VectorSample> = samples
        .into_iter()
        .map(|s| VectorSample {
            labels: remove_marked_names(s.labels),
            t,
            v: s.v,
        })
        .collect();
    check_unique_labelsets(&out)?;
    Ok(out)
}

/// [`check_unique_labelsets`] unless names are removed later (then the end of the
/// query checks).
pub(crate) fn check_unique_unless_delayed(vector: &[VectorSample], delayed: bool) -> Result<()> {
    if delayed {
        return Ok(());
    }
    check_unique_labelsets(vector)
}

/// Prometheus' `Labels.String()`: `{__name__="a", b="c"}`.
pub(crate) fn labels_string(labels: &Labels) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Errors when two samples of `vector` have the same label set.
pub(crate) fn check_unique_labelsets(vector: &[VectorSample]) -> Result<()> {
    if vector.len() < 2 {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(vector.len());
    for sample in vector {
        if !seen.insert(&sample.labels) {
            return Err(Error::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}
