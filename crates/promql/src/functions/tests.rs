//! Cases computed from Prometheus' formulas, many copied from Prometheus 3.5's
//! `promql/promqltest/testdata/functions.test` (file lines noted).

// Literals are copied digit for digit from the Prometheus test files.
#![allow(clippy::excessive_precision)]

use sightline_model::Labels;

use super::histogram::Bucket;
use super::*;
use crate::value::Point;

mod vector;

const MINUTE: i64 = 60_000;

/// Samples `values` at `start + i*step`, like the test files' `load <step>` lines.
fn series(step: i64, values: &[f64]) -> Vec<Point> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| Point {
            t: i as i64 * step,
            v,
        })
        .collect()
}

/// `0+10x10`-style expansion: start, start+inc, ... (count+1 values).
fn ramp(start: f64, increment: f64, count: usize) -> Vec<f64> {
    (0..=count).map(|i| start + increment * i as f64).collect()
}

/// Evaluates `name(series[range])` at `eval_t` over the samples in (t-range, t].
fn at(name: &str, points: &[Point], eval_t: i64, range: i64, args: &[f64]) -> Option<f64> {
    let window = RangeWindow {
        eval_t,
        range_start: eval_t - range,
        range_end: eval_t,
    };
    let inside: Vec<Point> = points
        .iter()
        .copied()
        .filter(|p| p.t > window.range_start && p.t <= window.range_end)
        .collect();
    eval_range_function(name, &inside, &window, args).unwrap()
}

fn assert_close(actual: Option<f64>, expected: f64) {
    let actual = actual.expect("a value");
    if expected.is_nan() {
        assert!(actual.is_nan(), "expected NaN, got {actual}");
        return;
    }
    let tolerance = 1e-9 * expected.abs().max(1e-300);
    assert!(
        actual == expected || (actual - expected).abs() <= tolerance,
        "expected {expected}, got {actual}"
    );
}

fn sample(pairs: &[(&str, &str)], v: f64) -> VectorSample {
    VectorSample {
        labels: Labels::from_pairs(pairs.iter().copied()),
        t: 0,
        v,
    }
}

fn vector(
    name: &str,
    input: Vec<VectorSample>,
    scalars: &[f64],
    strings: &[&str],
) -> Result<Vec<VectorSample>> {
    let strings: Vec<String> = strings.iter().map(|s| s.to_string()).collect();
    eval_vector_function(name, input, scalars, &strings, 1000)
}

#[test]
fn resets_and_changes() {
    // functions.test:2
    let foo = series(5 * MINUTE, &[1., 2., 3., 0., 1., 0., 0., 1., 2., 0.]);
    let bar = series(5 * MINUTE, &[1., 2., 3., 4., 5., 1., 2., 3., 4., 5.]);
    assert_eq!(at("resets", &foo, 50 * MINUTE, 5 * MINUTE, &[]), None);
    assert_eq!(at("resets", &foo, 50 * MINUTE, 20 * MINUTE, &[]), Some(1.));
    assert_eq!(at("resets", &foo, 50 * MINUTE, 50 * MINUTE, &[]), Some(3.));
    assert_eq!(at("resets", &bar, 50 * MINUTE, 32 * MINUTE, &[]), Some(1.));
    assert_eq!(at("changes", &foo, 50 * MINUTE, 20 * MINUTE, &[]), Some(2.));
    assert_eq!(at("changes", &foo, 50 * MINUTE, 50 * MINUTE, &[]), Some(7.));
    assert_eq!(at("changes", &bar, 50 * MINUTE, 50 * MINUTE, &[]), Some(8.));
    // NaN to NaN is no change (functions.test:104).
    let all_nan = series(5 * MINUTE, &[f64::NAN; 3]);
    let with_nan = series(5 * MINUTE, &[0., f64::NAN, 0.]);
    assert_eq!(
        at("changes", &all_nan, 15 * MINUTE, 20 * MINUTE, &[]),
        Some(0.)
    );
    assert_eq!(
        at("changes", &with_nan, 15 * MINUTE, 20 * MINUTE, &[]),
        Some(2.)
    );
}

#[test]
fn increase_extrapolates_like_prometheus() {
    // functions.test:113
    let foo = series(5 * MINUTE, &ramp(0., 10., 10));
    let mut bar_values = ramp(0., 18., 5);
    bar_values.extend(ramp(0., 18., 5));
    let bar = series(5 * MINUTE, &bar_values);
    let dings = series(5 * MINUTE, &ramp(10., 10., 10));
    let bumms = series(5 * MINUTE, &ramp(1., 10., 10));
    for (points, short, long) in [
        (&foo, 100., 100.),
        (&bar, 160., 162.),
        (&dings, 100., 105.),
        (&bumms, 100., 101.),
    ] {
        assert_close(at("increase", points, 50 * MINUTE, 50 * MINUTE, &[]), short);
        assert_close(at("increase", points, 50 * MINUTE, 100 * MINUTE, &[]), long);
    }
    // functions.test:149: 3 2 is a reset.
    let reset = series(5 * MINUTE, &[0., 1., 2., 3., 2., 3., 4.]);
    assert_close(at("increase", &reset, 30 * MINUTE, 30 * MINUTE, &[]), 7.);
}

#[test]
fn rate_cases_from_prometheus() {
    // functions.test:156
    let mut middle = ramp(0., 27., 4);
    middle.extend(ramp(0., 27., 5));
    let middle = series(5 * MINUTE, &middle);
    assert_close(at("rate", &middle, 50 * MINUTE, 50 * MINUTE, &[]), 0.08);
    let mut end = ramp(0., 10., 9);
    end.extend([0., 10.]);
    let end = series(5 * MINUTE, &end);
    assert_eq!(at("rate", &end, 50 * MINUTE, 5 * MINUTE, &[]), None);
    assert_close(at("rate", &end, 50 * MINUTE, 6 * MINUTE, &[]), 0.);
    let window = series(5 * MINUTE, &ramp(0., 80., 10));
    assert_close(
        at("rate", &window, 50 * MINUTE, 50 * MINUTE, &[]),
        0.26666666666666666,
    );
    // Zero cutoff (functions.test:188).
    for (start, expected_10m) in [
        (0., 0.5),
        (60., 0.55),
        (120., 0.6),
        (180., 0.6),
        (300., 0.6),
    ] {
        let points = series(4 * MINUTE, &ramp(start, 240., 10));
        assert_close(
            at("rate", &points, 10 * MINUTE, 20 * MINUTE, &[]),
            expected_10m,
        );
        assert_close(at("rate", &points, 50 * MINUTE, 20 * MINUTE, &[]), 0.6);
    }
}

#[test]
fn irate_idelta_delta() {
    let foo = series(5 * MINUTE, &ramp(0., 10., 10));
    let mut bar = ramp(0., 10., 5);
    bar.extend(ramp(0., 10., 5));
    let bar = series(5 * MINUTE, &bar);
    assert_close(at("irate", &foo, 50 * MINUTE, 50 * MINUTE, &[]), 1. / 30.);
    assert_close(at("irate", &bar, 30 * MINUTE, 50 * MINUTE, &[]), 0.);
    let nan = series(5 * MINUTE, &[1., f64::NAN, f64::NAN, 5., 11.]);
    let nan_window = 15 * MINUTE + 1000;
    assert_close(at("irate", &nan, 5 * MINUTE, nan_window, &[]), f64::NAN);
    assert_close(at("irate", &nan, 20 * MINUTE, nan_window, &[]), 0.02);
    assert_close(at("idelta", &nan, 20 * MINUTE, nan_window, &[]), 6.);
    assert_eq!(at("irate", &nan, 0, nan_window, &[]), None);
    let up = series(5 * MINUTE, &[0., 50., 100., 150., 200.]);
    let down = series(5 * MINUTE, &[200., 150., 100., 50., 0.]);
    assert_close(at("delta", &up, 20 * MINUTE, 20 * MINUTE, &[]), 200.);
    assert_close(at("delta", &down, 20 * MINUTE, 20 * MINUTE, &[]), -200.);
    let idelta_bar = series(5 * MINUTE, &[0., 50., 100., 50.]);
    assert_close(
        at("idelta", &idelta_bar, 20 * MINUTE, 20 * MINUTE, &[]),
        -50.,
    );
}

#[test]
fn deriv_and_predict_linear() {
    // A perfect line: slope 10/300s.
    let points = series(5 * MINUTE, &ramp(0., 10., 10));
    assert_close(
        at("deriv", &points, 50 * MINUTE, 50 * MINUTE, &[]),
        10. / 300.,
    );
    // predict_linear: intercept at eval time (50m → 100) plus slope * 3600.
    assert_close(
        at(
            "predict_linear",
            &points,
            50 * MINUTE,
            50 * MINUTE,
            &[3600.],
        ),
        100. + 120.,
    );
    // Constant input: slope 0, Inf constant gives NaN.
    let flat = series(MINUTE, &[3., 3., 3.]);
    assert_close(at("deriv", &flat, 2 * MINUTE, 5 * MINUTE, &[]), 0.);
    let inf = series(MINUTE, &[f64::INFINITY; 3]);
    assert_close(at("deriv", &inf, 2 * MINUTE, 5 * MINUTE, &[]), f64::NAN);
    assert_eq!(at("deriv", &flat, 0, MINUTE, &[]), None);
}

#[test]
fn avg_over_time_edge_values() {
    // functions.test:870
    let cases: [(&[f64], f64); 9] = [
        (&[1., 2., 3., 4., 5.], 3.),
        (&[1., 2., 3., 4., f64::INFINITY], f64::INFINITY),
        (&[1., 2., 3., f64::INFINITY, f64::NEG_INFINITY], f64::NAN),
        (&[f64::INFINITY, 0., f64::INFINITY], f64::INFINITY),
        (
            &[f64::NEG_INFINITY, 0., f64::NEG_INFINITY],
            f64::NEG_INFINITY,
        ),
        (
            &[9.988465674311579e307, 9.988465674311579e307],
            9.988465674311579e307,
        ),
        (&[-9.988465674311579e307, 9.988465674311579e307], 0.),
        (&[1., 1e100, 1., -1e100], 0.5),
        (&[1e10, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6], 1.6666666666666675e9),
    ];
    for (values, expected) in cases {
        let points = series(10_000, values);
        assert_close(
            eval_range_function("avg_over_time", &points, &window(), &[]).unwrap(),
            expected,
        );
    }
    let big = series(
        5000,
        &[
            1.78264e50, 0.76342771, 1.9592258, 2.258e220, 7.69805412, 458.90154,
        ],
    );
    assert_close(
        eval_range_function("avg_over_time", &big, &window(), &[]).unwrap(),
        3.76333333333333e219,
    );
    let constant = series(10_000, &[52.; 13]);
    assert_eq!(
        eval_range_function("avg_over_time", &constant, &window(), &[]).unwrap(),
        Some(52.)
    );
}

fn window() -> RangeWindow {
    RangeWindow {
        eval_t: 1_000_000,
        range_start: -1,
        range_end: 1_000_000,
    }
}

fn over(name: &str, values: &[f64], args: &[f64]) -> Option<f64> {
    eval_range_function(name, &series(10_000, values), &window(), args).unwrap()
}

#[test]
fn aggregations_over_time() {
    assert_close(over("sum_over_time", &[1., 1e100, 1., -1e100], &[]), 2.);
    assert_eq!(over("count_over_time", &[1., 2., f64::NAN], &[]), Some(3.));
    assert_eq!(over("count_over_time", &[], &[]), None);
    assert_eq!(
        over("max_over_time", &[f64::NAN, 1., 3., 2.], &[]),
        Some(3.)
    );
    assert_eq!(
        over("min_over_time", &[f64::NAN, 1., 3., 2.], &[]),
        Some(1.)
    );
    assert!(
        over("max_over_time", &[f64::NAN, f64::NAN], &[])
            .unwrap()
            .is_nan()
    );
    assert_eq!(over("last_over_time", &[1., 2.], &[]), Some(2.));
    assert_eq!(over("first_over_time", &[1., 2.], &[]), Some(1.));
    assert_eq!(over("present_over_time", &[5.], &[]), Some(1.));
    assert_eq!(over("ts_of_max_over_time", &[3., 1., 3.], &[]), Some(20.));
    assert_eq!(over("ts_of_min_over_time", &[1., 1., 3.], &[]), Some(10.));
    assert_eq!(over("ts_of_last_over_time", &[1., 1., 3.], &[]), Some(20.));
    assert_eq!(over("ts_of_first_over_time", &[1., 1., 3.], &[]), Some(0.));
    // stddev/stdvar of 0 8 8 2 3 (functions.test: mean 4.2, variance 10.56).
    assert_close(over("stdvar_over_time", &[0., 8., 8., 2., 3.], &[]), 10.56);
    assert_close(
        over("stddev_over_time", &[0., 8., 8., 2., 3.], &[]),
        10.56f64.sqrt(),
    );
    assert_close(over("mad_over_time", &[1., 2., 3., 4., 100.], &[]), 1.);
}

#[test]
fn quantile_over_time_interpolates_and_warns() {
    let values = [0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 10.];
    assert_close(over("quantile_over_time", &values, &[0.25]), 2.5);
    assert_close(over("quantile_over_time", &values, &[0.95]), 9.5);
    assert_close(over("quantile_over_time", &[1., 2.], &[0.5]), 1.5);
    let mut annotations = Annotations::default();
    let value = eval_range_function_annotated(
        "quantile_over_time",
        &series(1, &values),
        &window(),
        &[1.5],
        &mut annotations,
    )
    .unwrap();
    assert_eq!(value, Some(f64::INFINITY));
    assert_eq!(annotations.warnings.len(), 1);
    assert_eq!(
        over("quantile_over_time", &values, &[-1.]),
        Some(f64::NEG_INFINITY)
    );
    assert!(
        over("quantile_over_time", &values, &[f64::NAN])
            .unwrap()
            .is_nan()
    );
}

#[test]
fn double_exponential_smoothing_follows_trend() {
    // functions.test:826: a perfect line is reproduced exactly.
    let points = series(10_000, &ramp(0., 10., 1000));
    let window = RangeWindow {
        eval_t: 8_000_000,
        range_start: 8_000_000 - MINUTE,
        range_end: 8_000_000,
    };
    let inside: Vec<Point> = points
        .iter()
        .copied()
        .filter(|p| p.t > window.range_start && p.t <= window.range_end)
        .collect();
    for name in ["double_exponential_smoothing", "holt_winters"] {
        assert_close(
            eval_range_function(name, &inside, &window, &[0.01, 0.1]).unwrap(),
            8000.,
        );
    }
    assert!(
        eval_range_function("double_exponential_smoothing", &inside, &window, &[1., 0.1]).is_err()
    );
    assert!(
        eval_range_function("double_exponential_smoothing", &inside, &window, &[0.5, 0.]).is_err()
    );
    assert!(eval_range_function("double_exponential_smoothing", &inside, &window, &[0.5]).is_err());
}

#[test]
fn range_seconds_matches_go_duration_seconds() {
    let window = RangeWindow {
        eval_t: 0,
        range_start: -1100,
        range_end: 0,
    };
    assert_eq!(range::range_seconds(&window), 1.1);
}

#[test]
fn kahan_and_quantile_helpers() {
    let (sum, c) = [1., 1e100, 1., -1e100]
        .iter()
        .fold((0., 0.), |(s, c), &v| kahan_inc(v, s, c));
    assert_eq!(sum + c, 2.);
    let mut values = [f64::NAN, 3., 1.];
    assert!(quantile_of(0., &mut values).is_nan());
    let mut values = [4., 1., 3., 2.];
    assert_eq!(quantile_of(0.5, &mut values), 2.5);
    assert!(quantile_of(0.5, &mut []).is_nan());
}

#[test]
fn metric_name_rules() {
    assert!(range_function_keeps_metric_name("last_over_time"));
    assert!(!range_function_keeps_metric_name("rate"));
    let labels = Labels::from_pairs([("__name__", "m"), ("__type__", "counter"), ("a", "b")]);
    assert_eq!(drop_metric_name(&labels), Labels::from_pairs([("a", "b")]));
    assert!(
        takes_range_vector("rate")
            && takes_range_vector("mad_over_time")
            && !takes_range_vector("abs")
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn range_functions_never_panic(
            values in proptest::collection::vec(prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY)], 0..20),
            q in any::<f64>(),
            name in prop::sample::select(vec![
                "rate", "increase", "delta", "irate", "idelta", "deriv", "predict_linear", "changes",
                "resets", "avg_over_time", "sum_over_time", "count_over_time", "min_over_time",
                "max_over_time", "stddev_over_time", "stdvar_over_time", "quantile_over_time",
                "mad_over_time", "last_over_time", "present_over_time", "ts_of_max_over_time",
            ]),
        ) {
            let points = series(1000, &values);
            let window = RangeWindow { eval_t: 30_000, range_start: -1, range_end: 30_000 };
            let _ = eval_range_function(name, &points, &window, &[q]);
        }

        #[test]
        fn calendar_and_histogram_never_panic(v in any::<f64>(), q in any::<f64>(), counts in proptest::collection::vec(any::<f64>(), 1..6)) {
            for name in ["year", "month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute"] {
                let _ = vector(name, vec![sample(&[], v)], &[], &[]);
            }
            let bounds = ["0.1", "1", "NaN", "+Inf", "-Inf", "5"];
            let input: Vec<VectorSample> = counts.iter().enumerate().map(|(i, &c)| sample(&[("le", bounds[i % bounds.len()])], c)).collect();
            let _ = vector("histogram_quantile", input, &[q], &[]);
        }

        #[test]
        fn label_replace_never_panics(template in ".{0,12}", pattern in ".{0,8}") {
            let input = vec![sample(&[("src", "abc")], 1.)];
            let _ = vector("label_replace", input, &[], &["dst", &template, "src", &pattern]);
        }
    }
}
