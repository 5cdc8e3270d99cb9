//! PromQL's function library, ported from Prometheus 3.5's `promql/functions.go` and
//! `promql/quantile.go` with the same arithmetic (Kahan summation, extrapolation
//! rules, NaN ordering), so results agree with Prometheus to the last bit where the
//! platform's libm allows.
//!
//! The engine owns argument evaluation, step iteration and output labels of range
//! functions; this module only maps one series' window (range functions) or one
//! instant vector (everything else) to values. Functions that need the query's AST
//! or produce scalars (`absent`, `scalar`, `vector`, `time`, `pi`, `info`) are the
//! engine's.

mod histogram;
pub use histogram::almost_equal;
mod instant;
mod labels;
pub(crate) mod range;
#[cfg(test)]
mod tests;

use sightline_model::Labels;

use crate::go_format::go_format_float;
use crate::memo::{InternedMemo, LabelMemo};
use crate::value::{Sample, VectorSample};
use crate::{Error, Millis, Result};

/// Context of one range-vector function call for one series at one evaluation step.
#[derive(Debug, Clone)]
pub(crate) struct RangeWindow {
    /// The evaluation time of the step (after `@`/`offset` adjustments are NOT applied:
    /// this is the step time the output sample carries).
    pub(crate) eval_t: Millis,
    /// The window is `(range_start, range_end]`, in the series' own (offset-adjusted) time.
    pub(crate) range_start: Millis,
    pub(crate) range_end: Millis,
}

/// Prometheus-style annotations a function call produced (warnings and infos), in
/// Prometheus' wording without the position suffix.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Annotations {
    pub(crate) warnings: Vec<String>,
    pub(crate) infos: Vec<String>,
}

impl Annotations {
    pub(crate) fn warn_invalid_quantile(&mut self, q: f64) {
        self.warnings.push(format!(
            "PromQL warning: quantile value should be between 0 and 1, got {}",
            go_format_float(q)
        ));
    }
}

/// Evaluates a function whose (first) argument is a range vector, for one series:
/// `points` are the series' samples inside the window, ascending, staleness markers
/// already removed. `scalar_args` are the other (scalar) arguments in call order
/// (e.g. `quantile_over_time(0.9, m[5m])` → `[0.9]`, `predict_linear(m[5m], 60)` →
/// `[60]`, `double_exponential_smoothing(m[5m], 0.5, 0.1)` → `[0.5, 0.1]`).
/// Returns `None` when the function produces no output for this series (e.g. `rate`
/// with fewer than two points).
#[allow(
    dead_code,
    reason = "part of the engine contract; the engine may use the annotated variant"
)]
pub(crate) fn eval_range_function(
    name: &str,
    points: &[impl Sample],
    window: &RangeWindow,
    scalar_args: &[f64],
) -> Result<Option<f64>> {
    eval_range_function_annotated(
        name,
        points,
        window,
        scalar_args,
        &mut Annotations::default(),
    )
}

/// [`eval_range_function`] that also reports Prometheus' annotations (e.g. the
/// invalid-quantile warning of `quantile_over_time`).
pub(crate) fn eval_range_function_annotated(
    name: &str,
    points: &[impl Sample],
    window: &RangeWindow,
    scalar_args: &[f64],
    annotations: &mut Annotations,
) -> Result<Option<f64>> {
    let value = match name {
        "rate" => range::extrapolated_rate(points, window, true, true),
        "increase" => range::extrapolated_rate(points, window, true, false),
        "delta" => range::extrapolated_rate(points, window, false, false),
        "irate" => range::instant_value(points, true),
        "idelta" => range::instant_value(points, false),
        "deriv" => range::deriv(points),
        "predict_linear" => {
            range::predict_linear(points, window, scalar_arg(name, scalar_args, 0)?)
        }
        "changes" => range::changes(points),
        "resets" => range::resets(points),
        "avg_over_time" => range::avg_over_time(points),
        "sum_over_time" => range::sum_over_time(points),
        "count_over_time" => non_empty(points).map(|p| p.len() as f64),
        "min_over_time" => {
            range::compare_over_time(points, |cur, best| cur < best || best.is_nan(), false)
        }
        "max_over_time" => {
            range::compare_over_time(points, |cur, best| cur > best || best.is_nan(), false)
        }
        "ts_of_min_over_time" => {
            range::compare_over_time(points, |cur, best| cur <= best || best.is_nan(), true)
        }
        "ts_of_max_over_time" => {
            range::compare_over_time(points, |cur, best| cur >= best || best.is_nan(), true)
        }
        "stddev_over_time" => range::variance_over_time(points).map(f64::sqrt),
        "stdvar_over_time" => range::variance_over_time(points),
        "last_over_time" => points.last().map(|p| p.v()),
        "first_over_time" => points.first().map(|p| p.v()),
        "ts_of_last_over_time" => points.last().map(|p| p.t() as f64 / 1000.0),
        "ts_of_first_over_time" => points.first().map(|p| p.t() as f64 / 1000.0),
        // absent_over_time: like Prometheus, 1 for a series with samples; the engine
        // turns "no series at all" into the absent result.
        "present_over_time" | "absent_over_time" => non_empty(points).map(|_| 1.0),
        "quantile_over_time" => {
            range::quantile_over_time(points, scalar_arg(name, scalar_args, 0)?, annotations)
        }
        "mad_over_time" => range::mad_over_time(points),
        "double_exponential_smoothing" | "holt_winters" => {
            return range::double_exponential_smoothing(
                points,
                scalar_arg(name, scalar_args, 0)?,
                scalar_arg(name, scalar_args, 1)?,
            );
        }
        _ => {
            return Err(Error::Execution(format!(
                "unknown range-vector function {name}()"
            )));
        }
    };
    Ok(value)
}

fn non_empty<P: Sample>(points: &[P]) -> Option<&[P]> {
    if points.is_empty() {
        None
    } else {
        Some(points)
    }
}

fn scalar_arg(name: &str, scalar_args: &[f64], index: usize) -> Result<f64> {
    scalar_args.get(index).copied().ok_or_else(|| {
        Error::Execution(format!(
            "function {name}() is missing scalar argument {}",
            index + 1
        ))
    })
}

fn string_arg<'a>(name: &str, string_args: &'a [String], index: usize) -> Result<&'a str> {
    string_args.get(index).map(String::as_str).ok_or_else(|| {
        Error::Execution(format!(
            "function {name}() is missing string argument {}",
            index + 1
        ))
    })
}

/// Evaluates a function whose argument is an instant vector (plus scalar and string
/// arguments in call order), e.g. `abs`, `clamp`, `round`, `label_replace`,
/// `label_join`, `histogram_quantile`, `sort`, time functions like `hour(v)`.
/// The engine has already dropped nothing: dropping `__name__` where Prometheus does is
/// done HERE (the function knows whether it keeps the name).
///
/// Output samples carry `t = eval_t`. `timestamp(v)` reads each input sample's `t`,
/// so the engine must pass the samples' own timestamps for that function.
#[allow(
    dead_code,
    reason = "part of the engine contract; the engine may use the annotated variant"
)]
pub(crate) fn eval_vector_function(
    name: &str,
    input: Vec<VectorSample>,
    scalar_args: &[f64],
    string_args: &[String],
    eval_t: Millis,
) -> Result<Vec<VectorSample>> {
    eval_vector_function_annotated(
        name,
        input,
        scalar_args,
        string_args,
        eval_t,
        &mut Annotations::default(),
        &mut FunctionMemo::default(),
    )
}

/// What one function call node derives from its inputs' labels, kept for the whole
/// query (see [`crate::memo`]).
#[derive(Debug, Default)]
pub(crate) struct FunctionMemo {
    without_name: LabelMemo<Labels>,
    /// `histogram_quantile`/`histogram_fraction`: each bucket series' labels without
    /// `le`, interned, and its parsed `le`.
    pub(super) bucket_groups: InternedMemo,
    pub(super) bucket_bounds: LabelMemo<Option<f64>>,
}

impl FunctionMemo {
    /// [`drop_metric_name`], once per input set.
    pub(crate) fn drop_metric_name(&mut self, labels: &Labels) -> Labels {
        self.without_name
            .get_or_insert_with(labels, drop_metric_name)
    }
}

/// [`eval_vector_function`] that also reports Prometheus' annotations (e.g.
/// `histogram_quantile`'s invalid-quantile warning and forced-monotonicity info).
pub(crate) fn eval_vector_function_annotated(
    name: &str,
    input: Vec<VectorSample>,
    scalar_args: &[f64],
    string_args: &[String],
    eval_t: Millis,
    annotations: &mut Annotations,
    memo: &mut FunctionMemo,
) -> Result<Vec<VectorSample>> {
    let mut output = if let Some(f) = instant::simple_math_function(name) {
        instant::map_values(input, f, memo)
    } else if let Some(field) = instant::CalendarField::from_function_name(name) {
        instant::map_values(input, |v| field.of(v), memo)
    } else {
        match name {
            "round" => instant::round(input, scalar_args.first().copied().unwrap_or(1.0), memo),
            "clamp" => instant::clamp(
                input,
                scalar_arg(name, scalar_args, 0)?,
                scalar_arg(name, scalar_args, 1)?,
                memo,
            ),
            "clamp_min" => instant::clamp(
                input,
                scalar_arg(name, scalar_args, 0)?,
                f64::INFINITY,
                memo,
            ),
            "clamp_max" => instant::clamp(
                input,
                f64::NEG_INFINITY,
                scalar_arg(name, scalar_args, 0)?,
                memo,
            ),
            "timestamp" => instant::timestamp(input, memo),
            "sort" => instant::sort_by_value(input, false),
            "sort_desc" => instant::sort_by_value(input, true),
            "sort_by_label" => instant::sort_by_label(input, string_args, false),
            "sort_by_label_desc" => instant::sort_by_label(input, string_args, true),
            "label_replace" => labels::label_replace(
                input,
                string_arg(name, string_args, 0)?,
                string_arg(name, string_args, 1)?,
                string_arg(name, string_args, 2)?,
                string_arg(name, string_args, 3)?,
            )?,
            "label_join" => labels::label_join(
                input,
                string_arg(name, string_args, 0)?,
                string_arg(name, string_args, 1)?,
                string_args.get(2..).unwrap_or(&[]),
            )?,
            "histogram_quantile" => histogram::histogram_quantile(
                scalar_arg(name, scalar_args, 0)?,
                input,
                annotations,
                memo,
            ),
            "histogram_fraction" => histogram::histogram_fraction(
                scalar_arg(name, scalar_args, 0)?,
                scalar_arg(name, scalar_args, 1)?,
                input,
                annotations,
                memo,
            ),
            // These read native histograms only and ignore float samples; without
            // native histograms their result is always empty, as in Prometheus.
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
            | "histogram_stdvar" => Vec::new(),
            _ => {
                return Err(Error::Execution(format!(
                    "function {name}() is not an instant-vector function of this library"
                )));
            }
        }
    };
    for sample in &mut output {
        sample.t = eval_t;
    }
    Ok(output)
}

/// True when `name` takes a range vector as its range argument.
#[allow(
    dead_code,
    reason = "part of the engine contract; the engine may use the annotated variant"
)]
pub(crate) fn takes_range_vector(name: &str) -> bool {
    name.ends_with("_over_time")
        || matches!(
            name,
            "rate"
                | "irate"
                | "increase"
                | "delta"
                | "idelta"
                | "deriv"
                | "predict_linear"
                | "changes"
                | "resets"
                | "holt_winters"
                | "double_exponential_smoothing"
        )
}

/// True when the output series of range function `name` keeps the input's metric
/// name (Prometheus 3 without delayed name removal drops it for every other one).
pub(crate) fn range_function_keeps_metric_name(name: &str) -> bool {
    matches!(name, "last_over_time" | "first_over_time")
}

/// `labels` without the metric name and the other reserved metadata labels
/// (`__type__`, `__unit__`), as Prometheus 3 drops them from a changed value.
pub(crate) fn drop_metric_name(labels: &Labels) -> Labels {
    const METADATA_LABELS: [&str; 3] = ["__name__", "__type__", "__unit__"];
    if !labels
        .iter()
        .any(|l| METADATA_LABELS.contains(&l.name.as_str()))
    {
        return labels.clone();
    }
    Labels::from_sorted_unchecked(
        labels
            .iter()
            .filter(|l| !METADATA_LABELS.contains(&l.name.as_str()))
            .cloned()
            .collect(),
    )
}

/// Kahan–Neumaier compensated summation step (Prometheus' `kahansum.Inc`):
/// returns the new sum and compensation.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus' `quantile`: the q-quantile of `values` with linear interpolation
/// between neighbours (sorts `values`, NaN first). NaN for no values or q NaN,
/// -Inf for q < 0, +Inf for q > 1. Also what the `quantile` aggregation uses.
pub(crate) fn quantile_of(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower_index = rank.floor().max(0.0);
    let upper_index = (lower_index + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    // Both indexes are in [0, n-1] by construction, so the casts are in bounds.
    values[lower_index as usize] * (1.0 - weight) + values[upper_index as usize] * weight
}
