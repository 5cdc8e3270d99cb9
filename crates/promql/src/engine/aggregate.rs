//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, `count_values`, …) with
//! `by` / `without` grouping.

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMIT_RATIO, T_LIMITK, T_MAX, T_MIN,
    T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};
use sightline_model::id_hash::IdHashMap;
use sightline_model::{Labels, METRIC_NAME_LABEL};

use super::{DROP_NAME_MARKER, Evaluator, StepValue};
use crate::functions::{kahan_inc as kahan_sum_inc, quantile_of as quantile};
use crate::go_format::go_format_float_fixed;
use crate::value::VectorSample;
use crate::{Error, Millis, Result};

/// Prometheus' `Labels.Hash()`: xxh64 over `name 0xff value 0xff …`.
fn prometheus_hash(labels: &Labels) -> u64 {
    let mut bytes = Vec::with_capacity(labels.text_len() + 2 * labels.len());
    for label in labels.iter() {
        bytes.extend_from_slice(label.name.as_bytes());
        bytes.push(0xff);
        bytes.extend_from_slice(label.value.as_bytes());
        bytes.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&bytes, 0)
}

pub(super) fn group_labels(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        None => Labels::empty(),
        Some(LabelModifier::Include(names)) => {
            // Grouping by `__name__` keeps a pending name drop (delayed name removal).
            let keep_marker = names.labels.iter().any(|n| n == METRIC_NAME_LABEL);
            Labels::from_pairs(
                labels
                    .iter()
                    .filter(|l| {
                        names.labels.contains(&l.name)
                            || (keep_marker && l.name == DROP_NAME_MARKER)
                    })
                    .map(|l| (l.name.as_str(), l.value.as_str())),
            )
        }
        Some(LabelModifier::Exclude(names)) => Labels::from_pairs(
            labels
                .iter()
                .filter(|l| {
                    l.name != METRIC_NAME_LABEL
                        && l.name != DROP_NAME_MARKER
                        && !names.labels.contains(&l.name)
                })
                .map(|l| (l.name.as_str(), l.value.as_str())),
        ),
    }
}

/// Running state of one group.
#[derive(Debug)]
pub(super) struct Group {
    labels: Labels,
    value: f64,
    kahan_c: f64,
    mean: f64,
    count: f64,
    incremental_mean: bool,
    values: Vec<f64>,
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Evaluator<'_> {
    pub(crate) fn eval_aggregate(&mut self, agg: &AggregateExpr, t: Millis) -> Result<StepValue> {
        let op = agg.op.id();
        let mut param_scalar = None;
        let mut param_string = None;
        if let Some(param) = &agg.param {
            match self.eval(param, t)? {
                StepValue::Scalar(v) => param_scalar = Some(v),
                StepValue::String(s) => param_string = Some(s),
                other => {
                    return Err(Error::Execution(format!(
                        "expected scalar or string aggregation parameter, got {}",
                        other.type_name()
                    )));
                }
            }
        }
        if let Some(out) = self.eval_aggregate_over_rollup(agg, t)? {
            self.check_samples(out.len())?;
            return Ok(StepValue::Vector(out));
        }
        let input = self.eval_vector(&agg.expr, t)?;
        let modifier = agg.modifier.as_ref();
        let memo = self
            .group_memos
            .entry(std::ptr::from_ref(agg) as usize)
            .or_default();
        let groups: Vec<Labels> = input
            .iter()
            .map(|sample| memo.get_or_insert_with(&sample.labels, |l| group_labels(l, modifier)))
            .collect();
        let out = match op {
            T_TOPK | T_BOTTOMK | T_LIMITK | T_LIMIT_RATIO => {
                let param = param_scalar.unwrap_or(f64::NAN);
                self.select_k(op, &agg.op.to_string(), param, input, groups)?
            }
            T_COUNT_VALUES => {
                let label = param_string.unwrap_or_default();
                if !valid_label_name(&label) {
                    return Err(Error::Execution(format!("invalid label name {label:?}")));
                }
                count_values(&label, input, groups, t)
            }
            _ => {
                if op == T_QUANTILE
                    && let Some(q) = param_scalar
                    && !(0.0..=1.0).contains(&q)
                {
                    let mut annotations = crate::functions::Annotations::default();
                    annotations.warn_invalid_quantile(q);
                    for warning in annotations.warnings {
                        self.add_warning(warning);
                    }
                }
                aggregate_values(op, param_scalar.unwrap_or(f64::NAN), input, groups, t)
            }
        };
        self.check_samples(out.len())?;
        Ok(StepValue::Vector(out))
    }

    fn select_k(
        &mut self,
        op: u16,
        name: &str,
        param: f64,
        input: Vec<VectorSample>,
        groups: Vec<Labels>,
    ) -> Result<Vec<VectorSample>> {
        if param.is_nan() {
            return Err(Error::Execution(format!(
                "Parameter value is NaN for {name}"
            )));
        }
        let mut ratio = param;
        if op == T_LIMIT_RATIO && !(-1.0..=1.0).contains(&param) {
            ratio = param.clamp(-1.0, 1.0);
            self.add_warning(format!(
                "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {}",
                go_format_float_fixed(param),
                go_format_float_fixed(ratio)
            ));
        }
        let k = if param >= i64::MAX as f64 {
            i64::MAX
        } else {
            param as i64
        };
        if op != T_LIMIT_RATIO && k < 1 {
            return Ok(Vec::new());
        }
        // Groups in order of first appearance. Keyed by content (a label set hashes
        // as its fingerprint; interned groups compare equal by address).
        let mut slot_of: IdHashMap<&Labels, usize> = IdHashMap::default();
        let mut grouped: Vec<Vec<VectorSample>> = Vec::new();
        for (sample, group) in input.into_iter().zip(&groups) {
            let slot = *slot_of.entry(group).or_insert_with(|| {
                grouped.push(Vec::new());
                grouped.len() - 1
            });
            grouped[slot].push(sample);
        }
        let k = usize::try_from(k).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for mut samples in grouped {
            match op {
                T_TOPK => {
                    samples.sort_by(|a, b| nan_last(b.v, a.v, true));
                    samples.truncate(k);
                }
                T_BOTTOMK => {
                    samples.sort_by(|a, b| nan_last(a.v, b.v, false));
                    samples.truncate(k);
                }
                T_LIMITK => samples.truncate(k),
                _ => samples.retain(|s| {
                    let offset = prometheus_hash(&s.labels) as f64 / u64::MAX as f64;
                    (ratio >= 0.0 && offset < ratio) || (ratio < 0.0 && offset >= 1.0 + ratio)
                }),
            }
            out.extend(samples);
        }
        Ok(out)
    }
}

/// Orders `a` before `b` by value with NaN last (`descending` flips which side NaN is
/// compared on so it stays last).
fn nan_last(a: f64, b: f64, descending: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (a_nan, b_nan) = if descending {
        (b.is_nan(), a.is_nan())
    } else {
        (a.is_nan(), b.is_nan())
    };
    match (a_nan, b_nan) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

fn count_values(
    label: &str,
    input: Vec<VectorSample>,
    groups: Vec<Labels>,
    t: Millis,
) -> Vec<VectorSample> {
    let mut order: Vec<Labels> = Vec::new();
    let mut counts: HashMap<Labels, f64> = HashMap::new();
    for (sample, group) in input.into_iter().zip(groups) {
        let mut builder = group.to_builder();
        builder.set(label, go_format_float_fixed(sample.v));
        let key = builder.build();
        let count = counts.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            0.0
        });
        *count += 1.0;
    }
    order
        .into_iter()
        .map(|labels| {
            let v = counts.get(&labels).copied().unwrap_or(0.0);
            VectorSample { labels, t, v }
        })
        .collect()
}

fn aggregate_values(
    op: u16,
    param: f64,
    input: Vec<VectorSample>,
    group_labels: Vec<Labels>,
    t: Millis,
) -> Vec<VectorSample> {
    // Groups in order of first appearance. Keyed by content (a label set hashes as
    // its fingerprint; interned groups compare equal by address).
    let mut slot_of: IdHashMap<Labels, usize> = IdHashMap::default();
    let mut groups: Vec<Group> = Vec::new();
    for (sample, key) in input.into_iter().zip(group_labels) {
        match slot_of.get(&key).and_then(|&slot| groups.get_mut(slot)) {
            Some(group) => group.add(op, sample.v),
            None => {
                slot_of.insert(key.clone(), groups.len());
                groups.push(Group::new(op, key, sample.v));
            }
        }
    }
    groups
        .into_iter()
        .map(|group| group.finish(op, param, t))
        .collect()
}

/// Ops [`aggregate_values`] computes (those that reduce each group to one value).
pub(super) fn is_reducing(op: u16) -> bool {
    matches!(
        op,
        T_SUM | T_AVG | T_COUNT | T_GROUP | T_MAX | T_MIN | T_STDDEV | T_STDVAR | T_QUANTILE
    )
}

impl Group {
    /// A group whose first sample is `v`.
    pub(super) fn new(op: u16, labels: Labels, v: f64) -> Group {
        let value = match op {
            T_STDDEV | T_STDVAR if v.is_nan() || v.is_infinite() => f64::NAN,
            T_STDDEV | T_STDVAR => 0.0,
            T_COUNT | T_GROUP => 1.0,
            _ => v,
        };
        Group {
            labels,
            value,
            kahan_c: 0.0,
            mean: v,
            count: 1.0,
            incremental_mean: false,
            values: if op == T_QUANTILE {
                vec![v]
            } else {
                Vec::new()
            },
        }
    }

    /// Adds a later sample.
    pub(super) fn add(&mut self, op: u16, v: f64) {
        match op {
            T_SUM => (self.value, self.kahan_c) = kahan_sum_inc(v, self.value, self.kahan_c),
            T_AVG => add_to_average(self, v),
            T_COUNT => self.value += 1.0,
            T_GROUP => {}
            T_MAX if self.value < v || self.value.is_nan() => self.value = v,
            T_MIN if self.value > v || self.value.is_nan() => self.value = v,
            T_STDDEV | T_STDVAR => {
                self.count += 1.0;
                let delta = v - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (v - self.mean);
            }
            T_QUANTILE => self.values.push(v),
            _ => {}
        }
    }

    /// The group's sample at step `t`.
    pub(super) fn finish(mut self, op: u16, param: f64, t: Millis) -> VectorSample {
        let v = match op {
            T_SUM => self.value + self.kahan_c,
            T_AVG if self.incremental_mean => self.mean + self.kahan_c,
            T_AVG => (self.value + self.kahan_c) / self.count,
            T_STDVAR => self.value / self.count,
            T_STDDEV => (self.value / self.count).sqrt(),
            T_QUANTILE => quantile(param, &mut self.values),
            _ => self.value,
        };
        VectorSample {
            labels: self.labels,
            t,
            v,
        }
    }
}

fn add_to_average(group: &mut Group, v: f64) {
    group.count += 1.0;
    if !group.incremental_mean {
        let (sum, c) = kahan_sum_inc(v, group.value, group.kahan_c);
        if !sum.is_infinite() {
            group.value = sum;
            group.kahan_c = c;
            return;
        }
        group.incremental_mean = true;
        group.mean = group.value / (group.count - 1.0);
        group.kahan_c /= group.count - 1.0;
    }
    if group.mean.is_infinite() {
        if v.is_infinite() && (group.mean > 0.0) == (v > 0.0) {
            return;
        }
        if !v.is_infinite() && !v.is_nan() {
            return;
        }
    }
    let current = group.mean + group.kahan_c;
    (group.mean, group.kahan_c) = kahan_sum_inc(
        v / group.count - current / group.count,
        group.mean,
        group.kahan_c,
    );
}
