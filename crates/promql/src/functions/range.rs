//! Functions over one series' samples inside a range window (`rate`, `*_over_time`,
//! ...), ported from Prometheus' `promql/functions.go` with its exact arithmetic.

use super::{Annotations, RangeWindow, kahan_inc, quantile_of};
use crate::value::Sample;
use crate::{Error, Result};

/// `rate`, `increase` and `delta`: Prometheus' `extrapolatedRate`.
pub(crate) fn extrapolated_rate(
    points: &[impl Sample],
    window: &RangeWindow,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let result = if is_counter {
        counter_increase(points)
    } else {
        points[points.len() - 1].v() - points[0].v()
    };
    Some(extrapolate(points, result, window, is_counter, is_rate))
}

/// The last value less the first, plus the value before each counter reset (a value
/// below its predecessor). `points` holds at least one point.
pub(crate) fn counter_increase(points: &[impl Sample]) -> f64 {
    let first = points[0];
    let mut result = points[points.len() - 1].v() - first.v();
    let mut prev = first.v();
    for point in &points[1..] {
        if point.v() < prev {
            result += prev;
        }
        prev = point.v();
    }
    result
}

/// The second half of `extrapolatedRate`: `result` (the raw increase or delta over
/// `points`, at least two) extrapolated to the window's edges.
pub(crate) fn extrapolate(
    points: &[impl Sample],
    result: f64,
    window: &RangeWindow,
    is_counter: bool,
    is_rate: bool,
) -> f64 {
    let first = points[0];
    let last = points[points.len() - 1];
    let num_samples_minus_one = (points.len() - 1) as f64;

    let mut duration_to_start = (first.t() - window.range_start) as f64 / 1000.0;
    let mut duration_to_end = (window.range_end - last.t()) as f64 / 1000.0;
    let sampled_interval = (last.t() - first.t()) as f64 / 1000.0;
    let average_duration_between_samples = sampled_interval / num_samples_minus_one;

    let extrapolation_threshold = average_duration_between_samples * 1.1;
    if duration_to_start >= extrapolation_threshold {
        duration_to_start = average_duration_between_samples / 2.0;
    }
    if is_counter {
        // Counters cannot be negative: do not extrapolate below the zero point.
        let mut duration_to_zero = duration_to_start;
        if result > 0.0 && first.v() >= 0.0 {
            duration_to_zero = sampled_interval * (first.v() / result);
        }
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= extrapolation_threshold {
        duration_to_end = average_duration_between_samples / 2.0;
    }

    let mut factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    if is_rate {
        factor /= range_seconds(window);
    }
    result * factor
}

/// The window length in seconds exactly as Go's `time.Duration.Seconds()` computes it.
pub(crate) fn range_seconds(window: &RangeWindow) -> f64 {
    let millis = window.range_end - window.range_start;
    let whole = millis / 1000;
    let fraction_nanos = (millis % 1000) * 1_000_000;
    whole as f64 + fraction_nanos as f64 / 1e9
}

/// `irate` and `idelta`: Prometheus' `instantValue`.
pub(crate) fn instant_value(points: &[impl Sample], is_rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let previous = points[points.len() - 2];
    let last = points[points.len() - 1];
    let sampled_interval = last.t() - previous.t();
    if sampled_interval == 0 {
        return None;
    }
    let mut result = last.v();
    // A counter reset leaves the result at the last value.
    if !is_rate || last.v() >= previous.v() || last.v().is_nan() || previous.v().is_nan() {
        result = last.v() - previous.v();
    }
    if is_rate {
        result /= sampled_interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares regression with Kahan summation; returns (slope, intercept at
/// `intercept_time`). `points` holds at least one point.
pub(crate) fn linear_regression(points: &[impl Sample], intercept_time: i64) -> (f64, f64) {
    let mut n = 0.0;
    let (mut sum_x, mut c_x) = (0.0, 0.0);
    let (mut sum_y, mut c_y) = (0.0, 0.0);
    let (mut sum_xy, mut c_xy) = (0.0, 0.0);
    let (mut sum_x2, mut c_x2) = (0.0, 0.0);
    let init_y = points[0].v();
    let mut const_y = true;
    for (i, point) in points.iter().enumerate() {
        if const_y && i > 0 && point.v() != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (point.t() - intercept_time) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(point.v(), sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * point.v(), sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;

    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

pub(crate) fn deriv(points: &[impl Sample]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    Some(linear_regression(points, points[0].t()).0)
}

pub(crate) fn predict_linear(
    points: &[impl Sample],
    window: &RangeWindow,
    duration: f64,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (slope, intercept) = linear_regression(points, window.eval_t);
    Some(slope * duration + intercept)
}

pub(crate) fn changes(points: &[impl Sample]) -> Option<f64> {
    let first = points.first()?;
    let mut changes = 0u64;
    let mut prev = first.v();
    for point in &points[1..] {
        let cur = point.v();
        if cur != prev && !(cur.is_nan() && prev.is_nan()) {
            changes += 1;
        }
        prev = cur;
    }
    Some(changes as f64)
}

pub(crate) fn resets(points: &[impl Sample]) -> Option<f64> {
    let first = points.first()?;
    let mut resets = 0u64;
    let mut prev = first.v();
    for point in &points[1..] {
        if point.v() < prev {
            resets += 1;
        }
        prev = point.v();
    }
    Some(resets as f64)
}

/// Direct mean with Kahan summation, switching to an incremental mean when the
/// running sum would overflow (Prometheus 3.5 `avg_over_time`).
pub(crate) fn avg_over_time(points: &[impl Sample]) -> Option<f64> {
    let first = points.first()?;
    let mut sum = first.v();
    let mut count = 1.0;
    let mut mean = 0.0;
    let mut kahan_c = 0.0;
    let mut incremental_mean = false;
    for (i, point) in points[1..].iter().enumerate() {
        count = (i + 2) as f64;
        if !incremental_mean {
            let (new_sum, new_c) = kahan_inc(point.v(), sum, kahan_c);
            if !new_sum.is_infinite() {
                sum = new_sum;
                kahan_c = new_c;
                continue;
            }
            incremental_mean = true;
            mean = sum / (count - 1.0);
            kahan_c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, kahan_c) = kahan_inc(point.v() / count, q * mean, q * kahan_c);
    }
    if incremental_mean {
        return Some(mean + kahan_c);
    }
    Some(sum / count + kahan_c / count)
}

pub(crate) fn sum_over_time(points: &[impl Sample]) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let (mut sum, mut c) = (0.0, 0.0);
    for point in points {
        (sum, c) = kahan_inc(point.v(), sum, c);
    }
    if sum.is_infinite() {
        return Some(sum);
    }
    Some(sum + c)
}

/// `max_over_time`/`min_over_time` and their `ts_of_` variants: Prometheus'
/// `compareOverTime`. `replace(cur, best)` says whether `cur` becomes the new best.
pub(crate) fn compare_over_time(
    points: &[impl Sample],
    replace: fn(f64, f64) -> bool,
    return_timestamp: bool,
) -> Option<f64> {
    let first = points.first()?;
    let mut best = first.v();
    let mut best_t = first.t();
    for point in points {
        if replace(point.v(), best) {
            best = point.v();
            best_t = point.t();
        }
    }
    if return_timestamp {
        return Some(best_t as f64 / 1000.0);
    }
    Some(best)
}

/// Population variance with Kahan-compensated Welford updates (`varianceOverTime`).
pub(crate) fn variance_over_time(points: &[impl Sample]) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let mut count = 0.0;
    let (mut mean, mut c_mean) = (0.0, 0.0);
    let (mut aux, mut c_aux) = (0.0, 0.0);
    for point in points {
        count += 1.0;
        let delta = point.v() - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (point.v() - (mean + c_mean)), aux, c_aux);
    }
    Some((aux + c_aux) / count)
}

pub(crate) fn quantile_over_time(
    points: &[impl Sample],
    q: f64,
    annotations: &mut Annotations,
) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        annotations.warn_invalid_quantile(q);
    }
    let mut values: Vec<f64> = points.iter().map(|p| p.v()).collect();
    Some(quantile_of(q, &mut values))
}

pub(crate) fn mad_over_time(points: &[impl Sample]) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let mut values: Vec<f64> = points.iter().map(|p| p.v()).collect();
    let median = quantile_of(0.5, &mut values);
    let mut deviations: Vec<f64> = points.iter().map(|p| (p.v() - median).abs()).collect();
    Some(quantile_of(0.5, &mut deviations))
}

/// `double_exponential_smoothing` (formerly `holt_winters`).
pub(crate) fn double_exponential_smoothing(
    points: &[impl Sample],
    smoothing_factor: f64,
    trend_factor: f64,
) -> Result<Option<f64>> {
    // Prometheus checks the factors before looking at the samples; NaN passes the
    // check there too (every comparison with NaN is false).
    if smoothing_factor <= 0.0 || smoothing_factor >= 1.0 {
        return Err(Error::Execution(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
            go_fixed6(smoothing_factor)
        )));
    }
    if trend_factor <= 0.0 || trend_factor >= 1.0 {
        return Err(Error::Execution(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {}",
            go_fixed6(trend_factor)
        )));
    }
    if points.len() < 2 {
        return Ok(None);
    }
    let mut s0 = 0.0;
    let mut s1 = points[0].v();
    let mut b = points[1].v() - points[0].v();
    for (i, point) in points.iter().enumerate().skip(1) {
        let x = smoothing_factor * point.v();
        b = calc_trend_value(i - 1, trend_factor, s0, s1, b);
        let y = (1.0 - smoothing_factor) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

fn calc_trend_value(i: usize, trend_factor: f64, s0: f64, s1: f64, b: f64) -> f64 {
    if i == 0 {
        return b;
    }
    let x = trend_factor * (s1 - s0);
    let y = (1.0 - trend_factor) * b;
    x + y
}

/// Go's `%f` (six decimals, `+Inf`/`-Inf` for infinities).
fn go_fixed6(value: f64) -> String {
    if value == f64::INFINITY {
        return "+Inf".to_owned();
    }
    if value == f64::NEG_INFINITY {
        return "-Inf".to_owned();
    }
    format!("{value:.6}")
}
