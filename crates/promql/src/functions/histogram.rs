//! `histogram_quantile` over classic (`le`-labelled) bucket series, ported from
//! Prometheus' `funcHistogramQuantile` and `BucketQuantile` (`promql/quantile.go`).

use sightline_model::id_hash::IdHashMap;
use sightline_model::{Labels, METRIC_NAME_LABEL};

use super::{Annotations, FunctionMemo};
use crate::value::VectorSample;

/// The label holding a classic bucket's upper bound.
const BUCKET_LABEL: &str = "le";

/// Relative difference below which neighbouring bucket counts are treated as equal
/// (floating point noise), Prometheus' `smallDeltaTolerance`.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    pub(crate) upper_bound: f64,
    pub(crate) count: f64,
}

/// What `bucket_quantile` had to repair in its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BucketRepairs {
    pub(crate) forced_monotonic: bool,
    pub(crate) fixed_precision: bool,
}

pub(crate) fn histogram_quantile(
    q: f64,
    input: Vec<VectorSample>,
    annotations: &mut Annotations,
    memo: &mut FunctionMemo,
) -> Vec<VectorSample> {
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        annotations.warn_invalid_quantile(q);
    }
    let groups = group_classic_buckets(input, annotations, memo);
    let mut output = Vec::with_capacity(groups.len());
    for (signature, mut buckets) in groups {
        let (value, repairs) = bucket_quantile(q, &mut buckets);
        if repairs.forced_monotonic {
            annotations.infos.push(format!(
                "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {:?}",
                signature.get(METRIC_NAME_LABEL).unwrap_or("")
            ));
        }
        output.push(VectorSample {
            labels: memo.drop_metric_name(&signature),
            t: 0,
            v: value,
        });
    }
    output
}

/// `histogram_fraction(lower, upper, v)` over classic buckets.
pub(crate) fn histogram_fraction(
    lower: f64,
    upper: f64,
    input: Vec<VectorSample>,
    annotations: &mut Annotations,
    memo: &mut FunctionMemo,
) -> Vec<VectorSample> {
    group_classic_buckets(input, annotations, memo)
        .into_iter()
        .map(|(signature, mut buckets)| VectorSample {
            labels: memo.drop_metric_name(&signature),
            t: 0,
            v: bucket_fraction(lower, upper, &mut buckets),
        })
        .collect()
}

/// Groups bucket samples by all labels except `le` (metric name included), in
/// order of first appearance; a sample without a parsable `le` is skipped with
/// Prometheus' warning.
fn group_classic_buckets(
    input: Vec<VectorSample>,
    annotations: &mut Annotations,
    memo: &mut FunctionMemo,
) -> Vec<(Labels, Vec<Bucket>)> {
    // Keyed by content (a label set hashes as its fingerprint; interned signatures
    // compare equal by address).
    let mut group_index: IdHashMap<Labels, usize> = IdHashMap::default();
    let mut groups: Vec<(Labels, Vec<Bucket>)> = Vec::new();
    for sample in input {
        let bound = memo
            .bucket_bounds
            .get_or_insert_with(&sample.labels, |labels| {
                parse_go_float(labels.get(BUCKET_LABEL).unwrap_or(""))
            });
        let Some(upper_bound) = bound else {
            annotations.warnings.push(format!(
                "PromQL warning: bucket label {BUCKET_LABEL:?} is missing or has a malformed value of {:?} for metric name {:?}",
                sample.labels.get(BUCKET_LABEL).unwrap_or(""),
                sample.labels.metric_name().unwrap_or("")
            ));
            continue;
        };
        let signature = memo
            .bucket_groups
            .get_or_insert_with(&sample.labels, |labels| {
                labels.to_builder().delete(BUCKET_LABEL).build()
            });
        let bucket = Bucket {
            upper_bound,
            count: sample.v,
        };
        match group_index.get(&signature) {
            Some(&index) => groups[index].1.push(bucket),
            None => {
                group_index.insert(signature.clone(), groups.len());
                groups.push((signature, vec![bucket]));
            }
        }
    }
    groups
}

/// Parses a bucket bound as Go's `strconv.ParseFloat` would for the forms that
/// occur in practice (decimal, exponent, `Inf`/`+Inf`/`-Inf`, `NaN`, any case).
fn parse_go_float(text: &str) -> Option<f64> {
    if text.is_empty() || text.contains('_') {
        return None;
    }
    let value = text.parse::<f64>().ok()?;
    // Go reports an overflow such as "1e400" as an error (ErrRange).
    if value.is_infinite() && !text.to_ascii_lowercase().contains("inf") {
        return None;
    }
    Some(value)
}

/// Prometheus' `BucketQuantile`: linear interpolation inside the bucket holding the
/// rank; `buckets` is sorted and repaired in place. NaN for q NaN, fewer than two
/// buckets, no `+Inf` bucket or no observations; -Inf/+Inf for q < 0 / q > 1.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, BucketRepairs) {
    let none = BucketRepairs::default();
    if q.is_nan() {
        return (f64::NAN, none);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, none);
    }
    if q > 1.0 {
        return (f64::INFINITY, none);
    }
    buckets.sort_by(|a, b| {
        a.upper_bound
            .partial_cmp(&b.upper_bound)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    match buckets.last() {
        Some(last) if last.upper_bound == f64::INFINITY => {}
        _ => return (f64::NAN, none),
    }
    coalesce_buckets(buckets);
    let repairs = ensure_monotonic_and_ignore_small_deltas(buckets, SMALL_DELTA_TOLERANCE);

    if buckets.len() < 2 {
        return (f64::NAN, none);
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, none);
    }
    let mut rank = q * observations;
    // Go's sort.Search (a binary search; NaN counts make it differ from a scan).
    let (mut low, mut high) = (0, buckets.len() - 1);
    while low < high {
        let middle = (low + high) / 2;
        if buckets[middle].count >= rank {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    let b = low;

    if b == buckets.len() - 1 {
        return (buckets[buckets.len() - 2].upper_bound, repairs);
    }
    if b == 0 && buckets[0].upper_bound <= 0.0 {
        return (buckets[0].upper_bound, repairs);
    }
    let mut bucket_start = 0.0;
    let bucket_end = buckets[b].upper_bound;
    let mut count = buckets[b].count;
    if b > 0 {
        bucket_start = buckets[b - 1].upper_bound;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (
        bucket_start + (bucket_end - bucket_start) * (rank / count),
        repairs,
    )
}

/// Prometheus' `BucketFraction`: the share of observations in (lower, upper],
/// interpolating linearly inside buckets (a lowest bucket above 0 starts at 0).
pub(crate) fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<Bucket>) -> f64 {
    sort_buckets(buckets);
    match buckets.last() {
        Some(last) if last.upper_bound == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    coalesce_buckets(buckets);
    let count = buckets[buckets.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if buckets[0].upper_bound <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, bucket) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].upper_bound;
        }
        let upper_bound = bucket.upper_bound;
        // Counts are cumulative, so this bucket holds `bucket.count - rank`.
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                return bucket.count;
            }
            rank + (bucket.count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = bucket.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

fn sort_buckets(buckets: &mut [Bucket]) {
    buckets.sort_by(|a, b| {
        a.upper_bound
            .partial_cmp(&b.upper_bound)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
}

/// Merges buckets with the same upper bound (input sorted, non-empty).
fn coalesce_buckets(buckets: &mut Vec<Bucket>) {
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for bucket in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.upper_bound == bucket.upper_bound => last.count += bucket.count,
            _ => merged.push(*bucket),
        }
    }
    *buckets = merged;
}

/// Prometheus' `ensureMonotonicAndIgnoreSmallDeltas`.
fn ensure_monotonic_and_ignore_small_deltas(
    buckets: &mut [Bucket],
    tolerance: f64,
) -> BucketRepairs {
    let mut repairs = BucketRepairs::default();
    let Some(first) = buckets.first() else {
        return repairs;
    };
    let mut prev = first.count;
    for bucket in buckets.iter_mut().skip(1) {
        let curr = bucket.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, tolerance) {
            // Floating point noise, in either direction: keep `prev`.
            bucket.count = prev;
            repairs.fixed_precision = true;
            continue;
        }
        if curr < prev {
            bucket.count = prev;
            repairs.forced_monotonic = true;
            continue;
        }
        prev = curr;
    }
    repairs
}

/// Prometheus' `util/almost.Equal`: relative difference below `epsilon`, NaN equal
/// to NaN (used by `histogram_quantile` and by the conformance runner).
pub fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}
