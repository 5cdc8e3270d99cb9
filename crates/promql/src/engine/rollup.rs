//! Rollups: an instant selector, or a range function over a matrix selector
//! (`rate(x[5m])`), evaluated at every step of the query in one pass over each series,
//! while the store decodes it (VictoriaMetrics' "rollups").
//!
//! Step by step, such a node cut each series' window out of samples preloaded for the
//! whole query and copied it at every step: a week of samples held for every series
//! of the query at once, and the windows searched and copied step after step. A
//! rollup walks each series once with two cursors moving forward, on the store's
//! decoding threads, and keeps only the series' values at the steps; the step loop
//! then reads them back. Nodes evaluated at other times than the query's own steps
//! (inside a subquery, or with `@`) keep the step-by-step path.

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Instant;

use promql_parser::parser::{
    AggregateExpr, Call, Expr, LabelModifier, MatrixSelector, VectorSelector,
};
use sightline_model::id_hash::IdHashMap;
use sightline_model::{Labels, is_stale_nan};

use super::call::{not_a_counter_info, unwrap_parens};
use super::selector::{duration_ms, offset_ms, seek_after, selector_key, selector_matchers};
use super::{Evaluator, aggregate, check_unique_unless_delayed, drop_name_or_mark};
use crate::functions::{self, Annotations, RangeWindow, range as range_functions};
use crate::value::VectorSample;
use crate::{Error, Millis, Queryable, Result, StepValues};

/// Range functions a rollup evaluates: every one whose result depends only on the
/// window's points and on constant arguments, and that reports no annotation (those
/// are collected per step on the step-by-step path).
const ROLLUP_FUNCTIONS: &[&str] = &[
    "rate",
    "increase",
    "delta",
    "irate",
    "idelta",
    "deriv",
    "predict_linear",
    "changes",
    "resets",
    "avg_over_time",
    "sum_over_time",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "ts_of_min_over_time",
    "ts_of_max_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "last_over_time",
    "first_over_time",
    "ts_of_last_over_time",
    "ts_of_first_over_time",
    "present_over_time",
    "mad_over_time",
    "double_exponential_smoothing",
    "holt_winters",
];

/// The steps a rollup evaluates at: `start + i × step` for `i` in `0..count`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Steps {
    pub(super) start: Millis,
    pub(super) step: Millis,
    pub(super) count: u32,
}

impl Steps {
    fn time(&self, index: u32) -> Millis {
        self.start
            .saturating_add(self.step.saturating_mul(i64::from(index)))
    }

    /// Most steps whose window (of `reach` before the step) can hold one of `samples`
    /// samples: a bound on a series' values, to allocate them once.
    fn capacity_for(&self, samples: usize, reach: Millis) -> usize {
        let windows_per_sample = if self.step > 0 {
            usize::try_from(reach / self.step)
                .unwrap_or(usize::MAX)
                .saturating_add(1)
        } else {
            1
        };
        samples
            .saturating_mul(windows_per_sample)
            .min(self.count as usize)
    }

    /// Step `index`'s range window `(t - offset - range, t - offset]`.
    fn window(&self, index: u32, offset: Millis, range: Millis) -> RangeWindow {
        let eval_t = self.time(index);
        let reft = eval_t.saturating_sub(offset);
        RangeWindow {
            eval_t,
            range_start: reft.saturating_sub(range),
            range_end: reft,
        }
    }

    /// The index of step `t`, which must be one of these steps.
    fn index_of(&self, t: Millis) -> Result<u32> {
        let offset = t.saturating_sub(self.start);
        let index = if self.step > 0 { offset / self.step } else { 0 };
        match u32::try_from(index) {
            Ok(index) if index < self.count && self.time(index) == t => Ok(index),
            _ => Err(Error::Execution(format!(
                "internal error: {t} is not a step of the rolled-up query"
            ))),
        }
    }
}

/// One series of a rollup.
#[derive(Debug)]
struct RollupSeries {
    /// The node's output labels for this series.
    labels: Labels,
    values: StepValues,
    /// Position in `values.steps` of the step read last.
    cursor: usize,
    /// `rate`/`increase`'s info for a name without a counter suffix; taken at the
    /// first step the series has a value, as the step-by-step path does.
    not_a_counter: Option<String>,
}

/// One rolled-up node's values at every step.
#[derive(Debug)]
pub(super) struct Rollup {
    series: Vec<RollupSeries>,
    /// Output labels that may repeat (so each step's vector is checked).
    check_unique: bool,
}

/// What is computed for each step of one series.
#[derive(Debug, Clone, Copy)]
enum Reduction<'a> {
    /// An instant selector: the newest sample within the lookback delta.
    Newest { lookback: Millis },
    /// A range function over the window `(t - offset - range, t - offset]`.
    Function {
        name: &'a str,
        range: Millis,
        scalars: &'a [f64],
    },
}

thread_local! {
    /// A series' samples without its stale markers, reused across series on each
    /// thread (only series that have markers are copied).
    static LIVE_SAMPLES: RefCell<Vec<(Millis, f64)>> = const { RefCell::new(Vec::new()) };
}

/// Reduces one series' samples to its values at `steps`.
fn reduce(
    samples: &[(Millis, f64)],
    steps: Steps,
    offset: Millis,
    reduction: Reduction<'_>,
) -> Result<StepValues> {
    match reduction {
        Reduction::Newest { lookback } => Ok(newest_at_steps(samples, steps, offset, lookback)),
        Reduction::Function {
            name,
            range,
            scalars,
        } => {
            // Range functions never see stale markers.
            if !samples.iter().any(|&(_, v)| is_stale_nan(v)) {
                return function_at_steps(samples, steps, offset, name, range, scalars);
            }
            LIVE_SAMPLES.with_borrow_mut(|live| {
                live.clear();
                live.extend(samples.iter().filter(|(_, v)| !is_stale_nan(*v)));
                function_at_steps(live, steps, offset, name, range, scalars)
            })
        }
    }
}

/// An instant selector at every step: the newest sample at or before the step (after
/// `offset`), unless it is older than `lookback` or a stale marker.
fn newest_at_steps(
    samples: &[(Millis, f64)],
    steps: Steps,
    offset: Millis,
    lookback: Millis,
) -> StepValues {
    let mut out = StepValues::with_capacity(steps.capacity_for(samples.len(), lookback));
    out.times.reserve(out.steps.capacity());
    let mut end = 0;
    for index in 0..steps.count {
        let reft = steps.time(index).saturating_sub(offset);
        end = advance(samples, end, reft);
        let Some(&(t, v)) = end.checked_sub(1).and_then(|i| samples.get(i)) else {
            continue;
        };
        if t <= reft.saturating_sub(lookback) || is_stale_nan(v) {
            continue;
        }
        out.steps.push(index);
        out.values.push(v);
        out.times.push(t);
    }
    out
}

/// Range function `name` over the window `(step - offset - range, step - offset]` of
/// `samples` (no stale markers) at every step; the windows slide forward.
fn function_at_steps(
    samples: &[(Millis, f64)],
    steps: Steps,
    offset: Millis,
    name: &str,
    range: Millis,
    scalars: &[f64],
) -> Result<StepValues> {
    if let Some(is_rate) = match name {
        "rate" => Some(true),
        "increase" => Some(false),
        _ => None,
    } {
        return Ok(COUNTER_RESETS.with_borrow_mut(|resets| {
            counter_at_steps(samples, steps, offset, range, is_rate, resets)
        }));
    }
    let mut out = StepValues::with_capacity(steps.capacity_for(samples.len(), range));
    let mut annotations = Annotations::default();
    let mut windows = Windows::default();
    for index in 0..steps.count {
        let window = steps.window(index, offset, range);
        let Some(points) = windows.next(samples, &window) else {
            continue;
        };
        if let Some(v) = functions::eval_range_function_annotated(
            name,
            points,
            &window,
            scalars,
            &mut annotations,
        )? {
            out.steps.push(index);
            out.values.push(v);
        }
    }
    Ok(out)
}

thread_local! {
    /// Where a series' counter resets are (a sample below the one before it); reused
    /// across series.
    static COUNTER_RESETS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// `rate` or `increase` at every step. A window without a counter reset takes its
/// increase from its first and last samples instead of walking it: the same
/// arithmetic Prometheus does, since its walk adds nothing then. A window with a reset
/// is walked as usual. Resets are rare, so where they are is found in one pass first.
fn counter_at_steps(
    samples: &[(Millis, f64)],
    steps: Steps,
    offset: Millis,
    range: Millis,
    is_rate: bool,
    resets: &mut Vec<usize>,
) -> StepValues {
    resets.clear();
    for (index, pair) in samples.windows(2).enumerate() {
        if pair[1].1 < pair[0].1 {
            resets.push(index + 1);
        }
    }
    let mut out = StepValues::with_capacity(steps.capacity_for(samples.len(), range));
    let mut windows = Windows::default();
    // The first reset not before the current window's second sample.
    let mut next_reset = 0;
    for index in 0..steps.count {
        let window = steps.window(index, offset, range);
        let Some(points) = windows.next(samples, &window) else {
            continue;
        };
        if points.len() < 2 {
            continue;
        }
        while resets.get(next_reset).is_some_and(|&r| r <= windows.start) {
            next_reset += 1;
        }
        let reset_inside = resets.get(next_reset).is_some_and(|&r| r < windows.end);
        let increase = if reset_inside {
            range_functions::counter_increase(points)
        } else {
            points[points.len() - 1].1 - points[0].1
        };
        out.steps.push(index);
        out.values.push(range_functions::extrapolate(
            points, increase, &window, true, is_rate,
        ));
    }
    out
}

/// The index of the first sample after `bound`, at or after `from` (every sample
/// before `from` is at or before `bound`). Short windows move a few samples per step:
/// those are stepped over one by one; a longer move gallops.
fn advance(samples: &[(Millis, f64)], mut from: usize, bound: Millis) -> usize {
    for _ in 0..8 {
        match samples.get(from) {
            Some(&(t, _)) if t <= bound => from += 1,
            _ => return from,
        }
    }
    seek_after(samples, from, bound)
}

/// A series' window at successive steps: two indexes that only move forward, each
/// galloping from where it was.
#[derive(Debug, Default)]
struct Windows {
    start: usize,
    end: usize,
}

impl Windows {
    /// The samples in `window`, `None` when there are none. Windows must not move
    /// back.
    fn next<'s>(
        &mut self,
        samples: &'s [(Millis, f64)],
        window: &RangeWindow,
    ) -> Option<&'s [(Millis, f64)]> {
        self.start = advance(samples, self.start, window.range_start);
        self.end = advance(samples, self.end.max(self.start), window.range_end);
        samples
            .get(self.start..self.end)
            .filter(|points| !points.is_empty())
    }
}

/// The constant scalar arguments of a call (number literals, maybe in parentheses),
/// or `None` when one is not constant.
fn constant_scalars(args: &[&Expr], range_index: usize) -> Option<Vec<f64>> {
    let mut scalars = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if i == range_index {
            continue;
        }
        match unwrap_parens(arg) {
            Expr::NumberLiteral(n) => scalars.push(n.val),
            _ => return None,
        }
    }
    Some(scalars)
}

/// A selector a rollup can read: evaluated at the query's own steps (no `@`), one set
/// of matchers.
fn rollable_selector(vs: &VectorSelector) -> bool {
    vs.at.is_none() && vs.matchers.or_matchers.is_empty()
}

/// The matrix selector and constant scalars of a call a rollup can evaluate.
pub(super) fn rollable_call(call: &Call) -> Option<(&MatrixSelector, Vec<f64>)> {
    if !ROLLUP_FUNCTIONS.contains(&call.func.name) {
        return None;
    }
    let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
    let (range_index, ms) =
        args.iter()
            .enumerate()
            .find_map(|(i, arg)| match unwrap_parens(arg) {
                Expr::MatrixSelector(ms) => Some((i, ms)),
                _ => None,
            })?;
    if !rollable_selector(&ms.vs) {
        return None;
    }
    Some((ms, constant_scalars(&args, range_index)?))
}

pub(super) fn call_key(call: &Call) -> usize {
    std::ptr::from_ref(call) as usize
}

impl Evaluator<'_> {
    /// Rolls up `vs` at every step when it can be; `false` when it must be preloaded.
    pub(super) fn preload_rollup_selector(
        &mut self,
        store: &dyn Queryable,
        vs: &VectorSelector,
    ) -> Result<bool> {
        if !rollable_selector(vs) {
            return Ok(false);
        }
        let lookback = duration_ms(&self.options.lookback_delta);
        let series = self.roll_up(store, vs, lookback, Reduction::Newest { lookback })?;
        let series = series
            .into_iter()
            .map(|(labels, values)| RollupSeries {
                labels,
                values,
                cursor: 0,
                not_a_counter: None,
            })
            .collect();
        self.rollups.insert(
            selector_key(vs),
            Rollup {
                series,
                check_unique: false,
            },
        );
        Ok(true)
    }

    /// Rolls up `call` at every step when it can be; `false` when its arguments must be
    /// preloaded.
    pub(super) fn preload_rollup_call(
        &mut self,
        store: &dyn Queryable,
        call: &Call,
    ) -> Result<bool> {
        let Some((ms, scalars)) = rollable_call(call) else {
            return Ok(false);
        };
        let name = call.func.name;
        let range = duration_ms(&ms.range);
        let reduction = Reduction::Function {
            name,
            range,
            scalars: &scalars,
        };
        let series = self.roll_up(store, &ms.vs, range, reduction)?;
        let keeps_name = functions::range_function_keeps_metric_name(name);
        let counter_function = matches!(name, "rate" | "increase");
        let series: Vec<RollupSeries> = series
            .into_iter()
            .map(|(labels, values)| RollupSeries {
                not_a_counter: counter_function
                    .then(|| not_a_counter_info(&labels))
                    .flatten(),
                labels: if keeps_name {
                    labels
                } else {
                    drop_name_or_mark(&labels, self.delayed)
                },
                values,
                cursor: 0,
            })
            .collect();
        let distinct = series
            .iter()
            .map(|s| &s.labels)
            .collect::<HashSet<_>>()
            .len()
            == series.len();
        self.rollups.insert(
            call_key(call),
            Rollup {
                series,
                check_unique: !distinct,
            },
        );
        Ok(true)
    }

    /// Reads `vs` over every step's window (`reach` before the first) and reduces each
    /// series with `reduction` as the store decodes it.
    fn roll_up(
        &mut self,
        store: &dyn Queryable,
        vs: &VectorSelector,
        reach: Millis,
        reduction: Reduction<'_>,
    ) -> Result<Vec<(Labels, StepValues)>> {
        let steps = self.steps;
        let offset = offset_ms(vs.offset.as_ref());
        let mint = self.start.saturating_sub(offset).saturating_sub(reach);
        let maxt = self.end.saturating_sub(offset);
        let mut matchers = selector_matchers(vs)?;
        let Some(matchers) = matchers.pop() else {
            return Ok(Vec::new());
        };
        let deadline = self.deadline;
        let timeout = self.options.timeout;
        let visit = move |samples: &[(Millis, f64)]| -> Result<StepValues> {
            if deadline.is_some_and(|deadline| Instant::now() > deadline) {
                return Err(Error::Timeout {
                    phase: "query evaluation",
                    limit_seconds: timeout.as_secs_f64(),
                });
            }
            reduce(samples, steps, offset, reduction)
        };
        let series = store.select_visit(&matchers, mint, maxt, &visit)?;
        // What the rollup holds instead of the samples it read.
        let held: usize = series.iter().map(|(_, values)| values.steps.len()).sum();
        self.check_samples_would_fit(held)?;
        Ok(series)
    }

    /// The rolled-up node `key`'s vector at step `t`, or `None` when it was not rolled
    /// up.
    pub(super) fn eval_rollup(
        &mut self,
        key: usize,
        t: Millis,
    ) -> Result<Option<Vec<VectorSample>>> {
        let index = self.steps.index_of(t);
        let Some(rollup) = self.rollups.get_mut(&key) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let mut infos = Vec::new();
        rollup.at_step(index?, |_, series, v, sample_t| {
            if let Some(info) = series.not_a_counter.take() {
                infos.push(info);
            }
            out.push(VectorSample {
                labels: series.labels.clone(),
                t: sample_t.unwrap_or(t),
                v,
            });
        })?;
        let check_unique = rollup.check_unique;
        for info in infos {
            self.add_info(info);
        }
        if check_unique {
            check_unique_unless_delayed(&out, self.delayed)?;
        }
        self.check_samples(out.len())?;
        Ok(Some(out))
    }

    /// A reducing aggregation without parameter (`sum`, `avg`, `max`, …) directly over
    /// a rolled-up node, at step `t`, without making the node's vector: each series'
    /// group is found once per query, and each step adds the series' values into their
    /// groups by index. The same arithmetic, results, infos and limits as the general
    /// path; `None` when `agg` does not qualify.
    pub(super) fn eval_aggregate_over_rollup(
        &mut self,
        agg: &AggregateExpr,
        t: Millis,
    ) -> Result<Option<Vec<VectorSample>>> {
        let op = agg.op.id();
        if agg.param.is_some() || !aggregate::is_reducing(op) {
            return Ok(None);
        }
        let key = match unwrap_parens(&agg.expr) {
            Expr::Call(call) => call_key(call),
            Expr::VectorSelector(vs) => selector_key(vs),
            _ => return Ok(None),
        };
        let index = self.steps.index_of(t);
        let Some(rollup) = self.rollups.get_mut(&key) else {
            return Ok(None);
        };
        // Output labels that may repeat must fail as on the general path.
        if rollup.check_unique {
            return Ok(None);
        }
        let groups = self
            .rollup_groups
            .entry(std::ptr::from_ref(agg) as usize)
            .or_insert_with(|| RollupGroups::new(rollup, agg.modifier.as_ref()));
        groups.slots.fill(usize::MAX);
        let mut step_groups: Vec<aggregate::Group> = Vec::new();
        let mut infos = Vec::new();
        let mut count = 0;
        rollup.at_step(index?, |series_index, series, v, _| {
            count += 1;
            if let Some(info) = series.not_a_counter.take() {
                infos.push(info);
            }
            let group = groups.of_series[series_index];
            match groups.slots[group] {
                usize::MAX => {
                    groups.slots[group] = step_groups.len();
                    step_groups.push(aggregate::Group::new(op, groups.labels[group].clone(), v));
                }
                slot => step_groups[slot].add(op, v),
            }
        })?;
        for info in infos {
            self.add_info(info);
        }
        self.check_samples(count)?;
        Ok(Some(
            step_groups
                .into_iter()
                .map(|group| group.finish(op, f64::NAN, t))
                .collect(),
        ))
    }
}

/// An aggregation's groups over the series of a rollup, made once per query.
#[derive(Debug)]
pub(super) struct RollupGroups {
    /// Per series of the rollup, its group.
    of_series: Vec<usize>,
    /// Per group, its labels.
    labels: Vec<Labels>,
    /// Per group, its place in the current step's output (`usize::MAX`: none yet).
    slots: Vec<usize>,
}

impl RollupGroups {
    fn new(rollup: &Rollup, modifier: Option<&LabelModifier>) -> RollupGroups {
        // By content: two series with equal group labels are one group.
        let mut index_of: IdHashMap<Labels, usize> = IdHashMap::default();
        let mut labels = Vec::new();
        let of_series = rollup
            .series
            .iter()
            .map(|series| {
                let group = aggregate::group_labels(&series.labels, modifier);
                *index_of.entry(group).or_insert_with_key(|group| {
                    labels.push(group.clone());
                    labels.len() - 1
                })
            })
            .collect();
        let slots = vec![usize::MAX; labels.len()];
        RollupGroups {
            of_series,
            labels,
            slots,
        }
    }
}

impl Rollup {
    /// Calls `visit(series index, series, value, sample time)` for every series with a
    /// value at step `index`, in series order (the sample time only for instant
    /// selectors).
    fn at_step(
        &mut self,
        index: u32,
        mut visit: impl FnMut(usize, &mut RollupSeries, f64, Option<Millis>),
    ) -> Result<()> {
        for (series_index, series) in self.series.iter_mut().enumerate() {
            let steps = &series.values.steps;
            // Steps ascend; were one read again or out of order, search from the start.
            if series.cursor > 0 && steps.get(series.cursor - 1).is_some_and(|&s| s >= index) {
                series.cursor = steps.partition_point(|&s| s < index);
            }
            while steps.get(series.cursor).is_some_and(|&s| s < index) {
                series.cursor += 1;
            }
            if steps.get(series.cursor) != Some(&index) {
                continue;
            }
            let cursor = series.cursor;
            let Some(&v) = series.values.values.get(cursor) else {
                return Err(Error::Storage(
                    "a series' step values and steps differ in length".into(),
                ));
            };
            let sample_t = series.values.times.get(cursor).copied();
            visit(series_index, series, v, sample_t);
        }
        Ok(())
    }
}
