//! Function calls: the functions the engine answers itself (`time`, `vector`,
//! `scalar`, `timestamp`, `absent*`, `sort*`, …) and dispatch of the rest to the
//! function library, per series per step for range-vector functions.

use std::cmp::Ordering;
use std::collections::HashSet;

use promql_parser::label::MatchOp as ParserMatchOp;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Call, Expr, MatrixSelector, VectorSelector};
use sightline_model::{Labels, METRIC_NAME_LABEL, is_stale_nan};

use super::selector::{LIMIT_CHECK_EVERY_SERIES, duration_ms, selector_key};
use super::{
    DROP_NAME_MARKER, Evaluator, StepValue, check_unique_unless_delayed, drop_name_or_mark,
};
use crate::functions::{self, Annotations, RangeWindow};
use crate::value::{Point, VectorSample};
use crate::{Error, Millis, Result};

const DATE_FUNCTIONS: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
];

pub(super) fn unwrap_parens(mut expr: &Expr) -> &Expr {
    while let Expr::Paren(p) = expr {
        expr = &p.expr;
    }
    expr
}

/// Output labels of a range function over one matrix selector, made once per query.
#[derive(Debug)]
pub(super) struct RangeCallLabels {
    /// One per stored series of the selector, in the same order.
    labels: Vec<Labels>,
    /// No two are equal.
    distinct: bool,
    /// Per stored series, `rate`/`increase`'s info for a name without a counter
    /// suffix; taken when first given.
    not_a_counter: Vec<Option<String>>,
}

/// The info `rate`/`increase` give on a series whose name has no counter suffix.
pub(super) fn not_a_counter_info(labels: &Labels) -> Option<String> {
    let metric = labels.metric_name()?;
    let counter_like = ["_total", "_sum", "_count", "_bucket"]
        .iter()
        .any(|suffix| metric.ends_with(suffix));
    (!counter_like).then(|| {
        format!(
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}"
        )
    })
}

/// Labels of `absent()`'s output: the selector's equality matchers (a label matched
/// more than once is dropped, as Prometheus does). Parentheses around the selector do
/// not count: Prometheus strips them from every function argument before the call.
fn absent_labels(expr: &Expr) -> Labels {
    let vs: &VectorSelector = match unwrap_parens(expr) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut builder = Labels::empty().to_builder();
    let mut seen: Vec<&str> = Vec::new();
    let matchers = vs
        .matchers
        .matchers
        .iter()
        .chain(vs.matchers.or_matchers.iter().flatten());
    for m in matchers {
        if m.name == METRIC_NAME_LABEL {
            continue;
        }
        if matches!(m.op, ParserMatchOp::Equal) && !seen.contains(&m.name.as_str()) {
            builder.set(m.name.clone(), m.value.clone());
            seen.push(&m.name);
        } else {
            builder.delete(&m.name);
        }
    }
    builder.build()
}

/// Natural order of label values (digit runs compare as numbers), as Prometheus'
/// `natsort.Compare` used by `sort_by_label`.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let a_len = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let b_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (a_num, a_rest) = a.split_at(a_len);
                let (b_num, b_rest) = b.split_at(b_len);
                let a_trim: &[u8] = &a_num[a_num.iter().take_while(|c| **c == b'0').count()..];
                let b_trim: &[u8] = &b_num[b_num.iter().take_while(|c| **c == b'0').count()..];
                let order = a_trim
                    .len()
                    .cmp(&b_trim.len())
                    .then_with(|| a_trim.cmp(b_trim))
                    .then_with(|| a_len.cmp(&b_len));
                if order != Ordering::Equal {
                    return order;
                }
                a = a_rest;
                b = b_rest;
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn value_order(a: f64, b: f64, descending: bool) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) if descending => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

impl Evaluator<'_> {
    pub(crate) fn eval_call(&mut self, call: &Call, t: Millis) -> Result<StepValue> {
        if let Some(vector) = self.eval_rollup(super::rollup::call_key(call), t)? {
            return Ok(StepValue::Vector(vector));
        }
        let name = call.func.name;
        let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
        match name {
            "time" => return Ok(StepValue::Scalar(t as f64 / 1000.0)),
            "pi" => return Ok(StepValue::Scalar(std::f64::consts::PI)),
            "vector" => {
                let v = self.scalar_arg(&args, 0, t)?;
                return Ok(StepValue::Vector(vec![VectorSample {
                    labels: Labels::empty(),
                    t,
                    v,
                }]));
            }
            "scalar" => {
                let vector = self.vector_arg(&args, 0, t)?;
                let v = match vector.as_slice() {
                    [only] => only.v,
                    _ => f64::NAN,
                };
                return Ok(StepValue::Scalar(v));
            }
            "timestamp" => {
                let from_selector = args
                    .first()
                    .is_some_and(|a| matches!(unwrap_parens(a), Expr::VectorSelector(_)));
                let vector = self.vector_arg(&args, 0, t)?;
                let out: Vec<VectorSample> = vector
                    .into_iter()
                    .map(|s| VectorSample {
                        labels: drop_name_or_mark(&s.labels, self.delayed),
                        t,
                        v: if from_selector {
                            s.t as f64 / 1000.0
                        } else {
                            t as f64 / 1000.0
                        },
                    })
                    .collect();
                check_unique_unless_delayed(&out, self.delayed)?;
                return Ok(StepValue::Vector(out));
            }
            "absent" => {
                let vector = self.vector_arg(&args, 0, t)?;
                if !vector.is_empty() {
                    return Ok(StepValue::Vector(Vec::new()));
                }
                let labels = args.first().map(|a| absent_labels(a)).unwrap_or_default();
                return Ok(StepValue::Vector(vec![VectorSample { labels, t, v: 1.0 }]));
            }
            "absent_over_time" => {
                let arg = args.first().ok_or_else(|| missing_argument(name))?;
                let window = self.eval_window(arg, t)?;
                if window.series.iter().any(|s| !s.points.is_empty()) {
                    return Ok(StepValue::Vector(Vec::new()));
                }
                let labels = absent_labels(arg);
                return Ok(StepValue::Vector(vec![VectorSample { labels, t, v: 1.0 }]));
            }
            "sort" | "sort_desc" => {
                let mut vector = self.vector_arg(&args, 0, t)?;
                let descending = name == "sort_desc";
                vector.sort_by(|a, b| value_order(a.v, b.v, descending));
                return Ok(StepValue::Vector(stamp(vector, t)));
            }
            "sort_by_label" | "sort_by_label_desc" => {
                let mut vector = self.vector_arg(&args, 0, t)?;
                let mut names = Vec::new();
                for arg in args.iter().skip(1) {
                    if let StepValue::String(s) = self.eval(arg, t)? {
                        names.push(s);
                    }
                }
                let descending = name == "sort_by_label_desc";
                vector.sort_by(|a, b| {
                    let mut order = Ordering::Equal;
                    for label in &names {
                        let (x, y) = (
                            a.labels.get(label).unwrap_or(""),
                            b.labels.get(label).unwrap_or(""),
                        );
                        if x != y {
                            order = natural_cmp(x, y);
                            break;
                        }
                    }
                    if order == Ordering::Equal {
                        order = a.labels.cmp(&b.labels);
                    }
                    if descending { order.reverse() } else { order }
                });
                return Ok(StepValue::Vector(stamp(vector, t)));
            }
            _ => {}
        }
        if let Some(range_index) = args
            .iter()
            .position(|a| a.value_type() == ValueType::Matrix)
        {
            return self.eval_range_call(name, &args, range_index, t);
        }
        let mut vector = None;
        let mut scalars = Vec::new();
        let mut strings = Vec::new();
        for arg in &args {
            match self.eval(arg, t)? {
                StepValue::Vector(v) if vector.is_none() => vector = Some(v),
                StepValue::Vector(_) => {
                    return Err(Error::Execution(format!(
                        "{name}: more than one instant vector argument"
                    )));
                }
                StepValue::Scalar(v) => scalars.push(v),
                StepValue::String(s) => strings.push(s),
                StepValue::Matrix(_) => {
                    return Err(Error::Execution(format!(
                        "{name}: unexpected range vector argument"
                    )));
                }
            }
        }
        let input = match vector {
            Some(v) => stamp(v, t),
            None if DATE_FUNCTIONS.contains(&name) => vec![VectorSample {
                labels: Labels::empty(),
                t,
                v: t as f64 / 1000.0,
            }],
            None => Vec::new(),
        };
        let mut annotations = Annotations::default();
        let memo = self
            .function_memos
            .entry(std::ptr::from_ref(call) as usize)
            .or_default();
        let out = functions::eval_vector_function_annotated(
            name,
            input,
            &scalars,
            &strings,
            t,
            &mut annotations,
            memo,
        )?;
        self.absorb(annotations);
        let renames_metric = matches!(name, "label_replace" | "label_join")
            && strings.first().is_some_and(|dst| dst == METRIC_NAME_LABEL);
        let out = if self.delayed && renames_metric {
            out.into_iter()
                .map(|mut s| {
                    if s.labels.get(DROP_NAME_MARKER).is_some() {
                        let mut builder = s.labels.to_builder();
                        builder.delete(DROP_NAME_MARKER);
                        s.labels = builder.build();
                    }
                    s
                })
                .collect()
        } else {
            out
        };
        check_unique_unless_delayed(&out, self.delayed)?;
        self.check_samples(out.len())?;
        Ok(StepValue::Vector(out))
    }

    fn eval_range_call(
        &mut self,
        name: &str,
        args: &[&Expr],
        range_index: usize,
        t: Millis,
    ) -> Result<StepValue> {
        let mut scalars = Vec::new();
        for (i, arg) in args.iter().enumerate() {
            if i == range_index {
                continue;
            }
            match self.eval(arg, t)? {
                StepValue::Scalar(v) => scalars.push(v),
                other => {
                    return Err(Error::Execution(format!(
                        "{name}: expected scalar argument, got {}",
                        other.type_name()
                    )));
                }
            }
        }
        let keeps_name = functions::range_function_keeps_metric_name(name);
        if let Expr::MatrixSelector(ms) = unwrap_parens(args[range_index]) {
            return self.eval_range_call_on_selector(name, ms, &scalars, keeps_name, t);
        }
        let window = self.eval_window(args[range_index], t)?;
        let range_window = RangeWindow {
            eval_t: t,
            range_start: window.range_start,
            range_end: window.range_end,
        };
        let mut annotations = Annotations::default();
        let counter_function = matches!(name, "rate" | "increase");
        let mut out = Vec::new();
        for series in window.series {
            if series.points.is_empty() {
                continue;
            }
            let Some(v) = functions::eval_range_function_annotated(
                name,
                &series.points,
                &range_window,
                &scalars,
                &mut annotations,
            )?
            else {
                continue;
            };
            if counter_function && let Some(info) = not_a_counter_info(&series.labels) {
                self.add_info(info);
            }
            let labels = if keeps_name {
                series.labels
            } else {
                drop_name_or_mark(&series.labels, self.delayed)
            };
            out.push(VectorSample { labels, t, v });
        }
        self.absorb(annotations);
        check_unique_unless_delayed(&out, self.delayed)?;
        self.check_samples(out.len())?;
        Ok(StepValue::Vector(out))
    }

    /// [`Self::eval_range_call`] over a matrix selector, with the same result and
    /// checks in the same order, without building the step's range vector: each
    /// stored series' output labels are made once per query instead of twice per step
    /// (label sets are vectors of owned strings, so that was most of a range query's
    /// time), and one points buffer serves every series.
    fn eval_range_call_on_selector(
        &mut self,
        name: &str,
        ms: &MatrixSelector,
        scalars: &[f64],
        keeps_name: bool,
        t: Millis,
    ) -> Result<StepValue> {
        let reft = self.ref_time(ms.vs.at.as_ref(), ms.vs.offset.as_ref(), t);
        let range_start = reft.saturating_sub(duration_ms(&ms.range));
        let key = selector_key(&ms.vs);
        let counter_function = matches!(name, "rate" | "increase");
        if !self.range_call_labels.contains_key(&key) {
            let delayed = self.delayed;
            let data = self.selector_data(&ms.vs)?;
            let not_a_counter = data
                .iter()
                .map(|series| {
                    counter_function
                        .then(|| not_a_counter_info(&series.labels))
                        .flatten()
                })
                .collect();
            let labels: Vec<Labels> = data
                .iter()
                .map(|series| {
                    if keeps_name {
                        series.labels.clone()
                    } else {
                        drop_name_or_mark(&series.labels, delayed)
                    }
                })
                .collect();
            let distinct = labels.iter().collect::<HashSet<_>>().len() == labels.len();
            self.range_call_labels.insert(
                key,
                RangeCallLabels {
                    labels,
                    distinct,
                    not_a_counter,
                },
            );
        }
        // Every series' points in the window, back to back (`ends[i]` is where series
        // i's end), so the window's size is checked before any function runs.
        let mut points = std::mem::take(&mut self.range_points);
        points.clear();
        // An error below drops the cursors: the next step searches from the start.
        let mut cursors = self.cursors.remove(&key).unwrap_or_default();
        let data = self.selector_data(&ms.vs)?;
        let mut ends = Vec::with_capacity(data.len());
        for (index, series) in data.iter().enumerate() {
            // As in `eval_window`: limits are checked while the window fills.
            if index % LIMIT_CHECK_EVERY_SERIES == LIMIT_CHECK_EVERY_SERIES - 1 {
                self.check_deadline()?;
                self.check_samples_would_fit(points.len())?;
            }
            let (lo, hi) = cursors.window(index, &series.samples, range_start, reft);
            let window = series.samples.get(lo..hi).unwrap_or_default();
            points.extend(
                window
                    .iter()
                    .filter(|(_, v)| !is_stale_nan(*v))
                    .map(|&(t, v)| Point { t, v }),
            );
            ends.push(points.len());
        }
        self.cursors.insert(key, cursors);
        self.check_samples(points.len())?;
        let Some(cached) = self.range_call_labels.get_mut(&key) else {
            return Err(Error::Execution(
                "internal error: range function labels were not made".into(),
            ));
        };
        let range_window = RangeWindow {
            eval_t: t,
            range_start,
            range_end: reft,
        };
        let mut annotations = Annotations::default();
        let mut infos = Vec::new();
        let mut out = Vec::new();
        let mut start = 0;
        for (index, &end) in ends.iter().enumerate() {
            let series_points = points.get(start..end).unwrap_or_default();
            start = end;
            if series_points.is_empty() {
                continue;
            }
            let Some(v) = functions::eval_range_function_annotated(
                name,
                series_points,
                &range_window,
                scalars,
                &mut annotations,
            )?
            else {
                continue;
            };
            if let Some(info) = cached.not_a_counter.get_mut(index).and_then(Option::take) {
                infos.push(info);
            }
            out.push(VectorSample {
                labels: cached.labels[index].clone(),
                t,
                v,
            });
        }
        let distinct = cached.distinct;
        self.range_points = points;
        for info in infos {
            self.add_info(info);
        }
        self.absorb(annotations);
        // Output labels that are all distinct cannot repeat within one step.
        if !distinct {
            check_unique_unless_delayed(&out, self.delayed)?;
        }
        self.check_samples(out.len())?;
        Ok(StepValue::Vector(out))
    }

    fn absorb(&mut self, annotations: Annotations) {
        for warning in annotations.warnings {
            self.add_warning(warning);
        }
        for info in annotations.infos {
            self.add_info(info);
        }
    }

    fn vector_arg(&mut self, args: &[&Expr], index: usize, t: Millis) -> Result<Vec<VectorSample>> {
        let arg = args
            .get(index)
            .ok_or_else(|| Error::Execution("missing function argument".into()))?;
        self.eval_vector(arg, t)
    }

    fn scalar_arg(&mut self, args: &[&Expr], index: usize, t: Millis) -> Result<f64> {
        let arg = args
            .get(index)
            .ok_or_else(|| Error::Execution("missing function argument".into()))?;
        self.eval_scalar(arg, t)
    }
}

fn missing_argument(name: &str) -> Error {
    Error::Execution(format!("{name}: missing argument"))
}

fn stamp(vector: Vec<VectorSample>, t: Millis) -> Vec<VectorSample> {
    vector
        .into_iter()
        .map(|s| VectorSample { t, ..s })
        .collect()
}
