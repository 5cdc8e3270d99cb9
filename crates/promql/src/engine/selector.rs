//! Selectors and subqueries: preloading each selector's series once for the whole
//! span it is evaluated over, and cutting instant samples and range windows out of
//! them at each step.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use promql_parser::label::MatchOp as ParserMatchOp;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};
use sightline_model::{Labels, METRIC_NAME_LABEL, is_stale_nan};

use super::{Evaluator, Window};
use crate::value::{Point, Series, VectorSample};
use crate::{Error, MatchOp, Matcher, Millis, Queryable, Result, StoredSeries};

/// Default step of a subquery without one (Prometheus' global evaluation interval).
const DEFAULT_SUBQUERY_STEP_MS: Millis = 60_000;
/// How many series a selector walks between two checks of the deadline and of the
/// sample limit (reading the clock per series would cost more than the work).
pub(super) const LIMIT_CHECK_EVERY_SERIES: usize = 256;

/// Where each series' window began and ended at a selector's previous step, so the next
/// step searches from there. Steps mostly ascend and move a little, so a search from
/// the previous position reads a few neighbouring samples; a binary search over a
/// week of samples took a cache miss per probe, most of a long range query's time.
#[derive(Debug, Default)]
pub(super) struct SeriesCursors {
    start: Vec<usize>,
    end: Vec<usize>,
}

impl SeriesCursors {
    /// The window `(range_start, reft]` of series `index`, as indexes into `samples`.
    pub(super) fn window(
        &mut self,
        index: usize,
        samples: &[(Millis, f64)],
        range_start: Millis,
        reft: Millis,
    ) -> (usize, usize) {
        if self.end.len() <= index {
            self.start.resize(index + 1, 0);
            self.end.resize(index + 1, 0);
        }
        let start = seek_after(samples, self.start[index], range_start);
        let end = seek_after(samples, self.end[index].max(start), reft).max(start);
        self.start[index] = start;
        self.end[index] = end;
        (start, end)
    }

    /// The index just past the last sample at or before `reft` of series `index`.
    pub(super) fn end(&mut self, index: usize, samples: &[(Millis, f64)], reft: Millis) -> usize {
        if self.end.len() <= index {
            self.end.resize(index + 1, 0);
        }
        let end = seek_after(samples, self.end[index], reft);
        self.end[index] = end;
        end
    }
}

/// The index of the first sample after `bound` in `samples` (sorted by time): the same
/// as `partition_point(|s| s.0 <= bound)`, searched from `hint` (galloping forward when
/// the answer lies after it, a binary search before it otherwise).
pub(super) fn seek_after(samples: &[(Millis, f64)], hint: usize, bound: Millis) -> usize {
    let hint = hint.min(samples.len());
    if hint > 0 && samples[hint - 1].0 > bound {
        return samples[..hint].partition_point(|(t, _)| *t <= bound);
    }
    // Every sample before `low` is at or before `bound`.
    let mut low = hint;
    let mut stride = 1;
    while low + stride <= samples.len() && samples[low + stride - 1].0 <= bound {
        low += stride;
        stride *= 2;
    }
    let high = (low + stride).min(samples.len());
    low + samples[low..high].partition_point(|(t, _)| *t <= bound)
}

pub(super) fn selector_key(vs: &VectorSelector) -> usize {
    std::ptr::from_ref(vs) as usize
}

pub(super) fn duration_ms(d: &Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn offset_ms(offset: Option<&Offset>) -> Millis {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

fn system_time_ms(t: &SystemTime) -> Millis {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(before) => -duration_ms(&before.duration()),
    }
}

/// Matcher sets (one per `or` branch) a selector selects with.
pub(super) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>> {
    let mut groups: Vec<&[promql_parser::label::Matcher]> = Vec::new();
    if !vs.matchers.matchers.is_empty() || vs.matchers.or_matchers.is_empty() {
        groups.push(&vs.matchers.matchers);
    }
    for group in &vs.matchers.or_matchers {
        groups.push(group);
    }
    let mut out = Vec::with_capacity(groups.len());
    for group in groups {
        let mut matchers = Vec::with_capacity(group.len() + 1);
        let mut has_name = false;
        for m in group {
            let (op, value) = match m.op {
                ParserMatchOp::Equal => (MatchOp::Equal, m.value.clone()),
                ParserMatchOp::NotEqual => (MatchOp::NotEqual, m.value.clone()),
                // The store's matcher gives the pattern Go's regexp meaning.
                ParserMatchOp::Re(_) => (MatchOp::RegexMatch, m.value.clone()),
                ParserMatchOp::NotRe(_) => (MatchOp::RegexNoMatch, m.value.clone()),
            };
            has_name |= m.name == METRIC_NAME_LABEL;
            matchers.push(
                Matcher::new(op, m.name.clone(), value).map_err(|e| Error::Parse(e.to_string()))?,
            );
        }
        if let Some(name) = &vs.name
            && !has_name
        {
            matchers.push(
                Matcher::new(MatchOp::Equal, METRIC_NAME_LABEL, name.clone())
                    .map_err(|e| Error::Parse(e.to_string()))?,
            );
        }
        out.push(matchers);
    }
    Ok(out)
}

impl Evaluator<'_> {
    /// Evaluation time of a selector or subquery evaluated at step `t`.
    pub(super) fn ref_time(
        &self,
        at: Option<&AtModifier>,
        offset: Option<&Offset>,
        t: Millis,
    ) -> Millis {
        let base = match at {
            None => t,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            Some(AtModifier::At(time)) => system_time_ms(time),
        };
        base.saturating_sub(offset_ms(offset))
    }

    /// Selects every selector's data once, for the whole span it is evaluated over;
    /// nodes evaluated at the query's own steps are rolled up instead where they can be
    /// (see `rollup`).
    pub(crate) fn preload(&mut self, store: &dyn Queryable, expr: &Expr) -> Result<()> {
        self.preload_span(store, expr, self.start, self.end, self.options.rollups)
    }

    fn span_of(
        &self,
        at: Option<&AtModifier>,
        offset: Option<&Offset>,
        lo: Millis,
        hi: Millis,
    ) -> (Millis, Millis) {
        if at.is_some() {
            let t = self.ref_time(at, offset, lo);
            (t, t)
        } else {
            let o = offset_ms(offset);
            (lo.saturating_sub(o), hi.saturating_sub(o))
        }
    }

    /// `at_steps`: `expr` is evaluated at the query's own steps (it is not inside a
    /// subquery), so it may be rolled up.
    fn preload_span(
        &mut self,
        store: &dyn Queryable,
        expr: &Expr,
        lo: Millis,
        hi: Millis,
        at_steps: bool,
    ) -> Result<()> {
        match expr {
            Expr::VectorSelector(vs) if at_steps && self.preload_rollup_selector(store, vs)? => {
                Ok(())
            }
            Expr::Call(call) if at_steps && self.preload_rollup_call(store, call)? => Ok(()),
            Expr::VectorSelector(vs) => {
                let (a, b) = self.span_of(vs.at.as_ref(), vs.offset.as_ref(), lo, hi);
                let lookback = duration_ms(&self.options.lookback_delta);
                self.load(store, vs, a.saturating_sub(lookback), b)
            }
            Expr::MatrixSelector(ms) => {
                let (a, b) = self.span_of(ms.vs.at.as_ref(), ms.vs.offset.as_ref(), lo, hi);
                self.load(store, &ms.vs, a.saturating_sub(duration_ms(&ms.range)), b)
            }
            Expr::Subquery(sq) => {
                let (a, b) = self.span_of(sq.at.as_ref(), sq.offset.as_ref(), lo, hi);
                let lo = a.saturating_sub(duration_ms(&sq.range));
                self.preload_span(store, &sq.expr, lo, b, false)
            }
            Expr::Aggregate(agg) => {
                if let Some(param) = &agg.param {
                    self.preload_span(store, param, lo, hi, at_steps)?;
                }
                self.preload_span(store, &agg.expr, lo, hi, at_steps)
            }
            Expr::Unary(u) => self.preload_span(store, &u.expr, lo, hi, at_steps),
            Expr::Binary(b) => {
                self.preload_span(store, &b.lhs, lo, hi, at_steps)?;
                self.preload_span(store, &b.rhs, lo, hi, at_steps)
            }
            Expr::Paren(p) => self.preload_span(store, &p.expr, lo, hi, at_steps),
            Expr::Call(call) => {
                for arg in &call.args.args {
                    self.preload_span(store, arg, lo, hi, at_steps)?;
                }
                Ok(())
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
            Expr::Extension(_) => Err(Error::Execution(
                "extension expressions are not supported".into(),
            )),
        }
    }

    fn load(
        &mut self,
        store: &dyn Queryable,
        vs: &VectorSelector,
        mint: Millis,
        maxt: Millis,
    ) -> Result<()> {
        let mut all: Vec<StoredSeries> = Vec::new();
        let groups = selector_matchers(vs)?;
        let several = groups.len() > 1;
        for matchers in groups {
            all.extend(store.select(&matchers, mint, maxt)?);
        }
        if several {
            all.sort_by(|a, b| a.labels.cmp(&b.labels));
            all.dedup_by(|a, b| a.labels == b.labels);
        }
        self.data.insert(selector_key(vs), all);
        Ok(())
    }

    pub(super) fn selector_data(&self, vs: &VectorSelector) -> Result<&[StoredSeries]> {
        self.data
            .get(&selector_key(vs))
            .map(Vec::as_slice)
            .ok_or_else(|| Error::Execution("internal error: selector data was not loaded".into()))
    }

    pub(crate) fn eval_vector_selector(
        &mut self,
        vs: &VectorSelector,
        t: Millis,
    ) -> Result<Vec<VectorSample>> {
        let reft = self.ref_time(vs.at.as_ref(), vs.offset.as_ref(), t);
        let lookback = duration_ms(&self.options.lookback_delta);
        let mut out = Vec::new();
        let mut cursors = self.cursors.remove(&selector_key(vs)).unwrap_or_default();
        for (index, series) in self.selector_data(vs)?.iter().enumerate() {
            if index % LIMIT_CHECK_EVERY_SERIES == LIMIT_CHECK_EVERY_SERIES - 1 {
                self.check_deadline()?;
            }
            let end = cursors.end(index, &series.samples, reft);
            let Some(&(ts, v)) = end.checked_sub(1).and_then(|i| series.samples.get(i)) else {
                continue;
            };
            if ts <= reft.saturating_sub(lookback) || is_stale_nan(v) {
                continue;
            }
            out.push(VectorSample {
                labels: series.labels.clone(),
                t: ts,
                v,
            });
        }
        self.cursors.insert(selector_key(vs), cursors);
        self.check_samples(out.len())?;
        Ok(out)
    }

    /// Evaluates a matrix selector or subquery (possibly in parentheses) at step `t`.
    pub(crate) fn eval_window(&mut self, expr: &Expr, t: Millis) -> Result<Window> {
        match expr {
            Expr::Paren(p) => self.eval_window(&p.expr, t),
            Expr::MatrixSelector(ms) => {
                let reft = self.ref_time(ms.vs.at.as_ref(), ms.vs.offset.as_ref(), t);
                let range_start = reft.saturating_sub(duration_ms(&ms.range));
                let mut series_out = Vec::new();
                let mut count = 0;
                let mut cursors = self
                    .cursors
                    .remove(&selector_key(&ms.vs))
                    .unwrap_or_default();
                for (index, series) in self.selector_data(&ms.vs)?.iter().enumerate() {
                    // One step over many long series can take long and hold much:
                    // check the limits as the window fills, not only at its end.
                    if index % LIMIT_CHECK_EVERY_SERIES == LIMIT_CHECK_EVERY_SERIES - 1 {
                        self.check_deadline()?;
                        self.check_samples_would_fit(count)?;
                    }
                    let (lo, hi) = cursors.window(index, &series.samples, range_start, reft);
                    let points: Vec<Point> = series
                        .samples
                        .get(lo..hi)
                        .unwrap_or_default()
                        .iter()
                        .filter(|(_, v)| !is_stale_nan(*v))
                        .map(|&(t, v)| Point { t, v })
                        .collect();
                    if points.is_empty() {
                        continue;
                    }
                    count += points.len();
                    series_out.push(Series {
                        labels: series.labels.clone(),
                        points,
                    });
                }
                self.cursors.insert(selector_key(&ms.vs), cursors);
                self.check_samples(count)?;
                Ok(Window {
                    series: series_out,
                    range_start,
                    range_end: reft,
                })
            }
            Expr::Subquery(sq) => {
                let reft = self.ref_time(sq.at.as_ref(), sq.offset.as_ref(), t);
                let range = duration_ms(&sq.range);
                let step = sq
                    .step
                    .as_ref()
                    .map(duration_ms)
                    .filter(|s| *s > 0)
                    .unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
                let range_start = reft.saturating_sub(range);
                let mut first = step * (range_start / step);
                if first <= range_start {
                    first = first.saturating_add(step);
                }
                let key = std::ptr::from_ref(sq) as usize;
                // Steps of a range query ascend, so inner results before this window
                // are not needed again (and are recomputed if they are).
                if let Some(cache) = self.subquery_cache.get_mut(&key) {
                    *cache = cache.split_off(&range_start.saturating_add(1));
                }
                let mut index: HashMap<Labels, usize> = HashMap::new();
                let mut series_out: Vec<Series> = Vec::new();
                let mut ti = first;
                while ti <= reft {
                    self.check_deadline()?;
                    let cached = self
                        .subquery_cache
                        .get(&key)
                        .and_then(|cache| cache.get(&ti))
                        .cloned();
                    let vector = match cached {
                        Some(vector) => vector,
                        None => {
                            let vector = self.eval_vector(&sq.expr, ti)?;
                            // Empty results are cheap to recompute; not caching them
                            // keeps a huge, sparse subquery from filling memory.
                            if !vector.is_empty() {
                                self.subquery_cache
                                    .entry(key)
                                    .or_default()
                                    .insert(ti, vector.clone());
                            }
                            vector
                        }
                    };
                    self.check_samples(vector.len())?;
                    for sample in vector {
                        let point = Point { t: ti, v: sample.v };
                        if let Some(series) = index
                            .get(&sample.labels)
                            .and_then(|&i| series_out.get_mut(i))
                        {
                            series.points.push(point);
                            continue;
                        }
                        index.insert(sample.labels.clone(), series_out.len());
                        series_out.push(Series {
                            labels: sample.labels,
                            points: vec![point],
                        });
                    }
                    let Some(next) = ti.checked_add(step) else {
                        break;
                    };
                    ti = next;
                }
                Ok(Window {
                    series: series_out,
                    range_start,
                    range_end: reft,
                })
            }
            other => Err(Error::Execution(format!(
                "expected range vector, got {}",
                type_name_of(other)
            ))),
        }
    }
}

fn type_name_of(expr: &Expr) -> &'static str {
    match expr.value_type() {
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sorted_samples() -> impl Strategy<Value = Vec<(Millis, f64)>> {
        proptest::collection::vec(1i64..50, 0..200).prop_map(|gaps| {
            let mut t = 0;
            gaps.into_iter()
                .map(|gap| {
                    t += gap;
                    (t, t as f64)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn seek_after_is_partition_point_from_any_hint(
            samples in sorted_samples(),
            hint in 0usize..250,
            bound in -10i64..10_500,
        ) {
            prop_assert_eq!(
                seek_after(&samples, hint, bound),
                samples.partition_point(|(t, _)| *t <= bound)
            );
        }

        /// Windows at steps in any order (ascending like a range query, or jumping back
        /// like a subquery's inner steps) match two binary searches.
        #[test]
        fn cursor_windows_match_binary_search(
            samples in sorted_samples(),
            steps in proptest::collection::vec((-10i64..10_500, 0i64..600), 1..30),
        ) {
            let mut cursors = SeriesCursors::default();
            for (reft, range) in steps {
                let range_start = reft - range;
                let expected = (
                    samples.partition_point(|(t, _)| *t <= range_start),
                    samples.partition_point(|(t, _)| *t <= reft),
                );
                prop_assert_eq!(cursors.window(3, &samples, range_start, reft), expected);
                prop_assert_eq!(cursors.end(3, &samples, reft), expected.1);
            }
        }
    }
}
