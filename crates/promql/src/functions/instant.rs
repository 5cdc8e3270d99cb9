//! Functions applied to each element of an instant vector: math, clamping, rounding,
//! calendar functions, `timestamp` and the `sort*` family (Prometheus'
//! `simpleFloatFunc`, `clamp`, `funcRound`, `dateWrapper`, `funcSort*`).

use std::cmp::Ordering;

use super::FunctionMemo;
use crate::value::VectorSample;

/// Applies `f` to every value and drops the metric name (Prometheus 3's default,
/// without delayed name removal).
pub(crate) fn map_values(
    input: Vec<VectorSample>,
    f: impl Fn(f64) -> f64,
    memo: &mut FunctionMemo,
) -> Vec<VectorSample> {
    input
        .into_iter()
        .map(|sample| VectorSample {
            labels: memo.drop_metric_name(&sample.labels),
            t: sample.t,
            v: f(sample.v),
        })
        .collect()
}

/// The per-value function of a simple math function, if `name` is one.
pub(crate) fn simple_math_function(name: &str) -> Option<fn(f64) -> f64> {
    let f: fn(f64) -> f64 = match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => go_log2,
        "log10" => go_log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => go_asinh,
        "acosh" => go_acosh,
        "atanh" => f64::atanh,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "sgn" => sgn,
        _ => return None,
    };
    Some(f)
}

fn sgn(v: f64) -> f64 {
    if v < 0.0 {
        -1.0
    } else if v > 0.0 {
        1.0
    } else {
        v
    }
}

/// Go's `math.Asinh` (FreeBSD's algorithm). Rust's `asinh` overflows to ±Inf from
/// about 1e154 on (it squares or doubles `x`); Go takes `ln(x) + ln 2` above 2^28.
fn go_asinh(x: f64) -> f64 {
    const NEAR_ZERO: f64 = 1.0 / (1u64 << 28) as f64;
    const LARGE: f64 = (1u64 << 28) as f64;
    if x.is_nan() || x.is_infinite() {
        return x;
    }
    let magnitude = x.abs();
    let result = if magnitude > LARGE {
        magnitude.ln() + std::f64::consts::LN_2
    } else if magnitude > 2.0 {
        (2.0 * magnitude + 1.0 / ((magnitude * magnitude + 1.0).sqrt() + magnitude)).ln()
    } else if magnitude < NEAR_ZERO {
        magnitude
    } else {
        let square = magnitude * magnitude;
        (magnitude + square / (1.0 + (1.0 + square).sqrt())).ln_1p()
    };
    if x < 0.0 { -result } else { result }
}

/// Go's `math.Acosh` (FreeBSD's algorithm); Rust's `acosh` overflows to +Inf for
/// huge `x` where Go takes `ln(x) + ln 2`.
fn go_acosh(x: f64) -> f64 {
    const LARGE: f64 = (1u64 << 28) as f64;
    if x < 1.0 || x.is_nan() {
        return f64::NAN;
    }
    if x == 1.0 {
        return 0.0;
    }
    if x >= LARGE {
        return x.ln() + std::f64::consts::LN_2;
    }
    if x > 2.0 {
        return (2.0 * x - 1.0 / (x + (x * x - 1.0).sqrt())).ln();
    }
    let t = x - 1.0;
    (t + (2.0 * t + t * t).sqrt()).ln_1p()
}

/// Go's `math.Log10`: `Log(x) * (1/Ln10)`.
fn go_log10(x: f64) -> f64 {
    x.ln() * (1.0 / std::f64::consts::LN_10)
}

/// Go's `math.Log2`: exact for powers of two, otherwise `Log(frac)/Ln2 + exp`.
fn go_log2(x: f64) -> f64 {
    let (frac, exp) = frexp(x);
    if frac == 0.5 {
        return f64::from(exp - 1);
    }
    frac.ln() * (1.0 / std::f64::consts::LN_2) + f64::from(exp)
}

/// Go's `math.Frexp`: `x = frac × 2^exp` with `|frac|` in [0.5, 1).
pub(crate) fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || x.is_nan() || x.is_infinite() {
        return (x, 0);
    }
    let (mut x, mut exp) = (x, 0);
    if x.abs() < f64::MIN_POSITIVE {
        // Subnormal: normalise first.
        x *= (1u64 << 52) as f64;
        exp = -52;
    }
    let bits = x.to_bits();
    exp += ((bits >> 52) & 0x7ff) as i32 - 1022;
    let bits = (bits & !(0x7ff << 52)) | (1022 << 52);
    (f64::from_bits(bits), exp)
}

/// Go's `math.Max` (NaN and +Inf win; +0 beats -0).
pub(crate) fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && x == y {
        return if x.is_sign_negative() { y } else { x };
    }
    if x > y { x } else { y }
}

/// Go's `math.Min` (NaN and -Inf win; -0 beats +0).
pub(crate) fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && x == y {
        return if x.is_sign_negative() { x } else { y };
    }
    if x < y { x } else { y }
}

/// `clamp`, `clamp_min` (max = +Inf), `clamp_max` (min = -Inf).
pub(crate) fn clamp(
    input: Vec<VectorSample>,
    min: f64,
    max: f64,
    memo: &mut FunctionMemo,
) -> Vec<VectorSample> {
    if max < min {
        return Vec::new();
    }
    map_values(input, |v| go_max(min, go_min(max, v)), memo)
}

/// `round(v, to_nearest)`; ties round up.
pub(crate) fn round(
    input: Vec<VectorSample>,
    to_nearest: f64,
    memo: &mut FunctionMemo,
) -> Vec<VectorSample> {
    // Prometheus inverts first: it causes fewer floating point accuracy issues.
    let inverse = 1.0 / to_nearest;
    map_values(input, |v| (v * inverse + 0.5).floor() / inverse, memo)
}

/// `timestamp(v)`: the sample's own timestamp in seconds.
pub(crate) fn timestamp(input: Vec<VectorSample>, memo: &mut FunctionMemo) -> Vec<VectorSample> {
    input
        .into_iter()
        .map(|sample| VectorSample {
            labels: memo.drop_metric_name(&sample.labels),
            t: sample.t,
            v: sample.t as f64 / 1000.0,
        })
        .collect()
}

/// A UTC calendar field of a Unix time in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CalendarField {
    DayOfMonth,
    DayOfWeek,
    DayOfYear,
    DaysInMonth,
    Hour,
    Minute,
    Month,
    Year,
}

impl CalendarField {
    pub(crate) fn from_function_name(name: &str) -> Option<CalendarField> {
        Some(match name {
            "day_of_month" => CalendarField::DayOfMonth,
            "day_of_week" => CalendarField::DayOfWeek,
            "day_of_year" => CalendarField::DayOfYear,
            "days_in_month" => CalendarField::DaysInMonth,
            "hour" => CalendarField::Hour,
            "minute" => CalendarField::Minute,
            "month" => CalendarField::Month,
            "year" => CalendarField::Year,
            _ => return None,
        })
    }

    /// The field of `time.Unix(int64(value), 0).UTC()` as Go computes it.
    pub(crate) fn of(self, value: f64) -> f64 {
        // Go's `Time.abs()`: seconds since its absolute zero in wrapping 64-bit
        // arithmetic, so times past Go's range wrap around as they do in Prometheus:
        // NaN, ±Inf and huge values (int64 "indefinite", i64::MIN) are 4 December
        // 292277026596, 15:30 there, not a date 292 billion years BC. The cast
        // reinterprets the two's complement bits, as Go's uint64() does.
        let absolute = (go_float_to_int64(value) as u64).wrapping_add(UNIX_TO_GO_ABSOLUTE_SECONDS);
        let second_of_day = (absolute % SECONDS_PER_DAY) as i64;
        // Both quotients are below 2^64 / 86400, far inside i64.
        let days = (absolute / SECONDS_PER_DAY) as i64
            - (UNIX_TO_GO_ABSOLUTE_SECONDS / SECONDS_PER_DAY) as i64;
        let (year, month, day) = sightline_model::time::civil_from_days(days);
        let result = match self {
            CalendarField::DayOfMonth => day,
            // Go's `absWeekday`: its absolute zero day is a Monday.
            CalendarField::DayOfWeek => {
                (absolute.wrapping_add(SECONDS_PER_DAY) % (7 * SECONDS_PER_DAY) / SECONDS_PER_DAY)
                    as i64
            }
            CalendarField::DayOfYear => day_of_year(year, month, day),
            CalendarField::DaysInMonth => days_in_month(year, month),
            CalendarField::Hour => second_of_day / 3600,
            CalendarField::Minute => second_of_day % 3600 / 60,
            CalendarField::Month => month,
            CalendarField::Year => year,
        };
        result as f64
    }
}

const SECONDS_PER_DAY: u64 = 86_400;

/// Seconds from Go's absolute zero time (1 January of the year -292277022399) to the
/// Unix epoch: Go's `unixToInternal + internalToAbsolute` (`time/time.go`).
const UNIX_TO_GO_ABSOLUTE_SECONDS: u64 = 9_223_372_028_715_321_600;

/// Go's `int64(f)` on amd64: truncation, and the "integer indefinite" value
/// (i64::MIN) for NaN and out-of-range values.
fn go_float_to_int64(value: f64) -> i64 {
    // 2^63 is exactly representable; the valid range is [-2^63, 2^63).
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if value.is_nan() || !(-TWO_POW_63..TWO_POW_63).contains(&value) {
        return i64::MIN;
    }
    value as i64
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn day_of_year(year: i64, month: i64, day: i64) -> i64 {
    (1..month).map(|m| days_in_month(year, m)).sum::<i64>() + day
}

/// `sort` (ascending) and `sort_desc`; NaN sorts last either way.
pub(crate) fn sort_by_value(mut input: Vec<VectorSample>, descending: bool) -> Vec<VectorSample> {
    input.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => {
            let ordering = a.v.partial_cmp(&b.v).unwrap_or(Ordering::Equal);
            if descending {
                ordering.reverse()
            } else {
                ordering
            }
        }
    });
    input
}

/// `sort_by_label` / `sort_by_label_desc`: natural order of the named labels' values,
/// then the whole label set.
pub(crate) fn sort_by_label(
    mut input: Vec<VectorSample>,
    label_names: &[String],
    descending: bool,
) -> Vec<VectorSample> {
    input.sort_by(|a, b| {
        for name in label_names {
            let left = a.labels.get(name).unwrap_or("");
            let right = b.labels.get(name).unwrap_or("");
            if left == right {
                continue;
            }
            let ascending = if natural_less(left, right) {
                Ordering::Less
            } else {
                Ordering::Greater
            };
            return if descending {
                ascending.reverse()
            } else {
                ascending
            };
        }
        let ordering = a.labels.cmp(&b.labels);
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    });
    input
}

/// Splits into maximal runs of ASCII digits and of non-digits (`(\d+|\D+)`).
fn natural_chunks(s: &str) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut previous_is_digit = None;
    for (i, c) in s.char_indices() {
        let is_digit = c.is_ascii_digit();
        if previous_is_digit.is_some_and(|p| p != is_digit) {
            chunks.push(&s[start..i]);
            start = i;
        }
        previous_is_digit = Some(is_digit);
    }
    if start < s.len() {
        chunks.push(&s[start..]);
    }
    chunks
}

/// `github.com/facette/natsort.Compare`: true when `a` sorts before `b`.
pub(crate) fn natural_less(a: &str, b: &str) -> bool {
    let chunks_a = natural_chunks(a);
    let chunks_b = natural_chunks(b);
    for (i, chunk_a) in chunks_a.iter().enumerate() {
        let Some(chunk_b) = chunks_b.get(i) else {
            return false;
        };
        let last_a = i == chunks_a.len() - 1;
        let last_b = i == chunks_b.len() - 1;
        if let (Ok(int_a), Ok(int_b)) = (chunk_a.parse::<i64>(), chunk_b.parse::<i64>()) {
            if int_a == int_b {
                if last_a {
                    return true;
                } else if last_b {
                    return false;
                }
                continue;
            }
            return int_a < int_b;
        }
        if chunk_a == chunk_b {
            if last_a {
                return true;
            } else if last_b {
                return false;
            }
            continue;
        }
        return chunk_a < chunk_b;
    }
    false
}
